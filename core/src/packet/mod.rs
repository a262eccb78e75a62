//! Zero-copy views over RTP and RTCP packets, validated once, read in place.

pub mod demux;
pub mod rtcp;
pub mod rtp;

pub use demux::{classify, PacketClass};
pub use rtcp::{ReportBlock, RtcpCompound, RtcpReports, VoipMetricsBlock};
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
    pub const ALL: [Malformed; 7] = [
        Malformed::TooShort,
        Malformed::BadVersion,
        Malformed::BadPadding,
        Malformed::BadCsrc,
        Malformed::BadExtension,
        Malformed::BadRtcpLength,
        Malformed::BadRtcpType,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic stand-in for fuzz/fuzz_targets/rtp_rtcp.rs that always runs.
    #[test]
    fn random_and_mutated_datagrams_never_panic() {
        let mut rng = crate::test_support::Rng(0x2545f4914f6cdd1d);
        let mut rnd = || rng.next();
        let mut valid = [0u8; 40];
        rtp::emit_header(&mut valid, 0, false, 1, 2, 3);
        for _ in 0..200_000 {
            let len = (rnd() % 48) as usize;
            let mut b: Vec<u8> =
                if rnd() % 2 == 0 { valid[..len.min(40)].to_vec() } else { (0..len).map(|_| rnd() as u8).collect() };
            if !b.is_empty() {
                let i = (rnd() as usize) % b.len();
                b[i] = rnd() as u8;
            }
            if let Ok(p) = RtpPacket::new_checked(&b[..]) {
                assert!(p.header_len() + p.payload().len() <= b.len());
            }
            if let Ok(c) = RtcpCompound::new_checked(&b[..]) {
                assert!(c.count() >= 1);
            }
            let _ = is_rtcp(&b);
        }
    }
}
