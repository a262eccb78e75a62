//! relayctl: inspect and steer a running relayd through its HTTP API.

mod top;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

mod capture;
mod quality;
mod status;

#[derive(Parser)]
#[command(name = "relayctl", version, about = "Inspect and control a running relayd")]
struct Cli {
    /// relayd's --listen-http address
    #[arg(long, global = true, default_value = control::http::DEFAULT_LISTEN, env = "RELAYCTL_HTTP")]
    http: String,
    /// relayd's --http-token, needed by `terminate`, `capture` and `drain` (better from the environment: a flag shows in `ps`)
    #[arg(long, global = true, env = "RELAYCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Calls in progress
    Calls,
    /// One call and its flows
    Call { id: String },
    /// Every flow: counters, latched peer, state, age
    Flows {
        /// Only this call's flows
        #[arg(long)]
        call: Option<String>,
    },
    /// Relay-wide counters
    Stats,
    /// Tear a call down now
    Terminate { id: String },
    /// Live pcap of a call's packets as they cross the relay (needs the token):
    /// `-w -` pipes into `wireshark -k -i -` or `tshark -i -`
    Capture {
        id: String,
        /// Only this party's media, both directions (its SIP from-tag or to-tag)
        #[arg(long)]
        leg: Option<String>,
        /// Add the decrypted copy of SRTP packets (where the relay decrypts)
        #[arg(long)]
        decrypted: bool,
        /// Stop after this many seconds (relayd's default 300, at most 3600)
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
        /// Where the pcap goes: a file, or - for standard output
        #[arg(short = 'w', value_name = "FILE")]
        write: String,
    },
    /// Live view: the relay's rates, its busiest and its worst-quality calls (q quits)
    Top(top::TopArgs),
    /// Refuse new calls (running calls go on until they end); --off takes them again
    Drain {
        #[arg(long)]
        off: bool,
    },
    /// Calls, drain, and the state store
    Status,
}

fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A connection to relayd's API, or the reason there is none.
fn connect(addr: &str) -> Result<TcpStream, String> {
    let sa: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad --http address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad --http address {addr:?}"))?;
    TcpStream::connect_timeout(&sa, Duration::from_secs(2)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            format!("relayd is not running, or not serving its API on {addr} (see --listen-http): {e}")
        } else {
            format!("cannot reach relayd at {addr}: {e}")
        }
    })
}

fn request(addr: &str, token: Option<&str>, method: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("reading relayd's answer: {e}"))?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or("malformed HTTP answer from relayd")?;
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("malformed HTTP status from relayd")?;
    Ok((code, body.to_string()))
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    // call-ids, tags and labels come from SIP users: no terminal control through them
    let rows: Vec<Vec<String>> =
        rows.into_iter().map(|r| r.iter().map(|c| top::text::printable(c)).collect()).collect();
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{:<width$}", c, width = w[i])).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Every drop reason of a flow's counters (the JSON field) with the name /metrics gives it.
const DROP_REASONS: [(&str, &str); 15] = [
    ("drop_malformed", "malformed"),
    ("drop_strict_source", "strict-source"),
    ("drop_foreign_source", "foreign-source"),
    ("drop_no_destination", "no-destination"),
    ("drop_send_error", "send-error"),
    ("drop_srtp_auth", "srtp-auth"),
    ("drop_srtp_replay", "srtp-replay"),
    ("drop_srtp_index", "srtp-index"),
    ("drop_denied_source", "denied-source"),
    ("drop_denied_destination", "denied-destination"),
    ("drop_dtls_pending", "dtls-pending"),
    ("drop_ice_unchecked", "ice-unchecked"),
    ("drop_no_consent", "no-consent"),
    ("drop_stun", "stun"),
    ("drop_dtls", "dtls"),
];

/// The ICE and DTLS events of a flow (and the relay's own replies it could not queue).
const WEBRTC_EVENTS: [(&str, &str); 4] = [
    ("stun_answered", "stun"),
    ("dtls_handshakes", "dtls"),
    ("dtls_failed", "dtls-failed"),
    ("drop_transmit_full", "transmit-full"),
];

