//! UDP headers (RFC 768) and their checksum over the IPv4 or IPv6 pseudo-header.

use super::{checksum, get_u16, set_u16, Error, IpProtocol};

pub mod field {
    use crate::wire::{Field, Rest};
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: Rest = 8..;
}

pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A computed checksum as it goes on the wire: 0 there means "not computed", so a sum
/// that comes out as 0 is sent as its other one's-complement form, `ffff` (RFC 768).
pub fn checksum_on_wire(computed: u16) -> u16 {
    if computed == 0 {
        0xffff
    } else {
        computed
    }
}

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks: the getters panic if the buffer is shorter than the header.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// [`Error::Truncated`] when the buffer does not hold the header, [`Error::BadLength`]
    /// when the length field is under the header's or past the buffer's end.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = self.len() as usize;
        if field_len < HEADER_LEN || field_len > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Header and payload, in bytes.
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the datagram sums to all ones over the pseudo-header of `src` and `dst`
    /// (both 4 or both 16 bytes). A zero checksum (none sent, IPv4 only) does not verify.
    pub fn verify_checksum(&self, src: &[u8], dst: &[u8]) -> bool {
        let len = self.len() as usize;
        let sum = checksum::pseudo_header(src, dst, IpProtocol::UDP, len);
        checksum::fold(checksum::add(sum, &self.buffer.as_ref()[..len])) == 0xffff
    }

    /// As long as the length field says. Needs [`check_len`](Packet::check_len).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    pub fn set_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Computes the checksum over the pseudo-header of `src` and `dst` (both 4 or both 16
    /// bytes), this header and the payload the length field covers.
    pub fn fill_checksum(&mut self, src: &[u8], dst: &[u8]) {
        self.set_checksum(0);
        let len = self.len() as usize;
        let sum = checksum::pseudo_header(src, dst, IpProtocol::UDP, len);
        let c = !checksum::fold(checksum::add(sum, &self.buffer.as_ref()[..len]));
        self.set_checksum(checksum_on_wire(c));
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// A UDP header as values; the checksum is computed when emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { src_port: p.src_port(), dst_port: p.dst_port() }
    }

    /// Writes the header for the `payload_len` bytes already after it, with the checksum
    /// over the pseudo-header of `src` and `dst`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>, payload_len: usize, src: &[u8], dst: &[u8]) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len((HEADER_LEN + payload_len) as u16);
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captured::{UDP4, UDP6, VLAN_UDP4};

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [192, 0, 2, 2];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&UDP4[34..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len(), p.checksum()), (4000, 5000, 19, 0xbce2));
        assert_eq!(p.payload(), b"hello relay");
        assert!(p.verify_checksum(&SRC4, &DST4));
        assert!(!p.verify_checksum(&DST4, &[192, 0, 2, 3]));
        let v = Packet::new_checked(&VLAN_UDP4[38..]).unwrap();
        assert_eq!((Repr::parse(&v), v.payload()), (Repr { src_port: 4002, dst_port: 5002 }, &b"tagged"[..]));
        assert!(v.verify_checksum(&[198, 51, 100, 1], &[198, 51, 100, 2]));
    }

    #[test]
    fn emit_matches_the_captures() {
        let mut buf = UDP4;
        buf[34..42].fill(0xee);
        Repr { src_port: 4000, dst_port: 5000 }.emit(&mut Packet::new_unchecked(&mut buf[34..]), 11, &SRC4, &DST4);
        assert_eq!(buf, UDP4);
        let mut buf6 = UDP6;
        buf6[54..62].fill(0xee);
        let (s, d) = (&UDP6[22..38], &UDP6[38..54]);
        Repr { src_port: 4004, dst_port: 5004 }.emit(&mut Packet::new_unchecked(&mut buf6[54..]), 10, s, d);
        assert_eq!(buf6, UDP6);
    }

    #[test]
    fn a_zero_sum_goes_out_as_ffff() {
        assert_eq!(checksum_on_wire(0), 0xffff);
        assert_eq!(checksum_on_wire(0x1234), 0x1234);
        // ports 1 and 2, length 10, a payload word making the sum all ones (pseudo-header
        // of zero addresses: 17 + 10): the checksum comes out as 0
        let mut b = [0, 1, 0, 2, 0, 10, 0xee, 0xee, 0xff, 0xff - 40];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum(&[0; 4], &[0; 4]);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&[0; 4], &[0; 4]));
    }

    #[test]
    fn checks_lengths() {
        assert_eq!(Packet::new_checked(&UDP4[34..41]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&UDP4[34..52]).err(), Some(Error::BadLength));
        let mut b = UDP4[34..].to_vec();
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadLength));
    }
}
