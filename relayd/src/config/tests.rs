use super::*;

#[test]
fn flags_override_file() {
    let dir = std::env::temp_dir().join(format!("relayd-cfg-{}", std::process::id()));
    std::fs::write(
        &dir,
        "interface = [\"pub/127.0.0.1!203.0.113.1\"]\nport-min = 20000\nport-max = 20100\ntimeout = 5\n",
    )
    .unwrap();
    let cli = Options { config: Some(dir.clone()), port_max: Some(20200), ..Default::default() };
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
    let cli = Options { port_min: Some(5000), port_max: Some(4000), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("port range"));
    let cli = Options { interface: Some(vec!["x/1.2.3".into()]), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("not an IP"));
    let cli = Options { listen_ng: Some("nope".into()), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("listen-ng"));
    let cli = Options { srtp_replay_window: Some(5000), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("srtp-replay-window"));
    let cli = Options { srtp_replay_window: Some(512), ..Default::default() };
    assert_eq!(Config::load(&cli).unwrap().srtp_replay_window, 512);
    let cli = Options { media_deny: Some(vec!["10.0.0.0/33".into()]), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("media-deny"));
}

#[test]
fn the_http_token_comes_from_a_flag_or_a_file() {
    assert!(Config::load(&Options::default()).unwrap().http.token.is_none());
    let cli =
        Options { http_token: Some("abc".into()), http_host: Some(vec!["relay.example".into()]), ..Default::default() };
    let c = Config::load(&cli).unwrap();
    assert_eq!((c.http.token.as_deref(), c.http.hosts.clone()), (Some("abc"), vec!["relay.example".to_string()]));
    assert!(!format!("{c:?}").contains("abc"), "Debug prints the token");
    let dir = std::env::temp_dir().join(format!("relayd-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "s3cret\n").unwrap();
    let conf = dir.join("relayd.toml");
    std::fs::write(&conf, format!("http-token-file = {:?}\nhttp-host = [\"a.example\"]\n", dir.join("token"))).unwrap();
    let c = Config::load(&Options { config: Some(conf.clone()), ..Default::default() }).unwrap();
    assert_eq!((c.http.token.as_deref(), c.http.hosts.clone()), (Some("s3cret"), vec!["a.example".to_string()]));
    std::fs::write(dir.join("token"), "\n").unwrap();
    assert!(Config::load(&Options { config: Some(conf.clone()), ..Default::default() }).unwrap_err().contains("empty"));
    let cli = Options { http_token_file: Some(dir.join("nope")), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("http-token-file"));
    let cli = Options { http_token: Some("a b".into()), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("printable"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn control_plane_limits_and_ng_allow() {
    let c = Config::load(&Options::default()).unwrap();
    assert_eq!(
        (c.engine.max_media_per_sdp, c.engine.max_monologues_per_call, c.engine.max_calls, c.engine.max_id_length),
        (32, 16, 20000, 256)
    );
    assert_eq!((c.engine.final_timeout, c.ng_cache_bytes, c.ng_allow.len()), (14400, 32 << 20, 0));
    let cli = Options {
        ng_allow: Some(vec!["10.0.0.0/8".into(), "192.0.2.7".into()]),
        max_media_per_sdp: Some(8),
        max_id_length: Some(64),
        ng_cache_mb: Some(4),
        ..Default::default()
    };
    let c = Config::load(&cli).unwrap();
    assert_eq!((c.engine.max_media_per_sdp, c.engine.max_id_length, c.ng_cache_bytes), (8, 64, 4 << 20));
    assert_eq!(c.ng_allow, vec!["10.0.0.0/8".parse::<IpNet>().unwrap(), "192.0.2.7/32".parse().unwrap()]);
    let cli = Options { ng_allow: Some(vec!["nope".into()]), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("ng-allow"));
    let cli = Options { max_calls: Some(0), ..Default::default() };
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
    let c = Config::load(&Options::default()).unwrap();
    assert_eq!((c.cpus.clone(), c.workers), (own.clone(), own.len()));
    let cli = Options { cpus: Some("0-1".parse().unwrap()), workers: Some(3), ..Default::default() };
    assert_eq!(Config::load(&cli).map(|c| (c.cpus, c.workers)).unwrap(), (vec![0, 1], 3));
}

#[test]
fn the_address_policy_knows_the_relays_own_sockets() {
    let cli = Options {
        interface: Some(vec!["pub/192.0.2.1!203.0.113.1".into(), "priv/10.0.0.1".into()]),
        listen_ng: Some("10.0.0.1:2223".into()),
        media_allow: Some(vec!["169.254.0.0/16".into()]),
        media_deny: Some(vec!["198.18.0.0/15".into()]),
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
    let lab = Config::load(&Options::default()).unwrap();
    assert!(lab.engine.media_policy.lab_loopback);
    assert!(lab.engine.media_policy.check(a("127.0.0.1:5000")).is_ok());
    assert!(lab.engine.media_policy.check(a("127.0.0.1:2223")).is_err());
    assert!(lab.engine.media_policy.check(a("127.0.0.1:9900")).is_err());
    assert!(lab.engine.media_policy.check(a("127.0.0.1:30000")).is_err());
    let wild = Options { listen_ng: Some("0.0.0.0:2223".into()), ..Default::default() };
    let wild = Config::load(&wild).unwrap();
    assert!(wild.engine.media_policy.check(a("127.0.0.5:2223")).is_err(), "a wildcard ng socket is reached");
    assert!(lab.engine.media_policy.check(a("127.0.0.5:2223")).is_ok(), "ng on 127.0.0.1 is not");
}

#[test]
fn the_command_line_beats_the_file_beats_the_defaults() {
    let path = std::env::temp_dir().join(format!("relayd-layers-{}", std::process::id()));
    std::fs::write(&path, "timeout = 5\ntos = 10\nbackend = \"uring\"\ncpus = [0]\nmedia-deny = [\"198.18.0.0/15\"]\n")
        .unwrap();
    let cli = Options {
        config: Some(path.clone()),
        timeout: Some(7),
        backend: Some(Backend::Xdp),
        media_deny: Some(vec!["10.0.0.0/8".into()]),
        ..Default::default()
    };
    let c = Config::load(&cli).unwrap();
    assert_eq!((c.engine.timeout, c.tos, c.backend, c.cpus.clone()), (7, 10, Backend::Xdp, vec![0]));
    assert_eq!(c.media_deny, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    let d = Options::defaults();
    assert_eq!(Some(c.engine.silent_timeout), d.silent_timeout);
    assert_eq!(Some(c.relatch_after_ms), d.relatch_after);
    assert_eq!(Some(c.srtp_replay_window), d.srtp_replay_window);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_defaults_are_the_owning_crates_constants() {
    let c = Config::load(&Options::default()).unwrap();
    let f = relay_core::flow::FlowSettings::default();
    assert_eq!(
        (c.relatch_after_ms, c.latch_grace_ms, c.srtp_replay_window),
        (f.relatch_after_ms, f.latch_grace_ms, f.replay_window)
    );
    let e = EngineConfig::default();
    assert_eq!((c.engine.port_min, c.engine.port_max, c.engine.timeout), (e.port_min, e.port_max, e.timeout));
    assert_eq!(c.engine.interfaces, e.interfaces);
    assert_eq!(c.ng_cache_bytes, control::ng::DEFAULT_CACHE_BYTES);
    assert_eq!(c.listen_ng.to_string(), control::ng::DEFAULT_LISTEN);
    assert_eq!(c.listen_http.map(|a| a.to_string()).as_deref(), Some(control::http::DEFAULT_LISTEN));
    assert_eq!((c.tos, c.backend, c.worker_priority), (DEFAULT_TOS, Backend::Auto, DEFAULT_WORKER_PRIORITY));
    // --print-config-defaults writes a file that reads back as the same defaults
    let printed: Options = toml::from_str(&Options::defaults_toml().unwrap()).unwrap();
    assert_eq!(printed, Options::defaults());
}

/// Each flag is the file key of the same name, except the few only a command line takes.
#[test]
fn every_flag_is_a_file_key_of_the_same_name() {
    use clap::CommandFactory;
    let cmd = Options::command();
    let longs: Vec<&str> =
        cmd.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != "help" && *l != "version").collect();
    assert!(longs.len() > 30);
    for only in COMMAND_LINE_ONLY {
        assert!(longs.contains(only), "{only} is not a flag");
    }
    for long in longs {
        // a value of the wrong type is fine: what matters is whether the key is known
        let err = toml::from_str::<Options>(&format!("{long} = -1\n")).err().map(|e| e.to_string()).unwrap_or_default();
        let known = !err.contains("unknown field");
        assert_eq!(known, !COMMAND_LINE_ONLY.contains(&long), "--{long}: {err}");
    }
}

#[test]
fn quality_thresholds_from_flags_or_file() {
    let c = Config::load(&Options::default()).unwrap();
    assert_eq!(c.engine.quality, control::quality::Thresholds::default());
    let cli = Options { quality_max_loss_percent: Some(1.5), quality_max_delay_ms: Some(80), ..Default::default() };
    let c = Config::load(&cli).unwrap();
    assert_eq!(
        (c.engine.quality.max_loss_percent, c.engine.quality.max_delay_ms, c.engine.quality.max_jitter_ms),
        (1.5, 80, 20)
    );
    let cli = Options { quality_max_loss_percent: Some(101.0), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("quality-max-loss-percent"));
    let dir = std::env::temp_dir().join(format!("relayd-quality-{}", std::process::id()));
    std::fs::write(&dir, "quality-max-jitter-ms = 30\nquality-max-loss-percent = 2\n").unwrap();
    let c = Config::load(&Options { config: Some(dir.clone()), ..Default::default() }).unwrap();
    assert_eq!((c.engine.quality.max_jitter_ms, c.engine.quality.max_loss_percent), (30, 2.0));
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn the_state_store_is_on_by_default_and_off_with_no_state_or_an_empty_dir() {
    let c = Config::load(&Options::default()).unwrap();
    assert_eq!(c.state_dir.as_deref(), Some(std::path::Path::new(DEFAULT_STATE_DIR)));
    assert!(!c.state_dir_explicit);
    assert_eq!(c.state_interval_ms, DEFAULT_STATE_INTERVAL_MS);
    let c = Config::load(&Options { no_state: true, ..Default::default() }).unwrap();
    assert_eq!(c.state_dir, None);
    let c = Config::load(&Options { state_dir: Some(String::new()), ..Default::default() }).unwrap();
    assert_eq!(c.state_dir, None);
    let c = Config::load(&Options { state_dir: Some("/srv/relayd".into()), ..Default::default() }).unwrap();
    assert!(c.state_dir_explicit);
    let cli = Options { state_interval: Some(0), ..Default::default() };
    assert!(Config::load(&cli).unwrap_err().contains("state-interval"));
}
