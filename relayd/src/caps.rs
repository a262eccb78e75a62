//! Which Linux capabilities the configuration needs, whether the process has them, and
//! what to tell the operator when it does not. relayd runs as its own unprivileged user
//! with only these (packaging/relayd.service's AmbientCapabilities=); a capability the
//! configuration needs but the process lacks is named at start, with what it is for and
//! how to grant it, instead of an EPERM from deep inside the XDP loader.
//!
//! [`needed`] is pure (configuration and limits in, requirements out) and unit-tested;
//! [`effective`] reads the process's set with capget(2).

use std::fmt;
use std::net::SocketAddr;

/// The capabilities relayd may need (the kernel's numbers, capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cap {
    /// Bind ng or HTTP to a port below `net.ipv4.ip_unprivileged_port_start` (1024).
    NetBindService = 10,
    /// Attach XDP programs, create XSKMAPs.
    NetAdmin = 12,
    /// Open AF_XDP sockets.
    NetRaw = 13,
    /// Pin the AF_XDP UMEM beyond RLIMIT_MEMLOCK.
    IpcLock = 14,
    /// What CAP_BPF was split from (kernels before 5.8 know only this).
    SysAdmin = 21,
    /// SCHED_FIFO for the workers (`worker-priority`).
    SysNice = 23,
    /// Load BPF programs and create their maps (Linux 5.8+).
    Bpf = 39,
}

impl Cap {
    pub const ALL: [Cap; 7] =
        [Cap::NetBindService, Cap::NetAdmin, Cap::NetRaw, Cap::IpcLock, Cap::SysAdmin, Cap::SysNice, Cap::Bpf];

    pub fn name(self) -> &'static str {
        match self {
            Cap::NetBindService => "CAP_NET_BIND_SERVICE",
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::NetRaw => "CAP_NET_RAW",
            Cap::IpcLock => "CAP_IPC_LOCK",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::SysNice => "CAP_SYS_NICE",
            Cap::Bpf => "CAP_BPF",
        }
    }

    pub fn from_name(s: &str) -> Option<Cap> {
        let s = s.trim().to_ascii_uppercase();
        let s = if s.starts_with("CAP_") { s } else { format!("CAP_{s}") };
        Cap::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities as the kernel keeps it: bit n = capability n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn has(self, c: Cap) -> bool {
        self.0 & (1 << c as u32) != 0
    }
    pub fn of(caps: &[Cap]) -> CapSet {
        CapSet(caps.iter().fold(0, |m, &c| m | (1 << c as u32)))
    }
    pub fn without(self, c: Cap) -> CapSet {
        CapSet(self.0 & !(1 << c as u32))
    }
}

/// The effective capabilities of this process (capget(2), version 3: 64 bits).
pub fn effective() -> std::io::Result<CapSet> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut h = Header { version: VERSION_3, pid: 0 };
    let mut d = [Data::default(); 2];
    // SAFETY: capget writes two Data structs for version 3, the size of `d`.
    if unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(CapSet(u64::from(d[0].effective) | u64::from(d[1].effective) << 32))
}

/// What the configuration asks for, as far as capabilities go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wants {
    /// The XDP backend: required (`backend = "xdp"`) or only tried (`auto`).
    pub xdp: Option<XdpNeed>,
    /// `worker-priority` (SCHED_FIFO) when not 0.
    pub worker_priority: u8,
    /// The addresses relayd binds itself (ng, HTTP).
    pub listen: Vec<(&'static str, SocketAddr)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpNeed {
    /// false: `auto`, which falls back to io_uring.
    pub required: bool,
    /// Bytes of UMEM the AF_XDP workers register (all queues).
    pub umem_bytes: u64,
}

/// Bytes of one AF_XDP frame (the backend's UMEM frame size, 2 KiB).
const UMEM_FRAME_BYTES: u64 = 2048;

impl Wants {
    /// What `cfg` asks for; `xdp_frames`: UMEM frames per AF_XDP worker (one worker per
    /// receive queue: counted here for one queue, the least XDP locks).
    pub fn of(cfg: &crate::config::Config, xdp_frames: u32) -> Wants {
        use crate::config::Backend;
        let xdp = match cfg.backend {
            Backend::Uring => None,
            b => Some(XdpNeed { required: b == Backend::Xdp, umem_bytes: u64::from(xdp_frames) * UMEM_FRAME_BYTES }),
        };
        let mut listen = vec![("listen-ng", cfg.listen_ng)];
        listen.extend(cfg.listen_http.map(|a| ("listen-http", a)));
        Wants { xdp, worker_priority: cfg.worker_priority, listen }
    }
}

