//! Why an ng request was refused. Each variant's `Display` is the `error-reason` the
//! reply carries: the texts are rtpengine's where rtpengine has one ("Unknown call-id"),
//! and clients and tests match them, so they change only on purpose.

use std::fmt;
use std::net::SocketAddr;

use rules::addrpolicy::Denied;

use crate::ice_sdp::IceSdpError;
use crate::interface::PortError;
use crate::ng::flags::FlagsError;
use crate::ng::log_text;
use crate::sdes_negotiation::SdesError;
use crate::sdp::SdpError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NgError {
    /// The request has no `command`.
    NoCommand,
    /// A `command` relayd does not know (lower-cased as sent).
    UnknownCommand(String),
    /// An identifier longer than `max-id-length`.
    IdTooLong {
        key: &'static str,
        len: usize,
        max: usize,
    },
    /// A key the command needs is missing; the name as the reason spells it.
    Missing(&'static str),
    /// An answer without a `to-tag`.
    NoToTagInAnswer,
    /// `to-tag` equal to `from-tag` in the request.
    ToTagIsFromTag(String),
    /// The offer's or answer's two parties resolve to the same monologue.
    SameTags,
    Sdp(SdpError),
    Flags(FlagsError),
    TooManyMedia {
        n: usize,
        max: usize,
    },
    TooManyCalls {
        max: usize,
    },
    TooManyMonologues {
        n: usize,
        max: usize,
    },
    /// A section's DTLS attributes cannot be used (crate::dtls_sdp).
    Dtls(crate::dtls_sdp::DtlsSdpError),
    UnknownCallId(String),
    /// The data plane refused a forwarding rule of the call (an SRTP key it cannot use, a
    /// socket that is not open, ...): the request is refused, nothing is forwarded in plain.
    RuleRefused {
        local: std::net::SocketAddr,
        why: rules::dataplane::ApplyError,
    },
    UnknownFromTag(String),
    AnswerWithoutOffer,
    NoInterface,
    UnknownInterface(String),
    /// No port pool for the interface's address (a configuration bug).
    NoPortPool,
    Ports(PortError),
    /// A signalled media address the policy refuses (`rtcp`: named by a=rtcp).
    MediaRefused {
        addr: SocketAddr,
        denied: Denied,
        rtcp: bool,
    },
    Sdes(SdesError),
    /// A peer's ICE credential the relay cannot use (media section index, 0-based).
    Ice(usize, IceSdpError),
    /// A bug in handling the named command was contained (a caught panic).
    Internal(String),
    /// A recording command that cannot be carried out (no recording-dir, the recorder
    /// refused, too many taps on the call): why.
    Recording(String),
    /// The relay is draining (`relayctl drain`): no new calls (crate::persist).
    Draining,
}

impl fmt::Display for NgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NgError::NoCommand => f.write_str("no 'command' key in request"),
            NgError::UnknownCommand(c) => write!(f, "unknown command {:?}", log_text(c.as_bytes(), 40)),
            NgError::IdTooLong { key, len, max } => {
                write!(f, "{key} is {len} bytes long, more than max-id-length ({max})")
            }
            NgError::Missing(what) => write!(f, "no {what} in request"),
            NgError::NoToTagInAnswer => f.write_str("no to-tag in answer"),
            NgError::ToTagIsFromTag(t) => write!(f, "to-tag equals from-tag ({:?})", log_text(t.as_bytes(), 64)),
            NgError::SameTags => f.write_str("from-tag and to-tag are the same"),
            NgError::Sdp(e) => write!(f, "failed to parse SDP: {e}"),
            NgError::Flags(e) => e.fmt(f),
            NgError::TooManyMedia { n, max } => {
                write!(f, "SDP has {n} media sections, more than max-media-per-sdp ({max})")
            }
            NgError::TooManyCalls { max } => write!(f, "too many calls ({max}, max-calls)"),
            NgError::TooManyMonologues { n, max } => {
                write!(f, "call would have {n} monologues, more than max-monologues-per-call ({max})")
            }
            NgError::Dtls(e) => e.fmt(f),
            NgError::UnknownCallId(c) => write!(f, "Unknown call-id {c:?}"),
            NgError::RuleRefused { local, why } => write!(f, "cannot apply forwarding rule for {local}: {why}"),
            NgError::UnknownFromTag(t) => write!(f, "Unknown from-tag {t:?}"),
            NgError::AnswerWithoutOffer => f.write_str("answer without a preceding offer"),
            NgError::NoInterface => f.write_str("no interface configured"),
            NgError::UnknownInterface(name) => write!(f, "unknown interface {name:?}"),
            NgError::NoPortPool => f.write_str("no port pool for interface"),
            NgError::Ports(e) => e.fmt(f),
            NgError::MediaRefused { addr, denied, rtcp: false } => write!(f, "media address {addr} refused: {denied}"),
            NgError::MediaRefused { addr, denied, rtcp: true } => {
                write!(f, "media address {addr} refused: {denied} (a=rtcp)")
            }
            NgError::Sdes(e) => e.fmt(f),
            NgError::Ice(i, e) => write!(f, "media section {}: {e}", i + 1),
            NgError::Internal(cmd) => write!(f, "internal error handling {cmd}"),
            NgError::Recording(why) => f.write_str(why),
            NgError::Draining => f.write_str("relay is draining: no new calls (try another relay)"),
        }
    }
}

impl std::error::Error for NgError {}

impl From<SdpError> for NgError {
    fn from(e: SdpError) -> Self {
        NgError::Sdp(e)
    }
}

impl From<FlagsError> for NgError {
    fn from(e: FlagsError) -> Self {
        NgError::Flags(e)
    }
}

impl From<PortError> for NgError {
    fn from(e: PortError) -> Self {
        NgError::Ports(e)
    }
}

impl From<crate::dtls_sdp::DtlsSdpError> for NgError {
    fn from(e: crate::dtls_sdp::DtlsSdpError) -> Self {
        NgError::Dtls(e)
    }
}

impl From<SdesError> for NgError {
    fn from(e: SdesError) -> Self {
        NgError::Sdes(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons clients match on, spelled out once.
    #[test]
    fn reasons_are_rtpengines_texts() {
        assert_eq!(NgError::UnknownCallId("c1".into()).to_string(), "Unknown call-id \"c1\"");
        assert_eq!(NgError::UnknownFromTag("a".into()).to_string(), "Unknown from-tag \"a\"");
        assert_eq!(NgError::Missing("call-id").to_string(), "no call-id in request");
        assert_eq!(NgError::NoCommand.to_string(), "no 'command' key in request");
        assert_eq!(NgError::UnknownCommand("x\ny".into()).to_string(), "unknown command \"x\\\\ny\"");
        assert_eq!(
            NgError::IdTooLong { key: "call-id", len: 300, max: 256 }.to_string(),
            "call-id is 300 bytes long, more than max-id-length (256)"
        );
        assert_eq!(NgError::Internal("offer".into()).to_string(), "internal error handling offer");
    }
}
