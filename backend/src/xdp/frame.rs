//! Ethernet / IPv4 / IPv6 / UDP framing for the AF_XDP backend, sans-IO: parse what the
//! XDP program steered to us, and rewrite it in place for the egress leg.
//! The headers are read and written through the core's views (`relay_core::wire`); this
//! file only decides what to check, in which order, and what to write.
//!
//! Two ways out:
//! - [`rewrite_in_place`]: same address family and VLAN framing, payload untouched (plain
//!   RTP relaying): only addresses, ports, DSCP and TTL change, and both checksums are
//!   updated incrementally (RFC 1624) -- no pass over the payload.
//! - [`write_headers`]: everything else (SRTP changed the payload or its length, IPv4 <->
//!   IPv6 bridging, VLAN added or removed): fresh headers are written in front of the
//!   payload, which never moves, and the UDP checksum is computed over the payload.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use relay_core::wire::ethernet::{self, vlan, EtherType};
use relay_core::wire::{checksum, ipv4, ipv6, udp, Error as WireError, IpProtocol};

pub const ETH_HLEN: usize = ethernet::HEADER_LEN;
pub const VLAN_HLEN: usize = vlan::HEADER_LEN;
pub const IPV4_HLEN: usize = ipv4::HEADER_LEN;
pub const IPV6_HLEN: usize = ipv6::HEADER_LEN;
pub const UDP_HLEN: usize = udp::HEADER_LEN;
/// The most header bytes [`write_headers`] puts in front of a payload.
pub const MAX_HEADERS: usize = ETH_HLEN + VLAN_HLEN + IPV6_HLEN + UDP_HLEN;

pub const TTL: u8 = 64;

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero).
pub use checksum::add as csum_add;
pub use checksum::fold as csum_fold;

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

#[cfg(test)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The checks run in the XDP program's order: a header that is not all there is
/// `Truncated`; then what we do not relay is named (not IP, not UDP, options, a fragment);
/// only then are the length fields held against the frame (`BadLength`).
pub fn parse(frame: &[u8]) -> Result<Ingress, FrameError> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| FrameError::Truncated)?;
    let (mut proto, mut l3, mut vlan) = (eth.ethertype(), ETH_HLEN, None);
    if proto.is_vlan_tag() {
        let tag = vlan::Tag::new_checked(eth.payload()).map_err(|_| FrameError::Truncated)?;
        vlan = Some(tag.tci());
        proto = tag.ethertype();
        l3 += VLAN_HLEN;
    }
    let (src_ip, dst_ip, l4, end): (IpAddr, IpAddr, usize, usize) = match proto {
        EtherType::IPV4 => {
            let ip = ipv4::Packet::new_unchecked(&frame[l3..]);
            let lengths = ip.check_len();
            if lengths == Err(WireError::Truncated) {
                return Err(FrameError::Truncated);
            }
            if ip.version() != 4 {
                return Err(FrameError::NotIp);
            }
            if ip.header_len() as usize != IPV4_HLEN {
                return Err(FrameError::IpOptions);
            }
            if ip.protocol() != IpProtocol::UDP {
                return Err(FrameError::NotUdp);
            }
            if ip.is_fragment() {
                return Err(FrameError::Fragment);
            }
            // Ethernet pads short frames: the IP length, not the frame's, says where the datagram ends
            lengths.map_err(|_| FrameError::BadLength)?;
            (ip.src_addr().into(), ip.dst_addr().into(), l3 + IPV4_HLEN, l3 + ip.total_len() as usize)
        }
        EtherType::IPV6 => {
            let ip = ipv6::Packet::new_unchecked(&frame[l3..]);
            let lengths = ip.check_len();
            if lengths == Err(WireError::Truncated) {
                return Err(FrameError::Truncated);
            }
            if ip.version() != 6 {
                return Err(FrameError::NotIp);
            }
            if ip.next_header() != IpProtocol::UDP {
                return Err(FrameError::NotUdp);
            }
            lengths.map_err(|_| FrameError::BadLength)?;
            (ip.src_addr().into(), ip.dst_addr().into(), l3 + IPV6_HLEN, l3 + IPV6_HLEN + ip.payload_len() as usize)
        }
        _ => return Err(FrameError::NotIp),
    };
    // shorter than a UDP header, or a UDP length past the IP payload
    let udp = udp::Packet::new_checked(&frame[l4..end]).map_err(|_| FrameError::BadLength)?;
    Ok(Ingress {
        vlan,
        l3,
        payload: l4 + UDP_HLEN,
        payload_len: udp.len() as usize - UDP_HLEN,
        src: SocketAddr::new(src_ip, udp.src_port()),
        dst: SocketAddr::new(dst_ip, udp.dst_port()),
    })
}

/// Link-layer framing towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Option<u16>,
}

/// An address's bytes as the pseudo-header has them, and how many there are.
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

/// Writes the Ethernet header (with the VLAN tag `l2` asks for) at the start of `buf`;
/// returns its length.
fn write_l2(buf: &mut [u8], l2: &L2, ethertype: EtherType) -> usize {
    let mut eth = ethernet::Frame::new_unchecked(buf);
    eth.set_dst_addr(l2.dst_mac);
    eth.set_src_addr(l2.src_mac);
    match l2.vlan {
        Some(tci) => {
            eth.set_ethertype(EtherType::VLAN);
            let mut tag = vlan::Tag::new_unchecked(eth.payload_mut());
            tag.set_tci(tci);
            tag.set_ethertype(ethertype);
            ETH_HLEN + VLAN_HLEN
        }
        None => {
            eth.set_ethertype(ethertype);
            ETH_HLEN
        }
    }
}

