//! relayd: the media relay daemon. Wires the control plane (ng over UDP, HTTP API,
//! timers) to the io_uring data plane.

use std::net::{TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use backend::dataplane::UringDataPlane;
use backend::xdp::{XdpDataPlane, XdpOptions};
use control::engine::Engine;
use control::ng::NgServer;
use relayd::config::{Backend, Config, Options};
use rules::dataplane::DataPlane;

static STOP: AtomicBool = AtomicBool::new(false);
/// SIGHUP: reload relayd.toml (config/reload.rs says what a reload may change).
static RELOAD: AtomicBool = AtomicBool::new(false);

/// UMEM frames per AF_XDP worker.
const XDP_FRAMES: u32 = 32768;

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_hup(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A week before the DTLS certificate expires new calls get a new one (running calls keep
/// theirs).
fn renew_dtls_identity(e: &mut Engine) {
    let now = unix_now();
    if e.dtls_identity().is_some_and(|id| relayd::dtls_identity::needs_renewal(id, now)) {
        match relayd::dtls_identity::fresh(now) {
            Ok(id) => {
                log::info!("DTLS certificate renewed: {}", id.fingerprint);
                e.set_dtls_identity(id);
            }
            Err(e) => log::error!("{e}; keeping the old one"),
        }
    }
}

/// Raise the soft RLIMIT_NOFILE to the hard limit (every relay socket is a descriptor);
/// returns the soft limit in force.
fn raise_nofile_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        log::warn!("cannot read RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
        return 1024;
    }
    let mut want = r.rlim_max;
    if want == libc::RLIM_INFINITY {
        // the kernel refuses more than fs.nr_open
        want =
            std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20);
    }
    if r.rlim_cur >= want {
        log::info!("RLIMIT_NOFILE {} (the hard limit)", r.rlim_cur);
        return r.rlim_cur;
    }
    let old = r.rlim_cur;
    r.rlim_cur = want;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        log::warn!("cannot raise RLIMIT_NOFILE from {old} to {want}: {}", std::io::Error::last_os_error());
        return old;
    }
    log::info!("RLIMIT_NOFILE raised from {old} to {want} (the hard limit)");
    want
}

/// Warn when the port range needs more descriptors than the process may open: one per
/// relay socket (every port of the range, on every interface), `per_socket` with the
/// XDP backend's duplicate, plus what the daemon itself holds.
fn check_nofile(cfg: &Config, limit: u64, per_socket: u64) {
    let ports = (cfg.engine.port_max as u64 - cfg.engine.port_min as u64 + 1) * cfg.engine.interfaces.len() as u64;
    let need = ports * per_socket + 64;
    if need > limit {
        log::warn!(
            "the port range {}-{} on {} interface(s) needs up to {need} descriptors ({per_socket} per relay socket), \
             RLIMIT_NOFILE is {limit}: offers past about {} port pairs will fail with \"too many open files\"; \
             raise the hard limit (systemd LimitNOFILE=, ulimit -Hn) or narrow the range",
            cfg.engine.port_min,
            cfg.engine.port_max,
            cfg.engine.interfaces.len(),
            limit.saturating_sub(64) / per_socket / 2
        );
    }
}

