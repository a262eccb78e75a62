//! The kernel-bypass backend: an XDP program (ebpf/relay_xdp.c, loaded with aya) steers
//! packets of known media flows into AF_XDP sockets; per-queue workers rewrite and
//! transmit them from shared memory. Everything else -- and the first packets of a flow
//! whose steering entry is not there yet -- takes the kernel path to the relay's bound
//! UDP sockets, which the io_uring backend serves as before.
//!
//! One truth per relay socket: the AF_XDP workers (every queue) and the io_uring workers
//! (the kernel path: IPv4 options, fragments, IPv6 extension headers, anything before the
//! steering entry) share ONE flow table, so one latch and one SRTP state (rollover
//! counter, replay window) decide whichever queue or path a packet takes. Each worker
//! locks it once per received batch and never across a syscall that may block.
//!
//! Control-plane order for a flow: socket bound (port reserved), its flow in the shared
//! table and its descriptor with every worker -> rule applied to the table (once, by the
//! control plane; the workers have taken their descriptors, acknowledged) -> steering
//! entry in the BPF map. Removal goes the other way round, so a steered packet always
//! finds its flow.

pub mod abi;
pub mod frame;
pub mod netlink;
pub mod resolver;
pub mod worker;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use crossbeam_queue::ArrayQueue;

use rules::dataplane::{ApplyError, DataPlane, FlowCounters, FlowRule};

use crate::dataplane::UringDataPlane;
use crate::dataplane::WorkerFd;
use crate::stats::Path;
use crate::worker::{lock_table, Command, WorkerHandle};
use relay_core::flow::FlowTable;
use worker::{WorkerConfig, XskSockets};

/// The steering program, compiled from ebpf/relay_xdp.c by build.rs.
pub static RELAY_XDP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/relay_xdp.o"));
/// The benchmark's in-kernel ceiling (ebpf/ceiling_xdp.c).
pub static CEILING_XDP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ceiling_xdp.o"));

pub use abi::{FlowKey, FlowVal, OwnKey, FLOW_STRICT_SOURCE};

/// `settings[0]` of the program: the interface is loopback, where loopback and own
/// sources are normal (SETTING_LOCAL_SOURCES).
const SETTING_LOCAL_SOURCES: u32 = 1;
/// Entries of the program's `own_addrs` map.
const OWN_ADDRS_MAX: usize = 1024;

/// Counter names of the program's per-CPU `stats` array, in its order.
pub const PROGRAM_STATS: [&str; 8] = [
    "steered",
    "pass-other",
    "pass-no-flow",
    "pass-no-socket",
    "pass-unparsed",
    "drop-source",
    "drop-martian",
    "pass-not-media",
];

/// The steering program attached to one interface, with its maps.
pub struct Attached {
    pub name: String,
    pub ifindex: u32,
    addrs: Vec<IpAddr>,
    pub mode: &'static str,
    /// Holds the program and its link: dropping it detaches.
    bpf: Option<Ebpf>,
    flows: BpfHashMap<MapData, FlowKey, FlowVal>,
    stats: PerCpuArray<MapData, u64>,
    xsks: XskMap<MapData>,
    own_addrs: BpfHashMap<MapData, OwnKey, u8>,
    settings: Array<MapData, u32>,
}

pub struct XdpOptions {
    pub interfaces: Vec<String>,
    /// `auto`: only native (driver) mode counts as XDP being available.
    pub require_native: bool,
    pub cpus: Vec<usize>,
    pub tos: u8,
    /// UMEM frames per worker (2 KiB each).
    pub frames: u32,
    /// The relay's own addresses beyond those of the attached interfaces (advertised,
    /// listen): steered frames from any of them are dropped (`drop-martian`).
    pub own_addrs: Vec<IpAddr>,
}

pub struct XdpDataPlane {
    uring: UringDataPlane,
    ifaces: Mutex<Vec<Attached>>,
    workers: Vec<Arc<WorkerHandle>>,
    /// Each worker's AF_XDP sockets (for their kernel counters).
    xsks: Vec<XskSockets>,
    steered: Mutex<HashMap<SocketAddr, usize>>,
    /// The one flow table of every relay socket, shared by the AF_XDP and io_uring workers.
    table: Arc<Mutex<FlowTable>>,
    running: Arc<AtomicBool>,
    _threads: Vec<std::thread::JoinHandle<()>>,
}

