//! Drivers shared by the fuzz targets in fuzz/ and the tests that check their seed
//! corpora: real engine, in-memory data plane, whole offer → answer → re-offer → delete
//! rounds built from one SDP. Not in relayd: only with the `fuzzing` feature (fuzz/) and
//! in tests.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::bencode::Value;
use crate::engine::{Engine, EngineConfig};
use crate::interface::Interface;
use rules::dataplane::MemoryDataPlane;

/// The engine the targets run: two interfaces (one behind NAT, with an IPv6 address too,
/// so ICE legs bind candidate sockets on both), a small port range (so leaks show), the
/// permissive media policy (peers may be loopback, as in the conformance cases).
pub fn engine() -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    let cfg = EngineConfig {
        interfaces: vec![
            Interface::parse("pub/192.0.2.1!203.0.113.1").unwrap_or_else(|_| unreachable_interface()),
            Interface::parse("pub/2001:db8::1!2001:db8:ffff::1").unwrap_or_else(|_| unreachable_interface()),
            Interface::parse("priv/10.0.0.1").unwrap_or_else(|_| unreachable_interface()),
        ],
        port_min: 30000,
        port_max: 30999,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, dp.clone());
    // as relayd: a process-wide DTLS certificate, so DTLS offers reach crate::dtls_sdp
    e.set_dtls_identity(crate::dtls_sdp::test_identity());
    // and a recorder, so record-call and the recording commands reach the taps
    e.set_recorder(Arc::new(crate::recording::NullRecorder));
    (e, dp)
}

fn unreachable_interface() -> Interface {
    Interface { name: "default".into(), local: [127, 0, 0, 1].into(), advertised: [127, 0, 0, 1].into() }
}

/// Flags an input's first byte selects (one bit each).
fn flags_for(opts: u8, req: &mut Value) {
    let mut flags: Vec<Value> = Vec::new();
    if opts & 1 != 0 {
        flags.push("trust-address".into());
        // what Kamailio's rtpengine_offer(flags, via-branch) sends unparsed
        req.insert(
            "rtpp-flags",
            "replace-origin via-branch=extra DTLS=passive SDES-off rtcp-mux-offer generate-mid full-rtcp-attribute \
             loop-protect address-family=IP4"
                .into(),
        );
    }
    if opts & 2 != 0 {
        req.insert("transport-protocol", "RTP/SAVP".into());
    }
    if opts & 4 != 0 {
        req.insert("transport-protocol", "RTP/AVP".into());
    }
    if opts & 8 != 0 {
        req.insert("rtcp-mux", Value::List(vec!["demux".into()]));
    }
    if opts & 16 != 0 {
        req.insert("replace", Value::List(vec!["origin".into(), "session-connection".into(), "SDP-version".into()]));
    }
    if opts & 32 != 0 {
        req.insert("ICE", "remove".into());
    }
    if opts & 64 != 0 {
        flags.push("codec-strip-PCMA".into());
        flags.push("SDES-no-AES_256_CM_HMAC_SHA1_80".into());
    }
    if opts & 128 != 0 {
        req.insert("direction", Value::List(vec!["pub".into(), "priv".into()]));
    }
    if !flags.is_empty() {
        req.insert("flags", Value::List(flags));
    }
}

/// The answerer's SDP for an offer the relay produced: its own address, its own ports,
/// the first a=crypto of each section (it picks one), everything else as offered.
pub fn answer_for(offer_out: &str) -> String {
    let eol = if offer_out.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(offer_out.len());
    let mut media = 0u16;
    let mut crypto_seen = false;
    for l in offer_out.lines() {
        let l = l.strip_suffix('\r').unwrap_or(l);
        let line = if let Some(rest) = l.strip_prefix("m=") {
            media = media.wrapping_add(1);
            crypto_seen = false;
            let mut parts: Vec<String> = rest.split(' ').map(str::to_string).collect();
            if parts.len() > 1 && parts[1] != "0" {
                parts[1] = (40000u16.wrapping_add(media.wrapping_mul(2))).to_string();
            }
            format!("m={}", parts.join(" "))
        } else if l.starts_with("c=IN IP4") {
            "c=IN IP4 198.51.100.9".into()
        } else if l.starts_with("c=IN IP6") {
            "c=IN IP6 2001:db8::9".into()
        } else if l.starts_with("a=rtcp:") || l.starts_with("a=rtpengine:") {
            // (the loop-protect mark: an answerer does not echo it)
            continue;
        } else if l.starts_with("a=crypto:") {
            if crypto_seen {
                continue;
            }
            crypto_seen = true;
            l.to_string()
        } else {
            l.to_string()
        };
        out += &line;
        out += eol;
    }
    out
}

fn req(cmd: &str, call_id: &str, from: &str, to: Option<&str>, sdp: Option<&str>, opts: u8) -> Value {
    let mut r = Value::dict();
    r.insert("command", cmd.into());
    r.insert("call-id", call_id.into());
    r.insert("from-tag", from.into());
    if let Some(t) = to {
        r.insert("to-tag", t.into());
    }
    if let Some(s) = sdp {
        r.insert("sdp", s.into());
        flags_for(opts, &mut r);
    }
    r
}

