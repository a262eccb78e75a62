//! relayd under a stand-in for systemd: a listener on NOTIFY_SOCKET gets READY=1 once ng
//! answers, WATCHDOG=1 at half WATCHDOG_USEC, RELOADING=1 and READY=1 around a SIGHUP
//! that applies the edited file's live keys and keeps its restart keys, and STOPPING=1 on
//! SIGTERM. (scripts/package-test.sh runs the same as the relayd user of the package.)

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control::ng::client::NgClient;

fn recv_all(l: &UnixDatagram, for_: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let end = Instant::now() + for_;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = l.recv(&mut buf) {
            out.extend(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_string));
        }
    }
    out
}

#[test]
fn notify_watchdog_reload_stop() {
    let dir = std::env::temp_dir().join(format!("relayd-systemd-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("notify.sock");
    let l = UnixDatagram::bind(&sock).unwrap();
    l.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = 24000 + (std::process::id() % 1000) as u16;
    let cfg = dir.join("relayd.toml");
    let body = |timeout: u32, port_min: u32| {
        format!(
            "interface = [\"127.0.0.1\"]\nlisten-ng = \"127.0.0.1:{port}\"\nlisten-http = \"none\"\n\
             backend = \"uring\"\nworkers = 1\nstate-dir = \"\"\nport-min = {port_min}\nport-max = {}\ntimeout = {timeout}\n",
            port_min + 99
        )
    };
    std::fs::write(&cfg, body(60, 45000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relayd"))
        .arg("--config")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut ng = NgClient::connect(format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(200)).unwrap();
    let t0 = Instant::now();
    while ng.request(&NgClient::req(&[("command", "ping".into())])).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "relayd did not answer ping");
    }
    let got = recv_all(&l, Duration::from_millis(1300));
    assert!(got.iter().any(|m| m == "READY=1"), "{got:?}");
    assert!(got.iter().any(|m| m.starts_with("STATUS=ng 127.0.0.1:")), "{got:?}");
    let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= 2, "{pings} pings in 1.3 s at WATCHDOG_USEC=1 s: {got:?}");

    std::fs::write(&cfg, body(90, 45100)).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let got = recv_all(&l, Duration::from_millis(700));
    let reloading = got.iter().position(|m| m == "RELOADING=1").expect("RELOADING=1");
    assert!(got[reloading..].iter().any(|m| m == "READY=1"), "{got:?}");
    assert!(ng.request(&NgClient::req(&[("command", "ping".into())])).is_ok(), "relayd gone after SIGHUP");

    unsafe { libc::kill(pid, libc::SIGTERM) };
    let got = recv_all(&l, Duration::from_millis(700));
    assert!(got.iter().any(|m| m == "STOPPING=1"), "{got:?}");
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("reload: timeout: 60 -> 90 (applied)"), "{log}");
    assert!(log.contains("reload: port-min: 45000 -> 45100 needs a restart; keeping 45000 until then"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
