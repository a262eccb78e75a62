//! relayd configuration: command-line flags named like rtpengine's and a TOML file
//! (`--config`) with the same keys, both read into one [`Options`] struct; flags override
//! the file, the file overrides the defaults ([`Options::defaults`]), and
//! [`Config::resolve`] checks the result once and makes the typed [`Config`] the daemon
//! runs with. docs/configuration.md lists every option (tests/docs.rs keeps it true).

mod options;
mod parse;
pub mod reload;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use control::engine::EngineConfig;
use control::http::HttpOptions;
use control::interface::Interface;
use rules::addrpolicy::{AddressPolicy, IpNet};

pub use options::{
    Backend, CpuList, Options, COMMAND_LINE_ONLY, DEFAULT_LOG_LEVEL, DEFAULT_STATE_DIR, DEFAULT_STATE_INTERVAL_MS,
    DEFAULT_TOS, DEFAULT_WORKER_PRIORITY,
};
pub use parse::{allowed_cpus, default_cpus, parse_cpu_list, parse_log_level};
use parse::{http_token, parse_addr, parse_nets};

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
    /// Where call recordings are written (None: recording is refused).
    pub recording_dir: Option<std::path::PathBuf>,
    pub log_level: log::LevelFilter,
    /// The state store's directory (None: no store, `--no-state` / `state-dir = ""`).
    pub state_dir: Option<std::path::PathBuf>,
    /// The operator named the directory: failing to open it stops relayd (the default
    /// one only warns, so a relayd run by hand without /var/lib/relayd still starts).
    pub state_dir_explicit: bool,
    pub state_interval_ms: u64,
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
    pub fn address_policy(&self) -> AddressPolicy {
        let interfaces: Vec<_> = self.engine.interfaces.iter().map(|i| (i.local, i.advertised)).collect();
        let mut listen = vec![self.listen_ng];
        listen.extend(self.listen_http);
        AddressPolicy::for_relay(
            &interfaces,
            &listen,
            (self.engine.port_min, self.engine.port_max),
            self.media_allow.clone(),
            self.media_deny.clone(),
        )
    }

    /// The configuration the command line asks for: its flags over the file it names
    /// (`--config`) over the defaults.
    pub fn load(cli: &Options) -> Result<Config, String> {
        let file = match &cli.config {
            Some(p) => Options::from_file(p)?,
            None => Options::default(),
        };
        Config::resolve(cli.clone().or(file).or(Options::defaults()))
    }

    /// Checks merged options and makes the typed configuration; what has no fixed default
    /// (worker count, CPUs) is derived here, from the CPUs the process may run on.
    pub fn resolve(o: Options) -> Result<Config, String> {
        let interfaces = given(o.interface, "interface")?;
        let interfaces = interfaces.iter().map(|s| Interface::parse(s)).collect::<Result<Vec<_>, _>>()?;
        let (port_min, port_max) = (given(o.port_min, "port-min")?, given(o.port_max, "port-max")?);
        if port_min < 1024 || port_max <= port_min {
            return Err(format!("port range {port_min}-{port_max} is invalid (need 1024 <= port-min < port-max)"));
        }
        let backend = given(o.backend, "backend")?;
        let xdp_interfaces = o.xdp_interface.unwrap_or_default();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let allowed = default_cpus(&allowed_cpus(), cores);
        let workers = o.workers.unwrap_or(allowed.len());
        if workers == 0 {
            return Err("workers must be at least 1".into());
        }
        let cpus = o.cpus.map(|c| c.0).unwrap_or(allowed);
        let listen_http = match given(o.listen_http, "listen-http")? {
            s if s == "none" || s.is_empty() => None,
            s => Some(parse_addr("listen-http", &s)?),
        };
        let http = HttpOptions {
            token: http_token(o.http_token.as_deref(), o.http_token_file.as_deref())?,
            hosts: o.http_host.unwrap_or_default(),
            ..HttpOptions::default()
        };
        let worker_priority = given(o.worker_priority, "worker-priority")?;
        if worker_priority > 99 {
            return Err(format!("worker-priority {worker_priority} is outside 0-99"));
        }
        let srtp_replay_window = given(o.srtp_replay_window, "srtp-replay-window")?;
        let max_window = relay_core::srtp::MAX_REPLAY_WINDOW;
        if !(1..=max_window).contains(&srtp_replay_window) {
            return Err(format!("srtp-replay-window {srtp_replay_window} is outside 1-{max_window}"));
        }
        let media_allow = parse_nets("media-allow", &o.media_allow.unwrap_or_default())?;
        let media_deny = parse_nets("media-deny", &o.media_deny.unwrap_or_default())?;
        let ng_allow = parse_nets("ng-allow", &o.ng_allow.unwrap_or_default())?;
        let at_least_1 = |v: Option<usize>, what: &str| match given(v, what)? {
            0 => Err(format!("{what} must be at least 1")),
            n => Ok(n),
        };
        let ng_cache_mb = at_least_1(o.ng_cache_mb, "ng-cache-mb")?;
        let max_media_per_sdp = at_least_1(o.max_media_per_sdp, "max-media-per-sdp")?;
        let max_monologues_per_call = at_least_1(o.max_monologues_per_call, "max-monologues-per-call")?;
        let max_calls = at_least_1(o.max_calls, "max-calls")?;
        let max_id_length = at_least_1(o.max_id_length, "max-id-length")?;
        let quality = quality_thresholds(o.quality_max_delay_ms, o.quality_max_loss_percent, o.quality_max_jitter_ms)?;
        let state_interval_ms = given(o.state_interval, "state-interval")?;
        if !(10..=60_000).contains(&state_interval_ms) {
            return Err(format!("state-interval {state_interval_ms} is outside 10-60000 (milliseconds)"));
        }
        let state_dir_given = given(o.state_dir, "state-dir")?;
        let state_dir_explicit = state_dir_given != DEFAULT_STATE_DIR;
        let state_dir = (!o.no_state && !state_dir_given.is_empty()).then(|| state_dir_given.into());
        let mut c = Config {
            engine: EngineConfig {
                interfaces,
                port_min,
                port_max,
                timeout: given(o.timeout, "timeout")?,
                silent_timeout: given(o.silent_timeout, "silent-timeout")?,
                final_timeout: given(o.final_timeout, "final-timeout")?,
                delete_delay: given(o.delete_delay, "delete-delay")?,
                media_policy: AddressPolicy::default(),
                max_media_per_sdp,
                max_monologues_per_call,
                max_calls,
                max_id_length,
                quality,
                ..EngineConfig::default()
            },
            backend,
            xdp_interfaces,
            listen_ng: parse_addr("listen-ng", &given(o.listen_ng, "listen-ng")?)?,
            listen_http,
            http,
            tos: given(o.tos, "tos")?,
            workers,
            cpus,
            worker_priority,
            relatch_after_ms: given(o.relatch_after, "relatch-after")?,
            latch_grace_ms: given(o.latch_grace, "latch-grace")?,
            srtp_replay_window,
            media_allow,
            media_deny,
            ng_allow,
            ng_cache_bytes: ng_cache_mb.saturating_mul(1 << 20),
            recording_dir: match o.recording_dir {
                Some(d) if d.as_os_str().is_empty() => return Err("recording-dir is empty".into()),
                d => d,
            },
            log_level: parse_log_level(&given(o.log_level, "log-level")?)?,
            state_dir,
            state_dir_explicit,
            state_interval_ms,
        };
        c.engine.media_policy = c.address_policy();
        Ok(c)
    }
}

/// A value [`Options::defaults`] provides: missing only if the options were not merged
/// with the defaults.
fn given<T>(v: Option<T>, key: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("{key}: no value and no default"))
}

/// The call quality thresholds (`quality-max-*`), checked.
fn quality_thresholds(
    delay: Option<u64>,
    loss: Option<f64>,
    jitter: Option<u64>,
) -> Result<control::quality::Thresholds, String> {
    let loss = given(loss, "quality-max-loss-percent")?;
    if !(0.0..=100.0).contains(&loss) {
        return Err(format!("quality-max-loss-percent {loss} is outside 0-100"));
    }
    Ok(control::quality::Thresholds {
        max_delay_ms: given(delay, "quality-max-delay-ms")?,
        max_loss_percent: loss,
        max_jitter_ms: given(jitter, "quality-max-jitter-ms")?,
    })
}
