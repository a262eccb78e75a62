//! Which remote addresses media may come from or go to (docs/security.md).
//!
//! One policy, used in two places: the engine refuses signalled media addresses it
//! denies (so a SIP user cannot point the relay at loopback, the relay's own ng/HTTP/media
//! sockets, or anything the operator did not mean), and both backends' flow tables never
//! latch to, accept from or send to a denied address (so a spoofed source cannot either).
//!
//! Denied by default: unspecified, loopback, multicast, broadcast, link-local, and the
//! relay's own addresses (interfaces' local and advertised addresses, the ng and HTTP
//! listen addresses). An operator allow-list (CIDRs) lifts the class denials; a deny-list
//! adds prefixes. A lab relay whose media interface is itself loopback keeps working with
//! loopback peers, but never towards the relay's own sockets (its media port range, ng and
//! HTTP ports): those stay denied whatever the lists say.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub use ipnet::IpNet;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Unspecified,
    Loopback,
    Multicast,
    Broadcast,
    LinkLocal,
    /// One of the relay's own addresses.
    RelayAddress,
    /// One of the relay's own sockets (media port range, ng, HTTP).
    RelaySocket,
    /// Port 0.
    PortZero,
    /// In the operator's deny-list.
    DenyList,
}

impl Denied {
    pub fn as_str(self) -> &'static str {
        match self {
            Denied::Unspecified => "unspecified address",
            Denied::Loopback => "loopback address",
            Denied::Multicast => "multicast address",
            Denied::Broadcast => "broadcast address",
            Denied::LinkLocal => "link-local address",
            Denied::RelayAddress => "the relay's own address",
            Denied::RelaySocket => "one of the relay's own sockets",
            Denied::PortZero => "port 0",
            Denied::DenyList => "address in the media deny-list",
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// The relay's own addresses (interfaces' local and advertised, listen addresses). An
    /// unspecified address here is a wildcard listener: every loopback address reaches it.
    pub own: Vec<IpAddr>,
    /// The relay's own UDP/TCP ports on those addresses: inclusive ranges (media range,
    /// ng port, HTTP port).
    pub own_ports: Vec<(u16, u16)>,
    /// A media interface is loopback: loopback peers are allowed (lab, tests, benchmarks),
    /// except the relay's own sockets.
    pub lab_loopback: bool,
    /// Operator allow-list: lifts the class denials (never the relay's own sockets).
    pub allow: Vec<IpNet>,
    /// Operator deny-list: refused whatever else says.
    pub deny: Vec<IpNet>,
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The class denial of an address, if any (no operator lists, no own addresses).
pub fn class_of(ip: IpAddr) -> Option<Denied> {
    match unmap(ip) {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.octets()[0] == 0 {
                Some(Denied::Unspecified)
            } else if v4.is_loopback() {
                Some(Denied::Loopback)
            } else if v4.is_multicast() || v4.octets()[0] >= 240 {
                // 240/4 (reserved) and 255.255.255.255 are never a media peer
                if v4.is_broadcast() || v4.octets()[0] >= 240 {
                    Some(Denied::Broadcast)
                } else {
                    Some(Denied::Multicast)
                }
            } else if v4.is_link_local() {
                Some(Denied::LinkLocal)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            if v6.is_unspecified() {
                Some(Denied::Unspecified)
            } else if v6.is_loopback() {
                Some(Denied::Loopback)
            } else if v6.is_multicast() {
                Some(Denied::Multicast)
            } else if seg0 & 0xffc0 == 0xfe80 {
                Some(Denied::LinkLocal)
            } else {
                None
            }
        }
    }
}

impl AddressPolicy {
    /// The policy of a relay whose media interfaces have these (local, advertised)
    /// addresses, whose control sockets (ng, HTTP) listen on `listen`, and whose media
    /// ports are `ports`: all of that is its own, loopback media interfaces make it a lab.
    /// The daemon and the in-memory relay build their policy here, so they judge alike.
    pub fn for_relay(
        interfaces: &[(IpAddr, IpAddr)],
        listen: &[SocketAddr],
        ports: (u16, u16),
        allow: Vec<IpNet>,
        deny: Vec<IpNet>,
    ) -> AddressPolicy {
        let mut own: Vec<IpAddr> = interfaces.iter().flat_map(|&(l, a)| [l, a]).collect();
        // an unspecified listen address stays: it tells the policy that every local
        // address, loopback included, reaches that socket
        own.extend(listen.iter().map(|a| a.ip()));
        own.sort();
        own.dedup();
        let mut own_ports = vec![ports];
        own_ports.extend(listen.iter().map(|a| (a.port(), a.port())));
        AddressPolicy { own, own_ports, lab_loopback: interfaces.iter().any(|(l, _)| l.is_loopback()), allow, deny }
    }

    /// A policy that only refuses what is never a valid media address (unspecified,
    /// multicast, broadcast, port 0) and treats loopback as a lab interface: for tests
    /// that do not care about the relay's own addresses.
    pub fn permissive() -> AddressPolicy {
        AddressPolicy { lab_loopback: true, allow: Vec::new(), ..Default::default() }
    }

    fn own_socket(&self, a: SocketAddr) -> bool {
        let ip = unmap(a.ip());
        // a socket bound to one address is reached at that address only (127.0.0.2 does
        // not reach 127.0.0.1:2223); one bound to the wildcard (an unspecified address in
        // `own`) is reached at every local address, loopback included
        let wildcard = self.own.iter().any(|o| o.is_unspecified());
        let own_ip = self.own.iter().any(|o| unmap(*o) == ip) || (ip.is_loopback() && wildcard);
        own_ip && self.own_ports.iter().any(|&(lo, hi)| (lo..=hi).contains(&a.port()))
    }

    /// Is `a` (by address and port range) one of the relay's own sockets? Unlike
    /// [`check`](Self::check) this ignores the address class (the ng server asks it about
    /// a datagram's source, which may be loopback).
    pub fn is_own_socket(&self, a: SocketAddr) -> bool {
        self.own_socket(a)
    }

    /// May media come from, or go to, `a`?
    pub fn check(&self, a: SocketAddr) -> Result<(), Denied> {
        if a.port() == 0 {
            return Err(Denied::PortZero);
        }
        self.check_ip(a.ip())?;
        if self.own_socket(a) {
            return Err(Denied::RelaySocket);
        }
        Ok(())
    }

    /// The address part of [`check`](Self::check) (no port: e.g. a signalled address
    /// before its port is known).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = unmap(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Err(Denied::DenyList);
        }
        let class = class_of(ip);
        // never a peer, whatever the allow-list says
        if matches!(class, Some(Denied::Unspecified | Denied::Multicast | Denied::Broadcast)) {
            return Err(class.unwrap());
        }
        let allowed = self.allow.iter().any(|n| n.contains(&ip));
        if let Some(c) = class {
            let lab = c == Denied::Loopback && self.lab_loopback;
            if !lab && !allowed {
                return Err(c);
            }
        }
        if !allowed && !self.lab_loopback && self.own.iter().any(|o| unmap(*o) == ip) {
            return Err(Denied::RelayAddress);
        }
        Ok(())
    }

