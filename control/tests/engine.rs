//! The control plane without sockets: requests in, replies and flow rules out, time as
//! an argument.

use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::{EndReason, Engine, EngineConfig};
use control::interface::Interface;
use control::ng::NgServer;
use rules::dataplane::{FlowKind, MemoryDataPlane};

fn engine(cfg: EngineConfig) -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    (Engine::new(cfg, dp.clone()), dp)
}

fn cfg() -> EngineConfig {
    EngineConfig {
        interfaces: vec![
            Interface::parse("pub/192.0.2.1!203.0.113.1").unwrap(),
            Interface::parse("priv/10.0.0.1").unwrap(),
        ],
        port_min: 30000,
        port_max: 30099,
        timeout: 60,
        silent_timeout: 600,
        final_timeout: 0,
        delete_delay: 30,
        ..Default::default()
    }
}

fn req(pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::dict();
    for (k, x) in pairs {
        v.insert(k, x.clone());
    }
    v
}

fn sdp(ip: &str, port: u16, extra: &str) -> Value {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\n{extra}").into()
}

fn offer(e: &mut Engine, cid: &str, ft: &str, body: Value, extra: &[(&str, Value)], now: u64) -> Value {
    let mut p = vec![("command", "offer".into()), ("call-id", cid.into()), ("from-tag", ft.into()), ("sdp", body)];
    p.extend_from_slice(extra);
    e.command(&req(&p), now, 1_700_000_000)
}

fn answer(e: &mut Engine, cid: &str, ft: &str, tt: &str, body: Value, now: u64) -> Value {
    e.command(
        &req(&[
            ("command", "answer".into()),
            ("call-id", cid.into()),
            ("from-tag", ft.into()),
            ("to-tag", tt.into()),
            ("sdp", body),
        ]),
        now,
        1_700_000_000,
    )
}

fn result(v: &Value) -> &str {
    v.get("result").and_then(Value::as_str).unwrap_or("?")
}

fn out_sdp(v: &Value) -> String {
    v.get("sdp").and_then(Value::as_str).unwrap_or_else(|| panic!("no sdp: {v:?}")).to_string()
}

fn mport(s: &str) -> u16 {
    s.lines().find(|l| l.starts_with("m=")).unwrap().split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn nat_advertised_address_and_interface_bridging() {
    let (mut e, dp) = engine(cfg());
    let o = offer(
        &mut e,
        "c",
        "a",
        sdp("198.51.100.7", 4000, ""),
        &[("direction", Value::List(vec!["pub".into(), "priv".into()]))],
        0,
    );
    let s = out_sdp(&o);
    assert!(s.contains("c=IN IP4 10.0.0.1"), "towards the private side: {s}");
    let a = answer(&mut e, "c", "a", "b", sdp("10.0.0.50", 5000, ""), 10);
    let s = out_sdp(&a);
    assert!(s.contains("c=IN IP4 203.0.113.1"), "towards the public side the advertised address: {s}");
    // rules: media from the public side leaves through a private socket to the callee
    let st = dp.state.lock().unwrap();
    let r = st
        .open
        .values()
        .flatten()
        .find(|r| r.local.ip().to_string() == "192.0.2.1" && r.kind == FlowKind::Rtp)
        .unwrap();
    assert_eq!(r.signalled_peer, Some("198.51.100.7:4000".parse().unwrap()));
    assert_eq!(r.egress_rtp.unwrap().ip().to_string(), "10.0.0.1");
}

#[test]
fn timeouts_by_reason() {
    let mut c = cfg();
    c.timeout = 10;
    c.silent_timeout = 100;
    c.final_timeout = 1000;
    let (mut e, dp) = engine(c);
    offer(&mut e, "active", "a", sdp("198.51.100.7", 4000, ""), &[], 0);
    answer(&mut e, "active", "a", "b", sdp("198.51.100.8", 5000, ""), 0);
    offer(&mut e, "held", "a", sdp("0.0.0.0", 4000, ""), &[], 0);
    answer(&mut e, "held", "a", "b", sdp("0.0.0.0", 5000, "a=inactive\r\n"), 0);
    offer(&mut e, "long", "a", sdp("198.51.100.7", 4002, ""), &[], 0);
    answer(&mut e, "long", "a", "b", sdp("198.51.100.8", 5002, ""), 0);
    // "long" keeps sending media
    let long_sock: Vec<SocketAddr> = e.calls["long"].sockets();
    let mut t = 0;
    let mut ended = Vec::new();
    while t <= 1_000_000 {
        {
            let mut st = dp.state.lock().unwrap();
            st.now_ms = t;
            for s in &long_sock {
                st.counters.entry(*s).or_default().last_packet_ms = t;
            }
        }
        ended.extend(e.tick(t).into_iter().map(|(id, r)| (id, r, t)));
        t += 1000;
    }
    assert_eq!(
        ended,
        vec![
            ("active".to_string(), EndReason::Timeout, 10_000),
            ("held".to_string(), EndReason::SilentTimeout, 100_000),
            ("long".to_string(), EndReason::FinalTimeout, 1_000_000)
        ]
    );
    assert_eq!(e.ports_in_use(), 0);
    assert_eq!(e.stats.ended["timeout"], 1);
}

#[test]
fn delete_delay_keeps_media_then_releases() {
    let (mut e, _dp) = engine(cfg());
    offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 0);
    answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 0);
    let d =
        e.command(&req(&[("command", "delete".into()), ("call-id", "c".into()), ("from-tag", "a".into())]), 1000, 0);
    assert_eq!(result(&d), "ok");
    assert!(d.get("totals").is_some());
    assert_eq!(e.ports_in_use(), 4, "the call lingers for delete-delay");
    e.tick(30_000);
    assert_eq!(e.ports_in_use(), 4);
    e.tick(31_000);
    assert_eq!(e.ports_in_use(), 0);
    // gone: ok with rtpengine's warning, an error only with the fatal flag
    let d = e.command(&req(&[("command", "delete".into()), ("call-id", "c".into())]), 32_000, 0);
    assert_eq!(result(&d), "ok");
    assert_eq!(d.get("warning").and_then(Value::as_str), Some("Call-ID not found or tags didn't match"));
    let fatal = Value::List(vec!["fatal".into()]);
    let d = e.command(&req(&[("command", "delete".into()), ("call-id", "c".into()), ("flags", fatal)]), 32_000, 0);
    assert!(d.get("error-reason").unwrap().as_str().unwrap().contains("Unknown call-id"));
}

