//! Call recording as rtpengine's ng has it (`record-call` on offer/answer, `start
//! recording`, `stop recording`, `pause recording`), over the engine's taps. The files are
//! relayd's (relayd/src/recording.rs, laid out as rtpengine's `recording-method = pcap`);
//! here only the decisions, so the control plane stays IO-free: a [`Recorder`] opens a
//! [`Recording`], which is a tap sink taking the call's clear media ([`TapView::Clear`])
//! plus [`Note`]s for its metadata file.

use std::collections::HashMap;
use std::sync::Arc;

use rules::tap::TapSink;

use crate::bencode::Value;
use crate::call::Call;
use crate::engine::Engine;
use crate::error::NgError;
use crate::ng::reply::Reply;
use crate::ng::request::OfferAnswer;
use crate::taps::{TapId, TapView};

/// Opens recordings (relayd's writer thread; tests use a memory one).
pub trait Recorder: Send + Sync {
    /// Start the files of a recording of `call_id`, a call created at `created_unix`
    /// (seconds). An error says why not (for the ng reply).
    fn open(&self, call_id: &str, created_unix: u64) -> Result<Arc<dyn Recording>, String>;

    /// Counters for /metrics: (name, value), e.g. `relayd_recording_dropped_total`.
    fn metrics(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// One call's recording: takes the call's packets (as a tap sink: `packet` must never
/// block) and its metadata; `close()` finishes it (the files move to their final place).
pub trait Recording: TapSink {
    fn note(&self, n: Note<'_>);
    /// Where the pcap is written (the ng reply's `recordings`).
    fn pcap_path(&self) -> String;
}

/// Which exchange an SDP in the metadata came from (rtpengine's "SDP mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpMode {
    Offer,
    Answer,
}

impl SdpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SdpMode::Offer => "offer",
            SdpMode::Answer => "answer",
        }
    }
}

/// What a recording's metadata file gets besides packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note<'a> {
    /// An SDP the relay sent in an offer or answer of the recorded call.
    Sdp {
        mode: SdpMode,
        /// The sending party's tag and label.
        tag: &'a str,
        label: Option<&'a str>,
        /// When that party's monologue was created (unix ms).
        started_unix_ms: u64,
        sdp: &'a str,
    },
    /// `pause recording`: the files stay open, no packet is written until resumed.
    Paused { unix_ms: u64 },
    /// `start recording` on a paused recording.
    Resumed { unix_ms: u64 },
    /// `discard-recording`: the files are deleted when the recording closes.
    Discard,
}

/// `record-call` of an offer or answer (and the `record-call` / `discard-recording`
/// flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCall {
    On,
    Off,
    Discard,
}

impl RecordCall {
    /// rtpengine's values: yes/on, no/off, discard.
    pub fn parse(v: &str) -> Option<RecordCall> {
        match v.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" => Some(RecordCall::On),
            "no" | "off" => Some(RecordCall::Off),
            "discard" => Some(RecordCall::Discard),
            _ => None,
        }
    }
}

/// What a recording command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingAction {
    Start,
    Stop,
    Pause,
    /// `stop recording` with the `discard-recording` flag: stop and delete the files.
    Discard,
}

/// `start recording`, `stop recording`, `pause recording`. rtpengine records whole calls
/// and ignores the other keys (`from-tag`, ...); so does relayd, and it ignores
/// `recording-file`/`recording-dir`/`recording-pattern` too: where files go is the
/// operator's choice (`recording-dir`), never a signalling peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRequest {
    pub call_id: String,
    pub action: RecordingAction,
}

impl RecordingRequest {
    /// `stop recording` means pause with `pause=yes` (on, true) or the `pause` flag, and
    /// discard with the `discard-recording` flag (rtpengine's call_stop_recording_ng).
    pub fn decode(req: &Value, action: RecordingAction) -> Result<RecordingRequest, NgError> {
        let call_id = req.get("call-id").and_then(Value::as_str).ok_or(NgError::Missing("call-id"))?.to_string();
        let mut action = action;
        if action == RecordingAction::Stop {
            let pause = req.get("pause").and_then(Value::as_str).map(|s| s.to_ascii_lowercase());
            let flags: Vec<String> = req.get("flags").map(Value::strings).unwrap_or_default();
            let has = |f: &str| flags.iter().any(|x| crate::ng::flags::normalize(x) == f);
            if matches!(pause.as_deref(), Some("yes" | "on" | "true")) || has("pause") {
                action = RecordingAction::Pause;
            } else if has("discard-recording") {
                action = RecordingAction::Discard;
            }
        }
        Ok(RecordingRequest { call_id, action })
    }
}

struct Active {
    tap: TapId,
    rec: Arc<dyn Recording>,
    paused: bool,
}

/// The recorder and the calls it records (part of the engine's taps).
#[derive(Default)]
pub(crate) struct RecordingState {
    recorder: Option<Arc<dyn Recorder>>,
    calls: HashMap<String, Active>,
}

/// An offer's or answer's part in recording, taken before the request is consumed.
pub(crate) struct Signal {
    call_id: String,
    from_tag: String,
    record: Option<RecordCall>,
    mode: SdpMode,
}

impl Signal {
    pub(crate) fn of(o: &OfferAnswer, is_answer: bool) -> Signal {
        Signal {
            call_id: o.call_id.clone(),
            from_tag: o.from_tag.clone(),
            record: o.flags.record_call,
            mode: if is_answer { SdpMode::Answer } else { SdpMode::Offer },
        }
    }
}

/// Why a recording could not start: the reason an ng error carries.
const NOT_CONFIGURED: &str = "call recording requested, but no recording-dir is configured";

