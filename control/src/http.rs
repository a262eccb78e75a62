//! The local HTTP/JSON API and Prometheus metrics: a small blocking server (one request
//! per connection), meant for loopback. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /calls` | calls with totals |
//! | `GET /calls/{call-id}` | one call and its flows |
//! | `DELETE /calls/{call-id}` (or `POST .../terminate`) | tear a call down now |
//! | `GET /flows` | every flow: counters, latched peer, state, age |
//! | `GET /stats` | control and data plane counters as JSON |
//! | `GET /metrics` | Prometheus text format |

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::engine::Engine;

pub fn serve(listener: TcpListener, engine: Arc<Mutex<Engine>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if let Err(e) = handle(stream, &engine) {
            log::debug!("http: {e}");
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(stream: TcpStream, engine: &Arc<Mutex<Engine>>) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = target.split('?').next().unwrap_or("/");
    let (status, ctype, body) = route(&method, path, engine);
    let mut s = stream;
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

pub fn route(method: &str, path: &str, engine: &Arc<Mutex<Engine>>) -> (&'static str, &'static str, String) {
    const JSON: &str = "application/json";
    let not_found = |what: String| ("404 Not Found", JSON, json!({ "error": what }).to_string());
    let mut e = engine.lock().unwrap();
    let now = e.dataplane().now_ms();
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (method, segs.as_slice()) {
        ("GET", ["calls"]) => ("200 OK", JSON, serde_json::to_string_pretty(&e.call_summaries(now)).unwrap()),
        ("GET", ["calls", id]) => {
            let id = percent_decode(id);
            match e.call_summaries(now).into_iter().find(|c| c.call_id == id) {
                Some(c) => {
                    let flows = e.flows(Some(&id), now);
                    ("200 OK", JSON, serde_json::to_string_pretty(&json!({ "call": c, "flows": flows })).unwrap())
                }
                None => not_found(format!("no call {id:?}")),
            }
        }
        ("DELETE", ["calls", id]) | ("POST", ["calls", id, "terminate"]) => {
            let id = percent_decode(id);
            if e.terminate(&id) {
                ("200 OK", JSON, json!({ "terminated": id }).to_string())
            } else {
                not_found(format!("no call {id:?}"))
            }
        }
        ("GET", ["flows"]) => ("200 OK", JSON, serde_json::to_string_pretty(&e.flows(None, now)).unwrap()),
        ("GET", ["stats"]) => {
            let dp: Vec<_> = e
                .dataplane()
                .metrics()
                .into_iter()
                .map(|(n, l, v)| json!({"name": n, "labels": l, "value": v}))
                .collect();
            let body = json!({
                "calls": e.calls.len(),
                "ports_in_use": e.ports_in_use(),
                "ports_total": e.ports_total(),
                "control": e.stats,
                "dataplane": dp,
            });
            ("200 OK", JSON, serde_json::to_string_pretty(&body).unwrap())
        }
        ("GET", ["metrics"]) => ("200 OK", "text/plain; version=0.0.4", metrics(&e)),
        ("GET", []) | ("GET", ["health"]) => {
            ("200 OK", JSON, json!({ "status": "ok", "calls": e.calls.len() }).to_string())
        }
        _ => not_found(format!("no route {method} {path}")),
    }
}

pub fn metrics(e: &Engine) -> String {
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
    family("relay_calls", "gauge", "Calls in progress", vec![(String::new(), e.calls.len() as u64)]);
    family("relay_ports_in_use", "gauge", "Relay ports bound", vec![(String::new(), e.ports_in_use() as u64)]);
    family("relay_ports_total", "gauge", "Relay ports configured", vec![(String::new(), e.ports_total() as u64)]);
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
    let flows = e.flows(None, e.dataplane().now_ms());
    let sum = |f: fn(&crate::dataplane::FlowCounters) -> u64| flows.iter().map(|x| f(&x.counters)).sum::<u64>();
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
        ],
    );
    let mut by_name: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for (n, l, v) in e.dataplane().metrics() {
        match by_name.iter_mut().find(|(k, _)| *k == n) {
            Some((_, rows)) => rows.push((l, v)),
            None => by_name.push((n, vec![(l, v)])),
        }
    }
    for (n, rows) in by_name {
        let kind = if n.ends_with("_total") { "counter" } else { "gauge" };
        family(&n, kind, "Data plane counter", rows);
    }
    out
}
