//! The shape both backends' workers share: the commands the control plane sends them, the
//! handle it keeps, and how a worker thread is started and what happens when it fails.
//! An io_uring worker (uring/) and an AF_XDP worker (xdp/worker.rs) differ in how they
//! move packets, not in how they are driven or counted (stats.rs).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rules::dataplane::FlowRule;
use rules::state::FlowState;

use relay_core::flow::counters::SharedCounters;
use relay_core::flow::FlowTable;

use crate::dataplane::WorkerFd;
use crate::mailbox::{mailbox, Inbox, Mailbox};
use crate::stats::WorkerStats;
use crate::xdp::netlink::NextHop;

/// Messages from the control plane to a worker of either backend.
pub enum Command {
    /// Serve relay socket `local`. An io_uring worker receives from `socket` (its only
    /// holder: dropping it closes the socket) and enters the flow in its table with
    /// `counters`; an AF_XDP worker sends through `socket` (a duplicate, one for all
    /// queues) when a next hop is not known, the flow being in the shared table already.
    Open { local: SocketAddr, socket: Arc<WorkerFd>, counters: Arc<SharedCounters> },
    /// A rule for a flow in the worker's own table (io_uring backend alone; under XDP the
    /// control plane applies rules to the shared table itself).
    Rule(Box<FlowRule>),
    /// After a restart: apply the rule and resume the flow from its kept state (io_uring
    /// backend alone, like `Rule`).
    Restore(Box<(FlowRule, FlowState)>),
    /// Read back what flow `local` has learned (io_uring backend alone); the answer (None:
    /// no such flow) goes to `reply`, which the control plane waits on.
    State { local: SocketAddr, reply: std::sync::mpsc::SyncSender<Option<FlowState>> },
    /// Stop serving relay socket `local`.
    Close(SocketAddr),
    /// The way to a peer address changed (AF_XDP workers; from the next-hop thread).
    NextHop(IpAddr, NextHop),
    /// Nothing to do: makes the worker look at its running flag, and counts as applied.
    Wake,
}

/// The control plane's side of a worker.
pub struct WorkerHandle {
    pub mailbox: Mailbox<Command>,
    pub stats: Arc<WorkerStats>,
    pub thread: Option<JoinHandle<()>>,
}

/// A new worker's mailbox, inbox and counters.
pub fn channel() -> io::Result<(Mailbox<Command>, Inbox<Command>, Arc<WorkerStats>)> {
    let (mailbox, inbox) = mailbox(65536)?;
    Ok((mailbox, inbox, Arc::new(WorkerStats::default())))
}

impl WorkerHandle {
    /// Returns how many commands were sent so far: `wait_applied` waits for that many.
    pub fn send(&self, cmd: Command) -> u64 {
        self.mailbox.send(cmd)
    }

    /// Wake the worker without a command.
    pub fn kick(&self) {
        self.mailbox.kick()
    }

    /// Wait until the worker has applied `sent` commands, or `deadline` passes; returns
    /// whether it has.
    pub fn wait_applied(&self, sent: u64, deadline: Instant) -> bool {
        while self.stats.applied.load(Relaxed) < sent {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        true
    }
}

/// Start worker thread `name`, pinned to `cpu` at the workers' priority (sys.rs), running
/// `run` until it returns.
///
/// Failure policy, the same for both backends: a worker that panics or returns an error
/// stops the daemon (exit status 1). Left dead, it would blackhole what it serves without
/// a sign: its relay sockets stay bound with nobody receiving, the XDP program keeps
/// steering its queue's frames into a socket nobody reads, and /health still answers.
/// A panic may also leave the shared flow table half-updated for the other workers.
/// Stopping is loud; the supervisor restarts the relay (the kernel detaches the XDP
/// program with the process), and calls recover as their endpoints send again.
pub fn spawn_thread<F>(name: String, cpu: Option<usize>, run: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() -> io::Result<()> + Send + 'static,
{
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        crate::sys::setup_worker_thread(cpu);
        let why = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            // the panic hook has printed the message and location
            Err(_) => "panicked".to_string(),
        };
        log::error!("worker {name} failed: {why}; exiting");
        std::process::exit(1);
    })
}

/// The flow table behind its lock. A worker that panics while holding it ends the
/// process (`spawn_thread`), so a poisoned lock is taken over rather than propagated.
pub fn lock_table(t: &Mutex<FlowTable>) -> MutexGuard<'_, FlowTable> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}
