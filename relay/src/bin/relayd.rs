//! relayd: the media relay daemon. Wires the control plane (ng over UDP, HTTP API,
//! timers) to the io_uring data plane.

use std::net::{TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use control::engine::Engine;
use control::ng::NgServer;
use relay::config::{Cli, Config};
use relay::dataplane::UringDataPlane;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn run(cfg: Config) -> Result<(), String> {
    // fail early, naming the cause, on addresses that cannot be bound
    for i in &cfg.engine.interfaces {
        UdpSocket::bind((i.local, 0)).map_err(|e| format!("interface {i}: cannot bind {}: {e}", i.local))?;
    }
    let ng = UdpSocket::bind(cfg.listen_ng).map_err(|e| format!("listen-ng {}: cannot bind: {e}", cfg.listen_ng))?;
    ng.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let http = match cfg.listen_http {
        Some(a) => Some(TcpListener::bind(a).map_err(|e| format!("listen-http {a}: cannot bind: {e}"))?),
        None => None,
    };
    let dp = UringDataPlane::start(cfg.workers, &cfg.cpus, cfg.tos, cfg.relatch_after_ms, cfg.srtp_replay_window)
        .map_err(|e| e.to_string())?;
    let dp = Arc::new(dp);
    let engine = Arc::new(Mutex::new(Engine::new(cfg.engine.clone(), dp.clone())));
    log::info!(
        "relayd up: ng on {}, http on {}, interfaces {}, ports {}-{}, {} io_uring worker(s), tos {}",
        cfg.listen_ng,
        cfg.listen_http.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        cfg.engine.interfaces.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
        cfg.engine.port_min,
        cfg.engine.port_max,
        cfg.workers,
        cfg.tos
    );
    if let Some(l) = http {
        let e = engine.clone();
        std::thread::Builder::new()
            .name("http".into())
            .spawn(move || control::http::serve(l, e))
            .map_err(|e| e.to_string())?;
    }
    {
        let e = engine.clone();
        std::thread::Builder::new()
            .name("timers".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let mut e = e.lock().unwrap();
                let now = e.dataplane().now_ms();
                e.tick(now);
            })
            .map_err(|e| e.to_string())?;
    }
    let mut server = NgServer::new();
    let mut buf = vec![0u8; 65536];
    while !STOP.load(Ordering::SeqCst) {
        let (n, from) = match ng.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("ng socket: {e}")),
        };
        let reply = {
            let mut e = engine.lock().unwrap();
            let now = e.dataplane().now_ms();
            server.handle(&mut e, &buf[..n], now, unix_now())
        };
        match reply {
            Some(r) => {
                if let Err(e) = ng.send_to(&r, from) {
                    log::warn!("ng reply to {from}: {e}");
                }
            }
            None => log::info!("ng: ignored a datagram without cookie from {from}"),
        }
    }
    log::info!("relayd stopping");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("relayd: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new().filter_level(cfg.log_level).format_target(false).init();
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("relayd: {e}");
            ExitCode::from(1)
        }
    }
}
