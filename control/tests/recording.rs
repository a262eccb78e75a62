//! Recording (ng `record-call`, `start/stop/pause recording`) and taps over the engine:
//! requests in, replies, the rules' taps and the recorder's notes out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use control::bencode::Value;
use control::engine::{Engine, EngineConfig};
use control::recording::{Note, Recorder, Recording};
use control::taps::{TapView, MAX_TAPS_PER_CALL};
use rules::dataplane::MemoryDataPlane;
use rules::tap::{TapPacket, TapPoint, TapSink};

const UNIX: u64 = 1_700_000_000;

fn engine() -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    let cfg = EngineConfig { port_min: 30000, port_max: 30099, ..Default::default() };
    (Engine::new(cfg, dp.clone()), dp)
}

fn req(pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::dict();
    for (k, x) in pairs {
        v.insert(k, x.clone());
    }
    v
}

fn sdp(port: u16) -> Value {
    format!("v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\n")
        .into()
}

fn srtp_sdp(port: u16) -> Value {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio {port} RTP/SAVP 8\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    )
    .into()
}

fn cmd(e: &mut Engine, pairs: &[(&str, Value)]) -> Value {
    e.command(&req(pairs), 1_000, UNIX)
}

fn offer(e: &mut Engine, cid: &str, body: Value, extra: &[(&str, Value)]) -> Value {
    let mut p = vec![("command", "offer".into()), ("call-id", cid.into()), ("from-tag", "a".into()), ("sdp", body)];
    p.extend_from_slice(extra);
    cmd(e, &p)
}

fn answer(e: &mut Engine, cid: &str, body: Value, extra: &[(&str, Value)]) -> Value {
    let mut p = vec![
        ("command", "answer".into()),
        ("call-id", cid.into()),
        ("from-tag", "a".into()),
        ("to-tag", "b".into()),
        ("sdp", body),
    ];
    p.extend_from_slice(extra);
    cmd(e, &p)
}

fn call(e: &mut Engine, cid: &str) {
    assert_eq!(result(&offer(e, cid, sdp(4000), &[])), "ok");
    assert_eq!(result(&answer(e, cid, sdp(5000), &[])), "ok");
}

fn result(v: &Value) -> String {
    v.get("result").and_then(Value::as_str).unwrap_or("?").to_string()
}

fn reason(v: &Value) -> String {
    assert_eq!(result(v), "error", "{v:?}");
    v.get("error-reason").and_then(Value::as_str).unwrap().to_string()
}

/// The sockets whose rules carry a tap now.
fn tapped(dp: &MemoryDataPlane) -> Vec<SocketAddr> {
    let s = dp.state.lock().unwrap();
    let mut v: Vec<SocketAddr> =
        s.open.iter().filter(|(_, r)| r.as_ref().is_some_and(|r| r.tap.is_some())).map(|(a, _)| *a).collect();
    v.sort();
    v
}

fn rule_tap(dp: &MemoryDataPlane, local: SocketAddr) -> rules::tap::Tap {
    dp.state.lock().unwrap().open[&local].as_ref().unwrap().tap.clone().unwrap()
}

/// Feeds one copy at each point through a socket's tap.
fn feed(tap: &rules::tap::Tap, local: SocketAddr) {
    let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    for point in [TapPoint::Received, TapPoint::Plain, TapPoint::Sent] {
        tap.packet(&TapPacket { local, src: peer, dst: local, point, at_us: 1, bytes: b"rtp" });
    }
}

#[derive(Default)]
struct Sink {
    points: Mutex<Vec<TapPoint>>,
    closed: Mutex<u32>,
    notes: Mutex<Vec<String>>,
}

impl TapSink for Sink {
    fn packet(&self, p: &TapPacket<'_>) {
        self.points.lock().unwrap().push(p.point);
    }
    fn close(&self) {
        *self.closed.lock().unwrap() += 1;
    }
}

impl Recording for Sink {
    fn note(&self, n: Note<'_>) {
        let s = match n {
            Note::Sdp { mode, tag, sdp, .. } => format!("sdp {} {tag} {}", mode.as_str(), sdp.len()),
            Note::Paused { .. } => "paused".into(),
            Note::Resumed { .. } => "resumed".into(),
            Note::Discard => "discard".into(),
        };
        self.notes.lock().unwrap().push(s);
    }
    fn pcap_path(&self) -> String {
        "/rec/pcaps/c-1.pcap".into()
    }
}

#[derive(Default)]
struct Mem {
    opened: Mutex<Vec<Arc<Sink>>>,
    refuse: bool,
}

impl Recorder for Mem {
    fn open(&self, _call_id: &str, _created_unix: u64) -> Result<Arc<dyn Recording>, String> {
        if self.refuse {
            return Err("disk full".into());
        }
        let s = Arc::new(Sink::default());
        self.opened.lock().unwrap().push(s.clone());
        Ok(s)
    }
}

impl Mem {
    fn last(&self) -> Arc<Sink> {
        self.opened.lock().unwrap().last().unwrap().clone()
    }
}

