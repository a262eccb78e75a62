//! The pcap file format (libpcap's classic format, microsecond timestamps) for live
//! capture and recording: a file header, then one record per UDP datagram with an IPv4 or
//! IPv6 and UDP header made up around the payload (LINKTYPE_RAW), so Wireshark and tshark
//! decode the addresses and ports exactly as the relay saw them.
//!
//! Pure: bytes in, bytes out, time as an argument. The data plane hands us UDP payloads
//! and socket addresses, never the IP headers it received, so the headers here are
//! synthesised: TTL 64, no options, DF set, IPv4 identification 0. Checksums are right
//! (IPv4 header and UDP, both families), so Wireshark's checksum validation (off by
//! default) stays quiet when someone turns it on.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The packet starts with an IPv4 or IPv6 header, no link layer (tcpdump.org/linktypes).
pub const LINKTYPE_RAW: u32 = 101;

/// Largest UDP payload kept whole: what fits in an IPv4 datagram (65535 − 20 − 8). A
/// longer payload (only possible over IPv6 jumbograms, which the relay never receives)
/// is cut there and the record says how long it was.
pub const MAX_PAYLOAD: usize = 65_507;

/// The snapshot length the file header announces: libpcap's largest, above every record
/// we write (IPv6 + UDP + [`MAX_PAYLOAD`]), so no reader thinks we cut a packet.
pub const SNAPLEN: u32 = 262_144;

/// Bytes of a record header (ts_sec, ts_usec, incl_len, orig_len).
pub const RECORD_HEADER_LEN: usize = 16;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;

/// The 24-byte file header: magic for microsecond timestamps, version 2.4, UTC, the
/// snapshot length and the link type. Little-endian (readers detect the byte order
/// from the magic).
pub fn file_header(linktype: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs: 0
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&linktype.to_le_bytes());
    h
}

/// Bytes [`write_record`] appends for a payload of `len` bytes between these addresses.
pub fn record_len(src: SocketAddr, dst: SocketAddr, len: usize) -> usize {
    let ip = if both_v4(src, dst).is_some() { IPV4_LEN } else { IPV6_LEN };
    RECORD_HEADER_LEN + ip + UDP_LEN + len.min(MAX_PAYLOAD)
}

fn both_v4(src: SocketAddr, dst: SocketAddr) -> Option<([u8; 4], [u8; 4])> {
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((s.octets(), d.octets())),
        _ => None,
    }
}

