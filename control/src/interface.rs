//! Relay interfaces (`--interface NAME/IP[!ADVERTISED]`) and their port pools.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rules::dataplane::DataPlane;

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
///
/// Pairs are drawn at random (RFC 3550 §8 / RTP Bleed: an off-path host must not be able
/// to predict the next call's port): a few uniform picks among the pairs this pool does
/// not hold, then a linear probe from a random pair, so a nearly full range still finds
/// its last free pair. The pool remembers which pairs it holds, so a probe costs a bind
/// only for pairs that may be free.
pub struct PortPool {
    pub addr: IpAddr,
    pub min: u16,
    pub max: u16,
    /// Pair `k` (RTP port `min + 2k`) is held by this pool.
    held: Vec<bool>,
    pub in_use: usize,
}

/// Uniform picks tried before the linear probe.
const RANDOM_PICKS: usize = 8;

/// How `PortPool::reserve` says a port is bound by another process: after a restart that
/// can be the old process's sockets, which the kernel releases a moment after it exited
/// (its io_uring instance is torn down asynchronously), so the state store waits and tries
/// again on this one error.
pub const PORT_TAKEN: &str = "is taken by another process";

impl PortPool {
    pub fn new(addr: IpAddr, min: u16, max: u16) -> PortPool {
        let min = min.saturating_add(min & 1);
        let mut p = PortPool { addr, min, max, held: Vec::new(), in_use: 0 };
        p.held = vec![false; p.capacity()];
        p
    }

    pub fn capacity(&self) -> usize {
        if self.max <= self.min {
            0
        } else {
            ((self.max - self.min) as usize).div_ceil(2)
        }
    }

    fn port_of(&self, k: usize) -> u16 {
        self.min + 2 * k as u16
    }

    /// Bind pair `k`: Ok(false) when something else holds one of its ports; an error
    /// when no port can be bound at all (the descriptor limit).
    fn try_pair(&mut self, dp: &dyn DataPlane, k: usize, affinity: u64) -> Result<bool, PortError> {
        let p = self.port_of(k);
        let rtp = SocketAddr::new(self.addr, p);
        let rtcp = SocketAddr::new(self.addr, p + 1);
        let limit = |e: &std::io::Error| fd_limit(e).map(|why| PortError::Limit { addr: self.addr, why });
        if let Err(e) = dp.open(rtp, affinity) {
            return limit(&e).map_or(Ok(false), Err);
        }
        if let Err(e) = dp.open(rtcp, affinity) {
            dp.close(rtp);
            return limit(&e).map_or(Ok(false), Err);
        }
        self.held[k] = true;
        self.in_use += 1;
        Ok(true)
    }

    /// Reserve an RTP/RTCP pair at random by binding both sockets in the data plane.
    /// Ports that something else holds are skipped.
    pub fn allocate(&mut self, dp: &dyn DataPlane, affinity: u64) -> Result<u16, PortError> {
        use rand::Rng;
        let cap = self.capacity();
        if self.in_use < cap {
            let mut rng = rand::thread_rng();
            for _ in 0..RANDOM_PICKS {
                let k = rng.gen_range(0..cap);
                if !self.held[k] && self.try_pair(dp, k, affinity)? {
                    return Ok(self.port_of(k));
                }
            }
            let start = rng.gen_range(0..cap);
            for i in 0..cap {
                let k = (start + i) % cap;
                if !self.held[k] && self.try_pair(dp, k, affinity)? {
                    return Ok(self.port_of(k));
                }
            }
        }
        Err(PortError::Exhausted { min: self.min, max: self.max, addr: self.addr })
    }

    /// Reserve exactly the pair at `port` (a restored call's: crate::persist), binding both
    /// sockets; an error when the port is not an RTP port of this range or is taken.
    pub fn reserve(&mut self, dp: &dyn DataPlane, port: u16, affinity: u64) -> Result<(), String> {
        let k = match port.checked_sub(self.min) {
            Some(d) if d % 2 == 0 && (d / 2) as usize <= self.capacity().saturating_sub(1) && self.capacity() > 0 => {
                (d / 2) as usize
            }
            _ => return Err(format!("port {port} is not an RTP port of {}-{} on {}", self.min, self.max, self.addr)),
        };
        if self.held[k] {
            return Err(format!("port {port} on {} is held by another call", self.addr));
        }
        match self.try_pair(dp, k, affinity) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("port {port} or {} on {} {PORT_TAKEN}", port + 1, self.addr)),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn release(&mut self, dp: &dyn DataPlane, port: u16) {
        dp.close(SocketAddr::new(self.addr, port));
        dp.close(SocketAddr::new(self.addr, port + 1));
        if port >= self.min && (port - self.min).is_multiple_of(2) {
            if let Some(h) = self.held.get_mut(((port - self.min) / 2) as usize) {
                if std::mem::take(h) {
                    self.in_use = self.in_use.saturating_sub(1);
                }
            }
        }
    }
}

/// Why no port pair could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// Out of descriptors: no other port would do better (`why` names the limit).
    Limit { addr: IpAddr, why: String },
    /// Every pair of the range is held.
    Exhausted { min: u16, max: u16, addr: IpAddr },
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Limit { addr, why } => write!(f, "cannot bind a port pair on {addr}: {why}"),
            PortError::Exhausted { min, max, addr } => {
                write!(f, "no free port pair in {min}-{max} on {addr} (ports exhausted)")
            }
        }
    }
}

impl std::error::Error for PortError {}

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
    use rules::dataplane::MemoryDataPlane;

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
        let mut got = vec![pool.allocate(&dp, 0).unwrap(), pool.allocate(&dp, 0).unwrap()];
        got.sort();
        assert_eq!(got, [30002, 30004]);
        let e = pool.allocate(&dp, 0).unwrap_err();
        assert_eq!(e.to_string(), format!("no free port pair in 30000-30005 on {a} (ports exhausted)"));
        pool.release(&dp, 30002);
        assert_eq!(pool.in_use, 1);
        assert_eq!(pool.allocate(&dp, 0).unwrap(), 30002);
        // releasing what the pool does not hold changes nothing
        pool.release(&dp, 30000);
        pool.release(&dp, 30003);
        assert_eq!(pool.in_use, 2);
    }

    #[test]
    fn ports_are_random_and_the_whole_range_is_found() {
        let dp = MemoryDataPlane::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut pool = PortPool::new(a, 20000, 39999);
        assert_eq!(pool.capacity(), 10000);
        // a port something else holds is skipped; the rest of the range is still found
        dp.state.lock().unwrap().refuse.push(SocketAddr::new(a, 33333));
        let mut ports = Vec::new();
        for _ in 0..1000 {
            ports.push(pool.allocate(&dp, 0).unwrap());
        }
        let sequential = ports.windows(2).filter(|w| w[1] == w[0].wrapping_add(2)).count();
        assert!(sequential < 50, "{sequential} of 999 allocations were the next pair");
        assert!(ports.iter().all(|p| p % 2 == 0 && (20000..39999).contains(p)));
        for _ in 1000..9999 {
            ports.push(pool.allocate(&dp, 0).unwrap());
        }
        assert!(pool.allocate(&dp, 0).is_err());
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 9999);
        assert!(!ports.contains(&33332));
        // one freed pair in a full range is found again
        pool.release(&dp, 27000);
        assert_eq!(pool.allocate(&dp, 0).unwrap(), 27000);
    }
}
