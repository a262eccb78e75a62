//! The local HTTP/JSON API and Prometheus metrics. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /calls` | calls with totals |
//! | `GET /calls/{call-id}` | one call and its flows |
//! | `DELETE /calls/{call-id}` (or `POST .../terminate`) | tear a call down now (token) |
//! | `GET /calls/{call-id}/capture` | a live pcap of the call's packets, streamed (token; http_capture.rs) |
//! | `GET /flows` | every flow: counters, latched peer, state, age |
//! | `GET /stats` | control and data plane counters as JSON |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /status` | calls, drain, state store |
//! | `POST /drain` (`?off`, or `DELETE /drain`) | refuse new calls, or take them again (token) |
//!
//! This is the pure layer: [`route`] takes method, target and headers and gives a
//! [`Response`], no sockets (unit tests and the `http_request` fuzz target call it);
//! [`handle`] adds panic containment. The daemon serves it over HTTP/1.1 (relayd's
//! `http_server`: bounded request heads, deadlines, a bounded number of connections),
//! with the limits in [`HttpOptions`].
//!
//! The engine lock is held only to copy plain data out (call and flow skeletons, the
//! engine's counters, the data plane handle); data-plane counters are read and the reply
//! serialised after it is released. State-changing routes need `Authorization: Bearer
//! TOKEN` and are refused when no token is configured; every request's Host must be an IP
//! literal, `localhost` or a name the operator allowed (DNS rebinding). A panic in a
//! handler becomes a 500 reply, logged and counted (`relay_http_panics_total`).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::engine::{Engine, EngineStats};
use crate::views::Snapshot;
use rules::dataplane::{DataPlane, FlowCounters};

/// Where relayd serves the API by default (`--listen-http`), and where relayctl asks.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9900";

/// Limits and access rules of the HTTP API.
#[derive(Clone)]
pub struct HttpOptions {
    /// Bearer token for state-changing routes; `None` refuses them.
    pub token: Option<String>,
    /// Host names accepted besides IP literals and `localhost` (case-insensitive).
    pub hosts: Vec<String>,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of request line and headers.
    pub max_header_bytes: usize,
    /// Time a client has to send the request head.
    pub header_timeout: Duration,
    /// Time a connection may live in all: head, handling and writing the reply.
    pub connection_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            token: None,
            hosts: Vec::new(),
            max_connections: 32,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("hosts", &self.hosts)
            .field("max_connections", &self.max_connections)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("header_timeout", &self.header_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .finish()
    }
}

/// The API's own counters (in /metrics).
#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    pub panics: AtomicU64,
    /// State-changing requests without a valid token (or with none configured).
    pub refused_token: AtomicU64,
    /// Requests whose Host is not accepted.
    pub refused_host: AtomicU64,
    /// Connections turned away at the connection limit.
    pub refused_busy: AtomicU64,
    /// Connections closed at a deadline (request head or whole connection).
    pub timeouts: AtomicU64,
    /// Live captures started (`GET /calls/{id}/capture` answered with a stream).
    pub captures: AtomicU64,
}

/// What the HTTP API serves from: the engine, the access rules, the counters.
pub struct Api {
    pub engine: Arc<Mutex<Engine>>,
    pub opts: HttpOptions,
    pub stats: HttpStats,
    /// Live captures: their limits and how many run.
    pub captures: crate::http_capture::Captures,
    /// The token in force: `opts.token` at start, replaced by a reload (SIGHUP).
    token: std::sync::RwLock<Option<String>>,
}

impl Api {
    pub fn new(engine: Arc<Mutex<Engine>>, opts: HttpOptions) -> Api {
        let token = std::sync::RwLock::new(opts.token.clone());
        Api { engine, opts, stats: HttpStats::default(), captures: Default::default(), token }
    }

    /// A new token (relayd's reload): requests from now on need it.
    pub fn set_token(&self, token: Option<String>) {
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = token;
    }
}

