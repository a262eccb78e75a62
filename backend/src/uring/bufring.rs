//! A provided-buffer ring (IORING_REGISTER_PBUF_RING): the kernel picks a free buffer
//! for every datagram a multishot receive delivers; we hand buffers back once the
//! packet has been sent (or dropped). The same buffer is the send buffer: a forwarded
//! packet is never copied in user space.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// Layout of `struct io_uring_buf`.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

pub struct BufRing {
    ring: *mut RingEntry,
    ring_bytes: usize,
    mask: u16,
    tail: u16,
    bufs: Box<[u8]>,
    buf_size: usize,
    pub bgid: u16,
    /// Buffers currently owned by the kernel's ring.
    pub available: usize,
}

// The ring memory is only touched by the worker that owns it.
unsafe impl Send for BufRing {}

impl BufRing {
    pub fn new(uring: &IoUring, entries: u16, buf_size: usize, bgid: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_bytes = entries as usize * std::mem::size_of::<RingEntry>();
        // page-aligned, zeroed memory for the ring
        let ring = unsafe {
            libc::mmap(
                ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: ring as *mut RingEntry,
            ring_bytes,
            mask: entries - 1,
            tail: 0,
            bufs: vec![0u8; entries as usize * buf_size].into_boxed_slice(),
            buf_size,
            bgid,
            available: 0,
        };
        unsafe { uring.submitter().register_buf_ring_with_flags(ring as u64, entries, bgid, 0)? };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    pub fn buf(&self, bid: u16) -> &[u8] {
        let o = bid as usize * self.buf_size;
        &self.bufs[o..o + self.buf_size]
    }

    pub fn buf_mut(&mut self, bid: u16) -> &mut [u8] {
        let o = bid as usize * self.buf_size;
        &mut self.bufs[o..o + self.buf_size]
    }

    pub fn buf_ptr(&self, bid: u16) -> *const u8 {
        self.buf(bid).as_ptr()
    }

    /// Give a buffer back (visible to the kernel after [`publish`](Self::publish)).
    pub fn push(&mut self, bid: u16) {
        let addr = self.buf_ptr(bid) as u64;
        let idx = (self.tail & self.mask) as usize;
        // entry 0's `resv` is the shared tail: write the other fields one by one
        unsafe {
            let e = self.ring.add(idx);
            ptr::addr_of_mut!((*e).addr).write(addr);
            ptr::addr_of_mut!((*e).len).write(self.buf_size as u32);
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.available += 1;
    }

    pub fn publish(&mut self) {
        unsafe {
            let tail = ptr::addr_of_mut!((*self.ring).resv) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The kernel consumed one buffer (a receive completed into it).
    pub fn taken(&mut self) {
        self.available = self.available.saturating_sub(1);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ring as *mut libc::c_void, self.ring_bytes) };
    }
}