/// The host's limits that stand in for a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_MEMLOCK (soft) in bytes; u64::MAX for unlimited.
    pub memlock: u64,
    /// RLIMIT_RTPRIO (soft): SCHED_FIFO up to this priority needs no CAP_SYS_NICE.
    pub rtprio: u64,
    /// `net.ipv4.ip_unprivileged_port_start`.
    pub unprivileged_port_start: u16,
}

impl Limits {
    /// This process's limits and its network namespace's unprivileged port start.
    pub fn current() -> Limits {
        let get = |r| {
            let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes one rlimit.
            if unsafe { libc::getrlimit(r, &mut l) } != 0 {
                return 0;
            }
            if l.rlim_cur == libc::RLIM_INFINITY {
                u64::MAX
            } else {
                l.rlim_cur
            }
        };
        let port_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1024);
        Limits {
            memlock: get(libc::RLIMIT_MEMLOCK),
            rtprio: get(libc::RLIMIT_RTPRIO),
            unprivileged_port_start: port_start,
        }
    }
}

/// One thing the configuration needs: satisfied by any capability of `any_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The part of the configuration: "backend xdp", "worker-priority 10", "listen-ng 0.0.0.0:22".
    pub feature: String,
    /// What the capability is for.
    pub why: String,
    /// Alternatives, the preferred first.
    pub any_of: Vec<Cap>,
    /// Without it relayd cannot run as configured (else it degrades, with a warning).
    pub fatal: bool,
    /// A way around it besides the capability (a limit), if there is one.
    pub or_else: Option<&'static str>,
}

impl Requirement {
    pub fn met(&self, have: CapSet) -> bool {
        self.any_of.iter().any(|&c| have.has(c))
    }
}

impl fmt::Display for Requirement {
    /// "backend xdp needs CAP_BPF (or CAP_SYS_ADMIN) to load the XDP program and create
    /// its maps; missing: CAP_BPF (run as root or add AmbientCapabilities=CAP_BPF)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.any_of[0];
        write!(f, "{} needs {first}", self.feature)?;
        if self.any_of.len() > 1 {
            let rest: Vec<_> = self.any_of[1..].iter().map(|c| c.name()).collect();
            write!(f, " (or {})", rest.join(" or "))?;
        }
        write!(f, " to {}; missing: {first} (run as root or add AmbientCapabilities={first}", self.why)?;
        if let Some(alt) = self.or_else {
            write!(f, ", or {alt}")?;
        }
        write!(f, ")")
    }
}

/// Everything the configuration needs, in the order relayd would trip over it.
pub fn needed(w: &Wants, l: Limits) -> Vec<Requirement> {
    let mut out = Vec::new();
    for (what, a) in &w.listen {
        if a.port() != 0 && a.port() < l.unprivileged_port_start {
            out.push(Requirement {
                feature: format!("{what} {a}"),
                why: format!("bind a port below {}", l.unprivileged_port_start),
                any_of: vec![Cap::NetBindService],
                fatal: true,
                or_else: Some("use a port of 1024 or above"),
            });
        }
    }
    if let Some(x) = &w.xdp {
        let feature = if x.required { "backend xdp" } else { "backend auto (to use XDP)" };
        let req = |caps: Vec<Cap>, why: &str, or_else| Requirement {
            feature: feature.to_string(),
            why: why.to_string(),
            any_of: caps,
            fatal: x.required,
            or_else,
        };
        out.push(req(vec![Cap::Bpf, Cap::SysAdmin], "load the XDP program and create its maps", None));
        out.push(req(vec![Cap::NetAdmin], "attach the XDP program to the interfaces and fill its socket map", None));
        out.push(req(vec![Cap::NetRaw], "open the AF_XDP sockets", None));
        if l.memlock < x.umem_bytes {
            out.push(Requirement {
                why: format!(
                    "lock {} MiB of AF_XDP packet memory (UMEM) while RLIMIT_MEMLOCK is {} KiB",
                    x.umem_bytes >> 20,
                    l.memlock >> 10
                ),
                ..req(vec![Cap::IpcLock], "", Some("raise RLIMIT_MEMLOCK: LimitMEMLOCK=infinity"))
            });
        }
    }
    if w.worker_priority > 0 && l.rtprio < u64::from(w.worker_priority) {
        out.push(Requirement {
            feature: format!("worker-priority {}", w.worker_priority),
            why: "run the data-plane workers at that SCHED_FIFO priority".into(),
            any_of: vec![Cap::SysNice],
            fatal: false,
            or_else: Some("raise RLIMIT_RTPRIO: LimitRTPRIO=, or set worker-priority = 0"),
        });
    }
    out
}