/// One round: input = one option byte (flags, see `flags_for`) + the offer SDP. Offer;
/// if that worked, the answer derived from the relay's offer; a re-offer of the same
/// SDP; a re-INVITE from the callee; delete. Returns each step's reply. Panics (what a
/// fuzzer reports) when the engine contained a panic or leaked a port.
pub fn sdp_offer_round(e: &mut Engine, dp: &MemoryDataPlane, n: u64, data: &[u8]) -> Vec<(&'static str, Value)> {
    let Some((&opts, text)) = data.split_first() else {
        return Vec::new();
    };
    let sdp = String::from_utf8_lossy(text);
    let cid = format!("fuzz-{n}");
    let now = n.saturating_mul(10);
    let mut out = Vec::new();
    let mut step = |e: &mut Engine, name: &'static str, r: Value| {
        let v = e.command(&r, now, 1_700_000_000);
        assert_eq!(e.stats.panics, 0, "{name}: the engine contained a panic");
        out.push((name, v.clone()));
        v
    };
    let offer = step(e, "offer", req("offer", &cid, "caller", None, Some(&sdp), opts));
    if let Some(offer_out) = offer.get("sdp").and_then(Value::as_str) {
        let ans = answer_for(offer_out);
        // `direction` belongs to the offer (in an answer it would swap the interfaces)
        let a = step(e, "answer", req("answer", &cid, "caller", Some("callee"), Some(&ans), opts & 0x7f));
        step(e, "re-offer", req("offer", &cid, "caller", Some("callee"), Some(&sdp), opts));
        if a.get("sdp").is_some() {
            step(e, "reverse offer", req("offer", &cid, "callee", Some("caller"), Some(&ans), opts >> 1));
        }
    }
    let mut del = req("delete", &cid, "caller", None, None, 0);
    del.insert("delete-delay", 0i64.into());
    step(e, "delete", del);
    assert!(!e.calls.contains_key(&cid), "call left after delete");
    if e.calls.is_empty() {
        assert_eq!(e.ports_in_use(), 0, "ports leaked");
        let open = dp.state.lock().map(|s| s.open.len()).unwrap_or(0);
        assert_eq!(open, 0, "sockets left open");
    }
    out
}

/// The ng server target's source addresses (the first input byte picks one).
pub fn source(b: u8) -> SocketAddr {
    match b % 4 {
        0 => SocketAddr::from(([192, 0, 2, 9], 5060)),
        1 => SocketAddr::from(([192, 0, 2, 10], 5060)),
        2 => SocketAddr::from(([127, 0, 0, 1], 30002)),
        _ => SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9], 5060)),
    }
}

#[cfg(test)]
mod seeds {
    //! The fuzz targets' seed corpora (fuzz/seeds/) do what they are for: every SDP seed of
    //! `sdp_offer` is a valid offer that reaches the rewrite and gets an ok offer and answer
    //! (seeds named `*.expect-error` are kept for mutation and must get a clean error), and
    //! the `ng_server` seeds get replies.

    use std::path::PathBuf;

    use crate::bencode::Value;
    use crate::ng::NgServer;

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(target);
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    }

    fn result(v: &Value) -> String {
        format!(
            "{} {}",
            v.get("result").and_then(Value::as_str).unwrap_or("?"),
            v.get("error-reason").and_then(Value::as_str).unwrap_or("")
        )
    }

    #[test]
    fn sdp_offer_seeds_reach_the_rewrite() {
        let (mut e, dp) = super::engine();
        let all = seeds("sdp_offer");
        assert!(all.len() >= 20, "seed corpus missing");
        let mut n = 0;
        let mut failed = Vec::new();
        for (i, (name, data)) in all.iter().enumerate() {
            let steps = super::sdp_offer_round(&mut e, &dp, i as u64, data);
            let by = |s: &str| steps.iter().find(|(n, _)| *n == s).map(|(_, v)| v);
            if name.ends_with(".expect-error") {
                assert!(result(by("offer").unwrap()).starts_with("error"), "{name}");
                continue;
            }
            for step in ["offer", "answer", "re-offer", "reverse offer", "delete"] {
                match by(step) {
                    Some(v) if result(v).starts_with("ok") => {}
                    Some(v) => failed.push(format!("{name}: {step}: {}", result(v))),
                    None => failed.push(format!("{name}: no {step}")),
                }
            }
            if by("offer").is_none_or(|v| v.get("sdp").is_none()) {
                failed.push(format!("{name}: no rewritten SDP"));
            }
            n += 1;
        }
        assert!(failed.is_empty(), "{failed:#?}");
        assert!(n >= 20);
        assert_eq!(e.stats.panics, 0);
    }

    #[test]
    fn ng_server_seeds_get_replies() {
        let (mut e, _dp) = super::engine();
        let mut ng = NgServer::new();
        let all = seeds("ng_server");
        assert!(!all.is_empty());
        for (i, (name, data)) in all.iter().enumerate() {
            let (src, d) = data.split_first().unwrap();
            let r = ng.handle(&mut e, super::source(*src), d, i as u64, 0);
            assert!(r.is_some(), "{name}");
        }
        assert_eq!(e.stats.panics, 0);
    }
}