#[test]
fn reverse_reinvite_and_hold() {
    let (mut e, dp) = engine(cfg());
    let o = out_sdp(&offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 0));
    let a = out_sdp(&answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 0));
    // the callee re-INVITEs putting the call on hold (sendonly)
    let o2 = out_sdp(&offer(&mut e, "c", "b", sdp("198.51.100.8", 5000, "a=sendonly\r\n"), &[], 10));
    assert!(o2.contains("a=sendonly"));
    assert_eq!(mport(&o2), mport(&a), "the caller keeps talking to the same relay port");
    let a2 = out_sdp(&answer(&mut e, "c", "b", "a", sdp("198.51.100.7", 4000, "a=recvonly\r\n"), 20));
    assert_eq!(mport(&a2), mport(&o), "the callee keeps its relay port");
    assert!(a2.contains("a=recvonly"));
    // legacy hold: c=0.0.0.0 -> the relay keeps 0.0.0.0 and sendonly, and stops sending there
    let o3 = out_sdp(&offer(&mut e, "c", "a", sdp("0.0.0.0", 4000, ""), &[], 30));
    assert!(o3.contains("c=IN IP4 0.0.0.0") && o3.contains("a=sendonly"), "{o3}");
    let st = dp.state.lock().unwrap();
    let held = st.open.values().flatten().find(|r| r.local.port() == mport(&a)).unwrap();
    assert_eq!(held.signalled_peer, None);
}

#[test]
fn failed_request_leaves_the_call_as_it_was() {
    let mut c = cfg();
    c.port_max = 30005; // 3 pairs per interface: one call and a half
    let (mut e, _dp) = engine(c);
    assert_eq!(result(&offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 0)), "ok");
    // a re-offer adding a video stream cannot get ports: error, and the audio stays
    let two = format!(
        "{}m=video 6000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
        sdp("198.51.100.7", 4000, "").as_str().unwrap()
    );
    let r = offer(&mut e, "c", "a", two.into(), &[], 10);
    assert_eq!(result(&r), "error");
    assert_eq!(e.ports_in_use(), 4);
    assert_eq!(e.calls["c"].monologues[0].legs.len(), 1);
    // a second call cannot be set up either, and leaves nothing behind
    assert_eq!(result(&offer(&mut e, "d", "a", sdp("198.51.100.7", 4000, ""), &[], 0)), "error");
    assert!(!e.calls.contains_key("d"));
}

#[test]
fn label_query_list_statistics() {
    let (mut e, _dp) = engine(cfg());
    offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[("label", "caller".into())], 0);
    answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 0);
    let q = e.command(&req(&[("command", "query".into()), ("call-id", "c".into())]), 5, 0);
    let tag = q.get("tags").unwrap().get("a").unwrap();
    assert_eq!(tag.get("label").unwrap().as_str(), Some("caller"));
    assert_eq!(tag.get("in dialogue with").unwrap().as_str(), Some("b"));
    assert_eq!(tag.get("medias").unwrap().as_list().unwrap().len(), 1);
    let l = e.command(&req(&[("command", "list".into())]), 5, 0);
    assert_eq!(l.get("calls").unwrap().as_list().unwrap().len(), 1);
    let s = e.command(&req(&[("command", "statistics".into())]), 5, 0);
    assert_eq!(
        s.get("statistics").unwrap().get("currentstatistics").unwrap().get("sessionsown").unwrap().as_int(),
        Some(1)
    );
}

