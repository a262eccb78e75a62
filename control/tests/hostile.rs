//! Hostile signalling (issue 9, §1 and §6): SDP that used to crash the rewrite, and the
//! bounds of the control plane. Errors name the limit; nothing is allocated or leaked.

use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::{Engine, EngineConfig};
use control::ng::NgServer;
use rules::dataplane::MemoryDataPlane;

fn engine(cfg: EngineConfig) -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    (Engine::new(cfg, dp.clone()), dp)
}

fn req(pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::dict();
    for (k, x) in pairs {
        v.insert(k, x.clone());
    }
    v
}

fn offer(e: &mut Engine, cid: &str, ft: &str, tt: Option<&str>, sdp: &str) -> Value {
    let mut p =
        vec![("command", "offer".into()), ("call-id", cid.into()), ("from-tag", ft.into()), ("sdp", sdp.into())];
    if let Some(t) = tt {
        p.push(("to-tag", t.into()));
    }
    e.command(&req(&p), 1000, 1_700_000_000)
}

fn answer(e: &mut Engine, cid: &str, ft: &str, tt: &str, sdp: &str) -> Value {
    e.command(
        &req(&[
            ("command", "answer".into()),
            ("call-id", cid.into()),
            ("from-tag", ft.into()),
            ("to-tag", tt.into()),
            ("sdp", sdp.into()),
        ]),
        1000,
        1_700_000_000,
    )
}

fn result(v: &Value) -> &str {
    v.get("result").and_then(Value::as_str).unwrap_or("?")
}

fn reason(v: &Value) -> &str {
    v.get("error-reason").and_then(Value::as_str).unwrap_or("")
}

fn sdp(ip: &str, port: u16, extra: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 96\r\n{extra}")
}

fn open_sockets(dp: &MemoryDataPlane) -> usize {
    dp.state.lock().unwrap().open.len()
}

/// `a=rtpmap`, `a=fmtp`, `a=rtcp-fb` without a colon panicked in the rewrite (byte slicing
/// past the end) while the engine lock was held. Kamailio passes such lines through: so
/// do we, unchanged.
#[test]
fn colonless_payload_attributes_pass_through() {
    let (mut e, _dp) = engine(EngineConfig::default());
    for (i, attr) in ["a=rtpmap", "a=fmtp", "a=rtcp-fb", "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:*"].iter().enumerate() {
        let cid = format!("c{i}");
        let body = sdp("198.51.100.7", 4000, &format!("{attr}\r\na=rtpmap:96 opus/48000/2\r\n"));
        let r = offer(&mut e, &cid, "a", None, &body);
        assert_eq!(result(&r), "ok", "{attr}: {r:?}");
        let out = r.get("sdp").and_then(Value::as_str).unwrap();
        if !attr.contains(':') {
            assert!(out.lines().any(|l| l == *attr), "{attr} kept: {out}");
        }
        let r = answer(&mut e, &cid, "a", "b", &sdp("203.0.113.9", 5000, &format!("{attr}\r\n")));
        assert_eq!(result(&r), "ok", "{attr}: {r:?}");
    }
    assert_eq!(e.stats.panics, 0);
}

/// One 62 KB offer with 2 500 m= lines took every port of the range: refused now before
/// any port is allocated.
#[test]
fn too_many_media_sections_are_refused_before_allocating() {
    let (mut e, dp) = engine(EngineConfig { port_min: 30000, port_max: 40000, ..Default::default() });
    let mut body = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n".to_string();
    for i in 0..2500 {
        body += &format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i);
    }
    assert!(body.len() > 50_000);
    let r = offer(&mut e, "big", "a", None, &body);
    assert_eq!(result(&r), "error");
    assert!(reason(&r).contains("max-media-per-sdp"), "{r:?}");
    assert_eq!((e.ports_in_use(), open_sockets(&dp), e.calls.len()), (0, 0, 0));
    // 32 is fine
    let mut body = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n".to_string();
    for i in 0..32 {
        body += &format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i);
    }
    assert_eq!(result(&offer(&mut e, "ok", "a", None, &body)), "ok");
    assert_eq!(e.ports_in_use(), 2 * 2 * 32);
}

