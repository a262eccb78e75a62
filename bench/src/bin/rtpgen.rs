//! rtpgen: sets up N calls over ng against any ng relay (relayd or rtpengine), sends RTP
//! both ways through it and reports loss, duplicates, reordering, RFC 3550 jitter and
//! relay transit latency.
//!
//! All callers share one socket and all callees another (the relay latches each call's
//! legs on that address), so packets leave and arrive in sendmmsg/recvmmsg batches and
//! the generator is not the first thing to saturate.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde::Serialize;

use bench::xsk::XskPort;
use control::bencode::Value;
use control::ng::client::NgClient;
use relay_core::flow::stats::RtpStats;
use relay_core::packet::rtp::{emit_header, RtpPacket};
use relay_core::srtp::{Context, Suite};
use rules::dataplane::SrtpKey;

#[derive(Parser, Debug, Clone)]
#[command(name = "rtpgen", version, about = "RTP load generator for ng-controlled media relays")]
struct Args {
    /// The relay's ng address
    #[arg(long, default_value = control::ng::DEFAULT_LISTEN)]
    ng: SocketAddr,
    /// Number of calls
    #[arg(long, short = 'n', default_value_t = 100)]
    calls: usize,
    /// Seconds of media
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Packet interval per stream in ms
    #[arg(long, default_value_t = 20)]
    ptime: u64,
    /// Total packet rate over all streams (overrides --ptime)
    #[arg(long)]
    rate: Option<u64>,
    /// RTP packet size in bytes (header included)
    #[arg(long, default_value_t = 172)]
    size: usize,
    /// Address the caller side binds (and writes into its SDP)
    #[arg(long, default_value = "127.0.0.1")]
    caller_ip: IpAddr,
    /// Address the callee side binds
    #[arg(long, default_value = "127.0.0.1")]
    callee_ip: IpAddr,
    /// ng `direction`: the relay interface facing the caller, then the one facing the
    /// callee (e.g. pub,priv)
    #[arg(long, value_delimiter = ',')]
    direction: Vec<String>,
    /// Extra ng flags for offer and answer (repeatable), e.g. --flag strict-source
    #[arg(long = "flag")]
    flags: Vec<String>,
    /// Exit non-zero when loss exceeds this percentage
    #[arg(long, default_value_t = 1.0)]
    max_loss: f64,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    /// No progress bar
    #[arg(long)]
    quiet: bool,
    /// CPU to pin the sender and receivers to
    #[arg(long)]
    cpu: Option<usize>,
    /// Keep the calls (do not delete them at the end)
    #[arg(long)]
    keep: bool,
    /// The caller leg speaks SDES-SRTP with this suite (e.g. AES_CM_128_HMAC_SHA1_80)
    #[arg(long)]
    srtp: Option<String>,
    /// The callee leg's suite, or "plain" for RTP (default: the caller's setting)
    #[arg(long)]
    srtp_callee: Option<String>,
    /// Network namespace (as `ip netns` names it) for the callee's socket: caller and
    /// callee on two separate hosts of a namespace topology
    #[arg(long)]
    callee_netns: Option<String>,
    /// Seconds to wait between setting the calls up and sending (lets a benchmark install
    /// something in front of the relay, e.g. bench's xdp_ceiling)
    #[arg(long, default_value_t = 0.0)]
    settle: f64,
    /// Send and receive through AF_XDP sockets on the caller's and callee's interfaces
    /// (XDP program attached there, copy mode; IPv4, plain RTP) instead of UDP sockets
    #[arg(long)]
    xdp: bool,
    /// Address written into both SDPs instead of the real ones (endpoints behind NAT: only
    /// latching finds where they really are)
    #[arg(long)]
    sdp_ip: Option<IpAddr>,
    /// Do not send ng `received-from` (the SIP source a proxy such as Kamailio passes; it
    /// lets the relay latch a NATed endpoint's first packet at once instead of after
    /// --latch-grace)
    #[arg(long = "no-received-from")]
    no_received_from: bool,
    /// Sequence number of every stream's first packet (default: random), e.g. 65000 to
    /// cross a wrap (SRTP rollover) early in a test
    #[arg(long = "first-seq")]
    first_seq: Option<u16>,
}

/// Bind a UDP socket inside network namespace `ns` (this thread enters it for the bind and
/// returns to its own namespace; the socket stays in `ns`).
fn bind_in_netns(ns: &str, addr: (IpAddr, u16)) -> Result<UdpSocket, String> {
    let own = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| format!("own netns: {e}"))?;
    let target = std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("netns {ns}: {e}"))?;
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    let r = UdpSocket::bind(addr).map_err(|e| format!("bind {} in netns {ns}: {e}", addr.0));
    if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns back: {}", std::io::Error::last_os_error()));
    }
    r
}

const MAGIC: u32 = 0x52545047; // "RTPG"
/// payload: magic, call, dir, send time (ns since start)
const PAYLOAD_MIN: usize = 4 + 4 + 1 + 8;

struct Stream {
    to: SocketAddr,
    seq: u16,
    /// SRTP for what this stream sends (None: plain RTP).
    tx: Option<Context>,
}

