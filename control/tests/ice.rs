//! ICE through the engine: the relay's candidates on every address of the interface
//! (with sockets bound there), the ICE rules the data plane gets, restarts, and hostile
//! ICE attributes (bounded, refused with an error naming them, or ignored as rtpengine
//! ignores them). Nothing is leaked.

use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::{Engine, EngineConfig};
use control::interface::Interface;
use rules::addrpolicy::AddressPolicy;
use rules::dataplane::{FlowRule, MemoryDataPlane};

/// Interface "default" on 192.0.2.1 and 2001:db8::1, as `--interface=A --interface=B`.
fn engine() -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    let cfg = EngineConfig {
        interfaces: vec![Interface::parse("192.0.2.1").unwrap(), Interface::parse("2001:db8::1").unwrap()],
        port_min: 30000,
        port_max: 30999,
        media_policy: AddressPolicy::permissive(),
        ..EngineConfig::default()
    };
    (Engine::new(cfg, dp.clone()), dp)
}

fn command(e: &mut Engine, pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::dict();
    for (k, x) in pairs {
        v.insert(k, x.clone());
    }
    e.command(&v, 1000, 1_700_000_000)
}

fn offer(e: &mut Engine, sdp: &str, extra: &[(&str, Value)]) -> Value {
    let mut p =
        vec![("command", "offer".into()), ("call-id", "c".into()), ("from-tag", "a".into()), ("sdp", sdp.into())];
    p.extend(extra.iter().cloned());
    command(e, &p)
}

fn answer(e: &mut Engine, sdp: &str, extra: &[(&str, Value)]) -> Value {
    let mut p = vec![
        ("command", "answer".into()),
        ("call-id", "c".into()),
        ("from-tag", "a".into()),
        ("to-tag", "b".into()),
        ("sdp", sdp.into()),
    ];
    p.extend(extra.iter().cloned());
    command(e, &p)
}

fn ok_sdp(v: &Value) -> String {
    assert_eq!(v.get("result").and_then(Value::as_str), Some("ok"), "{v:?}");
    v.get("sdp").and_then(Value::as_str).unwrap().to_string()
}

fn reason(v: &Value) -> &str {
    v.get("error-reason").and_then(Value::as_str).unwrap_or("")
}

fn sdp(ip: &str, port: u16, extra: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n{extra}")
}

const BROWSER_ICE: &str = "a=ice-ufrag:Ci7n\r\na=ice-pwd:l9QndxLG6OycZRcQe9zcT95c\r\n\
    a=candidate:1 1 udp 2122262783 198.51.100.7 4000 typ host\r\n";

fn attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| l.strip_prefix(name))
}

fn rule(dp: &MemoryDataPlane, local: SocketAddr) -> FlowRule {
    dp.state.lock().unwrap().open.get(&local).cloned().flatten().expect("a rule on the socket")
}

/// `a=candidate:F 1 UDP P ADDR PORT typ host` → (addr:port)
fn candidates(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter_map(|c| {
            let f: Vec<&str> = c.split(' ').collect();
            Some(SocketAddr::new(f.get(4)?.parse().ok()?, f.get(5)?.parse().ok()?))
        })
        .collect()
}