#[test]
fn calls_monologues_and_ids_are_bounded() {
    let cfg = EngineConfig { max_calls: 3, max_monologues_per_call: 4, max_id_length: 64, ..Default::default() };
    let (mut e, dp) = engine(cfg);
    for i in 0..3 {
        assert_eq!(result(&offer(&mut e, &format!("c{i}"), "a", None, &sdp("198.51.100.7", 4000, ""))), "ok");
    }
    let before = open_sockets(&dp);
    let r = offer(&mut e, "c3", "a", None, &sdp("198.51.100.7", 4000, ""));
    assert!(reason(&r).contains("max-calls"), "{r:?}");
    assert_eq!(open_sockets(&dp), before);
    // re-offers of existing calls still work
    assert_eq!(result(&offer(&mut e, "c0", "a", None, &sdp("198.51.100.7", 4002, ""))), "ok");

    // monologues: each forked offer from a new tag adds two
    let r = offer(&mut e, "c1", "x", Some("y"), &sdp("198.51.100.7", 4000, ""));
    assert_eq!(result(&r), "ok", "{r:?}");
    let before = open_sockets(&dp);
    let r = offer(&mut e, "c1", "p", Some("q"), &sdp("198.51.100.7", 4000, ""));
    assert!(reason(&r).contains("max-monologues-per-call"), "{r:?}");
    assert_eq!(open_sockets(&dp), before, "nothing leaked");
    assert_eq!(e.calls["c1"].monologues.len(), 4);

    // identifiers
    let long = "x".repeat(65);
    let r = offer(&mut e, &long, "a", None, &sdp("198.51.100.7", 4000, ""));
    assert!(reason(&r).contains("call-id") && reason(&r).contains("max-id-length"), "{r:?}");
    let r = offer(&mut e, "c0", &long, None, &sdp("198.51.100.7", 4000, ""));
    assert!(reason(&r).contains("from-tag"), "{r:?}");
    let r = offer(&mut e, "c0", "a", Some(&long), &sdp("198.51.100.7", 4000, ""));
    assert!(reason(&r).contains("to-tag"), "{r:?}");
}

#[test]
fn to_tag_equal_to_from_tag_is_refused() {
    let (mut e, dp) = engine(EngineConfig::default());
    let r = offer(&mut e, "c", "a", Some("a"), &sdp("198.51.100.7", 4000, ""));
    assert!(reason(&r).contains("to-tag equals from-tag"), "{r:?}");
    assert_eq!((e.calls.len(), open_sockets(&dp)), (0, 0));
    assert_eq!(result(&offer(&mut e, "c", "a", None, &sdp("198.51.100.7", 4000, ""))), "ok");
    let r = answer(&mut e, "c", "a", "a", &sdp("203.0.113.9", 5000, ""));
    assert!(reason(&r).contains("to-tag equals from-tag"), "{r:?}");
    assert_eq!(result(&answer(&mut e, "c", "a", "b", &sdp("203.0.113.9", 5000, ""))), "ok");
}

#[test]
fn delete_delay_is_bounded() {
    let (mut e, _dp) = engine(EngineConfig::default());
    assert_eq!(result(&offer(&mut e, "c", "a", None, &sdp("198.51.100.7", 4000, ""))), "ok");
    for d in [Value::Int(i64::MAX), "99999999999999".into(), Value::Int(86_401)] {
        let r = e.command(&req(&[("command", "delete".into()), ("call-id", "c".into()), ("delete-delay", d)]), 1000, 0);
        assert!(reason(&r).contains("delete-delay"), "{r:?}");
    }
    let r = e.command(
        &req(&[("command", "delete".into()), ("call-id", "c".into()), ("delete-delay", Value::Int(86_400))]),
        u64::MAX - 5,
        0,
    );
    assert_eq!(result(&r), "ok");
    assert_eq!(e.calls["c"].delete_at_ms, Some(u64::MAX));
}

#[test]
fn final_timeout_has_a_default() {
    assert_eq!(EngineConfig::default().final_timeout, 14_400);
}