fn rx_queues(name: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
        .unwrap_or(1)
        .max(1)
}

/// Calls `f(interface, address)` for every address of every interface of the calling
/// thread's network namespace (getifaddrs: unlike /sys, right after setns too).
fn for_each_ifaddr(mut f: impl FnMut(&str, &libc::sockaddr)) {
    unsafe {
        let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifa) != 0 {
            return;
        }
        let mut p = ifa;
        while !p.is_null() {
            let a = &*p;
            if !a.ifa_addr.is_null() {
                f(&std::ffi::CStr::from_ptr(a.ifa_name).to_string_lossy(), &*a.ifa_addr);
            }
            p = a.ifa_next;
        }
        libc::freeifaddrs(ifa);
    }
}

/// Every (interface, IP address) of the calling thread's network namespace.
fn all_addresses() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    for_each_ifaddr(|name, sa| {
        let ip = match sa.sa_family as i32 {
            libc::AF_INET => {
                let sin = unsafe { &*(sa as *const libc::sockaddr as *const libc::sockaddr_in) };
                IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(sa as *const libc::sockaddr as *const libc::sockaddr_in6) };
                IpAddr::from(sin6.sin6_addr.s6_addr)
            }
            _ => return,
        };
        out.push((name.to_string(), ip));
    });
    out
}

/// Whether interface `name` is a loopback device.
fn is_loopback(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & libc::IFF_LOOPBACK as u32 != 0)
}

/// The MAC address of interface `name`.
pub fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let mut out = None;
    for_each_ifaddr(|n, sa| {
        if n == name && sa.sa_family as i32 == libc::AF_PACKET {
            let ll = unsafe { &*(sa as *const libc::sockaddr as *const libc::sockaddr_ll) };
            out = ll.sll_addr[..6].try_into().ok();
        }
    });
    out
}

/// The addresses configured on interface `name`.
pub fn interface_addresses(name: &str) -> Vec<IpAddr> {
    all_addresses().into_iter().filter(|(n, _)| n == name).map(|(_, a)| a).collect()
}

/// The interface that holds address `ip`, if any.
pub fn interface_of(ip: IpAddr) -> Option<String> {
    all_addresses().into_iter().find(|(_, a)| *a == ip).map(|(n, _)| n)
}

/// Load the steering program and attach it to interface `name` (of the calling thread's
/// network namespace).
pub fn attach(name: &str, require_native: bool) -> io::Result<Attached> {
    let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no network interface {name:?}")));
    }
    let mut bpf = Ebpf::load(RELAY_XDP).map_err(|e| io::Error::other(format!("loading the XDP program: {e}")))?;
    let prog: &mut Xdp = bpf
        .program_mut("relay_xdp")
        .ok_or_else(|| io::Error::other("relay_xdp missing from the object"))?
        .try_into()
        .map_err(|e| io::Error::other(format!("{e}")))?;
    prog.load().map_err(|e| io::Error::other(format!("the kernel refused the XDP program: {e}")))?;
    let mode = match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
        Ok(_) => "native",
        Err(e) if require_native => {
            return Err(io::Error::other(format!("{name}: XDP native mode not available: {e}")));
        }
        Err(e) => {
            log::warn!("{name}: XDP native mode not available ({e}); using generic mode (slower)");
            prog.attach_to_if_index(ifindex, XdpMode::Skb)
                .map_err(|e| io::Error::other(format!("{name}: cannot attach XDP: {e}")))?;
            "generic"
        }
    };
    let take = |bpf: &mut Ebpf, m: &str| bpf.take_map(m).ok_or_else(|| io::Error::other(format!("map {m} missing")));
    let flows = BpfHashMap::try_from(take(&mut bpf, "flows")?).map_err(io::Error::other)?;
    let stats = PerCpuArray::try_from(take(&mut bpf, "stats")?).map_err(io::Error::other)?;
    let xsks = XskMap::try_from(take(&mut bpf, "xsks")?).map_err(io::Error::other)?;
    let own_addrs = BpfHashMap::try_from(take(&mut bpf, "own_addrs")?).map_err(io::Error::other)?;
    let settings = Array::try_from(take(&mut bpf, "settings")?).map_err(io::Error::other)?;
    Ok(Attached {
        name: name.to_string(),
        ifindex,
        addrs: interface_addresses(name),
        mode,
        bpf: Some(bpf),
        flows,
        stats,
        xsks,
        own_addrs,
        settings,
    })
}

