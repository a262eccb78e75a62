//! relayd configuration: a TOML file (`--config`) and command-line flags named like
//! rtpengine's, flags overriding the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use rules::addrpolicy::{AddressPolicy, IpNet};
use control::engine::EngineConfig;
use control::http::HttpOptions;
use control::interface::Interface;

#[derive(Parser, Debug, Default, Clone)]
#[command(name = "relayd", version, about = "RTP/RTCP media relay driven by the rtpengine ng protocol")]
pub struct Cli {
    /// TOML configuration file (flags override it)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Media interface NAME/IP[!ADVERTISED] (repeatable; a bare IP is interface "default")
    #[arg(long = "interface", short = 'i')]
    pub interface: Vec<String>,
    /// ng control protocol address (UDP)
    #[arg(long = "listen-ng", short = 'n')]
    pub listen_ng: Option<String>,
    /// HTTP API and /metrics address (TCP)
    #[arg(long = "listen-http")]
    pub listen_http: Option<String>,
    /// Bearer token the HTTP API requires for state-changing requests (terminate); without
    /// one they are refused. A flag shows in `ps`: prefer --http-token-file
    #[arg(long = "http-token")]
    pub http_token: Option<String>,
    /// File holding the HTTP API token (surrounding whitespace ignored)
    #[arg(long = "http-token-file")]
    pub http_token_file: Option<PathBuf>,
    /// Host name the HTTP API answers to besides IP addresses and localhost (repeatable)
    #[arg(long = "http-host")]
    pub http_host: Vec<String>,
    #[arg(long = "port-min", short = 'm')]
    pub port_min: Option<u16>,
    #[arg(long = "port-max", short = 'M')]
    pub port_max: Option<u16>,
    /// Seconds without media before a call is torn down
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Seconds without media for calls on hold
    #[arg(long = "silent-timeout")]
    pub silent_timeout: Option<u64>,
    /// Maximum call duration in seconds (0: unlimited)
    #[arg(long = "final-timeout")]
    pub final_timeout: Option<u64>,
    /// Seconds a deleted call lingers
    #[arg(long = "delete-delay")]
    pub delete_delay: Option<u64>,
    /// TOS/traffic class of relayed media (184 = DSCP EF)
    #[arg(long)]
    pub tos: Option<u8>,
    /// Worker threads (default: one per CPU the process may run on)
    #[arg(long)]
    pub workers: Option<usize>,
    /// CPUs to pin workers to, comma-separated, ranges allowed: 0-3,6 (default: the CPUs
    /// the process was started with -- taskset, systemd CPUAffinity=, cgroup cpuset --
    /// worker i on the i-th of them)
    #[arg(long)]
    pub cpus: Option<String>,
    /// Data path backend: xdp (XDP steering + AF_XDP workers), uring (io_uring sockets), or
    /// auto (xdp where the program attaches in native mode, uring otherwise)
    #[arg(long)]
    pub backend: Option<String>,
    /// Network interface for the xdp backend (repeatable, one per relay interface; default:
    /// the interfaces holding the --interface addresses)
    #[arg(long = "xdp-interface")]
    pub xdp_interface: Vec<String>,
    /// SCHED_FIFO priority (1-99) for the data-plane workers; 0: normal scheduling
    #[arg(long = "worker-priority")]
    pub worker_priority: Option<u8>,
    /// Milliseconds of silence from a latched peer before another source may take over
    #[arg(long = "relatch-after")]
    pub relatch_after: Option<u64>,
    /// Milliseconds an unexpected source must be the only one sending before it may
    /// latch a new flow (a packet from the signalled or SIP source address latches at once)
    #[arg(long = "latch-grace")]
    pub latch_grace: Option<u64>,
    /// SRTP/SRTCP replay window in packets (1-1024)
    #[arg(long = "srtp-replay-window")]
    pub srtp_replay_window: Option<u32>,
    /// Media peers allowed although their class is denied (CIDR, repeatable: e.g. a lab's
    /// 127.0.0.0/8 or a link-local segment); never lifts the relay's own sockets
    #[arg(long = "media-allow")]
    pub media_allow: Vec<String>,
    /// Media peers always refused (CIDR, repeatable)
    #[arg(long = "media-deny")]
    pub media_deny: Vec<String>,
    /// error, warn, info, debug, trace, or a syslog number 0-7
    #[arg(long = "log-level", short = 'L')]
    pub log_level: Option<String>,
    /// Sources allowed to send ng commands (address or CIDR, repeatable; default: all)
    #[arg(long = "ng-allow")]
    pub ng_allow: Vec<String>,
    /// Bytes the ng reply cache (retransmissions) may hold, in MiB (default 32)
    #[arg(long = "ng-cache-mb")]
    pub ng_cache_mb: Option<usize>,
    /// Media sections (m= lines) one SDP may have (default 32)
    #[arg(long = "max-media-per-sdp")]
    pub max_media_per_sdp: Option<usize>,
    /// Monologues (tags) one call may have (default 16)
    #[arg(long = "max-monologues-per-call")]
    pub max_monologues_per_call: Option<usize>,
    /// Calls the relay keeps at once (default 20000)
    #[arg(long = "max-calls")]
    pub max_calls: Option<usize>,
    /// Longest call-id, tag, label and ng cookie in bytes (default 256)
    #[arg(long = "max-id-length")]
    pub max_id_length: Option<usize>,
    /// Accepted for rtpengine compatibility; relayd always runs in the foreground
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Accepted for rtpengine compatibility (relayd has no kernel table)
    #[arg(long, allow_hyphen_values = true)]
    pub table: Option<i32>,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub interface: Option<Vec<String>>,
    pub listen_ng: Option<String>,
    pub listen_http: Option<String>,
    pub http_token_file: Option<PathBuf>,
    pub http_host: Option<Vec<String>>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub timeout: Option<u64>,
    pub silent_timeout: Option<u64>,
    pub final_timeout: Option<u64>,
    pub delete_delay: Option<u64>,
    pub tos: Option<u8>,
    pub workers: Option<usize>,
    pub cpus: Option<Vec<usize>>,
    pub backend: Option<String>,
    pub xdp_interface: Option<Vec<String>>,
    pub worker_priority: Option<u8>,
    pub relatch_after: Option<u64>,
    pub latch_grace: Option<u64>,
    pub srtp_replay_window: Option<u32>,
    pub media_allow: Option<Vec<String>>,
    pub media_deny: Option<Vec<String>>,
    pub ng_allow: Option<Vec<String>>,
    pub ng_cache_mb: Option<usize>,
    pub max_media_per_sdp: Option<usize>,
    pub max_monologues_per_call: Option<usize>,
    pub max_calls: Option<usize>,
    pub max_id_length: Option<usize>,
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Xdp,
    Uring,
    Auto,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub engine: EngineConfig,
    pub backend: Backend,
    /// Empty: derived from the interface addresses at start.
    pub xdp_interfaces: Vec<String>,
    pub listen_ng: SocketAddr,
    pub listen_http: Option<SocketAddr>,
    /// HTTP API token, Host names and limits (Debug does not print the token).
    pub http: HttpOptions,
    pub tos: u8,
    pub workers: usize,
    pub cpus: Vec<usize>,
    pub worker_priority: u8,
    pub relatch_after_ms: u64,
    pub latch_grace_ms: u64,
    pub srtp_replay_window: u32,
    pub media_allow: Vec<IpNet>,
    pub media_deny: Vec<IpNet>,
    /// Sources allowed to send ng commands (empty: all).
    pub ng_allow: Vec<IpNet>,
    /// Bound on the ng reply cache (bytes).
    pub ng_cache_bytes: usize,
    pub log_level: log::LevelFilter,
}

