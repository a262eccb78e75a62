//! The benchmark's ceiling: ebpf/ceiling_xdp.c attached to the relay's interfaces, doing
//! in the kernel what relayd's AF_XDP workers do for plain RTP (match, rewrite
//! Ethernet/IPv4/UDP, redirect out of the other interface), with nothing else. The calls
//! are set up by a relayd (io_uring backend) so the same ng signalling and the same ports
//! are used; this tool follows relayd's /flows and installs one forwarding entry per RTP
//! flow. Runs until killed; detaches on exit.
//!
//!   xdp_ceiling --http 10.203.1.1:9990 --iface rpub --iface rpriv \
//!       --peer-mac 10.203.1.2=aa:.. --peer-mac 10.203.2.2=bb:.. [--pass xC:cpub --pass xE:epriv]
//!
//! `--pass NETNS:IFACE` attaches an XDP_PASS program to the far ends: veth accepts
//! XDP-redirected frames only when the receiving end runs XDP.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aya::maps::HashMap as BpfHashMap;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// relayd's --listen-http
    #[arg(long)]
    http: String,
    /// relay interfaces to attach the ceiling program to
    #[arg(long = "iface")]
    ifaces: Vec<String>,
    /// PEER_IP=MAC of the hosts behind the relay
    #[arg(long = "peer-mac")]
    peer_macs: Vec<String>,
    /// NETNS:IFACE ends that get an XDP_PASS program
    #[arg(long = "pass")]
    pass: Vec<String>,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct FwdKey {
    addr: u32,
    port: u16,
    pad: u16,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct Fwd {
    ifindex: u32,
    dmac: [u8; 6],
    smac: [u8; 6],
    saddr: u32,
    daddr: u32,
    sport: u16,
    dport: u16,
}
unsafe impl aya::Pod for FwdKey {}
unsafe impl aya::Pod for Fwd {}

static STOP: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16).expect("mac")).collect();
    v.try_into().expect("6-byte mac")
}

fn sysfs(name: &str, what: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{what}")).expect("interface").trim().to_string()
}

fn get(http: &str, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(http).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {http}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let json = body.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(json).ok()
}

fn v4(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a).to_be(),
        IpAddr::V6(_) => 0,
    }
}

/// Attach `prog` of `bpf` to `iface` inside network namespace `ns` (None: ours).
fn attach_in(bpf: &mut Ebpf, prog: &str, ns: Option<&str>, iface: &str) {
    let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
    if let Some(ns) = ns {
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns");
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
    }
    // not sysfs: /sys shows the namespace it was mounted in, not the one this thread entered
    let c = std::ffi::CString::new(iface).unwrap();
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(ifindex != 0, "no interface {iface} in netns {ns:?}");
    let p: &mut Xdp = bpf.program_mut(prog).unwrap().try_into().unwrap();
    p.attach_to_if_index(ifindex, XdpMode::Driver).unwrap_or_else(|e| panic!("attach {prog} to {iface}: {e}"));
    assert_eq!(unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

fn main() {
    let args = Args::parse();
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let peer_mac: HashMap<IpAddr, [u8; 6]> = args
        .peer_macs
        .iter()
        .map(|s| {
            let (ip, m) = s.split_once('=').expect("PEER_IP=MAC");
            (ip.parse().expect("peer ip"), mac(m))
        })
        .collect();
    // relay address -> (ifindex, mac)
    let mut local: HashMap<IpAddr, (u32, [u8; 6])> = HashMap::new();
    let mut bpf = Ebpf::load(backend::xdp::CEILING_XDP).expect("load ceiling object");
    for name in ["ceiling", "xdp_pass"] {
        let p: &mut Xdp = bpf.program_mut(name).unwrap().try_into().unwrap();
        p.load().expect("verifier");
    }
    for i in &args.ifaces {
        let ifindex: u32 = sysfs(i, "ifindex").parse().unwrap();
        for a in backend::xdp::interface_addresses(i) {
            local.insert(a, (ifindex, mac(&sysfs(i, "address"))));
        }
        attach_in(&mut bpf, "ceiling", None, i);
    }
    for p in &args.pass {
        let (ns, iface) = p.split_once(':').expect("NETNS:IFACE");
        attach_in(&mut bpf, "xdp_pass", Some(ns), iface);
    }
    let mut map: BpfHashMap<_, FwdKey, Fwd> =
        BpfHashMap::try_from(bpf.map_mut("ceiling_fwd").expect("ceiling_fwd")).expect("map");
    let mut installed = 0usize;
    let mut seen: HashMap<(u32, u16), (u32, u16)> = HashMap::new();
    eprintln!("xdp_ceiling: attached to {:?}", args.ifaces);
    while !STOP.load(Ordering::SeqCst) {
        if let Some(serde_json::Value::Array(flows)) = get(&args.http, "/flows") {
            // call -> (caller rtp flow, callee rtp flow): (local, signalled peer)
            let mut calls: HashMap<String, Vec<(SocketAddr, SocketAddr)>> = HashMap::new();
            for f in &flows {
                if f["kind"] != "rtp" {
                    continue;
                }
                let (Some(l), Some(p)) = (f["local"].as_str(), f["signalled_peer"].as_str()) else { continue };
                let (Ok(l), Ok(p)) = (l.parse::<SocketAddr>(), p.parse::<SocketAddr>()) else { continue };
                calls.entry(f["call_id"].as_str().unwrap_or("").to_string()).or_default().push((l, p));
            }
            for legs in calls.values() {
                let [a, b] = legs[..] else { continue };
                for ((rx_local, _), (tx_local, peer)) in [(a, b), (b, a)] {
                    let key = FwdKey { addr: v4(rx_local.ip()), port: rx_local.port().to_be(), pad: 0 };
                    // ports are reused by later calls with other peers: re-install on change
                    if seen.get(&(key.addr, key.port)) == Some(&(v4(peer.ip()), peer.port())) {
                        continue;
                    }
                    let (Some(&(ifindex, smac)), Some(&dmac)) = (local.get(&tx_local.ip()), peer_mac.get(&peer.ip()))
                    else {
                        continue;
                    };
                    let fwd = Fwd {
                        ifindex,
                        dmac,
                        smac,
                        saddr: v4(tx_local.ip()),
                        daddr: v4(peer.ip()),
                        sport: tx_local.port().to_be(),
                        dport: peer.port().to_be(),
                    };
                    if map.insert(key, fwd, 0).is_ok() {
                        seen.insert((key.addr, key.port), (v4(peer.ip()), peer.port()));
                        installed += 1;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("xdp_ceiling: {installed} entries installed; detaching");
}