/// Mutated requests through the whole ng path (bencode, flags, SDP, call model): errors,
/// never a panic. A bounded, deterministic stand-in for the cargo-fuzz targets in fuzz/.
#[test]
fn mutated_requests_never_panic() {
    let (mut e, _dp) = engine(cfg());
    let mut ng = NgServer::new();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut good = Vec::new();
    req(&[
        ("command", "offer".into()),
        ("call-id", "g".into()),
        ("from-tag", "a".into()),
        ("flags", Value::List(vec!["trust-address".into(), "codec-strip-PCMA".into()])),
        ("replace", Value::List(vec!["origin".into(), "SDP version".into()])),
        ("rtcp-mux", Value::List(vec!["demux".into()])),
        (
            "sdp",
            sdp(
                "198.51.100.7",
                4000,
                "a=rtcp:4001\r\na=rtcp-mux\r\nm=video 6000 RTP/AVP 96\r\nc=IN IP6 ::1\r\nm=image 0 udptl t38\r\n",
            ),
        ),
    ])
    .encode_into(&mut good);
    for i in 0..20_000u32 {
        let mut m = good.clone();
        for _ in 0..1 + rnd() % 4 {
            let pos = (rnd() as usize) % m.len();
            match rnd() % 3 {
                0 => m[pos] = rnd() as u8,
                1 => m.truncate(pos.max(1)),
                _ => m.insert(pos, b"0123456789:ed-\r\n="[(rnd() % 17) as usize]),
            }
        }
        let mut d = format!("k{i} ").into_bytes();
        d.extend(m);
        assert!(ng.handle(&mut e, "192.0.2.9:5060".parse().unwrap(), &d, i as u64, 0).is_some());
    }
    // contained panics count as failures here
    assert_eq!(e.stats.panics, 0);
    e.tick(u64::MAX / 2);
}

fn savp(ip: &str, port: u16, crypto: &[&str]) -> Value {
    let lines: String = crypto.iter().map(|l| format!("{l}\r\n")).collect();
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/SAVP 0\r\n{lines}")
        .into()
}

fn cryptos(sdp: &str) -> Vec<String> {
    sdp.lines().filter(|l| l.starts_with("a=crypto:")).map(str::to_string).collect()
}

const A_80: &str = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv";
const A_32: &str = "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:VAzLKvoE3jG9cdH/AZsl/ZqWNXrUzyM4Gw6chrFr";

