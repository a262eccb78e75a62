//! What relayd can be told, written once: clap fills [`Options`] from the command line,
//! serde from the TOML file (`--config`), under the same kebab-case names. Every field is
//! optional, so the sources stack with [`Options::or`] — command line over file over
//! [`Options::defaults`] — and one step, [`Config::resolve`](super::Config::resolve),
//! checks the result and turns it into typed settings.
//!
//! The defaults are not clap `default_value`s on purpose: a flag clap filled in would hide
//! the file's key of the same name.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Parser;
use serde::{Deserialize, Serialize};

use control::engine::EngineConfig;

use super::parse::parse_cpu_list;

/// Default TOS / traffic class of relayed media: DSCP EF (46 << 2).
pub const DEFAULT_TOS: u8 = 184;
/// Default log level.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default SCHED_FIFO priority of the data-plane workers: none (normal scheduling).
pub const DEFAULT_WORKER_PRIORITY: u8 = 0;

/// The options only the command line takes; every other flag is also a key of the file.
pub const COMMAND_LINE_ONLY: &[&str] =
    &["config", "print-config-defaults", "http-token", "foreground", "table", "no-state"];
/// Where the state store keeps calls by default (relayd's `store`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/relayd";
/// How often the state store writes the calls that changed, in milliseconds.
pub const DEFAULT_STATE_INTERVAL_MS: u64 = 1000;

/// Which data path moves the media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Xdp,
    Uring,
    Auto,
}

/// CPUs as the command line writes them (`--cpus 0-3,6`) or the file (`cpus = [0, 1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CpuList(pub Vec<usize>);

impl FromStr for CpuList {
    type Err = String;
    fn from_str(s: &str) -> Result<CpuList, String> {
        parse_cpu_list(s).map(CpuList)
    }
}