/// IPv6 form of an address; IPv4 as an IPv4-mapped address (only when the other end is
/// IPv6, which a relay socket never pairs with, but a record must still be well formed).
fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// One's-complement sum of big-endian 16-bit words (an odd last byte padded with 0).
fn sum16(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Append one record: record header (`unix_us` as seconds and microseconds), an IPv4
/// header when both addresses are IPv4 (else IPv6), a UDP header, the payload (at most
/// [`MAX_PAYLOAD`] bytes of it).
pub fn write_record(out: &mut Vec<u8>, unix_us: u64, src: SocketAddr, dst: SocketAddr, udp_payload: &[u8]) {
    let kept = &udp_payload[..udp_payload.len().min(MAX_PAYLOAD)];
    let v4 = both_v4(src, dst);
    let ip_len = if v4.is_some() { IPV4_LEN } else { IPV6_LEN };
    let incl = ip_len + UDP_LEN + kept.len();
    let orig = ip_len + UDP_LEN + udp_payload.len();
    out.reserve(RECORD_HEADER_LEN + incl);
    out.extend_from_slice(&((unix_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((unix_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(incl as u32).to_le_bytes());
    out.extend_from_slice(&u32::try_from(orig).unwrap_or(u32::MAX).to_le_bytes());

    // UDP length and checksum: the pseudo-header differs per family, the rest not
    let udp_len = u16::try_from(UDP_LEN + udp_payload.len()).unwrap_or(u16::MAX);
    let (sp, dp) = (src.port(), dst.port());
    let mut udp_sum = sum16(u64::from(sp) + u64::from(dp) + u64::from(udp_len), udp_payload);
    match v4 {
        Some((s, d)) => {
            let total = u16::try_from(IPV4_LEN + UDP_LEN + udp_payload.len()).unwrap_or(u16::MAX);
            let mut ip = [0u8; IPV4_LEN];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s);
            ip[16..20].copy_from_slice(&d);
            let c = fold(sum16(0, &ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&ip);
            udp_sum = sum16(udp_sum, &s);
            udp_sum = sum16(udp_sum, &d);
            udp_sum += 17 + u64::from(udp_len);
        }
        None => {
            let (s, d) = (v6(src.ip()).octets(), v6(dst.ip()).octets());
            let mut ip = [0u8; IPV6_LEN];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s);
            ip[24..40].copy_from_slice(&d);
            out.extend_from_slice(&ip);
            udp_sum = sum16(udp_sum, &s);
            udp_sum = sum16(udp_sum, &d);
            udp_sum += 17 + u64::from(udp_len);
        }
    }
    let mut c = fold(udp_sum);
    if udp_payload.len() > MAX_PAYLOAD && v4.is_some() {
        c = 0; // cannot be right in a datagram that cannot exist; "no checksum"
    } else if c == 0 {
        c = 0xffff; // RFC 768: a computed 0 is sent as all ones
    }
    out.extend_from_slice(&sp.to_be_bytes());
    out.extend_from_slice(&dp.to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&c.to_be_bytes());
    out.extend_from_slice(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn file_header_is_libpcaps() {
        // what `tcpdump -w` writes on a little-endian machine for -y RAW, snaplen 262144
        let want = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 101, 0, 0, 0];
        assert_eq!(file_header(LINKTYPE_RAW), want);
    }

    #[test]
    fn ipv4_udp_record_byte_for_byte() {
        let mut out = Vec::new();
        let payload = [0x80, 0x00, 0x00, 0x01, 0xde, 0xad];
        write_record(&mut out, 1_700_000_000_123_456, sa("192.0.2.1:5000"), sa("198.51.100.7:30000"), &payload);
        let want: Vec<u8> = [
            // record header: 1700000000 s, 123456 µs, 34 bytes kept of 34
            &[0x00, 0xf1, 0x53, 0x65, 0x40, 0xe2, 0x01, 0x00, 34, 0, 0, 0, 34, 0, 0, 0][..],
            // IPv4: 45 00 len=34 id=0 DF ttl=64 udp csum src dst
            &[0x45, 0x00, 0x00, 34, 0x00, 0x00, 0x40, 0x00, 64, 17, 0x00, 0x00, 192, 0, 2, 1, 198, 51, 100, 7],
            // UDP: 5000 -> 30000, len 14, checksum
            &[0x13, 0x88, 0x75, 0x30, 0x00, 14, 0x00, 0x00],
            &payload,
        ]
        .concat();
        assert_eq!(out.len(), want.len());
        assert_eq!(out.len(), record_len(sa("192.0.2.1:5000"), sa("198.51.100.7:30000"), payload.len()));
        // checksums are checked by verifying, not copied from the code under test
        assert_eq!(out[..26], want[..26]);
        assert_eq!(out[28..42], want[28..42]);
        assert_eq!(out[44..], want[44..]);
        assert_eq!(fold(sum16(0, &out[16..36])), 0, "IPv4 header checksum verifies");
        let mut pseudo = out[28..36].to_vec();
        pseudo.extend_from_slice(&[0, 17, 0, 14]);
        assert_eq!(fold(sum16(sum16(0, &pseudo), &out[36..])), 0, "UDP checksum verifies");
        // the IPv4 header checksum of a well-known header (Wikipedia's example)
        let h =
            [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7];
        assert_eq!(fold(sum16(0, &h)), 0xb861);
    }

    #[test]
    fn ipv6_udp_record_has_the_mandatory_checksum() {
        let mut out = Vec::new();
        let payload = [0x80, 0x08, 0x00, 0x02, 0x01]; // odd length: the padding byte counts
        write_record(&mut out, 5_000_001, sa("[2001:db8::1]:40000"), sa("[2001:db8::2]:30002"), &payload);
        assert_eq!(out.len(), 16 + 40 + 8 + 5);
        assert_eq!(&out[0..16], &[5, 0, 0, 0, 1, 0, 0, 0, 53, 0, 0, 0, 53, 0, 0, 0]);
        let ip = &out[16..56];
        assert_eq!(&ip[0..8], &[0x60, 0, 0, 0, 0, 13, 17, 64]);
        assert_eq!(&ip[8..24], &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&ip[24..40], &"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        let udp = &out[56..64];
        assert_eq!(&udp[0..6], &[0x9c, 0x40, 0x75, 0x32, 0, 13]);
        assert_ne!(&udp[6..8], &[0, 0], "IPv6 forbids a zero UDP checksum");
        let mut pseudo = ip[8..40].to_vec();
        pseudo.extend_from_slice(&[0, 0, 0, 13, 0, 0, 0, 17]);
        assert_eq!(fold(sum16(sum16(0, &pseudo), &out[56..])), 0, "UDP checksum verifies");
        // an IPv4 peer next to an IPv6 address is written as IPv4-mapped IPv6
        let mut m = Vec::new();
        write_record(&mut m, 0, sa("192.0.2.1:1"), sa("[2001:db8::2]:2"), &[]);
        assert_eq!(m[16] >> 4, 6);
        assert_eq!(&m[24..40], &"::ffff:192.0.2.1".parse::<Ipv6Addr>().unwrap().octets());
    }

    #[test]
    fn largest_payload_is_whole_and_longer_ones_are_cut_and_say_so() {
        let big = vec![0x55u8; MAX_PAYLOAD];
        let mut out = Vec::new();
        write_record(&mut out, 0, sa("10.0.0.1:1"), sa("10.0.0.2:2"), &big);
        assert_eq!(out.len(), 16 + 20 + 8 + MAX_PAYLOAD);
        assert_eq!(&out[18..20], &65535u16.to_be_bytes());
        assert_eq!(
            u32::from_le_bytes(out[8..12].try_into().unwrap()),
            u32::from_le_bytes(out[12..16].try_into().unwrap())
        );
        let huge = vec![1u8; 70_000];
        let mut out = Vec::new();
        write_record(&mut out, 0, sa("10.0.0.1:1"), sa("10.0.0.2:2"), &huge);
        assert_eq!(out.len(), record_len(sa("10.0.0.1:1"), sa("10.0.0.2:2"), huge.len()));
        assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()) as usize, 28 + MAX_PAYLOAD);
        assert_eq!(u32::from_le_bytes(out[12..16].try_into().unwrap()) as usize, 28 + 70_000);
        let mut out = Vec::new();
        write_record(&mut out, 0, sa("[::1]:1"), sa("[::1]:2"), &huge);
        assert_eq!(out.len(), 16 + 48 + MAX_PAYLOAD);
    }
}
