//! rtpgen's AF_XDP mode: one AF_XDP socket on the generator's own interface, fed by the
//! relay's own steering program (ebpf/relay_xdp.c, steering the generator's UDP address),
//! so that the generator's receive side costs an XDP redirect and a copy instead of the
//! kernel's UDP stack and socket wakeups, and its send side builds whole frames (headers
//! by backend::xdp::frame) straight into the TX ring. IPv4, plain RTP.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use backend::xdp::frame::{self, L2};
use backend::xdp::{Attached, FlowVal};
use xdp::slab::{HeapSlab, Slab};
use xdp::socket::{XdpSocket, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{RingConfigBuilder, Umem, WakableRings};

const RING: u32 = 4096;
const FRAMES: u32 = 16384;
const HEAD_ROOM: u32 = 0;

pub struct XskPort {
    umem: Umem,
    sock: XdpSocket,
    rings: WakableRings,
    _steering: Attached,
    pub local: SocketAddr,
    pub l2: L2,
    rx: HeapSlab,
    tx: HeapSlab,
    in_fill: usize,
    in_flight: usize,
}

/// Run `f` with this thread inside network namespace `ns` (None: where it is).
pub fn in_netns<T>(ns: Option<&str>, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let Some(ns) = ns else { return f() };
    let own = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| e.to_string())?;
    let target = std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("netns {ns}: {e}"))?;
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    let r = f();
    unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) };
    r
}

/// The neighbour MAC of `ip` (IPv4), resolving it through the kernel if needed.
fn neighbour(ip: IpAddr, from: IpAddr) -> Result<[u8; 6], String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let arp = std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default();
        for l in arp.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 4 && f[0] == ip.to_string() && f[2] != "0x0" {
                let m: Vec<u8> = f[3].split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
                if let Ok(m) = <[u8; 6]>::try_from(m) {
                    return Ok(m);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no ARP entry for {ip}"));
        }
        // make the kernel resolve it
        if let Ok(s) = UdpSocket::bind((from, 0)) {
            let _ = s.send_to(b"arp", (ip, 9));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl XskPort {
    /// An AF_XDP port for the generator's `local` address (bound by a UDP socket that keeps
    /// the port), in network namespace `ns`, sending to the relay at `relay`.
    pub fn open(ns: Option<&str>, local: SocketAddr, relay: IpAddr) -> Result<XskPort, String> {
        in_netns(ns, || {
            let name = backend::xdp::interface_of(local.ip()).ok_or(format!("no interface holds {}", local.ip()))?;
            let src_mac = backend::xdp::interface_mac(&name).ok_or(format!("no MAC for {name}"))?;
            let dst_mac = neighbour(relay, local.ip())?;
            let mut steering = backend::xdp::attach(&name, false).map_err(|e| format!("XDP on {name}: {e}"))?;
            let umem = Umem::map(
                UmemCfgBuilder {
                    frame_size: FrameSize::TwoK,
                    head_room: HEAD_ROOM,
                    frame_count: FRAMES,
                    ..Default::default()
                }
                .build()
                .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let mut b = XdpSocketBuilder::new().map_err(|e| e.to_string())?;
            let cfg = RingConfigBuilder { rx_count: RING, tx_count: RING, fill_count: RING, completion_count: RING }
                .build()
                .map_err(|e| e.to_string())?;
            let (rings, mut flags) = b.build_wakable_rings(&umem, cfg).map_err(|e| e.to_string())?;
            flags.force_copy();
            let sock =
                b.bind(xdp::nic::NicIndex(steering.ifindex), 0, flags).map_err(|e| format!("AF_XDP bind: {e}"))?;
            steering.set_socket(0, sock.as_raw_fd()).map_err(|e| e.to_string())?;
            steering
                .steer(local, FlowVal { flags: 0, peer_port: 0, pad: 0, peer_addr: [0; 16] })
                .map_err(|e| e.to_string())?;
            let mut p = XskPort {
                umem,
                sock,
                rings,
                _steering: steering,
                local,
                l2: L2 { dst_mac, src_mac, vlan: None },
                rx: HeapSlab::with_capacity(64),
                tx: HeapSlab::with_capacity(64),
                in_fill: 0,
                in_flight: 0,
            };
            p.refill();
            Ok(p)
        })
    }

    fn refill(&mut self) {
        // keep half the frames for sending
        let want = (RING as usize - self.in_fill).min(self.umem.allocatable().saturating_sub(FRAMES as usize / 2));
        if want > 0 {
            self.in_fill += unsafe { self.rings.fill_ring.enqueue(&mut self.umem, want, false) }.unwrap_or(0);
        }
    }

    fn complete(&mut self) {
        let done = self.rings.completion_ring.dequeue(&mut self.umem, RING as usize);
        self.in_flight -= done.min(self.in_flight);
    }

    /// Queue one datagram of `len` payload bytes to `to`; `fill` writes the payload.
    /// False when no frame or ring slot is free (counts as not sent).
    pub fn send(&mut self, to: SocketAddr, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        if self.tx.available() == 0 {
            self.flush();
        }
        if self.umem.allocatable() == 0 || self.in_flight + self.tx.len() >= RING as usize {
            self.complete();
        }
        let Some(mut p) = (unsafe { self.umem.alloc() }) else { return false };
        let cap = p.capacity() - HEAD_ROOM as usize;
        if p.adjust_tail(cap as i32).is_err() || frame::MAX_HEADERS + len > cap {
            self.umem.free_packet(p);
            return false;
        }
        let buf: &mut [u8] = &mut p;
        let payload = frame::MAX_HEADERS;
        fill(&mut buf[payload..payload + len]);
        let Some(start) = frame::write_headers(buf, payload, len, self.local, to, &self.l2, 0) else {
            self.umem.free_packet(p);
            return false;
        };
        let _ = p.adjust_head(start as i32);
        let _ = p.adjust_tail(-((cap - payload - len) as i32));
        if let Some(p) = self.tx.push_front(p) {
            self.umem.free_packet(p);
            return false;
        }
        true
    }

    /// Hand queued frames to the kernel.
    pub fn flush(&mut self) {
        if self.tx.is_empty() {
            return;
        }
        let n = self.tx.len();
        if let Some(tx) = self.rings.tx_ring.as_mut() {
            let _ = unsafe { tx.send(&mut self.tx, true) };
        }
        self.in_flight += n - self.tx.len();
        while let Some(p) = self.tx.pop_back() {
            self.umem.free_packet(p); // the ring was full: dropped before it left
        }
        self.complete();
        if self.in_flight > 0 {
            unsafe {
                libc::sendto(self.sock.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
        }
    }

    /// Receive what arrived; `f` gets each datagram's payload. Returns the count.
    pub fn poll(&mut self, mut f: impl FnMut(&mut [u8])) -> usize {
        let n = match self.rings.rx_ring.as_mut() {
            Some(r) => unsafe { r.recv(&self.umem, &mut self.rx) },
            None => 0,
        };
        self.in_fill -= n.min(self.in_fill);
        while let Some(mut p) = self.rx.pop_back() {
            let buf: &mut [u8] = &mut p;
            if let Ok(ing) = frame::parse(buf) {
                f(&mut buf[ing.payload..ing.payload + ing.payload_len]);
            }
            self.umem.free_packet(p);
        }
        self.refill();
        n
    }
}