#[test]
fn sdes_flags_shape_the_offer() {
    let (mut e, _dp) = engine(cfg());
    let tp = ("transport-protocol", Value::from("RTP/SAVP"));
    // AVP -> SAVP: every suite, under rtpengine's tags
    let o = out_sdp(&offer(&mut e, "c1", "a", sdp("198.51.100.7", 4000, ""), std::slice::from_ref(&tp), 0));
    let tags: Vec<String> = cryptos(&o).iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        tags,
        [
            "a=crypto:1 AEAD_AES_256_GCM",
            "a=crypto:2 AEAD_AES_128_GCM",
            "a=crypto:3 AES_256_CM_HMAC_SHA1_80",
            "a=crypto:4 AES_256_CM_HMAC_SHA1_32",
            "a=crypto:5 AES_192_CM_HMAC_SHA1_80",
            "a=crypto:6 AES_192_CM_HMAC_SHA1_32",
            "a=crypto:7 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:8 AES_CM_128_HMAC_SHA1_32",
            "a=crypto:9 F8_128_HMAC_SHA1_80",
            "a=crypto:10 F8_128_HMAC_SHA1_32",
            "a=crypto:11 NULL_HMAC_SHA1_80",
            "a=crypto:12 NULL_HMAC_SHA1_32"
        ]
    );
    assert!(
        cryptos(&o).iter().all(|l| !l.contains('=') || l.ends_with(|c: char| c != '=')),
        "no base64 padding by default"
    );
    // SDES-only / SDES-no / lifetime / pad
    let flags =
        Value::List(vec!["SDES-only-AES_256_CM_HMAC_SHA1_80".into(), "SDES-pad".into(), "SDES-lifetime".into()]);
    let o = out_sdp(&offer(&mut e, "c2", "a", sdp("198.51.100.7", 4000, ""), &[tp.clone(), ("flags", flags)], 0));
    let c = cryptos(&o);
    assert_eq!(c.len(), 1, "{c:?}");
    // suites excluded by flags take no tag number (as in rtpengine), so the only one is 1
    assert!(c[0].starts_with("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:") && c[0].ends_with("==|2^31"), "{c:?}");
    let o = out_sdp(&offer(
        &mut e,
        "c3",
        "a",
        sdp("198.51.100.7", 4000, ""),
        &[tp.clone(), ("SDES", Value::List(vec!["no-AEAD_AES_256_GCM".into()]))],
        0,
    ));
    assert!(!o.contains("AEAD_AES_256_GCM") && o.contains("a=crypto:1 AEAD_AES_128_GCM"), "{o}");
    // SAVP -> SAVP: the offerer's suites first under its tags, with fresh keys; nonew keeps only those
    let o = out_sdp(&offer(&mut e, "c4", "a", savp("198.51.100.7", 4000, &[A_80, A_32]), &[], 0));
    let c = cryptos(&o);
    assert!(
        c[0].starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 ")
            && c[1].starts_with("a=crypto:2 AES_CM_128_HMAC_SHA1_32 ")
    );
    assert_ne!(c[0], A_80, "fresh key towards the answerer");
    assert_eq!(c.len(), 12);
    let o = out_sdp(&offer(
        &mut e,
        "c5",
        "a",
        savp("198.51.100.7", 4000, &[A_80, A_32]),
        &[("SDES", Value::List(vec!["nonew".into()]))],
        0,
    ));
    assert_eq!(cryptos(&o).len(), 2);
    // SDES-off towards a SAVP leg: no keys offered; to plain RTP: crypto stripped
    let o = out_sdp(&offer(
        &mut e,
        "c6",
        "a",
        savp("198.51.100.7", 4000, &[A_80]),
        &[("transport-protocol", "RTP/AVP".into())],
        0,
    ));
    assert!(cryptos(&o).is_empty() && o.contains("RTP/AVP"), "{o}");
    let o = out_sdp(&offer(
        &mut e,
        "c7",
        "a",
        savp("198.51.100.7", 4000, &[A_80]),
        &[("SDES", Value::List(vec!["off".into()]))],
        0,
    ));
    assert!(cryptos(&o).is_empty(), "{o}");
    // every flag combination that leaves nothing to offer is an error, not an empty offer
    let r = offer(
        &mut e,
        "c8",
        "a",
        sdp("198.51.100.7", 4000, ""),
        &[tp, ("SDES", Value::List(vec!["only-SEED_128_CTR_HMAC_SHA1_80".into()]))],
        0,
    );
    assert!(r.get("error-reason").unwrap().as_str().unwrap().contains("no SRTP suite"));
}

#[test]
fn sdes_answer_picks_and_rekeys() {
    let (mut e, dp) = engine(cfg());
    // A offers two suites; B (plain) answers: A gets A's first suite back with a relay key
    offer(&mut e, "c", "a", savp("198.51.100.7", 4000, &[A_80, A_32]), &[("transport-protocol", "RTP/AVP".into())], 0);
    let a = out_sdp(&answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 0));
    let c = cryptos(&a);
    assert_eq!(c.len(), 1);
    assert!(c[0].starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 ") && c[0] != A_80 && a.contains("RTP/SAVP"), "{a}");
    // the rules: A's socket decrypts with A's key and encrypts with the relay's; B's is plain
    let st = dp.state.lock().unwrap();
    let rules: Vec<_> = st.open.values().flatten().filter(|r| r.kind == FlowKind::Rtp).collect();
    let a_rule = rules.iter().find(|r| r.signalled_peer == Some("198.51.100.7:4000".parse().unwrap())).unwrap();
    let b_rule = rules.iter().find(|r| r.signalled_peer == Some("198.51.100.8:5000".parse().unwrap())).unwrap();
    let a_key = control::sdes::parse(A_80).unwrap().key;
    assert_eq!(a_rule.srtp_in.as_ref(), Some(&a_key));
    assert_eq!(a_rule.srtp_out.as_ref(), Some(&control::sdes::parse(&c[0]).unwrap().key));
    assert!(b_rule.srtp_in.is_none() && b_rule.srtp_out.is_none());
    drop(st);
    // an answer picking a tag that was never offered is an error
    offer(&mut e, "d", "a", sdp("198.51.100.7", 4000, ""), &[("transport-protocol", "RTP/SAVP".into())], 0);
    let r = answer(
        &mut e,
        "d",
        "a",
        "b",
        savp(
            "198.51.100.8",
            5000,
            &["a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv"],
        ),
        0,
    );
    assert!(r.get("error-reason").unwrap().as_str().unwrap().contains("not offered"), "{r:?}");
}