fn recording(e: &mut Engine, command: &str, cid: &str) -> Value {
    cmd(e, &[("command", command.into()), ("call-id", cid.into())])
}

#[test]
fn recording_requests_name_their_problem() {
    let (mut e, _dp) = engine();
    call(&mut e, "c");
    assert_eq!(
        reason(&recording(&mut e, "start recording", "c")),
        "call recording requested, but no recording-dir is configured"
    );
    e.set_recorder(Arc::new(Mem::default()));
    assert_eq!(reason(&recording(&mut e, "start recording", "nope")), "Unknown call-id \"nope\"");
    assert_eq!(reason(&recording(&mut e, "stop recording", "nope")), "Unknown call-id \"nope\"");
    assert_eq!(reason(&cmd(&mut e, &[("command", "pause recording".into())])), "no call-id in request");
    assert_eq!(
        reason(&offer(&mut e, "d", sdp(4002), &[("record-call", "maybe".into())])),
        "invalid record-call \"maybe\" (expected yes, on, no, off or discard)"
    );
    assert!(!e.calls.contains_key("d"), "refused before anything was set up");
    // a recorder that refuses: the command fails, the call goes on untapped
    let (mut e, dp) = engine();
    e.set_recorder(Arc::new(Mem { refuse: true, ..Default::default() }));
    call(&mut e, "c");
    assert_eq!(reason(&recording(&mut e, "start recording", "c")), "cannot start recording: disk full");
    assert!(tapped(&dp).is_empty());
    // record-call on an offer that cannot record: the call still goes through, with a warning
    let r = offer(&mut e, "x", sdp(4004), &[("record-call", "on".into())]);
    assert_eq!(result(&r), "ok");
    assert_eq!(r.get("warning").and_then(Value::as_str), Some("cannot start recording: disk full"));
}

#[test]
fn record_call_on_offer_records_every_socket_and_both_sdps() {
    let (mut e, dp) = engine();
    let rec = Arc::new(Mem::default());
    e.set_recorder(rec.clone());
    let r = offer(&mut e, "c", sdp(4000), &[("record call", "yes".into())]);
    assert_eq!(result(&r), "ok");
    let paths = r.get("recordings").map(Value::strings).unwrap();
    assert_eq!(paths, ["/rec/pcaps/c-1.pcap"], "rtpengine's pcap reply key");
    assert_eq!(e.recording_of("c"), Some(false));
    let r = answer(&mut e, "c", sdp(5000), &[]);
    assert_eq!(r.get("recordings").map(Value::strings).unwrap(), ["/rec/pcaps/c-1.pcap"]);
    let sink = rec.last();
    let notes = sink.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 2);
    assert!(notes[0].starts_with("sdp offer a ") && notes[1].starts_with("sdp answer a "), "{notes:?}");
    // every relay socket of the call (RTP and RTCP of both parties) is tapped
    let socks = e.calls["c"].sockets();
    assert_eq!(tapped(&dp).len(), socks.len());
    // plain RTP: the recording takes each packet as received, nothing else
    feed(&rule_tap(&dp, socks[0]), socks[0]);
    assert_eq!(*sink.points.lock().unwrap(), [TapPoint::Received]);
    // a re-INVITE derives the rules again: they keep the tap
    assert_eq!(result(&offer(&mut e, "c", sdp(4010), &[])), "ok");
    assert_eq!(tapped(&dp).len(), socks.len());
    assert_eq!(sink.notes.lock().unwrap().len(), 3, "the re-offer's SDP too");
    // the call ends: the recording is closed once, the taps are gone
    assert_eq!(
        result(&cmd(&mut e, &[("command", "delete".into()), ("call-id", "c".into()), ("delete-delay", 0u64.into())])),
        "ok"
    );
    assert_eq!(*sink.closed.lock().unwrap(), 1);
    assert_eq!(e.recording_of("c"), None);
}

