//! Ethernet / IPv4 / IPv6 / UDP framing for the AF_XDP backend, sans-IO: parse what the
//! XDP program steered to us, and rewrite it in place for the egress leg.
//!
//! Two ways out:
//! - [`rewrite_in_place`]: same address family and VLAN framing, payload untouched (plain
//!   RTP relaying): only addresses, ports, DSCP and TTL change, and both checksums are
//!   updated incrementally (RFC 1624) -- no pass over the payload.
//! - [`write_headers`]: everything else (SRTP changed the payload or its length, IPv4 <->
//!   IPv6 bridging, VLAN added or removed): fresh headers are written in front of the
//!   payload, which never moves, and the UDP checksum is computed over the payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
pub const UDP_HLEN: usize = 8;
/// The most header bytes [`write_headers`] puts in front of a payload.
pub const MAX_HEADERS: usize = ETH_HLEN + VLAN_HLEN + IPV6_HLEN + UDP_HLEN;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;
pub const TTL: u8 = 64;

/// Why a frame is not a UDP datagram we can relay. The XDP program passes all of these to
/// the kernel, so seeing one here means the program and this parser disagree, or the
/// frame was damaged in between: the worker drops it and counts the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Truncated,
    NotIp,
    NotUdp,
    IpOptions,
    Fragment,
    BadLength,
}

impl FrameError {
    pub const ALL: [FrameError; 6] = [
        FrameError::Truncated,
        FrameError::NotIp,
        FrameError::NotUdp,
        FrameError::IpOptions,
        FrameError::Fragment,
        FrameError::BadLength,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::Truncated => "frame-truncated",
            FrameError::NotIp => "frame-not-ip",
            FrameError::NotUdp => "frame-not-udp",
            FrameError::IpOptions => "frame-ip-options",
            FrameError::Fragment => "frame-fragment",
            FrameError::BadLength => "frame-bad-length",
        }
    }
}

/// A parsed frame: offsets into it and the datagram's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    /// 802.1Q/802.1ad tag control information, if the frame was tagged.
    pub vlan: Option<u16>,
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the UDP payload.
    pub payload: usize,
    pub payload_len: usize,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn parse(frame: &[u8]) -> Result<Ingress, FrameError> {
    if frame.len() < ETH_HLEN {
        return Err(FrameError::Truncated);
    }
    let mut proto = be16(frame, 12);
    let mut l3 = ETH_HLEN;
    let mut vlan = None;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        if frame.len() < ETH_HLEN + VLAN_HLEN {
            return Err(FrameError::Truncated);
        }
        vlan = Some(be16(frame, 14));
        proto = be16(frame, 16);
        l3 += VLAN_HLEN;
    }
    let (src_ip, dst_ip, l4, l4_len): (IpAddr, IpAddr, usize, usize) = match proto {
        ETH_P_IP => {
            let ip = frame.get(l3..l3 + IPV4_HLEN).ok_or(FrameError::Truncated)?;
            if ip[0] >> 4 != 4 {
                return Err(FrameError::NotIp);
            }
            if ip[0] & 0x0f != 5 {
                return Err(FrameError::IpOptions);
            }
            if ip[9] != IPPROTO_UDP {
                return Err(FrameError::NotUdp);
            }
            if be16(ip, 6) & 0x3fff != 0 {
                return Err(FrameError::Fragment);
            }
            let total = be16(ip, 2) as usize;
            // Ethernet pads short frames: the IP length, not the frame's, says where the datagram ends
            if total < IPV4_HLEN + UDP_HLEN || l3 + total > frame.len() {
                return Err(FrameError::BadLength);
            }
            let s = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let d = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            (s.into(), d.into(), l3 + IPV4_HLEN, total - IPV4_HLEN)
        }
        ETH_P_IPV6 => {
            let ip = frame.get(l3..l3 + IPV6_HLEN).ok_or(FrameError::Truncated)?;
            if ip[0] >> 4 != 6 {
                return Err(FrameError::NotIp);
            }
            if ip[6] != IPPROTO_UDP {
                return Err(FrameError::NotUdp);
            }
            let plen = be16(ip, 4) as usize;
            if plen < UDP_HLEN || l3 + IPV6_HLEN + plen > frame.len() {
                return Err(FrameError::BadLength);
            }
            let s: [u8; 16] = ip[8..24].try_into().unwrap();
            let d: [u8; 16] = ip[24..40].try_into().unwrap();
            (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into(), l3 + IPV6_HLEN, plen)
        }
        _ => return Err(FrameError::NotIp),
    };
    let udp = &frame[l4..l4 + UDP_HLEN];
    let udp_len = be16(udp, 4) as usize;
    if udp_len < UDP_HLEN || udp_len > l4_len {
        return Err(FrameError::BadLength);
    }
    Ok(Ingress {
        vlan,
        l3,
        payload: l4 + UDP_HLEN,
        payload_len: udp_len - UDP_HLEN,
        src: SocketAddr::new(src_ip, be16(udp, 0)),
        dst: SocketAddr::new(dst_ip, be16(udp, 2)),
    })
}

