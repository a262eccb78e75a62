//! The Internet checksum (RFC 1071): the one's-complement sum of big-endian 16-bit words,
//! over a header (IPv4) or over a pseudo-header and the datagram (UDP), and its
//! incremental update when a few header words change (RFC 1624), which spares a relay the
//! pass over the payload when it only readdresses a packet.
//!
//! Sums are carried unfolded in a `u32` between calls; [`fold`] brings one to 16 bits, and
//! a checksum field holds `!fold(sum)`.

use super::IpProtocol;

/// Adds `data` to `sum` as big-endian 16-bit words (an odd tail padded with zero).
#[inline]
pub fn add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        // keep carries from overflowing on long inputs
        if sum & 0x8000_0000 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        sum = sum.wrapping_add((*b as u32) << 8);
    }
    sum
}

/// Folds the carries of `sum` back in: the one's-complement sum in 16 bits.
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of the pseudo-header the UDP (and TCP) checksum covers: source and destination
/// address (4 bytes each for IPv4, 16 for IPv6), protocol and the transport length.
#[inline]
pub fn pseudo_header(src: &[u8], dst: &[u8], protocol: IpProtocol, length: usize) -> u32 {
    add(add(0, src), dst) + protocol.0 as u32 + length as u32
}

/// An incremental checksum update (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`): start from
/// the field's value, [`replace`](Update::replace) every changed region, [`finish`](Update::finish).
#[derive(Debug, Clone, Copy)]
pub struct Update(u32);

impl Update {
    pub fn new(check: u16) -> Update {
        Update(!check as u32)
    }

    /// The 16-bit-aligned bytes `old` became `new` (same length, header-sized: under
    /// 32 KiB, so the sum cannot overflow before the fold at the end).
    #[inline]
    pub fn replace(&mut self, old: &[u8], new: &[u8]) {
        let mut sum = self.0;
        for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
            sum += !u16::from_be_bytes([o[0], o[1]]) as u32;
            sum += u16::from_be_bytes([n[0], n[1]]) as u32;
        }
        self.0 = (sum & 0xffff) + (sum >> 16);
    }

    /// The new value of the checksum field.
    pub fn finish(self) -> u16 {
        !fold(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captured::UDP4;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: these bytes sum to ddf2 (folded)
        assert_eq!(fold(add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])), 0xddf2);
    }

    #[test]
    fn odd_tail_is_padded_with_zero() {
        assert_eq!(fold(add(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: HC = dd2f, m 5555 -> 3285 gives 0000 (eqn. 3), not ffff
        let mut u = Update::new(0xdd2f);
        u.replace(&[0x55, 0x55], &[0x32, 0x85]);
        assert_eq!(u.finish(), 0x0000);
    }

    #[test]
    fn captured_ipv4_and_udp_checksums_verify() {
        let ip = &UDP4[14..34];
        assert_eq!(fold(add(0, ip)), 0xffff, "IPv4 header sums to all ones");
        let udp = &UDP4[34..];
        let sum = pseudo_header(&ip[12..16], &ip[16..20], IpProtocol::UDP, udp.len());
        assert_eq!(fold(add(sum, udp)), 0xffff, "UDP over pseudo-header sums to all ones");
    }

    #[test]
    fn incremental_update_equals_a_fresh_sum() {
        let mut ip: [u8; 20] = UDP4[14..34].try_into().unwrap();
        let mut u = Update::new(u16::from_be_bytes([ip[10], ip[11]]));
        let old = ip;
        ip[8] = 17; // TTL
        ip[12..16].copy_from_slice(&[10, 9, 8, 7]);
        u.replace(&old[8..10], &ip[8..10]);
        u.replace(&old[12..16], &ip[12..16]);
        let incremental = u.finish();
        ip[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(incremental, !fold(add(0, &ip)));
    }
}