#[test]
fn an_ice_offer_gets_the_relays_candidates_and_rules_on_every_socket() {
    let (mut e, dp) = engine();
    let out = ok_sdp(&offer(&mut e, &sdp("198.51.100.7", 4000, BROWSER_ICE), &[]));
    assert!(!out.contains("Ci7n") && !out.contains("198.51.100.7 4000"), "the browser's ICE is not passed on: {out}");
    let ufrag_b = attr(&out, "a=ice-ufrag:").unwrap().to_string();
    assert_eq!(ufrag_b.len(), 8);
    assert_eq!(attr(&out, "a=ice-pwd:").unwrap().len(), 26);
    let cands = candidates(&out);
    assert_eq!(cands.len(), 4, "RTP and RTCP on both addresses: {out}");
    assert!(cands[0].ip().is_ipv4() && cands[1].ip().is_ipv6());
    // every advertised candidate is a socket the relay has open
    let open = dp.state.lock().unwrap().open.keys().copied().collect::<Vec<_>>();
    for c in &cands {
        assert!(open.contains(c), "{c} advertised but not bound");
    }
    // the answerer's side: the relay's agent, peer credentials unknown yet
    let r = rule(&dp, cands[1]);
    let ice = r.ice.expect("an ICE rule on the IPv6 candidate socket too");
    assert_eq!((ice.local_ufrag.as_str(), ice.remote_ufrag), (ufrag_b.as_str(), None));

    // a plain answer: the callee rejects ICE (its sockets on the other address go), the
    // browser gets the relay's ICE with its own credentials
    let before = open.len();
    let out = ok_sdp(&answer(&mut e, &sdp("203.0.113.9", 5000, ""), &[]));
    let ufrag_a = attr(&out, "a=ice-ufrag:").unwrap().to_string();
    assert_ne!(ufrag_a, ufrag_b, "credentials per leg");
    let a_cands = candidates(&out);
    let r = rule(&dp, a_cands[0]);
    let ice = r.ice.expect("the browser's leg terminates ICE");
    assert_eq!((ice.local_ufrag.as_str(), ice.remote_ufrag.as_deref()), (ufrag_a.as_str(), Some("Ci7n")));
    assert_eq!(ice.remote_pwd.as_deref(), Some("l9QndxLG6OycZRcQe9zcT95c"));
    assert!(rule(&dp, cands[0]).ice.is_none(), "no ICE towards the plain callee");
    assert_eq!(dp.state.lock().unwrap().open.len(), before - 2, "the callee's IPv6 pair released");

    // an ICE restart from the browser: new relay credentials on its leg only
    let restarted = BROWSER_ICE.replace("Ci7n", "Zx9q");
    let out = ok_sdp(&offer(&mut e, &sdp("198.51.100.7", 4000, &restarted), &[]));
    assert!(attr(&out, "a=ice-ufrag:").is_none(), "the callee rejected ICE: none in the re-offer");
    let out = ok_sdp(&answer(&mut e, &sdp("203.0.113.9", 5000, ""), &[]));
    assert_ne!(attr(&out, "a=ice-ufrag:").unwrap(), ufrag_a);
    assert_eq!(rule(&dp, a_cands[0]).ice.unwrap().remote_ufrag.as_deref(), Some("Zx9q"));

    // delete: every socket goes, the extra ones too
    let r = command(&mut e, &[("command", "delete".into()), ("call-id", "c".into()), ("delete-delay", Value::Int(0))]);
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"));
    assert_eq!(dp.state.lock().unwrap().open.len(), 0);
    assert_eq!(e.ports_in_use(), 0);
}

#[test]
fn ice_remove_and_force() {
    let (mut e, dp) = engine();
    let out = ok_sdp(&offer(&mut e, &sdp("198.51.100.7", 4000, BROWSER_ICE), &[("ICE", "remove".into())]));
    assert!(!out.contains("ice") && !out.contains("candidate"), "{out}");
    assert_eq!(dp.state.lock().unwrap().open.len(), 4 + 2, "the browser's leg has its IPv6 pair already");
    let out = ok_sdp(&answer(&mut e, &sdp("203.0.113.9", 5000, ""), &[("ICE-lite", "forward".into())]));
    assert_eq!(candidates(&out).len(), 4, "{out}");
    // force on a plain offer: the relay offers ICE, a=ice-lite with ICE-lite=forward
    let (mut e, _dp) = engine();
    let out = ok_sdp(&offer(
        &mut e,
        &sdp("198.51.100.7", 4000, ""),
        &[("ICE", "force".into()), ("ICE-lite", "forward".into()), ("flags", Value::List(vec!["trickle-ICE".into()]))],
    ));
    assert!(out.contains("\r\na=ice-lite\r\nm=audio"), "session-level ice-lite: {out}");
    assert!(out.contains("a=ice-options:trickle\r\n") && out.ends_with("a=end-of-candidates\r\n"), "{out}");
}

