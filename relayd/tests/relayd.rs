//! relayd end to end on loopback: real daemon, real sockets, ng + RTP/RTCP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use control::bencode::Value;
use control::ng::client::NgClient;
use relay_core::packet::rtp::emit_header;

static NEXT: AtomicU16 = AtomicU16::new(0);

struct Relayd {
    child: Child,
    ng: NgClient,
    http: SocketAddr,
}

impl Drop for Relayd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start relayd on its own ng/http ports and a private 200-port media range.
fn relayd(extra: &[&str]) -> Relayd {
    relayd_via(&[], extra)
}

fn relayd_bin(bin: &str, extra: &[&str]) -> Relayd {
    relayd_full(bin, &[], extra)
}

/// The same, started through `wrapper` (a command that execs relayd: taskset, prlimit).
fn relayd_via(wrapper: &[&str], extra: &[&str]) -> Relayd {
    relayd_full(env!("CARGO_BIN_EXE_relayd"), wrapper, extra)
}

fn relayd_full(bin: &str, wrapper: &[&str], extra: &[&str]) -> Relayd {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid_spread = (std::process::id() % 50) as u16 * 400;
    let ng_port = 22000 + pid_spread + n;
    let http_port = 23000 + pid_spread + n;
    let pmin = 41000 + (n % 40) * 500;
    let ng: SocketAddr = format!("127.0.0.1:{ng_port}").parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let mut args = vec![format!("--listen-ng={ng}"), format!("--listen-http={http}")];
    if !extra.iter().any(|a| a.starts_with("--workers")) {
        args.push("--workers=2".into());
    }
    if !extra.iter().any(|a| a.starts_with("--port-min")) {
        args.push(format!("--port-min={pmin}"));
        args.push(format!("--port-max={}", pmin + 199));
    }
    args.push("--log-level=warn".into());
    // each test's calls are its own: no state store shared between test daemons
    if bin == env!("CARGO_BIN_EXE_relayd") && !extra.iter().any(|a| a.starts_with("--state-dir")) {
        args.push("--no-state".into());
    }
    if !extra.iter().any(|a| a.starts_with("--interface")) {
        args.push("--interface=127.0.0.1".into());
        args.push("--interface=::1".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let (cmd, pre): (&str, Vec<&str>) = match wrapper.split_first() {
        Some((w, rest)) => (w, rest.iter().copied().chain([bin]).collect()),
        None => (bin, vec![]),
    };
    let child = Command::new(cmd).args(pre).args(&args).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut ngc = NgClient::connect(ng, Duration::from_millis(200)).unwrap();
    ngc.retries = 0;
    let t0 = Instant::now();
    loop {
        if let Ok(r) = ngc.request(&NgClient::req(&[("command", "ping".into())])) {
            assert_eq!(r.get("result").unwrap().as_str(), Some("pong"));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "relayd did not answer ping");
    }
    ngc.retries = 2;
    Relayd { child, ng: ngc, http }
}

fn sdp(ip: &str, port: u16, extra: &str) -> String {
    let fam = if ip.contains(':') { "IP6" } else { "IP4" };
    format!("v=0\r\no=- 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{extra}")
}

fn media_port(sdp: &str) -> u16 {
    sdp.lines().find(|l| l.starts_with("m=audio")).unwrap().split(' ').nth(1).unwrap().parse().unwrap()
}

fn ok(r: &Value) -> &Value {
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    r
}

struct Party {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Party {
    fn new(ip: &str) -> Party {
        // an even/odd pair, like a phone, above every port the test daemons use (their
        // media ranges end below 61000) and above the kernel's ephemeral range: an
        // ephemeral port could fall in the daemon's own range, which it rightly refuses
        static NEXT_PAIR: AtomicU16 = AtomicU16::new(0);
        let spread = (std::process::id() % 1000) as u16 * 2;
        for _ in 0..1000 {
            let n = NEXT_PAIR.fetch_add(1, Ordering::SeqCst);
            let p = 61000 + (spread + 2 * n) % 4500;
            let Ok(rtp) = UdpSocket::bind((ip, p)) else {
                continue;
            };
            if let Ok(rtcp) = UdpSocket::bind((ip, p + 1)) {
                rtp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                rtcp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                return Party { rtp, rtcp };
            }
        }
        panic!("no port pair");
    }
    fn port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }
}

/// Offer from A, answer from B; returns (relay port A sends to, relay port B sends to).
fn call(r: &mut Relayd, id: &str, a: &Party, b: &Party, flags: &[&str], extra_sdp: &str) -> (u16, u16) {
    let fl = Value::List(flags.iter().map(|f| (*f).into()).collect());
    let o =
        r.ng.request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", id.into()),
            ("from-tag", "A".into()),
            ("flags", fl.clone()),
            ("sdp", sdp("127.0.0.1", a.port(), extra_sdp).into()),
        ]))
        .unwrap();
    let to_b = media_port(ok(&o).get("sdp").unwrap().as_str().unwrap());
    let an =
        r.ng.request(&NgClient::req(&[
            ("command", "answer".into()),
            ("call-id", id.into()),
            ("from-tag", "A".into()),
            ("to-tag", "B".into()),
            ("flags", fl),
            ("sdp", sdp("127.0.0.1", b.port(), extra_sdp).into()),
        ]))
        .unwrap();
    let to_a = media_port(ok(&an).get("sdp").unwrap().as_str().unwrap());
    (to_a, to_b)
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut b = vec![0xd5u8; 172];
    emit_header(&mut b, 0, false, seq, seq as u32 * 160, 0xabcd);
    b
}

const RR: [u8; 8] = [0x80, 201, 0, 1, 0, 0, 0, 7];