fn parse_nets(what: &str, list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{what}: {s:?} is not an address or CIDR prefix"))
        })
        .collect()
}

impl Config {
    /// How the data plane's flow tables are made.
    pub fn flow_settings(&self) -> relay_core::flow::FlowSettings {
        relay_core::flow::FlowSettings {
            relatch_after_ms: self.relatch_after_ms,
            latch_grace_ms: self.latch_grace_ms,
            replay_window: self.srtp_replay_window,
            policy: std::sync::Arc::new(self.engine.media_policy.clone()),
        }
    }

    /// The media address policy (rules::addrpolicy) this configuration implies: the
    /// relay's own addresses and sockets, lab mode when a media interface is loopback,
    /// and the operator's lists.
    pub fn address_policy(&self) -> Result<AddressPolicy, String> {
        let mut own = Vec::new();
        for i in &self.engine.interfaces {
            own.extend([i.local, i.advertised]);
        }
        own.push(self.listen_ng.ip());
        own.extend(self.listen_http.map(|a| a.ip()));
        // an unspecified listen address stays: it tells the policy that every local
        // address, loopback included, reaches that socket
        own.sort();
        own.dedup();
        let mut own_ports =
            vec![(self.engine.port_min, self.engine.port_max), (self.listen_ng.port(), self.listen_ng.port())];
        own_ports.extend(self.listen_http.map(|a| (a.port(), a.port())));
        Ok(AddressPolicy {
            own,
            own_ports,
            lab_loopback: self.engine.interfaces.iter().any(|i| i.local.is_loopback()),
            allow: self.media_allow.clone(),
            deny: self.media_deny.clone(),
        })
    }
}