#[test]
fn list_is_capped() {
    let (mut e, _dp) =
        engine(EngineConfig { port_min: 20000, port_max: 60000, max_id_length: 256, ..Default::default() });
    for i in 0..1200 {
        let cid = format!("{i:04}{}", "c".repeat(200));
        // no media: calls without ports
        let body = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n";
        assert_eq!(result(&offer(&mut e, &cid, "a", None, body)), "ok");
    }
    let list =
        |e: &mut Engine, limit: i64| e.command(&req(&[("command", "list".into()), ("limit", limit.into())]), 0, 0);
    let r = list(&mut e, 5);
    assert_eq!(r.get("calls").and_then(Value::as_list).unwrap().len(), 5);
    assert!(r.get("warning").is_none());
    let r = list(&mut e, 1_000_000);
    let n = r.get("calls").and_then(Value::as_list).unwrap().len();
    assert!(n <= 100);
    assert!(r.encode().len() <= 4_100, "{}", r.encode().len());
    assert!(r.get("warning").and_then(Value::as_str).unwrap().contains("truncated"), "{r:?}");
    // through the ng server as well
    let mut ng = NgServer::new();
    let src: SocketAddr = "192.0.2.9:5060".parse().unwrap();
    let out = ng.handle(&mut e, src, b"l d7:command4:list5:limiti100000ee", 0, 0).unwrap();
    assert!(out.len() <= 4_200);
}

/// DTLS attributes and rtpp-flags a peer controls: each refusal names the problem, and a
/// refused offer leaves no call, port or socket behind.
#[test]
fn hostile_dtls_attributes_and_rtpp_flags_are_refused_by_name() {
    let (mut e, dp) = engine(EngineConfig::default());
    e.set_dtls_identity(control::dtls_sdp::test_identity());
    let fp = "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F";
    let dtls = |extra: &str| sdp("198.51.100.7", 4000, extra).replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
    for (extra, want) in [
        ("a=setup:actpass\r\na=fingerprint:sha-256 D2:FA\r\n", "invalid a=fingerprint \"sha-256 D2:FA\""),
        ("a=setup:actpass\r\na=fingerprint:\r\n", "invalid a=fingerprint \"\""),
        (&format!("a=setup:both\r\n{fp}\r\n"), "unknown a=setup value \"both\""),
        (&format!("a=setup:actpass\r\n{fp}\r\na=tls-id:!!\r\n"), "invalid a=tls-id \"!!\""),
        ("a=setup:actpass\r\n", "UDP/TLS/RTP/SAVPF media without a=crypto line"),
    ] {
        let r = offer(&mut e, "d", "a", None, &dtls(extra));
        assert_eq!(result(&r), "error", "{extra}");
        assert!(reason(&r).starts_with(want), "{extra}: {}", reason(&r));
    }
    assert_eq!((e.calls.len(), e.ports_in_use(), open_sockets(&dp)), (0, 0, 0));
    // a huge rtpp-flags string, a CRLF in a transport-protocol
    let mut r = Value::dict();
    r.insert("command", "offer".into());
    r.insert("call-id", "f".into());
    r.insert("from-tag", "a".into());
    r.insert("sdp", sdp("198.51.100.7", 4000, "").as_str().into());
    r.insert("rtpp-flags", "trust-address ".repeat(20_000).as_str().into());
    let v = e.command(&r, 1000, 0);
    assert_eq!(reason(&v), "rtpp-flags has 20000 items, more than 512");
    r.insert("rtpp-flags", "transport-protocol=RTP/AVP\r\nm=x".into());
    r.insert("transport-protocol", "RTP/AVP\r\nm=video 1 RTP/AVP 0".into());
    let v = e.command(&r, 1000, 0);
    assert!(reason(&v).starts_with("unknown transport-protocol \"RTP/AVP\\\\r\\\\nm=video"), "{v:?}");
    assert_eq!((e.calls.len(), e.ports_in_use(), open_sockets(&dp)), (0, 0, 0));
    assert_eq!(e.stats.panics, 0);
}
