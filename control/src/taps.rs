// STUB: replaced by h-record at merge
//! Taps on a call's sockets (recording and live capture): the signatures h-record
//! implements; this stub refuses, so capture answers with the reason until the merge.

use std::sync::Arc;

use rules::tap::TapSink;

use crate::engine::Engine;

/// One tap the engine put on a call's sockets, to take it off again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TapId(pub u64);

impl Engine {
    /// Put `sink` on every socket of `call_id` (only `leg_tag`'s, when given).
    pub fn add_tap(&mut self, call_id: &str, leg_tag: Option<&str>, sink: Arc<dyn TapSink>) -> Result<TapId, String> {
        let _ = (call_id, leg_tag, sink);
        Err("taps are not built into this relayd yet".into())
    }

    /// Take tap `id` off (its sink is closed).
    pub fn remove_tap(&mut self, id: TapId) {
        let _ = id;
    }
}