impl Engine {
    /// Where recordings go (relayd sets it when `recording-dir` is configured; without
    /// one, recording requests are refused).
    pub fn set_recorder(&mut self, r: Arc<dyn Recorder>) {
        self.taps.recording.recorder = Some(r);
    }

    /// Is call `call_id` recorded now (Some(paused))?
    pub fn recording_of(&self, call_id: &str) -> Option<bool> {
        self.taps.recording.calls.get(call_id).map(|a| a.paused)
    }

    /// The recorder's counters, for /metrics.
    pub fn recording_metrics(&self) -> Vec<(String, u64)> {
        self.taps.recording.recorder.as_ref().map(|r| r.metrics()).unwrap_or_default()
    }

    /// `start recording`, `stop recording`, `pause recording`.
    pub(crate) fn recording_command(&mut self, r: RecordingRequest, unix: u64) -> Result<Reply, NgError> {
        if !self.calls.contains_key(&r.call_id) {
            return Err(NgError::UnknownCallId(r.call_id));
        }
        self.record(&r.call_id, r.action, unix).map_err(NgError::Recording)?;
        Ok(Reply::Ok)
    }

    /// Carry out `action` on the recording of an existing call.
    fn record(&mut self, call_id: &str, action: RecordingAction, unix: u64) -> Result<(), String> {
        let unix_ms = unix.saturating_mul(1000);
        match action {
            RecordingAction::Start => {
                if let Some(a) = self.taps.recording.calls.get_mut(call_id) {
                    if a.paused {
                        a.paused = false;
                        a.rec.note(Note::Resumed { unix_ms });
                    }
                    return Ok(());
                }
                let recorder = self.taps.recording.recorder.clone().ok_or_else(|| NOT_CONFIGURED.to_string())?;
                let created = self.calls.get(call_id).map_or(unix, |c| c.created_unix);
                let rec = recorder.open(call_id, created).map_err(|e| format!("cannot start recording: {e}"))?;
                let sink: Arc<dyn TapSink> = rec.clone();
                match self.add_tap_with(call_id, None, sink, TapView::Clear) {
                    Ok(tap) => {
                        log::info!("call {call_id:?}: recording to {}", rec.pcap_path());
                        self.taps.recording.calls.insert(call_id.to_string(), Active { tap, rec, paused: false });
                        Ok(())
                    }
                    Err(e) => {
                        rec.note(Note::Discard);
                        rec.close();
                        Err(e)
                    }
                }
            }
            RecordingAction::Pause => {
                if let Some(a) = self.taps.recording.calls.get_mut(call_id).filter(|a| !a.paused) {
                    a.paused = true;
                    a.rec.note(Note::Paused { unix_ms });
                }
                Ok(())
            }
            RecordingAction::Stop | RecordingAction::Discard => {
                if let Some(a) = self.taps.recording.calls.remove(call_id) {
                    if action == RecordingAction::Discard {
                        a.rec.note(Note::Discard);
                    }
                    log::info!("call {call_id:?}: recording stopped");
                    self.remove_tap(a.tap);
                }
                Ok(())
            }
        }
    }

    /// After an offer or answer that succeeded: its `record-call`, then the SDP the relay
    /// sent into the metadata of a recorded call. A recording that cannot start does not
    /// fail the call: the reply says why in `warning`.
    pub(crate) fn recorded(&mut self, s: Signal, sdp: String, unix: u64) -> Reply {
        let action = match s.record {
            // a paused recording is not resumed by the flag (rtpengine)
            Some(RecordCall::On) if self.recording_of(&s.call_id) == Some(true) => None,
            Some(RecordCall::On) => Some(RecordingAction::Start),
            Some(RecordCall::Off) => Some(RecordingAction::Stop),
            Some(RecordCall::Discard) => Some(RecordingAction::Discard),
            None => None,
        };
        let warning = match action.map(|a| self.record(&s.call_id, a, unix)) {
            Some(Err(e)) => {
                log::warn!("call {:?}: {e}", s.call_id);
                Some(e)
            }
            _ => None,
        };
        let Some(a) = self.taps.recording.calls.get(&s.call_id) else {
            return match warning {
                None => Reply::Sdp(sdp),
                w => Reply::SdpRecorded { sdp, recordings: Vec::new(), warning: w },
            };
        };
        if let Some(m) = self.calls.get(&s.call_id).and_then(|c| c.find(&s.from_tag).map(|x| &c.monologues[x])) {
            a.rec.note(Note::Sdp {
                mode: s.mode,
                tag: &m.tag,
                label: m.label.as_deref(),
                started_unix_ms: m.created_unix.saturating_mul(1000),
                sdp: &sdp,
            });
        }
        let recordings = vec![a.rec.pcap_path()];
        Reply::SdpRecorded { sdp, recordings, warning }
    }

    /// The call ended: its recording is finished with it (the tap's close).
    pub(crate) fn recording_ended(&mut self, call: &Call) {
        if self.taps.recording.calls.remove(&call.id).is_some() {
            log::info!("call {:?}: recording finished", call.id);
        }
    }
}

/// A recorder that keeps nothing (fuzz targets and tests: the engine's side of recording
/// without files).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub struct NullRecorder;

#[cfg(any(test, feature = "fuzzing"))]
impl Recorder for NullRecorder {
    fn open(&self, _call_id: &str, _created_unix: u64) -> Result<Arc<dyn Recording>, String> {
        struct Nothing;
        impl TapSink for Nothing {
            fn packet(&self, _: &rules::tap::TapPacket<'_>) {}
        }
        impl Recording for Nothing {
            fn note(&self, _: Note<'_>) {}
            fn pcap_path(&self) -> String {
                "/dev/null".into()
            }
        }
        Ok(Arc::new(Nothing))
    }
}