fn relay(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn http(r: &Relayd, method: &str, path: &str) -> (u16, String) {
    http_with(r, method, path, "")
}

/// One request (`headers`: extra header lines, each ending in CRLF); (status, body).
fn http_with(r: &Relayd, method: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n", r.http).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split(' ').nth(1).unwrap().parse().unwrap();
    (code, out.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[test]
fn forwards_rtp_and_rtcp_both_ways() {
    let mut r = relayd(&[]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_a, to_b) = call(&mut r, "fwd", &a, &b, &[], "");
    let mut buf = [0u8; 2048];
    for i in 0..200u16 {
        a.rtp.send_to(&rtp(i), relay(to_a)).unwrap();
        let (n, src) = b.rtp.recv_from(&mut buf).unwrap();
        assert_eq!((n, src), (172, relay(to_b)), "symmetric: B hears the relay port it sends to");
        assert_eq!(&buf[..n], &rtp(i)[..]);
        b.rtp.send_to(&rtp(i), relay(to_b)).unwrap();
        let (_, src) = a.rtp.recv_from(&mut buf).unwrap();
        assert_eq!(src, relay(to_a));
    }
    a.rtcp.send_to(&RR, relay(to_a + 1)).unwrap();
    let (n, src) = b.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], src), (&RR[..], relay(to_b + 1)));
    b.rtcp.send_to(&RR, relay(to_b + 1)).unwrap();
    let (_, src) = a.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(src, relay(to_a + 1));
    let q = r.ng.request(&NgClient::req(&[("command", "query".into()), ("call-id", "fwd".into())])).unwrap();
    let t = ok(&q).get("totals").unwrap();
    assert_eq!(t.get("RTP").unwrap().get("packets").unwrap().as_int(), Some(400));
    assert_eq!(t.get("RTCP").unwrap().get("packets").unwrap().as_int(), Some(2));
    let d =
        r.ng.request(&NgClient::req(&[
            ("command", "delete".into()),
            ("call-id", "fwd".into()),
            ("delete-delay", Value::Int(0)),
        ]))
        .unwrap();
    ok(&d);
    // the ports are released: media to them goes nowhere
    a.rtp.send_to(&rtp(999), relay(to_a)).unwrap();
    assert!(b.rtp.recv_from(&mut buf).is_err());
}

#[test]
fn rtcp_mux_on_one_side_only() {
    let mut r = relayd(&[]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    // A offers rtcp-mux, B answers without it
    let o =
        r.ng.request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", "mux".into()),
            ("from-tag", "A".into()),
            ("rtcp-mux", Value::List(vec!["demux".into()])),
            ("sdp", sdp("127.0.0.1", a.port(), "a=rtcp-mux\r\n").into()),
        ]))
        .unwrap();
    let osdp = ok(&o).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(!osdp.contains("a=rtcp-mux"), "demux: B is offered separate RTCP\n{osdp}");
    let to_b = media_port(&osdp);
    let an =
        r.ng.request(&NgClient::req(&[
            ("command", "answer".into()),
            ("call-id", "mux".into()),
            ("from-tag", "A".into()),
            ("to-tag", "B".into()),
            ("sdp", sdp("127.0.0.1", b.port(), "").into()),
        ]))
        .unwrap();
    let asdp = ok(&an).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(asdp.contains("a=rtcp-mux"), "A's mux offer is accepted by the relay\n{asdp}");
    let to_a = media_port(&asdp);
    let mut buf = [0u8; 2048];
    // A sends RTCP on its RTP port: B gets it on its RTCP port from the relay's RTCP port
    a.rtp.send_to(&RR, relay(to_a)).unwrap();
    let (_, src) = b.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(src, relay(to_b + 1));
    // B's RTCP reaches A muxed on A's RTP port
    b.rtcp.send_to(&RR, relay(to_b + 1)).unwrap();
    let (n, src) = a.rtp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], src), (&RR[..], relay(to_a)));
}