/// The requirements `have` does not meet.
pub fn missing(reqs: &[Requirement], have: CapSet) -> Vec<Requirement> {
    reqs.iter().filter(|r| !r.met(have)).cloned().collect()
}

/// For an error from loading or attaching XDP: when it is EPERM, the missing
/// capabilities of the XDP requirements (or, holding them all, where else EPERM comes
/// from); None for other errors.
pub fn explain_eperm(err: &str, xdp_reqs: &[Requirement], have: CapSet) -> Option<String> {
    let eperm = err.contains("Operation not permitted") || err.contains("os error 1)") || err.contains("EPERM");
    if !eperm {
        return None;
    }
    let miss = missing(xdp_reqs, have);
    if miss.is_empty() {
        return Some(
            "the kernel said EPERM although relayd holds CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW: check \
             kernel.unprivileged_bpf_disabled with a BPF token/LSM (SELinux, AppArmor, lockdown) and the unit's \
             CapabilityBoundingSet= and SystemCallFilter="
                .into(),
        );
    }
    Some(miss.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))
}

/// The start-up check's outcome: what the process holds and what the configuration needs.
#[derive(Debug, Clone)]
pub struct Checked {
    pub have: CapSet,
    pub reqs: Vec<Requirement>,
}

impl Checked {
    /// Whether XDP is out of reach (a requirement of `backend auto` is missing): auto
    /// then uses io_uring without trying.
    pub fn xdp_unavailable(&self) -> bool {
        self.reqs.iter().any(|r| r.feature.starts_with("backend") && !r.met(self.have))
    }

    /// Why loading or attaching XDP failed, when it failed with EPERM.
    pub fn explain(&self, err: &str) -> Option<String> {
        let xdp: Vec<_> = self.reqs.iter().filter(|r| r.feature.starts_with("backend")).cloned().collect();
        explain_eperm(err, &xdp, self.have)
    }
}