/// What arrived on one stream. Sequence tracking and RFC 3550 jitter are the core's
/// (the [`RtpStats`] each relay flow keeps); rtpgen adds what only the sender's own peer
/// can tell: duplicates and packets that arrived behind a later one.
#[derive(Default, Clone)]
struct RxStream {
    rtp: RtpStats,
    /// Packets accounted, duplicates not included (the core's count restarts with a
    /// sequence jump; this one never does).
    received: u64,
    /// Bitmap of the sequence numbers in a sliding window of 1024: a cycle is 65536
    /// numbers, so the 16-bit number alone picks the slot.
    seen: Vec<u64>,
    dup: u64,
    reordered: u64,
}

impl RxStream {
    fn account(&mut self, ssrc: u32, seq: u16, ts: u32, arrival_8k: u64) {
        if self.seen.is_empty() {
            self.seen = vec![0; 16];
        }
        if self.rtp.highest().is_some_and(|(_, max)| seq.wrapping_sub(max) >= 0x8000) {
            self.reordered += 1;
        }
        let bit = seq as usize % 1024;
        let (w, b) = (bit / 64, bit % 64);
        if self.seen[w] & (1 << b) != 0 && self.received > 0 {
            self.dup += 1;
            return;
        }
        // clear the slot that the window moved past
        let clear = (seq as usize + 512) % 1024;
        self.seen[clear / 64] &= !(1 << (clear % 64));
        self.seen[w] |= 1 << b;
        self.received += 1;
        self.rtp.update(ssrc, seq, ts, arrival_8k);
    }

    /// RFC 3550 interarrival jitter in ms (the streams' clock is 8 kHz).
    fn jitter_ms(&self) -> f64 {
        self.rtp.jitter() as f64 / 8.0
    }
}

struct Rx {
    streams: Vec<RxStream>,
    srtp_auth_failures: u64,
    latency: Histogram<u64>,
    /// per-second (sum of latency us, count) to see a growing backlog
    per_sec: Vec<(u64, u64)>,
    foreign: u64,
}

#[derive(Serialize)]
struct Summary {
    relay: String,
    calls: usize,
    duration_s: f64,
    rate_pps: f64,
    sent: u64,
    received: u64,
    lost: i64,
    loss_pct: f64,
    duplicated: u64,
    reordered: u64,
    jitter_ms_mean: f64,
    jitter_ms_max: f64,
    latency_us_p50: u64,
    latency_us_p90: u64,
    latency_us_p99: u64,
    latency_us_p999: u64,
    latency_us_max: u64,
    /// Mean latency of the last full second over the first: > 4 means a queue is building
    backlog_ratio: f64,
    setup_failures: usize,
    /// Packets that arrived but failed SRTP authentication
    srtp_auth_failures: u64,
}

fn pin(cpu: Option<usize>) {
    if let Some(c) = cpu {
        backend::sys::pin_to_cpu(c);
    }
}

fn sdp(ip: IpAddr, port: u16) -> String {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!("v=0\r\no=rtpgen 1 1 IN {fam} {ip}\r\ns=rtpgen\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=sendrecv\r\n")
}

fn media_port(r: &Value) -> Option<u16> {
    let s = r.get("sdp")?.as_str()?;
    s.lines().find(|l| l.starts_with("m=audio"))?.split(' ').nth(1)?.parse().ok()
}

/// The relay's own conversion (backend::sys::sockaddr_to); a sockaddr_in6 holds either family.
fn sockaddr(a: SocketAddr) -> (libc::sockaddr_in6, libc::socklen_t) {
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let len = backend::sys::sockaddr_to(a, &mut sa);
    (sa, len)
}

const BATCH: usize = 64;

/// Packets waiting for one sendmmsg on one socket.
struct SideBatch {
    pkts: Vec<Vec<u8>>,
    lens: Vec<usize>,
    addrs: Vec<(libc::sockaddr_in6, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    n: usize,
}

impl SideBatch {
    fn new(size: usize) -> SideBatch {
        SideBatch {
            pkts: vec![vec![0u8; size + Suite::MAX_OVERHEAD]; BATCH],
            lens: vec![size; BATCH],
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH],
            msgs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            n: 0,
        }
    }

    fn flush(&mut self, fd: libc::c_int) {
        for k in 0..self.n {
            self.iovs[k] = libc::iovec { iov_base: self.pkts[k].as_mut_ptr() as *mut _, iov_len: self.lens[k] };
            self.msgs[k].msg_hdr.msg_name = &mut self.addrs[k].0 as *mut _ as *mut _;
            self.msgs[k].msg_hdr.msg_namelen = self.addrs[k].1;
            self.msgs[k].msg_hdr.msg_iov = &mut self.iovs[k];
            self.msgs[k].msg_hdr.msg_iovlen = 1;
        }
        let mut off = 0;
        while off < self.n {
            let r = unsafe { libc::sendmmsg(fd, self.msgs.as_mut_ptr().add(off), (self.n - off) as u32, 0) };
            if r <= 0 {
                break; // a full socket buffer: what was not sent counts as lost
            }
            off += r as usize;
        }
        self.n = 0;
    }
}