/// Garbage, truncated packets and spoofed RTP at a call in progress, plus bad ng
/// requests: all dropped or answered with errors, counted, and the good call loses
/// nothing.
#[test]
fn bad_input_costs_a_good_call_nothing() {
    let mut r = relayd(&[]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_a, to_b) = call(&mut r, "good", &a, &b, &[], "");
    let (c, d) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_c, _) = call(&mut r, "strict", &c, &d, &["strict-source"], "");
    let mut buf = [0u8; 2048];
    // latch both legs
    a.rtp.send_to(&rtp(0), relay(to_a)).unwrap();
    b.rtp.recv_from(&mut buf).unwrap();
    b.rtp.send_to(&rtp(0), relay(to_b)).unwrap();
    a.rtp.recv_from(&mut buf).unwrap();
    c.rtp.send_to(&rtp(0), relay(to_c)).unwrap();
    d.rtp.recv_from(&mut buf).unwrap();

    // the attack is interleaved with the good call: before every good packet, a full
    // round of garbage, truncated and spoofed datagrams (deterministic, no timing)
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bad: [&[u8]; 5] = [b"garbage", &[0x80], &[0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde], &[0x40; 40], &[]];
    let attack = || {
        for p in bad {
            attacker.send_to(p, relay(to_a)).unwrap();
            attacker.send_to(p, relay(to_b + 1)).unwrap();
        }
        attacker.send_to(&rtp(5), relay(to_a)).unwrap();
        attacker.send_to(&rtp(5), relay(to_c)).unwrap();
    };
    // the latched party's own malformed packets are parsed, and counted by reason (an
    // attacker's are refused by source before any parsing)
    for p in bad {
        a.rtp.send_to(p, relay(to_a)).unwrap();
    }
    // bad ng requests in the middle of it
    let bad_ng: [&[u8]; 4] = [
        b"c1 d7:command",
        b"c2 li1ee",
        b"c3 d7:command4:hahae",
        b"c4 d7:command5:offer7:call-id4:good8:from-tag1:A3:sdp12:v=0\r\nm=audioe",
    ];
    for raw in bad_ng {
        let rep = r.ng.raw(raw).unwrap();
        let sp = rep.iter().position(|&x| x == b' ').unwrap();
        let v = Value::decode(&rep[sp + 1..]).unwrap();
        assert_eq!(v.get("result").unwrap().as_str(), Some("error"), "{v:?}");
        assert!(!v.get("error-reason").unwrap().as_str().unwrap().is_empty());
    }
    let mut got_b = 0;
    let mut got_a = 0;
    for i in 1..=1000u16 {
        attack();
        a.rtp.send_to(&rtp(i), relay(to_a)).unwrap();
        b.rtp.send_to(&rtp(i), relay(to_b)).unwrap();
        if b.rtp.recv_from(&mut buf).is_ok_and(|(n, _)| buf[..n] == rtp(i)[..]) {
            got_b += 1;
        }
        if a.rtp.recv_from(&mut buf).is_ok_and(|(n, _)| buf[..n] == rtp(i)[..]) {
            got_a += 1;
        }
    }
    let sent = 1000u64;
    assert_eq!((got_a, got_b), (1000, 1000), "the good call lost packets");
    // the strict-source call: the spoofed packets never reached D
    d.rtp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(d.rtp.recv_from(&mut buf).is_err());

    let (_, flows) = http(&r, "GET", "/flows");
    let flows: serde_json::Value = serde_json::from_str(&flows).unwrap();
    let flow = |port: u16| {
        flows.as_array().unwrap().iter().find(|f| f["local"] == format!("127.0.0.1:{port}")).unwrap()["counters"]
            .clone()
    };
    let fa = flow(to_a);
    // A's socket is latched: the source is checked first, so the attacker's garbage and
    // spoofed RTP are all foreign-source (the unlatched RTCP socket below parses them)
    assert!(fa["drop_foreign_source"].as_u64().unwrap() >= 5 * sent);
    assert!(fa["drop_malformed"].as_u64().unwrap() >= 4);
    assert_eq!(fa["forwarded"].as_u64().unwrap(), 1001);
    assert!(flow(to_c)["drop_strict_source"].as_u64().unwrap() >= sent);
    assert!(flow(to_b + 1)["drop_malformed"].as_u64().unwrap() >= 3 * sent);
    let (_, metrics) = http(&r, "GET", "/metrics");
    assert!(metrics.contains("relay_drops_total{path=\"socket\",worker=\"0\",reason=\"malformed\"}"), "{metrics}");
    assert!(metrics.contains("relay_ng_errors_total 4"), "{metrics}");
    // and by the exact reason
    for reason in ["too-short", "bad-version", "bad-extension"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("relay_malformed_total") && l.contains(reason) && !l.ends_with(" 0"));
        assert!(line.is_some(), "no {reason} drops counted:\n{metrics}");
    }
}

#[test]
fn ng_errors_name_the_problem_and_retransmits_are_cached() {
    let mut r = relayd(&[]);
    let e = |v: Value| -> String {
        assert_eq!(v.get("result").unwrap().as_str(), Some("error"), "{v:?}");
        v.get("error-reason").unwrap().as_str().unwrap().to_string()
    };
    let rep = r.ng.raw(b"x1 not bencode").unwrap();
    assert!(String::from_utf8_lossy(&rep).contains("malformed bencode"));
    let reason = e(r.ng.request(&NgClient::req(&[("command", "nonsense".into())])).unwrap());
    assert!(reason.contains("unknown command"), "{reason}");
    let reason = e(r
        .ng
        .request(&NgClient::req(&[
            ("command", "answer".into()),
            ("call-id", "nope".into()),
            ("from-tag", "x".into()),
            ("to-tag", "y".into()),
            ("sdp", sdp("127.0.0.1", 5000, "").into()),
        ]))
        .unwrap());
    assert!(reason.contains("Unknown call-id"), "{reason}");
    let reason = e(r
        .ng
        .request(&NgClient::req(&[("command", "offer".into()), ("call-id", "c".into()), ("from-tag", "x".into())]))
        .unwrap());
    assert!(reason.contains("no SDP"), "{reason}");
    let reason = e(r
        .ng
        .request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", "c".into()),
            ("from-tag", "x".into()),
            ("sdp", "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 12x RTP/AVP 0\r\n".into()),
        ]))
        .unwrap());
    assert!(reason.contains("SDP"), "{reason}");
    // delete of an unknown call: ok with rtpengine's warning (Kamailio deletes on CANCEL)
    let d = r.ng.request(&NgClient::req(&[("command", "delete".into()), ("call-id", "nope".into())])).unwrap();
    assert_eq!(ok(&d).get("warning").and_then(|w| w.as_str()), Some("Call-ID not found or tags didn't match"));
    // a failed offer leaves nothing behind
    let l = r.ng.request(&NgClient::req(&[("command", "list".into())])).unwrap();
    assert_eq!(ok(&l).get("calls").unwrap().as_list().unwrap().len(), 0);
    // retransmission with the same cookie: same reply, command not run twice
    let mut offer = b"rt1 ".to_vec();
    NgClient::req(&[
        ("command", "offer".into()),
        ("call-id", "rt".into()),
        ("from-tag", "a".into()),
        ("sdp", sdp("127.0.0.1", 5000, "").into()),
    ])
    .encode_into(&mut offer);
    let first = r.ng.raw(&offer).unwrap();
    assert!(String::from_utf8_lossy(&first).contains("6:result2:ok"));
    let second = r.ng.raw(&offer).unwrap();
    assert_eq!(first, second);
    let (_, stats) = http(&r, "GET", "/stats");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["control"]["commands"]["offer"], 3, "{stats}");
    assert_eq!(stats["ports_in_use"], 4);
}