#[test]
fn hostile_ice_attributes() {
    let (mut e, dp) = engine();
    // an overlong ufrag or pwd is refused with a reason naming it, nothing allocated
    let long = "x".repeat(257);
    for bad in [format!("a=ice-ufrag:{long}\r\n"), format!("a=ice-ufrag:abcd\r\na=ice-pwd:{long}\r\n")] {
        let r = offer(&mut e, &sdp("198.51.100.7", 4000, &bad), &[]);
        assert_eq!(r.get("result").and_then(Value::as_str), Some("error"), "{r:?}");
        assert!(reason(&r).starts_with("media section 1: a=ice-"), "{}", reason(&r));
        assert!(reason(&r).ends_with("of 257 characters (at most 256)"), "{}", reason(&r));
        assert_eq!(dp.state.lock().unwrap().open.len(), 0, "nothing leaked");
    }
    let r = offer(&mut e, &sdp("198.51.100.7", 4000, "a=ice-ufrag:a:b\r\n"), &[]);
    assert_eq!(reason(&r), "media section 1: a=ice-ufrag with a character not allowed in ICE credentials");
    // malformed and a great many candidates: ignored, the offer goes through
    let mut junk = String::from("a=ice-ufrag:abcd\r\na=ice-pwd:efgh\r\na=candidate:\r\na=candidate:1 x\r\n");
    for k in 0..2000 {
        junk += &format!("a=candidate:{k} 1 UDP {k} 198.51.100.7 {} typ host\r\n", 1000 + k);
    }
    let out = ok_sdp(&offer(&mut e, &sdp("198.51.100.7", 4000, &junk), &[("ICE", "optional".into())]));
    // passthrough (ICE on both sides, optional): the peer's lines stay, the relay's added
    assert!(out.contains("a=ice-ufrag:abcd\r\n"), "passed through");
    assert_eq!(candidates(&out).len() - 2000, 4, "the relay's four added");
    // unknown ICE values are ignored, as rtpengine ignores them
    let r = offer(&mut e, &sdp("198.51.100.7", 4000, ""), &[("ICE", "sometimes".into()), ("call-id", "d".into())]);
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
}

/// A request that fails half way leaves the committed call's sockets bound: the candidate
/// sockets an answer gives back are released only when it commits.
#[test]
fn a_failed_answer_releases_nothing_the_call_holds() {
    let (mut e, dp) = engine();
    let two = |ice2: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\n{BROWSER_ICE}m=audio 4002 RTP/AVP 0\r\n{ice2}"
        )
    };
    ok_sdp(&offer(&mut e, &two(BROWSER_ICE), &[]));
    let open_before: Vec<SocketAddr> = dp.state.lock().unwrap().open.keys().copied().collect();
    assert_eq!(open_before.len(), 16, "two sections, two legs, two addresses, RTP and RTCP");
    // section 1 rejects ICE (its candidate sockets would go), section 2 is refused
    let bad = format!("a=ice-ufrag:{}\r\n", "u".repeat(300));
    let r = answer(&mut e, &two(&bad).replace(BROWSER_ICE, "").replace("198.51.100.7", "203.0.113.9"), &[]);
    assert_eq!(reason(&r), "media section 2: a=ice-ufrag of 300 characters (at most 256)");
    let mut open_after: Vec<SocketAddr> = dp.state.lock().unwrap().open.keys().copied().collect();
    let mut want = open_before.clone();
    open_after.sort();
    want.sort();
    assert_eq!(open_after, want, "the call as it was");
    // the answer without the bad section commits: the callee's candidate sockets go now
    let good = two("").replace(BROWSER_ICE, "").replace("198.51.100.7", "203.0.113.9");
    ok_sdp(&answer(&mut e, &good, &[]));
    assert_eq!(dp.state.lock().unwrap().open.len(), 16 - 4);
}