impl Attached {
    /// Steer datagrams to `local` into the AF_XDP socket of their receive queue.
    pub fn steer(&mut self, local: SocketAddr, val: FlowVal) -> io::Result<()> {
        self.flows.insert(FlowKey::new(local), val, 0).map_err(io::Error::other)
    }

    /// Tell the program which sources are the relay's own (`own`) and whether this is a
    /// loopback interface (where local sources are normal); steered frames from other
    /// local sources are dropped as martians.
    pub fn set_own_addresses(&mut self, own: &[IpAddr]) -> io::Result<()> {
        let lo = is_loopback(&self.name);
        self.settings.set(0, if lo { SETTING_LOCAL_SOURCES } else { 0 }, 0).map_err(io::Error::other)?;
        for ip in own.iter().take(OWN_ADDRS_MAX) {
            self.own_addrs.insert(OwnKey::new(*ip), 1, 0).map_err(io::Error::other)?;
        }
        if own.len() > OWN_ADDRS_MAX {
            log::warn!("{}: more than {OWN_ADDRS_MAX} own addresses; the rest are not checked by XDP", self.name);
        }
        Ok(())
    }

    /// The AF_XDP socket for receive queue `queue`.
    pub fn set_socket(&mut self, queue: u32, fd: std::os::fd::RawFd) -> io::Result<()> {
        self.xsks.set(queue, fd, 0).map_err(io::Error::other)
    }
}

