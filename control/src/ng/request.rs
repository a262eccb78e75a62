//! ng requests decoded from their bencode dictionary into types. Decoding checks the
//! request against the configured limits (the command, identifiers' lengths, required
//! keys, the SDP and its size, the flags); what needs the engine's state (how many calls
//! and monologues there are) it asks an [`Admission`] at its place in the order, so a
//! request with several faults always gets the same reason.

use crate::bencode::Value;
use crate::error::NgError;
use crate::ng::flags::Flags;
use crate::sdp::Sdp;

/// The commands relayd answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Ping,
    Offer,
    Answer,
    Delete,
    Query,
    List,
    Statistics,
    StartRecording,
    StopRecording,
    PauseRecording,
    /// Panics on purpose (tests of panic containment; unknown outside `cfg(test)`).
    TestPanic,
}

impl Command {
    const ALL: [Command; 11] = [
        Command::Ping,
        Command::Offer,
        Command::Answer,
        Command::Delete,
        Command::Query,
        Command::List,
        Command::Statistics,
        Command::StartRecording,
        Command::StopRecording,
        Command::PauseRecording,
        Command::TestPanic,
    ];

    /// The name on the wire (and in the commands counter).
    pub fn name(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Offer => "offer",
            Command::Answer => "answer",
            Command::Delete => "delete",
            Command::Query => "query",
            Command::List => "list",
            Command::Statistics => "statistics",
            Command::StartRecording => "start recording",
            Command::StopRecording => "stop recording",
            Command::PauseRecording => "pause recording",
            Command::TestPanic => "test-panic",
        }
    }

    /// A lower-cased command name.
    pub fn parse(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The request's `command`, lower-cased ("" when missing or not a string).
    pub fn name_in(req: &Value) -> String {
        req.get("command").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase()
    }

    /// The label a request is counted under: its command, "invalid" without one,
    /// "unknown" for the rest (a peer must not grow the counter map).
    pub fn counted(name: &str) -> &'static str {
        match Command::parse(name) {
            Some(c) => c.name(),
            None if name.is_empty() => "invalid",
            None => "unknown",
        }
    }
}

/// The configuration decoding checks against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest call-id, from-tag, to-tag, via-branch and label (bytes).
    pub max_id_length: usize,
    /// Media sections one SDP may have.
    pub max_media_per_sdp: usize,
    /// Interfaces configured (an offer or answer needs one).
    pub interfaces: usize,
}

/// May an offer or answer from `from_tag` in `call_id` go on, given the calls there are
/// now? (The engine's bounds on calls and monologues.)
pub type Admission<'a> = &'a dyn Fn(&str, &str) -> Result<(), NgError>;

/// An offer or an answer.
#[derive(Debug, Clone)]
pub struct OfferAnswer {
    pub call_id: String,
    pub from_tag: String,
    /// `None` when missing or empty.
    pub to_tag: Option<String>,
    pub sdp: Sdp,
    pub flags: Flags,
}

#[derive(Debug, Clone)]
pub struct Delete {
    pub call_id: String,
    /// `None` when missing or empty: the whole call.
    pub from_tag: Option<String>,
    /// `None` when missing or empty (then a `via-branch` may name the branch to delete).
    pub to_tag: Option<String>,
    pub flags: Flags,
}

/// One decoded request.
#[derive(Debug, Clone)]
pub enum Request {
    Ping,
    Offer(OfferAnswer),
    Answer(OfferAnswer),
    Delete(Delete),
    Query {
        call_id: String,
    },
    /// At most this many call-ids (already clamped to `engine::LIST_MAX`).
    List {
        limit: usize,
    },
    Statistics,
    /// `start recording`, `stop recording`, `pause recording` (crate::recording).
    Recording(crate::recording::RecordingRequest),
    #[cfg(test)]
    TestPanic,
}

/// A string value of `key`, if present and a string.
fn string(req: &Value, key: &str) -> Option<String> {
    req.get(key).and_then(Value::as_str).map(str::to_string)
}

fn required(req: &Value, key: &str, what: &'static str) -> Result<String, NgError> {
    string(req, key).ok_or(NgError::Missing(what))
}

