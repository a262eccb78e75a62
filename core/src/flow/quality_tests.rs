//! The flow table reading RTCP reports and telephone-events end to end: an SR forwarded
//! out of a socket and the report that comes back on it give the round trip; SRTCP is
//! read after decryption; DTMF counted once per event; spoofed reports never read.

use std::net::SocketAddr;

use rules::dataplane::{FlowKind, FlowRule, SrtpKey, Suite};

use super::*;
use crate::packet::rtcp::tests::{RR_XR, SR_RR};
use crate::packet::rtp::emit_header;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn run(t: &mut FlowTable, id: FlowId, src: SocketAddr, data: &[u8], now_us: u64) -> Verdict {
    let mut b = [0u8; 2048];
    b[..data.len()].copy_from_slice(data);
    t.process(id, src, &mut b, data.len(), now_us)
}

const A_PEER: &str = "192.0.2.10:4001";
const B_PEER: &str = "198.51.100.20:5001";

/// The RTCP sockets of a call: A's (:30001) and B's (:30003), each forwarding to the other.
fn rtcp_pair(srtp_b: Option<(SrtpKey, SrtpKey)>) -> (FlowTable, FlowId, FlowId) {
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a("10.0.0.1:30001"), Default::default());
    let fb = t.insert(a("10.0.0.1:30003"), Default::default());
    let rule = |local: &str, peer: &str, egress: &str| FlowRule {
        kind: FlowKind::Rtcp,
        egress_rtcp: Some(a(egress)),
        ..FlowRule::rtp(a(local), Some(a(peer)), None)
    };
    t.apply(&rule("10.0.0.1:30001", A_PEER, "10.0.0.1:30003")).unwrap();
    let (srtp_in, srtp_out) = srtp_b.map(|(i, o)| (Some(i), Some(o))).unwrap_or_default();
    t.apply(&FlowRule { srtp_in, srtp_out, ..rule("10.0.0.1:30003", B_PEER, "10.0.0.1:30001") }).unwrap();
    (t, fa, fb)
}

/// An RR from B reporting on A's stream, echoing `lsr` and holding it `dlsr` (1/65536 s).
fn rr(lsr: u32, dlsr: u32) -> Vec<u8> {
    let mut b = RR_XR[..32].to_vec();
    b[24..28].copy_from_slice(&lsr.to_be_bytes());
    b[28..32].copy_from_slice(&dlsr.to_be_bytes());
    b
}

#[test]
fn rtt_from_a_forwarded_sr_and_the_returning_rr() {
    let (mut t, fa, fb) = rtcp_pair(None);
    // A's SR (NTP middle 0x5a3c8312) leaves through B's socket at t = 10 s
    assert!(matches!(run(&mut t, fa, a(A_PEER), &SR_RR, 10_000_000), Verdict::Forward { via, .. } if via == fb));
    // A's own report block is A's view of B's stream
    let ca = t.get(fa).unwrap().counters.snapshot();
    assert_eq!((ca.rtcp_reports, ca.remote.unwrap().fraction_lost, ca.rtt_us), (1, 2, None));
    // B answers 180 ms later, having held the SR 100 ms (6553.6 units): 80 ms round trip
    assert!(matches!(run(&mut t, fb, a(B_PEER), &rr(0x5a3c_8312, 6554), 10_180_000), Verdict::Forward { .. }));
    let cb = t.get(fb).unwrap().counters.snapshot();
    let rtt = cb.rtt_us.unwrap();
    assert!((79_990..=80_010).contains(&rtt), "{rtt}");
    assert_eq!(cb.remote.unwrap().cumulative_lost, -2);
    // a report naming an SR the relay never forwarded changes no RTT
    run(&mut t, fb, a(B_PEER), &rr(0x0bad_0bad, 0), 11_000_000);
    assert_eq!(t.get(fb).unwrap().counters.snapshot().rtt_us, Some(rtt));
}

#[test]
fn spoofed_reports_are_never_read() {
    let (mut t, fa, fb) = rtcp_pair(None);
    run(&mut t, fa, a(A_PEER), &SR_RR, 10_000_000);
    run(&mut t, fb, a(B_PEER), &rr(0, 0), 10_010_000);
    // someone else sends B's socket a report with terrible numbers
    let mut lie = rr(0x5a3c_8312, 0);
    lie[12] = 255;
    assert!(matches!(run(&mut t, fb, a("203.0.113.66:9"), &lie, 10_020_000), Verdict::Drop(_)));
    let cb = t.get(fb).unwrap().counters.snapshot();
    assert_eq!((cb.rtcp_reports, cb.remote.unwrap().fraction_lost, cb.rtt_us), (1, 0, None));
}

