//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::{checksum, get_u16, set_u16, Error, IpProtocol};

pub mod field {
    use crate::wire::Field;
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP (high six bits) and ECN: the former "type of service" byte.
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (reserved, don't fragment, more fragments) and the fragment offset.
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// The header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const DONT_FRAG: u16 = 0x4000;
const MORE_FRAGS: u16 = 0x2000;
const FRAG_OFFSET: u16 = 0x1fff;

/// A view of an IPv4 packet.
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

    /// [`Error::Truncated`] when the buffer does not hold the fixed header;
    /// [`Error::BadLength`] when the header length is under 20 bytes or the total length
    /// is under the header length or past the buffer's end. The buffer may be longer than
    /// the total length (Ethernet pads short frames).
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let (hl, total) = (self.header_len() as usize, self.total_len() as usize);
        if hl < HEADER_LEN || total < hl || total > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// In bytes (with options).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Header and payload, in bytes.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & DONT_FRAG != 0
    }

    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & MORE_FRAGS != 0
    }

    /// In 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET
    }

    /// A piece of a larger datagram: more fragments follow, or this one is not the first.
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & (MORE_FRAGS | FRAG_OFFSET) != 0
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::SRC_ADDR].try_into().unwrap();
        Ipv4Addr::from(b)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::DST_ADDR].try_into().unwrap();
        Ipv4Addr::from(b)
    }

    /// The header (with options) sums to all ones.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len() as usize];
        checksum::fold(checksum::add(0, header)) == 0xffff
    }

    /// From the end of the header to the total length (padding after it excluded).
    /// Needs [`check_len`](Packet::check_len) to have passed.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len() as usize..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// In bytes, a multiple of 4.
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, id);
    }

    /// Clears the flags and the fragment offset: a whole datagram that may be fragmented.
    pub fn clear_flags(&mut self) {
        set_u16(self.buffer.as_mut(), field::FLG_OFF, 0);
    }

    pub fn set_dont_frag(&mut self, on: bool) {
        let w = get_u16(self.buffer.as_ref(), field::FLG_OFF) & !DONT_FRAG;
        set_u16(self.buffer.as_mut(), field::FLG_OFF, w | if on { DONT_FRAG } else { 0 });
    }

    pub fn set_hop_limit(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.0;
    }

    pub fn set_checksum(&mut self, c: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes the header checksum over the header as it stands.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header = &self.buffer.as_ref()[..self.header_len() as usize];
        let c = !checksum::fold(checksum::add(0, header));
        self.set_checksum(c);
    }

    /// Readdresses the packet: DSCP/ECN, TTL and both addresses, with the header checksum
    /// updated for just those words (RFC 1624) instead of summed again.
    pub fn readdress(&mut self, dscp_ecn: u8, ttl: u8, src: Ipv4Addr, dst: Ipv4Addr) {
        // the words that change: version/IHL + DSCP/ECN, TTL + protocol, the addresses
        let words = |b: &[u8]| {
            let mut w = [0u8; 12];
            w[0..2].copy_from_slice(&b[field::VER_IHL..field::DSCP_ECN + 1]);
            w[2..4].copy_from_slice(&b[field::TTL..field::PROTOCOL + 1]);
            w[4..12].copy_from_slice(&b[field::SRC_ADDR.start..field::DST_ADDR.end]);
            w
        };
        let old = words(self.buffer.as_ref());
        self.set_dscp_ecn(dscp_ecn);
        self.set_hop_limit(ttl);
        self.set_src_addr(src);
        self.set_dst_addr(dst);
        let mut u = checksum::Update::new(self.checksum());
        u.replace(&old, &words(self.buffer.as_ref()));
        self.set_checksum(u.finish());
    }

    /// From the end of the header to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len() as usize, self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// An IPv4 header without options, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub dscp_ecn: u8,
}

impl Repr {
    /// A checked packet ([`Packet::new_checked`]) that is a whole IPv4 datagram without
    /// options. The checksum is not verified: a relay forwards what the host accepted.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Error> {
        if p.version() != 4 || p.header_len() as usize != HEADER_LEN || p.is_fragment() {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - HEADER_LEN,
            hop_limit: p.hop_limit(),
            dscp_ecn: p.dscp_ecn(),
        })
    }

    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes every byte of the header, identification 0 with don't-fragment set (RFC
    /// 6864: an atomic datagram needs no identification), and its checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version(4);
        p.set_header_len(HEADER_LEN as u8);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(0);
        p.clear_flags();
        p.set_dont_frag(true);
        p.set_hop_limit(self.hop_limit);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captured::{UDP4, VLAN_UDP4};

    fn captured() -> &'static [u8] {
        &UDP4[14..]
    }

    fn repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(192, 0, 2, 2),
            protocol: IpProtocol::UDP,
            payload_len: 19,
            hop_limit: 64,
            dscp_ecn: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(captured()).unwrap();
        assert_eq!((p.version(), p.header_len(), p.dscp_ecn(), p.total_len()), (4, 20, 0, 39));
        assert_eq!((p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset()), (0x1372, true, false, 0));
        assert_eq!((p.hop_limit(), p.protocol(), p.checksum()), (64, IpProtocol::UDP, 0xa350));
        assert_eq!((p.src_addr(), p.dst_addr()), (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)));
        assert!(p.verify_checksum());
        assert!(!p.is_fragment());
        assert_eq!(p.payload(), &captured()[20..]);
        assert_eq!(Repr::parse(&p), Ok(repr()));
        let v = Packet::new_checked(&VLAN_UDP4[18..]).unwrap();
        assert_eq!((v.dscp_ecn(), v.checksum()), (0xb8, 0xc962));
        assert!(v.verify_checksum());
    }

    #[test]
    fn emit_matches_the_capture() {
        let mut buf = UDP4;
        buf[14..34].fill(0xee);
        let mut p = Packet::new_unchecked(&mut buf[14..]);
        repr().emit(&mut p);
        assert!(p.verify_checksum());
        // our datagrams carry id 0; the capture's sender counted: the same header otherwise
        p.set_ident(0x1372);
        p.fill_checksum();
        assert_eq!(buf, UDP4);
    }

    #[test]
    fn readdress_updates_the_checksum_incrementally() {
        let mut buf = UDP4;
        let mut p = Packet::new_unchecked(&mut buf[14..]);
        let (s, d) = (Ipv4Addr::new(10, 255, 0, 1), Ipv4Addr::new(172, 16, 9, 200));
        p.readdress(0xb8, 63, s, d);
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(incremental, p.checksum());
        assert_eq!((p.dscp_ecn(), p.hop_limit(), p.src_addr(), p.dst_addr()), (0xb8, 63, s, d));
    }

    #[test]
    fn checks_lengths() {
        assert_eq!(Packet::new_checked(&captured()[..19]).err(), Some(Error::Truncated));
        let mut b = captured().to_vec();
        b[3] = 19; // total length under the header
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadLength));
        b[3] = 40; // past the buffer
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadLength));
        b[3] = 39;
        b[0] = 0x44; // IHL 4
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::BadLength));
        b[0] = 0x46; // options: fine for the view, not for the Repr
        assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()), Err(Error::Unsupported));
        let mut padded = captured().to_vec();
        padded.extend_from_slice(&[0; 7]);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload(), &captured()[20..]);
    }

    #[test]
    fn fragments_are_recognised() {
        let mut b = captured().to_vec();
        b[6] = 0x20; // more fragments
        assert!(Packet::new_unchecked(&b[..]).is_fragment());
        b[6] = 0x40;
        b[7] = 1; // offset 8
        assert!(Packet::new_unchecked(&b[..]).is_fragment());
    }
}
