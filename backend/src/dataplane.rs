//! `rules::dataplane::DataPlane` over the io_uring workers: binds relay sockets (so the
//! kernel keeps the ports reserved), places each call's sockets on one worker, applies
//! rules and reads counters. None of this is on the packet path.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rules::dataplane::{ApplyError, DataPlane, FlowCounters, FlowRule};
use rules::state::FlowState;

use crate::stats::Path;
use crate::uring::{self, WorkerConfig};
use crate::worker::{Command, WorkerHandle};
use relay_core::flow::counters::SharedCounters;
use relay_core::flow::FlowSettings;
use relay_core::flow::FlowTable;

/// A relay socket's descriptor as its worker owns it: dropping it closes the socket and
/// then raises `closed`, so the control plane knows when the port is free again (the
/// worker closes asynchronously, after its pending receive is cancelled).
pub struct WorkerFd {
    fd: Option<OwnedFd>,
    closed: Arc<AtomicBool>,
}

impl WorkerFd {
    pub fn new(fd: OwnedFd) -> (WorkerFd, Arc<AtomicBool>) {
        let closed = Arc::new(AtomicBool::new(false));
        (WorkerFd { fd: Some(fd), closed: closed.clone() }, closed)
    }
}

impl AsRawFd for WorkerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }
}

impl Drop for WorkerFd {
    fn drop(&mut self) {
        drop(self.fd.take());
        self.closed.store(true, Release);
    }
}