fn receiver(
    sock: UdpSocket,
    mut crypto: Vec<Option<Context>>,
    start: Instant,
    stop: Arc<AtomicBool>,
    cpu: Option<usize>,
) -> Rx {
    pin(cpu);
    let mut rx = Rx::new(crypto.len());
    const B: usize = 64;
    let mut bufs = vec![[0u8; 2048]; B];
    let mut iovs: Vec<libc::iovec> =
        bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut _, iov_len: b.len() }).collect();
    let mut msgs: Vec<libc::mmsghdr> = (0..B)
        .map(|i| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let fd = sock.as_raw_fd();
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &mut tv as *mut _ as *mut _,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    while !stop.load(Ordering::Relaxed) {
        let n = unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), B as u32, libc::MSG_WAITFORONE, std::ptr::null_mut()) };
        if n <= 0 {
            continue;
        }
        let now_ns = start.elapsed().as_nanos() as u64;
        for m in msgs.iter().take(n as usize) {
            let len = m.msg_len as usize;
            let buf = unsafe { std::slice::from_raw_parts_mut(m.msg_hdr.msg_iov.read().iov_base as *mut u8, 2048) };
            account(&mut rx, &mut crypto, buf, len, now_ns);
        }
    }
    rx
}

/// Account one received datagram (`buf[..len]`, with room for SRTP removal).
fn account(rx: &mut Rx, crypto: &mut [Option<Context>], buf: &mut [u8], mut len: usize, now_ns: u64) {
    // the stream is known from the clear SSRC; SRTP is removed before anything else
    if len >= 12 {
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
        if let Some(Some(ctx)) = crypto.get_mut(ssrc) {
            match ctx.unprotect_rtp(buf, len) {
                Ok(n) => len = n,
                Err(_) => {
                    rx.srtp_auth_failures += 1;
                    return;
                }
            }
        }
    }
    let buf = &buf[..len];
    let Ok(p) = RtpPacket::new_checked(buf) else {
        rx.foreign += 1;
        return;
    };
    let pl = p.payload();
    if pl.len() < PAYLOAD_MIN || u32::from_be_bytes(pl[0..4].try_into().unwrap()) != MAGIC {
        rx.foreign += 1;
        return;
    }
    let call = u32::from_be_bytes(pl[4..8].try_into().unwrap()) as usize;
    let dir = pl[8] as usize;
    let sent_ns = u64::from_be_bytes(pl[9..17].try_into().unwrap());
    let idx = call * 2 + dir;
    if idx >= rx.streams.len() {
        rx.foreign += 1;
        return;
    }
    rx.streams[idx].account(p.ssrc(), p.sequence(), p.timestamp(), now_ns / 125_000);
    let lat_us = now_ns.saturating_sub(sent_ns) / 1000;
    let _ = rx.latency.record(lat_us.max(1));
    let sec = (now_ns / 1_000_000_000) as usize;
    if rx.per_sec.len() <= sec {
        rx.per_sec.resize(sec + 1, (0, 0));
    }
    rx.per_sec[sec].0 += lat_us;
    rx.per_sec[sec].1 += 1;
}

impl Rx {
    fn new(streams: usize) -> Rx {
        Rx {
            srtp_auth_failures: 0,
            streams: vec![RxStream::default(); streams],
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
            per_sec: Vec::new(),
            foreign: 0,
        }
    }
}

/// One side (caller: 0, callee: 1) in AF_XDP mode: sends that side's streams at `rate`
/// and receives what comes back, from one thread, until `stop`.
#[allow(clippy::too_many_arguments)]
fn xdp_side(
    port: Result<XskPort, String>,
    mut streams: Vec<(usize, Stream)>,
    n_streams: usize,
    rate: f64,
    size: usize,
    start: Instant,
    dur: Duration,
    stop: Arc<AtomicBool>,
) -> Result<(Vec<u64>, Rx, u64), String> {
    let mut port = port?;
    let mut rx = Rx::new(n_streams);
    let mut crypto: Vec<Option<Context>> = (0..n_streams).map(|_| None).collect();
    let mut pss = vec![0u64; n_streams];
    let mut sent = 0u64;
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let t = start.elapsed();
        let mut busy = false;
        if t < dur && !streams.is_empty() {
            let due = (t.as_secs_f64() * rate) as u64;
            let now_ns = t.as_nanos() as u64;
            for _ in 0..due.saturating_sub(sent).min(1024) {
                let m = streams.len();
                let (idx, st) = &mut streams[next];
                next = (next + 1) % m;
                st.seq = st.seq.wrapping_add(1);
                pss[*idx] += 1;
                let ts = (pss[*idx] as u32).wrapping_mul(160);
                let (seq, idx) = (st.seq, *idx);
                port.send(st.to, size, |p| {
                    emit_header(p, 0, false, seq, ts, idx as u32);
                    p[12..16].copy_from_slice(&MAGIC.to_be_bytes());
                    p[16..20].copy_from_slice(&((idx / 2) as u32).to_be_bytes());
                    p[20] = (idx % 2) as u8;
                    p[21..29].copy_from_slice(&now_ns.to_be_bytes());
                });
                sent += 1;
                busy = true;
            }
            port.flush();
        }
        let now_ns = start.elapsed().as_nanos() as u64;
        let got = port.poll(|payload| {
            let len = payload.len();
            account(&mut rx, &mut crypto, payload, len, now_ns)
        });
        if got == 0 && !busy {
            // the generator owns its core: yield (to its NAPI threads) instead of sleeping,
            // so no timer slack lands in the latency it measures
            std::thread::yield_now();
        }
    }
    Ok((pss, rx, sent))
}

