//! Calls through the state store's form and back (control::persist): a relay that
//! restarts restores each call on the same ports with the same rules, SDES keys and DTLS
//! certificate; records that do not fit are refused without a panic or a port held; a
//! draining relay refuses new calls only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::{Engine, EngineConfig};
use control::persist::{CallRecord, RECORD_VERSION};
use rules::dataplane::{FlowRule, MemoryDataPlane};

const UNIX: u64 = 1_700_000_000;

fn engine() -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    let cfg = EngineConfig { port_min: 30000, port_max: 30199, timeout: 60, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, dp.clone());
    e.set_dtls_identity(control::dtls_sdp::test_identity());
    (e, dp)
}

fn cmd(e: &mut Engine, pairs: &[(&str, &str)]) -> Value {
    let mut r = Value::dict();
    for (k, v) in pairs {
        r.insert(k, (*v).into());
    }
    e.command(&r, 1000, UNIX)
}

fn ok(v: &Value) -> bool {
    v.get("result").and_then(Value::as_str) == Some("ok")
}

fn sdp(port: u16, proto: &str, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
         m=audio {port} {proto} 0 8\r\na=sendrecv\r\n{extra}"
    )
}

const CRYPTO: &str = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv\r\n";
const CHROME: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=audio 54609 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 198.51.100.77\r\n\
    a=ice-ufrag:a9Hg\r\na=ice-pwd:G8cJkzGxkFu3PU1O8qBsjd2T\r\n\
    a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
    a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

/// Three calls: plain RTP, SDES both ways, and a browser (DTLS, ICE) to a phone.
fn three_calls(e: &mut Engine) {
    for (id, proto, extra) in [("plain", "RTP/AVP", ""), ("sdes", "RTP/SAVP", CRYPTO)] {
        let o = cmd(e, &[("command", "offer"), ("call-id", id), ("from-tag", "a"), ("sdp", &sdp(4000, proto, extra))]);
        assert!(ok(&o), "{o:?}");
        let a = cmd(
            e,
            &[
                ("command", "answer"),
                ("call-id", id),
                ("from-tag", "a"),
                ("to-tag", "b"),
                ("sdp", &sdp(5000, proto, extra).replace("198.51.100.7", "198.51.100.8")),
            ],
        );
        assert!(ok(&a), "{a:?}");
    }
    let o = cmd(
        e,
        &[
            ("command", "offer"),
            ("call-id", "webrtc"),
            ("from-tag", "browser"),
            ("sdp", CHROME),
            ("rtpp-flags", "ICE=remove DTLS=off RTP/AVP rtcp-mux-demux"),
        ],
    );
    assert!(ok(&o), "{o:?}");
    let a = cmd(
        e,
        &[
            ("command", "answer"),
            ("call-id", "webrtc"),
            ("from-tag", "browser"),
            ("to-tag", "phone"),
            ("sdp", &sdp(5000, "RTP/AVP", "").replace("198.51.100.7", "198.51.100.8")),
            ("rtpp-flags", "ICE=force DTLS=passive UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require SDES-off"),
        ],
    );
    assert!(ok(&a), "{a:?}");
    assert!(a.get("sdp").and_then(Value::as_str).unwrap().contains("a=fingerprint:sha-256"));
}

/// The rules a data plane carries, the one-shot latch reset left out.
fn rules(dp: &MemoryDataPlane) -> HashMap<SocketAddr, Option<FlowRule>> {
    let mut m = dp.state.lock().unwrap().open.clone();
    for r in m.values_mut().flatten() {
        r.reset_latch = false;
    }
    m
}

fn stored(e: &Engine) -> Vec<Vec<u8>> {
    e.call_ids().iter().map(|id| e.export_call(id).unwrap().to_bytes()).collect()
}

#[test]
fn a_restarted_engine_has_the_same_calls_ports_and_rules() {
    let (mut a, dpa) = engine();
    three_calls(&mut a);
    assert_eq!(a.call_ids(), ["plain", "sdes", "webrtc"]);
    let records = stored(&a);
    // a new process: another engine, another data plane, a new DTLS certificate
    let (mut b, dpb) = engine();
    let mut other = (*control::dtls_sdp::test_identity()).clone();
    other.cert_der = b"another certificate".to_vec();
    b.set_dtls_identity(Arc::new(other));
    for r in &records {
        b.restore_call(CallRecord::from_bytes(r).unwrap(), 0).unwrap();
    }
    assert_eq!(b.call_ids(), a.call_ids());
    assert_eq!(b.ports_in_use(), a.ports_in_use());
    assert_eq!(rules(&dpb), rules(&dpa), "every socket open with the rule it had");
    // the browser's leg keeps the certificate it was advertised, whatever the process has now
    let fp = |e: &Engine| {
        e.calls["webrtc"].monologues.iter().flat_map(|m| &m.legs).find_map(|l| l.dtls.identity.clone()).unwrap()
    };
    assert_eq!(fp(&b).fingerprint, control::dtls_sdp::test_identity().fingerprint);
    // and the calls go on: a re-offer, a delete
    let re = cmd(
        &mut b,
        &[("command", "offer"), ("call-id", "sdes"), ("from-tag", "a"), ("sdp", &sdp(4002, "RTP/SAVP", CRYPTO))],
    );
    assert!(ok(&re), "{re:?}");
    assert!(ok(&cmd(&mut b, &[("command", "delete"), ("call-id", "plain"), ("delete-delay", "0")])));
    assert_eq!(b.call_ids(), ["sdes", "webrtc"]);
    // a record for a call the relay has is refused and holds nothing more
    let before = b.ports_in_use();
    let again = CallRecord::from_bytes(&records[1]).unwrap();
    assert!(b.restore_call(again, 0).unwrap_err().contains("already"));
    assert_eq!(b.ports_in_use(), before);
}

