//! The few system calls both backends' workers (and bench's generators) need around the
//! packet path: socket addresses to and from `sockaddr`, CPU pinning and the workers'
//! scheduling priority. Nothing here is io_uring or AF_XDP specific.

use std::io;
use std::mem;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

static WORKER_PRIORITY: AtomicU8 = AtomicU8::new(0);

/// SCHED_FIFO priority for data-plane workers started from now on (0: normal scheduling).
pub fn set_worker_priority(prio: u8) {
    WORKER_PRIORITY.store(prio, Relaxed);
}

/// Pin the calling worker thread (when `cpu` is given) and apply the worker priority.
pub fn setup_worker_thread(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }
    let prio = WORKER_PRIORITY.load(Relaxed);
    if prio > 0 {
        let p = libc::sched_param { sched_priority: prio as i32 };
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
            log::warn!("could not set SCHED_FIFO priority {prio}: {}", io::Error::last_os_error());
        }
    }
}

/// Pin the calling thread to `cpu` (a warning, not an error, if the kernel refuses).
pub fn pin_to_cpu(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            log::warn!("could not pin to cpu {cpu}: {}", io::Error::last_os_error());
        }
    }
}

/// The address in a `sockaddr_in` or `sockaddr_in6` as the kernel wrote it (`name`: its
/// bytes); None for another family or a short buffer.
pub fn sockaddr_from(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([name[0], name[1]]) as i32;
    if family == libc::AF_INET && name.len() >= mem::size_of::<libc::sockaddr_in>() {
        let sa: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(name.as_ptr() as *const _) };
        let ip = u32::from_be(sa.sin_addr.s_addr);
        Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), u16::from_be(sa.sin_port))))
    } else if family == libc::AF_INET6 && name.len() >= mem::size_of::<libc::sockaddr_in6>() {
        let sa: libc::sockaddr_in6 = unsafe { std::ptr::read_unaligned(name.as_ptr() as *const _) };
        Some(SocketAddr::V6(SocketAddrV6::new(
            sa.sin6_addr.s6_addr.into(),
            u16::from_be(sa.sin6_port),
            sa.sin6_flowinfo,
            sa.sin6_scope_id,
        )))
    } else {
        None
    }
}

/// Write `addr` as a sockaddr (a sockaddr_in6 has room for either family); returns its length.
pub fn sockaddr_to(addr: SocketAddr, out: &mut libc::sockaddr_in6) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = out as *mut libc::sockaddr_in6 as *mut libc::sockaddr_in;
            unsafe {
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr.s_addr = u32::from(*a.ip()).to_be();
                (*sin).sin_zero = [0; 8];
            }
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = a.port().to_be();
            out.sin6_flowinfo = a.flowinfo();
            out.sin6_addr.s6_addr = a.ip().octets();
            out.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trips_both_families() {
        for a in ["192.0.2.7:4000", "[2001:db8::7]:4000"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            let len = sockaddr_to(a, &mut sa) as usize;
            let bytes = unsafe { std::slice::from_raw_parts(&sa as *const _ as *const u8, len) };
            assert_eq!(sockaddr_from(bytes), Some(a));
            assert_eq!(sockaddr_from(&bytes[..len - 1]), None);
        }
        assert_eq!(sockaddr_from(&[]), None);
    }
}
