//! Relay interfaces (`--interface NAME/IP[!ADVERTISED]`) and their port pools.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::dataplane::DataPlane;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Address the relay's media sockets bind to.
    pub local: IpAddr,
    /// Address written into SDP (the public address when the relay sits behind NAT).
    pub advertised: IpAddr,
}

impl Interface {
    /// `NAME/IP[!ADVERTISED]` or `IP[!ADVERTISED]` (interface "default").
    pub fn parse(spec: &str) -> Result<Interface, String> {
        let (name, rest) = match spec.split_once('/') {
            Some((n, r)) if !n.contains(':') && !n.is_empty() && !n.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                (n.to_string(), r)
            }
            _ => ("default".to_string(), spec),
        };
        let (local, adv) = match rest.split_once('!') {
            Some((l, a)) => (l, Some(a)),
            None => (rest, None),
        };
        let parse = |s: &str| {
            s.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .map_err(|_| format!("interface {spec:?}: {s:?} is not an IP address"))
        };
        let local = parse(local)?;
        let advertised = match adv {
            Some(a) => parse(a)?,
            None => local,
        };
        if advertised.is_ipv4() != local.is_ipv4() {
            return Err(format!("interface {spec:?}: advertised address family differs from the local one"));
        }
        Ok(Interface { name, local, advertised })
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.local)?;
        if self.advertised != self.local {
            write!(f, "!{}", self.advertised)?;
        }
        Ok(())
    }
}

/// Even/odd port pairs (RTP even, RTCP = RTP + 1) in `min..=max` on one local address.
pub struct PortPool {
    pub addr: IpAddr,
    pub min: u16,
    pub max: u16,
    next: u16,
    pub in_use: usize,
}

impl PortPool {
    pub fn new(addr: IpAddr, min: u16, max: u16) -> PortPool {
        let min = min + (min & 1);
        PortPool { addr, min, max, next: min, in_use: 0 }
    }

    pub fn capacity(&self) -> usize {
        if self.max <= self.min {
            0
        } else {
            ((self.max - self.min) as usize).div_ceil(2)
        }
    }

    /// Reserve an RTP/RTCP pair by binding both sockets in the data plane. Ports that
    /// something else holds are skipped.
    pub fn allocate(&mut self, dp: &dyn DataPlane, affinity: u64) -> Result<u16, String> {
        let cap = self.capacity();
        for _ in 0..cap {
            let p = self.next;
            self.next = if p as u32 + 3 > self.max as u32 { self.min } else { p + 2 };
            let rtp = SocketAddr::new(self.addr, p);
            let rtcp = SocketAddr::new(self.addr, p + 1);
            if let Err(e) = dp.open(rtp, affinity) {
                match fd_limit(&e) {
                    Some(m) => return Err(format!("cannot bind a port pair on {}: {m}", self.addr)),
                    None => continue,
                }
            }
            if let Err(e) = dp.open(rtcp, affinity) {
                dp.close(rtp);
                match fd_limit(&e) {
                    Some(m) => return Err(format!("cannot bind a port pair on {}: {m}", self.addr)),
                    None => continue,
                }
            }
            self.in_use += 1;
            return Ok(p);
        }
        Err(format!("no free port pair in {}-{} on {} (ports exhausted)", self.min, self.max, self.addr))
    }

    pub fn release(&mut self, dp: &dyn DataPlane, port: u16) {
        dp.close(SocketAddr::new(self.addr, port));
        dp.close(SocketAddr::new(self.addr, port + 1));
        self.in_use = self.in_use.saturating_sub(1);
    }
}

/// The real cause when a bind failed for want of descriptors (EMFILE, ENFILE): no other
/// port would do better, and "ports exhausted" would send the operator the wrong way.
fn fd_limit(e: &std::io::Error) -> Option<String> {
    match e.raw_os_error()? {
        libc::EMFILE => {
            let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
            Some(format!("too many open files (RLIMIT_NOFILE {})", r.rlim_cur))
        }
        libc::ENFILE => Some("too many open files in the system (fs.file-max)".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::MemoryDataPlane;

    #[test]
    fn interface_specs() {
        let i = Interface::parse("pub/192.0.2.1!203.0.113.5").unwrap();
        assert_eq!(
            (i.name.as_str(), i.local.to_string(), i.advertised.to_string()),
            ("pub", "192.0.2.1".into(), "203.0.113.5".into())
        );
        let i = Interface::parse("127.0.0.1").unwrap();
        assert_eq!(i.name, "default");
        let i = Interface::parse("::1").unwrap();
        assert_eq!(i.local.to_string(), "::1");
        let i = Interface::parse("v6/2001:db8::1").unwrap();
        assert_eq!(i.name, "v6");
        assert!(Interface::parse("foo/notanip").is_err());
        assert!(Interface::parse("1.2.3.4!::1").is_err());
    }

    #[test]
    fn pool_skips_taken_ports_and_reports_exhaustion() {
        let dp = MemoryDataPlane::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        dp.state.lock().unwrap().refuse.push(SocketAddr::new(a, 30001));
        let mut pool = PortPool::new(a, 30000, 30005);
        assert_eq!(pool.capacity(), 3);
        assert_eq!(pool.allocate(&dp, 0).unwrap(), 30002);
        assert_eq!(pool.allocate(&dp, 0).unwrap(), 30004);
        let e = pool.allocate(&dp, 0).unwrap_err();
        assert!(e.contains("exhausted"), "{e}");
        pool.release(&dp, 30002);
        assert_eq!(pool.allocate(&dp, 0).unwrap(), 30002);
    }
}
