//! Forked calls (ng `via-branch`) and what rtpengine's media model carries from one
//! side to the other (`a=ptime`), driven through ng requests as Kamailio sends them.

use std::sync::Arc;

use control::bencode::Value;
use control::engine::{EndReason, Engine, EngineConfig};
use control::interface::Interface;
use rules::dataplane::MemoryDataPlane;

fn engine() -> Engine {
    let cfg = EngineConfig {
        interfaces: vec![Interface::parse("192.0.2.1").unwrap()],
        port_min: 30000,
        port_max: 30099,
        delete_delay: 30,
        ..Default::default()
    };
    Engine::new(cfg, Arc::new(MemoryDataPlane::default()))
}

fn req(pairs: &[(&str, &str)]) -> Value {
    let mut v = Value::dict();
    for (k, x) in pairs {
        v.insert(k, Value::from(*x));
    }
    v
}

fn sdp(port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 0\r\n{extra}"
    )
}

fn run(e: &mut Engine, pairs: &[(&str, &str)], now_ms: u64) -> Value {
    e.command(&req(pairs), now_ms, 1_700_000_000)
}

fn offer(e: &mut Engine, branch: &str, body: &str) -> Value {
    run(e, &[("command", "offer"), ("call-id", "c"), ("from-tag", "a"), ("via-branch", branch), ("sdp", body)], 0)
}

fn answer(e: &mut Engine, branch: &str, body: &str) -> Value {
    let p = [("command", "answer"), ("call-id", "c"), ("from-tag", "a"), ("to-tag", "b"), ("sdp", body)];
    let mut p = p.to_vec();
    if !branch.is_empty() {
        p.push(("via-branch", branch));
    }
    run(e, &p, 0)
}

fn delete(e: &mut Engine, extra: &[(&str, &str)], now_ms: u64) -> Value {
    let mut p = vec![("command", "delete"), ("call-id", "c")];
    p.extend_from_slice(extra);
    run(e, &p, now_ms)
}

fn ok(v: &Value) -> bool {
    v.get("result").and_then(Value::as_str) == Some("ok")
}

fn warned(v: &Value) -> bool {
    v.get("warning").is_some()
}

fn out_sdp(v: &Value) -> String {
    v.get("sdp").and_then(Value::as_str).unwrap_or_else(|| panic!("no sdp: {v:?}")).to_string()
}

/// Two branches offered, the caller's and one shared callee monologue.
fn forked() -> Engine {
    let mut e = engine();
    assert!(ok(&offer(&mut e, "foo.0", &sdp(4000, ""))));
    assert!(ok(&offer(&mut e, "foo.1", &sdp(4000, ""))));
    e
}

#[test]
fn deleting_one_branch_keeps_the_others_ringing() {
    let mut e = forked();
    let ports = e.ports_in_use();
    let d = delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.1"), ("delete-delay", "0")], 0);
    assert!(ok(&d) && !warned(&d) && d.get("totals").is_some(), "{d:?}");
    assert!(e.calls.contains_key("c"));
    assert_eq!(e.ports_in_use(), ports, "the branches share the callee's legs");
    assert!(ok(&answer(&mut e, "foo.0", &sdp(5000, ""))));
    // the answered branch is the dialogue: deleting it deletes the call
    assert!(ok(&delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.0"), ("delete-delay", "0")], 0)));
    assert!(!e.calls.contains_key("c"));
    assert_eq!(e.ports_in_use(), 0);
}

#[test]
fn the_last_branch_takes_the_call_with_it() {
    let mut e = forked();
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.0"), ("delete-delay", "0")], 0);
    assert!(e.calls.contains_key("c"));
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.1"), ("delete-delay", "0")], 0);
    assert!(!e.calls.contains_key("c"), "no branch and no dialogue left (rtpengine's monologue_destroy)");
    assert_eq!((e.ports_in_use(), e.stats.ended["deleted"]), (0, 1));
}

#[test]
fn a_branch_deleted_with_a_delay_goes_at_its_time() {
    let mut e = forked();
    // the configured delete-delay (30 s): the branch goes then, the call is not scheduled
    assert!(ok(&delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.1")], 1000)));
    assert_eq!(e.calls["c"].delete_at_ms, None);
    assert!(ok(&answer(&mut e, "foo.0", &sdp(5000, ""))));
    assert!(e.tick(31_000).is_empty(), "foo.1 went; the answered dialogue stays");
    assert!(e.calls.contains_key("c"));
    // an unanswered call whose branches all go with a delay ends when the last one goes
    let mut e = forked();
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.0"), ("delete-delay", "5")], 0);
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.1"), ("delete-delay", "10")], 0);
    assert!(e.tick(9_999).is_empty());
    assert_eq!(e.tick(10_000), vec![("c".to_string(), EndReason::Deleted)]);
    assert_eq!(e.ports_in_use(), 0);
    // a new offer on a branch cancels its pending deletion
    let mut e = forked();
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.0"), ("delete-delay", "5")], 0);
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "foo.1"), ("delete-delay", "0")], 0);
    offer(&mut e, "foo.0", &sdp(4000, ""));
    assert!(e.tick(20_000).is_empty() && e.calls.contains_key("c"));
}

#[test]
fn a_via_branch_that_names_nothing_is_rtpengines_answer() {
    // a known from-tag: the from-tag's party goes, and with it the call
    let mut e = forked();
    let d = delete(&mut e, &[("from-tag", "a"), ("via-branch", "nope"), ("delete-delay", "0")], 0);
    assert!(ok(&d) && !warned(&d));
    assert!(!e.calls.contains_key("c"));
    // an unknown from-tag too: ok with rtpengine's warning, the call untouched
    let mut e = forked();
    let d = delete(&mut e, &[("from-tag", "x"), ("via-branch", "nope"), ("delete-delay", "0")], 0);
    assert!(ok(&d) && warned(&d), "{d:?}");
    assert!(e.calls.contains_key("c"));
    // rtpengine looks the via-branch up before the from-tag
    let d = delete(&mut e, &[("from-tag", "x"), ("via-branch", "foo.1"), ("delete-delay", "0")], 0);
    assert!(ok(&d) && !warned(&d) && e.calls.contains_key("c"));
    // an empty via-branch, or one with a to-tag, is no branch delete
    let mut e = forked();
    let long = "z".repeat(300);
    let d = delete(&mut e, &[("from-tag", "a"), ("via-branch", &long)], 0);
    assert_eq!(d.get("result").and_then(Value::as_str), Some("error"), "longer than max-id-length: {d:?}");
    assert!(e.calls.contains_key("c") && e.calls["c"].delete_at_ms.is_none());
    delete(&mut e, &[("from-tag", "a"), ("to-tag", "b"), ("via-branch", "foo.1"), ("delete-delay", "0")], 0);
    assert!(!e.calls.contains_key("c"), "with a to-tag the tags name what goes");
    let mut e = forked();
    delete(&mut e, &[("from-tag", "a"), ("via-branch", ""), ("delete-delay", "0")], 0);
    assert!(!e.calls.contains_key("c"));
}

#[test]
fn many_branches_stay_bounded() {
    let mut e = engine();
    for i in 0..200 {
        assert!(ok(&offer(&mut e, &format!("z9hG4bK{i}"), &sdp(4000, ""))));
    }
    assert_eq!(e.ports_in_use(), 4, "one shared callee");
    // the oldest branches are forgotten: deleting one is deleting by from-tag
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "z9hG4bK199"), ("delete-delay", "0")], 0);
    assert!(e.calls.contains_key("c"));
    delete(&mut e, &[("from-tag", "a"), ("via-branch", "z9hG4bK0"), ("delete-delay", "0")], 0);
    assert!(!e.calls.contains_key("c"));
}