/// A reply, before it meets a socket.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// A streamed body instead of `body` (live capture): the server writes what it
    /// yields until it ends, and drops it when the client goes away.
    pub stream: Option<crate::capture::CaptureStream>,
}

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4";

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response { status, content_type: JSON, body, stream: None }
    }
    pub(crate) fn error(status: u16, what: impl Into<String>) -> Response {
        Response::json(status, json!({ "error": what.into() }).to_string())
    }
}

/// Percent-decoding over bytes: a `%` not followed by two hex digits stays as it is,
/// and bytes that do not form UTF-8 become U+FFFD. Never panics.
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equal without an early exit on the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    std::hint::black_box(diff) == 0
}

/// Whether a Host (or absolute-form authority) names this relay: an IP literal,
/// `localhost`, or one of `allowed`; any port.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, port)) => {
                ip.parse::<Ipv6Addr>().is_ok()
                    && (port.is_empty()
                        || port.strip_prefix(':').is_some_and(|p| p.bytes().all(|c| c.is_ascii_digit())))
            }
            None => false,
        };
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
            Some(_) => return false,
            None => host,
        }
    };
    if name.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && (name.eq_ignore_ascii_case("localhost")
            || allowed.iter().any(|a| a.strip_suffix('.').unwrap_or(a).eq_ignore_ascii_case(name)))
}

/// Split a request target into (authority of an absolute-form target, path without query).
fn split_target(target: &str) -> (Option<&str>, &str) {
    let lower = |p: &str| target.len() >= p.len() && target.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let (authority, rest) = if lower("http://") || lower("https://") {
        let after = &target[target.find("://").map(|i| i + 3).unwrap_or(0)..];
        let end = after.find(['/', '?']).unwrap_or(after.len());
        (Some(&after[..end]), &after[end..])
    } else {
        (None, target)
    };
    let path = rest.split('?').next().unwrap_or("");
    (authority, if path.is_empty() { "/" } else { path })
}

fn header<'a>(headers: &[(&str, &'a [u8])], name: &str) -> Vec<&'a [u8]> {
    headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v).collect()
}

/// At most `n` characters of untrusted text, for log lines.
fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn pretty<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_string_pretty(v) {
        Ok(s) => Response::json(200, s),
        Err(e) => Response::error(500, format!("serialising the reply: {e}")),
    }
}

