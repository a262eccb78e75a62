//! rtnetlink, sans-IO: the requests the AF_XDP backend sends (route lookup, neighbour and
//! link dumps) and a parser for what comes back, including the change notifications
//! (RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE). Only the
//! attributes the egress path needs are read; everything else is skipped.
//!
//! [`Resolver`] turns them into next-hop decisions for the workers: which interface a
//! destination leaves by and the MAC address of its next hop.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_DELNEIGH: u16 = 29;
pub const RTM_GETNEIGH: u16 = 30;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const IFLA_ADDRESS: u16 = 1;
const RTN_UNICAST: u8 = 1;
/// Neighbour states in which the kernel itself would transmit to the cached address.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
pub const RTMGRP_LINK: u32 = 1;
pub const RTMGRP_NEIGH: u32 = 4;
pub const RTMGRP_IPV4_ROUTE: u32 = 0x40;
pub const RTMGRP_IPV6_ROUTE: u32 = 0x400;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

fn finish(mut buf: Vec<u8>) -> Vec<u8> {
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

/// RTM_GETROUTE for one destination: the kernel answers with the route it would use.
pub fn get_route(seq: u32, dst: IpAddr) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    header(&mut b, RTM_GETROUTE, NLM_F_REQUEST, seq);
    let (bytes, bits): (Vec<u8>, u8) = match dst {
        IpAddr::V4(a) => (a.octets().to_vec(), 32),
        IpAddr::V6(a) => (a.octets().to_vec(), 128),
    };
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
    b.extend_from_slice(&[family(dst), bits, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&((4 + bytes.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&RTA_DST.to_ne_bytes());
    b.extend_from_slice(&bytes);
    finish(b)
}

/// Dump of the neighbour table (both families).
pub fn dump_neighbours(seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    header(&mut b, RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq);
    // struct ndmsg: family, pad1, pad2(u16), ifindex(i32), state(u16), flags, type
    b.extend_from_slice(&[0u8; 12]);
    finish(b)
}

/// Dump of the links (for their MAC addresses).
pub fn dump_links(seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    header(&mut b, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq);
    // struct ifinfomsg: family, pad, type(u16), index(i32), flags(u32), change(u32)
    b.extend_from_slice(&[0u8; 16]);
    finish(b)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A route (answer to [`get_route`] or a notification). `unicast` is false for local,
    /// broadcast, unreachable, ... routes.
    Route {
        deleted: bool,
        dst: Option<IpAddr>,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
        unicast: bool,
        seq: u32,
    },
    /// A neighbour entry; `mac` is set only for states the kernel would transmit to.
    Neighbour {
        deleted: bool,
        ifindex: u32,
        ip: IpAddr,
        mac: Option<[u8; 6]>,
    },
    Link {
        deleted: bool,
        ifindex: u32,
        mac: Option<[u8; 6]>,
    },
    /// End of a dump.
    Done {
        seq: u32,
    },
    /// An error (negative errno) or acknowledgement (0) for request `seq`.
    Error {
        seq: u32,
        errno: i32,
    },
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()).into()),
        _ => None,
    }
}

/// Route attributes: (type, payload) pairs; a truncated attribute ends the walk with an error.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Malformed>> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = ne16(b, 0) as usize;
        let kind = ne16(b, 2) & 0x3fff; // drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if len < 4 || len > b.len() {
            b = &[];
            return Some(Err(Malformed));
        }
        let payload = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some(Ok((kind, payload)))
    })
}

fn mac_from(p: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(p).ok()
}