fn ptimes(s: &str) -> Vec<&str> {
    s.lines().filter(|l| l.starts_with("a=ptime")).collect()
}

#[test]
fn ptime_as_rtpengines_media_carries_it() {
    let mut e = engine();
    let o = out_sdp(&offer(&mut e, "", &sdp(4000, "a=ptime:20\r\n")));
    assert_eq!(ptimes(&o), ["a=ptime:20"]);
    // an answer without a=ptime gets the offer's
    let a = out_sdp(&answer(&mut e, "", &sdp(5000, "")));
    assert_eq!(ptimes(&a), ["a=ptime:20"], "{a}");
    // the answerer's own goes, and from then on both sides have it
    let a = out_sdp(&answer(&mut e, "", &sdp(5000, "a=ptime:30\r\n")));
    assert_eq!(ptimes(&a), ["a=ptime:30"]);
    let o = out_sdp(&offer(&mut e, "", &sdp(4000, "")));
    assert_eq!(ptimes(&o), ["a=ptime:30"], "a re-offer without one: {o}");
    // rtpengine's reading ("20.5" is 20); one it cannot read sets nothing and stays
    let o = out_sdp(&offer(&mut e, "", &sdp(4000, "a=ptime:20.5\r\n")));
    assert_eq!(ptimes(&o), ["a=ptime:20"]);
    let o = out_sdp(&offer(&mut e, "", &sdp(4000, "a=ptime:-1\r\n")));
    assert_eq!(ptimes(&o), ["a=ptime:20"], "{o}");
    // a call that never had one gets none
    let mut e = engine();
    offer(&mut e, "", &sdp(4000, "a=ptime:x\r\n"));
    let a = out_sdp(&answer(&mut e, "", &sdp(5000, "")));
    assert!(ptimes(&a).is_empty(), "{a}");
}

#[test]
fn ice_force_relay_passes_the_senders_addresses_through() {
    let mut e = engine();
    let body = sdp(
        4000,
        "a=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
         a=candidate:1 1 udp 2122262783 198.51.100.7 4000 typ host\r\n",
    );
    let p = [
        ("command", "offer"),
        ("call-id", "c"),
        ("from-tag", "a"),
        ("ICE", "force-relay"),
        ("replace", "origin"),
        ("sdp", body.as_str()),
    ];
    let o = out_sdp(&run(&mut e, &p, 0));
    for kept in [
        "o=- 1 1 IN IP4 198.51.100.7",
        "c=IN IP4 198.51.100.7",
        "m=audio 4000 RTP/AVP 8 0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=candidate:1 1 udp 2122262783 198.51.100.7 4000 typ host",
    ] {
        assert!(o.lines().any(|l| l == kept), "{kept:?} kept: {o}");
    }
    assert!(o.contains("typ relay raddr 192.0.2.1"), "the relay's candidates: {o}");
    assert_eq!(o.matches("a=rtcp").count(), 2, "the relay adds no a=rtcp to an offer of mux: {o}");
}