#[test]
fn reinvite_keeps_ports_and_moves_the_latch() {
    let mut r = relayd(&[]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_a, to_b) = call(&mut r, "re", &a, &b, &[], "");
    let mut buf = [0u8; 2048];
    a.rtp.send_to(&rtp(1), relay(to_a)).unwrap();
    b.rtp.recv_from(&mut buf).unwrap();
    // A moves (new port) and re-offers: same relay ports, the relay follows A at once
    let a2 = Party::new("127.0.0.1");
    let (to_a2, to_b2) = call(&mut r, "re", &a2, &b, &[], "");
    assert_eq!((to_a2, to_b2), (to_a, to_b));
    b.rtp.send_to(&rtp(2), relay(to_b)).unwrap();
    let (_, src) = a2.rtp.recv_from(&mut buf).unwrap();
    assert_eq!(src, relay(to_a));
    a2.rtp.send_to(&rtp(3), relay(to_a)).unwrap();
    b.rtp.recv_from(&mut buf).unwrap();
    // the old address no longer gets through
    a.rtp.send_to(&rtp(4), relay(to_a)).unwrap();
    b.rtp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(b.rtp.recv_from(&mut buf).is_err());
}

#[test]
fn bridges_ipv4_and_ipv6() {
    let mut r = relayd(&[]);
    let a = Party::new("127.0.0.1");
    let b = Party::new("::1");
    let o =
        r.ng.request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", "v46".into()),
            ("from-tag", "A".into()),
            ("address-family", "IP6".into()),
            ("sdp", sdp("127.0.0.1", a.port(), "").into()),
        ]))
        .unwrap();
    let osdp = ok(&o).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(osdp.contains("c=IN IP6 ::1"), "{osdp}");
    let to_b = media_port(&osdp);
    let an =
        r.ng.request(&NgClient::req(&[
            ("command", "answer".into()),
            ("call-id", "v46".into()),
            ("from-tag", "A".into()),
            ("to-tag", "B".into()),
            ("sdp", sdp("::1", b.port(), "").into()),
        ]))
        .unwrap();
    let asdp = ok(&an).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(asdp.contains("c=IN IP4 127.0.0.1"), "{asdp}");
    let to_a = media_port(&asdp);
    let mut buf = [0u8; 2048];
    a.rtp.send_to(&rtp(1), relay(to_a)).unwrap();
    let (_, src) = b.rtp.recv_from(&mut buf).unwrap();
    assert_eq!(src, format!("[::1]:{to_b}").parse().unwrap());
    b.rtp.send_to(&rtp(1), format!("[::1]:{to_b}").parse::<SocketAddr>().unwrap()).unwrap();
    let (_, src) = a.rtp.recv_from(&mut buf).unwrap();
    assert_eq!(src, relay(to_a));
}