#[test]
fn ports_taken_or_a_foreign_interface_refuse_the_record_and_hold_nothing() {
    let (mut a, _) = engine();
    three_calls(&mut a);
    let records = stored(&a);
    let (mut b, dpb) = engine();
    // another process holds one port of the SDES call
    let r = CallRecord::from_bytes(&records[1]).unwrap();
    let taken = r.call.sockets()[3];
    dpb.state.lock().unwrap().refuse.push(taken);
    let why = b.restore_call(r, 0).unwrap_err();
    assert!(why.contains("taken"), "{why}");
    assert_eq!((b.ports_in_use(), dpb.state.lock().unwrap().open.len()), (0, 0));
    // a relay on other addresses
    let dp = Arc::new(MemoryDataPlane::default());
    let cfg = EngineConfig {
        interfaces: vec![control::interface::Interface::parse("192.0.2.1").unwrap()],
        port_min: 30000,
        port_max: 30199,
        ..EngineConfig::default()
    };
    let mut c = Engine::new(cfg, dp.clone());
    let why = c.restore_call(CallRecord::from_bytes(&records[0]).unwrap(), 0).unwrap_err();
    assert!(why.contains("no interface"), "{why}");
    // a port range that does not hold the port
    let (mut d, _) = engine();
    d.cfg.max_calls = 1;
    d.restore_call(CallRecord::from_bytes(&records[0]).unwrap(), 0).unwrap();
    assert!(d.restore_call(CallRecord::from_bytes(&records[1]).unwrap(), 0).unwrap_err().contains("max-calls"));
}

#[test]
fn timers_continue_and_a_call_that_ended_while_down_is_refused() {
    let (mut a, _) = engine();
    three_calls(&mut a);
    let mut r = a.export_call("plain").unwrap();
    r.taken_unix_ms = 1_000_000;
    r.taken_ms = 2_000;
    let (mut b, _) = engine();
    // down 10 s: the call was signalled 10 s (plus its age) ago on the new clock
    b.restore_call_at(r.clone(), 100_000, 1_010_000).unwrap();
    let c = &b.calls["plain"];
    assert_eq!(c.last_signal_ms, 100_000 - 1_000 - 10_000, "signalled at 1 s, taken at 2 s, 10 s down");
    // down past --timeout (60 s): refused, nothing held
    let (mut b, dpb) = engine();
    let why = b.restore_call_at(r.clone(), 100_000, 1_000_000 + 61_000).unwrap_err();
    assert!(why.contains("timeout passed while relayd was down"), "{why}");
    assert_eq!(dpb.state.lock().unwrap().open.len(), 0);
    // a delete with a delay that ran out while down
    r.call.delete_at_ms = Some(r.taken_ms + 5_000);
    let why = b.restore_call_at(r, 100_000, 1_006_000).unwrap_err();
    assert!(why.contains("deleted"), "{why}");
}

#[test]
fn an_unknown_version_is_refused_by_name() {
    let (mut a, _) = engine();
    three_calls(&mut a);
    let mut r = a.export_call("plain").unwrap();
    r.version = RECORD_VERSION + 1;
    let why = CallRecord::from_bytes(&r.to_bytes()).unwrap_err();
    assert!(why.contains(&format!("record version {}", RECORD_VERSION + 1)), "{why}");
    let (mut b, _) = engine();
    assert!(b.restore_call(r, 0).is_err());
    assert!(CallRecord::from_bytes(b"").is_err());
    assert!(CallRecord::from_bytes(&vec![b' '; control::persist::MAX_RECORD_BYTES + 1]).is_err());
}