    pub fn allows(&self, a: SocketAddr) -> bool {
        self.check(a).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn prod() -> AddressPolicy {
        AddressPolicy {
            own: vec!["192.0.2.1".parse().unwrap(), "203.0.113.5".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            own_ports: vec![(30000, 40000), (2223, 2223), (9900, 9900)],
            lab_loopback: false,
            allow: Vec::new(),
            deny: vec!["198.18.0.0/15".parse().unwrap()],
        }
    }

    #[test]
    fn classes_are_denied_in_production() {
        let p = prod();
        assert_eq!(p.check(a("127.0.0.1:2223")), Err(Denied::Loopback));
        assert_eq!(p.check(a("127.0.0.53:53")), Err(Denied::Loopback));
        assert_eq!(p.check(a("[::1]:5000")), Err(Denied::Loopback));
        assert_eq!(p.check(a("[::ffff:127.0.0.1]:5000")), Err(Denied::Loopback));
        assert_eq!(p.check(a("0.0.0.0:5000")), Err(Denied::Unspecified));
        assert_eq!(p.check(a("[::]:5000")), Err(Denied::Unspecified));
        assert_eq!(p.check(a("224.0.0.1:5000")), Err(Denied::Multicast));
        assert_eq!(p.check(a("[ff02::1]:5000")), Err(Denied::Multicast));
        assert_eq!(p.check(a("255.255.255.255:5000")), Err(Denied::Broadcast));
        assert_eq!(p.check(a("169.254.1.1:5000")), Err(Denied::LinkLocal));
        assert_eq!(p.check(a("[fe80::1]:5000")), Err(Denied::LinkLocal));
        assert_eq!(p.check(a("192.0.2.1:5000")), Err(Denied::RelayAddress));
        assert_eq!(p.check(a("203.0.113.5:30000")), Err(Denied::RelayAddress));
        assert_eq!(p.check(a("198.19.1.1:5000")), Err(Denied::DenyList));
        assert_eq!(p.check(a("198.51.100.7:0")), Err(Denied::PortZero));
        assert_eq!(p.check(a("198.51.100.7:4000")), Ok(()));
        assert_eq!(p.check(a("10.0.0.2:4000")), Ok(()), "private peers are fine");
    }

    #[test]
    fn allow_list_lifts_classes_but_never_own_sockets() {
        let mut p = prod();
        p.allow = vec!["127.0.0.0/8".parse().unwrap(), "192.0.2.0/24".parse().unwrap()];
        assert_eq!(p.check(a("127.0.0.1:5000")), Ok(()));
        assert_eq!(p.check(a("127.0.0.1:2223")), Ok(()), "nothing of the relay's listens on loopback");
        p.own.push("0.0.0.0".parse().unwrap()); // ng on the wildcard address
        assert_eq!(p.check(a("127.0.0.1:2223")), Err(Denied::RelaySocket), "lab or not: not ng");
        assert_eq!(p.check(a("192.0.2.1:5000")), Ok(()));
        assert_eq!(p.check(a("192.0.2.1:30001")), Err(Denied::RelaySocket));
        assert_eq!(p.check(a("224.0.0.1:5000")), Err(Denied::Multicast), "never");
    }

    #[test]
    fn lab_loopback_allows_loopback_peers_but_not_the_relay() {
        let p = AddressPolicy {
            own: vec!["127.0.0.1".parse().unwrap()],
            own_ports: vec![(30000, 40000), (2223, 2223), (9900, 9900)],
            lab_loopback: true,
            ..Default::default()
        };
        assert_eq!(p.check(a("127.0.0.1:5000")), Ok(()));
        assert_eq!(p.check(a("127.0.0.2:5000")), Ok(()));
        assert_eq!(p.check(a("127.0.0.1:2223")), Err(Denied::RelaySocket));
        assert_eq!(p.check(a("127.0.0.9:9900")), Ok(()), "127.0.0.9 does not reach 127.0.0.1:9900");
        assert_eq!(p.check(a("127.0.0.1:30002")), Err(Denied::RelaySocket));
        assert_eq!(p.check(a("[::1]:35000")), Ok(()), "the relay has no socket on ::1");
        let wild = AddressPolicy { own: vec!["127.0.0.1".parse().unwrap(), "0.0.0.0".parse().unwrap()], ..p.clone() };
        assert_eq!(wild.check(a("127.0.0.9:9900")), Err(Denied::RelaySocket), "a wildcard listener is reached");
        assert_eq!(wild.check(a("[::1]:35000")), Err(Denied::RelaySocket));
        assert_eq!(p.check(a("0.0.0.0:5000")), Err(Denied::Unspecified));
    }
}
