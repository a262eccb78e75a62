//! relayd restarted with its state store (relayd::store): the real daemon on loopback,
//! a call set up over ng, RTP both ways, SIGTERM and kill -9, a new process on the same
//! --state-dir: the call is there on the same ports and media flows again both ways.
//! Drain over the HTTP API: new offers refused, running calls kept.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use control::bencode::Value;
use control::ng::client::NgClient;

mod common;
use common::Daemon;

/// Ports of this test file's daemons: apart from relayd.rs's (22000-43000+).
fn base() -> u16 {
    24000 + (std::process::id() % 100) as u16 * 10
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Daemon {
    let ng: SocketAddr = format!("127.0.0.1:{}", base()).parse().unwrap();
    let http = format!("127.0.0.1:{}", base() + 1);
    let pmin = 54000 + (std::process::id() % 20) as u16 * 200;
    let mut args: Vec<String> = vec![
        format!("--listen-http={http}"),
        "--interface=127.0.0.1".into(),
        format!("--port-min={pmin}"),
        format!("--port-max={}", pmin + 99),
        "--workers=1".into(),
        "--backend=uring".into(),
        "--log-level=warn".into(),
        format!("--state-dir={}", dir.display()),
        "--state-interval=100".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    common::spawn(ng, &args)
}

fn sdp(port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
}

fn port_of(r: &Value) -> u16 {
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    let s = r.get("sdp").and_then(Value::as_str).unwrap();
    s.lines().find(|l| l.starts_with("m=audio")).unwrap().split(' ').nth(1).unwrap().parse().unwrap()
}

fn party() -> UdpSocket {
    for p in (base() + 2..base() + 8).step_by(2) {
        if let Ok(s) = UdpSocket::bind(("127.0.0.1", p)) {
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            return s;
        }
    }
    panic!("no port for a party");
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut b = vec![0u8; 172];
    relay_core::packet::rtp::emit_header(&mut b, 0, false, seq, seq as u32 * 160, 0x1234);
    b
}

/// A sends to the relay port for A and B hears it, and the other way.
fn flows_both_ways(a: &UdpSocket, b: &UdpSocket, to_a: u16, to_b: u16, seq: u16) -> bool {
    let relay = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mut buf = [0u8; 2048];
    let mut one_way = |from: &UdpSocket, to: &UdpSocket, port: u16| {
        for i in 0..10 {
            from.send_to(&rtp(seq + i), relay(port)).unwrap();
            if to.recv_from(&mut buf).is_ok() {
                return true;
            }
        }
        false
    };
    one_way(a, b, to_a) && one_way(b, a, to_b)
}

fn kill(d: &mut Daemon, sig: libc::c_int) {
    unsafe { libc::kill(d.child.id() as i32, sig) };
    let _ = d.child.wait();
}

#[test]
fn calls_survive_sigterm_and_kill_9() {
    let dir = std::env::temp_dir().join(format!("relayd-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut d = start(&dir, &[]);
    let (a, b) = (party(), party());
    let ap = a.local_addr().unwrap().port();
    let bp = b.local_addr().unwrap().port();
    let o = d.ng.request(&NgClient::req(&[
        ("command", "offer".into()),
        ("call-id", "kept".into()),
        ("from-tag", "A".into()),
        ("sdp", sdp(ap).into()),
    ]));
    let to_b = port_of(&o.unwrap());
    let an = d.ng.request(&NgClient::req(&[
        ("command", "answer".into()),
        ("call-id", "kept".into()),
        ("from-tag", "A".into()),
        ("to-tag", "B".into()),
        ("sdp", sdp(bp).into()),
    ]));
    let to_a = port_of(&an.unwrap());
    assert!(flows_both_ways(&a, &b, to_a, to_b, 1));
    std::thread::sleep(Duration::from_millis(400));
    // the store is 0600: it holds the keys
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(relayd::store::FILE)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for (n, sig) in [(1u16, libc::SIGTERM), (2, libc::SIGKILL)] {
        kill(&mut d, sig);
        d = start(&dir, &[]);
        assert!(flows_both_ways(&a, &b, to_a, to_b, 100 * n), "media after restart {n} (signal {sig})");
        let q = d.ng.request(&NgClient::req(&[("command", "query".into()), ("call-id", "kept".into())])).unwrap();
        assert_eq!(q.get("result").and_then(Value::as_str), Some("ok"), "{q:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // a deleted call leaves the store: the next process does not have it
    let del = d.ng.request(&NgClient::req(&[
        ("command", "delete".into()),
        ("call-id", "kept".into()),
        ("delete-delay", Value::Int(0)),
    ]));
    assert_eq!(del.unwrap().get("result").and_then(Value::as_str), Some("ok"));
    std::thread::sleep(Duration::from_millis(400));
    kill(&mut d, libc::SIGTERM);
    let mut d = start(&dir, &[]);
    let q = d.ng.request(&NgClient::req(&[("command", "query".into()), ("call-id", "kept".into())])).unwrap();
    assert_eq!(q.get("result").and_then(Value::as_str), Some("error"), "{q:?}");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