/// Link-layer framing towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Option<u16>,
}

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero).
pub fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
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

pub fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// RFC 1624 eqn. 3: the checksum after the 16-bit-aligned bytes `old` became `new`.
fn csum_replace(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = !check as u32;
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += !u16::from_be_bytes([o[0], o[1]]) as u32;
        sum += u16::from_be_bytes([n[0], n[1]]) as u32;
    }
    !csum_fold(sum)
}

fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

fn write_l2(buf: &mut [u8], at: usize, l2: &L2, ethertype: u16) -> usize {
    buf[at..at + 6].copy_from_slice(&l2.dst_mac);
    buf[at + 6..at + 12].copy_from_slice(&l2.src_mac);
    match l2.vlan {
        Some(tci) => {
            buf[at + 12..at + 14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
            buf[at + 14..at + 16].copy_from_slice(&tci.to_be_bytes());
            buf[at + 16..at + 18].copy_from_slice(&ethertype.to_be_bytes());
            at + ETH_HLEN + VLAN_HLEN
        }
        None => {
            buf[at + 12..at + 14].copy_from_slice(&ethertype.to_be_bytes());
            at + ETH_HLEN
        }
    }
}

/// The pseudo-header sum a sender that offloads the UDP checksum leaves in the field.
fn partial_checksum(src: &[u8], dst: &[u8], udp_len: usize) -> u16 {
    let sum = csum_add(csum_add(0, src), dst) + IPPROTO_UDP as u32 + udp_len as u32;
    csum_fold(sum)
}

/// Can [`rewrite_in_place`] handle this? Same family and VLAN framing; the caller also
/// guarantees the payload was not touched.
pub fn can_rewrite_in_place(ing: &Ingress, from: SocketAddr, to: SocketAddr, l2: &L2) -> bool {
    from.is_ipv4() == to.is_ipv4() && ing.src.is_ipv4() == to.is_ipv4() && ing.vlan.is_some() == l2.vlan.is_some()
}

/// Readdress the frame in `buf` (parsed as `ing`, payload untouched) from `from` to `to`:
/// MACs, VLAN, addresses, ports, DSCP/traffic class and TTL, with incremental checksums.
/// Returns the frame's length.
pub fn rewrite_in_place(buf: &mut [u8], ing: &Ingress, from: SocketAddr, to: SocketAddr, l2: &L2, tos: u8) -> usize {
    debug_assert!(can_rewrite_in_place(ing, from, to, l2));
    buf[0..6].copy_from_slice(&l2.dst_mac);
    buf[6..12].copy_from_slice(&l2.src_mac);
    if let Some(tci) = l2.vlan {
        buf[14..16].copy_from_slice(&tci.to_be_bytes());
    }
    let l3 = ing.l3;
    let l4 = ing.payload - UDP_HLEN;
    let (fb, n) = ip_bytes(from.ip());
    let (tb, _) = ip_bytes(to.ip());
    // the UDP checksum covers addresses (pseudo-header) and ports
    let mut old = [0u8; 36];
    let mut new = [0u8; 36];
    let m = 2 * n + 4;
    let (saddr, daddr) = if n == 4 { (l3 + 12, l3 + 16) } else { (l3 + 8, l3 + 24) };
    old[..n].copy_from_slice(&buf[saddr..saddr + n]);
    old[n..2 * n].copy_from_slice(&buf[daddr..daddr + n]);
    old[2 * n..m].copy_from_slice(&buf[l4..l4 + 4]);
    new[..n].copy_from_slice(&fb[..n]);
    new[n..2 * n].copy_from_slice(&tb[..n]);
    new[2 * n..2 * n + 2].copy_from_slice(&from.port().to_be_bytes());
    new[2 * n + 2..m].copy_from_slice(&to.port().to_be_bytes());
    let udp_check = be16(buf, l4 + 6);
    if n == 4 {
        // IPv4 header: TOS, TTL and addresses change
        let mut old_ip = [0u8; 12];
        old_ip[0..2].copy_from_slice(&buf[l3..l3 + 2]);
        old_ip[2..4].copy_from_slice(&buf[l3 + 8..l3 + 10]);
        old_ip[4..12].copy_from_slice(&buf[l3 + 12..l3 + 20]);
        buf[l3 + 1] = tos;
        buf[l3 + 8] = TTL;
        buf[l3 + 12..l3 + 16].copy_from_slice(&fb[..4]);
        buf[l3 + 16..l3 + 20].copy_from_slice(&tb[..4]);
        let mut new_ip = [0u8; 12];
        new_ip[0..2].copy_from_slice(&buf[l3..l3 + 2]);
        new_ip[2..4].copy_from_slice(&buf[l3 + 8..l3 + 10]);
        new_ip[4..12].copy_from_slice(&buf[l3 + 12..l3 + 20]);
        let check = csum_replace(be16(buf, l3 + 10), &old_ip, &new_ip);
        buf[l3 + 10..l3 + 12].copy_from_slice(&check.to_be_bytes());
    } else {
        // traffic class straddles the first two bytes; the flow label is kept
        buf[l3] = 0x60 | (tos >> 4);
        buf[l3 + 1] = (buf[l3 + 1] & 0x0f) | (tos << 4);
        buf[l3 + 7] = TTL;
        buf[l3 + 8..l3 + 24].copy_from_slice(&fb);
        buf[l3 + 24..l3 + 40].copy_from_slice(&tb);
    }
    buf[l4..l4 + 2].copy_from_slice(&from.port().to_be_bytes());
    buf[l4 + 2..l4 + 4].copy_from_slice(&to.port().to_be_bytes());
    let udp_len = ing.payload_len + UDP_HLEN;
    if n == 4 && udp_check == 0 {
        // the sender did not checksum (allowed over IPv4): neither do we
    } else if udp_check == partial_checksum(&old[..n], &old[n..2 * n], udp_len) {
        // CHECKSUM_PARTIAL: a local sender (veth, a container) left only the pseudo-header
        // sum for an offload that never came. Updating it would stay wrong: compute it.
        // (A complete checksum that happens to look like this one is recomputed too.)
        buf[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
        let mut sum = csum_add(0, &new[..2 * n]);
        sum += IPPROTO_UDP as u32 + udp_len as u32;
        sum = csum_add(sum, &buf[l4..l4 + udp_len]);
        let mut c = !csum_fold(sum);
        if c == 0 {
            c = 0xffff;
        }
        buf[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    } else {
        let mut c = csum_replace(udp_check, &old[..m], &new[..m]);
        if c == 0 {
            c = 0xffff;
        }
        buf[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
    ing.payload + ing.payload_len
}

/// Write fresh Ethernet/IP/UDP headers for the `len`-byte payload at `buf[payload..]`,
/// ending right before it. Returns the frame's start offset, or `None` when there is not
/// enough room in front of the payload (needs up to [`MAX_HEADERS`] bytes).
pub fn write_headers(
    buf: &mut [u8],
    payload: usize,
    len: usize,
    from: SocketAddr,
    to: SocketAddr,
    l2: &L2,
    tos: u8,
) -> Option<usize> {
    if payload + len > buf.len() {
        return None;
    }
    let (l3_len, ethertype) = match (from, to) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => (IPV4_HLEN, ETH_P_IP),
        (SocketAddr::V6(_), SocketAddr::V6(_)) => (IPV6_HLEN, ETH_P_IPV6),
        _ => return None,
    };
    let l2_len = ETH_HLEN + if l2.vlan.is_some() { VLAN_HLEN } else { 0 };
    let start = payload.checked_sub(l2_len + l3_len + UDP_HLEN)?;
    let udp_len = UDP_HLEN + len;
    if udp_len > 0xffff - l3_len {
        return None;
    }
    let l3 = write_l2(buf, start, l2, ethertype);
    let l4 = l3 + l3_len;
    let mut sum = 0u32;
    match (from.ip(), to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = &mut buf[l3..l4];
            ip[0] = 0x45;
            ip[1] = tos;
            ip[2..4].copy_from_slice(&((IPV4_HLEN + udp_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&[0, 0]); // id: DF is set, nothing to reassemble
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
            ip[8] = TTL;
            ip[9] = IPPROTO_UDP;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let check = !csum_fold(csum_add(0, ip));
            ip[10..12].copy_from_slice(&check.to_be_bytes());
            sum = csum_add(sum, &ip[12..20]);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = &mut buf[l3..l4];
            ip[0] = 0x60 | (tos >> 4);
            ip[1] = tos << 4;
            ip[2..4].copy_from_slice(&[0, 0]);
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip[6] = IPPROTO_UDP;
            ip[7] = TTL;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            sum = csum_add(sum, &ip[8..40]);
        }
        _ => unreachable!(),
    }
    sum += IPPROTO_UDP as u32 + udp_len as u32;
    let udp = &mut buf[l4..l4 + UDP_HLEN];
    udp[0..2].copy_from_slice(&from.port().to_be_bytes());
    udp[2..4].copy_from_slice(&to.port().to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    sum = csum_add(sum, &buf[l4..l4 + UDP_HLEN + len]);
    let mut c = !csum_fold(sum);
    if c == 0 {
        c = 0xffff;
    }
    buf[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    Some(start)
}

/// Convenience for tests and tools: a socket address from raw parts.
pub fn sockaddr(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: usize = 128;

    fn l2(vlan: Option<u16>) -> L2 {
        L2 { dst_mac: [2, 0, 0, 0, 0, 2], src_mac: [2, 0, 0, 0, 0, 1], vlan }
    }

    /// A frame built by write_headers into a buffer with headroom, returned as (buf, start, end).
    fn frame(from: &str, to: &str, payload: &[u8], vlan: Option<u16>) -> (Vec<u8>, usize, usize) {
        let mut buf = vec![0u8; HEAD + payload.len() + 32];
        buf[HEAD..HEAD + payload.len()].copy_from_slice(payload);
        let start =
            write_headers(&mut buf, HEAD, payload.len(), from.parse().unwrap(), to.parse().unwrap(), &l2(vlan), 0)
                .unwrap();
        (buf, start, HEAD + payload.len())
    }

    /// Independent checksum verification: summing a correct header/datagram gives 0xffff.
    fn verify(f: &[u8]) {
        let ing = parse(f).unwrap();
        let l4 = ing.payload - UDP_HLEN;
        let udp = &f[l4..ing.payload + ing.payload_len];
        let mut sum = 0;
        if ing.src.is_ipv4() {
            assert_eq!(csum_fold(csum_add(0, &f[ing.l3..ing.l3 + 20])), 0xffff, "ipv4 header checksum");
            sum = csum_add(sum, &f[ing.l3 + 12..ing.l3 + 20]);
            if be16(udp, 6) == 0 {
                return;
            }
        } else {
            sum = csum_add(sum, &f[ing.l3 + 8..ing.l3 + 40]);
        }
        sum += 17 + udp.len() as u32;
        sum = csum_add(sum, udp);
        assert_eq!(csum_fold(sum), 0xffff, "udp checksum");
    }

    // An IPv4/UDP frame as tcpdump -xx shows it (checksum computed independently): 10.0.0.1:4000 -> 10.0.0.2:5000, "hello"
    const CAPTURED: [u8; 47] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, // eth
        0x45, 0x00, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x14, 0x96, // ip
        10, 0, 0, 1, 10, 0, 0, 2, //
        0x0f, 0xa0, 0x13, 0x88, 0x00, 0x0d, 0x00, 0x00, // udp, no checksum
        b'h', b'e', b'l', b'l', b'o',
    ];

    #[test]
    fn parses_a_captured_frame() {
        let ing = parse(&CAPTURED).unwrap();
        assert_eq!(ing.src, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(ing.dst, "10.0.0.2:5000".parse().unwrap());
        assert_eq!(&CAPTURED[ing.payload..ing.payload + ing.payload_len], b"hello");
        verify(&CAPTURED);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut f = CAPTURED.to_vec();
        f.extend_from_slice(&[0; 13]); // padded to 60 bytes on the wire
        let ing = parse(&f).unwrap();
        assert_eq!(ing.payload_len, 5);
    }

    #[test]
    fn builds_and_parses_v4_v6_and_vlan() {
        for (from, to, vlan) in [
            ("10.1.1.1:30000", "10.1.1.2:40000", None),
            ("10.1.1.1:30000", "10.1.1.2:40000", Some(100)),
            ("[2001:db8::1]:30000", "[2001:db8::2]:40000", None),
            ("[2001:db8::1]:30000", "[2001:db8::2]:40000", Some(7)),
        ] {
            for len in [0usize, 1, 12, 172, 1400] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
                let (buf, start, end) = frame(from, to, &payload, vlan);
                let f = &buf[start..end];
                let ing = parse(f).unwrap();
                assert_eq!(ing.src, from.parse().unwrap());
                assert_eq!(ing.dst, to.parse().unwrap());
                assert_eq!(ing.vlan, vlan);
                assert_eq!(&f[ing.payload..ing.payload + ing.payload_len], &payload[..]);
                verify(f);
            }
        }
    }

    #[test]
    fn incremental_rewrite_matches_a_fresh_build() {
        for (a, b, c, d) in [
            ("10.1.1.2:5004", "10.1.1.1:30000", "10.2.2.1:30002", "10.2.2.2:6004"),
            ("[2001:db8::2]:5004", "[2001:db8::1]:30000", "[2001:db9::1]:30002", "[2001:db9::2]:6004"),
            ("192.168.255.255:65535", "0.0.0.0:1", "255.255.255.255:65535", "1.2.3.4:0"),
        ] {
            for vlan in [None, Some(42)] {
                let payload: Vec<u8> = (0..172).map(|i| (i * 7) as u8).collect();
                let (mut buf, start, end) = frame(a, b, &payload, vlan);
                let (from, to): (SocketAddr, SocketAddr) = (c.parse().unwrap(), d.parse().unwrap());
                let ing = parse(&buf[start..end]).unwrap();
                let out = l2(vlan.map(|v| v + 1));
                assert!(can_rewrite_in_place(&ing, from, to, &out));
                let n = rewrite_in_place(&mut buf[start..], &ing, from, to, &out, 0xb8);
                let got = buf[start..start + n].to_vec();
                verify(&got);
                let (fresh, fs, fe) = frame(c, d, &payload, vlan.map(|v| v + 1));
                let mut fresh = fresh[fs..fe].to_vec();
                // the fresh build has tos 0: set it the same way to compare
                let ing2 = parse(&fresh).unwrap();
                rewrite_in_place(&mut fresh, &ing2, from, to, &out, 0xb8);
                assert_eq!(got, fresh);
                let p = parse(&got).unwrap();
                assert_eq!((p.src, p.dst, p.payload_len), (from, to, 172));
            }
        }
    }

    #[test]
    fn partial_checksums_from_local_senders_are_completed() {
        for (a, b, c, d) in [
            ("10.1.1.2:5004", "10.1.1.1:30000", "10.2.2.1:30002", "10.2.2.2:6004"),
            ("[2001:db8::2]:5004", "[2001:db8::1]:30000", "[2001:db9::1]:30002", "[2001:db9::2]:6004"),
        ] {
            let payload: Vec<u8> = (0..172).map(|i| (i * 13) as u8).collect();
            let (mut buf, start, end) = frame(a, b, &payload, None);
            let ing = parse(&buf[start..end]).unwrap();
            // what the kernel leaves for checksum offload: the folded pseudo-header sum
            let l3 = start + ing.l3;
            let (s, d2) = if ing.src.is_ipv4() {
                (l3 + 12..l3 + 16, l3 + 16..l3 + 20)
            } else {
                (l3 + 8..l3 + 24, l3 + 24..l3 + 40)
            };
            let p = partial_checksum(&buf[s], &buf[d2], 8 + 172);
            let l4 = start + ing.payload - UDP_HLEN;
            buf[l4 + 6..l4 + 8].copy_from_slice(&p.to_be_bytes());
            let (from, to) = (c.parse().unwrap(), d.parse().unwrap());
            let n = rewrite_in_place(&mut buf[start..], &ing, from, to, &l2(None), 0);
            verify(&buf[start..start + n]);
        }
    }

    #[test]
    fn v4_without_udp_checksum_stays_without() {
        let mut f = CAPTURED.to_vec();
        let ing = parse(&f).unwrap();
        let (from, to) = ("10.9.9.9:1000".parse().unwrap(), "10.8.8.8:2000".parse().unwrap());
        rewrite_in_place(&mut f, &ing, from, to, &l2(None), 46 << 2);
        assert_eq!(&f[40..42], &[0, 0]);
        assert_eq!(f[15], 46 << 2);
        verify(&f);
    }

    #[test]
    fn bridges_v4_to_v6_in_front_of_the_same_payload() {
        let payload = [0x80u8, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9];
        let (mut buf, start, end) = frame("10.0.0.1:5000", "10.0.0.2:30000", &payload, None);
        let ing = parse(&buf[start..end]).unwrap();
        let (from, to) = ("[2001:db8::1]:30002".parse().unwrap(), "[2001:db8::9]:7000".parse().unwrap());
        assert!(!can_rewrite_in_place(&ing, from, to, &l2(None)));
        let s = write_headers(&mut buf, ing.payload + start, ing.payload_len, from, to, &l2(None), 0).unwrap();
        let f = &buf[s..end];
        verify(f);
        let p = parse(f).unwrap();
        assert_eq!((p.src, p.dst), (from, to));
        assert_eq!(&f[p.payload..p.payload + p.payload_len], &payload);
    }

    #[test]
    fn no_room_in_front_is_refused_not_a_panic() {
        let mut buf = [0u8; 64];
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(write_headers(&mut buf, 10, 4, v6, v6, &l2(None), 0), None);
        assert_eq!(write_headers(&mut buf, 62, 4, v6, v6, &l2(None), 0), None, "payload past the end");
        let v4: SocketAddr = "1.1.1.1:1".parse().unwrap();
        assert_eq!(write_headers(&mut buf, 42, 4, v4, v6, &l2(None), 0), None, "mixed families");
    }

    #[test]
    fn rejects_what_the_program_passes() {
        let good = CAPTURED;
        let mut cases: Vec<(Vec<u8>, FrameError)> = Vec::new();
        for cut in [0, 13, 20, 33, 41] {
            cases.push((good[..cut].to_vec(), if cut < 34 { FrameError::Truncated } else { FrameError::BadLength }));
        }
        let mut arp = good.to_vec();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        cases.push((arp, FrameError::NotIp));
        let mut tcp = good.to_vec();
        tcp[23] = 6;
        cases.push((tcp, FrameError::NotUdp));
        let mut opts = good.to_vec();
        opts[14] = 0x46;
        cases.push((opts, FrameError::IpOptions));
        let mut frag = good.to_vec();
        frag[20] = 0x20; // more fragments
        cases.push((frag, FrameError::Fragment));
        let mut long = good.to_vec();
        long[39] = 200; // UDP length past the IP payload
        cases.push((long, FrameError::BadLength));
        let mut short = good.to_vec();
        short[39] = 7;
        cases.push((short, FrameError::BadLength));
        let mut v = good.to_vec();
        v[14] = 0x65;
        cases.push((v, FrameError::NotIp));
        for (f, want) in cases {
            assert_eq!(parse(&f), Err(want), "{f:02x?}");
        }
    }
}
