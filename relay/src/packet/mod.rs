//! Zero-copy views over RTP and RTCP packets, validated once, read in place.

pub mod rtcp;
pub mod rtp;

pub use rtcp::RtcpCompound;
pub use rtp::RtpPacket;

/// Why a datagram failed validation (each is a counted drop reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    TooShort,
    BadVersion,
    BadPadding,
    BadCsrc,
    BadExtension,
    BadRtcpLength,
    BadRtcpType,
}

impl Malformed {
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::TooShort => "too-short",
            Malformed::BadVersion => "bad-version",
            Malformed::BadPadding => "bad-padding",
            Malformed::BadCsrc => "bad-csrc",
            Malformed::BadExtension => "bad-extension",
            Malformed::BadRtcpLength => "bad-rtcp-length",
            Malformed::BadRtcpType => "bad-rtcp-type",
        }
    }
}

/// RFC 5761 §4: on a muxed port, a second byte of 192..=223 (payload types 64..=95 with
/// the marker bit) is RTCP.
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && (192..=223).contains(&buf[1])
}