impl Request {
    /// Decode a request dictionary; `admit` is asked about offers and answers.
    pub fn decode(req: &Value, limits: &Limits, admit: Admission<'_>) -> Result<Request, NgError> {
        let name = Command::name_in(req);
        check_ids(req, limits.max_id_length)?;
        let Some(cmd) = Command::parse(&name) else {
            return Err(if name.is_empty() { NgError::NoCommand } else { NgError::UnknownCommand(name) });
        };
        Ok(match cmd {
            Command::Ping => Request::Ping,
            Command::Offer => Request::Offer(OfferAnswer::decode(req, limits, admit)?),
            Command::Answer => Request::Answer(OfferAnswer::decode(req, limits, admit)?),
            Command::Delete => Request::Delete(Delete::decode(req)?),
            Command::Query => Request::Query { call_id: required(req, "call-id", "call-id")? },
            Command::List => Request::List {
                limit: req.get("limit").and_then(Value::as_int).unwrap_or(32).clamp(0, crate::engine::LIST_MAX as i64)
                    as usize,
            },
            Command::Statistics => Request::Statistics,
            Command::StartRecording | Command::StopRecording | Command::PauseRecording => {
                use crate::recording::{RecordingAction as A, RecordingRequest};
                let action = match cmd {
                    Command::StartRecording => A::Start,
                    Command::PauseRecording => A::Pause,
                    _ => A::Stop,
                };
                Request::Recording(RecordingRequest::decode(req, action)?)
            }
            #[cfg(test)]
            Command::TestPanic => Request::TestPanic,
            #[cfg(not(test))]
            Command::TestPanic => return Err(NgError::UnknownCommand(name)),
        })
    }

    pub fn command(&self) -> Command {
        match self {
            Request::Ping => Command::Ping,
            Request::Offer(_) => Command::Offer,
            Request::Answer(_) => Command::Answer,
            Request::Delete(_) => Command::Delete,
            Request::Query { .. } => Command::Query,
            Request::List { .. } => Command::List,
            Request::Statistics => Command::Statistics,
            Request::Recording(r) => match r.action {
                crate::recording::RecordingAction::Start => Command::StartRecording,
                crate::recording::RecordingAction::Pause => Command::PauseRecording,
                _ => Command::StopRecording,
            },
            #[cfg(test)]
            Request::TestPanic => Command::TestPanic,
        }
    }
}

/// Identifiers a peer makes us store are bounded (`max-id-length`).
fn check_ids(req: &Value, max: usize) -> Result<(), NgError> {
    for key in ["call-id", "from-tag", "to-tag", "via-branch", "label"] {
        if let Some(Value::Bytes(b)) = req.get(key) {
            if b.len() > max {
                return Err(NgError::IdTooLong { key, len: b.len(), max });
            }
        }
    }
    Ok(())
}

impl OfferAnswer {
    fn decode(req: &Value, limits: &Limits, admit: Admission<'_>) -> Result<OfferAnswer, NgError> {
        let call_id = required(req, "call-id", "call-id")?;
        let from_tag = required(req, "from-tag", "from-tag")?;
        let to_tag = string(req, "to-tag").filter(|t| !t.is_empty());
        if to_tag.as_deref() == Some(from_tag.as_str()) {
            return Err(NgError::ToTagIsFromTag(from_tag));
        }
        if limits.interfaces == 0 {
            return Err(NgError::NoInterface);
        }
        let sdp_text = req.get("sdp").and_then(Value::as_str).ok_or(NgError::Missing("SDP"))?;
        let sdp = Sdp::parse(sdp_text)?;
        // bounds before any port or call state is allocated (the parsed SDP itself is
        // bounded by the datagram: at most 64 KB of text)
        if sdp.media.len() > limits.max_media_per_sdp {
            return Err(NgError::TooManyMedia { n: sdp.media.len(), max: limits.max_media_per_sdp });
        }
        admit(&call_id, &from_tag)?;
        let flags = Flags::from_request(req)?;
        Ok(OfferAnswer { call_id, from_tag, to_tag, sdp, flags })
    }
}

