//! The real relayd for the integration tests that need one: started with the given
//! arguments, answering ng on `ng` before the test goes on, killed when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control::ng::client::NgClient;

pub struct Daemon {
    pub child: Child,
    pub ng: NgClient,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start relayd (`--listen-ng=ng` is added) and wait up to 10 s for its ng ping.
pub fn spawn(ng: SocketAddr, args: &[String]) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_relayd"))
        .arg(format!("--listen-ng={ng}"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut ng = NgClient::connect(ng, Duration::from_millis(200)).unwrap();
    ng.retries = 0;
    let t0 = Instant::now();
    let mut d = Daemon { child, ng };
    while d.ng.request(&NgClient::req(&[("command", "ping".into())])).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "relayd did not answer ping");
    }
    d.ng.retries = 2;
    d
}
