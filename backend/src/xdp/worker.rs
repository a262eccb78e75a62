//! AF_XDP worker: one per RX queue, serving that queue on every XDP interface. The
//! interfaces' sockets share one memory area (UMEM), so a frame received on the public
//! interface leaves through the private one from the very same memory: bridging costs
//! no copy. Per frame: parse (xdp::frame), the flow table's decision (the same sans-IO
//! `FlowTable::process` the io_uring backend calls: latching, stats, SRTP in place), a
//! header rewrite, a TX descriptor. RX, TX, fill and completion rings are worked in
//! batches; the only syscalls are the TX kick per batch (copy mode needs it) and poll()
//! when there is nothing to do.
//!
//! The flow table is the one the io_uring workers serving the kernel path use too (one
//! latch, one SRTP state per relay socket, whatever queue or path a packet takes). It is
//! locked once per received batch; the TX descriptors are built under the lock and
//! submitted (kicked) after it is released, as are sends through the kernel.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use xdp::slab::{HeapSlab, Slab};
use xdp::socket::{XdpSocket, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{Packet, Umem};
use xdp::{RingConfigBuilder, WakableRings};

use super::frame::{self, L2};
use super::netlink::NextHop;
use crate::dataplane::WorkerFd;
use crate::mailbox::Inbox;
use crate::stats::{DropCause, WorkerStats};
use crate::worker::{channel, lock_table, spawn_thread, Command, WorkerHandle};
use relay_core::flow::counters::{bump, unbump};
use relay_core::flow::{FlowTable, Verdict};

/// Bytes the frame may grow at its front: IPv4 -> IPv6 (+20) and a VLAN tag (+4).
const HEAD_ROOM: usize = 64;
const BATCH: usize = 64;
const RING: u32 = 4096;

/// What the XDP program needs of a started worker: its AF_XDP socket on each interface
/// (for the `xsks` map), and whether they all bound in zero-copy mode.
pub struct XskSockets {
    /// (interface index, socket descriptor); the worker owns the sockets.
    pub fds: Vec<(u32, RawFd)>,
    pub zero_copy: bool,
}

pub struct WorkerConfig {
    pub queue_id: u32,
    pub ifindexes: Vec<u32>,
    pub cpu: Option<usize>,
    pub frames: u32,
    pub tos: u8,
    /// The flow table (shared with every worker serving the same sockets) and the epoch of
    /// its clock.
    pub table: Arc<Mutex<FlowTable>>,
    pub epoch: Instant,
    /// Where to ask for next hops, and the eventfd that wakes the next-hop thread.
    pub resolve: Arc<ArrayQueue<IpAddr>>,
    pub resolve_wake: Arc<OwnedFd>,
}

struct Port {
    ifindex: u32,
    sock: XdpSocket,
    rings: WakableRings,
    tx: HeapSlab,
    /// Frames on the TX ring not yet back on the completion ring.
    in_flight: usize,
    /// Frames given to the fill ring and not yet received.
    in_fill: usize,
}

#[derive(Clone, Copy)]
struct Egress {
    to: SocketAddr,
    gen: u32,
    /// (port index, source MAC, destination MAC); None: the kernel's path.
    out: Option<(usize, [u8; 6], [u8; 6])>,
}

/// A datagram for the kernel's path, sent once the table's lock is released: the frame,
/// the payload's range in it, where to, and through which relay socket.
struct KernelSend {
    pkt: Packet,
    start: usize,
    end: usize,
    to: SocketAddr,
    via: SocketAddr,
}

struct Worker {
    umem: Umem,
    ports: Vec<Port>,
    table: Arc<Mutex<FlowTable>>,
    /// Each relay socket's descriptor (a duplicate), by its address.
    kernel_fds: HashMap<SocketAddr, Arc<WorkerFd>>,
    /// Sends through the kernel waiting for the lock to be released (at most a batch).
    kernel_tx: Vec<KernelSend>,
    /// The next-hop thread has requests waiting: wake it once the lock is released.
    wake_resolver: bool,
    hops: HashMap<IpAddr, NextHop>,
    hop_gen: u32,
    /// Per flow id: the way out last computed. It depends only on the destination and
    /// the next hops (`gen`), so an entry left by a flow whose id was reused is checked,
    /// not trusted.
    egress: Vec<Option<Egress>>,
    requested: HashSet<IpAddr>,
    resolve: Arc<ArrayQueue<IpAddr>>,
    resolve_wake: Arc<OwnedFd>,
    inbox: Inbox<Command>,
    /// The sockets and the inbox, for poll() when idle.
    pollfds: Vec<libc::pollfd>,
    stats: Arc<WorkerStats>,
    tos: u8,
    epoch: Instant,
    zero_copy: bool,
}

/// Bind zero-copy where the driver supports it, copy mode otherwise.
fn bind(umem: &Umem, ifindex: u32, queue_id: u32) -> io::Result<(XdpSocket, WakableRings, bool)> {
    let attempt = |zero_copy: bool| -> io::Result<(XdpSocket, WakableRings)> {
        let mut b = XdpSocketBuilder::new().map_err(io::Error::other)?;
        let cfg = RingConfigBuilder { rx_count: RING, tx_count: RING, fill_count: RING, completion_count: RING }
            .build()
            .map_err(io::Error::other)?;
        let (rings, mut flags) = b.build_wakable_rings(umem, cfg).map_err(io::Error::other)?;
        if zero_copy {
            flags.force_zerocopy();
        } else {
            flags.force_copy();
        }
        let sock = b.bind(xdp::nic::NicIndex(ifindex), queue_id, flags).map_err(io::Error::other)?;
        Ok((sock, rings))
    };
    if let Ok((s, r)) = attempt(true) {
        return Ok((s, r, true));
    }
    attempt(false).map(|(s, r)| (s, r, false))
}

/// Create the worker's UMEM and sockets (here, so errors reach the caller) and start it.
pub fn spawn(cfg: WorkerConfig, running: Arc<AtomicBool>) -> io::Result<(WorkerHandle, XskSockets)> {
    let (mailbox, inbox, stats) = channel()?;
    let umem = Umem::map(
        UmemCfgBuilder {
            frame_size: FrameSize::TwoK,
            head_room: HEAD_ROOM as u32,
            frame_count: cfg.frames,
            ..Default::default()
        }
        .build()
        .map_err(io::Error::other)?,
    )?;
    let mut ports = Vec::new();
    let mut zero_copy = true;
    for &ifindex in &cfg.ifindexes {
        let (sock, rings, zc) = bind(&umem, ifindex, cfg.queue_id).map_err(|e| {
            io::Error::new(e.kind(), format!("AF_XDP socket on ifindex {ifindex} queue {}: {e}", cfg.queue_id))
        })?;
        zero_copy &= zc;
        ports.push(Port { ifindex, sock, rings, tx: HeapSlab::with_capacity(BATCH), in_flight: 0, in_fill: 0 });
    }
    let socket_fds = ports.iter().map(|p| (p.ifindex, p.sock.as_raw_fd())).collect();
    let mut pollfds: Vec<libc::pollfd> =
        ports.iter().map(|p| libc::pollfd { fd: p.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    pollfds.push(libc::pollfd { fd: inbox.fd(), events: libc::POLLIN, revents: 0 });
    let mut w = Worker {
        umem,
        ports,
        table: cfg.table,
        kernel_fds: HashMap::new(),
        kernel_tx: Vec::with_capacity(BATCH),
        wake_resolver: false,
        hops: HashMap::new(),
        hop_gen: 1,
        egress: Vec::new(),
        requested: HashSet::new(),
        resolve: cfg.resolve,
        resolve_wake: cfg.resolve_wake,
        inbox,
        pollfds,
        stats: stats.clone(),
        tos: cfg.tos,
        epoch: cfg.epoch,
        zero_copy,
    };
    let thread = spawn_thread(format!("relay-xsk-{}", cfg.queue_id), cfg.cpu, move || w.run(&running))?;
    Ok((WorkerHandle { mailbox, stats, thread: Some(thread) }, XskSockets { fds: socket_fds, zero_copy }))
}

// The packets and rings hold raw pointers into the UMEM the worker owns; the worker
// moves to its thread once, before any of them is used.
unsafe impl Send for Worker {}

impl Worker {
    fn run(&mut self, running: &AtomicBool) -> io::Result<()> {
        let mut rx = HeapSlab::with_capacity(BATCH);
        self.refill();
        while running.load(Relaxed) {
            self.apply_commands();
            let now_us = self.epoch.elapsed().as_micros() as u64;
            let mut got = 0;
            for port in 0..self.ports.len() {
                let n = match self.ports[port].rings.rx_ring.as_mut() {
                    Some(r) => unsafe { r.recv(&self.umem, &mut rx) },
                    None => 0,
                };
                if n == 0 {
                    continue;
                }
                got += n;
                self.ports[port].in_fill -= n;
                // the table's lock, once per received batch (at most BATCH frames, so no
                // TX slab, empty at this point, can overflow: nothing is kicked under it)
                let table = self.table.clone();
                let mut t = lock_table(&table);
                while let Some(p) = rx.pop_back() {
                    self.handle(&mut t, port, p, now_us);
                }
                drop(t);
                self.transmit();
                self.kernel_flush();
            }
            if got > 0 {
                bump(&self.stats.rx_packets, got as u64);
                bump(&self.stats.batches, 1);
            }
            if std::mem::take(&mut self.wake_resolver) {
                self.wake_resolver();
            }
            let pending = self.complete();
            self.refill();
            if got == 0 && !pending {
                self.idle();
            }
        }
        Ok(())
    }

    fn idle(&mut self) {
        let fds = &mut self.pollfds;
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        self.inbox.clear();
        self.stats.buffers_available.store(self.umem.allocatable() as u64, Relaxed);
    }

    /// Top up every fill ring. The ring takes all of a request or nothing, so ask for
    /// exactly the free room (tracked here) rather than a round number.
    fn refill(&mut self) {
        for p in &mut self.ports {
            let want = (RING as usize - p.in_fill).min(self.umem.allocatable());
            if want == 0 {
                continue;
            }
            // copy mode never needs the fill-ring wakeup; a zero-copy driver may wait for one
            // (need_wakeup): the crate cannot read the ring's flag, so wake it per refill
            let n = unsafe { p.rings.fill_ring.enqueue(&mut self.umem, want, self.zero_copy) }.unwrap_or(0);
            p.in_fill += n;
        }
    }

    /// Recycle transmitted frames. In copy mode the kernel sends a bounded number of
    /// frames per kick, so while frames remain on a TX ring it is kicked again: nothing
    /// waits there for the next packet to come along. Returns whether any are left.
    fn complete(&mut self) -> bool {
        let mut pending = false;
        for p in &mut self.ports {
            let done = p.rings.completion_ring.dequeue(&mut self.umem, RING as usize);
            p.in_flight = p.in_flight.saturating_sub(done);
            if p.in_flight > 0 {
                pending = true;
                unsafe {
                    libc::sendto(p.sock.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
                };
            }
        }
        pending
    }

    fn transmit(&mut self) {
        for p in &mut self.ports {
            if p.tx.is_empty() {
                continue;
            }
            let Some(tx) = p.rings.tx_ring.as_mut() else { continue };
            let n = p.tx.len();
            // all or nothing: a full ring takes none; reap completions, kick, and try again.
            // (What left the slab is on the ring, whatever the kick's own result says.)
            let _ = unsafe { tx.send(&mut p.tx, true) };
            if !p.tx.is_empty() {
                let done = p.rings.completion_ring.dequeue(&mut self.umem, RING as usize);
                p.in_flight = p.in_flight.saturating_sub(done);
                unsafe {
                    libc::sendto(p.sock.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
                };
                let _ = unsafe { tx.send(&mut p.tx, true) };
            }
            let sent = n - p.tx.len();
            p.in_flight += sent;
            bump(&self.stats.tx_packets, sent as u64);
            if sent < n {
                // the TX ring is full: what did not fit is dropped (and counted), never queued
                self.stats.count_drop(DropCause::TxFull, (n - sent) as u64);
                while let Some(pkt) = p.tx.pop_back() {
                    self.umem.free_packet(pkt);
                }
            }
        }
    }

    fn apply_commands(&mut self) {
        while let Some(cmd) = self.inbox.pop() {
            match cmd {
                Command::Open { local, socket, counters: _ } => {
                    if self.kernel_fds.insert(local, socket).is_none() {
                        bump(&self.stats.sockets, 1);
                    }
                }
                Command::Close(local) => {
                    if self.kernel_fds.remove(&local).is_some() {
                        unbump(&self.stats.sockets, 1);
                    }
                }
                Command::NextHop(ip, hop) => {
                    self.hops.insert(ip, hop);
                    self.requested.remove(&ip);
                    self.hop_gen = self.hop_gen.wrapping_add(1);
                }
                // never sent here: the control plane applies rules to the shared table
                Command::Rule(_) | Command::Restore(_) | Command::State { .. } | Command::Wake => {}
            }
            bump(&self.stats.applied, 1);
        }
    }

    /// Where a packet to `to` leaving through flow `via` goes: (port, source MAC,
    /// destination MAC), or None for the kernel's path. Cached per egress flow.
    fn next_hop(&mut self, via: usize, to: SocketAddr) -> Option<(usize, [u8; 6], [u8; 6])> {
        if let Some(Some(e)) = self.egress.get(via) {
            if e.to == to && e.gen == self.hop_gen {
                return e.out;
            }
        }
        let Some(&hop) = self.hops.get(&to.ip()) else {
            if self.requested.insert(to.ip()) {
                let _ = self.resolve.push(to.ip());
                self.wake_resolver = true;
            }
            return None;
        };
        let out = match hop {
            // an interface this worker has no socket on: the kernel's path
            NextHop::Direct { ifindex, src_mac, dst_mac } => {
                self.ports.iter().position(|p| p.ifindex == ifindex).map(|port| (port, src_mac, dst_mac))
            }
            NextHop::Kernel => None,
        };
        if self.egress.len() <= via {
            self.egress.resize(via + 1, None);
        }
        self.egress[via] = Some(Egress { to, gen: self.hop_gen, out });
        out
    }

    fn wake_resolver(&self) {
        let one: u64 = 1;
        unsafe { libc::write(self.resolve_wake.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }

    fn drop_packet(&mut self, p: Packet) {
        self.umem.free_packet(p);
    }

    fn handle(&mut self, t: &mut FlowTable, in_port: usize, mut p: Packet, now_us: u64) {
        let len = p.len();
        // widen the packet to its whole buffer: headroom in front, tailroom for the SRTP tag
        if p.adjust_head(-(HEAD_ROOM as i32)).is_err() {
            return self.drop_packet(p);
        }
        let cap = p.capacity();
        let grow = cap - p.len();
        if p.adjust_tail(grow as i32).is_err() {
            return self.drop_packet(p);
        }
        let buf: &mut [u8] = &mut p;
        let ing = match frame::parse(&buf[HEAD_ROOM..HEAD_ROOM + len]) {
            Ok(i) => i,
            Err(e) => {
                self.stats.count_frame_error(e);
                return self.drop_packet(p);
            }
        };
        let Some(id) = t.lookup(ing.dst) else {
            self.stats.count_drop(DropCause::UnknownFlow, 1);
            return self.drop_packet(p);
        };
        let payload = HEAD_ROOM + ing.payload;
        let (via, to, out_len) = match t.process(id, ing.src, &mut buf[payload..], ing.payload_len, now_us) {
            Verdict::Forward { via, to, len } => (via, to, len),
            Verdict::Drop(r) => {
                self.stats.count_verdict_drop(r);
                return self.drop_packet(p);
            }
            // STUN/DTLS are not steered here (the program passes them to the socket
            // path); should one arrive, its replies wait in the shared table for the
            // io_uring workers, which send them from the relay socket
            Verdict::Consumed => return self.drop_packet(p),
        };
        let Some(from) = t.get(via).map(|f| f.local) else {
            return self.drop_packet(p);
        };
        let Some((out_port, src_mac, dst_mac)) = self.next_hop(via, to) else {
            if self.kernel_tx.len() == self.kernel_tx.capacity() {
                self.stats.count_drop(DropCause::TxFull, 1);
                return self.drop_packet(p);
            }
            let (start, end) = (payload, payload + out_len);
            self.kernel_tx.push(KernelSend { pkt: p, start, end, to, via: from });
            return;
        };
        // a VLAN tag is kept only when the frame leaves the way it came (same segment)
        let l2 = L2 { dst_mac, src_mac, vlan: if out_port == in_port { ing.vlan } else { None } };
        let buf: &mut [u8] = &mut p;
        let (start, end) = if out_len == ing.payload_len
            && t.passes_payload_through(id, via)
            && frame::can_rewrite_in_place(&ing, from, to, &l2)
        {
            let n = frame::rewrite_in_place(&mut buf[HEAD_ROOM..], &ing, from, to, &l2, self.tos);
            (HEAD_ROOM, HEAD_ROOM + n)
        } else {
            match frame::write_headers(buf, payload, out_len, from, to, &l2, self.tos) {
                Some(s) => (s, payload + out_len),
                None => {
                    self.stats.count_drop(DropCause::NoRoom, 1);
                    return self.drop_packet(p);
                }
            }
        };
        let _ = p.adjust_head(start as i32);
        let _ = p.adjust_tail(-((cap - end) as i32));
        if let Some(pkt) = self.ports[out_port].tx.push_front(p) {
            self.stats.count_drop(DropCause::TxFull, 1);
            self.umem.free_packet(pkt);
        }
    }

    /// The sends through the kernel that `handle` queued (the table's lock released).
    fn kernel_flush(&mut self) {
        while let Some(k) = self.kernel_tx.pop() {
            self.kernel_send(k.via, &k.pkt[k.start..k.end], k.to);
            self.umem.free_packet(k.pkt);
        }
    }

    /// The kernel's path: send the payload from the relay socket itself. The kernel
    /// resolves the neighbour (and the resolver hears about it over netlink).
    fn kernel_send(&self, via: SocketAddr, payload: &[u8], to: SocketAddr) {
        let Some(fd) = self.kernel_fds.get(&via) else {
            bump(&self.stats.tx_errors, 1);
            return;
        };
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let sl = crate::sys::sockaddr_to(to, &mut sa);
        let r = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                payload.as_ptr() as *const libc::c_void,
                payload.len(),
                libc::MSG_DONTWAIT,
                &sa as *const _ as *const libc::sockaddr,
                sl,
            )
        };
        if r < 0 {
            bump(&self.stats.tx_errors, 1);
        } else {
            bump(&self.stats.kernel_path, 1);
        }
    }
}
