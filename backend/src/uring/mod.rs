//! io_uring backend: one worker thread per core, each with its own ring, provided-buffer
//! ring and sockets. Per datagram: one multishot-receive completion, the flow table's
//! decision, one sendmsg submission from the very same buffer. Submissions are batched:
//! one `io_uring_enter` per loop iteration, whatever the number of packets. Rule updates
//! arrive over a lock-free queue and are applied between batches.
//!
//! WebRTC sockets: the flow table answers STUN and runs DTLS itself and queues its
//! replies (`FlowTable::poll_transmit`); the worker sends them from the socket they
//! belong to after each batch, and drives the DTLS timers from its 100 ms timer
//! (`handle_timeout`). Replies own their bytes (a `Vec` held until the send completes);
//! forwarded media keeps its zero-copy, allocation-free path.
//!
//! The flow table sits behind a mutex that the worker takes once per batch of
//! completions and never holds across `io_uring_enter`. On its own (backend uring) each
//! worker has a table of its own and the lock is uncontended. Under the XDP backend the
//! workers serve the kernel path of the very flows the AF_XDP workers serve, and all of
//! them share one table: one latch and one SRTP state per relay socket, whichever path a
//! packet takes (xdp/mod.rs).

pub mod bufring;

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::dataplane::WorkerFd;
use crate::mailbox::Inbox;
use crate::stats::{DropCause, WorkerStats};
use crate::sys::{sockaddr_from, sockaddr_to};
use crate::worker::{channel, lock_table, spawn_thread, Command, WorkerHandle};
use bufring::BufRing;
use relay_core::flow::counters::bump;
use relay_core::flow::{FlowSettings, FlowTable, Verdict};

pub struct WorkerConfig {
    pub index: usize,
    pub cpu: Option<usize>,
    pub ring_entries: u32,
    pub buffers: u16,
    pub buf_size: usize,
    pub flow: FlowSettings,
    pub epoch: Instant,
    /// The flow table shared with other workers serving the same sockets (XDP backend);
    /// None: the worker makes its own.
    pub table: Option<Arc<Mutex<FlowTable>>>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            index: 0,
            cpu: None,
            ring_entries: 4096,
            buffers: 4096,
            buf_size: 2048,
            flow: FlowSettings::default(),
            epoch: Instant::now(),
            table: None,
        }
    }
}

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_WAKE: u64 = 3;
const OP_TIMER: u64 = 4;
const OP_CANCEL: u64 = 5;

fn ud(op: u64, slot: usize, gen: u32) -> u64 {
    (op << 56) | ((gen as u64 & 0xff_ffff) << 32) | slot as u64
}
fn ud_op(u: u64) -> u64 {
    u >> 56
}
fn ud_slot(u: u64) -> usize {
    (u & 0xffff_ffff) as usize
}
fn ud_gen(u: u64) -> u32 {
    ((u >> 32) & 0xff_ffff) as u32
}

struct Sock {
    /// Held for as long as the socket is served: the last holder closes it.
    _fd: Arc<WorkerFd>,
    /// Its descriptor, read per forwarded packet (without going through the Arc).
    raw: RawFd,
    flow: usize,
    gen: u32,
    closing: bool,
    armed: bool,
}

/// Stable memory for one in-flight sendmsg.
#[repr(C)]
struct SendSlot {
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_in6,
    bid: u16,
    flow: usize,
    /// A reply of the flow table (its bytes in `Worker::replies`), not a ring buffer.
    reply: bool,
}

pub fn spawn(cfg: WorkerConfig, running: Arc<AtomicBool>) -> io::Result<WorkerHandle> {
    let (mailbox, inbox, stats) = channel()?;
    // build the ring here so that setup errors reach the caller
    let ring =
        IoUring::builder().setup_coop_taskrun().build(cfg.ring_entries).or_else(|_| IoUring::new(cfg.ring_entries))?;
    let bufs = BufRing::new(&ring, cfg.buffers, cfg.buf_size, 1)?;
    let mut w = Worker::new(cfg, ring, bufs, inbox, stats.clone());
    let thread = spawn_thread(format!("relay-worker-{}", w.index), w.cpu, move || w.run(&running))?;
    Ok(WorkerHandle { mailbox, stats, thread: Some(thread) })
}