/// `name=n` for every non-zero counter of `fields`, comma-separated; "-" when all are 0.
fn nonzero(c: &Value, fields: &[(&str, &str)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(field, name)| c[*field].as_u64().filter(|n| *n > 0).map(|n| format!("{name}={n}")))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn flow_rows(flows: &Value) -> Vec<Vec<String>> {
    flows
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let c = &f["counters"];
                    vec![
                        s(&f["call_id"]),
                        s(&f["tag"]),
                        format!("{}/{}", s(&f["media"]), s(&f["kind"])),
                        s(&f["local"]),
                        s(&c["latched_peer"]).replace('-', &s(&f["signalled_peer"])),
                        s(&f["state"]),
                        s(&c["packets"]),
                        s(&c["forwarded"]),
                        s(&c["dropped"]),
                        nonzero(c, &DROP_REASONS),
                        nonzero(c, &WEBRTC_EVENTS),
                        s(&c["lost"]),
                        format!("{:.1}", c["jitter_us"].as_f64().unwrap_or(0.0) / 1000.0),
                        f["idle_ms"]
                            .as_u64()
                            .map(|m| format!("{:.1}s", m as f64 / 1000.0))
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const FLOW_HEADERS: [&str; 14] = [
    "CALL",
    "TAG",
    "MEDIA",
    "LOCAL",
    "PEER",
    "STATE",
    "PACKETS",
    "FWD",
    "DROPS",
    "WHY",
    "WEBRTC",
    "LOST",
    "JITTER_MS",
    "IDLE",
];

fn run(cli: Cli) -> Result<(), String> {
    if let Cmd::Capture { id, leg, decrypted, duration, write } = &cli.cmd {
        let a =
            capture::CaptureArgs { id, leg: leg.as_deref(), decrypted: *decrypted, duration: *duration, out: write };
        eprintln!("relayctl: {}", capture::run(&cli.http, cli.token.as_deref(), &a)?);
        return Ok(());
    }
    let (method, path) = match &cli.cmd {
        Cmd::Calls => ("GET", "/calls".to_string()),
        Cmd::Call { id } => ("GET", format!("/calls/{}", encode(id))),
        Cmd::Flows { call: None } => ("GET", "/flows".to_string()),
        Cmd::Flows { call: Some(id) } => ("GET", format!("/calls/{}", encode(id))),
        Cmd::Stats => ("GET", "/stats".to_string()),
        Cmd::Terminate { id } => ("DELETE", format!("/calls/{}", encode(id))),
        Cmd::Capture { .. } => unreachable!("streamed above"),
        Cmd::Top(a) => return top::run(&cli.http, cli.token.as_deref(), a),
        Cmd::Drain { off: false } => ("POST", "/drain".to_string()),
        Cmd::Drain { off: true } => ("POST", "/drain?off".to_string()),
        Cmd::Status => ("GET", "/status".to_string()),
    };
    let (code, body) = request(&cli.http, cli.token.as_deref(), method, &path)?;
    let v: Result<Value, _> = serde_json::from_str(&body);
    if code != 200 {
        let why = match &v {
            Ok(v) => v["error"].as_str().map(str::to_string).unwrap_or(body),
            Err(_) => format!("HTTP {code} {}", body.trim()),
        };
        return Err(match code {
            401 | 403 => format!("{why} (relayd's --http-token, given as RELAYCTL_TOKEN or --token)"),
            _ => why,
        });
    }
    let v = v.map_err(|e| format!("relayd answered something that is not JSON: {e}"))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    match cli.cmd {
        Cmd::Calls => {
            let rows = v
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .map(|c| {
                    vec![
                        s(&c["call_id"]),
                        c["tags"].as_array().map(|t| t.iter().map(s).collect::<Vec<_>>().join(",")).unwrap_or_default(),
                        format!("{}s", s(&c["age_s"])),
                        s(&c["media"]),
                        s(&c["packets"]),
                        s(&c["bytes"]),
                        s(&c["dropped"]),
                        if c["deleting"].as_bool() == Some(true) { "deleting".into() } else { "active".into() },
                        quality::verdict(&c["verdict"]),
                        s(&c["dtmf_events"]),
                    ]
                })
                .collect::<Vec<_>>();
            let n = rows.len();
            table(&["CALL-ID", "TAGS", "AGE", "MEDIA", "PACKETS", "BYTES", "DROPS", "STATE", "QUALITY", "DTMF"], rows);
            println!("{n} call(s)");
        }
        Cmd::Call { .. } => {
            let c = &v["call"];
            println!(
                "call {}  tags {}  age {}s  packets {}  drops {}",
                s(&c["call_id"]),
                c["tags"],
                s(&c["age_s"]),
                s(&c["packets"]),
                s(&c["dropped"])
            );
            let (legs, why) = quality::leg_rows(c);
            if !legs.is_empty() {
                println!("quality {}", quality::verdict(&c["verdict"]));
                table(&quality::LEG_HEADERS, legs);
                for w in why {
                    println!("  {}", top::text::printable(&w));
                }
            }
            table(&FLOW_HEADERS, flow_rows(&v["flows"]));
        }
        Cmd::Flows { call } => {
            let flows = if call.is_some() { v["flows"].clone() } else { v };
            table(&FLOW_HEADERS, flow_rows(&flows));
        }
        Cmd::Stats => {
            println!("calls {}  ports in use {} of {}", s(&v["calls"]), s(&v["ports_in_use"]), s(&v["ports_total"]));
            let ctl = &v["control"];
            println!("calls created {}  ng errors {}", s(&ctl["calls_created"]), s(&ctl["errors"]));
            if let Some(m) = ctl["ended"].as_object() {
                for (k, n) in m {
                    println!("calls ended ({k}) {n}");
                }
            }
            if let Some(m) = ctl["commands"].as_object() {
                let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k}={n}")).collect();
                println!("ng commands {}", parts.join(" "));
            }
            let rows = v["dataplane"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .map(|m| vec![s(&m["name"]), s(&m["labels"]), s(&m["value"])])
                .collect();
            table(&["COUNTER", "LABELS", "VALUE"], rows);
        }
        Cmd::Terminate { id } => println!("terminated {id}"),
        Cmd::Capture { .. } => {}
        Cmd::Top(_) => {}
        Cmd::Drain { .. } | Cmd::Status => status::print(&v),
    }
    Ok(())
}

fn main() -> ExitCode {
    // `relayctl flows | head` must end quietly
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relayctl: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_rows_name_the_drop_reasons_and_webrtc_events() {
        let flows = serde_json::json!([{
            "call_id": "c", "tag": "t", "media": 1, "kind": "rtp-mux", "local": "10.0.0.1:30000",
            "signalled_peer": null, "state": "latched", "idle_ms": null,
            "counters": {
                "packets": 9, "forwarded": 2, "dropped": 7, "drop_malformed": 0, "drop_dtls_pending": 3,
                "drop_no_consent": 4, "stun_answered": 5, "dtls_handshakes": 1, "drop_transmit_full": 0,
                "latched_peer": "192.0.2.1:5000", "lost": 0, "jitter_us": 0
            }
        }]);
        let r = &flow_rows(&flows)[0];
        assert_eq!(r.len(), FLOW_HEADERS.len());
        assert_eq!((r[9].as_str(), r[10].as_str()), ("dtls-pending=3,no-consent=4", "stun=5,dtls=1"));
        let quiet = serde_json::json!([{ "counters": { "dropped": 0 } }]);
        assert_eq!((flow_rows(&quiet)[0][9].as_str(), flow_rows(&quiet)[0][10].as_str()), ("-", "-"));
    }
}
