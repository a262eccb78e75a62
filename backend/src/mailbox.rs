//! Control plane → worker messages, for both backends: a lock-free bounded queue and an
//! eventfd the worker waits on (an io_uring read, or poll()). Sending never blocks the
//! worker; a full queue makes the sender kick and yield until there is room.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// The sending side (control plane).
pub struct Mailbox<T> {
    queue: Arc<ArrayQueue<T>>,
    wake: OwnedFd,
    sent: AtomicU64,
}

/// The receiving side (the worker).
pub struct Inbox<T> {
    queue: Arc<ArrayQueue<T>>,
    wake: OwnedFd,
}

pub fn mailbox<T>(capacity: usize) -> io::Result<(Mailbox<T>, Inbox<T>)> {
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let wake = unsafe { OwnedFd::from_raw_fd(fd) };
    let queue = Arc::new(ArrayQueue::new(capacity));
    let inbox = Inbox { queue: queue.clone(), wake: wake.try_clone()? };
    Ok((Mailbox { queue, wake, sent: AtomicU64::new(0) }, inbox))
}

impl<T> Mailbox<T> {
    /// Queue `msg` and wake the worker. Returns how many messages were sent so far (for
    /// waiting until the worker has applied this one).
    pub fn send(&self, mut msg: T) -> u64 {
        loop {
            match self.queue.push(msg) {
                Ok(()) => break,
                Err(m) => {
                    msg = m;
                    self.kick();
                    std::thread::yield_now();
                }
            }
        }
        let n = self.sent.fetch_add(1, Relaxed) + 1;
        self.kick();
        n
    }

    pub fn kick(&self) {
        let one: u64 = 1;
        unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }
}

impl<T> Inbox<T> {
    pub fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// The eventfd to wait on.
    pub fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Reset the eventfd after a wake-up seen by poll().
    pub fn clear(&self) {
        let mut v = 0u64;
        unsafe { libc::read(self.wake.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
    }
}