// --- signalled media addresses (docs/ng-protocol.md, docs/security.md) ---

use rules::addrpolicy::AddressPolicy;

/// A relay on 192.0.2.1 (advertised 203.0.113.1) and 10.0.0.1, ng on 127.0.0.1:2223, HTTP
/// on 127.0.0.1:9900: the policy relayd builds from that configuration.
fn prod_cfg() -> EngineConfig {
    let mut c = cfg();
    c.media_policy = AddressPolicy {
        own: ["192.0.2.1", "203.0.113.1", "10.0.0.1", "127.0.0.1"].iter().map(|a| a.parse().unwrap()).collect(),
        own_ports: vec![(30000, 30099), (2223, 2223), (9900, 9900)],
        lab_loopback: false,
        allow: Vec::new(),
        deny: vec!["198.18.0.0/15".parse().unwrap()],
    };
    c
}

/// A lab relay whose media interface is loopback.
fn lab_cfg() -> EngineConfig {
    let mut c = cfg();
    c.interfaces = vec![Interface::parse("127.0.0.1").unwrap()];
    c.media_policy = AddressPolicy {
        own: vec!["127.0.0.1".parse().unwrap()],
        own_ports: vec![(30000, 30099), (2223, 2223), (9900, 9900)],
        lab_loopback: true,
        allow: Vec::new(),
        deny: Vec::new(),
    };
    c
}

fn error_reason(v: &Value) -> String {
    assert_eq!(result(v), "error", "{v:?}");
    v.get("error-reason").and_then(Value::as_str).unwrap().to_string()
}

/// Offers `body` as a new call and expects a refusal naming `what`; nothing is left behind.
fn refused(e: &mut Engine, dp: &MemoryDataPlane, body: Value, what: &str) {
    let (ports, open, calls) = (e.ports_in_use(), dp.state.lock().unwrap().open.len(), e.calls.len());
    let why = error_reason(&offer(e, "refused", "a", body, &[], 0));
    assert!(why.contains(what), "{why:?} should contain {what:?}");
    assert_eq!(e.ports_in_use(), ports, "ports leaked by a refused offer");
    assert_eq!(dp.state.lock().unwrap().open.len(), open, "sockets leaked by a refused offer");
    assert_eq!(e.calls.len(), calls);
}

#[test]
fn signalled_media_addresses_are_refused_with_the_address_and_reason() {
    let (mut e, dp) = engine(prod_cfg());
    // a call in progress: refusals of other offers must not touch it
    assert_eq!(result(&offer(&mut e, "ok", "a", sdp("198.51.100.7", 4000, ""), &[], 0)), "ok");
    let rp = |s: &str| s.to_string();
    // loopback: the relay's ng port, or any local UDP service
    refused(&mut e, &dp, sdp("127.0.0.1", 2223, ""), &rp("media address 127.0.0.1:2223 refused: loopback address"));
    refused(&mut e, &dp, sdp("127.0.0.53", 53, ""), "127.0.0.53:53 refused: loopback address");
    // the relay's own addresses: interface, advertised, with the ng port or any other
    refused(&mut e, &dp, sdp("192.0.2.1", 2223, ""), "192.0.2.1:2223 refused: the relay's own address");
    refused(&mut e, &dp, sdp("203.0.113.1", 4000, ""), "203.0.113.1:4000 refused: the relay's own address");
    refused(&mut e, &dp, sdp("10.0.0.1", 30002, ""), "10.0.0.1:30002 refused: the relay's own address");
    // multicast (with a TTL), broadcast, link-local, the deny-list
    refused(&mut e, &dp, sdp("239.1.2.3/127", 4000, ""), "239.1.2.3:4000 refused: multicast address");
    refused(&mut e, &dp, sdp("255.255.255.255", 4000, ""), "refused: broadcast address");
    refused(&mut e, &dp, sdp("169.254.10.1", 4000, ""), "169.254.10.1:4000 refused: link-local address");
    let v6 = |ip: &str| -> Value {
        format!("v=0\r\no=- 1 1 IN IP6 {ip}\r\ns=-\r\nc=IN IP6 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n").into()
    };
    refused(&mut e, &dp, v6("fe80::1"), "[fe80::1]:4000 refused: link-local address");
    refused(&mut e, &dp, v6("::1"), "[::1]:4000 refused: loopback address");
    refused(&mut e, &dp, v6("::ffff:127.0.0.1"), "refused: loopback address");
    refused(&mut e, &dp, sdp("198.18.5.5", 4000, ""), "198.18.5.5:4000 refused: address in the media deny-list");
    // a=rtcp: its address and port are where RTCP goes
    refused(
        &mut e,
        &dp,
        sdp("198.51.100.7", 4000, "a=rtcp:30002 IN IP4 203.0.113.1\r\n"),
        "media address 203.0.113.1:30002 refused: the relay's own address (a=rtcp)",
    );
    refused(&mut e, &dp, sdp("198.51.100.7", 4000, "a=rtcp:4001 IN IP4 127.0.0.1\r\n"), "127.0.0.1:4001 refused");
    // a media-level c= overrides a good session-level one
    let body = format!(
        "{}m=video 6000 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 VP8/90000\r\n",
        sdp("198.51.100.7", 4000, "").as_str().unwrap()
    );
    refused(&mut e, &dp, body.into(), "127.0.0.1:6000 refused: loopback address");
    // what rtpengine ignores is still accepted: hold, a rejected stream, a=rtcp without
    // a usable address or port
    assert_eq!(result(&offer(&mut e, "hold", "a", sdp("0.0.0.0", 4000, ""), &[], 0)), "ok");
    assert_eq!(result(&offer(&mut e, "rejected", "a", sdp("127.0.0.1", 0, ""), &[], 0)), "ok");
    let o = offer(&mut e, "rtcp0", "a", sdp("198.51.100.7", 4000, "a=rtcp:0 IN IP4 0.0.0.0\r\n"), &[], 0);
    assert_eq!(result(&o), "ok");
    let r = e.calls["rtcp0"].monologues[0].legs[0].peer_rtcp;
    assert_eq!(r, Some("198.51.100.7:4001".parse().unwrap()), "a=rtcp:0 and 0.0.0.0 are ignored");
    let o = offer(&mut e, "rtcpaddr", "a", sdp("198.51.100.7", 4000, "a=rtcp:5555 IN IP4 198.51.100.9\r\n"), &[], 0);
    assert_eq!(result(&o), "ok");
    let r = e.calls["rtcpaddr"].monologues[0].legs[0].peer_rtcp;
    assert_eq!(r, Some("198.51.100.9:5555".parse().unwrap()), "a=rtcp's address is where RTCP goes");
    // private addresses are fine (NATed phones)
    assert_eq!(result(&offer(&mut e, "nat", "a", sdp("192.168.1.20", 4000, ""), &[], 0)), "ok");
    assert_eq!(e.ports_in_use(), 5 * 4);
}