fn run(args: Args) -> Result<Summary, String> {
    let (caller, callee) = bind_endpoints(&args)?;
    let ports = (port_of(&caller)?, port_of(&callee)?);
    let mut ng = NgClient::connect(args.ng, Duration::from_secs(2)).map_err(|e| format!("ng {}: {e}", args.ng))?;
    let calls = CallSetup::new(&args, ports)?.set_up_all(&mut ng)?;
    let rate = args.rate.map(|r| r as f64).unwrap_or(calls.streams.len() as f64 * 1000.0 / args.ptime as f64);
    if args.settle > 0.0 {
        std::thread::sleep(std::time::Duration::from_secs_f64(args.settle));
    }
    let (n_calls, failures, srtp) = (calls.ids.len(), calls.failures, calls.srtp);
    let ids = calls.ids.clone();
    let traffic = if args.xdp {
        if srtp {
            return Err("--xdp sends plain RTP only".into());
        }
        send_xdp(&args, calls.streams, &caller, &callee, rate)?
    } else {
        send_udp(&args, calls, &caller, &callee, rate)?
    };
    if !args.keep {
        delete_calls(&mut ng, &ids);
    }
    Ok(summarize(&args, n_calls, failures, &traffic))
}

/// The caller side's socket and the callee side's (in `--callee-netns` if given), with
/// buffers deep enough for a burst of every stream.
fn bind_endpoints(args: &Args) -> Result<(UdpSocket, UdpSocket), String> {
    let caller = UdpSocket::bind((args.caller_ip, 0)).map_err(|e| format!("bind {}: {e}", args.caller_ip))?;
    let callee = match &args.callee_netns {
        Some(ns) => bind_in_netns(ns, (args.callee_ip, 0))?,
        None => UdpSocket::bind((args.callee_ip, 0)).map_err(|e| format!("bind {}: {e}", args.callee_ip))?,
    };
    for s in [&caller, &callee] {
        let sz: libc::c_int = 8 << 20;
        for o in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            unsafe { libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, o, &sz as *const _ as *const _, 4) };
        }
    }
    Ok((caller, callee))
}

fn port_of(s: &UdpSocket) -> Result<u16, String> {
    s.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The calls set up over ng. Stream 2i is call i's caller -> callee, 2i+1 callee -> caller.
struct Calls {
    ids: Vec<String>,
    streams: Vec<Stream>,
    /// SRTP for what arrives on each stream (None: plain RTP), in stream order.
    rx_crypto: Vec<Option<Context>>,
    failures: usize,
    /// Either leg speaks SRTP.
    srtp: bool,
}

/// One call's two streams and how to read what arrives on them.
struct Call {
    to_callee: Stream,
    to_caller: Stream,
    /// SRTP of what the callee receives, and of what the caller receives.
    rx_crypto: [Option<Context>; 2],
}

/// What every call's offer and answer have in common.
struct CallSetup<'a> {
    args: &'a Args,
    run_id: String,
    flags: Value,
    /// The ports of the caller's and the callee's socket.
    ports: (u16, u16),
    caller_suite: Option<Suite>,
    callee_suite: Option<Suite>,
}

