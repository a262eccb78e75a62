//! Taps on a call's relay sockets: recordings and live captures (docs/operations.md).
//!
//! A tap is a sink ([`TapSink`]) on the sockets of a call, or of one party of it. Every
//! relay socket carries at most one [`Tap`] in its rule, so the engine fans a socket's
//! packets out to all the sinks on it (a recording plus any live captures) and re-applies
//! the call's rules when a tap comes or goes. Rules derived later (re-INVITE) get the taps
//! again ([`TapState::attach`] at every place the engine applies a call's rules). A tap
//! ends with its call: its sink's `close()` is called when it is removed or the call ends.
//! A call has at most [`MAX_TAPS_PER_CALL`] taps.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use rules::dataplane::FlowRule;
use rules::tap::{Tap, TapPacket, TapPoint, TapSink};

use crate::call::Call;
use crate::engine::Engine;
use crate::recording::RecordingState;

/// Taps one call may have at once (a recording and live captures): each one costs every
/// packet of the call a copy.
pub const MAX_TAPS_PER_CALL: usize = 8;

/// A tap the engine put on a call ([`Engine::add_tap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapId(pub u64);

/// Which copies of a packet a sink gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapView {
    /// Every copy: as received, decrypted (where the relay decrypts) and as sent.
    All,
    /// One copy of each packet a party sent, in clear: decrypted where the relay
    /// decrypts, else as received (a recording; a `--decrypted` capture).
    Clear,
}

struct TapEntry {
    call_id: String,
    /// Only the sockets of this party (and those that send to it).
    leg: Option<String>,
    sink: Arc<dyn TapSink>,
    view: TapView,
}

/// One socket's sinks, each with the only point it takes (None: all of them). Immutable:
/// a change makes a new one, applied with a new rule.
struct FanOut(Vec<(Arc<dyn TapSink>, Option<TapPoint>)>);

impl TapSink for FanOut {
    fn packet(&self, p: &TapPacket<'_>) {
        for (s, only) in &self.0 {
            if only.is_none_or(|o| o == p.point) {
                s.packet(p);
            }
        }
    }
}

/// What one socket's tap was built from (to keep it, and its identity, while it holds).
type Signature = Vec<(u64, Option<TapPoint>)>;

/// The engine's taps (a field of [`Engine`]).
#[derive(Default)]
pub struct TapState {
    next: u64,
    taps: BTreeMap<u64, TapEntry>,
    /// The tap each tapped socket carries now.
    sockets: HashMap<SocketAddr, (Signature, Tap)>,
    /// Recording: the recorder and the calls being recorded (crate::recording).
    pub(crate) recording: RecordingState,
}

impl TapState {
    /// Give `rule` (a rule of `call`) the tap of every sink on its socket, or none. Called
    /// wherever the engine applies a call's rules; a relay without taps pays a lookup in
    /// an empty map.
    pub(crate) fn attach(&mut self, call: &Call, rule: &mut FlowRule) {
        if self.taps.is_empty() {
            rule.tap = None;
            return;
        }
        let decrypts = rule.srtp_in.is_some() || rule.dtls.is_some();
        let mut sig = Signature::new();
        let mut sinks = Vec::new();
        for (id, t) in self.taps.iter().filter(|(_, t)| t.call_id == call.id) {
            if !covers(call, t.leg.as_deref(), rule.local) {
                continue;
            }
            let only = match t.view {
                TapView::All => None,
                TapView::Clear => Some(if decrypts { TapPoint::Plain } else { TapPoint::Received }),
            };
            sig.push((*id, only));
            sinks.push((t.sink.clone(), only));
        }
        if sinks.is_empty() {
            self.sockets.remove(&rule.local);
            rule.tap = None;
            return;
        }
        let tap = match self.sockets.get(&rule.local) {
            Some((s, tap)) if *s == sig => tap.clone(),
            _ if sinks.len() == 1 && sinks[0].1.is_none() => Tap::new(sinks.remove(0).0),
            _ => Tap::new(Arc::new(FanOut(sinks))),
        };
        self.sockets.insert(rule.local, (sig, tap.clone()));
        rule.tap = Some(tap);
    }