#[test]
fn media_timeout_tears_the_call_down() {
    let mut r = relayd(&["--timeout=1"]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    call(&mut r, "to", &a, &b, &[], "");
    std::thread::sleep(Duration::from_millis(2200));
    let l = r.ng.request(&NgClient::req(&[("command", "list".into())])).unwrap();
    assert_eq!(ok(&l).get("calls").unwrap().as_list().unwrap().len(), 0);
    let (_, m) = http(&r, "GET", "/metrics");
    assert!(m.contains("relay_calls_ended_total{reason=\"timeout\"} 1"), "{m}");
    assert!(m.contains("relay_ports_in_use 0"), "{m}");
}

#[test]
fn http_api_lists_inspects_and_terminates() {
    let mut r = relayd(&["--http-token=t0ken-for-tests"]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_a, _) = call(&mut r, "api/1 x", &a, &b, &[], "");
    a.rtp.send_to(&rtp(1), relay(to_a)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let (code, calls) = http(&r, "GET", "/calls");
    assert_eq!(code, 200);
    let calls: serde_json::Value = serde_json::from_str(&calls).unwrap();
    assert_eq!(calls[0]["call_id"], "api/1 x");
    assert_eq!(calls[0]["packets"], 1);
    let (code, one) = http(&r, "GET", "/calls/api%2F1%20x");
    assert_eq!(code, 200, "{one}");
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["flows"].as_array().unwrap().len(), 4);
    assert!(one["flows"].as_array().unwrap().iter().any(|f| f["state"] == "latched"));
    assert_eq!(http(&r, "GET", "/calls/nope").0, 404);
    // state changes need the token
    assert_eq!(http(&r, "DELETE", "/calls/api%2F1%20x").0, 401);
    assert_eq!(http_with(&r, "DELETE", "/calls/api%2F1%20x", "Authorization: Bearer wrong\r\n").0, 401);
    assert_eq!(http_with(&r, "POST", "/calls/api%2F1%20x/terminate", "Authorization: Bearer t0ken\r\n").0, 401);
    assert_eq!(http(&r, "GET", "/calls").1.matches("call_id").count(), 1);
    // a browser on a rebound name sends that name as Host
    let mut s = TcpStream::connect(r.http).unwrap();
    write!(s, "GET /calls HTTP/1.1\r\nHost: attacker.example:{}\r\nConnection: close\r\n\r\n", r.http.port()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 421 "), "{out}");
    let (code, body) = http_with(&r, "DELETE", "/calls/api%2F1%20x", "Authorization: Bearer t0ken-for-tests\r\n");
    assert_eq!(code, 200, "{body}");
    assert_eq!(http(&r, "GET", "/calls").1.trim(), "[]");
    let (_, m) = http(&r, "GET", "/metrics");
    assert!(m.contains("relay_calls_ended_total{reason=\"terminated\"} 1"));
    assert!(m.contains("relay_http_refused_total{reason=\"token\"} 3"), "{m}");
    assert!(m.contains("relay_http_refused_total{reason=\"host\"} 1"), "{m}");
    assert!(m.contains("relay_http_panics_total 0"), "{m}");

    // without a configured token, nothing that changes state is allowed
    let mut r = relayd(&[]);
    call(&mut r, "api-2", &a, &b, &[], "");
    let (code, body) = http_with(&r, "DELETE", "/calls/api-2", "Authorization: Bearer t0ken-for-tests\r\n");
    assert_eq!(code, 403);
    assert!(body.contains("no http-token configured"), "{body}");
    assert_eq!(http(&r, "GET", "/calls").1.matches("call_id").count(), 1);
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn http_slow_and_huge_requests_do_not_block_or_bloat_the_api() {
    let mut r = relayd(&[]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    call(&mut r, "slow-1", &a, &b, &[], "");
    // slow loris: half a request head, then nothing
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(r.http).unwrap();
        s.write_all(b"GET /stats HTTP/1.1\r\nHost: 12").unwrap();
        stalled.push(s);
    }
    // another client is served meanwhile
    let (code, body) = http(&r, "GET", "/stats");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"calls\": 1"), "{body}");
    // one of the slow ones finishes its request: it was being served concurrently, not queued
    let mut s = stalled.pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"7.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    // connections are capped: past the cap a client is told 503 at once (not queued)
    for _ in 0..40 {
        let mut s = TcpStream::connect(r.http).unwrap();
        let _ = s.write_all(b"GET /stats HTTP/1.1\r\nHost: 12");
        stalled.push(s);
    }
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 503 "), "{}", String::from_utf8_lossy(&out));
    // the ones that never finish are cut off at the head deadline
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    assert_eq!(http(&r, "GET", "/stats").0, 200);
    let (_, m) = http(&r, "GET", "/metrics");
    assert!(!m.contains("relay_http_refused_total{reason=\"busy\"} 0"), "{m}");
    assert!(!m.contains("relay_http_refused_total{reason=\"timeout\"} 0"), "{m}");

    // a header line meant to be 300 MB: refused after a few KB, nothing buffered
    let pid = r.child.id();
    let before = rss_kb(pid);
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET /stats HTTP/1.1\r\nHost: {}\r\nX-Big: ", r.http).as_bytes()).unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 300 << 20 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(sent < 32 << 20, "relayd kept reading a huge header: {sent} bytes taken");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431 "), "{out}");
    let after = rss_kb(pid);
    assert!(after < before + 16 * 1024, "relayd grew from {before} kB to {after} kB");

    // a request line the old percent-decoder panicked on (under the engine lock)
    let mut s = TcpStream::connect(r.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET /calls/%a\u{e9} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", r.http).as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400 ") || out.starts_with("HTTP/1.1 404 "), "{out}");
    assert_eq!(http(&r, "GET", "/calls/%a%C3%A9").0, 404);
    // the API, ng and the call are still there
    assert_eq!(http(&r, "GET", "/calls").1.matches("call_id").count(), 1);
    let pong = r.ng.request(&NgClient::req(&[("command", "ping".into())])).unwrap();
    assert_eq!(pong.get("result").unwrap().as_str(), Some("pong"));
    let (_, m) = http(&r, "GET", "/metrics");
    assert!(m.contains("relay_http_panics_total 0"), "{m}");
}

/// ng latency while /flows is polled on ~2000 calls (a measurement, not an assertion):
/// `cargo test --release -p relayd --test relayd -- --ignored --nocapture ng_latency_while`
/// (RELAYD_BIN=path measures another relayd build).
#[test]
#[ignore]
fn ng_latency_while_flows_is_polled() {
    let bin = std::env::var("RELAYD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_relayd").to_string());
    let calls: usize = std::env::var("CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut r = relayd_bin(&bin, &["--port-min=44000", "--port-max=53999"]);
    for i in 0..calls {
        let id = format!("lat-{i}");
        let (pa, pb) = (20000 + 2 * (i as u16 % 4000), 30000 + 2 * (i as u16 % 4000));
        for (cmd, tag, port) in [("offer", None, pa), ("answer", Some("B"), pb)] {
            let mut q = vec![
                ("command", cmd.into()),
                ("call-id", id.as_str().into()),
                ("from-tag", "A".into()),
                ("sdp", sdp("127.0.0.1", port, "").into()),
            ];
            if let Some(t) = tag {
                q.push(("to-tag", t.into()));
            }
            ok(&r.ng.request(&NgClient::req(&q)).unwrap());
        }
    }
    let (code, flows) = http(&r, "GET", "/flows");
    assert_eq!(code, 200);
    let nflows = flows.matches("\"call_id\"").count();
    let ping = |r: &mut Relayd, n: usize| {
        let mut v: Vec<f64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                r.ng.request(&NgClient::req(&[("command", "ping".into())])).unwrap();
                let ms = t.elapsed().as_secs_f64() * 1e3;
                std::thread::sleep(Duration::from_millis(1));
                ms
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", q(0.5), q(0.99), q(1.0))
    };
    let idle = ping(&mut r, 2000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let addr = r.http;
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, polls) = (stop.clone(), polls.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut s = TcpStream::connect(addr).unwrap();
                    write!(s, "GET /flows HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
                    let mut out = Vec::new();
                    s.read_to_end(&mut out).unwrap();
                    polls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let t = Instant::now();
    let busy = ping(&mut r, 2000);
    stop.store(true, Ordering::Relaxed);
    for p in pollers {
        p.join().unwrap();
    }
    let polls = polls.load(Ordering::Relaxed);
    println!("{bin}: {calls} calls, {nflows} flows");
    println!("ng ping, idle API:          {idle}");
    println!("ng ping, /flows polled:     {busy}  ({polls} polls, {:.1}/s)", polls as f64 / t.elapsed().as_secs_f64());
}

#[test]
fn port_exhaustion_is_a_clear_error_and_running_calls_keep_flowing() {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pmin = 61000 + n * 10;
    let mut r = relayd(&[&format!("--port-min={pmin}"), &format!("--port-max={}", pmin + 3)]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_a, _) = call(&mut r, "first", &a, &b, &[], "");
    let o =
        r.ng.request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", "second".into()),
            ("from-tag", "x".into()),
            ("sdp", sdp("127.0.0.1", 7000, "").into()),
        ]))
        .unwrap();
    assert_eq!(o.get("result").unwrap().as_str(), Some("error"));
    assert!(o.get("error-reason").unwrap().as_str().unwrap().contains("exhausted"), "{o:?}");
    let mut buf = [0u8; 2048];
    a.rtp.send_to(&rtp(1), relay(to_a)).unwrap();
    b.rtp.recv_from(&mut buf).unwrap();
}