impl<'a> CallSetup<'a> {
    fn new(args: &'a Args, ports: (u16, u16)) -> Result<CallSetup<'a>, String> {
        let caller_suite =
            args.srtp.as_deref().map(|n| Suite::from_name(n).ok_or(format!("unknown --srtp suite {n}"))).transpose()?;
        let callee_suite = match args.srtp_callee.as_deref() {
            None => caller_suite,
            Some("plain") => None,
            Some(n) => Some(Suite::from_name(n).ok_or(format!("unknown --srtp-callee suite {n}"))?),
        };
        Ok(CallSetup {
            args,
            run_id: format!("rtpgen-{}-{:x}", std::process::id(), rand::random::<u32>()),
            flags: Value::List(args.flags.iter().map(|f| f.as_str().into()).collect()),
            ports,
            caller_suite,
            callee_suite,
        })
    }

    /// Sets up `--calls` calls; a call the relay refuses is counted (the first reason is
    /// printed), an ng transport error ends the run.
    fn set_up_all(&self, ng: &mut NgClient) -> Result<Calls, String> {
        let n = self.args.calls;
        let setup_t0 = Instant::now();
        let mut calls = Calls {
            ids: Vec::new(),
            streams: Vec::with_capacity(n * 2),
            rx_crypto: Vec::with_capacity(n * 2),
            failures: 0,
            srtp: self.caller_suite.is_some() || self.callee_suite.is_some(),
        };
        for i in 0..n {
            let cid = format!("{}-{i}", self.run_id);
            match self.set_up(ng, &cid)? {
                Ok(call) => {
                    calls.streams.extend([call.to_callee, call.to_caller]);
                    calls.rx_crypto.extend(call.rx_crypto);
                    calls.ids.push(cid);
                }
                Err(why) => {
                    calls.failures += 1;
                    if calls.failures == 1 {
                        eprintln!("rtpgen: call setup failed: {why}");
                    }
                }
            }
        }
        if calls.streams.is_empty() {
            return Err("no call could be set up".into());
        }
        if !self.args.quiet {
            let t = setup_t0.elapsed().as_secs_f64();
            eprintln!("rtpgen: {} calls set up in {t:.2}s against {}", calls.ids.len(), self.args.ng);
        }
        Ok(calls)
    }

    /// Offer and answer one call: Err for a failed exchange, Ok(Err(reason)) for a call the
    /// relay refused.
    fn set_up(&self, ng: &mut NgClient, cid: &str) -> Result<Result<Call, String>, String> {
        let args = self.args;
        let (offer, caller_key) = self.offer(ng, cid)?;
        let offer_text = offer.get("sdp").and_then(Value::as_str).unwrap_or("");
        let (answer, callee_keys) = self.answer(ng, cid, offer_text)?;
        let answer_text = answer.get("sdp").and_then(Value::as_str).unwrap_or("");
        let (Some(to_a), Some(to_b)) = (media_port(&answer), media_port(&offer)) else {
            let why = offer.get("error-reason").or(answer.get("error-reason")).and_then(Value::as_str);
            return Ok(Err(why.unwrap_or("no SDP").to_string()));
        };
        let ip_a = relay_ip(&answer).unwrap_or(args.ng.ip());
        let ip_b = relay_ip(&offer).unwrap_or(args.ng.ip());
        let caller_rx = match self.caller_suite {
            Some(s) => {
                Some(ctx_of(&crypto_line(answer_text, s).ok_or("the answer has no a=crypto for the caller")?.key))
            }
            None => None,
        };
        let first_seq = || args.first_seq.map(|s| s.wrapping_sub(1)).unwrap_or_else(rand::random);
        Ok(Ok(Call {
            to_callee: Stream {
                to: SocketAddr::new(ip_a, to_a),
                seq: first_seq(),
                tx: caller_key.as_ref().map(ctx_of),
            },
            to_caller: Stream {
                to: SocketAddr::new(ip_b, to_b),
                seq: first_seq(),
                tx: callee_keys.as_ref().map(|(own, _)| ctx_of(own)),
            },
            rx_crypto: [callee_keys.as_ref().map(|(_, relay)| ctx_of(relay)), caller_rx],
        }))
    }

    /// The caller's offer (with its own SDES key when it speaks SRTP): the relay's reply
    /// and that key.
    fn offer(&self, ng: &mut NgClient, cid: &str) -> Result<(Value, Option<SrtpKey>), String> {
        let args = self.args;
        let (caller_suite, callee_suite) = (self.caller_suite, self.callee_suite);
        let mut offer_sdp = sdp(args.sdp_ip.unwrap_or(args.caller_ip), self.ports.0);
        let caller_key = caller_suite.map(|s| control::sdes::generate(s));
        if let Some(k) = &caller_key {
            offer_sdp = offer_sdp.replace("RTP/AVP", "RTP/SAVP")
                + &control::sdes::format(&control::sdes::Crypto { tag: 1, key: k.clone() }, true, false)
                + "\r\n";
        }
        let mut offer_req = vec![
            ("command", "offer".into()),
            ("call-id", cid.into()),
            ("from-tag", "caller".into()),
            ("flags", self.flags.clone()),
            ("replace", Value::List(vec!["origin".into()])),
            ("sdp", offer_sdp.into()),
        ];
        if !args.no_received_from {
            offer_req.push(("received-from", received_from(args.caller_ip)));
        }
        if !args.direction.is_empty() {
            offer_req.push(("direction", Value::List(args.direction.iter().map(|d| d.as_str().into()).collect())));
        }
        if caller_suite.is_some() != callee_suite.is_some() {
            offer_req.push(("transport-protocol", if callee_suite.is_some() { "RTP/SAVP" } else { "RTP/AVP" }.into()));
        }
        let offer = ng.request(&NgClient::req(&offer_req)).map_err(|e| format!("offer {cid}: {e}"))?;
        Ok((offer, caller_key))
    }

    /// The callee's answer to the relay's offer `offer_text` (answering its SDES line with
    /// a key of the callee's own): the relay's reply and the callee's (own, relay's) keys.
    fn answer(
        &self,
        ng: &mut NgClient,
        cid: &str,
        offer_text: &str,
    ) -> Result<(Value, Option<(SrtpKey, SrtpKey)>), String> {
        let args = self.args;
        let mut answer_sdp = sdp(args.sdp_ip.unwrap_or(args.callee_ip), self.ports.1);
        let mut callee_keys = None;
        if let Some(suite) = self.callee_suite {
            let Some(relay_line) = crypto_line(offer_text, suite) else {
                return Err(format!("the relay did not offer {suite} to the callee"));
            };
            let own = control::sdes::generate(suite);
            answer_sdp = answer_sdp.replace("RTP/AVP", "RTP/SAVP")
                + &control::sdes::format(&control::sdes::Crypto { tag: relay_line.tag, key: own.clone() }, true, false)
                + "\r\n";
            callee_keys = Some((own, relay_line.key));
        }
        let mut answer_req = vec![
            ("command", "answer".into()),
            ("call-id", cid.into()),
            ("from-tag", "caller".into()),
            ("to-tag", "callee".into()),
            ("flags", self.flags.clone()),
            ("sdp", answer_sdp.into()),
        ];
        if !args.no_received_from {
            answer_req.push(("received-from", received_from(args.callee_ip)));
        }
        let answer = ng.request(&NgClient::req(&answer_req)).map_err(|e| format!("answer {cid}: {e}"))?;
        Ok((answer, callee_keys))
    }
}

/// ng `received-from`: the SIP source a proxy passes.
fn received_from(ip: IpAddr) -> Value {
    Value::List(vec![if ip.is_ipv4() { "IP4" } else { "IP6" }.into(), ip.to_string().as_str().into()])
}

fn ctx_of(k: &SrtpKey) -> Context {
    Context::from_key(k).unwrap()
}

/// The `a=crypto` line of `suite` in `sdp`.
fn crypto_line(sdp: &str, suite: Suite) -> Option<control::sdes::Crypto> {
    sdp.lines().filter_map(|l| control::sdes::parse(l).ok()).find(|c| c.key.suite == suite)
}

fn delete_calls(ng: &mut NgClient, ids: &[String]) {
    for cid in ids {
        let _ = ng.request(&NgClient::req(&[
            ("command", "delete".into()),
            ("call-id", cid.as_str().into()),
            ("delete-delay", Value::Int(0)),
        ]));
    }
}

/// What a run sent, and what each side received.
struct Traffic {
    /// Packets sent per stream.
    pss: Vec<u64>,
    sent: u64,
    /// Seconds spent sending.
    elapsed_s: f64,
    /// What the caller received (the odd streams) and the callee (the even ones).
    caller_rx: Rx,
    callee_rx: Rx,
}

/// The AF_XDP run: one thread per side sends that side's streams and receives.
fn send_xdp(
    args: &Args,
    streams: Vec<Stream>,
    caller: &UdpSocket,
    callee: &UdpSocket,
    rate: f64,
) -> Result<Traffic, String> {
    let n_streams = streams.len();
    let size = args.size.max(12 + PAYLOAD_MIN);
    let dur = Duration::from_secs_f64(args.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut go = Vec::new();
    let mut threads = Vec::new();
    let mut by_side: [Vec<(usize, Stream)>; 2] = [Vec::new(), Vec::new()];
    for (i, st) in streams.into_iter().enumerate() {
        by_side[i % 2].push((i, st));
    }
    let relay_of = |side: usize| by_side[side].first().map(|(_, s)| s.to.ip());
    let relays = [relay_of(0), relay_of(1)];
    for (side, mine) in by_side.into_iter().enumerate() {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<Instant>();
        go.push(go_tx);
        let local = if side == 0 { caller.local_addr() } else { callee.local_addr() }.map_err(|e| e.to_string())?;
        let ns = if side == 0 { None } else { args.callee_netns.clone() };
        let relay = relays[side].ok_or("no streams")?;
        let (ready, stop, cpu) = (ready_tx.clone(), stop.clone(), args.cpu);
        threads.push(std::thread::spawn(move || {
            pin(cpu);
            let port = XskPort::open(ns.as_deref(), local, relay);
            let _ = ready.send(port.as_ref().map(|_| ()).map_err(|e| e.clone()));
            let start = go_rx.recv().map_err(|e| e.to_string())?;
            xdp_side(port, mine, n_streams, rate / 2.0, size, start, dur, stop)
        }));
    }
    for _ in 0..2 {
        ready_rx.recv().map_err(|e| e.to_string())??;
    }
    let start = Instant::now();
    for g in &go {
        let _ = g.send(start);
    }
    std::thread::sleep(dur + Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut pss = vec![0u64; n_streams];
    let mut sent = 0;
    let mut rxs = Vec::new();
    for t in threads {
        let (p, rx, n) = t.join().map_err(|_| "xdp side panicked")??;
        for (a, b) in pss.iter_mut().zip(p) {
            *a += b;
        }
        sent += n;
        rxs.push(rx);
    }
    let (Some(callee_rx), Some(caller_rx)) = (rxs.pop(), rxs.pop()) else {
        return Err("an xdp side is missing".into());
    };
    Ok(Traffic { pss, sent, elapsed_s: dur.as_secs_f64(), caller_rx, callee_rx })
}

/// The UDP run: a receiver thread per side, this thread sends every stream.
fn send_udp(args: &Args, calls: Calls, caller: &UdpSocket, callee: &UdpSocket, rate: f64) -> Result<Traffic, String> {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // the callee receives dir 0 (even streams), the caller dir 1 (odd streams)
    let (mut for_callee, mut for_caller): (Vec<Option<Context>>, Vec<Option<Context>>) = (Vec::new(), Vec::new());
    for (i, c) in calls.rx_crypto.into_iter().enumerate() {
        if i % 2 == 0 {
            for_callee.push(c);
            for_caller.push(None);
        } else {
            for_caller.push(c);
            for_callee.push(None);
        }
    }
    let spawn_receiver = |sock: &UdpSocket, crypto: Vec<Option<Context>>| {
        let (s, st, cpu) = (sock.try_clone().map_err(|e| e.to_string())?, stop.clone(), args.cpu);
        Ok::<_, String>(std::thread::spawn(move || receiver(s, crypto, start, st, cpu)))
    };
    let rx_callee = spawn_receiver(callee, for_callee)?;
    let rx_caller = spawn_receiver(caller, for_caller)?;
    let sent_total = Arc::new(AtomicU64::new(0));
    let progress = (!args.quiet).then(|| spawn_progress(sent_total.clone(), stop.clone(), start, args.duration));
    pin(args.cpu);
    let sender = Sender::new(args, calls.streams, [caller.as_raw_fd(), callee.as_raw_fd()]);
    let (pss, sent) = sender.run(start, Duration::from_secs_f64(args.duration), rate, &sent_total);
    let elapsed_s = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let caller_rx = rx_caller.join().map_err(|_| "the caller's receiver panicked")?;
    let callee_rx = rx_callee.join().map_err(|_| "the callee's receiver panicked")?;
    if let Some(p) = progress {
        let _ = p.join();
    }
    Ok(Traffic { pss, sent, elapsed_s, caller_rx, callee_rx })
}

/// The progress bar on stderr, until `stop`.
fn spawn_progress(
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    start: Instant,
    dur: f64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let t = start.elapsed().as_secs_f64().min(dur);
            let w = 30;
            let done = ((t / dur) * w as f64) as usize;
            eprint!(
                "\r[{}{}] {:5.1}/{:.0}s  sent {:>10}",
                "=".repeat(done),
                " ".repeat(w - done),
                t,
                dur,
                sent.load(Ordering::Relaxed)
            );
        }
        eprintln!();
    })
}