/// The HTTP API token: from the flag, else from the file the flag or the config names.
fn http_token(flag: Option<&str>, file: Option<&PathBuf>) -> Result<Option<String>, String> {
    let (token, what) = match (flag, file) {
        (Some(t), _) => (t.trim().to_string(), "http-token".to_string()),
        (None, Some(p)) => (
            std::fs::read_to_string(p).map_err(|e| format!("http-token-file {}: {e}", p.display()))?.trim().to_string(),
            format!("http-token-file {}", p.display()),
        ),
        (None, None) => return Ok(None),
    };
    if token.is_empty() {
        return Err(format!("{what}: the token is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{what}: the token must be printable ASCII without spaces"));
    }
    Ok(Some(token))
}

/// A CPU list as taskset and /proc's Cpus_allowed_list write it: `0-3,6`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let bad = |c: &str| format!("cpus: {c:?} is not a cpu number or range");
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b) = (a.parse::<usize>().map_err(|_| bad(part))?, b.parse::<usize>().map_err(|_| bad(part))?);
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return Err(bad(part));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The CPUs this process may run on (sched_getaffinity: taskset, systemd CPUAffinity=,
/// a cgroup cpuset); empty if it cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Default worker placement: the allowed CPUs, or 0..cores when they are unknown.
pub fn default_cpus(allowed: &[usize], cores: usize) -> Vec<usize> {
    if allowed.is_empty() {
        (0..cores.max(1)).collect()
    } else {
        allowed.to_vec()
    }
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, String> {
    let s = s.strip_prefix("udp:").unwrap_or(s);
    // rtpengine accepts a bare port for --listen-ng
    if let Ok(p) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    s.parse().map_err(|_| format!("{what}: {s:?} is not an address:port"))
}

pub fn parse_log_level(s: &str) -> Result<log::LevelFilter, String> {
    use log::LevelFilter::*;
    Ok(match s.to_ascii_lowercase().as_str() {
        "0" | "1" | "2" | "3" | "error" => Error,
        "4" | "warn" | "warning" => Warn,
        "5" | "6" | "info" => Info,
        "7" | "debug" => Debug,
        "trace" => Trace,
        "off" => Off,
        _ => return Err(format!("log-level: unknown level {s:?}")),
    })
}

impl Config {
    pub fn load(cli: &Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("cannot read config {}: {e}", p.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| format!("config {}: {e}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let interfaces: Vec<String> = if !cli.interface.is_empty() {
            cli.interface.clone()
        } else {
            file.interface.clone().unwrap_or_else(|| vec!["127.0.0.1".into()])
        };
        let interfaces = interfaces.iter().map(|s| Interface::parse(s)).collect::<Result<Vec<_>, _>>()?;
        let port_min = cli.port_min.or(file.port_min).unwrap_or(30000);
        let port_max = cli.port_max.or(file.port_max).unwrap_or(40000);
        if port_min < 1024 || port_max <= port_min {
            return Err(format!("port range {port_min}-{port_max} is invalid (need 1024 <= port-min < port-max)"));
        }
        let backend = cli.backend.clone().or(file.backend.clone()).unwrap_or_else(|| "auto".into());
        let backend = match backend.as_str() {
            "xdp" => Backend::Xdp,
            "uring" => Backend::Uring,
            "auto" => Backend::Auto,
            _ => return Err(format!("backend {backend:?}: expected xdp, uring or auto")),
        };
        let xdp_interfaces = if cli.xdp_interface.is_empty() {
            file.xdp_interface.clone().unwrap_or_default()
        } else {
            cli.xdp_interface.clone()
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let allowed = default_cpus(&allowed_cpus(), cores);
        let workers = cli.workers.or(file.workers).unwrap_or(allowed.len());
        if workers == 0 {
            return Err("workers must be at least 1".into());
        }
        let cpus = match &cli.cpus {
            Some(s) => parse_cpu_list(s)?,
            None => file.cpus.clone().unwrap_or(allowed),
        };
        let listen_http = match cli.listen_http.clone().or(file.listen_http.clone()) {
            Some(s) if s == "none" || s.is_empty() => None,
            Some(s) => Some(parse_addr("listen-http", &s)?),
            None => Some("127.0.0.1:9900".parse().unwrap()),
        };
        let http = HttpOptions {
            token: http_token(
                cli.http_token.as_deref(),
                cli.http_token_file.as_ref().or(file.http_token_file.as_ref()),
            )?,
            hosts: if cli.http_host.is_empty() {
                file.http_host.clone().unwrap_or_default()
            } else {
                cli.http_host.clone()
            },
            ..HttpOptions::default()
        };
        let worker_priority = cli.worker_priority.or(file.worker_priority).unwrap_or(0);
        if worker_priority > 99 {
            return Err(format!("worker-priority {worker_priority} is outside 0-99"));
        }
        let srtp_replay_window = cli.srtp_replay_window.or(file.srtp_replay_window).unwrap_or(128);
        if !(1..=1024).contains(&srtp_replay_window) {
            return Err(format!("srtp-replay-window {srtp_replay_window} is outside 1-1024"));
        }
        let d = EngineConfig::default();
        let pick = |c: &Vec<String>, f: &Option<Vec<String>>| {
            if c.is_empty() {
                f.clone().unwrap_or_default()
            } else {
                c.clone()
            }
        };
        let media_allow = parse_nets("media-allow", &pick(&cli.media_allow, &file.media_allow))?;
        let media_deny = parse_nets("media-deny", &pick(&cli.media_deny, &file.media_deny))?;
        let ng_allow = parse_nets("ng-allow", &pick(&cli.ng_allow, &file.ng_allow))?;
        let limit = |what: &str, c: Option<usize>, f: Option<usize>, d: usize| match c.or(f).unwrap_or(d) {
            0 => Err(format!("{what} must be at least 1")),
            n => Ok(n),
        };
        let ng_cache_mb = limit("ng-cache-mb", cli.ng_cache_mb, file.ng_cache_mb, 32)?;
        let max_media_per_sdp =
            limit("max-media-per-sdp", cli.max_media_per_sdp, file.max_media_per_sdp, d.max_media_per_sdp)?;
        let max_monologues_per_call = limit(
            "max-monologues-per-call",
            cli.max_monologues_per_call,
            file.max_monologues_per_call,
            d.max_monologues_per_call,
        )?;
        let max_calls = limit("max-calls", cli.max_calls, file.max_calls, d.max_calls)?;
        let max_id_length = limit("max-id-length", cli.max_id_length, file.max_id_length, d.max_id_length)?;
        let mut c = Config {
            engine: EngineConfig {
                interfaces,
                port_min,
                port_max,
                timeout: cli.timeout.or(file.timeout).unwrap_or(d.timeout),
                silent_timeout: cli.silent_timeout.or(file.silent_timeout).unwrap_or(d.silent_timeout),
                final_timeout: cli.final_timeout.or(file.final_timeout).unwrap_or(d.final_timeout),
                delete_delay: cli.delete_delay.or(file.delete_delay).unwrap_or(d.delete_delay),
                media_policy: AddressPolicy::default(),
                max_media_per_sdp,
                max_monologues_per_call,
                max_calls,
                max_id_length,
                ..d
            },
            backend,
            xdp_interfaces,
            listen_ng: parse_addr(
                "listen-ng",
                &cli.listen_ng.clone().or(file.listen_ng.clone()).unwrap_or_else(|| "127.0.0.1:2223".into()),
            )?,
            listen_http,
            http,
            tos: cli.tos.or(file.tos).unwrap_or(184),
            workers,
            cpus,
            worker_priority,
            relatch_after_ms: cli.relatch_after.or(file.relatch_after).unwrap_or(2000),
            latch_grace_ms: cli
                .latch_grace
                .or(file.latch_grace)
                .unwrap_or(relay_core::flow::FlowTable::DEFAULT_LATCH_GRACE_MS),
            srtp_replay_window,
            media_allow,
            media_deny,
            ng_allow,
            ng_cache_bytes: ng_cache_mb.saturating_mul(1 << 20),
            log_level: parse_log_level(
                &cli.log_level.clone().or(file.log_level.clone()).unwrap_or_else(|| "info".into()),
            )?,
        };
        c.engine.media_policy = c.address_policy()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("relayd-cfg-{}", std::process::id()));
        std::fs::write(
            &dir,
            "interface = [\"pub/127.0.0.1!203.0.113.1\"]\nport-min = 20000\nport-max = 20100\ntimeout = 5\n",
        )
        .unwrap();
        let cli = Cli { config: Some(dir.clone()), port_max: Some(20200), ..Default::default() };
        let c = Config::load(&cli).unwrap();
        assert_eq!((c.engine.port_min, c.engine.port_max, c.engine.timeout), (20000, 20200, 5));
        assert_eq!(c.engine.interfaces[0].advertised.to_string(), "203.0.113.1");
        assert_eq!(c.tos, 184);
        std::fs::write(&dir, "bogus = 1\n").unwrap();
        assert!(Config::load(&cli).unwrap_err().contains("bogus"));
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_problem() {
        let cli = Cli { port_min: Some(5000), port_max: Some(4000), ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("port range"));
        let cli = Cli { interface: vec!["x/1.2.3".into()], ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("not an IP"));
        let cli = Cli { listen_ng: Some("nope".into()), ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("listen-ng"));
        let cli = Cli { srtp_replay_window: Some(5000), ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("srtp-replay-window"));
        let cli = Cli { srtp_replay_window: Some(512), ..Default::default() };
        assert_eq!(Config::load(&cli).unwrap().srtp_replay_window, 512);
        let cli = Cli { media_deny: vec!["10.0.0.0/33".into()], ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("media-deny"));
    }

    #[test]
    fn the_http_token_comes_from_a_flag_or_a_file() {
        assert!(Config::load(&Cli::default()).unwrap().http.token.is_none());
        let cli = Cli { http_token: Some("abc".into()), http_host: vec!["relay.example".into()], ..Default::default() };
        let c = Config::load(&cli).unwrap();
        assert_eq!((c.http.token.as_deref(), c.http.hosts.clone()), (Some("abc"), vec!["relay.example".to_string()]));
        assert!(!format!("{c:?}").contains("abc"), "Debug prints the token");
        let dir = std::env::temp_dir().join(format!("relayd-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        let conf = dir.join("relayd.toml");
        std::fs::write(&conf, format!("http-token-file = {:?}\nhttp-host = [\"a.example\"]\n", dir.join("token")))
            .unwrap();
        let c = Config::load(&Cli { config: Some(conf.clone()), ..Default::default() }).unwrap();
        assert_eq!((c.http.token.as_deref(), c.http.hosts.clone()), (Some("s3cret"), vec!["a.example".to_string()]));
        std::fs::write(dir.join("token"), "\n").unwrap();
        assert!(Config::load(&Cli { config: Some(conf.clone()), ..Default::default() }).unwrap_err().contains("empty"));
        let cli = Cli { http_token_file: Some(dir.join("nope")), ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("http-token-file"));
        let cli = Cli { http_token: Some("a b".into()), ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("printable"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn control_plane_limits_and_ng_allow() {
        let c = Config::load(&Cli::default()).unwrap();
        assert_eq!(
            (c.engine.max_media_per_sdp, c.engine.max_monologues_per_call, c.engine.max_calls, c.engine.max_id_length),
            (32, 16, 20000, 256)
        );
        assert_eq!((c.engine.final_timeout, c.ng_cache_bytes, c.ng_allow.len()), (14400, 32 << 20, 0));
        let cli = Cli {
            ng_allow: vec!["10.0.0.0/8".into(), "192.0.2.7".into()],
            max_media_per_sdp: Some(8),
            max_id_length: Some(64),
            ng_cache_mb: Some(4),
            ..Default::default()
        };
        let c = Config::load(&cli).unwrap();
        assert_eq!((c.engine.max_media_per_sdp, c.engine.max_id_length, c.ng_cache_bytes), (8, 64, 4 << 20));
        assert_eq!(c.ng_allow, vec!["10.0.0.0/8".parse::<IpNet>().unwrap(), "192.0.2.7/32".parse().unwrap()]);
        let cli = Cli { ng_allow: vec!["nope".into()], ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("ng-allow"));
        let cli = Cli { max_calls: Some(0), ..Default::default() };
        assert!(Config::load(&cli).unwrap_err().contains("max-calls"));
    }

    #[test]
    fn cpu_lists_and_the_default_placement() {
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("0-3, 6,8-9").unwrap(), vec![0, 1, 2, 3, 6, 8, 9]);
        for bad in ["", "x", "3-1", "1-", "-1", "1,,2", "100000"] {
            assert!(parse_cpu_list(bad).unwrap_err().contains("cpus"), "{bad:?}");
        }
        // started with `taskset -c 1`: worker 0 on CPU 1, one worker by default
        assert_eq!(default_cpus(&[1], 2), vec![1]);
        assert_eq!(default_cpus(&[2, 5], 8), vec![2, 5]);
        assert_eq!(default_cpus(&[], 3), vec![0, 1, 2]);
        assert_eq!(default_cpus(&[], 0), vec![0]);
        // this process's own set, as Config::load uses it
        let own = allowed_cpus();
        assert!(!own.is_empty());
        let c = Config::load(&Cli::default()).unwrap();
        assert_eq!((c.cpus.clone(), c.workers), (own.clone(), own.len()));
        let cli = Cli { cpus: Some("0-1".into()), workers: Some(3), ..Default::default() };
        assert_eq!(Config::load(&cli).map(|c| (c.cpus, c.workers)).unwrap(), (vec![0, 1], 3));
    }

    #[test]
    fn the_address_policy_knows_the_relays_own_sockets() {
        let cli = Cli {
            interface: vec!["pub/192.0.2.1!203.0.113.1".into(), "priv/10.0.0.1".into()],
            listen_ng: Some("10.0.0.1:2223".into()),
            media_allow: vec!["169.254.0.0/16".into()],
            media_deny: vec!["198.18.0.0/15".into()],
            ..Default::default()
        };
        let c = Config::load(&cli).unwrap();
        let p = &c.engine.media_policy;
        assert!(!p.lab_loopback);
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(p.check(a("10.0.0.1:2223")).is_err());
        assert!(p.check(a("203.0.113.1:5000")).is_err());
        assert!(p.check(a("127.0.0.1:5000")).is_err());
        assert!(p.check(a("169.254.3.3:5000")).is_ok());
        assert!(p.check(a("198.18.3.3:5000")).is_err());
        assert!(p.check(a("198.51.100.3:5000")).is_ok());
        let lab = Config::load(&Cli::default()).unwrap();
        assert!(lab.engine.media_policy.lab_loopback);
        assert!(lab.engine.media_policy.check(a("127.0.0.1:5000")).is_ok());
        assert!(lab.engine.media_policy.check(a("127.0.0.1:2223")).is_err());
        assert!(lab.engine.media_policy.check(a("127.0.0.1:9900")).is_err());
        assert!(lab.engine.media_policy.check(a("127.0.0.1:30000")).is_err());
        let wild = Cli { listen_ng: Some("0.0.0.0:2223".into()), ..Default::default() };
        let wild = Config::load(&wild).unwrap();
        assert!(wild.engine.media_policy.check(a("127.0.0.5:2223")).is_err(), "a wildcard ng socket is reached");
        assert!(lab.engine.media_policy.check(a("127.0.0.5:2223")).is_ok(), "ng on 127.0.0.1 is not");
    }
}