/// issue 9 §6: the ports of a refused offer are free again when the error reply is sent,
/// so the next offer gets them (the workers close asynchronously).
#[test]
fn a_refused_offers_ports_are_free_for_the_next_one() {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pmin = 61000 + n * 10;
    // 4 pairs on 127.0.0.1
    let mut r = relayd(&[&format!("--port-min={pmin}"), &format!("--port-max={}", pmin + 7)]);
    let body = |sections: u16| {
        let mut s = sdp("127.0.0.1", 7000, "");
        for i in 1..sections {
            s.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 7000 + 2 * i));
        }
        s
    };
    for round in 0..20 {
        // three sections need six pairs: refused after taking all four
        let o =
            r.ng.request(&NgClient::req(&[
                ("command", "offer".into()),
                ("call-id", format!("big{round}").as_str().into()),
                ("from-tag", "x".into()),
                ("sdp", body(3).as_str().into()),
            ]))
            .unwrap();
        assert_eq!(o.get("result").unwrap().as_str(), Some("error"), "{o:?}");
        assert!(o.get("error-reason").unwrap().as_str().unwrap().contains("exhausted"), "{o:?}");
        // two sections need all four pairs, at once
        let id = format!("fits{round}");
        let o =
            r.ng.request(&NgClient::req(&[
                ("command", "offer".into()),
                ("call-id", id.as_str().into()),
                ("from-tag", "x".into()),
                ("sdp", body(2).as_str().into()),
            ]))
            .unwrap();
        ok(&o);
        let d =
            r.ng.request(&NgClient::req(&[
                ("command", "delete".into()),
                ("call-id", id.as_str().into()),
                ("delete-delay", 0u64.into()),
            ]))
            .unwrap();
        ok(&d);
    }
}

/// Receive one datagram and return the TOS / traffic class it arrived with.
fn recv_tos(sock: &UdpSocket, v6: bool) -> u8 {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let mut data = [0u8; 2048];
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr() as *mut _, iov_len: data.len() };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut _;
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    assert!(unsafe { libc::recvmsg(fd, &mut msg, 0) } > 0);
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    assert!(!cmsg.is_null(), "no TOS control message");
    unsafe {
        let (level, ty) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
        if v6 {
            assert_eq!((level, ty), (libc::IPPROTO_IPV6, libc::IPV6_TCLASS));
            *(libc::CMSG_DATA(cmsg) as *const libc::c_int) as u8
        } else {
            assert_eq!((level, ty), (libc::IPPROTO_IP, libc::IP_TOS));
            *libc::CMSG_DATA(cmsg)
        }
    }
}

fn enable_recv_tos(sock: &UdpSocket, v6: bool) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let (level, opt) =
        if v6 { (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS) } else { (libc::IPPROTO_IP, libc::IP_RECVTOS) };
    assert_eq!(
        unsafe { libc::setsockopt(sock.as_raw_fd(), level, opt, &on as *const _ as *const libc::c_void, 4,) },
        0
    );
}

#[test]
fn media_carries_the_configured_tos_over_ipv4_and_ipv6() {
    let mut r = relayd(&["--tos=184"]);
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let (to_a, _) = call(&mut r, "tos", &a, &b, &[], "");
    enable_recv_tos(&b.rtp, false);
    a.rtp.send_to(&rtp(1), relay(to_a)).unwrap();
    assert_eq!(recv_tos(&b.rtp, false), 184);
    // IPv6 on both sides
    let (a6, b6) = (Party::new("::1"), Party::new("::1"));
    let mut q = |cmd: &str, tt: Option<&str>, p: &Party| {
        let mut pairs = vec![
            ("command", cmd.into()),
            ("call-id", "tos6".into()),
            ("from-tag", "A".into()),
            ("sdp", sdp("::1", p.port(), "").into()),
        ];
        if let Some(t) = tt {
            pairs.push(("to-tag", t.into()));
        }
        media_port(ok(&r.ng.request(&NgClient::req(&pairs)).unwrap()).get("sdp").unwrap().as_str().unwrap())
    };
    q("offer", None, &a6);
    let to_a6 = q("answer", Some("B"), &b6);
    enable_recv_tos(&b6.rtp, true);
    a6.rtp.send_to(&rtp(1), format!("[::1]:{to_a6}").parse::<SocketAddr>().unwrap()).unwrap();
    assert_eq!(recv_tos(&b6.rtp, true), 184);
}