/// Sends every stream at the total rate, round robin, from two sockets: callers' packets
/// leave from the caller socket, callees' from the callee's, in sendmmsg batches.
struct Sender {
    streams: Vec<Stream>,
    size: usize,
    batch: [SideBatch; 2],
    fds: [libc::c_int; 2],
    dests: Vec<(libc::sockaddr_in6, libc::socklen_t)>,
}

impl Sender {
    fn new(args: &Args, streams: Vec<Stream>, fds: [libc::c_int; 2]) -> Sender {
        let size = args.size.max(12 + PAYLOAD_MIN);
        let dests = streams.iter().map(|s| sockaddr(s.to)).collect();
        Sender { streams, size, batch: [SideBatch::new(size), SideBatch::new(size)], fds, dests }
    }

    /// Sends until `dur` has passed since `start`; returns the packets sent per stream and
    /// in all.
    fn run(mut self, start: Instant, dur: Duration, rate: f64, sent_total: &AtomicU64) -> (Vec<u64>, u64) {
        let n_streams = self.streams.len();
        let mut sent: u64 = 0;
        let mut next = 0usize;
        let mut pss = vec![0u64; n_streams];
        while start.elapsed() < dur {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            if due <= sent {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let now_ns = start.elapsed().as_nanos() as u64;
            for _ in 0..(due - sent).min(8192) {
                let idx = next;
                next = (next + 1) % n_streams;
                pss[idx] += 1;
                self.queue(idx, pss[idx], now_ns);
                sent += 1;
            }
            for (side, b) in self.batch.iter_mut().enumerate() {
                b.flush(self.fds[side]);
            }
            sent_total.store(sent, Ordering::Relaxed);
        }
        (pss, sent)
    }

    /// Writes stream `idx`'s `nth` packet into its side's batch (flushed when full).
    fn queue(&mut self, idx: usize, nth: u64, now_ns: u64) {
        let st = &mut self.streams[idx];
        st.seq = st.seq.wrapping_add(1);
        let ts = (nth as u32).wrapping_mul(160);
        let b = &mut self.batch[idx % 2];
        let p = &mut b.pkts[b.n];
        emit_header(p, 0, false, st.seq, ts, idx as u32);
        p[12..16].copy_from_slice(&MAGIC.to_be_bytes());
        p[16..20].copy_from_slice(&((idx / 2) as u32).to_be_bytes());
        p[20] = (idx % 2) as u8;
        p[21..29].copy_from_slice(&now_ns.to_be_bytes());
        b.lens[b.n] = match st.tx.as_mut() {
            Some(ctx) => ctx.protect_rtp(p, self.size).expect("SRTP protect"),
            None => self.size,
        };
        b.addrs[b.n] = self.dests[idx];
        b.n += 1;
        if b.n == BATCH {
            b.flush(self.fds[idx % 2]);
        }
    }
}

fn summarize(args: &Args, calls: usize, setup_failures: usize, t: &Traffic) -> Summary {
    let (ra, rb) = (&t.caller_rx, &t.callee_rx);
    let mut received = 0;
    let mut dup = 0;
    let mut reord = 0;
    let mut jit_sum = 0.0;
    let mut jit_max: f64 = 0.0;
    let mut jit_n = 0;
    for (i, sent_i) in t.pss.iter().enumerate() {
        let s = if i % 2 == 0 { &rb.streams[i] } else { &ra.streams[i] };
        received += s.received;
        dup += s.dup;
        reord += s.reordered;
        if *sent_i > 0 {
            let j = s.jitter_ms();
            jit_sum += j;
            jit_max = jit_max.max(j);
            jit_n += 1;
        }
    }
    let mut lat = ra.latency.clone();
    let _ = lat.add(&rb.latency);
    let secs: Vec<(u64, u64)> = (0..ra.per_sec.len().max(rb.per_sec.len()))
        .map(|i| {
            let a = ra.per_sec.get(i).copied().unwrap_or((0, 0));
            let b = rb.per_sec.get(i).copied().unwrap_or((0, 0));
            (a.0 + b.0, a.1 + b.1)
        })
        .filter(|x| x.1 > 0)
        .collect();
    let mean = |x: (u64, u64)| x.0 as f64 / x.1.max(1) as f64;
    let backlog_ratio = if secs.len() >= 3 { mean(secs[secs.len() - 2]) / mean(secs[0]).max(1.0) } else { 1.0 };
    let (sent, elapsed) = (t.sent, t.elapsed_s);
    let lost = sent as i64 - received as i64;
    Summary {
        relay: args.ng.to_string(),
        calls,
        duration_s: elapsed,
        rate_pps: sent as f64 / elapsed,
        sent,
        received,
        lost,
        loss_pct: if sent > 0 { lost.max(0) as f64 * 100.0 / sent as f64 } else { 0.0 },
        duplicated: dup,
        reordered: reord,
        jitter_ms_mean: if jit_n > 0 { jit_sum / jit_n as f64 } else { 0.0 },
        jitter_ms_max: jit_max,
        latency_us_p50: lat.value_at_quantile(0.5),
        latency_us_p90: lat.value_at_quantile(0.9),
        latency_us_p99: lat.value_at_quantile(0.99),
        latency_us_p999: lat.value_at_quantile(0.999),
        latency_us_max: lat.max(),
        backlog_ratio,
        setup_failures,
        srtp_auth_failures: ra.srtp_auth_failures + rb.srtp_auth_failures,
    }
}

fn relay_ip(r: &Value) -> Option<IpAddr> {
    let s = r.get("sdp")?.as_str()?;
    let c = s.lines().rfind(|l| l.starts_with("c="))?;
    c.split_whitespace().nth(2)?.parse().ok()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let max_loss = args.max_loss;
    let json = args.json;
    match run(args) {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap());
            } else {
                println!("relay            {}", s.relay);
                println!("calls            {} ({} failed to set up)", s.calls, s.setup_failures);
                println!("duration         {:.2} s at {:.0} pps", s.duration_s, s.rate_pps);
                println!("sent / received  {} / {}", s.sent, s.received);
                println!("lost             {} ({:.3} %)", s.lost, s.loss_pct);
                println!("duplicated       {}", s.duplicated);
                println!("reordered        {}", s.reordered);
                println!("jitter           mean {:.3} ms, max {:.3} ms", s.jitter_ms_mean, s.jitter_ms_max);
                println!(
                    "latency (us)     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                    s.latency_us_p50, s.latency_us_p90, s.latency_us_p99, s.latency_us_p999, s.latency_us_max
                );
                println!("backlog ratio    {:.2}", s.backlog_ratio);
                println!("srtp auth fails  {}", s.srtp_auth_failures);
            }
            if s.loss_pct > max_loss || s.setup_failures > 0 {
                eprintln!("rtpgen: loss {:.3} % exceeds --max-loss {max_loss} % (or setup failed)", s.loss_pct);
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rtpgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_late_packets_across_a_wrap() {
        let mut s = RxStream::default();
        // 65533 .. 2, with 65535 late (after 0) and 1 twice
        for seq in [65533u16, 65534, 0, 65535, 1, 1, 2] {
            let ts = (seq as u32).wrapping_mul(160);
            s.account(7, seq, ts, ts as u64);
        }
        assert_eq!((s.received, s.dup, s.reordered), (6, 1, 1));
        // the core's view: nothing lost, the highest number is 2
        assert_eq!((s.rtp.lost(), s.rtp.highest()), (0, Some((7, 2))));
    }

    #[test]
    fn jitter_is_the_cores_in_ms() {
        let mut s = RxStream::default();
        for i in 0..200u32 {
            let late = if i % 2 == 0 { 80 } else { 0 };
            s.account(9, i as u16, i * 160, (i * 160 + late) as u64);
        }
        assert_eq!(s.jitter_ms(), s.rtp.jitter() as f64 / 8.0);
        assert!((8.5..=10.0).contains(&s.jitter_ms()), "{}", s.jitter_ms());
    }
}