impl XdpDataPlane {
    /// Attach the program to every interface, bind the AF_XDP sockets, start the workers
    /// and the next-hop thread. `uring` keeps serving the relay's sockets (first packets,
    /// unresolved neighbours, anything the program passes); it must have been started with
    /// one shared flow table (`UringDataPlane::start_with(.., true)`), which the AF_XDP
    /// workers use too.
    pub fn start(opts: &XdpOptions, mut uring: UringDataPlane) -> io::Result<XdpDataPlane> {
        let running = Arc::new(AtomicBool::new(true));
        let Some(table) = uring.shared_table() else {
            uring.stop();
            return Err(io::Error::other("the io_uring workers of the xdp backend need a shared flow table"));
        };
        match Self::start_parts(opts, table.clone(), uring.epoch(), running.clone()) {
            Ok((ifaces, workers, xsks, t)) => Ok(XdpDataPlane {
                uring,
                ifaces: Mutex::new(ifaces),
                workers,
                xsks,
                steered: Mutex::new(HashMap::new()),
                table,
                running,
                _threads: vec![t],
            }),
            Err(e) => {
                // whatever was attached is detached by dropping it; stop what started
                running.store(false, Relaxed);
                uring.stop();
                Err(e)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn start_parts(
        opts: &XdpOptions,
        table: Arc<Mutex<FlowTable>>,
        epoch: Instant,
        running: Arc<AtomicBool>,
    ) -> io::Result<(Vec<Attached>, Vec<Arc<WorkerHandle>>, Vec<XskSockets>, std::thread::JoinHandle<()>)> {
        if opts.interfaces.is_empty() {
            return Err(io::Error::other("no XDP interface (--xdp-interface)"));
        }
        let mut ifaces = Vec::new();
        for name in &opts.interfaces {
            ifaces.push(attach(name, opts.require_native)?);
        }
        // every address of this host's namespace and the configured ones (advertised,
        // listen): a frame from one of them never comes from a media peer
        let mut own: Vec<IpAddr> = all_addresses().into_iter().map(|(_, a)| a).collect();
        own.extend(&opts.own_addrs);
        own.retain(|ip| !ip.is_unspecified());
        own.sort();
        own.dedup();
        for a in &mut ifaces {
            a.set_own_addresses(&own)?;
        }
        let queues = opts.interfaces.iter().map(|n| rx_queues(n)).max().unwrap_or(1);
        let resolve = Arc::new(ArrayQueue::new(65536));
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(io::Error::last_os_error());
        }
        let resolve_wake = Arc::new(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(wake) });
        let mut workers = Vec::new();
        let mut xsks = Vec::new();
        for q in 0..queues {
            let on: Vec<usize> = (0..ifaces.len()).filter(|&i| rx_queues(&ifaces[i].name) > q).collect();
            let cfg = WorkerConfig {
                queue_id: q as u32,
                ifindexes: on.iter().map(|&i| ifaces[i].ifindex).collect(),
                cpu: (!opts.cpus.is_empty()).then(|| opts.cpus[q % opts.cpus.len()]),
                frames: opts.frames,
                tos: opts.tos,
                table: table.clone(),
                epoch,
                resolve: resolve.clone(),
                resolve_wake: resolve_wake.clone(),
            };
            let (w, x) = worker::spawn(cfg, running.clone())?;
            for (k, &i) in on.iter().enumerate() {
                ifaces[i].xsks.set(q as u32, x.fds[k].1, 0).map_err(io::Error::other)?;
            }
            workers.push(Arc::new(w));
            xsks.push(x);
        }
        let zero_copy = xsks.iter().all(|x| x.zero_copy);
        let mut links = Vec::new();
        for a in &ifaces {
            let mac = interface_mac(&a.name).unwrap_or([0; 6]);
            links.push((a.ifindex, mac));
            log::info!(
                "XDP on {} (ifindex {}, {} mode, {} queue(s), AF_XDP {} mode), addresses {:?}",
                a.name,
                a.ifindex,
                a.mode,
                rx_queues(&a.name),
                if zero_copy { "zero-copy" } else { "copy" },
                a.addrs
            );
        }
        let t = resolver::spawn(links, resolve, resolve_wake, workers.clone(), running)?;
        Ok((ifaces, workers, xsks, t))
    }

    /// Detach the program from every interface (the kernel path takes over at once) and
    /// stop the AF_XDP workers.
    pub fn detach(&self) {
        for a in self.ifaces.lock().unwrap().iter_mut() {
            a.bpf.take();
        }
        self.running.store(false, Relaxed);
        for w in &self.workers {
            w.kick();
        }
    }

    /// Wait until every AF_XDP worker has taken the commands sent so far; false when one
    /// has not within [`APPLY_WAIT`].
    fn wait_applied(&self) -> bool {
        let targets: Vec<u64> = self.workers.iter().map(|w| w.send(Command::Wake)).collect();
        let deadline = Instant::now() + APPLY_WAIT;
        for (w, &t) in self.workers.iter().zip(&targets) {
            if !w.wait_applied(t, deadline) {
                log::warn!("an AF_XDP worker is slow to apply rules");
                return false;
            }
        }
        true
    }
}

/// How long `apply` waits for every AF_XDP worker to take a socket before it refuses to
/// steer it.
const APPLY_WAIT: Duration = Duration::from_secs(1);

impl XdpDataPlane {
    /// Steer a socket whose rule applied: only once every AF_XDP worker has taken it, and
    /// only on an address of an XDP interface (else the socket path serves it).
    fn steer(&self, rule: &FlowRule) -> Result<(), ApplyError> {
        let val = FlowVal::for_rule(rule);
        let local = rule.local;
        if !self.wait_applied() {
            return Err(ApplyError::Backend(format!(
                "the AF_XDP workers did not take {local} within {APPLY_WAIT:?}; not steered"
            )));
        }
        let mut ifaces = self.ifaces.lock().unwrap();
        let Some(i) = ifaces.iter().position(|a| a.addrs.contains(&local.ip())) else {
            return Ok(()); // not an address of an XDP interface: the socket path serves it
        };
        match ifaces[i].flows.insert(FlowKey::new(local), val, 0) {
            Ok(()) => {
                self.steered.lock().unwrap().insert(local, i);
            }
            Err(e) => log::warn!("cannot steer {local} on {}: {e}; it stays on the socket path", ifaces[i].name),
        }
        Ok(())
    }
}

impl DataPlane for XdpDataPlane {
    fn open(&self, local: SocketAddr, affinity: u64) -> io::Result<()> {
        let (kernel, counters) = self.uring.open_shared(local, affinity)?;
        // in the shared table now, so that the rule finds it (its io_uring worker's own
        // insert, when it takes the socket, finds it there)
        lock_table(&self.table).insert(local, counters.clone());
        // one duplicate of the socket for all AF_XDP workers: 2 descriptors per relay
        // socket, whatever the number of queues (its closed flag is not needed: `close`
        // waits for the workers to apply the Close, which drops their holds)
        let socket = Arc::new(WorkerFd::new(kernel).0);
        for w in &self.workers {
            w.send(Command::Open { local, socket: socket.clone(), counters: counters.clone() });
        }
        Ok(())
    }