/// The pseudo-header sum a sender that offloads the UDP checksum leaves in the field.
fn partial_checksum(src: &[u8], dst: &[u8], udp_len: usize) -> u16 {
    checksum::fold(checksum::pseudo_header(src, dst, IpProtocol::UDP, udp_len))
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
    let mut eth = ethernet::Frame::new_unchecked(&mut *buf);
    eth.set_dst_addr(l2.dst_mac);
    eth.set_src_addr(l2.src_mac);
    if let Some(tci) = l2.vlan {
        vlan::Tag::new_unchecked(eth.payload_mut()).set_tci(tci);
    }
    let l4 = ing.payload - UDP_HLEN;
    let udp_len = ing.payload_len + UDP_HLEN;
    let (ip_buf, udp_buf) = buf[ing.l3..].split_at_mut(l4 - ing.l3);
    let (fb, n) = ip_bytes(from.ip());
    let (tb, _) = ip_bytes(to.ip());
    // the UDP checksum covers the addresses (pseudo-header) and the ports: remember them
    let mut old = [0u8; 36];
    let mut new = [0u8; 36];
    let m = 2 * n + 4;
    if n == 4 {
        let mut ip = ipv4::Packet::new_unchecked(ip_buf);
        old[..4].copy_from_slice(&ip.src_addr().octets());
        old[4..8].copy_from_slice(&ip.dst_addr().octets());
        let addr = |b: &[u8; 16]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        ip.readdress(tos, TTL, addr(&fb), addr(&tb));
    } else {
        let mut ip = ipv6::Packet::new_unchecked(ip_buf);
        old[..16].copy_from_slice(&ip.src_addr().octets());
        old[16..32].copy_from_slice(&ip.dst_addr().octets());
        // the flow label is kept
        ip.set_version(6);
        ip.set_traffic_class(tos);
        ip.set_hop_limit(TTL);
        ip.set_src_addr(fb.into());
        ip.set_dst_addr(tb.into());
    }
    let mut udp = udp::Packet::new_unchecked(&mut udp_buf[..udp_len]);
    old[2 * n..2 * n + 2].copy_from_slice(&udp.src_port().to_be_bytes());
    old[2 * n + 2..m].copy_from_slice(&udp.dst_port().to_be_bytes());
    new[..n].copy_from_slice(&fb[..n]);
    new[n..2 * n].copy_from_slice(&tb[..n]);
    new[2 * n..2 * n + 2].copy_from_slice(&from.port().to_be_bytes());
    new[2 * n + 2..m].copy_from_slice(&to.port().to_be_bytes());
    udp.set_src_port(from.port());
    udp.set_dst_port(to.port());
    let udp_check = udp.checksum();
    if n == 4 && udp_check == 0 {
        // the sender did not checksum (allowed over IPv4): neither do we
    } else if udp_check == partial_checksum(&old[..n], &old[n..2 * n], udp_len) {
        // CHECKSUM_PARTIAL: a local sender (veth, a container) left only the pseudo-header
        // sum for an offload that never came. Updating it would stay wrong: compute it.
        // (A complete checksum that happens to look like this one is recomputed too.)
        udp.fill_checksum(&new[..n], &new[n..2 * n]);
    } else {
        let mut update = checksum::Update::new(udp_check);
        update.replace(&old[..m], &new[..m]);
        udp.set_checksum(udp::checksum_on_wire(update.finish()));
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
        (SocketAddr::V4(_), SocketAddr::V4(_)) => (IPV4_HLEN, EtherType::IPV4),
        (SocketAddr::V6(_), SocketAddr::V6(_)) => (IPV6_HLEN, EtherType::IPV6),
        _ => return None,
    };
    let l2_len = ETH_HLEN + if l2.vlan.is_some() { VLAN_HLEN } else { 0 };
    let start = payload.checked_sub(l2_len + l3_len + UDP_HLEN)?;
    let udp_len = UDP_HLEN + len;
    if udp_len > 0xffff - l3_len {
        return None;
    }
    let l3 = start + write_l2(&mut buf[start..], l2, ethertype);
    let (ip_buf, udp_buf) = buf[l3..payload + len].split_at_mut(l3_len);
    let udp = udp::Repr { src_port: from.port(), dst_port: to.port() };
    let mut datagram = udp::Packet::new_unchecked(udp_buf);
    match (from.ip(), to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = ipv4::Repr {
                src_addr: s,
                dst_addr: d,
                protocol: IpProtocol::UDP,
                payload_len: udp_len,
                hop_limit: TTL,
                dscp_ecn: tos,
            };
            ip.emit(&mut ipv4::Packet::new_unchecked(ip_buf));
            udp.emit(&mut datagram, len, &s.octets(), &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = ipv6::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::UDP,
                payload_len: udp_len,
                hop_limit: TTL,
                traffic_class: tos,
                flow_label: 0,
            };
            ip.emit(&mut ipv6::Packet::new_unchecked(ip_buf));
            udp.emit(&mut datagram, len, &s.octets(), &d.octets());
        }
        _ => return None,
    }
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