/// At start: every missing capability the configuration cannot do without is an error
/// (one line each); a missing one it can do without (auto's XDP, worker priority) is a
/// warning naming what relayd does instead.
pub fn check(w: &Wants) -> Result<Checked, String> {
    let have = match effective() {
        Ok(h) => h,
        Err(e) => {
            log::warn!("cannot read the process's capabilities (capget: {e}); not checking them");
            return Ok(Checked { have: CapSet(u64::MAX), reqs: Vec::new() });
        }
    };
    let reqs = needed(w, Limits::current());
    let miss = missing(&reqs, have);
    let (fatal, soft): (Vec<_>, Vec<_>) = miss.iter().partition(|r| r.fatal);
    for r in soft {
        let instead = if r.feature.starts_with("backend") { "using io_uring" } else { "using normal scheduling" };
        log::warn!("{r}; {instead}");
    }
    if !fatal.is_empty() {
        return Err(fatal.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n"));
    }
    Ok(Checked { have, reqs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits { memlock: u64::MAX, rtprio: 0, unprivileged_port_start: 1024 };
    const UNIT: [Cap; 4] = [Cap::NetAdmin, Cap::Bpf, Cap::NetRaw, Cap::SysNice];

    fn wants(xdp: Option<bool>, prio: u8, ng_port: u16) -> Wants {
        Wants {
            xdp: xdp.map(|required| XdpNeed { required, umem_bytes: 64 << 20 }),
            worker_priority: prio,
            listen: vec![("listen-ng", SocketAddr::from(([0, 0, 0, 0], ng_port)))],
        }
    }

    fn caps(r: &[Requirement]) -> Vec<Vec<Cap>> {
        r.iter().map(|r| r.any_of.clone()).collect()
    }

    #[test]
    fn io_uring_on_high_ports_needs_nothing() {
        assert!(needed(&wants(None, 0, 2223), ROOMY).is_empty());
    }

    #[test]
    fn xdp_needs_bpf_net_admin_net_raw() {
        let r = needed(&wants(Some(true), 0, 2223), ROOMY);
        assert_eq!(caps(&r), vec![vec![Cap::Bpf, Cap::SysAdmin], vec![Cap::NetAdmin], vec![Cap::NetRaw]]);
        assert!(r.iter().all(|r| r.fatal));
        assert!(missing(&r, CapSet::of(&UNIT)).is_empty());
        // CAP_SYS_ADMIN stands in for CAP_BPF (kernels before 5.8)
        assert!(missing(&r, CapSet::of(&[Cap::SysAdmin, Cap::NetAdmin, Cap::NetRaw])).is_empty());
        let m = missing(&r, CapSet::of(&UNIT).without(Cap::Bpf));
        assert_eq!(
            m[0].to_string(),
            "backend xdp needs CAP_BPF (or CAP_SYS_ADMIN) to load the XDP program and create its maps; missing: \
             CAP_BPF (run as root or add AmbientCapabilities=CAP_BPF)"
        );
        let m = missing(&r, CapSet::of(&UNIT).without(Cap::NetRaw));
        assert_eq!(m.len(), 1);
        assert!(m[0].to_string().contains("missing: CAP_NET_RAW"), "{}", m[0]);
    }

    #[test]
    fn auto_wants_xdp_but_does_not_need_it() {
        let r = needed(&wants(Some(false), 0, 2223), ROOMY);
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|r| !r.fatal && r.feature.starts_with("backend auto")));
    }

    #[test]
    fn umem_needs_ipc_lock_only_under_a_small_memlock_limit() {
        let small = Limits { memlock: 8 << 20, ..ROOMY };
        let r = needed(&wants(Some(true), 0, 2223), small);
        let lock = r.iter().find(|r| r.any_of == [Cap::IpcLock]).expect("CAP_IPC_LOCK");
        assert!(lock.to_string().contains("lock 64 MiB"), "{lock}");
        assert!(lock.to_string().contains("LimitMEMLOCK=infinity"), "{lock}");
        assert!(needed(&wants(Some(true), 0, 2223), Limits { memlock: 64 << 20, ..ROOMY })
            .iter()
            .all(|r| r.any_of != [Cap::IpcLock]));
    }

    #[test]
    fn worker_priority_needs_sys_nice_unless_rtprio_allows_it() {
        let r = needed(&wants(None, 10, 2223), ROOMY);
        assert_eq!(caps(&r), vec![vec![Cap::SysNice]]);
        assert!(!r[0].fatal);
        assert!(needed(&wants(None, 10, 2223), Limits { rtprio: 10, ..ROOMY }).is_empty());
    }

    #[test]
    fn low_ports_need_net_bind_service() {
        let r = needed(&wants(None, 0, 22), ROOMY);
        assert_eq!(caps(&r), vec![vec![Cap::NetBindService]]);
        assert!(r[0]
            .to_string()
            .starts_with("listen-ng 0.0.0.0:22 needs CAP_NET_BIND_SERVICE to bind a port below 1024"));
        assert!(needed(&wants(None, 0, 22), Limits { unprivileged_port_start: 0, ..ROOMY }).is_empty());
    }

    #[test]
    fn eperm_is_explained_by_what_is_missing() {
        let r = needed(&wants(Some(true), 0, 2223), ROOMY);
        let have = CapSet::of(&UNIT).without(Cap::NetAdmin);
        let e = "rpub: cannot attach XDP: Operation not permitted (os error 1)";
        assert!(explain_eperm(e, &r, have).unwrap().contains("missing: CAP_NET_ADMIN"));
        assert!(explain_eperm(e, &r, CapSet::of(&UNIT)).unwrap().contains("unprivileged_bpf_disabled"));
        assert_eq!(explain_eperm("No such device (os error 19)", &r, have), None);
    }

    #[test]
    fn names_parse_as_systemd_and_setpriv_write_them() {
        assert_eq!(Cap::from_name("CAP_BPF"), Some(Cap::Bpf));
        assert_eq!(Cap::from_name("net_admin"), Some(Cap::NetAdmin));
        assert_eq!(Cap::from_name("cap_chown"), None);
    }

    #[test]
    fn capget_reads_this_process() {
        // whatever the test runs as, the call works and agrees with /proc
        let set = effective().unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap();
        assert_eq!(set.0, u64::from_str_radix(eff.trim(), 16).unwrap());
    }
}