#[test]
fn refused_answers_and_reoffers_leave_the_call_as_it_was() {
    let (mut e, dp) = engine(prod_cfg());
    let o = out_sdp(&offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 0));
    let (ports, open) = (e.ports_in_use(), dp.state.lock().unwrap().open.len());
    let why = error_reason(&answer(&mut e, "c", "a", "b", sdp("127.0.0.1", 2223, ""), 10));
    assert!(why.contains("127.0.0.1:2223 refused"), "{why}");
    assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (ports, open));
    // the good answer still works afterwards
    let a = out_sdp(&answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 20));
    // a re-offer adding a stream towards loopback: the new stream's ports come back
    let two = format!(
        "{}m=video 6000 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 VP8/90000\r\n",
        sdp("198.51.100.7", 4000, "").as_str().unwrap()
    );
    let why = error_reason(&offer(&mut e, "c", "a", two.into(), &[], 30));
    assert!(why.contains("127.0.0.1:6000 refused"), "{why}");
    assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (ports, open));
    // a re-offer moving RTCP onto the relay's own port (the forwarding loop)
    let loopy = sdp("198.51.100.7", 4000, &format!("a=rtcp:{} IN IP4 192.0.2.1\r\n", mport(&a)));
    assert!(error_reason(&offer(&mut e, "c", "a", loopy, &[], 40)).contains("(a=rtcp)"));
    assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (ports, open));
    let c = &e.calls["c"];
    assert_eq!(c.monologues[0].legs.len(), 1);
    assert_eq!(c.monologues[0].legs[0].peer, Some("198.51.100.7:4000".parse().unwrap()));
    assert_eq!(c.monologues[1].legs[0].peer, Some("198.51.100.8:5000".parse().unwrap()));
    assert_eq!(mport(&o), c.monologues[1].legs[0].port);
}