    fn count(&self, call_id: &str) -> usize {
        self.taps.values().filter(|t| t.call_id == call_id).count()
    }
}

/// Is `local` a socket a tap on `leg` of `call` copies? Without a leg every socket of the
/// call; with one, the sockets of that party and of its counterpart (whose packets go to
/// it): both directions of that party's media.
fn covers(call: &Call, leg: Option<&str>, local: SocketAddr) -> bool {
    let Some(tag) = leg else { return true };
    let Some(x) = call.find(tag) else { return false };
    let ml = |i: usize| call.monologues.get(i).into_iter().flat_map(|m| m.legs.iter());
    ml(x)
        .chain(call.monologues[x].counterpart.into_iter().flat_map(ml))
        .flat_map(|l| l.pairs())
        .any(|(ip, port)| local == SocketAddr::new(ip, port) || local == SocketAddr::new(ip, port.wrapping_add(1)))
}

impl Engine {
    /// Copy the packets of call `call_id` (of its party `leg_tag` only, both directions,
    /// when given) to `sink`, every copy ([`TapView::All`]).
    pub fn add_tap(&mut self, call_id: &str, leg_tag: Option<&str>, sink: Arc<dyn TapSink>) -> Result<TapId, String> {
        self.add_tap_with(call_id, leg_tag, sink, TapView::All)
    }

    /// [`add_tap`](Self::add_tap) with the copies `view` picks.
    pub fn add_tap_with(
        &mut self,
        call_id: &str,
        leg_tag: Option<&str>,
        sink: Arc<dyn TapSink>,
        view: TapView,
    ) -> Result<TapId, String> {
        let Some(call) = self.calls.get(call_id) else {
            return Err(format!("Unknown call-id {call_id:?}"));
        };
        if let Some(tag) = leg_tag {
            if call.find(tag).is_none() {
                return Err(format!("call {call_id:?} has no party with tag {tag:?}"));
            }
        }
        let n = self.taps.count(call_id);
        if n >= MAX_TAPS_PER_CALL {
            return Err(format!(
                "call {call_id:?} already has {n} taps (recording and captures), the most a call may have"
            ));
        }
        self.taps.next += 1;
        let id = self.taps.next;
        let entry = TapEntry { call_id: call_id.to_string(), leg: leg_tag.map(str::to_string), sink, view };
        self.taps.taps.insert(id, entry);
        self.apply_taps(call_id);
        Ok(TapId(id))
    }

    /// Take a tap off: the call's rules are applied without it, then its sink is closed.
    /// Unknown (or already removed) ids are ignored.
    pub fn remove_tap(&mut self, id: TapId) {
        let Some(t) = self.taps.taps.remove(&id.0) else { return };
        self.apply_taps(&t.call_id);
        t.sink.close();
    }

    /// The taps on call `call_id` (ids, oldest first).
    pub fn taps_of(&self, call_id: &str) -> Vec<TapId> {
        self.taps.taps.iter().filter(|(_, t)| t.call_id == call_id).map(|(id, _)| TapId(*id)).collect()
    }

    /// Apply call `call_id`'s rules again, each with the taps on its socket.
    fn apply_taps(&mut self, call_id: &str) {
        let Some(mut call) = self.calls.get(call_id).cloned() else { return };
        for x in 0..call.monologues.len() {
            for mut r in call.rules_for(x) {
                self.taps.attach(&call, &mut r);
                let local = r.local;
                if let Err(e) = self.dataplane().apply(r) {
                    log::warn!("call {call_id:?}: applying the rule of {local} with its taps: {e}");
                }
            }
        }
    }

    /// The call ended (its sockets are closed): its recording is finished and every tap
    /// on it closed. Called where the engine removes calls.
    pub(crate) fn end_taps(&mut self, call: &Call) {
        self.recording_ended(call);
        let ids: Vec<u64> = self.taps.taps.iter().filter(|(_, t)| t.call_id == call.id).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(t) = self.taps.taps.remove(&id) {
                t.sink.close();
            }
        }
        for s in call.sockets() {
            self.taps.sockets.remove(&s);
        }
    }
}