    /// Applied once to the shared table (every worker and path), then steered only when
    /// it applied and every AF_XDP worker has taken the socket: a refused rule is never
    /// steered, and never forwarded in plain.
    fn apply(&self, rule: FlowRule) -> Result<(), ApplyError> {
        lock_table(&self.table).apply(&rule)?;
        self.steer(&rule)
    }

    /// The shared table (keys and all, for every worker and path) resumed, then steered
    /// exactly as `apply` steers.
    fn restore(&self, rule: FlowRule, state: rules::state::FlowState) -> Result<(), ApplyError> {
        let now_us = self.uring.epoch().elapsed().as_micros() as u64;
        lock_table(&self.table).restore(&rule, state, now_us)?;
        self.steer(&rule)
    }

    fn flow_state(&self, local: SocketAddr) -> Option<rules::state::FlowState> {
        let now_us = self.uring.epoch().elapsed().as_micros() as u64;
        lock_table(&self.table).state(local, now_us)
    }

    fn close(&self, local: SocketAddr) {
        if let Some(i) = self.steered.lock().unwrap().remove(&local) {
            let mut ifaces = self.ifaces.lock().unwrap();
            if let Err(e) = ifaces[i].flows.remove(&FlowKey::new(local)) {
                log::warn!("removing the steering entry of {local}: {e}");
            }
        }
        for w in &self.workers {
            w.send(Command::Close(local));
        }
        // the workers' duplicates of the descriptor keep the port bound until they have
        // applied the Close: wait for that, so the port can be bound again at once (the
        // socket worker's own descriptor is waited for by the next open of the address)
        if self.running.load(Relaxed) {
            self.wait_applied();
        }
        self.uring.close(local);
    }

    fn counters(&self, local: SocketAddr) -> Option<FlowCounters> {
        // one table, one set of counters per flow, whichever worker counted
        self.uring.counters(local)
    }

    fn now_ms(&self) -> u64 {
        self.uring.now_ms()
    }

    fn metrics(&self) -> Vec<(String, String, u64)> {
        let mut v = self.uring.metrics();
        for (i, w) in self.workers.iter().enumerate() {
            w.stats.render(&mut v, Path::Xsk, i);
        }
        let ifaces = self.ifaces.lock().unwrap();
        // the kernel's own AF_XDP socket counters (XDP_STATISTICS)
        for (i, x) in self.xsks.iter().enumerate() {
            for &(ifindex, fd) in &x.fds {
                let name = ifaces.iter().find(|a| a.ifindex == ifindex).map(|a| a.name.as_str()).unwrap_or("?");
                let mut st = [0u64; 6];
                let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
                const SOL_XDP: libc::c_int = 283;
                const XDP_STATISTICS: libc::c_int = 7;
                let r = unsafe { libc::getsockopt(fd, SOL_XDP, XDP_STATISTICS, st.as_mut_ptr() as *mut _, &mut len) };
                if r != 0 {
                    continue;
                }
                let names = [
                    "rx-dropped",
                    "rx-invalid-descs",
                    "tx-invalid-descs",
                    "rx-ring-full",
                    "rx-fill-ring-empty",
                    "tx-ring-empty",
                ];
                for (k, n) in names.iter().enumerate() {
                    v.push((
                        "relay_xsk_socket_events_total".into(),
                        format!("queue=\"{i}\",interface=\"{name}\",event=\"{n}\""),
                        st[k],
                    ));
                }
            }
        }
        for a in ifaces.iter() {
            for (idx, name) in PROGRAM_STATS.iter().enumerate() {
                let total = a.stats.get(&(idx as u32), 0).map(|pc| pc.iter().sum::<u64>()).unwrap_or(0);
                v.push((
                    "relay_xdp_packets_total".into(),
                    format!("interface=\"{}\",action=\"{name}\"", a.name),
                    total,
                ));
            }
            // our bookkeeping, not a walk of the kernel's map (a syscall per key, under the
            // engine's lock): scripts/xdp-test.sh checks the map itself with bpftool
            let n = self.steered.lock().unwrap().values().filter(|&&i| ifaces[i].ifindex == a.ifindex).count();
            v.push(("relay_xdp_steered_flows".into(), format!("interface=\"{}\"", a.name), n as u64));
        }
        v
    }
}
