//! `GET /calls/{id}/capture` through the API's request handling: who may capture, what
//! a bad request is told, the limits, and (with the engine's taps) the pcap stream of
//! the packets the data plane hands the tap.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use control::bencode::Value;
use control::capture::{Next, StreamEnd};
use control::engine::{Engine, EngineConfig};
use control::http::{route, Api, HttpOptions};
use control::http_capture::{CaptureLimits, CaptureQuery, PCAP};
use rules::dataplane::MemoryDataPlane;
use rules::tap::{TapPacket, TapPoint};

const LOCAL: (&str, &[u8]) = ("Host", b"127.0.0.1:9900");
const AUTH: (&str, &[u8]) = ("Authorization", b"Bearer t0ken");

/// An engine with one two-party call `id` (tags A and B) on the in-memory data plane.
fn api_with_call(id: &str, token: Option<&str>) -> (Api, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    let mut e = Engine::new(EngineConfig { port_min: 30000, port_max: 30100, ..Default::default() }, dp.clone());
    for (cmd, tag, port) in [("offer", None, 5000), ("answer", Some("B"), 6000)] {
        let mut d = Value::dict();
        d.insert("command", cmd.into());
        d.insert("call-id", id.into());
        d.insert("from-tag", "A".into());
        if let Some(t) = tag {
            d.insert("to-tag", t.into());
        }
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
        );
        d.insert("sdp", sdp.as_str().into());
        let r = e.command(&d, 1000, 1);
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    }
    let opts = HttpOptions { token: token.map(str::to_string), ..Default::default() };
    (Api::new(Arc::new(Mutex::new(e)), opts), dp)
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap()["error"].as_str().unwrap().to_string()
}

#[test]
fn capture_needs_the_token() {
    let (none, _) = api_with_call("c1", None);
    let r = route(&none, "GET", "/calls/c1/capture", &[LOCAL]);
    assert_eq!(r.status, 403);
    assert!(error_of(&r.body).contains("no http-token configured"));
    let (a, _) = api_with_call("c1", Some("t0ken"));
    assert_eq!(route(&a, "GET", "/calls/c1/capture", &[LOCAL]).status, 401);
    let wrong = [LOCAL, ("Authorization", &b"Bearer t0ke"[..])];
    assert_eq!(route(&a, "GET", "/calls/c1/capture", &wrong).status, 401);
    assert_eq!(a.stats.refused_token.load(Ordering::Relaxed), 2);
    // the Host check comes first, as for every route
    let evil = [("Host", &b"evil.example"[..]), AUTH];
    assert_eq!(route(&a, "GET", "/calls/c1/capture", &evil).status, 421);
    assert!(route(&a, "GET", "/calls/c1/capture", &[LOCAL]).stream.is_none());
}