/// Every option relayd takes. A field without `#[serde(skip)]` is also a key of the file
/// ([`COMMAND_LINE_ONLY`] names the others).
#[derive(Parser, Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[command(name = "relayd", version, about = "RTP/RTCP media relay driven by the rtpengine ng protocol")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// TOML configuration file (flags override it)
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print the built-in defaults as a configuration file and exit
    #[arg(long)]
    #[serde(skip)]
    pub print_config_defaults: bool,
    /// Media interface NAME/IP[!ADVERTISED] (repeatable; a bare IP is interface "default")
    #[arg(long, short = 'i')]
    pub interface: Option<Vec<String>>,
    /// ng control protocol address (UDP)
    #[arg(long, short = 'n')]
    pub listen_ng: Option<String>,
    /// HTTP API and /metrics address (TCP); "none" disables it
    #[arg(long)]
    pub listen_http: Option<String>,
    /// Bearer token the HTTP API requires for state-changing requests (terminate); without
    /// one they are refused. A flag shows in `ps`: prefer --http-token-file
    #[arg(long)]
    #[serde(skip)]
    pub http_token: Option<String>,
    /// File holding the HTTP API token (surrounding whitespace ignored)
    #[arg(long)]
    pub http_token_file: Option<PathBuf>,
    /// Host name the HTTP API answers to besides IP addresses and localhost (repeatable)
    #[arg(long)]
    pub http_host: Option<Vec<String>>,
    /// Lowest media port (RTP even, RTCP = RTP + 1)
    #[arg(long, short = 'm')]
    pub port_min: Option<u16>,
    /// Highest media port
    #[arg(long, short = 'M')]
    pub port_max: Option<u16>,
    /// Seconds without media before a call is torn down
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Seconds without media for calls on hold
    #[arg(long)]
    pub silent_timeout: Option<u64>,
    /// Maximum call duration in seconds (0: unlimited)
    #[arg(long)]
    pub final_timeout: Option<u64>,
    /// Seconds a deleted call lingers
    #[arg(long)]
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
    pub cpus: Option<CpuList>,
    /// Data path backend: xdp (XDP steering + AF_XDP workers), uring (io_uring sockets), or
    /// auto (xdp where the program attaches in native mode, uring otherwise)
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Network interface for the xdp backend (repeatable, one per relay interface; default:
    /// the interfaces holding the --interface addresses)
    #[arg(long)]
    pub xdp_interface: Option<Vec<String>>,
    /// SCHED_FIFO priority (1-99) for the data-plane workers; 0: normal scheduling
    #[arg(long)]
    pub worker_priority: Option<u8>,
    /// Milliseconds of silence from a latched peer before another source may take over
    #[arg(long)]
    pub relatch_after: Option<u64>,
    /// Milliseconds an unexpected source must be the only one sending before it may
    /// latch a new flow (a packet from the signalled or SIP source address latches at once)
    #[arg(long)]
    pub latch_grace: Option<u64>,
    /// SRTP/SRTCP replay window in packets (1-1024)
    #[arg(long)]
    pub srtp_replay_window: Option<u32>,
    /// Media peers allowed although their class is denied (CIDR, repeatable: e.g. a lab's
    /// 127.0.0.0/8 or a link-local segment); never lifts the relay's own sockets
    #[arg(long)]
    pub media_allow: Option<Vec<String>>,
    /// Media peers always refused (CIDR, repeatable)
    #[arg(long)]
    pub media_deny: Option<Vec<String>>,
    /// Sources allowed to send ng commands (address or CIDR, repeatable; default: all)
    #[arg(long)]
    pub ng_allow: Option<Vec<String>>,
    /// Bytes the ng reply cache (retransmissions) may hold, in MiB
    #[arg(long)]
    pub ng_cache_mb: Option<usize>,
    /// Media sections (m= lines) one SDP may have
    #[arg(long)]
    pub max_media_per_sdp: Option<usize>,
    /// Monologues (tags) one call may have
    #[arg(long)]
    pub max_monologues_per_call: Option<usize>,
    /// Calls the relay keeps at once
    #[arg(long)]
    pub max_calls: Option<usize>,
    /// Longest call-id, tag, label and ng cookie in bytes
    #[arg(long)]
    pub max_id_length: Option<usize>,
    /// Directory for call recordings (rtpengine's pcap layout: subdirectories metadata, pcaps, tmp);
    /// without it, recording requests are refused
    #[arg(long)]
    pub recording_dir: Option<PathBuf>,
    /// Call quality: a leg whose one-way delay (half the RTCP round trip) is above this is poor (ms)
    #[arg(long)]
    pub quality_max_delay_ms: Option<u64>,
    /// Call quality: a leg losing more than this percentage (relay's count or the party's report) is poor
    #[arg(long)]
    pub quality_max_loss_percent: Option<f64>,
    /// Call quality: a leg whose jitter (relay's or the party's) is above this is poor (ms)
    #[arg(long)]
    pub quality_max_jitter_ms: Option<u64>,
    /// error, warn, info, debug, trace, or a syslog number 0-7
    #[arg(long, short = 'L')]
    pub log_level: Option<String>,
    /// Directory of the state store: calls survive a restart ("" disables it)
    #[arg(long)]
    pub state_dir: Option<String>,
    /// Keep no state: a restart drops every call (as --state-dir "")
    #[arg(long)]
    #[serde(skip)]
    pub no_state: bool,
    /// Milliseconds between writes of the state store
    #[arg(long)]
    pub state_interval: Option<u64>,
    /// Accepted for rtpengine compatibility; relayd always runs in the foreground
    #[arg(long, short = 'f')]
    #[serde(skip)]
    pub foreground: bool,
    /// Accepted for rtpengine compatibility (relayd has no kernel table)
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip)]
    pub table: Option<i32>,
}

impl Options {
    /// The built-in defaults, each from the constant of the crate that owns the setting
    /// (relay_core::flow, relay_core::srtp, control's EngineConfig, ng and http). Unset
    /// here: what is derived at start (workers, cpus, xdp-interface) and what has no
    /// value by default (the token, the host names, the address lists).
    pub fn defaults() -> Options {
        let engine = EngineConfig::default();
        Options {
            interface: Some(engine.interfaces.iter().map(|i| i.to_string().replace("default/", "")).collect()),
            listen_ng: Some(control::ng::DEFAULT_LISTEN.into()),
            listen_http: Some(control::http::DEFAULT_LISTEN.into()),
            port_min: Some(engine.port_min),
            port_max: Some(engine.port_max),
            timeout: Some(engine.timeout),
            silent_timeout: Some(engine.silent_timeout),
            final_timeout: Some(engine.final_timeout),
            delete_delay: Some(engine.delete_delay),
            tos: Some(DEFAULT_TOS),
            backend: Some(Backend::Auto),
            worker_priority: Some(DEFAULT_WORKER_PRIORITY),
            relatch_after: Some(relay_core::flow::DEFAULT_RELATCH_AFTER_MS),
            latch_grace: Some(relay_core::flow::DEFAULT_LATCH_GRACE_MS),
            srtp_replay_window: Some(relay_core::srtp::DEFAULT_REPLAY_WINDOW),
            ng_cache_mb: Some(control::ng::DEFAULT_CACHE_BYTES >> 20),
            max_media_per_sdp: Some(engine.max_media_per_sdp),
            max_monologues_per_call: Some(engine.max_monologues_per_call),
            max_calls: Some(engine.max_calls),
            max_id_length: Some(engine.max_id_length),
            quality_max_delay_ms: Some(engine.quality.max_delay_ms),
            quality_max_loss_percent: Some(engine.quality.max_loss_percent),
            quality_max_jitter_ms: Some(engine.quality.max_jitter_ms),
            log_level: Some(DEFAULT_LOG_LEVEL.into()),
            state_dir: Some(DEFAULT_STATE_DIR.into()),
            state_interval: Some(DEFAULT_STATE_INTERVAL_MS),
            ..Options::default()
        }
    }