#[test]
fn srtcp_reports_are_read_after_decryption() {
    let key = |seed: u8| SrtpKey::new(Suite::AesCm128HmacSha1_80, &[seed; 16], &[seed; 14]).unwrap();
    let (mut t, _fa, fb) = rtcp_pair(Some((key(1), key(2))));
    let mut party = crate::srtp::Context::from_key(&key(1)).unwrap();
    let mut b = [0u8; 256];
    b[..RR_XR.len()].copy_from_slice(&RR_XR);
    let n = party.protect_rtcp(&mut b, RR_XR.len()).unwrap();
    assert!(matches!(run(&mut t, fb, a(B_PEER), &b[..n], 1_000_000), Verdict::Forward { .. }));
    let cb = t.get(fb).unwrap().counters.snapshot();
    assert_eq!(cb.voip_metrics.unwrap().mos_lq_x10, Some(42));
    // a forged SRTCP packet is dropped before anything is read
    b[20] ^= 1;
    run(&mut t, fb, a(B_PEER), &b[..n], 2_000_000);
    assert_eq!(t.get(fb).unwrap().counters.snapshot().rtcp_reports, 1);
}

#[test]
fn dtmf_events_are_counted_once_and_do_not_disturb_jitter() {
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a("10.0.0.1:30000"), Default::default());
    let _fb = t.insert(a("10.0.0.1:30002"), Default::default());
    let peer = a("192.0.2.10:4000");
    t.apply(&FlowRule {
        telephone_event_pt: Some(101),
        ..FlowRule::rtp(a("10.0.0.1:30000"), Some(peer), Some(a("10.0.0.1:30002")))
    })
    .unwrap();
    t.apply(&FlowRule::rtp(a("10.0.0.1:30002"), Some(a("198.51.100.20:5000")), None)).unwrap();
    let mut seq = 0u16;
    let mut now = 1_000_000u64;
    let mut send = |t: &mut FlowTable, pt: u8, ts: u32, payload: &[u8]| {
        let mut b = vec![0u8; 12 + payload.len()];
        emit_header(&mut b, pt, false, seq, ts, 0x77);
        b[12..].copy_from_slice(payload);
        seq += 1;
        now += 20_000;
        run(t, fa, peer, &b, now)
    };
    for i in 0..10u32 {
        send(&mut t, 0, i * 160, &[0xff; 160]);
    }
    // '5': three updates, the end three times, all at ts 1600
    for (end, dur) in [(false, 160u16), (false, 320), (false, 480), (true, 640), (true, 640), (true, 640)] {
        let d = dur.to_be_bytes();
        assert!(matches!(
            send(&mut t, 101, 1600, &[5, if end { 0x8a } else { 0x0a }, d[0], d[1]]),
            Verdict::Forward { .. }
        ));
    }
    for i in 16..22u32 {
        send(&mut t, 0, i * 160, &[0xff; 160]);
    }
    // '#'
    send(&mut t, 101, 3200, &[11, 0x8a, 0, 160]);
    let c = t.get(fa).unwrap().counters.snapshot();
    assert_eq!((c.dtmf_events, c.dtmf_last_event), (2, Some(11)));
    assert_eq!((c.lost, c.jitter_us), (0, 0), "events count for loss, not for jitter");
    // without the payload type in the rule nothing is counted
    t.apply(&FlowRule::rtp(a("10.0.0.1:30000"), Some(peer), Some(a("10.0.0.1:30002")))).unwrap();
    send(&mut t, 101, 4800, &[1, 0x8a, 0, 160]);
    assert_eq!(t.get(fa).unwrap().counters.snapshot().dtmf_events, 2);
}

#[test]
fn a_stranger_the_grace_rule_latched_is_not_read() {
    // B never sends RTCP; a stranger sends lying reports to B's socket long enough for the
    // grace rule to latch it (an unauthenticated, weak latch): its packets may flow, but
    // what it claims about the call's quality is not believed
    let (mut t, _, fb) = rtcp_pair(None);
    let mut lie = rr(0, 0);
    lie[12] = 255;
    let stranger = a("203.0.113.66:9");
    let mut forwarded = 0;
    for k in 0..25u64 {
        if matches!(run(&mut t, fb, stranger, &lie, 10_000_000 + k * 200_000), Verdict::Forward { .. }) {
            forwarded += 1;
        }
    }
    assert!(forwarded > 0, "the grace rule never latched the stranger: the test proves nothing");
    assert!(t.get(fb).unwrap().weakly_latched());
    let cb = t.get(fb).unwrap().counters.snapshot();
    assert_eq!((cb.rtcp_reports, cb.remote, cb.rtt_us), (0, None, None));
}