/// A rule the data plane refuses refuses the request: an error naming the socket and the
/// reason, no ports or sockets left behind, the call as it was, its rules back in place.
#[test]
fn a_rule_the_data_plane_refuses_refuses_the_request() {
    let mut c = cfg();
    c.port_max = 30007;
    let (mut e, dp) = engine(c);
    let every_socket: Vec<SocketAddr> = ["192.0.2.1", "10.0.0.1"]
        .iter()
        .flat_map(|ip| (30000..=30007).map(move |p| SocketAddr::new(ip.parse().unwrap(), p)))
        .collect();
    dp.state.lock().unwrap().refuse_rules = every_socket;
    refused(&mut e, &dp, sdp("198.51.100.7", 4000, ""), "cannot apply forwarding rule for 192.0.2.1:300");
    refused(&mut e, &dp, sdp("198.51.100.7", 4000, ""), ": the test refuses rules for 192.0.2.1:300");
    assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (0, 0));

    // a call in progress, then a re-offer one of whose rules is refused
    dp.state.lock().unwrap().refuse_rules.clear();
    out_sdp(&offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 0));
    out_sdp(&answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 10));
    let (ports, rules) = (e.ports_in_use(), dp.state.lock().unwrap().open.clone());
    let side = |m: usize| e.calls["c"].monologues[m].legs[0].rtp();
    let (caller_side, callee_side) = (side(0), side(1));
    dp.state.lock().unwrap().refuse_rules = vec![callee_side];
    let why = error_reason(&offer(&mut e, "c", "a", sdp("198.51.100.9", 4002, ""), &[], 20));
    assert!(why.starts_with(&format!("cannot apply forwarding rule for {callee_side}: ")), "{why}");
    assert_eq!(e.ports_in_use(), ports);
    assert_eq!(e.calls["c"].monologues[0].legs[0].peer, Some("198.51.100.7:4000".parse().unwrap()));
    let s = dp.state.lock().unwrap();
    assert_eq!(s.open.len(), rules.len());
    // the caller's side, applied before the refusal, is back to the committed address;
    // the refused socket carries no rule at all (never half of one)
    let peer = |rules: &std::collections::HashMap<SocketAddr, Option<rules::dataplane::FlowRule>>, a| {
        rules[&a].as_ref().map(|r| r.signalled_peer)
    };
    assert_eq!(peer(&s.open, caller_side), peer(&rules, caller_side));
    assert_eq!(peer(&s.open, caller_side), Some(Some("198.51.100.7:4000".parse().unwrap())));
    assert_eq!(peer(&s.open, callee_side), None);
}

#[test]
fn the_allow_list_lifts_loopback_but_never_the_relays_sockets() {
    let mut c = prod_cfg();
    c.media_policy.allow = vec!["127.0.0.0/8".parse().unwrap()];
    let (mut e, dp) = engine(c);
    assert_eq!(result(&offer(&mut e, "c", "a", sdp("127.0.0.1", 4000, ""), &[], 0)), "ok");
    refused(&mut e, &dp, sdp("127.0.0.1", 2223, ""), "127.0.0.1:2223 refused: one of the relay's own sockets");
    refused(&mut e, &dp, sdp("127.0.0.1", 30010, ""), "one of the relay's own sockets");
    refused(&mut e, &dp, sdp("127.0.0.1", 4000, "a=rtcp:9900\r\n"), "127.0.0.1:9900 refused");
}

#[test]
fn lab_mode_allows_loopback_peers_but_not_the_relay() {
    let (mut e, dp) = engine(lab_cfg());
    let o = out_sdp(&offer(&mut e, "c", "a", sdp("127.0.0.1", 5000, ""), &[], 0));
    assert_eq!(result(&answer(&mut e, "c", "a", "b", sdp("127.0.0.1", 6000, ""), 0)), "ok");
    refused(
        &mut e,
        &dp,
        sdp("127.0.0.1", 2223, ""),
        "media address 127.0.0.1:2223 refused: one of the relay's own sockets",
    );
    refused(&mut e, &dp, sdp("127.0.0.1", 9900, ""), "127.0.0.1:9900 refused: one of the relay's own sockets");
    // the relay's sockets are bound to 127.0.0.1: other loopback addresses do not reach
    // them (rtpengine's tests use 127.51.100.x peers with ports in the relay's range)...
    assert_eq!(result(&offer(&mut e, "other", "a", sdp("127.51.100.1", 30002, ""), &[], 0)), "ok");
    // ...unless one listens on the wildcard address
    let mut wild = lab_cfg();
    wild.media_policy.own.push("0.0.0.0".parse().unwrap());
    let (mut e2, dp2) = engine(wild);
    refused(&mut e2, &dp2, sdp("127.51.100.1", 2223, ""), "127.51.100.1:2223 refused: one of the relay's own sockets");
    // the rtcp-mux loop: RTCP towards the relay's own RTP port
    let loopy = sdp("127.0.0.1", 6000, &format!("a=rtcp:{}\r\na=rtcp-mux\r\n", mport(&o)));
    let why = error_reason(&offer(&mut e, "c", "b", loopy, &[], 10));
    assert_eq!(why, format!("media address 127.0.0.1:{} refused: one of the relay's own sockets (a=rtcp)", mport(&o)));
    // an answer whose m= port is the relay's own
    assert_eq!(result(&offer(&mut e, "d", "a", sdp("127.0.0.1", 5002, ""), &[], 0)), "ok");
    let mine = e.calls["d"].monologues[0].legs[0].port;
    let why = error_reason(&answer(&mut e, "d", "a", "b", sdp("127.0.0.1", mine, "a=rtcp-mux\r\n"), 0));
    assert!(why.contains(&format!("127.0.0.1:{mine} refused: one of the relay's own sockets")), "{why}");
}