/// Corrupt records (every byte position changed, truncated, garbage) never panic, and a
/// refused one leaves no port held.
#[test]
fn mutated_records_never_panic_nor_leak_ports() {
    let (mut a, _) = engine();
    three_calls(&mut a);
    let records = stored(&a);
    let mut restored = 0;
    for good in &records {
        for i in (0..good.len()).step_by(13) {
            for m in [b'7', b'"', b'-', 0xff] {
                let mut bad = good.clone();
                bad[i] = m;
                let (mut b, dpb) = engine();
                if let Ok(r) = CallRecord::from_bytes(&bad) {
                    match b.restore_call(r, 0) {
                        Ok(()) => {
                            restored += 1;
                            b.tick(0);
                        }
                        Err(_) => {
                            assert_eq!(b.ports_in_use(), 0, "byte {i} = {m}");
                            assert_eq!(dpb.state.lock().unwrap().open.len(), 0, "byte {i} = {m}");
                        }
                    }
                }
            }
            let _ = CallRecord::from_bytes(&good[..i]);
        }
    }
    assert!(restored > 0, "some changes (a digit of a port, of a counter) still make a call");
}

#[test]
fn a_draining_relay_refuses_new_calls_only() {
    let (mut e, _) = engine();
    three_calls(&mut e);
    e.set_draining(true);
    assert!(e.draining());
    let offer = |id: &str| {
        vec![
            ("command".to_string(), id.to_string()),
            ("call-id".to_string(), "new".to_string()),
            ("from-tag".to_string(), "a".to_string()),
            ("sdp".to_string(), sdp(4000, "RTP/AVP", "")),
        ]
    };
    let o = offer("offer");
    let pairs: Vec<(&str, &str)> = o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = cmd(&mut e, &pairs);
    assert_eq!(r.get("result").and_then(Value::as_str), Some("error"));
    assert!(r.get("error-reason").and_then(Value::as_str).unwrap().contains("draining"), "{r:?}");
    // Kamailio says it understands "load limit": then it tries the next relay of its set
    let mut req = Value::dict();
    for (k, v) in &pairs {
        req.insert(k, (*v).into());
    }
    req.insert("supports", Value::List(vec!["load limit".into()]));
    let r = e.command(&req, 1000, UNIX);
    assert_eq!(r.get("result").and_then(Value::as_str), Some("load limit"), "{r:?}");
    assert!(r.get("message").and_then(Value::as_str).unwrap().contains("draining"));
    // running calls: re-offer, answer, query, delete
    let re = cmd(
        &mut e,
        &[("command", "offer"), ("call-id", "sdes"), ("from-tag", "a"), ("sdp", &sdp(4002, "RTP/SAVP", CRYPTO))],
    );
    assert!(ok(&re), "{re:?}");
    let an = cmd(
        &mut e,
        &[
            ("command", "answer"),
            ("call-id", "sdes"),
            ("from-tag", "a"),
            ("to-tag", "b"),
            ("sdp", &sdp(5002, "RTP/SAVP", CRYPTO)),
        ],
    );
    assert!(ok(&an), "{an:?}");
    assert!(ok(&cmd(&mut e, &[("command", "query"), ("call-id", "plain")])));
    assert!(ok(&cmd(&mut e, &[("command", "delete"), ("call-id", "plain")])));
    assert_eq!(e.status()["draining"], true);
    e.set_draining(false);
    assert!(ok(&cmd(&mut e, &pairs)));
}

#[test]
fn drain_and_status_over_the_http_api() {
    use control::http::{route, Api, HttpOptions};
    let (e, _) = engine();
    let api =
        Api::new(Arc::new(std::sync::Mutex::new(e)), HttpOptions { token: Some("tok".into()), ..Default::default() });
    let auth: [(&str, &[u8]); 1] = [("authorization", b"Bearer tok")];
    assert_eq!(route(&api, "POST", "/drain", &[]).status, 401, "drain needs the token");
    let r = route(&api, "POST", "/drain", &auth);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!((v["draining"].as_bool(), v["calls"].as_u64()), (Some(true), Some(0)));
    assert!(v["state_store"].is_null(), "no store in a bare engine");
    let s: serde_json::Value = serde_json::from_str(&route(&api, "GET", "/status", &[]).body).unwrap();
    assert_eq!(s["draining"], true);
    let r = route(&api, "POST", "/drain?off", &auth);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["draining"], false);
    route(&api, "POST", "/drain", &auth);
    let r = route(&api, "DELETE", "/drain", &auth);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["draining"], false);
}

/// The fuzz target's seeds (fuzz/seeds/call_record/) are real records: these calls'.
/// `WRITE_SEEDS=1 cargo test -p control --test persist seeds` writes them again.
#[test]
fn seeds_are_real_records() {
    let (mut a, _) = engine();
    three_calls(&mut a);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/call_record");
    for id in a.call_ids() {
        let bytes = a.export_call(&id).unwrap().to_bytes();
        let path = dir.join(format!("{id}.json"));
        if std::env::var_os("WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let seed = std::fs::read(&path).unwrap();
        let (mut b, _) = engine();
        // restored as if relayd came back right after it was written (the seeds are files:
        // against today's clock their calls would have timed out long ago)
        let r = CallRecord::from_bytes(&seed).unwrap();
        let written = r.taken_unix_ms;
        b.restore_call_at(r, 0, written).unwrap();
    }
}
