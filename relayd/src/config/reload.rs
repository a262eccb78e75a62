//! SIGHUP: what a changed relayd.toml may change in a running relay. Settings the engine
//! reads on every request or tick (timeouts, limits), the ng source list, the HTTP token
//! and the log level take effect at once, without touching a call. Settings the sockets,
//! the data plane's flow tables or the backend were built from (interfaces, ports,
//! listen addresses, backend, workers, latching, address policy) need a restart: a
//! reload logs them as such and keeps the running value, so the running relay always
//! matches one consistent configuration.
//!
//! [`diff`] is pure: the running and the newly loaded configuration in, the configuration
//! to run with and the list of changes out.

use std::fmt;

use control::engine::EngineConfig;

use super::Config;

/// How a changed key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Applied by the reload.
    Live,
    /// Kept at the running value until relayd restarts.
    Restart,
}

/// One key whose value differs between the running and the reloaded configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub old: String,
    pub new: String,
    pub effect: Effect,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.effect {
            Effect::Live => write!(f, "{}: {} -> {} (applied)", self.key, self.old, self.new),
            Effect::Restart => {
                write!(f, "{}: {} -> {} needs a restart; keeping {} until then", self.key, self.old, self.new, self.old)
            }
        }
    }
}

/// The result of a reload: the configuration to run with from now on (the running one
/// with every live key taken from the file) and what changed.
#[derive(Debug, Clone)]
pub struct Reload {
    pub config: Config,
    pub changes: Vec<Change>,
}

impl Reload {
    pub fn applied(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.effect == Effect::Live)
    }
    pub fn need_restart(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.effect == Effect::Restart)
    }
}

/// A key of the configuration: how to show its value and, for a live key, how to take it.
struct Key {
    name: &'static str,
    show: fn(&Config) -> String,
    /// Copy the value from the reloaded configuration into the running one (None:
    /// restart only).
    take: Option<fn(&mut Config, &Config)>,
    /// The value is a secret: logged as "<set>"/"<none>"/"<changed>" only.
    secret: bool,
}

fn list<T: fmt::Display>(v: &[T]) -> String {
    format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
}

macro_rules! live {
    ($name:literal, $($f:ident).+) => {
        Key {
            name: $name,
            show: |c| format!("{:?}", c.$($f).+),
            take: Some(|run, new| run.$($f).+ = new.$($f).+.clone()),
            secret: false,
        }
    };
}

macro_rules! restart {
    ($name:literal, $show:expr) => {
        Key { name: $name, show: $show, take: None, secret: false }
    };
}

/// Every key relayd.toml has, live or not. Quality thresholds, when the configuration
/// has them, are live (the engine reads them when a report arrives).
const KEYS: &[Key] = &[
    live!("log-level", log_level),
    live!("timeout", engine.timeout),
    live!("silent-timeout", engine.silent_timeout),
    live!("final-timeout", engine.final_timeout),
    live!("delete-delay", engine.delete_delay),
    live!("max-calls", engine.max_calls),
    live!("max-media-per-sdp", engine.max_media_per_sdp),
    live!("max-monologues-per-call", engine.max_monologues_per_call),
    live!("max-id-length", engine.max_id_length),
    live!("quality-max-delay-ms", engine.quality.max_delay_ms),
    live!("quality-max-loss-percent", engine.quality.max_loss_percent),
    live!("quality-max-jitter-ms", engine.quality.max_jitter_ms),
    Key {
        name: "ng-allow",
        show: |c| list(&c.ng_allow),
        take: Some(|run, new| run.ng_allow = new.ng_allow.clone()),
        secret: false,
    },
    Key {
        name: "http-token",
        show: |c| c.http.token.clone().unwrap_or_default(),
        take: Some(|run, new| run.http.token = new.http.token.clone()),
        secret: true,
    },
    restart!("interface", |c| list(&c.engine.interfaces)),
    restart!("port-min", |c| c.engine.port_min.to_string()),
    restart!("port-max", |c| c.engine.port_max.to_string()),
    restart!("backend", |c| format!("{:?}", c.backend).to_lowercase()),
    restart!("xdp-interface", |c| list(&c.xdp_interfaces)),
    restart!("listen-ng", |c| c.listen_ng.to_string()),
    restart!("listen-http", |c| c.listen_http.map(|a| a.to_string()).unwrap_or_else(|| "none".into())),
    restart!("http-host", |c| list(&c.http.hosts)),
    restart!("tos", |c| c.tos.to_string()),
    restart!("workers", |c| c.workers.to_string()),
    restart!("cpus", |c| list(&c.cpus)),
    restart!("worker-priority", |c| c.worker_priority.to_string()),
    restart!("relatch-after", |c| c.relatch_after_ms.to_string()),
    restart!("latch-grace", |c| c.latch_grace_ms.to_string()),
    restart!("srtp-replay-window", |c| c.srtp_replay_window.to_string()),
    restart!("media-allow", |c| list(&c.media_allow)),
    restart!("media-deny", |c| list(&c.media_deny)),
    restart!("ng-cache-mb", |c| (c.ng_cache_bytes >> 20).to_string()),
    restart!("state-dir", |c| c.state_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default()),
    restart!("state-interval", |c| c.state_interval_ms.to_string()),
    restart!("recording-dir", |c| c.recording_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default()),
];

