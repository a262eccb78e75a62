//! The parsers behind [`Config::resolve`](super::Config::resolve): each names the option
//! in its error, as the operator wrote it.

use std::net::SocketAddr;
use std::path::Path;

use rules::addrpolicy::IpNet;

pub fn parse_nets(what: &str, list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{what}: {s:?} is not an address or CIDR prefix"))
        })
        .collect()
}

/// The HTTP API token: from the flag, else from the file the flag or the config names.
pub fn http_token(flag: Option<&str>, file: Option<&Path>) -> Result<Option<String>, String> {
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

pub fn parse_addr(what: &str, s: &str) -> Result<SocketAddr, String> {
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
