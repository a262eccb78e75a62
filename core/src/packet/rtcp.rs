//! RTCP compound packets (RFC 3550 §6.1), walked safely with the checks of appendix A.2.

use super::Malformed;

/// A validated RTCP compound packet: every sub-packet is version 2, has an RTCP packet
/// type, and the length fields add up exactly to the datagram.
#[derive(Debug, Clone, Copy)]
pub struct RtcpCompound<T: AsRef<[u8]>> {
    buf: T,
    count: usize,
}

impl<T: AsRef<[u8]>> RtcpCompound<T> {
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        if b.len() < 4 {
            return Err(Malformed::TooShort);
        }
        let mut off = 0;
        let mut count = 0;
        while off < b.len() {
            if b.len() - off < 4 {
                return Err(Malformed::BadRtcpLength);
            }
            let h = &b[off..];
            if h[0] >> 6 != 2 {
                return Err(Malformed::BadVersion);
            }
            if !(192..=223).contains(&h[1]) {
                return Err(Malformed::BadRtcpType);
            }
            let len = 4 * (u16::from_be_bytes([h[2], h[3]]) as usize + 1);
            if len > b.len() - off {
                return Err(Malformed::BadRtcpLength);
            }
            // padding is only allowed on the last packet
            if h[0] & 0x20 != 0 && off + len != b.len() {
                return Err(Malformed::BadPadding);
            }
            off += len;
            count += 1;
        }
        Ok(RtcpCompound { buf, count })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn first_type(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// SSRC of the sender of the first packet (SR/RR).
    pub fn sender_ssrc(&self) -> Option<u32> {
        let b = self.buf.as_ref();
        (b.len() >= 8).then(|| u32::from_be_bytes([b[4], b[5], b[6], b[7]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RR with no report blocks (8 bytes) + SDES with one CNAME chunk (12 bytes)
    const RR_SDES: [u8; 20] = [
        0x80, 201, 0, 1, 0, 0, 0, 7, // RR, length 1 word, ssrc 7
        0x81, 202, 0, 2, 0, 0, 0, 7, 1, 1, b'x', 0, // SDES, 1 chunk, CNAME "x", end
    ];

    #[test]
    fn compound_walk() {
        let c = RtcpCompound::new_checked(&RR_SDES[..]).unwrap();
        assert_eq!(c.count(), 2);
        assert_eq!(c.first_type(), 201);
        assert_eq!(c.sender_ssrc(), Some(7));
        assert!(super::super::is_rtcp(&RR_SDES));
    }

    #[test]
    fn rejects() {
        assert_eq!(RtcpCompound::new_checked(&RR_SDES[..3]).unwrap_err(), Malformed::TooShort);
        assert_eq!(RtcpCompound::new_checked(&RR_SDES[..19]).unwrap_err(), Malformed::BadRtcpLength);
        let mut b = RR_SDES;
        b[3] = 200; // length runs past the end
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadRtcpLength);
        let mut b = RR_SDES;
        b[9] = 100;
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadRtcpType);
        let mut b = RR_SDES;
        b[0] = 0xa0; // padding on the first of two
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadPadding);
        let mut b = RR_SDES;
        b[8] = 0x01;
        assert_eq!(RtcpCompound::new_checked(&b[..]).unwrap_err(), Malformed::BadVersion);
    }
}
