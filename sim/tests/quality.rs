//! Call quality through the in-memory relay: DTMF a caller sends is counted once per
//! event and reported by ng `query`; an SR forwarded to the callee and the callee's
//! report give the round trip between relay and callee (the network's latency both
//! ways, the callee's hold time taken out), and the verdict follows the thresholds; the
//! ended call's quality lands in the engine's totals.

use std::net::SocketAddr;

use control::bencode::Value;
use control::engine::EngineConfig;
use control::interface::Interface;
use control::quality::{Thresholds, Verdict};
use relay_core::packet::rtp::emit_header;
use sim::{Impairment, Relay};

const RELAY_IP: &str = "203.0.113.1";
const CALL_ID: &str = "quality-1";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ng(relay: &mut Relay, cmd: &str, extra: &[(&str, &str)]) -> Value {
    let mut req = Value::dict();
    req.insert("command", Value::str(cmd));
    req.insert("call-id", Value::str(CALL_ID));
    for (k, v) in extra {
        req.insert(k, Value::str(v));
    }
    let r = relay.ng(&req);
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    r
}

fn sdp(party: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n",
        ip = party.ip(),
        port = party.port()
    )
}

fn relay_port(sdp: &Value) -> u16 {
    let text = sdp.get("sdp").and_then(Value::as_str).unwrap();
    let m = text.lines().find_map(|l| l.strip_prefix("m=audio ")).unwrap();
    m.split(' ').next().unwrap().parse().unwrap()
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12 + payload.len()];
    emit_header(&mut b, pt, false, seq, ts, 0xa11ce);
    b[12..].copy_from_slice(payload);
    b
}

#[test]
fn dtmf_and_round_trip_of_a_call() {
    let cfg = EngineConfig {
        interfaces: vec![Interface::parse(RELAY_IP).unwrap()],
        quality: Thresholds { max_delay_ms: 50, ..Default::default() },
        ..Default::default()
    };
    let mut relay = Relay::new(cfg, 3);
    let (a, b) = (addr("198.51.100.10:4000"), addr("198.51.100.20:5000"));
    let (a_rtcp, b_rtcp) = (addr("198.51.100.10:4001"), addr("198.51.100.20:5001"));
    // the callee is 40 ms away from the relay (80 ms round trip: one-way 40 ≤ 50)
    relay.net.set_link(b, Impairment { latency_ms: 40, ..Default::default() });
    relay.net.set_link(b_rtcp, Impairment { latency_ms: 40, ..Default::default() });
    let to_b = ng(&mut relay, "offer", &[("from-tag", "a"), ("sdp", &sdp(a))]);
    let to_a = ng(&mut relay, "answer", &[("from-tag", "a"), ("to-tag", "b"), ("sdp", &sdp(b))]);
    let ip = RELAY_IP.parse().unwrap();
    let (relay_a, relay_b) = (SocketAddr::new(ip, relay_port(&to_a)), SocketAddr::new(ip, relay_port(&to_b)));
    let rtcp_of = |s: SocketAddr| SocketAddr::new(s.ip(), s.port() + 1);

    // the caller talks, presses 4 then #, each event with its end packet three times
    let mut seq = 0u16;
    let mut next = |relay: &mut Relay, pt: u8, ts: u32, payload: &[u8]| {
        relay.send(a, relay_a, rtp(pt, seq, ts, payload));
        seq += 1;
        relay.run_for(20);
    };
    for i in 0..20u32 {
        next(&mut relay, 0, i * 160, &[0xff; 160]);
    }
    for (code, ts) in [(4u8, 3200u32), (11, 4800)] {
        for (e, dur) in [(0x0a, 160u16), (0x0a, 320), (0x8a, 480), (0x8a, 480), (0x8a, 480)] {
            let d = dur.to_be_bytes();
            next(&mut relay, 101, ts, &[code, e, d[0], d[1]]);
        }
    }
    relay.run_for(200);
    assert_eq!(relay.take_inbox(b).len(), 30, "every packet reached the callee");

    let q = ng(&mut relay, "query", &[]);
    let tag_a = q.get("tags").and_then(|t| t.get("a")).unwrap();
    assert_eq!(tag_a.get("DTMF events").and_then(Value::as_int), Some(2));
    let last = tag_a.get("last DTMF event").unwrap();
    assert_eq!(
        (last.get("event").and_then(Value::as_int), last.get("digit").and_then(Value::as_str)),
        (Some(11), Some("#"))
    );
    assert_eq!(
        q.get("tags").and_then(|t| t.get("b")).and_then(|t| t.get("DTMF events")).and_then(Value::as_int),
        Some(0)
    );

    // the caller's SR reaches the callee through the relay; the callee reports 10 ms later
    let mut sr = vec![0x80, 200, 0, 6, 0, 0x0a, 0x11, 0xce, 0xe8, 0xb4, 0x5a, 0x3c, 0x83, 0x12, 0x6e, 0x97];
    sr.extend_from_slice(&[0, 0, 0x0c, 0x80, 0, 0, 0, 20, 0, 0, 0x0c, 0x80]);
    relay.send(a_rtcp, rtcp_of(relay_a), sr);
    // it arrives after 40 ms, the callee holds it 10 ms
    relay.run_for(50);
    assert_eq!(relay.take_inbox(b_rtcp).len(), 1, "the SR was forwarded");
    // RR: reporter 0xb0b, on 0xa11ce, 1/256 lost, jitter 80 (10 ms), LSR, DLSR 10 ms (655 units)
    let rr = vec![
        0x81, 201, 0, 7, 0, 0, 0x0b, 0x0b, 0, 0x0a, 0x11, 0xce, 1, 0, 0, 1, 0, 0, 0, 30, 0, 0, 0, 80, 0x5a, 0x3c, 0x83,
        0x12, 0, 0, 0x02, 0x8f,
    ];
    relay.send(b_rtcp, rtcp_of(relay_b), rr);
    relay.run_for(100);

    let now = relay.now_ms();
    let calls = relay.engine().call_summaries(now);
    let leg_b = calls[0].legs.iter().find(|l| l.tag == "b").unwrap();
    let rtt = leg_b.quality.rtt_ms.unwrap();
    assert!((79.0..=81.0).contains(&rtt), "two 40 ms crossings: {rtt}");
    assert_eq!((leg_b.quality.remote_loss_percent, leg_b.quality.remote_jitter_ms), (Some(0.39), Some(10.0)));
    assert_eq!(leg_b.quality.verdict, Verdict::Ok, "{:?}", leg_b.quality.why);
    let leg_a = calls[0].legs.iter().find(|l| l.tag == "a").unwrap();
    assert_eq!((leg_a.dtmf_events, leg_a.quality.loss_percent, leg_a.quality.verdict), (2, 0.0, Verdict::Ok));
    let json = serde_json::to_value(&calls[0]).unwrap();
    assert_eq!(json["legs"][0]["quality"]["verdict"], "ok");
    assert_eq!(json["legs"][0]["dtmf_events"], 2);

    // the call ends: its legs' quality goes into the totals (and a CDR line into the log)
    ng(&mut relay, "delete", &[("from-tag", "a"), ("delete-delay", "0")]);
    let ended = &relay.engine().stats.quality;
    assert_eq!((ended.legs.get("ok").copied(), ended.dtmf_events, ended.rtcp_reports), (Some(2), 2, 2));
}