fn run(cli: &Options, mut cfg: Config) -> Result<(), String> {
    let nofile = raise_nofile_limit();
    // the capabilities this configuration needs, named before anything fails with EPERM
    let caps = relayd::caps::check(&relayd::caps::Wants::of(&cfg, XDP_FRAMES))?;
    let notifier = Arc::new(relayd::notify::Notifier::from_env());
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
    backend::sys::set_worker_priority(cfg.worker_priority);
    let xdp_opts = if cfg.backend == Backend::Auto && caps.xdp_unavailable() { Ok(None) } else { start_xdp(&cfg) };
    // under XDP the io_uring workers (the kernel path) share the AF_XDP workers' flow table
    let uring = UringDataPlane::start_with(
        cfg.workers,
        &cfg.cpus,
        cfg.tos,
        cfg.flow_settings(),
        matches!(xdp_opts, Ok(Some(_))),
    )
    .map_err(|e| e.to_string())?;
    let (dp, xdp, backend): (Arc<dyn DataPlane>, Option<Arc<XdpDataPlane>>, String) = match xdp_opts {
        Ok(None) => (Arc::new(uring), None, format!("io_uring ({} worker(s))", cfg.workers)),
        Ok(Some(opts)) => match XdpDataPlane::start(&opts, uring) {
            Ok(x) => {
                let x = Arc::new(x);
                let desc = format!("xdp on {} (+ io_uring for the kernel path)", opts.interfaces.join(","));
                (x.clone(), Some(x), desc)
            }
            Err(e) if cfg.backend == Backend::Auto => {
                log::warn!("backend auto: XDP unavailable ({e}); using io_uring");
                let uring = UringDataPlane::start(cfg.workers, &cfg.cpus, cfg.tos, cfg.flow_settings())
                    .map_err(|e| e.to_string())?;
                (Arc::new(uring), None, format!("io_uring ({} worker(s))", cfg.workers))
            }
            Err(e) => match caps.explain(&e.to_string()) {
                Some(why) => return Err(format!("backend xdp: {e}: {why}")),
                None => return Err(format!("backend xdp: {e}")),
            },
        },
        Err(e) => return Err(e),
    };
    check_nofile(&cfg, nofile, if xdp.is_some() { 2 } else { 1 });
    let mut engine = Engine::new(cfg.engine.clone(), dp.clone());
    let identity = relayd::dtls_identity::fresh(unix_now())?;
    log::info!("DTLS certificate {}", identity.fingerprint);
    engine.set_dtls_identity(identity);
    if let Some(dir) = &cfg.recording_dir {
        let clock = dp.clone();
        let rec = relayd::recording::FileRecorder::start(dir, Arc::new(move || clock.now_ms().saturating_mul(1000)))?;
        log::info!("recording: calls asked for are recorded under {}", dir.display());
        engine.set_recorder(Arc::new(rec));
    }
    // calls of the previous process back on their ports before anything is served
    let store = relayd::store::start(&cfg, &mut engine, unix_now())?;
    let engine = Arc::new(Mutex::new(engine));
    let writer = match store {
        Some((store, info, held)) => {
            let w = relayd::store::Writer::new(store, engine.clone(), held, info);
            let every = Duration::from_millis(cfg.state_interval_ms);
            Some(
                std::thread::Builder::new()
                    .name("state-store".into())
                    .spawn(move || w.run(every, &STOP))
                    .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    log::info!(
        "relayd up: ng on {}, http on {}, interfaces {}, ports {}-{}, backend {}, cpus {:?}, tos {}, srtp crypto {}",
        cfg.listen_ng,
        cfg.listen_http.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        cfg.engine.interfaces.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
        cfg.engine.port_min,
        cfg.engine.port_max,
        backend,
        cfg.cpus,
        cfg.tos,
        relay_core::srtp::implementation()
    );
    let mut api = None;
    if let Some(l) = http {
        if cfg.http.token.is_none() {
            log::info!("http: no http-token configured: the API refuses to terminate or capture calls");
        }
        let a = Arc::new(control::http::Api::new(engine.clone(), cfg.http.clone()));
        api = Some(a.clone());
        std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                if let Err(e) = relayd::http_server::serve(l, a) {
                    log::error!("http: the API server stopped: {e}");
                }
            })
            .map_err(|e| e.to_string())?;
    }
    let heartbeat = relayd::notify::Heartbeat::new();
    {
        let e = engine.clone();
        let heartbeat = heartbeat.clone();
        std::thread::Builder::new()
            .name("timers".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(500));
                let mut e = control::lock(&e);
                let now = e.dataplane().now_ms();
                renew_dtls_identity(&mut e);
                // a bug in the timers must not stop them for good
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.tick(now))).is_err() {
                    e.stats.panics += 1;
                    log::error!("timers: internal error (panic) in tick; carrying on");
                }
                heartbeat.beat(e.calls.len());
            })
            .map_err(|e| e.to_string())?;
    }
    let mut server = NgServer::with_cache_bytes(cfg.ng_cache_bytes).with_allowed_sources(cfg.ng_allow.clone());
    let mut ignored_log = control::ng::LogLimiter::new(10);
    let mut buf = vec![0u8; 65536];
    let status = format!("ng {}, backend {backend}", cfg.listen_ng);
    notifier.ready(&status);
    relayd::notify::spawn_watchdog(notifier.clone(), heartbeat, status.clone());
    while !STOP.load(Ordering::SeqCst) {
        if RELOAD.swap(false, Ordering::SeqCst) {
            notifier.reloading();
            if let Some(next) = relayd::config::reload::reload(cli, &cfg) {
                next.apply_live(&mut control::lock(&engine).cfg);
                server.set_allowed_sources(next.ng_allow.clone());
                if let Some(a) = &api {
                    a.set_token(next.http.token.clone());
                }
                log::set_max_level(next.log_level);
                cfg = next;
            }
            notifier.reloaded(&status);
        }
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
        let (reply, now) = {
            let mut e = control::lock(&engine);
            let now = e.dataplane().now_ms();
            (server.handle(&mut e, from, &buf[..n], now, unix_now()), now)
        };
        match reply {
            Some(r) => {
                if let Err(e) = ng.send_to(&r, from) {
                    if ignored_log.allow(now) {
                        log::warn!("ng reply to {from}: {e}");
                    }
                }
            }
            None => {
                if ignored_log.allow(now) {
                    let why = server.last_ignored.map(|w| w.as_str()).unwrap_or("no reply");
                    log::info!("ng: ignored a datagram from {from} ({why})");
                }
            }
        }
    }
    log::info!("relayd stopping");
    notifier.stopping();
    if let Some(w) = writer {
        // its last pass: the calls as they are now
        let _ = w.join();
        log::info!("state store written");
    }
    if let Some(x) = xdp {
        x.detach();
        log::info!("XDP program detached");
    }
    Ok(())
}