/// Parse one netlink message body of type `kind`.
fn parse_one(kind: u16, seq: u32, body: &[u8]) -> Result<Message, Malformed> {
    Ok(match kind {
        NLMSG_DONE => Message::Done { seq },
        NLMSG_ERROR => {
            if body.len() < 4 {
                return Err(Malformed);
            }
            Message::Error { seq, errno: ne32(body, 0) as i32 }
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            if body.len() < 12 {
                return Err(Malformed);
            }
            let (mut dst, mut gateway, mut oif) = (None, None, None);
            for a in attrs(&body[12..]) {
                let (t, p) = a?;
                match t {
                    RTA_DST => dst = ip_from(p),
                    RTA_GATEWAY => gateway = ip_from(p),
                    RTA_OIF if p.len() == 4 => oif = Some(ne32(p, 0)),
                    _ => {}
                }
            }
            Message::Route { deleted: kind == RTM_DELROUTE, dst, gateway, oif, unicast: body[7] == RTN_UNICAST, seq }
        }
        RTM_NEWNEIGH | RTM_DELNEIGH => {
            if body.len() < 12 {
                return Err(Malformed);
            }
            let ifindex = ne32(body, 4);
            let state = ne16(body, 8);
            let (mut ip, mut mac) = (None, None);
            for a in attrs(&body[12..]) {
                let (t, p) = a?;
                match t {
                    NDA_DST => ip = ip_from(p),
                    NDA_LLADDR => mac = mac_from(p),
                    _ => {}
                }
            }
            let Some(ip) = ip else { return Ok(Message::Other) };
            let deleted = kind == RTM_DELNEIGH;
            let mac = if deleted || state & NUD_VALID == 0 { None } else { mac };
            Message::Neighbour { deleted, ifindex, ip, mac }
        }
        RTM_NEWLINK | RTM_DELLINK => {
            if body.len() < 16 {
                return Err(Malformed);
            }
            let ifindex = ne32(body, 4);
            let mut mac = None;
            for a in attrs(&body[16..]) {
                let (t, p) = a?;
                if t == IFLA_ADDRESS {
                    mac = mac_from(p);
                }
            }
            Message::Link { deleted: kind == RTM_DELLINK, ifindex, mac }
        }
        _ => Message::Other,
    })
}