/// What reloading `new` into a relay running `running` does.
pub fn diff(running: &Config, new: &Config) -> Reload {
    let mut config = running.clone();
    let mut changes = Vec::new();
    for k in KEYS {
        let (old, now) = ((k.show)(running), (k.show)(new));
        if old == now {
            continue;
        }
        let effect = match k.take {
            Some(take) => {
                take(&mut config, new);
                Effect::Live
            }
            None => Effect::Restart,
        };
        let (old, now) = if k.secret { secret_change(&old, &now) } else { (old, now) };
        changes.push(Change { key: k.name, old, new: now, effect });
    }
    Reload { config, changes }
}

fn secret_change(old: &str, new: &str) -> (String, String) {
    let show = |s: &str| if s.is_empty() { "<none>" } else { "<set>" };
    match (old.is_empty(), new.is_empty()) {
        (false, false) => ("<set>".into(), "<changed>".into()),
        _ => (show(old).into(), show(new).into()),
    }
}

/// SIGHUP: load the file (and the token file) again with the same command line, log what
/// changed, and return the configuration to run with from now on; None (logged) when the
/// file does not load, so a broken edit changes nothing.
pub fn reload(cli: &super::Options, running: &Config) -> Option<Config> {
    let new = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload: {e}; keeping the running configuration");
            return None;
        }
    };
    let r = diff(running, &new);
    if r.changes.is_empty() {
        log::info!("reload: nothing changed");
    }
    for c in &r.changes {
        match c.effect {
            Effect::Live => log::info!("reload: {c}"),
            Effect::Restart => log::warn!("reload: {c}"),
        }
    }
    Some(r.config)
}