/// The XDP options for this configuration, or None when the io_uring backend is asked for
/// (or `auto` finds an address no interface holds).
fn start_xdp(cfg: &Config) -> Result<Option<XdpOptions>, String> {
    if cfg.backend == Backend::Uring {
        return Ok(None);
    }
    let mut interfaces = cfg.xdp_interfaces.clone();
    if interfaces.is_empty() {
        for i in &cfg.engine.interfaces {
            match backend::xdp::interface_of(i.local) {
                Some(n) if !interfaces.contains(&n) => interfaces.push(n),
                Some(_) => {}
                None if cfg.backend == Backend::Auto => return Ok(None),
                None => {
                    return Err(format!("backend xdp: no network interface holds {}; use --xdp-interface", i.local))
                }
            }
        }
    }
    Ok(Some(XdpOptions {
        interfaces,
        require_native: cfg.backend == Backend::Auto,
        cpus: cfg.cpus.clone(),
        tos: cfg.tos,
        frames: XDP_FRAMES,
        own_addrs: cfg.engine.media_policy.own.clone(),
    }))
}

fn main() -> ExitCode {
    let cli = Options::parse();
    if cli.print_config_defaults {
        return match Options::defaults_toml() {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("relayd: {e}");
                ExitCode::from(1)
            }
        };
    }
    let cfg = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("relayd: {e}");
            return ExitCode::from(2);
        }
    };
    // the logger passes everything; log::max_level filters, so a reload can change it
    env_logger::Builder::new().filter_level(log::LevelFilter::Trace).format_target(false).init();
    log::set_max_level(cfg.log_level);
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
    }
    match run(&cli, cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("relayd: {e}");
            ExitCode::from(1)
        }
    }
}