struct Worker {
    index: usize,
    cpu: Option<usize>,
    ring: IoUring,
    bufs: BufRing,
    table: Arc<Mutex<FlowTable>>,
    socks: Vec<Option<Sock>>,
    free_socks: Vec<usize>,
    /// flow id -> socket slot (for egress)
    flow_sock: Vec<usize>,
    sends: Box<[SendSlot]>,
    free_sends: Vec<usize>,
    recv_msg: Box<libc::msghdr>,
    inbox: Inbox<Command>,
    wake_buf: Box<u64>,
    timer: Box<types::Timespec>,
    stats: Arc<WorkerStats>,
    epoch: Instant,
    backlog: VecDeque<squeue::Entry>,
    next_gen: u32,
    /// The bytes of in-flight replies, by send slot.
    replies: Vec<Option<Vec<u8>>>,
}

// The raw pointers in the send slots and msghdr point into memory the worker owns; the
// worker moves to its thread once, before any of them is used.
unsafe impl Send for Worker {}

impl Worker {
    fn new(cfg: WorkerConfig, ring: IoUring, bufs: BufRing, inbox: Inbox<Command>, stats: Arc<WorkerStats>) -> Worker {
        let mut recv_msg: Box<libc::msghdr> = Box::new(unsafe { mem::zeroed() });
        recv_msg.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // every in-flight send holds one ring buffer: as many send slots as buffers means a
        // forwarded packet never waits for a slot
        let send_slots = cfg.buffers as usize;
        let sends: Box<[SendSlot]> = (0..send_slots).map(|_| unsafe { mem::zeroed::<SendSlot>() }).collect();
        Worker {
            index: cfg.index,
            cpu: cfg.cpu,
            ring,
            bufs,
            table: cfg.table.unwrap_or_else(|| Arc::new(Mutex::new(cfg.flow.table()))),
            socks: Vec::new(),
            free_socks: Vec::new(),
            flow_sock: Vec::new(),
            sends,
            free_sends: (0..send_slots).rev().collect(),
            recv_msg,
            inbox,
            wake_buf: Box::new(0),
            timer: Box::new(types::Timespec::new().nsec(100_000_000)),
            stats,
            epoch: cfg.epoch,
            // room for a full batch of sends beyond the SQ (they wait here while the table is
            // locked), so that the packet path does not allocate
            backlog: VecDeque::with_capacity(2 * cfg.ring_entries as usize),
            next_gen: 1,
            replies: vec![None; send_slots],
        }
    }