impl Config {
    /// Copy the settings the engine reads live from this configuration into the
    /// engine's (under the engine lock, after a reload).
    pub fn apply_live(&self, e: &mut EngineConfig) {
        e.timeout = self.engine.timeout;
        e.silent_timeout = self.engine.silent_timeout;
        e.final_timeout = self.engine.final_timeout;
        e.delete_delay = self.engine.delete_delay;
        e.max_calls = self.engine.max_calls;
        e.max_media_per_sdp = self.engine.max_media_per_sdp;
        e.max_monologues_per_call = self.engine.max_monologues_per_call;
        e.max_id_length = self.engine.max_id_length;
        e.quality = self.engine.quality;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Options;
    use super::*;

    fn config(toml: &str) -> Config {
        let file: Options = toml::from_str(toml).unwrap();
        Config::resolve(file.or(Options::defaults())).unwrap()
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let c = config("timeout = 30");
        let r = diff(&c, &config("timeout = 30"));
        assert!(r.changes.is_empty());
    }

    #[test]
    fn live_keys_are_applied() {
        let run = config("timeout = 30\nlog-level = \"info\"\nmax-calls = 100");
        let new = config("timeout = 90\nlog-level = \"debug\"\nmax-calls = 200\nng-allow = [\"10.0.0.0/8\"]");
        let r = diff(&run, &new);
        assert_eq!(r.applied().count(), 4, "{:?}", r.changes);
        assert_eq!(r.need_restart().count(), 0);
        assert_eq!(r.config.engine.timeout, 90);
        assert_eq!(r.config.log_level, log::LevelFilter::Debug);
        assert_eq!(r.config.engine.max_calls, 200);
        assert_eq!(r.config.ng_allow.len(), 1);
        let timeout = r.changes.iter().find(|c| c.key == "timeout").unwrap();
        assert_eq!(timeout.to_string(), "timeout: 30 -> 90 (applied)");
        let mut e = EngineConfig::default();
        r.config.apply_live(&mut e);
        assert_eq!((e.timeout, e.max_calls), (90, 200));
    }

    #[test]
    fn restart_keys_keep_the_running_value() {
        let run = config("interface = [\"10.0.0.1\"]\nport-min = 30000\nbackend = \"uring\"\ntimeout = 30");
        let new = config(
            "interface = [\"10.0.0.2\"]\nport-min = 31000\nbackend = \"xdp\"\nlisten-ng = \"127.0.0.1:2999\"\ntimeout = 40",
        );
        let r = diff(&run, &new);
        let restart: Vec<_> = r.need_restart().map(|c| c.key).collect();
        assert_eq!(restart, ["interface", "port-min", "backend", "listen-ng"]);
        assert_eq!(r.config.engine.interfaces, run.engine.interfaces);
        assert_eq!(r.config.engine.port_min, 30000);
        assert_eq!(r.config.backend, run.backend);
        assert_eq!(r.config.listen_ng, run.listen_ng);
        // the live key in the same reload still applies
        assert_eq!(r.config.engine.timeout, 40);
        let backend = r.changes.iter().find(|c| c.key == "backend").unwrap();
        assert_eq!(backend.to_string(), "backend: uring -> xdp needs a restart; keeping uring until then");
    }

    #[test]
    fn the_token_changes_but_never_shows() {
        let dir = std::env::temp_dir().join(format!("relayd-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "old-secret\n").unwrap();
        let toml = format!("http-token-file = {:?}", f.display().to_string());
        let run = config(&toml);
        std::fs::write(&f, "new-secret\n").unwrap();
        let r = diff(&run, &config(&toml));
        assert_eq!(r.config.http.token.as_deref(), Some("new-secret"));
        let line = r.changes[0].to_string();
        assert_eq!(line, "http-token: <set> -> <changed> (applied)");
        assert!(!format!("{:?}", r.changes).contains("secret"));
        assert_eq!(diff(&config(""), &run).changes[0].to_string(), "http-token: <none> -> <set> (applied)");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The packaged /etc/relayd/relayd.toml (docs/relayd.example.toml) loads, and a
    /// reload knows each key it sets.
    #[test]
    fn the_packaged_example_loads_and_every_key_is_classified() {
        let text = include_str!("../../../docs/relayd.example.toml");
        let file: Options = toml::from_str(text).unwrap();
        Config::resolve(file.or(Options::defaults())).unwrap();
        let table: toml::Table = toml::from_str(text).unwrap();
        for key in table.keys() {
            assert!(KEYS.iter().any(|k| k.name == key), "{key}");
        }
    }

    /// Every key of the file is in the table: a new option must say whether a reload
    /// applies it.
    #[test]
    fn every_file_key_is_classified() {
        let toml = toml::to_string(&Options::defaults()).unwrap();
        let value: toml::Table = toml::from_str(&toml).unwrap();
        let mut file_keys: Vec<String> = value.keys().cloned().collect();
        // keys without a default are still keys of the file
        file_keys.extend(
            [
                "http-token-file",
                "http-host",
                "workers",
                "cpus",
                "xdp-interface",
                "media-allow",
                "media-deny",
                "ng-allow",
            ]
            .map(String::from),
        );
        for k in file_keys {
            // the token file is the http-token key's source
            let k = if k == "http-token-file" { "http-token".to_string() } else { k };
            assert!(KEYS.iter().any(|key| key.name == k), "{k} is not classified live or restart in reload.rs");
        }
    }
}