#[test]
fn bad_configuration_is_refused_with_the_cause() {
    let out = Command::new(env!("CARGO_BIN_EXE_relayd")).args(["--port-min=5000", "--port-max=4000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port range"));
    let out = Command::new(env!("CARGO_BIN_EXE_relayd"))
        .args(["--interface=192.0.2.123", "--listen-ng=127.0.0.1:1", "--listen-http=none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("192.0.2.123") && err.contains("cannot bind"), "{err}");
}

/// The a=crypto line of an SDP as a context.
fn srtp_ctx(sdp: &str) -> relay_core::srtp::Context {
    let line = sdp.lines().find(|l| l.starts_with("a=crypto:")).unwrap_or_else(|| panic!("no a=crypto in\n{sdp}"));
    let c = control::sdes::parse(line).unwrap();
    relay_core::srtp::Context::new(c.key.suite, &c.key.key, &c.key.salt).unwrap()
}

#[test]
fn sdes_srtp_to_rtp_and_rekeying_through_relayd() {
    let mut r = relayd(&[]);
    // A: plain RTP; B: SRTP (transport-protocol RTP/SAVP towards B)
    let (a, b) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let o =
        r.ng.request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", "sdes1".into()),
            ("from-tag", "A".into()),
            ("transport-protocol", "RTP/SAVP".into()),
            ("sdp", sdp("127.0.0.1", a.port(), "").into()),
        ]))
        .unwrap();
    let osdp = ok(&o).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(osdp.contains("RTP/SAVP") && osdp.contains("a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:"), "{osdp}");
    let to_b = media_port(&osdp);
    // B picks tag 7 and answers with its own key
    let our_key_for_b = srtp_ctx(&osdp.lines().filter(|l| l.starts_with("a=crypto:7 ")).collect::<Vec<_>>().join("\n"));
    let b_line = "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv";
    let bsdp = sdp("127.0.0.1", b.port(), &format!("{b_line}\r\n")).replace("RTP/AVP", "RTP/SAVP");
    let an =
        r.ng.request(&NgClient::req(&[
            ("command", "answer".into()),
            ("call-id", "sdes1".into()),
            ("from-tag", "A".into()),
            ("to-tag", "B".into()),
            ("sdp", bsdp.into()),
        ]))
        .unwrap();
    let asdp = ok(&an).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(asdp.contains("RTP/AVP") && !asdp.contains("a=crypto"), "A stays plain:\n{asdp}");
    let to_a = media_port(&asdp);
    let mut b_rx = our_key_for_b;
    let mut b_tx = srtp_ctx(b_line);
    let mut buf = [0u8; 2048];
    for i in 0..50u16 {
        // A -> B: plain in, SRTP out
        a.rtp.send_to(&rtp(i), relay(to_a)).unwrap();
        let (n, _) = b.rtp.recv_from(&mut buf).unwrap();
        assert_eq!(n, 172 + 10);
        let m = b_rx.unprotect_rtp(&mut buf, n).expect("B decrypts the relay's SRTP");
        assert_eq!(&buf[..m], &rtp(i)[..]);
        // B -> A: SRTP in, plain out
        let mut p = [0u8; 256];
        p[..172].copy_from_slice(&rtp(i));
        let n = b_tx.protect_rtp(&mut p, 172).unwrap();
        b.rtp.send_to(&p[..n], relay(to_b)).unwrap();
        let (n, _) = a.rtp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &rtp(i)[..]);
    }
    // forged SRTP towards A is dropped and counted
    b.rtp.send_to(&rtp(999), relay(to_b)).unwrap();
    a.rtp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(a.rtp.recv_from(&mut buf).is_err());
    let (_, flows) = http(&r, "GET", "/flows");
    assert!(flows.contains("\"drop_srtp_auth\": 1"), "{flows}");

    // SRTP on both legs: A offers SAVP with its key, B gets fresh relay keys (re-keying)
    let (c, d) = (Party::new("127.0.0.1"), Party::new("127.0.0.1"));
    let c_line = "a=crypto:1 AEAD_AES_128_GCM inline:KmSPT8zrafr3TnhUUJEJvaY3UHvp5V4ckR9nmA";
    let csdp = sdp("127.0.0.1", c.port(), &format!("{c_line}\r\n")).replace("RTP/AVP", "RTP/SAVP");
    let o =
        r.ng.request(&NgClient::req(&[
            ("command", "offer".into()),
            ("call-id", "sdes2".into()),
            ("from-tag", "C".into()),
            ("sdp", csdp.into()),
        ]))
        .unwrap();
    let osdp = ok(&o).get("sdp").unwrap().as_str().unwrap().to_string();
    assert!(
        !osdp.contains("KmSPT8zrafr3TnhUUJEJvaY3UHvp5V4ckR9nmA"),
        "the offerer's key must not reach the answerer:\n{osdp}"
    );
    let to_d = media_port(&osdp);
    let relay_gcm_line = osdp.lines().find(|l| l.starts_with("a=crypto:1 AEAD_AES_128_GCM")).unwrap().to_string();
    let d_line = "a=crypto:1 AEAD_AES_128_GCM inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3OA";
    let dsdp = sdp("127.0.0.1", d.port(), &format!("{d_line}\r\n")).replace("RTP/AVP", "RTP/SAVP");
    let an =
        r.ng.request(&NgClient::req(&[
            ("command", "answer".into()),
            ("call-id", "sdes2".into()),
            ("from-tag", "C".into()),
            ("to-tag", "D".into()),
            ("sdp", dsdp.into()),
        ]))
        .unwrap();
    let asdp = ok(&an).get("sdp").unwrap().as_str().unwrap().to_string();
    let relay_line_for_c = asdp.lines().find(|l| l.starts_with("a=crypto:1 AEAD_AES_128_GCM")).unwrap().to_string();
    assert_ne!(relay_line_for_c, d_line, "the answerer's key must not reach the offerer");
    let to_c = media_port(&asdp);
    let (mut c_tx, mut d_rx) = (srtp_ctx(c_line), srtp_ctx(&relay_gcm_line));
    let (mut d_tx, mut c_rx) = (srtp_ctx(d_line), srtp_ctx(&relay_line_for_c));
    for i in 0..50u16 {
        let mut p = [0u8; 256];
        p[..172].copy_from_slice(&rtp(i));
        let n = c_tx.protect_rtp(&mut p, 172).unwrap();
        c.rtp.send_to(&p[..n], relay(to_c)).unwrap();
        let (n, _) = d.rtp.recv_from(&mut buf).unwrap();
        let m = d_rx.unprotect_rtp(&mut buf, n).expect("D decrypts with the relay's key for D");
        assert_eq!(&buf[..m], &rtp(i)[..]);
        p[..172].copy_from_slice(&rtp(i));
        let n = d_tx.protect_rtp(&mut p, 172).unwrap();
        d.rtp.send_to(&p[..n], relay(to_d)).unwrap();
        let (n, _) = c.rtp.recv_from(&mut buf).unwrap();
        let m = c_rx.unprotect_rtp(&mut buf, n).expect("C decrypts with the relay's key for C");
        assert_eq!(&buf[..m], &rtp(i)[..]);
    }
    // SRTCP both ways too
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
    let mut p = [0u8; 64];
    p[..8].copy_from_slice(&rr);
    let n = c_tx.protect_rtcp(&mut p, 8).unwrap();
    c.rtcp.send_to(&p[..n], relay(to_c + 1)).unwrap();
    let (n, _) = d.rtcp.recv_from(&mut buf).unwrap();
    let m = d_rx.unprotect_rtcp(&mut buf, n).unwrap();
    assert_eq!(&buf[..m], &rr[..]);

    // offers the relay cannot use are errors that name the problem
    for (line, why) in [
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv|2^20|1:200", "MKI"),
        (
            "a=crypto:1 SEED_128_CTR_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv",
            "unsupported SRTP suite",
        ),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ", "wrong length"),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80", "malformed"),
    ] {
        let s = sdp("127.0.0.1", 7000, &format!("{line}\r\n")).replace("RTP/AVP", "RTP/SAVP");
        let e =
            r.ng.request(&NgClient::req(&[
                ("command", "offer".into()),
                ("call-id", "bad".into()),
                ("from-tag", "x".into()),
                ("sdp", s.into()),
            ]))
            .unwrap();
        assert_eq!(e.get("result").unwrap().as_str(), Some("error"));
        let reason = e.get("error-reason").unwrap().as_str().unwrap().to_string();
        assert!(reason.contains(why), "{reason}");
    }
}