#[test]
fn unknown_calls_and_legs_and_bad_parameters_are_named() {
    let (a, _) = api_with_call("c1", Some("t0ken"));
    let r = route(&a, "GET", "/calls/nope/capture", &[LOCAL, AUTH]);
    assert_eq!((r.status, error_of(&r.body)), (404, "no call \"nope\"".to_string()));
    let r = route(&a, "GET", "/calls/c1/capture?leg=C", &[LOCAL, AUTH]);
    assert_eq!(r.status, 404);
    assert_eq!(error_of(&r.body), r#"call "c1" has no leg tagged "C" (its tags: ["A", "B"])"#);
    for (q, why) in [
        ("duration=0", "duration=\"0\": a whole number from 1 to 3600"),
        ("duration=3601", "duration=\"3601\": a whole number from 1 to 3600"),
        ("duration=-1", "duration=\"-1\": a whole number from 1 to 3600"),
        ("max_bytes=lots", "max_bytes=\"lots\": a whole number from 1 to 1073741824"),
        ("decrypted=maybe", "decrypted: 1 or 0"),
        ("leg=", "leg: a tag of the call (1 to 256 bytes)"),
        ("leg=A&leg=B", "leg given twice"),
        ("snaplen=9", "unknown parameter \"snaplen\" (leg, decrypted, duration, max_bytes)"),
    ] {
        let r = route(&a, "GET", &format!("/calls/c1/capture?{q}"), &[LOCAL, AUTH]);
        assert_eq!((r.status, error_of(&r.body)), (400, why.to_string()), "{q}");
    }
    assert_eq!(a.captures.active(), 0, "refused requests hold no capture slot");
    assert_eq!(a.stats.captures.load(Ordering::Relaxed), 0);
}

#[test]
fn parameters_within_their_bounds() {
    let l = CaptureLimits::default();
    let q = CaptureQuery::parse(None, &l).unwrap();
    assert_eq!((q.leg, q.decrypted, q.duration_s, q.max_bytes), (None, false, 300, 100 << 20));
    let q = CaptureQuery::parse(Some("leg=a%20b&decrypted=1&duration=3600&max_bytes=1073741824"), &l).unwrap();
    assert_eq!((q.leg.as_deref(), q.decrypted, q.duration_s, q.max_bytes), (Some("a b"), true, 3600, 1 << 30));
    assert!(CaptureQuery::parse(Some("decrypted"), &l).unwrap().decrypted);
    assert!(CaptureQuery::parse(Some("max_bytes=1073741825"), &l).is_err());
    assert!(CaptureQuery::parse(Some(&format!("leg={}", "x".repeat(257))), &l).is_err());
}

/// The tap the engine put on `local`'s rule.
fn tap_on(dp: &MemoryDataPlane, local: SocketAddr) -> Option<rules::tap::Tap> {
    dp.state.lock().unwrap().open.get(&local).and_then(|r| r.as_ref()).and_then(|r| r.tap.clone())
}

#[test]
fn a_capture_streams_the_tapped_packets_until_the_call_ends() {
    let (a, dp) = api_with_call("c1", Some("t0ken"));
    let mut r = route(&a, "GET", "/calls/c1/capture?duration=60", &[LOCAL, AUTH]);
    assert_eq!((r.status, r.content_type), (200, PCAP), "{}", r.body);
    let mut s = r.stream.take().expect("a stream");
    assert_eq!(a.captures.active(), 1);
    let socks: Vec<SocketAddr> = call_sockets(&a);
    let tapped: Vec<_> = socks.iter().filter_map(|l| tap_on(&dp, *l).map(|t| (*l, t))).collect();
    assert_eq!(tapped.len(), socks.len(), "every socket of the call is tapped");
    let peer: SocketAddr = "192.0.2.9:5000".parse().unwrap();
    let (local, tap) = &tapped[0];
    for (point, n) in [(TapPoint::Received, 1u8), (TapPoint::Plain, 2), (TapPoint::Sent, 3)] {
        tap.packet(&TapPacket { local: *local, src: peer, dst: *local, point, at_us: 1_000_000, bytes: &[n; 12] });
    }
    let mut pcap = Vec::new();
    while let Next::Data(d) = s.poll(0) {
        pcap.extend_from_slice(&d);
    }
    assert_eq!(&pcap[..24], &control::pcap::file_header(control::pcap::LINKTYPE_RAW));
    // the wire view: received and sent, not the decrypted copy
    assert_eq!(pcap.len(), 24 + 2 * (16 + 28 + 12));
    // at most max_captures at once
    let more: Vec<_> = (1..4).map(|_| route(&a, "GET", "/calls/c1/capture", &[LOCAL, AUTH])).collect();
    assert!(more.iter().all(|r| r.status == 200));
    let r = route(&a, "GET", "/calls/c1/capture", &[LOCAL, AUTH]);
    assert_eq!((r.status, error_of(&r.body)), (503, "4 captures are running, the most at once".to_string()));
    drop(more);
    assert_eq!(a.captures.active(), 1);
    assert_eq!(a.stats.captures.load(Ordering::Relaxed), 4);
    assert!(route(&a, "GET", "/metrics", &[LOCAL]).body.contains("relay_http_captures_total 4\n"));
    // the call ends: the engine closes the sink, the stream ends
    assert!(control::lock(&a.engine).terminate("c1"));
    assert_eq!(s.poll(0), Next::End(StreamEnd::Closed));
    drop(s);
    assert_eq!(a.captures.active(), 0);
}

fn call_sockets(a: &Api) -> Vec<SocketAddr> {
    control::lock(&a.engine).flows(Some("c1"), 0).iter().map(|f| f.local).collect()
}