/// Every message in one datagram read from a netlink socket.
pub fn parse(mut buf: &[u8]) -> Vec<Result<Message, Malformed>> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = ne32(buf, 0) as usize;
        if len < 16 || len > buf.len() {
            out.push(Err(Malformed));
            break;
        }
        out.push(parse_one(ne16(buf, 4), ne32(buf, 8), &buf[16..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// Where packets for one destination go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Out of relay interface `ifindex`, to `mac`, from `src_mac`.
    Direct { ifindex: u32, src_mac: [u8; 6], dst_mac: [u8; 6] },
    /// The kernel's path: not via an AF_XDP interface, or the neighbour is not resolved yet.
    Kernel,
}

/// Next-hop bookkeeping, sans-IO: fed with netlink messages, it says which destinations'
/// next hops changed. The control thread in `xdp::resolver` drives it.
#[derive(Default)]
pub struct Resolver {
    /// The AF_XDP interfaces and their MACs.
    links: HashMap<u32, [u8; 6]>,
    neighbours: HashMap<(u32, IpAddr), [u8; 6]>,
    /// destination -> (egress ifindex, next-hop address) from the route lookup
    routes: HashMap<IpAddr, Option<(u32, IpAddr)>>,
    /// what the workers were last told
    published: HashMap<IpAddr, NextHop>,
}

impl Resolver {
    pub fn new(links: impl IntoIterator<Item = (u32, [u8; 6])>) -> Resolver {
        Resolver { links: links.into_iter().collect(), ..Default::default() }
    }

    pub fn is_known(&self, dst: IpAddr) -> bool {
        self.routes.contains_key(&dst)
    }

    pub fn destinations(&self) -> Vec<IpAddr> {
        self.routes.keys().copied().collect()
    }

    /// The answer to a route lookup for `dst` (`None`: no usable route).
    pub fn route(&mut self, dst: IpAddr, msg: Option<&Message>) {
        let r = match msg {
            Some(Message::Route { deleted: false, gateway, oif: Some(oif), unicast: true, .. }) => {
                Some((*oif, gateway.unwrap_or(dst)))
            }
            _ => None,
        };
        self.routes.insert(dst, r);
    }

    /// A message from a dump or a notification. Returns true when routes must be looked
    /// up again (a route or link changed).
    pub fn on_message(&mut self, msg: &Message) -> bool {
        match msg {
            Message::Neighbour { deleted, ifindex, ip, mac } => {
                match (deleted, mac) {
                    (false, Some(m)) => self.neighbours.insert((*ifindex, *ip), *m),
                    _ => self.neighbours.remove(&(*ifindex, *ip)),
                };
                false
            }
            Message::Link { deleted, ifindex, mac } => {
                if let (false, Some(m)) = (deleted, mac) {
                    if let Some(have) = self.links.get_mut(ifindex) {
                        *have = *m;
                    }
                }
                true
            }
            Message::Route { .. } => true,
            _ => false,
        }
    }

    fn next_hop(&self, dst: IpAddr) -> NextHop {
        let Some(Some((oif, via))) = self.routes.get(&dst) else { return NextHop::Kernel };
        let (Some(src_mac), Some(dst_mac)) = (self.links.get(oif), self.neighbours.get(&(*oif, *via))) else {
            return NextHop::Kernel;
        };
        NextHop::Direct { ifindex: *oif, src_mac: *src_mac, dst_mac: *dst_mac }
    }

    /// The destinations whose next hop differs from what the workers were last told.
    pub fn changes(&mut self) -> Vec<(IpAddr, NextHop)> {
        let mut out = Vec::new();
        for &dst in self.routes.keys() {
            let nh = self.next_hop(dst);
            if self.published.get(&dst) != Some(&nh) {
                out.push((dst, nh));
            }
        }
        for (dst, nh) in &out {
            self.published.insert(*dst, *nh);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        header(&mut b, kind, 0, seq);
        b.extend_from_slice(body);
        finish(b)
    }

    fn attr(t: u16, p: &[u8]) -> Vec<u8> {
        let mut b = ((4 + p.len()) as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&t.to_ne_bytes());
        b.extend_from_slice(p);
        b.resize(align4(b.len()), 0);
        b
    }

    fn route(seq: u32, dst: [u8; 4], gw: Option<[u8; 4]>, oif: u32, rtype: u8) -> Vec<u8> {
        let mut body = vec![2, 32, 0, 0, 254, 0, 0, rtype, 0, 0, 0, 0];
        body.extend(attr(RTA_DST, &dst));
        if let Some(g) = gw {
            body.extend(attr(RTA_GATEWAY, &g));
        }
        body.extend(attr(RTA_OIF, &oif.to_ne_bytes()));
        msg(RTM_NEWROUTE, seq, &body)
    }

    fn neigh(kind: u16, ifindex: u32, ip: [u8; 4], mac: [u8; 6], state: u16) -> Vec<u8> {
        let mut body = vec![2, 0, 0, 0];
        body.extend_from_slice(&ifindex.to_ne_bytes());
        body.extend_from_slice(&state.to_ne_bytes());
        body.extend_from_slice(&[0, 1]);
        body.extend(attr(NDA_DST, &ip));
        body.extend(attr(NDA_LLADDR, &mac));
        msg(kind, 0, &body)
    }

    #[test]
    fn requests_are_well_formed() {
        let r = get_route(7, "10.0.0.9".parse().unwrap());
        assert_eq!(ne32(&r, 0) as usize, r.len());
        assert_eq!(ne16(&r, 4), RTM_GETROUTE);
        assert_eq!(ne32(&r, 8), 7);
        assert_eq!(&r[16..18], &[libc::AF_INET as u8, 32]);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 9]);
        let r6 = get_route(1, "2001:db8::1".parse().unwrap());
        assert_eq!(r6.len(), 16 + 12 + 4 + 16);
        for d in [dump_neighbours(3), dump_links(4)] {
            assert_eq!(ne32(&d, 0) as usize, d.len());
            assert_eq!(ne16(&d, 6), NLM_F_REQUEST | NLM_F_DUMP);
        }
    }

    #[test]
    fn parses_routes_neighbours_links_and_the_end_of_a_dump() {
        let mut dgram = route(5, [10, 0, 0, 9], Some([10, 0, 0, 1]), 3, RTN_UNICAST);
        dgram.extend(neigh(RTM_NEWNEIGH, 3, [10, 0, 0, 1], [2, 0, 0, 0, 0, 1], 0x02));
        dgram.extend(neigh(RTM_NEWNEIGH, 3, [10, 0, 0, 7], [2, 0, 0, 0, 0, 7], 0x01)); // incomplete
        let mut link = vec![0u8; 16];
        link[4..8].copy_from_slice(&3u32.to_ne_bytes());
        link.extend(attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 0xaa]));
        dgram.extend(msg(RTM_NEWLINK, 0, &link));
        dgram.extend(msg(NLMSG_DONE, 9, &[0, 0, 0, 0]));
        dgram.extend(msg(NLMSG_ERROR, 10, &(-113i32).to_ne_bytes()));
        let got: Vec<Message> = parse(&dgram).into_iter().map(|m| m.unwrap()).collect();
        assert_eq!(
            got,
            vec![
                Message::Route {
                    deleted: false,
                    dst: Some("10.0.0.9".parse().unwrap()),
                    gateway: Some("10.0.0.1".parse().unwrap()),
                    oif: Some(3),
                    unicast: true,
                    seq: 5
                },
                Message::Neighbour {
                    deleted: false,
                    ifindex: 3,
                    ip: "10.0.0.1".parse().unwrap(),
                    mac: Some([2, 0, 0, 0, 0, 1])
                },
                Message::Neighbour { deleted: false, ifindex: 3, ip: "10.0.0.7".parse().unwrap(), mac: None },
                Message::Link { deleted: false, ifindex: 3, mac: Some([2, 0, 0, 0, 0, 0xaa]) },
                Message::Done { seq: 9 },
                Message::Error { seq: 10, errno: -113 },
            ]
        );
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let good = route(5, [10, 0, 0, 9], None, 3, RTN_UNICAST);
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            if cut >= 4 {
                b[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            }
            let _ = parse(&b);
        }
        let mut bad_attr = good.clone();
        bad_attr[28..30].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse(&bad_attr), vec![Err(Malformed)]);
        let mut bad_len = good;
        bad_len[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert_eq!(parse(&bad_len), vec![Err(Malformed)]);
    }

    fn first(b: &[u8]) -> Message {
        parse(b).remove(0).unwrap()
    }

    #[test]
    fn resolver_follows_neighbour_and_route_changes() {
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let mut r = Resolver::new([(3, [2, 0, 0, 0, 0, 0xaa])]);
        r.route(a, Some(&first(&route(1, [10, 0, 0, 9], None, 3, RTN_UNICAST))));
        // no neighbour entry yet: the kernel's path (which also resolves it)
        assert_eq!(r.changes(), vec![(a, NextHop::Kernel)]);
        assert_eq!(r.changes(), vec![], "nothing new");
        r.on_message(&first(&neigh(RTM_NEWNEIGH, 3, [10, 0, 0, 9], [2, 0, 0, 0, 0, 9], 0x02)));
        let direct = |m| NextHop::Direct { ifindex: 3, src_mac: [2, 0, 0, 0, 0, 0xaa], dst_mac: m };
        assert_eq!(r.changes(), vec![(a, direct([2, 0, 0, 0, 0, 9]))]);
        // the peer's MAC changes (a new phone, a failover)
        r.on_message(&first(&neigh(RTM_NEWNEIGH, 3, [10, 0, 0, 9], [2, 0, 0, 0, 0, 0x19], 0x04)));
        assert_eq!(r.changes(), vec![(a, direct([2, 0, 0, 0, 0, 0x19]))]);
        r.on_message(&first(&neigh(RTM_DELNEIGH, 3, [10, 0, 0, 9], [2, 0, 0, 0, 0, 0x19], 0x04)));
        assert_eq!(r.changes(), vec![(a, NextHop::Kernel)]);
        // now routed through a gateway on another, non-XDP interface
        assert!(r.on_message(&first(&route(0, [10, 0, 0, 0], None, 3, RTN_UNICAST))));
        r.route(a, Some(&first(&route(2, [10, 0, 0, 9], Some([10, 0, 0, 1]), 4, RTN_UNICAST))));
        r.on_message(&first(&neigh(RTM_NEWNEIGH, 4, [10, 0, 0, 1], [2, 0, 0, 0, 0, 1], 0x02)));
        assert_eq!(r.changes(), vec![], "interface 4 is not ours: still the kernel's path");
        r.route(a, Some(&first(&route(3, [10, 0, 0, 9], None, 3, 2 /* RTN_LOCAL */))));
        assert_eq!(r.changes(), vec![]);
    }
}