/// Handle one request without catching panics (the fuzz target wants to see them):
/// `target` is the request target as sent, `headers` (name, value) pairs.
pub fn route(api: &Api, method: &str, target: &str, headers: &[(&str, &[u8])]) -> Response {
    api.stats.requests.fetch_add(1, Ordering::Relaxed);
    let (authority, path) = split_target(target);
    // DNS rebinding: a browser on a page of evil.example that resolved to us sends
    // Host: evil.example. Browsers always send Host; tools without one are let through.
    let hosts = header(headers, "host");
    if hosts.len() > 1 {
        return Response::error(400, "more than one Host header");
    }
    let host = match authority {
        Some(a) => Some(a.as_bytes()),
        None => hosts.first().copied(),
    };
    if let Some(h) = host {
        if !std::str::from_utf8(h).is_ok_and(|h| host_allowed(h.trim(), &api.opts.hosts)) {
            api.stats.refused_host.fetch_add(1, Ordering::Relaxed);
            return Response::error(
                421,
                format!(
                    "Host {:?} is not an IP address, localhost or a --http-host name",
                    clip(&String::from_utf8_lossy(h), 80)
                ),
            );
        }
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (method, segs.as_slice()) {
        ("GET", ["calls"]) => {
            let (dp, snap) = snapshot(api, None);
            pretty(&snap.calls(dp.as_ref()))
        }
        ("GET", ["calls", id]) => {
            let id = percent_decode(id);
            let (dp, snap) = snapshot(api, Some(&id));
            match snap.calls(dp.as_ref()).pop() {
                Some(c) => pretty(&json!({ "call": c, "flows": snap.flows(dp.as_ref()) })),
                None => Response::error(404, format!("no call {id:?}")),
            }
        }
        ("DELETE", ["calls", id]) | ("POST", ["calls", id, "terminate"]) => {
            if let Err(r) = authorize(api, headers) {
                api.stats.refused_token.fetch_add(1, Ordering::Relaxed);
                return r;
            }
            let id = percent_decode(id);
            let done = crate::lock(&api.engine).terminate(&id);
            if done {
                Response::json(200, json!({ "terminated": id }).to_string())
            } else {
                Response::error(404, format!("no call {id:?}"))
            }
        }
        ("GET", ["calls", id, "capture"]) => {
            let query = target.split_once('?').map(|(_, q)| q);
            crate::http_capture::route(api, &percent_decode(id), query, headers)
        }
        ("GET", ["flows"]) => {
            let (dp, snap) = snapshot(api, None);
            pretty(&snap.flows(dp.as_ref()))
        }
        ("GET", ["stats"]) => {
            let (dp, m) = {
                let e = crate::lock(&api.engine);
                (e.dataplane().clone(), EngineCopy::of(&e))
            };
            let dataplane: Vec<_> =
                dp.metrics().into_iter().map(|(n, l, v)| json!({"name": n, "labels": l, "value": v})).collect();
            pretty(&json!({
                "calls": m.calls,
                "ports_in_use": m.ports_in_use,
                "ports_total": m.ports_total,
                "control": m.stats,
                "dataplane": dataplane,
            }))
        }
        ("GET", ["metrics"]) => {
            let (dp, m, snap) = {
                let e = crate::lock(&api.engine);
                let dp = e.dataplane().clone();
                let snap = Snapshot::take(&e, None, 0);
                (dp, EngineCopy::of(&e), snap)
            };
            Response {
                status: 200,
                content_type: PROMETHEUS,
                body: metrics_text(&m, &snap, dp.as_ref(), &api.stats),
                stream: None,
            }
        }
        ("GET", ["status"]) => pretty(&crate::lock(&api.engine).status()),
        // `POST /drain` on, `POST /drain?off` or `DELETE /drain` off (crate::persist)
        ("POST", ["drain"]) | ("DELETE", ["drain"]) => {
            if let Err(r) = authorize(api, headers) {
                api.stats.refused_token.fetch_add(1, Ordering::Relaxed);
                return r;
            }
            let off = method == "DELETE"
                || target.split_once('?').is_some_and(|(_, q)| q.split('&').any(|p| p == "off" || p == "off=1"));
            let mut e = crate::lock(&api.engine);
            e.set_draining(!off);
            pretty(&e.status())
        }
        ("GET", []) | ("GET", ["health"]) => {
            let calls = crate::lock(&api.engine).calls.len();
            Response::json(200, json!({ "status": "ok", "calls": calls }).to_string())
        }
        _ => Response::error(404, format!("no route {} {}", clip(method, 16), clip(path, 200))),
    }
}

/// The data plane handle and a copy of the calls (all, or one), taken under the engine lock.
fn snapshot(api: &Api, only: Option<&str>) -> (Arc<dyn DataPlane>, Snapshot) {
    let e = crate::lock(&api.engine);
    let dp = e.dataplane().clone();
    let now = dp.now_ms();
    (dp, Snapshot::take(&e, only, now))
}

/// A state-changing request may go on: a token is configured and the request bears it.
pub(crate) fn authorize(api: &Api, headers: &[(&str, &[u8])]) -> Result<(), Response> {
    let token = api.token.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(token) = token else {
        return Err(Response::error(403, "no http-token configured: state-changing requests are disabled"));
    };
    let auth = header(headers, "authorization");
    let given = match auth.as_slice() {
        [v] if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
        _ => return Err(Response::error(401, "Authorization: Bearer <http-token> required")),
    };
    if ct_eq(given, token.as_bytes()) {
        Ok(())
    } else {
        Err(Response::error(401, "wrong http-token"))
    }
}

/// Handle one request, turning a panic into a 500 reply (logged and counted).
pub fn handle(api: &Api, method: &str, target: &str, headers: &[(&str, &[u8])]) -> Response {
    match catch_unwind(AssertUnwindSafe(|| route(api, method, target, headers))) {
        Ok(r) => r,
        Err(p) => {
            api.stats.panics.fetch_add(1, Ordering::Relaxed);
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("http: {} {}: handler panicked: {}", clip(method, 16), clip(target, 200), clip(&what, 200));
            Response::error(500, "internal error (logged)")
        }
    }
}

/// Parse one raw request head (as a client sent it) and route it, panics not caught:
/// for the fuzz target. `None` when the bytes are not a complete request head.
pub fn route_raw(api: &Api, raw: &[u8]) -> Option<Response> {
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hdrs);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let headers: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    Some(route(api, req.method?, req.path?, &headers))
}