/// `field` of /proc/PID/task/TID/status of relayd's thread named `thread`.
fn thread_status(pid: u32, thread: &str, field: &str) -> Option<String> {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == thread {
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with(field))?;
            return Some(line[field.len()..].trim_start_matches(':').trim().to_string());
        }
    }
    None
}

#[test]
fn host_limits_cpu_set_and_descriptors() {
    if std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) < 2 {
        eprintln!("skipped: needs 2 CPUs");
        return;
    }
    // started on CPU 1 only: the worker is placed there, not on CPU 0
    let r = relayd_via(&["taskset", "-c", "1"], &["--workers=1"]);
    // (a thread names itself once it first runs: give it the time to)
    let t0 = Instant::now();
    let mut cpus = None;
    while cpus.is_none() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
        cpus = thread_status(r.child.id(), "relay-worker-0", "Cpus_allowed_list");
    }
    let comms: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", r.child.id()))
        .unwrap()
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default())
        .collect();
    assert_eq!(cpus.as_deref(), Some("1"), "worker of `taskset -c 1 relayd --workers 1`; threads {comms:?}");
    drop(r);

    // a soft descriptor limit below the hard one is raised to it
    let r = relayd_via(&["prlimit", "--nofile=64:4096"], &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", r.child.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    let soft_hard: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(soft_hard, ["4096", "4096"], "{line}");
    drop(r);

    // a hard limit below what the range needs: offers fail naming the limit, not "ports
    // exhausted" (200 ports, 64 descriptors)
    let mut r = relayd_via(&["prlimit", "--nofile=64:64"], &["--workers=1"]);
    let mut reason = None;
    for i in 0..200 {
        let o =
            r.ng.request(&NgClient::req(&[
                ("command", "offer".into()),
                ("call-id", format!("fd-{i}").as_str().into()),
                ("from-tag", "x".into()),
                ("sdp", sdp("127.0.0.1", 7000, "").into()),
            ]))
            .unwrap();
        if o.get("result").and_then(Value::as_str) == Some("error") {
            reason = o.get("error-reason").and_then(Value::as_str).map(str::to_string);
            break;
        }
    }
    let reason = reason.expect("64 descriptors were enough for 200 ports");
    assert!(reason.contains("too many open files (RLIMIT_NOFILE 64)"), "{reason}");
}
