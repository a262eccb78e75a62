//! The pcap file format (libpcap 2.4, microsecond timestamps) with synthesised IP/UDP
//! headers, for recordings and live captures: pure, over byte buffers.
//!
//! (h-record's minimal copy behind the agreed signatures; the lead keeps one.)

use std::net::{IpAddr, SocketAddr};

/// Raw IP packets, no link layer (the IP version is in the first nibble).
pub const LINKTYPE_RAW: u32 = 101;

/// Longest packet a record keeps (the file header's snaplen).
pub const SNAPLEN: u32 = 65535;

/// The 24-byte file header, little-endian.
pub fn file_header(linktype: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone, sigfigs: 0
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&linktype.to_le_bytes());
    h
}

/// Append one record: the record header, then an IPv4 or IPv6 header (IPv6 when either
/// address is IPv6; IPv4-mapped addresses count as IPv4), a UDP header and the payload.
/// A payload too large for one UDP datagram is cut to fit (the record says so: its
/// original length is the full one).
pub fn write_record(out: &mut Vec<u8>, unix_us: u64, src: SocketAddr, dst: SocketAddr, udp_payload: &[u8]) {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (src, dst) = (canon(src), canon(dst));
    let v4 = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((s.octets(), d.octets())),
        _ => None,
    };
    let ip_len = if v4.is_some() { 20 } else { 40 };
    let max_payload = 65535 - 8 - if v4.is_some() { 20 } else { 0 };
    let payload = &udp_payload[..udp_payload.len().min(max_payload)];
    let udp_len = 8 + payload.len();
    let total = ip_len + udp_len;
    let caplen = total.min(SNAPLEN as usize);
    out.reserve(16 + caplen);
    out.extend_from_slice(&((unix_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((unix_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(caplen as u32).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    let start = out.len();
    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    match v4 {
        Some((s, d)) => {
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s);
            ip[16..20].copy_from_slice(&d);
            let c = !fold(sum(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&ip);
            // IPv4 UDP checksum 0: not computed (RFC 768)
        }
        None => {
            let six = |a: IpAddr| match a {
                IpAddr::V6(v) => v.octets(),
                IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            };
            let (s, d) = (six(src.ip()), six(dst.ip()));
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s);
            ip[24..40].copy_from_slice(&d);
            out.extend_from_slice(&ip);
            // mandatory over IPv6: pseudo-header, UDP header, payload
            let mut acc = sum(&s, 0);
            acc = sum(&d, acc);
            acc += udp_len as u64 + 17;
            acc = sum(&udp, acc);
            acc = sum(payload, acc);
            let c = match !fold(acc) {
                0 => 0xffff,
                c => c,
            };
            udp[6..8].copy_from_slice(&c.to_be_bytes());
        }
    }
    out.extend_from_slice(&udp);
    out.extend_from_slice(payload);
    out.truncate(start + caplen);
}

/// One's-complement sum of 16-bit big-endian words (an odd last byte padded with 0).
fn sum(b: &[u8], mut acc: u64) -> u64 {
    let mut it = b.chunks_exact(2);
    for w in &mut it {
        acc += u16::from_be_bytes([w[0], w[1]]) as u64;
    }
    if let [x] = it.remainder() {
        acc += (*x as u64) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_ipv4_record() {
        let h = file_header(LINKTYPE_RAW);
        assert_eq!(&h[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 101);
        let mut out = Vec::new();
        write_record(
            &mut out,
            1_700_000_000_123_456,
            "192.0.2.1:4000".parse().unwrap(),
            "10.0.0.1:30000".parse().unwrap(),
            b"hello",
        );
        assert_eq!(u32::from_le_bytes(out[0..4].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()), 33);
        let ip = &out[16..36];
        assert_eq!(fold(sum(ip, 0)), 0xffff, "a valid IPv4 header checksum");
        assert_eq!(&ip[12..16], &[192, 0, 2, 1]);
        assert_eq!(&out[36..38], &4000u16.to_be_bytes());
        assert_eq!(&out[44..], b"hello");
    }

    #[test]
    fn ipv6_record_has_a_valid_udp_checksum() {
        let mut out = Vec::new();
        write_record(
            &mut out,
            0,
            "[2001:db8::1]:4000".parse().unwrap(),
            "[2001:db8::2]:30000".parse().unwrap(),
            b"abc",
        );
        let pkt = &out[16..];
        assert_eq!(pkt.len(), 40 + 8 + 3);
        let mut acc = sum(&pkt[8..40], 0);
        acc += 11 + 17;
        acc = sum(&pkt[40..], acc);
        assert_eq!(fold(acc), 0xffff);
    }
}
