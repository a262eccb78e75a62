//! relayd configuration: a TOML file (`--config`) and command-line flags named like
//! rtpengine's, flags overriding the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use control::addrpolicy::{AddressPolicy, IpNet};
use control::engine::EngineConfig;
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
    pub srtp_replay_window: Option<u32>,
    pub media_allow: Option<Vec<String>>,
    pub media_deny: Option<Vec<String>>,
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
    pub tos: u8,
    pub workers: usize,
    pub cpus: Vec<usize>,
    pub worker_priority: u8,
    pub relatch_after_ms: u64,
    pub srtp_replay_window: u32,
    pub media_allow: Vec<IpNet>,
    pub media_deny: Vec<IpNet>,
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
    /// The media address policy (control::addrpolicy) this configuration implies: the
    /// relay's own addresses and sockets, lab mode when a media interface is loopback,
    /// and the operator's lists.
    pub fn address_policy(&self) -> Result<AddressPolicy, String> {
        let mut own = Vec::new();
        for i in &self.engine.interfaces {
            own.extend([i.local, i.advertised]);
        }
        own.push(self.listen_ng.ip());
        own.extend(self.listen_http.map(|a| a.ip()));
        own.retain(|ip| !ip.is_unspecified());
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
            },
            backend,
            xdp_interfaces,
            listen_ng: parse_addr(
                "listen-ng",
                &cli.listen_ng.clone().or(file.listen_ng.clone()).unwrap_or_else(|| "127.0.0.1:2223".into()),
            )?,
            listen_http,
            tos: cli.tos.or(file.tos).unwrap_or(184),
            workers,
            cpus,
            worker_priority,
            relatch_after_ms: cli.relatch_after.or(file.relatch_after).unwrap_or(2000),
            srtp_replay_window,
            media_allow,
            media_deny,
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
    }
}
