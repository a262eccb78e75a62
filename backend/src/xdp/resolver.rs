//! The next-hop thread: keeps the workers' view of "which interface, which MAC" for every
//! destination they send to, from the kernel's routing, neighbour and link tables over
//! rtnetlink, and follows changes (a peer's new MAC, a route or link going away) as they
//! happen. Sans-IO logic lives in `netlink::Resolver`; this is its I/O.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::netlink::{self, Message, Resolver};
use crate::worker::{Command, WorkerHandle};

fn nl_socket(groups: u32) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    Ok(fd)
}

fn send(fd: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr() as *const libc::c_void,
            msg.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv(fd: &OwnedFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// Send a request and collect the answers up to its end (Done, an Error/ack, or a single
/// non-multipart answer).
fn request(fd: &OwnedFd, msg: &[u8], seq: u32, dump: bool, buf: &mut [u8]) -> io::Result<Vec<Message>> {
    send(fd, msg)?;
    let mut out = Vec::new();
    loop {
        let n = recv(fd, buf, 0)?;
        for m in netlink::parse(&buf[..n]) {
            let Ok(m) = m else { return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed netlink answer")) };
            match m {
                Message::Done { seq: s } if s == seq => return Ok(out),
                Message::Error { seq: s, errno } if s == seq => {
                    if errno != 0 && !dump {
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    return Ok(out);
                }
                Message::Route { seq: s, .. } if s == seq && !dump => {
                    out.push(m);
                    return Ok(out);
                }
                m => out.push(m),
            }
        }
    }
}

fn broadcast(workers: &[Arc<WorkerHandle>], changes: Vec<(IpAddr, netlink::NextHop)>) {
    for (ip, hop) in changes {
        log::debug!("next hop for {ip}: {hop:?}");
        for w in workers {
            w.send(Command::NextHop(ip, hop));
        }
    }
}

/// Start the thread. `links` are the XDP interfaces (ifindex, MAC).
pub fn spawn(
    links: Vec<(u32, [u8; 6])>,
    requests: Arc<ArrayQueue<IpAddr>>,
    wake: Arc<OwnedFd>,
    workers: Vec<Arc<WorkerHandle>>,
    running: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let events = nl_socket(
        netlink::RTMGRP_LINK | netlink::RTMGRP_NEIGH | netlink::RTMGRP_IPV4_ROUTE | netlink::RTMGRP_IPV6_ROUTE,
    )?;
    let req = nl_socket(0)?;
    let mut r = Resolver::new(links);
    let mut buf = vec![0u8; 1 << 16];
    let mut seq = 1u32;
    // the tables as they are now; changes arrive on `events` from here on
    for dump in [netlink::dump_neighbours(seq), netlink::dump_links(seq + 1)] {
        let s = u32::from_ne_bytes(dump[8..12].try_into().unwrap());
        for m in request(&req, &dump, s, true, &mut buf)? {
            r.on_message(&m);
        }
    }
    seq += 2;
    std::thread::Builder::new().name("xdp-nexthop".into()).spawn(move || {
        let lookup = |r: &mut Resolver, dst: IpAddr, seq: &mut u32, buf: &mut [u8]| {
            *seq = seq.wrapping_add(1);
            let ans = request(&req, &netlink::get_route(*seq, dst), *seq, false, buf);
            match ans {
                Ok(v) => r.route(dst, v.first()),
                Err(e) => {
                    log::debug!("route to {dst}: {e}");
                    r.route(dst, None)
                }
            }
        };
        let mut last_sweep = Instant::now();
        while running.load(Relaxed) {
            let mut dirty = false;
            while let Some(dst) = requests.pop() {
                lookup(&mut r, dst, &mut seq, &mut buf);
            }
            let mut pfd = [
                libc::pollfd { fd: events.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: wake.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            unsafe { libc::poll(pfd.as_mut_ptr(), 2, 100) };
            if pfd[1].revents != 0 {
                let mut v = 0u64;
                unsafe { libc::read(wake.as_raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
                while let Some(dst) = requests.pop() {
                    lookup(&mut r, dst, &mut seq, &mut buf);
                }
            }
            loop {
                match recv(&events, &mut buf, libc::MSG_DONTWAIT) {
                    Ok(n) => {
                        for m in netlink::parse(&buf[..n]).into_iter().flatten() {
                            dirty |= r.on_message(&m);
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        // we missed notifications: look everything up again
                        dirty = true;
                    }
                    Err(_) => break,
                }
            }
            // routes changed (or a periodic safety sweep): look every destination up again
            if dirty || last_sweep.elapsed() > Duration::from_secs(10) {
                last_sweep = Instant::now();
                for dst in r.destinations() {
                    lookup(&mut r, dst, &mut seq, &mut buf);
                }
            }
            broadcast(&workers, r.changes());
        }
    })
}