    fn push(&mut self, e: squeue::Entry) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(e);
            return;
        }
        // SQ full: keep it for after the next submission (which happens without the flow
        // table's lock held)
        if unsafe { self.ring.submission().push(&e) }.is_err() {
            self.backlog.push_back(e);
        }
    }

    fn flush_backlog(&mut self) {
        while let Some(e) = self.backlog.front() {
            if unsafe { self.ring.submission().push(e) }.is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    fn arm_recv(&mut self, slot: usize) {
        let Some(s) = self.socks[slot].as_mut() else {
            return;
        };
        if s.closing || s.armed {
            return;
        }
        s.armed = true;
        let e = opcode::RecvMsgMulti::new(types::Fd(s.raw), &*self.recv_msg as *const _, self.bufs.bgid)
            .build()
            .user_data(ud(OP_RECV, slot, s.gen));
        self.push(e);
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(types::Fd(self.inbox.fd()), &mut *self.wake_buf as *mut u64 as *mut u8, 8)
            .build()
            .user_data(ud(OP_WAKE, 0, 0));
        self.push(e);
    }

    fn arm_timer(&mut self) {
        let e = opcode::Timeout::new(&*self.timer as *const _).build().user_data(ud(OP_TIMER, 0, 0));
        self.push(e);
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn run(&mut self, running: &AtomicBool) -> io::Result<()> {
        self.arm_wake();
        self.arm_timer();
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(4096);
        while running.load(Ordering::Relaxed) {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            cqes.clear();
            cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            bump(&self.stats.batches, 1);
            let now_us = self.now_us();
            // the table's lock, once for the whole batch (never across io_uring_enter)
            let table = self.table.clone();
            let mut t = lock_table(&table);
            for &(u, res, flags) in &cqes {
                match ud_op(u) {
                    OP_RECV => self.on_recv(&mut t, u, res, flags, now_us),
                    OP_SEND => self.on_send(&t, ud_slot(u), res),
                    OP_WAKE => {
                        self.apply_commands(&mut t);
                        // a new rule may start a handshake (the active DTLS role)
                        t.handle_timeout(now_us);
                        self.arm_wake();
                    }
                    OP_TIMER => {
                        self.stats.buffers_available.store(self.bufs.available as u64, Ordering::Relaxed);
                        t.handle_timeout(now_us);
                        self.arm_timer();
                    }
                    _ => {}
                }
            }
            self.send_replies(&mut t);
            drop(t);
            self.bufs.publish();
            self.flush_backlog();
        }
        Ok(())
    }

    fn on_recv(&mut self, t: &mut FlowTable, u: u64, res: i32, flags: u32, now_us: u64) {
        let slot = ud_slot(u);
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.bufs.taken();
        }
        let alive = matches!(self.socks.get(slot), Some(Some(s)) if s.gen == ud_gen(u));
        if !alive {
            if let Some(b) = bid {
                self.bufs.push(b);
            }
            return;
        }
        if !cqueue::more(flags) {
            let s = self.socks[slot].as_mut().unwrap();
            s.armed = false;
            if s.closing {
                // the receive is gone: the socket can be closed now
                self.socks[slot] = None;
                self.free_socks.push(slot);
                if let Some(b) = bid {
                    self.bufs.push(b);
                }
                return;
            }
        }
        if res < 0 {
            if -res == libc::ENOBUFS {
                bump(&self.stats.rx_no_buffers, 1);
            }
            if let Some(b) = bid {
                self.bufs.push(b);
            }
            self.arm_recv(slot);
            return;
        }
        let Some(bid) = bid else {
            self.arm_recv(slot);
            return;
        };
        self.handle_datagram(t, slot, bid, res as usize, now_us);
        if !cqueue::more(flags) {
            self.arm_recv(slot);
        }
    }

    fn handle_datagram(&mut self, t: &mut FlowTable, slot: usize, bid: u16, len: usize, now_us: u64) {
        bump(&self.stats.rx_packets, 1);
        let buf = &self.bufs.buf(bid)[..len.min(self.bufs.buf_size())];
        let Ok(out) = types::RecvMsgOut::parse(buf, &self.recv_msg) else {
            self.stats.count_drop(DropCause::Truncated, 1);
            self.bufs.push(bid);
            return;
        };
        if out.is_payload_truncated() || out.is_name_data_truncated() {
            self.stats.count_drop(DropCause::Truncated, 1);
            self.bufs.push(bid);
            return;
        }
        let Some(src) = sockaddr_from(out.name_data()) else {
            self.bufs.push(bid);
            return;
        };
        let payload = out.payload_data();
        let off = payload.as_ptr() as usize - buf.as_ptr() as usize;
        let plen = payload.len();
        let flow = self.socks[slot].as_ref().unwrap().flow;
        // the packet is processed in place; what follows it in the buffer is tail room
        // for SRTP tags
        let verdict = t.process(flow, src, &mut self.bufs.buf_mut(bid)[off..], plen, now_us);
        match verdict {
            Verdict::Forward { via, to, len: plen } => {
                let Some(sidx) = self.free_sends.pop() else {
                    self.stats.count_drop(DropCause::TxFull, 1);
                    t.send_failed(flow);
                    self.bufs.push(bid);
                    return;
                };
                let fd = match self.flow_sock.get(via).and_then(|s| self.socks.get(*s)).and_then(|s| s.as_ref()) {
                    Some(s) => s.raw,
                    None => {
                        t.send_failed(flow);
                        self.free_sends.push(sidx);
                        self.bufs.push(bid);
                        return;
                    }
                };
                let base = self.bufs.buf_ptr(bid);
                let ss = &mut self.sends[sidx];
                ss.bid = bid;
                ss.flow = flow;
                ss.reply = false;
                ss.iov.iov_base = unsafe { base.add(off) } as *mut libc::c_void;
                ss.iov.iov_len = plen;
                let alen = sockaddr_to(to, &mut ss.addr);
                ss.msg.msg_name = &mut ss.addr as *mut _ as *mut libc::c_void;
                ss.msg.msg_namelen = alen;
                ss.msg.msg_iov = &mut ss.iov;
                ss.msg.msg_iovlen = 1;
                let e =
                    opcode::SendMsg::new(types::Fd(fd), &ss.msg as *const _).build().user_data(ud(OP_SEND, sidx, 0));
                self.push(e);
            }
            Verdict::Drop(r) => {
                self.stats.count_verdict_drop(r);
                self.bufs.push(bid);
            }
            // for the relay itself (STUN, DTLS): replies are sent by send_replies
            Verdict::Consumed => self.bufs.push(bid),
        }
    }

    /// The flow table's replies (STUN answers, DTLS flights), each from the relay socket
    /// of its flow. No send slot or no socket: dropped and counted (peers retransmit).
    fn send_replies(&mut self, t: &mut FlowTable) {
        while let Some(tx) = t.poll_transmit() {
            let fd = self.flow_sock.get(tx.via).and_then(|s| self.socks.get(*s)).and_then(|s| s.as_ref());
            let Some(fd) = fd.map(|s| s.raw) else {
                bump(&self.stats.tx_errors, 1);
                continue;
            };
            let Some(sidx) = self.free_sends.pop() else {
                self.stats.count_drop(DropCause::TxFull, 1);
                continue;
            };
            let data = self.replies[sidx].insert(tx.data);
            let ss = &mut self.sends[sidx];
            ss.reply = true;
            ss.flow = tx.via;
            ss.iov.iov_base = data.as_mut_ptr() as *mut libc::c_void;
            ss.iov.iov_len = data.len();
            let alen = sockaddr_to(tx.to, &mut ss.addr);
            ss.msg.msg_name = &mut ss.addr as *mut _ as *mut libc::c_void;
            ss.msg.msg_namelen = alen;
            ss.msg.msg_iov = &mut ss.iov;
            ss.msg.msg_iovlen = 1;
            let e = opcode::SendMsg::new(types::Fd(fd), &ss.msg as *const _).build().user_data(ud(OP_SEND, sidx, 0));
            self.push(e);
        }
    }

    fn on_send(&mut self, t: &FlowTable, sidx: usize, res: i32) {
        let (bid, flow, reply) = (self.sends[sidx].bid, self.sends[sidx].flow, self.sends[sidx].reply);
        if res < 0 {
            bump(&self.stats.tx_errors, 1);
            if !reply {
                t.send_failed(flow);
            }
        } else {
            bump(&self.stats.tx_packets, 1);
        }
        if reply {
            self.sends[sidx].reply = false;
            self.replies[sidx] = None;
        } else {
            self.bufs.push(bid);
        }
        self.free_sends.push(sidx);
    }

    fn apply_commands(&mut self, t: &mut FlowTable) {
        while let Some(cmd) = self.inbox.pop() {
            self.apply_command(t, cmd);
            // counted once applied: the control plane may wait on it
            bump(&self.stats.applied, 1);
        }
    }

    fn apply_command(&mut self, t: &mut FlowTable, cmd: Command) {
        match cmd {
            Command::Open { local, socket, counters } => {
                // a shared table may have the flow already (the XDP backend inserts
                // it first): insert returns its id then
                let flow = t.insert(local, counters);
                let gen = self.next_gen;
                self.next_gen = self.next_gen.wrapping_add(1).max(1) & 0xff_ffff;
                let s = Sock { raw: socket.as_raw_fd(), _fd: socket, flow, gen, closing: false, armed: false };
                let slot = match self.free_socks.pop() {
                    Some(i) => {
                        self.socks[i] = Some(s);
                        i
                    }
                    None => {
                        self.socks.push(Some(s));
                        self.socks.len() - 1
                    }
                };
                if self.flow_sock.len() <= flow {
                    self.flow_sock.resize(flow + 1, usize::MAX);
                }
                self.flow_sock[flow] = slot;
                self.arm_recv(slot);
                bump(&self.stats.sockets, 1);
            }
            Command::Rule(rule) => {
                if let Err(e) = t.apply(&rule) {
                    log::warn!("worker {}: rule for {} refused: {e}", self.index, rule.local);
                }
            }
            Command::Restore(r) => {
                let (rule, state) = *r;
                if let Err(e) = t.restore(&rule, state, self.now_us()) {
                    log::warn!("worker {}: rule for {} refused on restore: {e}", self.index, rule.local);
                }
            }
            Command::State { local, reply } => {
                // the control plane may have stopped waiting: nothing to do then
                let _ = reply.try_send(t.state(local, self.now_us()));
            }
            Command::Close(local) => {
                let Some(flow) = t.remove(local) else {
                    return;
                };
                let Some(slot) = self.flow_sock.get_mut(flow).map(|s| std::mem::replace(s, usize::MAX)) else {
                    return;
                };
                if let Some(Some(s)) = self.socks.get_mut(slot) {
                    s.closing = true;
                    if s.armed {
                        let e = opcode::AsyncCancel::new(ud(OP_RECV, slot, s.gen))
                            .build()
                            .user_data(ud(OP_CANCEL, slot, 0));
                        self.push(e);
                    } else {
                        self.socks[slot] = None;
                        self.free_socks.push(slot);
                    }
                }
                self.stats.sockets.fetch_sub(1, Ordering::Relaxed);
            }
            // not for this backend's workers
            Command::NextHop(..) | Command::Wake => {}
        }
    }
}
