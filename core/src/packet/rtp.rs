//! RTP fixed header (RFC 3550 §5.1), with the header validity checks of appendix A.1.

use super::Malformed;

/// A validated RTP packet: header fields read in place from the buffer.
#[derive(Debug, Clone, Copy)]
pub struct RtpPacket<T: AsRef<[u8]>> {
    buf: T,
    header_len: usize,
    payload_end: usize,
}

pub const FIXED_HEADER: usize = 12;

/// Validate the clear part of an RTP header (version, CSRC list, extension) and return
/// its length. SRTP packets are checked with this alone: their padding count is encrypted.
pub fn header_len(b: &[u8]) -> Result<usize, Malformed> {
    if b.len() < FIXED_HEADER {
        return Err(Malformed::TooShort);
    }
    if b[0] >> 6 != 2 {
        return Err(Malformed::BadVersion);
    }
    let cc = (b[0] & 0x0f) as usize;
    let mut hl = FIXED_HEADER + 4 * cc;
    if hl > b.len() {
        return Err(Malformed::BadCsrc);
    }
    if b[0] & 0x10 != 0 {
        if hl + 4 > b.len() {
            return Err(Malformed::BadExtension);
        }
        let words = u16::from_be_bytes([b[hl + 2], b[hl + 3]]) as usize;
        hl += 4 + 4 * words;
        if hl > b.len() {
            return Err(Malformed::BadExtension);
        }
    }
    Ok(hl)
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    /// Validate version, CSRC count, extension length and padding against the buffer.
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        let hl = header_len(b)?;
        let mut end = b.len();
        if b[0] & 0x20 != 0 {
            let pad = b[end - 1] as usize;
            if pad == 0 || hl + pad > end {
                return Err(Malformed::BadPadding);
            }
            end -= pad;
        }
        Ok(RtpPacket { buf, header_len: hl, payload_end: end })
    }
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn marker(&self) -> bool {
        self.b()[1] & 0x80 != 0
    }
    pub fn payload_type(&self) -> u8 {
        self.b()[1] & 0x7f
    }
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.b()[4], self.b()[5], self.b()[6], self.b()[7]])
    }
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.b()[8], self.b()[9], self.b()[10], self.b()[11]])
    }
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len..self.payload_end]
    }
}

/// Write a minimal RTP header (for generators and tests).
pub fn emit_header(out: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    out[0] = 0x80;
    out[1] = pt | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    // PCMU, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304, 4 payload bytes
    const PKT: [u8; 16] = [0x80, 0x00, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff];

    #[test]
    fn deconstruct() {
        let p = RtpPacket::new_checked(&PKT[..]).unwrap();
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.sequence(), 0x1234);
        assert_eq!(p.timestamp(), 0xdeadbeef);
        assert_eq!(p.ssrc(), 0x01020304);
        assert_eq!(p.payload(), &[0xff; 4]);
        assert!(!p.marker());
    }

    #[test]
    fn emit_roundtrip() {
        let mut b = [0u8; 12];
        emit_header(&mut b, 8, true, 7, 160, 42);
        let p = RtpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.payload_type(), p.marker(), p.sequence(), p.timestamp(), p.ssrc()), (8, true, 7, 160, 42));
    }

    #[test]
    fn csrc_extension_padding() {
        // cc=1, X=1 ext of 1 word, P=1 with 2 padding bytes
        let mut b = vec![0xb1, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        b.extend_from_slice(&[0, 0, 0, 5]); // csrc
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd]); // ext
        b.extend_from_slice(&[1, 2, 3, 0, 2]); // payload 1 2 3, padding 0 2
        let p = RtpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 12 + 4 + 8);
        assert_eq!(p.payload(), &[1, 2, 3]);
    }

    #[test]
    fn rejects() {
        assert_eq!(RtpPacket::new_checked(&PKT[..11]).unwrap_err(), Malformed::TooShort);
        let mut b = PKT;
        b[0] = 0x40;
        assert_eq!(RtpPacket::new_checked(&b[..]).unwrap_err(), Malformed::BadVersion);
        b[0] = 0x8f; // 15 CSRCs do not fit
        assert_eq!(RtpPacket::new_checked(&b[..]).unwrap_err(), Malformed::BadCsrc);
        b[0] = 0x90; // extension header runs past the end
        b[14] = 0xff;
        assert_eq!(RtpPacket::new_checked(&b[..]).unwrap_err(), Malformed::BadExtension);
        let mut b = PKT;
        b[0] = 0xa0;
        b[15] = 0; // padding count 0
        assert_eq!(RtpPacket::new_checked(&b[..]).unwrap_err(), Malformed::BadPadding);
        b[15] = 200; // more padding than payload
        assert_eq!(RtpPacket::new_checked(&b[..]).unwrap_err(), Malformed::BadPadding);
    }
}