#[test]
fn start_pause_resume_stop() {
    let (mut e, dp) = engine();
    let rec = Arc::new(Mem::default());
    e.set_recorder(rec.clone());
    call(&mut e, "c");
    assert!(tapped(&dp).is_empty(), "no recording, no tap");
    let r = recording(&mut e, "start recording", "c");
    assert_eq!(r, req(&[("result", "ok".into())]), "no other key in the reply");
    let sink = rec.last();
    assert_eq!(tapped(&dp).len(), 4);
    let query =
        |e: &mut Engine| cmd(e, &[("command", "query".into()), ("call-id", "c".into())]).get("recording").cloned();
    let rec_key = |on: u64| Some(req(&[("call recording", on.into()), ("forwarding", 0u64.into())]));
    assert_eq!(query(&mut e), rec_key(1), "query shows it, as rtpengine");
    // pause: the file stays open (no close), the tap stays, the recorder is told
    assert_eq!(result(&recording(&mut e, "pause recording", "c")), "ok");
    assert_eq!(query(&mut e), rec_key(0));
    assert_eq!(e.recording_of("c"), Some(true));
    assert_eq!(*sink.closed.lock().unwrap(), 0);
    // record-call=on does not resume a paused recording (rtpengine); start recording does
    offer(&mut e, "c", sdp(4000), &[("flags", Value::List(vec!["record-call".into()]))]);
    assert_eq!(e.recording_of("c"), Some(true));
    assert_eq!(result(&recording(&mut e, "start recording", "c")), "ok");
    assert_eq!(e.recording_of("c"), Some(false));
    assert_eq!(rec.opened.lock().unwrap().len(), 1, "the same recording, resumed");
    // stop recording with pause=yes is a pause
    cmd(&mut e, &[("command", "stop recording".into()), ("call-id", "c".into()), ("pause", "yes".into())]);
    assert_eq!(e.recording_of("c"), Some(true));
    // stop: the rules lose the tap, then the recording is closed
    assert_eq!(result(&recording(&mut e, "stop recording", "c")), "ok");
    assert!(tapped(&dp).is_empty());
    assert_eq!(query(&mut e), None, "no recording, no key");
    assert_eq!(*sink.closed.lock().unwrap(), 1);
    let notes = sink.notes.lock().unwrap().clone();
    assert_eq!(notes.iter().filter(|n| !n.starts_with("sdp")).collect::<Vec<_>>(), ["paused", "resumed", "paused"]);
    // stopping again is fine; discard through the flag
    assert_eq!(result(&recording(&mut e, "stop recording", "c")), "ok");
    recording(&mut e, "start recording", "c");
    let flags = Value::List(vec!["discard-recording".into()]);
    cmd(&mut e, &[("command", "stop recording".into()), ("call-id", "c".into()), ("flags", flags)]);
    assert_eq!(*rec.last().notes.lock().unwrap(), ["discard"]);
    assert_eq!(*rec.last().closed.lock().unwrap(), 1);
    // rtpp-flags form
    let r = offer(&mut e, "k", sdp(4020), &[("rtpp-flags", "record-call=on".into())]);
    assert_eq!(r.get("recordings").map(Value::strings).unwrap().len(), 1);
}

#[test]
fn srtp_sockets_record_the_decrypted_copy() {
    let (mut e, dp) = engine();
    let rec = Arc::new(Mem::default());
    e.set_recorder(rec.clone());
    let flags = [("record-call", "on".into()), ("transport-protocol", "RTP/AVP".into())];
    assert_eq!(result(&offer(&mut e, "s", srtp_sdp(4000), &flags)), "ok");
    assert_eq!(result(&answer(&mut e, "s", sdp(5000), &[])), "ok");
    let s = dp.state.lock().unwrap();
    let (srtp_sock, _) = s.open.iter().find(|(_, r)| r.as_ref().is_some_and(|r| r.srtp_in.is_some())).unwrap();
    let srtp_sock = *srtp_sock;
    drop(s);
    let sink = rec.last();
    feed(&rule_tap(&dp, srtp_sock), srtp_sock);
    assert_eq!(*sink.points.lock().unwrap(), [TapPoint::Plain], "in clear, never the SRTP as received");
}

#[test]
fn taps_fan_out_are_bounded_and_end_with_the_call() {
    let (mut e, dp) = engine();
    let rec = Arc::new(Mem::default());
    e.set_recorder(rec.clone());
    call(&mut e, "c");
    call(&mut e, "other");
    assert!(e.add_tap("nope", None, Arc::new(Sink::default())).unwrap_err().contains("Unknown call-id"));
    assert!(e.add_tap("c", Some("zz"), Arc::new(Sink::default())).unwrap_err().contains("no party with tag \"zz\""));
    let cap = Arc::new(Sink::default());
    let t = e.add_tap("c", None, cap.clone()).unwrap();
    recording(&mut e, "start recording", "c");
    let sink = rec.last();
    let socks = e.calls["c"].sockets();
    assert_eq!(tapped(&dp).len(), socks.len(), "only call c's sockets");
    // one socket, two sinks: the capture gets every copy, the recording the clear one
    feed(&rule_tap(&dp, socks[0]), socks[0]);
    assert_eq!(cap.points.lock().unwrap().len(), 3);
    assert_eq!(*sink.points.lock().unwrap(), [TapPoint::Received]);
    // bounded
    for _ in 2..MAX_TAPS_PER_CALL {
        e.add_tap_with("c", Some("a"), Arc::new(Sink::default()), TapView::Clear).unwrap();
    }
    assert!(e.add_tap("c", None, Arc::new(Sink::default())).unwrap_err().contains("already has 8 taps"));
    // removing one closes it, the others stay
    e.remove_tap(t);
    e.remove_tap(t);
    assert_eq!(*cap.closed.lock().unwrap(), 1);
    assert_eq!(tapped(&dp).len(), socks.len());
    // the call ends: every sink closed once
    assert!(e.terminate("c"));
    assert_eq!(*sink.closed.lock().unwrap(), 1);
    assert!(e.taps_of("c").is_empty());
    assert!(tapped(&dp).is_empty());
}