impl Delete {
    fn decode(req: &Value) -> Result<Delete, NgError> {
        let call_id = required(req, "call-id", "call-id")?;
        let flags = Flags::from_request(req)?;
        let from_tag = string(req, "from-tag").filter(|t| !t.is_empty());
        let to_tag = string(req, "to-tag").filter(|t| !t.is_empty());
        Ok(Delete { call_id, from_tag, to_tag, flags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_id_length: 16, max_media_per_sdp: 2, interfaces: 1 };

    fn decode(req: &Value) -> Result<Request, NgError> {
        Request::decode(req, &LIMITS, &|_, _| Ok(()))
    }
    const SDP: &str =
        "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn req(pairs: &[(&str, Value)]) -> Value {
        let mut d = Value::dict();
        for (k, v) in pairs {
            d.insert(k, v.clone());
        }
        d
    }

    fn reason(pairs: &[(&str, Value)]) -> String {
        decode(&req(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn commands_decode_case_insensitively() {
        let r = decode(&req(&[("command", "PiNg".into())])).unwrap();
        assert_eq!(r.command(), Command::Ping);
        let r = decode(&req(&[("command", "list".into()), ("limit", Value::Int(100_000))])).unwrap();
        assert!(matches!(r, Request::List { limit } if limit == crate::engine::LIST_MAX));
        let r = decode(&req(&[("command", "list".into()), ("limit", Value::Int(-3))])).unwrap();
        assert!(matches!(r, Request::List { limit: 0 }));
        assert_eq!(Command::counted("offer"), "offer");
        assert_eq!(Command::counted(""), "invalid");
        assert_eq!(Command::counted("x".repeat(1000).as_str()), "unknown");
    }

    #[test]
    fn an_offer_decodes_into_its_parts() {
        let r = decode(&req(&[
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("to-tag", "".into()),
            ("sdp", SDP.into()),
            ("flags", Value::List(vec!["trust-address".into()])),
        ]))
        .unwrap();
        let Request::Offer(o) = r else { panic!("not an offer") };
        assert_eq!((o.call_id.as_str(), o.from_tag.as_str(), o.to_tag), ("c", "a", None));
        assert_eq!(o.sdp.media.len(), 1);
        assert!(o.flags.trust_address);
    }

    #[test]
    fn wrong_types_and_missing_keys_are_named() {
        assert_eq!(reason(&[]), "no 'command' key in request");
        assert_eq!(reason(&[("command", Value::Int(5))]), "no 'command' key in request");
        assert_eq!(reason(&[("command", Value::List(vec!["ping".into()]))]), "no 'command' key in request");
        assert_eq!(reason(&[("command", "fly".into())]), "unknown command \"fly\"");
        assert_eq!(reason(&[("command", "offer".into())]), "no call-id in request");
        assert_eq!(reason(&[("command", "offer".into()), ("call-id", Value::Int(1))]), "no call-id in request");
        assert_eq!(reason(&[("command", "offer".into()), ("call-id", "c".into())]), "no from-tag in request");
        let base = [("command", "answer".into()), ("call-id", "c".into()), ("from-tag", "a".into())];
        assert_eq!(reason(&base), "no SDP in request");
        let mut p = base.to_vec();
        p.push(("sdp", Value::dict()));
        assert_eq!(reason(&p), "no SDP in request");
        p.push(("to-tag", "a".into()));
        assert_eq!(reason(&p), "to-tag equals from-tag (\"a\")");
        assert_eq!(reason(&[("command", "query".into())]), "no call-id in request");
        assert_eq!(reason(&[("command", "delete".into())]), "no call-id in request");
        assert_eq!(
            reason(&[("command", "delete".into()), ("call-id", "c".into()), ("delete-delay", Value::dict())]),
            "delete-delay is not a number"
        );
        // the SDP's problems come after the keys'
        let mut p = base.to_vec();
        p.push(("sdp", "garbage".into()));
        assert!(reason(&p).starts_with("failed to parse SDP: "), "{}", reason(&p));
    }

    #[test]
    fn hostile_sizes_are_refused_before_any_state() {
        // an id over the limit, whatever the command (even an unknown one)
        let long = "x".repeat(17);
        for cmd in ["ping", "offer", "nonsense"] {
            assert_eq!(
                reason(&[("command", cmd.into()), ("via-branch", long.as_str().into())]),
                "via-branch is 17 bytes long, more than max-id-length (16)"
            );
        }
        // too many media sections
        let sdp = format!("{SDP}m=audio 4002 RTP/AVP 0\r\nm=audio 4004 RTP/AVP 0\r\n");
        let p = [
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", sdp.as_str().into()),
        ];
        assert_eq!(reason(&p), "SDP has 3 media sections, more than max-media-per-sdp (2)");
        // an oversize flags list decodes (flags are ignored, not stored per item twice)
        let many = Value::List((0..10_000).map(|i| format!("x-{i}").as_str().into()).collect());
        let p = [
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", SDP.into()),
            ("flags", many),
        ];
        assert!(decode(&req(&p)).is_ok());
        // DTLS transports decode (crate::dtls_sdp negotiates them)
        let sdp = SDP.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
        let p = [
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "a".into()),
            ("sdp", sdp.as_str().into()),
        ];
        assert!(decode(&req(&p)).is_ok());
    }
}