#[test]
fn received_from_becomes_the_sip_source_of_that_partys_rules() {
    let (mut e, dp) = engine(prod_cfg());
    let rf = |ip: &str| Value::List(vec!["IP4".into(), ip.into()]);
    offer(&mut e, "c", "a", sdp("192.168.1.20", 4000, ""), &[("received-from", rf("198.51.100.70"))], 0);
    let a = answer_with(&mut e, "c", "a", "b", sdp("10.1.1.1", 5000, ""), &[("received-from", rf("198.51.100.80"))]);
    assert_eq!(result(&a), "ok");
    let st = dp.state.lock().unwrap();
    let rules: Vec<_> = st.open.values().flatten().collect();
    assert_eq!(rules.len(), 4);
    for r in &rules {
        let party = if r.signalled_peer.is_some_and(|p| p.ip().to_string() == "192.168.1.20") {
            "198.51.100.70"
        } else if r.signalled_peer.is_some_and(|p| p.ip().to_string() == "10.1.1.1") {
            "198.51.100.80"
        } else {
            panic!("rule without a signalled peer: {r:?}")
        };
        assert_eq!(r.sip_source, Some(party.parse().unwrap()), "{r:?}");
    }
    drop(st);
    // a received-from media may not come from anyway is no hint
    offer(&mut e, "d", "a", sdp("198.51.100.7", 4000, ""), &[("received-from", rf("127.0.0.1"))], 0);
    assert_eq!(e.calls["d"].monologues[0].sip_source, None);
}

fn answer_with(e: &mut Engine, cid: &str, ft: &str, tt: &str, body: Value, extra: &[(&str, Value)]) -> Value {
    let mut p = vec![
        ("command", "answer".into()),
        ("call-id", cid.into()),
        ("from-tag", ft.into()),
        ("to-tag", tt.into()),
        ("sdp", body),
    ];
    p.extend_from_slice(extra);
    e.command(&req(&p), 0, 1_700_000_000)
}

#[test]
fn confirming_the_address_keeps_the_latch() {
    let (mut e, dp) = engine(prod_cfg());
    let resets = |dp: &MemoryDataPlane| -> Vec<(u16, bool)> {
        let st = dp.state.lock().unwrap();
        let mut v: Vec<_> = st.open.values().flatten().map(|r| (r.local.port(), r.reset_latch)).collect();
        v.sort();
        v
    };
    offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 0);
    let callee_leg = e.calls["c"].monologues[1].legs[0].rtp();
    // the callee's media latched before the answer (early media), from the address the
    // answer then names
    dp.state.lock().unwrap().counters.entry(callee_leg).or_default().latched_peer =
        Some("198.51.100.8:5000".parse().unwrap());
    answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 10);
    assert!(resets(&dp).iter().all(|(_, r)| !r), "the answer confirms the latched address: {:?}", resets(&dp));
    // a re-offer and answer with the same SDP keep every latch
    offer(&mut e, "c", "a", sdp("198.51.100.7", 4000, ""), &[], 20);
    assert!(resets(&dp).iter().all(|(_, r)| !r), "{:?}", resets(&dp));
    answer(&mut e, "c", "a", "b", sdp("198.51.100.8", 5000, ""), 30);
    assert!(resets(&dp).iter().all(|(_, r)| !r), "{:?}", resets(&dp));
    // a new address resets the latch of that party's sockets only
    offer(&mut e, "c", "a", sdp("198.51.100.9", 4000, ""), &[], 40);
    let caller = e.calls["c"].monologues[0].legs[0].port;
    for (port, reset) in resets(&dp) {
        assert_eq!(reset, port == caller || port == caller + 1, "port {port}");
    }
}

#[test]
fn relay_ports_are_not_sequential() {
    let mut c = prod_cfg();
    c.port_max = 39999;
    let (mut e, _dp) = engine(c);
    let mut ports = Vec::new();
    for i in 0..500 {
        let o = out_sdp(&offer(&mut e, &format!("c{i}"), "a", sdp("198.51.100.7", 4000, ""), &[], 0));
        ports.push(mport(&o));
        ports.push(e.calls[&format!("c{i}")].monologues[0].legs[0].port);
    }
    let next = ports.windows(2).filter(|w| w[1] == w[0].wrapping_add(2)).count();
    assert!(next < ports.len() / 20, "{next} of {} allocations were the next pair", ports.len());
    assert!(ports.iter().all(|p| p % 2 == 0));
}
