//! systemd's notification protocol (sd_notify(3)): readiness, status lines, watchdog
//! pings and "stopping", as datagrams of `KEY=VALUE` lines to the unix socket named in
//! `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Outside systemd the
//! variable is unset and every call here does nothing.
//!
//! The watchdog only pings while the relay is alive in the sense that matters: the
//! `timers` thread took the engine lock and ran [`Engine::tick`](control::engine::Engine)
//! recently ([`Heartbeat::beat`]). A relay whose engine is deadlocked, or whose timers
//! stopped, stops pinging, and systemd restarts it (`WatchdogSec=` + `Restart=`).

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where systemd listens, read once from the environment.
pub struct Notifier {
    sock: Option<(UnixDatagram, NotifyAddr)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NotifyAddr {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

/// `NOTIFY_SOCKET`'s value as an address: `/path` or `@abstract`; anything else (a
/// relative path, vsock addresses) is not supported and ignored.
fn parse_addr(v: &str) -> Option<NotifyAddr> {
    if let Some(name) = v.strip_prefix('@') {
        (!name.is_empty()).then(|| NotifyAddr::Abstract(name.as_bytes().to_vec()))
    } else if v.starts_with('/') {
        Some(NotifyAddr::Path(v.into()))
    } else {
        None
    }
}

/// Half the watchdog interval systemd asks for (`WATCHDOG_USEC`), when it is meant for
/// this process (`WATCHDOG_PID` unset or ours); sd_watchdog_enabled(3) semantics.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

impl Notifier {
    /// The notifier systemd's environment describes. NOTIFY_SOCKET stays set (a process
    /// relayd starts would not be supervised as relayd anyway: it starts none).
    pub fn from_env() -> Notifier {
        let sock = std::env::var("NOTIFY_SOCKET").ok().and_then(|v| {
            let addr = parse_addr(&v);
            if addr.is_none() {
                log::warn!("NOTIFY_SOCKET={v:?} is not a unix socket path or @name; not notifying systemd");
            }
            Some((UnixDatagram::unbound().ok()?, addr?))
        });
        Notifier { sock }
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    /// Send one notification (newline-separated `KEY=VALUE` lines). Errors are logged
    /// once per call, never fatal: a relay must not stop because its supervisor went away.
    pub fn send(&self, msg: &str) {
        let Some((s, addr)) = &self.sock else { return };
        let r = match addr {
            NotifyAddr::Path(p) => s.send_to(msg.as_bytes(), p),
            NotifyAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| s.send_to_addr(msg.as_bytes(), &a))
            }
        };
        if let Err(e) = r {
            log::warn!("sd_notify {:?}: {e}", msg.lines().next().unwrap_or(""));
        }
    }

    /// `READY=1` with a status line: ng and HTTP are bound, the data plane runs.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    /// After a reload: ready again.
    pub fn reloaded(&self, status: &str) {
        self.ready(status);
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }
}

/// A status value is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// What the `timers` thread proves each time it ran a tick under the engine lock: the
/// time of that tick (milliseconds since [`Heartbeat::new`]) and a short status the
/// watchdog thread reports with its pings.
pub struct Heartbeat {
    start: Instant,
    last_ms: AtomicU64,
    calls: AtomicU64,
}

impl Heartbeat {
    pub fn new() -> Arc<Heartbeat> {
        Arc::new(Heartbeat { start: Instant::now(), last_ms: AtomicU64::new(0), calls: AtomicU64::new(0) })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Called by the timers thread after a tick, with the engine's call count.
    pub fn beat(&self, calls: usize) {
        self.calls.store(calls as u64, Relaxed);
        self.last_ms.store(self.now_ms(), Relaxed);
    }

    /// Milliseconds since the last beat.
    pub fn age_ms(&self) -> u64 {
        self.now_ms().saturating_sub(self.last_ms.load(Relaxed))
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }
}

/// Whether the watchdog may ping: the last tick is younger than the watchdog timeout
/// (`2 * half`). With a timers period of 500 ms and systemd's minimum sensible
/// `WatchdogSec=` of a few seconds, a live relay always passes; a relay that has not
/// ticked for the whole timeout is hung, and a missed ping lets systemd restart it.
pub fn alive(age_ms: u64, half: Duration) -> bool {
    u128::from(age_ms) < 2 * half.as_millis()
}

/// Start the watchdog thread when systemd asked for one: every `half` it pings
/// (`WATCHDOG=1` with the call count as STATUS) if [`alive`], and logs once when it
/// stops pinging. Returns the interval, or None without a watchdog.
pub fn spawn_watchdog(notifier: Arc<Notifier>, beat: Arc<Heartbeat>, status: String) -> Option<Duration> {
    let half = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )?;
    if !notifier.enabled() {
        return None;
    }
    let spawned = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        let mut was_alive = true;
        loop {
            let age = beat.age_ms();
            let ok = alive(age, half);
            if ok {
                notifier.send(&format!("WATCHDOG=1\nSTATUS={}; {} call(s)", one_line(&status), beat.calls()));
            } else if was_alive {
                log::error!("watchdog: the timers have not run for {age} ms (engine hung?); no longer pinging systemd");
            }
            was_alive = ok;
            std::thread::sleep(half);
        }
    });
    match spawned {
        Ok(_) => Some(half),
        Err(e) => {
            log::error!("watchdog thread: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_addresses() {
        assert_eq!(parse_addr("/run/systemd/notify"), Some(NotifyAddr::Path("/run/systemd/notify".into())));
        assert_eq!(parse_addr("@sd-notify"), Some(NotifyAddr::Abstract(b"sd-notify".to_vec())));
        assert_eq!(parse_addr("@"), None);
        assert_eq!(parse_addr("relative"), None);
        assert_eq!(parse_addr("vsock:2:1234"), None);
        assert_eq!(parse_addr(""), None);
    }

    #[test]
    fn watchdog_is_half_the_interval_and_only_for_us() {
        assert_eq!(watchdog_interval(Some("20000000"), None, 7), Some(Duration::from_secs(10)));
        assert_eq!(watchdog_interval(Some("20000000"), Some("7"), 7), Some(Duration::from_secs(10)));
        assert_eq!(watchdog_interval(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn pings_only_while_the_timers_tick() {
        let half = Duration::from_secs(5);
        assert!(alive(0, half));
        assert!(alive(600, half));
        assert!(alive(9_999, half));
        assert!(!alive(10_000, half));
        assert!(!alive(u64::MAX, half));
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }

    /// The real protocol: a listener on a unix datagram socket gets the lines.
    #[test]
    fn sends_datagrams_to_the_socket() {
        let dir = std::env::temp_dir().join(format!("relayd-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { sock: Some((UnixDatagram::unbound().unwrap(), NotifyAddr::Path(path.clone()))) };
        n.ready("up\nnow");
        n.stopping();
        let mut buf = [0u8; 256];
        let k = l.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=up now");
        let k = l.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STOPPING=1\nSTATUS=stopping");
        let _ = std::fs::remove_dir_all(&dir);
        // without systemd nothing is sent and nothing fails
        Notifier { sock: None }.ready("x");
    }
}