    /// The options of a configuration file.
    pub fn from_file(path: &Path) -> Result<Options, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// These options, each one that is unset taken from `below`: `cli.or(file)`.
    pub fn or(self, below: Options) -> Options {
        // a struct literal without `..`: a new field does not compile until it is merged
        Options {
            config: self.config.or(below.config),
            print_config_defaults: self.print_config_defaults || below.print_config_defaults,
            interface: self.interface.or(below.interface),
            listen_ng: self.listen_ng.or(below.listen_ng),
            listen_http: self.listen_http.or(below.listen_http),
            http_token: self.http_token.or(below.http_token),
            http_token_file: self.http_token_file.or(below.http_token_file),
            http_host: self.http_host.or(below.http_host),
            port_min: self.port_min.or(below.port_min),
            port_max: self.port_max.or(below.port_max),
            timeout: self.timeout.or(below.timeout),
            silent_timeout: self.silent_timeout.or(below.silent_timeout),
            final_timeout: self.final_timeout.or(below.final_timeout),
            delete_delay: self.delete_delay.or(below.delete_delay),
            tos: self.tos.or(below.tos),
            workers: self.workers.or(below.workers),
            cpus: self.cpus.or(below.cpus),
            backend: self.backend.or(below.backend),
            xdp_interface: self.xdp_interface.or(below.xdp_interface),
            worker_priority: self.worker_priority.or(below.worker_priority),
            relatch_after: self.relatch_after.or(below.relatch_after),
            latch_grace: self.latch_grace.or(below.latch_grace),
            srtp_replay_window: self.srtp_replay_window.or(below.srtp_replay_window),
            media_allow: self.media_allow.or(below.media_allow),
            media_deny: self.media_deny.or(below.media_deny),
            ng_allow: self.ng_allow.or(below.ng_allow),
            ng_cache_mb: self.ng_cache_mb.or(below.ng_cache_mb),
            max_media_per_sdp: self.max_media_per_sdp.or(below.max_media_per_sdp),
            max_monologues_per_call: self.max_monologues_per_call.or(below.max_monologues_per_call),
            max_calls: self.max_calls.or(below.max_calls),
            max_id_length: self.max_id_length.or(below.max_id_length),
            recording_dir: self.recording_dir.or(below.recording_dir),
            quality_max_delay_ms: self.quality_max_delay_ms.or(below.quality_max_delay_ms),
            quality_max_loss_percent: self.quality_max_loss_percent.or(below.quality_max_loss_percent),
            quality_max_jitter_ms: self.quality_max_jitter_ms.or(below.quality_max_jitter_ms),
            log_level: self.log_level.or(below.log_level),
            state_dir: self.state_dir.or(below.state_dir),
            no_state: self.no_state || below.no_state,
            state_interval: self.state_interval.or(below.state_interval),
            foreground: self.foreground || below.foreground,
            table: self.table.or(below.table),
        }
    }

    /// The defaults as a configuration file (`relayd --print-config-defaults`).
    pub fn defaults_toml() -> Result<String, String> {
        let toml = toml::to_string(&Options::defaults()).map_err(|e| e.to_string())?;
        Ok(format!("# relayd's built-in defaults (workers, cpus and xdp-interface are derived at start)\n{toml}"))
    }
}