/// The engine's own numbers.
struct EngineCopy {
    calls: usize,
    ports_in_use: usize,
    ports_total: usize,
    stats: EngineStats,
    /// The recorder's counters (crate::recording), (name, value).
    recording: Vec<(String, u64)>,
}

impl EngineCopy {
    fn of(e: &Engine) -> EngineCopy {
        EngineCopy {
            calls: e.calls.len(),
            ports_in_use: e.ports_in_use(),
            ports_total: e.ports_total(),
            stats: e.stats.clone(),
            recording: e.recording_metrics(),
        }
    }
}

fn metrics_text(e: &EngineCopy, snap: &Snapshot, dp: &dyn DataPlane, http: &HttpStats) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        out += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (labels, v) in rows {
            if labels.is_empty() {
                out += &format!("{name} {v}\n");
            } else {
                out += &format!("{name}{{{labels}}} {v}\n");
            }
        }
    };
    family("relay_calls", "gauge", "Calls in progress", vec![(String::new(), e.calls as u64)]);
    family("relay_ports_in_use", "gauge", "Relay ports bound", vec![(String::new(), e.ports_in_use as u64)]);
    family("relay_ports_total", "gauge", "Relay ports configured", vec![(String::new(), e.ports_total as u64)]);
    family("relay_calls_created_total", "counter", "Calls created", vec![(String::new(), e.stats.calls_created)]);
    let mut ended: Vec<_> = e.stats.ended.iter().map(|(k, v)| (format!("reason=\"{k}\""), *v)).collect();
    for r in ["deleted", "timeout", "silent-timeout", "final-timeout", "terminated"] {
        if !e.stats.ended.contains_key(r) {
            ended.push((format!("reason=\"{r}\""), 0));
        }
    }
    ended.sort();
    family("relay_calls_ended_total", "counter", "Calls ended, by reason", ended);
    let mut cmds: Vec<_> = e.stats.commands.iter().map(|(k, v)| (format!("command=\"{k}\""), *v)).collect();
    cmds.sort();
    family("relay_ng_commands_total", "counter", "ng commands received", cmds);
    family(
        "relay_ng_errors_total",
        "counter",
        "ng requests answered with an error",
        vec![(String::new(), e.stats.errors)],
    );
    // per-flow totals of the calls in progress
    let counters: Vec<FlowCounters> = snap.sockets().map(|s| dp.counters(s).unwrap_or_default()).collect();
    let sum = |f: fn(&FlowCounters) -> u64| counters.iter().map(f).sum::<u64>();
    family(
        "relay_active_flow_drops",
        "gauge",
        "Drops by reason on the flows of calls in progress",
        vec![
            ("reason=\"malformed\"".into(), sum(|c| c.drop_malformed)),
            ("reason=\"strict-source\"".into(), sum(|c| c.drop_strict_source)),
            ("reason=\"foreign-source\"".into(), sum(|c| c.drop_foreign_source)),
            ("reason=\"no-destination\"".into(), sum(|c| c.drop_no_destination)),
            ("reason=\"send-error\"".into(), sum(|c| c.drop_send_error)),
            ("reason=\"srtp-auth\"".into(), sum(|c| c.drop_srtp_auth)),
            ("reason=\"srtp-replay\"".into(), sum(|c| c.drop_srtp_replay)),
            ("reason=\"srtp-index\"".into(), sum(|c| c.drop_srtp_index)),
            ("reason=\"denied-source\"".into(), sum(|c| c.drop_denied_source)),
            ("reason=\"denied-destination\"".into(), sum(|c| c.drop_denied_destination)),
            ("reason=\"dtls-pending\"".into(), sum(|c| c.drop_dtls_pending)),
            ("reason=\"ice-unchecked\"".into(), sum(|c| c.drop_ice_unchecked)),
            ("reason=\"no-consent\"".into(), sum(|c| c.drop_no_consent)),
            ("reason=\"stun\"".into(), sum(|c| c.drop_stun)),
            ("reason=\"dtls\"".into(), sum(|c| c.drop_dtls)),
        ],
    );
    family(
        "relay_active_flow_replies_dropped",
        "gauge",
        "Replies of the relay itself (STUN answers, DTLS flights) not sent on the flows of calls in progress, by reason",
        vec![("reason=\"transmit-full\"".into(), sum(|c| c.drop_transmit_full))],
    );
    family(
        "relay_active_flow_webrtc",
        "gauge",
        "ICE and DTLS events on the flows of calls in progress",
        vec![
            ("event=\"stun-answered\"".into(), sum(|c| c.stun_answered)),
            ("event=\"dtls-handshake\"".into(), sum(|c| c.dtls_handshakes)),
            ("event=\"dtls-failed\"".into(), sum(|c| c.dtls_failed)),
        ],
    );
    for (n, v) in &e.recording {
        let kind = if n.ends_with("_total") { "counter" } else { "gauge" };
        family(n, kind, "Call recording", vec![(String::new(), *v)]);
    }
    family(
        "relay_active_rtcp_reports",
        "gauge",
        "RTCP SR/RR/XR reports read on the flows of calls in progress",
        vec![(String::new(), sum(|c| c.rtcp_reports))],
    );
    for (name, kind, help, rows) in crate::quality::metric_families(&snap.calls(dp), &e.stats.quality) {
        family(name, kind, help, rows);
    }
    let mut by_name: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for (n, l, v) in dp.metrics() {
        match by_name.iter_mut().find(|(k, _)| *k == n) {
            Some((_, rows)) => rows.push((l, v)),
            None => by_name.push((n, vec![(l, v)])),
        }
    }
    for (n, rows) in by_name {
        let kind = if n.ends_with("_total") { "counter" } else { "gauge" };
        family(&n, kind, "Data plane counter", rows);
    }
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    family(
        "relay_http_requests_total",
        "counter",
        "HTTP API requests handled",
        vec![(String::new(), n(&http.requests))],
    );
    family(
        "relay_http_panics_total",
        "counter",
        "HTTP API requests whose handler panicked (answered 500)",
        vec![(String::new(), n(&http.panics))],
    );
    family(
        "relay_http_refused_total",
        "counter",
        "HTTP API requests and connections refused, by reason",
        vec![
            ("reason=\"token\"".into(), n(&http.refused_token)),
            ("reason=\"host\"".into(), n(&http.refused_host)),
            ("reason=\"busy\"".into(), n(&http.refused_busy)),
            ("reason=\"timeout\"".into(), n(&http.timeouts)),
        ],
    );
    family(
        "relay_http_captures_total",
        "counter",
        "Live captures of a call's packets started (relayctl capture)",
        vec![(String::new(), n(&http.captures))],
    );
    out
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::bencode::Value;
    use crate::engine::EngineConfig;
    use rules::dataplane::{FlowRule, MemoryDataPlane};

    fn engine_with_calls(ids: &[&str]) -> (Arc<Mutex<Engine>>, Arc<MemoryDataPlane>) {
        let dp = Arc::new(MemoryDataPlane::default());
        (engine_on(dp.clone(), ids), dp)
    }

    fn engine_on(dp: Arc<dyn DataPlane>, ids: &[&str]) -> Arc<Mutex<Engine>> {
        let cfg = EngineConfig { port_min: 30000, port_max: 30100, ..Default::default() };
        let mut e = Engine::new(cfg, dp);
        for id in ids {
            for (cmd, tag, port) in [("offer", None, 5000), ("answer", Some("B"), 6000)] {
                let mut d = Value::dict();
                d.insert("command", cmd.into());
                d.insert("call-id", (*id).into());
                d.insert("from-tag", "A".into());
                if let Some(t) = tag {
                    d.insert("to-tag", t.into());
                }
                d.insert(
                    "sdp",
                    format!(
                        "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
                    )
                    .as_str()
                    .into(),
                );
                let r = e.command(&d, 1000, 1);
                assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
            }
        }
        Arc::new(Mutex::new(e))
    }

    fn api(ids: &[&str], token: Option<&str>) -> Api {
        let (e, _) = engine_with_calls(ids);
        Api::new(e, HttpOptions { token: token.map(str::to_string), ..Default::default() })
    }

    const LOCAL: (&str, &[u8]) = ("Host", b"127.0.0.1:9900");

    #[test]
    fn percent_decoding_never_panics() {
        assert_eq!(percent_decode("api%2F1%20x"), "api/1 x");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        // the request that panicked the old server under the engine lock
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%é"), "%é");
        assert_eq!(percent_decode("x%a€"), "x%a€");
        assert_eq!(percent_decode("%ff%fe"), "\u{fffd}\u{fffd}");
        assert_eq!(percent_decode("%C3%A9"), "é");
        let a = api(&["c1"], None);
        let r = route(&a, "GET", "/calls/%a\u{e9}", &[LOCAL]);
        assert_eq!(r.status, 404);
        assert!(route(&a, "GET", "/calls", &[LOCAL]).body.contains("c1"));
    }

    #[test]
    fn routes_answer_like_the_engine() {
        let (e, dp) = engine_with_calls(&["b", "a/1 x"]);
        // counters on one socket so sums, latched state and idle time are exercised
        let sock = crate::lock(&e).flows(None, 0)[0].local;
        dp.state.lock().unwrap().now_ms = 2000;
        dp.state.lock().unwrap().counters.insert(
            sock,
            FlowCounters {
                packets: 7,
                bytes: 700,
                dropped: 1,
                latched_peer: Some("192.0.2.9:5000".parse().unwrap()),
                last_packet_ms: 500,
                ..Default::default()
            },
        );
        let a = Api::new(e.clone(), HttpOptions::default());
        let now = dp.now_ms();
        let (want_calls, want_flows, want_one) = {
            let e = crate::lock(&e);
            (e.call_summaries(now), e.flows(None, now), e.flows(Some("a/1 x"), now))
        };
        let r = route(&a, "GET", "/calls", &[LOCAL]);
        assert_eq!((r.status, r.content_type), (200, JSON));
        assert_eq!(r.body, serde_json::to_string_pretty(&want_calls).unwrap());
        let r = route(&a, "GET", "/flows?x=1", &[LOCAL]);
        assert_eq!(r.body, serde_json::to_string_pretty(&want_flows).unwrap());
        assert!(r.body.contains("\"latched\""));
        let r = route(&a, "GET", "/calls/a%2F1%20x", &[LOCAL]);
        let want = json!({ "call": want_calls[0], "flows": want_one });
        assert_eq!(r.body, serde_json::to_string_pretty(&want).unwrap());
        assert_eq!(route(&a, "GET", "/calls/nope", &[LOCAL]).status, 404);
        let r = route(&a, "GET", "/stats", &[LOCAL]);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((v["calls"].as_u64(), v["control"]["calls_created"].as_u64()), (Some(2), Some(2)));
        let r = route(&a, "GET", "/metrics", &[LOCAL]);
        assert_eq!(r.content_type, PROMETHEUS);
        assert!(r.body.contains("relay_calls 2\n"), "{}", r.body);
        assert!(r.body.contains("relay_http_panics_total 0\n"));
        assert!(r.body.contains("relay_calls_ended_total{reason=\"terminated\"} 0\n"));
        assert!(r.body.contains("# TYPE relay_active_legs gauge\n"), "{}", r.body);
        assert!(r.body.contains("relay_ended_legs_total{verdict=\"poor\"} 0\n"));
        let r = route(&a, "GET", "/", &[LOCAL]);
        assert_eq!(r.body, json!({"status": "ok", "calls": 2}).to_string());
        assert_eq!(route(&a, "PUT", "/calls", &[LOCAL]).status, 404);
        assert_eq!(route(&a, "GET", "http://127.0.0.1:9900/calls/b", &[]).status, 200);
    }

    #[test]
    fn metrics_show_the_webrtc_drop_reasons_and_events() {
        let (e, dp) = engine_with_calls(&["w"]);
        let socks: Vec<_> = crate::lock(&e).flows(None, 0).iter().map(|f| f.local).collect();
        let webrtc = FlowCounters {
            drop_dtls_pending: 1,
            drop_ice_unchecked: 2,
            drop_no_consent: 3,
            drop_stun: 4,
            drop_dtls: 5,
            drop_transmit_full: 6,
            stun_answered: 7,
            dtls_handshakes: 8,
            dtls_failed: 9,
            ..Default::default()
        };
        dp.state.lock().unwrap().counters.insert(socks[0], webrtc.clone());
        dp.state.lock().unwrap().counters.insert(socks[1], webrtc);
        let body = route(&Api::new(e, HttpOptions::default()), "GET", "/metrics", &[LOCAL]).body;
        for line in [
            "relay_active_flow_drops{reason=\"dtls-pending\"} 2\n",
            "relay_active_flow_drops{reason=\"ice-unchecked\"} 4\n",
            "relay_active_flow_drops{reason=\"no-consent\"} 6\n",
            "relay_active_flow_drops{reason=\"stun\"} 8\n",
            "relay_active_flow_drops{reason=\"dtls\"} 10\n",
            "relay_active_flow_replies_dropped{reason=\"transmit-full\"} 12\n",
            "relay_active_flow_webrtc{event=\"stun-answered\"} 14\n",
            "relay_active_flow_webrtc{event=\"dtls-handshake\"} 16\n",
            "relay_active_flow_webrtc{event=\"dtls-failed\"} 18\n",
            "# TYPE relay_active_flow_webrtc gauge\n",
        ] {
            assert!(body.contains(line), "{line} in\n{body}");
        }
    }

    #[test]
    fn state_changes_need_the_token() {
        let none = api(&["c1"], None);
        let r = route(&none, "DELETE", "/calls/c1", &[LOCAL]);
        assert_eq!(r.status, 403);
        assert!(r.body.contains("no http-token configured"));
        assert_eq!(crate::lock(&none.engine).calls.len(), 1);

        let a = api(&["c1", "c2"], Some("s3cret-token"));
        assert_eq!(route(&a, "DELETE", "/calls/c1", &[LOCAL]).status, 401);
        for bad in [&b"Bearer wrong"[..], b"Bearer s3cret-toke", b"Bearer s3cret-token2", b"Basic s3cret-token", b""] {
            assert_eq!(route(&a, "DELETE", "/calls/c1", &[LOCAL, ("Authorization", bad)]).status, 401, "{bad:?}");
        }
        let two = [LOCAL, ("authorization", &b"Bearer s3cret-token"[..]), ("authorization", b"Bearer x")];
        assert_eq!(route(&a, "DELETE", "/calls/c1", &two).status, 401);
        assert_eq!(crate::lock(&a.engine).calls.len(), 2);
        assert_eq!(a.stats.refused_token.load(Ordering::Relaxed), 7);
        let ok = [LOCAL, ("Authorization", &b"bearer s3cret-token"[..])];
        let r = route(&a, "DELETE", "/calls/c1", &ok);
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"terminated":"c1"}"#));
        assert_eq!(route(&a, "POST", "/calls/c2/terminate", &ok).status, 200);
        assert_eq!(route(&a, "POST", "/calls/c2/terminate", &ok).status, 404);
        // reads stay open
        assert_eq!(route(&a, "GET", "/calls", &[LOCAL]).status, 200);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab") && !ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    /// relayd's reload (SIGHUP) replaces the token: the old one stops working at once.
    #[test]
    fn a_reloaded_token_replaces_the_old_one() {
        let a = api(&["c1", "c2"], Some("old-token"));
        a.set_token(Some("new-token".into()));
        let old = [LOCAL, ("Authorization", &b"Bearer old-token"[..])];
        assert_eq!(route(&a, "DELETE", "/calls/c1", &old).status, 401);
        let new = [LOCAL, ("Authorization", &b"Bearer new-token"[..])];
        assert_eq!(route(&a, "DELETE", "/calls/c1", &new).status, 200);
        a.set_token(None);
        assert_eq!(route(&a, "DELETE", "/calls/c2", &new).status, 403);
    }

    #[test]
    fn host_must_name_this_relay() {
        let none: Vec<String> = vec![];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:9900",
            "10.1.2.3",
            "[::1]:9900",
            "[::1]",
            "localhost",
            "LocalHost:80",
            "localhost.",
        ] {
            assert!(host_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9900",
            "",
            ":80",
            "127.0.0.1.evil.example",
            "[::1",
            "[::1]x",
            "::1",
            "localhost:x",
        ] {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        let allowed = vec!["relay1.example.net".to_string()];
        assert!(host_allowed("RELAY1.example.net:9900", &allowed));
        let mut a = api(&["c1"], Some("t"));
        let evil = [("Host", &b"evil.example:9900"[..]), ("Authorization", b"Bearer t")];
        assert_eq!(route(&a, "GET", "/calls", &evil).status, 421);
        assert_eq!(route(&a, "DELETE", "/calls/c1", &evil).status, 421);
        assert_eq!(route(&a, "GET", "http://evil.example/calls", &[LOCAL]).status, 421);
        assert_eq!(route(&a, "GET", "/calls", &[("Host", &b"\xff"[..])]).status, 421);
        assert_eq!(route(&a, "GET", "/calls", &[LOCAL, LOCAL]).status, 400);
        assert_eq!(route(&a, "GET", "/calls", &[]).status, 200);
        assert_eq!(a.stats.refused_host.load(Ordering::Relaxed), 4);
        a.opts.hosts.push("evil.example".into());
        assert_eq!(route(&a, "GET", "/calls", &evil).status, 200);
    }

    /// A data plane whose /metrics rows panic: a bug in a handler's path.
    struct PanickyMetrics(MemoryDataPlane);

    impl DataPlane for PanickyMetrics {
        fn open(&self, local: SocketAddr, affinity: u64) -> std::io::Result<()> {
            self.0.open(local, affinity)
        }
        fn apply(&self, rule: FlowRule) -> Result<(), rules::dataplane::ApplyError> {
            self.0.apply(rule)
        }
        fn close(&self, local: SocketAddr) {
            self.0.close(local)
        }
        fn counters(&self, local: SocketAddr) -> Option<FlowCounters> {
            self.0.counters(local)
        }
        fn metrics(&self) -> Vec<(String, String, u64)> {
            panic!("metrics exploded")
        }
        fn now_ms(&self) -> u64 {
            self.0.now_ms()
        }
    }

    #[test]
    fn a_panicking_handler_is_a_counted_500_and_the_lock_recovers() {
        let a =
            Api::new(engine_on(Arc::new(PanickyMetrics(MemoryDataPlane::default())), &["c1"]), HttpOptions::default());
        let r = handle(&a, "GET", "/stats", &[LOCAL]);
        assert_eq!(r.status, 500);
        assert_eq!(a.stats.panics.load(Ordering::Relaxed), 1);
        assert_eq!(handle(&a, "GET", "/calls", &[LOCAL]).status, 200);
        // a panic while the engine lock was held (elsewhere) does not take the API down
        let e = a.engine.clone();
        let _ = std::thread::spawn(move || {
            let _g = e.lock().unwrap();
            panic!("poisoned on purpose");
        })
        .join();
        assert!(a.engine.is_poisoned());
        assert_eq!(handle(&a, "GET", "/calls", &[LOCAL]).status, 200);
        assert_eq!(handle(&a, "GET", "/", &[LOCAL]).body, json!({"status": "ok", "calls": 1}).to_string());
    }

    #[test]
    fn raw_requests_are_parsed_and_routed() {
        let a = api(&["c1"], None);
        let r = route_raw(&a, b"GET /calls/c1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        assert_eq!(r.status, 200);
        assert!(route_raw(&a, b"GET /calls/c1 HTTP/1.1\r\nHost: 127").is_none());
        let r = route_raw(&a, "GET /calls/%a\u{e9} HTTP/1.1\r\n\r\n".as_bytes());
        assert!(r.is_none_or(|r| r.status == 404));
    }
}