/// How long `open` waits for a worker to close the previous socket on the same address
/// before it tries to bind anyway (a stuck worker: the bind then fails and the port pool
/// skips the port).
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Wait until `closed` is raised (or `limit` passes); returns whether it was.
pub(crate) fn wait_flag(closed: &AtomicBool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut spins = 0u32;
    while !closed.load(Acquire) {
        if Instant::now() > deadline {
            return false;
        }
        if spins < 64 {
            std::thread::yield_now();
            spins += 1;
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    true
}

/// How long `flow_state` waits for a worker's answer (a worker answers between two
/// batches; one that does not within this is stuck, and the state store skips the socket).
const STATE_WAIT: Duration = Duration::from_secs(1);

/// An open relay socket: its worker, its counters, and the flag its descriptor raises when
/// the worker has closed it.
type OpenSocket = (usize, Arc<SharedCounters>, Arc<AtomicBool>);

pub struct UringDataPlane {
    workers: Vec<WorkerHandle>,
    sockets: Mutex<HashMap<SocketAddr, OpenSocket>>,
    /// Sockets closed by `close` whose worker may not have closed them yet: `open` of the
    /// same address waits for them, so a released port can be bound again at once.
    closing: Mutex<HashMap<SocketAddr, Arc<AtomicBool>>>,
    tos: u8,
    epoch: Instant,
    pub running: Arc<AtomicBool>,
    /// The one flow table every worker shares (`start_shared`), if so.
    shared: Option<Arc<Mutex<FlowTable>>>,
}

impl UringDataPlane {
    /// Start `n` workers, pinned to `cpus` (round-robin) when given, each with a flow
    /// table of its own.
    pub fn start(n: usize, cpus: &[usize], tos: u8, flow: FlowSettings) -> io::Result<UringDataPlane> {
        Self::start_with(n, cpus, tos, flow, false)
    }

    /// Like `start`; with `shared`, every worker uses one flow table (`shared_table`),
    /// which the XDP backend's AF_XDP workers use too.
    pub fn start_with(
        n: usize,
        cpus: &[usize],
        tos: u8,
        flow: FlowSettings,
        shared: bool,
    ) -> io::Result<UringDataPlane> {
        let shared = shared.then(|| Arc::new(Mutex::new(flow.table())));
        let epoch = Instant::now();
        let running = Arc::new(AtomicBool::new(true));
        let mut workers = Vec::new();
        for i in 0..n.max(1) {
            let cfg = WorkerConfig {
                index: i,
                cpu: (!cpus.is_empty()).then(|| cpus[i % cpus.len()]),
                flow: flow.clone(),
                epoch,
                table: shared.clone(),
                ..Default::default()
            };
            workers.push(uring::spawn(cfg, running.clone()).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start io_uring worker {i}: {e} (is io_uring disabled? see /proc/sys/kernel/io_uring_disabled)"))
            })?);
        }
        Ok(UringDataPlane {
            workers,
            sockets: Mutex::new(HashMap::new()),
            closing: Mutex::new(HashMap::new()),
            tos,
            epoch,
            running,
            shared,
        })
    }

    pub fn stop(&mut self) {
        self.running.store(false, Relaxed);
        for w in &self.workers {
            // wake each worker so it sees the flag
            w.send(Command::Wake);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// The flow table all workers share (started with `start_with(.., true)`).
    pub fn shared_table(&self) -> Option<Arc<Mutex<FlowTable>>> {
        self.shared.clone()
    }

    /// The epoch of the workers' clock (`now_us` of the flow table).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

fn set_tos(sock: &UdpSocket, local: SocketAddr, tos: u8) -> io::Result<()> {
    let v: libc::c_int = tos as libc::c_int;
    let (level, opt) =
        if local.is_ipv4() { (libc::IPPROTO_IP, libc::IP_TOS) } else { (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) };
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_bufsize(sock: &UdpSocket, bytes: libc::c_int) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        unsafe {
            libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, opt, &bytes as *const _ as *const libc::c_void, 4);
        }
    }
}

impl UringDataPlane {
    /// Bind and open `local`; returns a duplicate of its descriptor and its counters for a
    /// second backend serving the same socket (the AF_XDP workers' kernel path).
    pub fn open_shared(&self, local: SocketAddr, affinity: u64) -> io::Result<(OwnedFd, Arc<SharedCounters>)> {
        // a socket just closed on this address: wait until its worker has let go of it
        let pending = self.closing.lock().unwrap().remove(&local);
        if let Some(closed) = pending {
            if !wait_flag(&closed, CLOSE_WAIT) {
                log::warn!("{local}: the worker has not closed the previous socket after {CLOSE_WAIT:?}");
            }
        }
        let mut socks = self.sockets.lock().unwrap();
        if socks.contains_key(&local) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        let sock = UdpSocket::bind(local)?;
        sock.set_nonblocking(true)?;
        if self.tos != 0 {
            set_tos(&sock, local, self.tos)?;
        }
        set_bufsize(&sock, 1 << 20);
        let dup = OwnedFd::from(sock.try_clone()?);
        let w = (affinity as usize) % self.workers.len();
        let counters = Arc::new(SharedCounters::default());
        let (socket, closed) = WorkerFd::new(OwnedFd::from(sock));
        socks.insert(local, (w, counters.clone(), closed));
        drop(socks);
        self.workers[w].send(Command::Open { local, socket: Arc::new(socket), counters: counters.clone() });
        Ok((dup, counters))
    }
}

impl DataPlane for UringDataPlane {
    fn open(&self, local: SocketAddr, affinity: u64) -> io::Result<()> {
        self.open_shared(local, affinity).map(|_| ())
    }

    /// The socket's worker applies the rule later; the verdict on the rule itself is the
    /// flow table's, given now. A refused rule still goes to the worker, whose table then
    /// drops the socket's old rule too (it must not keep forwarding under it).
    fn apply(&self, rule: FlowRule) -> Result<(), ApplyError> {
        let Some(w) = self.sockets.lock().unwrap().get(&rule.local).map(|(w, _, _)| *w) else {
            return Err(ApplyError::NotOpen(rule.local));
        };
        let verdict = FlowTable::check_rule(&rule);
        self.workers[w].send(Command::Rule(Box::new(rule)));
        verdict
    }

    /// The worker closes the socket after its pending receive is cancelled; an `open` of
    /// the same address waits for that (see `closing`), so the port is never skipped as
    /// taken while it is being returned.
    fn close(&self, local: SocketAddr) {
        let Some((w, _, closed)) = self.sockets.lock().unwrap().remove(&local) else {
            return;
        };
        self.workers[w].send(Command::Close(local));
        let mut closing = self.closing.lock().unwrap();
        if closing.len() >= 4096 {
            // bounded: forget the ones already closed
            closing.retain(|_, c| !c.load(Acquire));
        }
        closing.insert(local, closed);
    }

    fn counters(&self, local: SocketAddr) -> Option<FlowCounters> {
        self.sockets.lock().unwrap().get(&local).map(|(_, c, _)| c.snapshot())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Asked of the socket's worker, which owns its flow (waits up to [`STATE_WAIT`]).
    fn flow_state(&self, local: SocketAddr) -> Option<FlowState> {
        let w = self.sockets.lock().unwrap().get(&local).map(|(w, _, _)| *w)?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.workers[w].send(Command::State { local, reply });
        answer.recv_timeout(STATE_WAIT).ok().flatten()
    }

    /// As `apply`: the worker restores later, the verdict on the rule is given now.
    fn restore(&self, rule: FlowRule, state: FlowState) -> Result<(), ApplyError> {
        let Some(w) = self.sockets.lock().unwrap().get(&rule.local).map(|(w, _, _)| *w) else {
            return Err(ApplyError::NotOpen(rule.local));
        };
        let verdict = FlowTable::check_rule(&rule);
        self.workers[w].send(Command::Restore(Box::new((rule, state))));
        verdict
    }

    fn metrics(&self) -> Vec<(String, String, u64)> {
        let mut v = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            w.stats.render(&mut v, Path::Socket, i);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::interface::PortPool;

    /// A released port comes back at once: the whole range allocated, released and
    /// allocated again without waiting, three times, on real sockets and workers.
    #[test]
    fn released_ports_can_be_allocated_again_at_once() {
        let mut dp = UringDataPlane::start(2, &[], 0, FlowSettings::default()).unwrap();
        let addr = "127.0.0.1".parse().unwrap();
        // below the ephemeral range, so no other socket on the box takes one meanwhile
        let mut pool = PortPool::new(addr, 24600, 24799);
        let mut slowest = Duration::ZERO;
        for round in 0..3 {
            let mut ports = Vec::new();
            let t = Instant::now();
            while let Ok(p) = pool.allocate(&dp, ports.len() as u64) {
                ports.push(p);
            }
            slowest = slowest.max(t.elapsed());
            assert_eq!(ports.len(), pool.capacity(), "round {round}: ports lost");
            assert_eq!(pool.in_use, pool.capacity());
            for p in ports {
                pool.release(&dp, p);
            }
            assert_eq!(pool.in_use, 0);
        }
        // one address closed and opened again at once, many times over
        let a = SocketAddr::new(addr, 24800);
        let t = Instant::now();
        for i in 0..200 {
            dp.open(a, i).unwrap_or_else(|e| panic!("open #{i}: {e}"));
            dp.close(a);
        }
        eprintln!(
            "slowest round of 100 pair allocations: {slowest:?}; open+close of one address: {:?} each",
            t.elapsed() / 200
        );
        dp.stop();
    }

    /// The workers apply rules later, but a rule they will refuse is an error now.
    #[test]
    fn a_rule_the_workers_refuse_is_an_error_at_once() {
        use rules::dataplane::{SrtpKey, Suite};
        let mut dp = UringDataPlane::start(1, &[], 0, FlowSettings::default()).unwrap();
        let a: SocketAddr = "127.0.0.1:24802".parse().unwrap();
        assert_eq!(dp.apply(FlowRule::rtp(a, None, None)), Err(ApplyError::NotOpen(a)));
        dp.open(a, 0).unwrap();
        let bad = SrtpKey { suite: Suite::AesCm128HmacSha1_80, key: vec![0; 15], salt: vec![0; 14], mki: None };
        let r = dp.apply(FlowRule { srtp_in: Some(bad), ..FlowRule::rtp(a, None, None) });
        assert!(matches!(r, Err(ApplyError::UnusableKey { .. })), "{r:?}");
        assert_eq!(dp.apply(FlowRule::rtp(a, None, None)), Ok(()));
        dp.close(a);
        dp.stop();
    }
}
