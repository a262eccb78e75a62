use std::net::SocketAddr;

use rules::dataplane::{FlowRule, SrtpKey, Suite};
use rules::state::{FlowState, SrtpStreamState};

use crate::flow::{DropReason, FlowId, FlowTable, Verdict};
use crate::packet::rtp::emit_header;
use crate::srtp::{self, SrtpError};
use crate::test_support::Rng;

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const LA: &str = "10.0.0.1:30000";
const LB: &str = "10.0.0.1:30002";
const A: &str = "192.0.2.10:4000";
const B: &str = "198.51.100.20:5000";

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut b = vec![0u8; 172];
    emit_header(&mut b, 0, false, seq, seq as u32 * 160, ssrc);
    b
}

fn run(t: &mut FlowTable, id: FlowId, src: SocketAddr, data: &[u8], now_us: u64) -> (Verdict, Vec<u8>) {
    let mut b = [0u8; 2048];
    b[..data.len()].copy_from_slice(data);
    let v = t.process(id, src, &mut b, data.len(), now_us);
    let len = if let Verdict::Forward { len, .. } = v { len } else { 0 };
    (v, b[..len].to_vec())
}

fn key(n: u8) -> SrtpKey {
    let s = Suite::AesCm128HmacSha1_80;
    SrtpKey::new(s, &[n; 16], &[n ^ 0x55; 14]).unwrap()
}

fn ctx(k: &SrtpKey) -> srtp::Context {
    srtp::Context::from_key(k).unwrap()
}

fn protect(c: &mut srtp::Context, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut b = [0u8; 256];
    b[..172].copy_from_slice(&rtp(seq, ssrc));
    let n = c.protect_rtp(&mut b, 172).unwrap();
    b[..n].to_vec()
}

/// A relay table with both sockets open (a new process: nothing learnt).
fn table() -> (FlowTable, FlowId, FlowId) {
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a(LA), Default::default());
    let fb = t.insert(a(LB), Default::default());
    (t, fa, fb)
}

/// A's leg and B's leg both SDES: what each party sends is opened with its key, what
/// leaves towards it is protected with the key it was given (re-keyed across the relay).
fn srtp_rules() -> (FlowRule, FlowRule) {
    let ra =
        FlowRule { srtp_in: Some(key(1)), srtp_out: Some(key(2)), ..FlowRule::rtp(a(LA), Some(a(A)), Some(a(LB))) };
    let rb =
        FlowRule { srtp_in: Some(key(3)), srtp_out: Some(key(4)), ..FlowRule::rtp(a(LB), Some(a(B)), Some(a(LA))) };
    (ra, rb)
}

struct Parties {
    a_tx: srtp::Context,
    a_rx: srtp::Context,
    b_tx: srtp::Context,
    b_rx: srtp::Context,
}

/// One packet each way at `now_us`: A's `seq_a`, B's `seq_b`; both arrive and open.
fn exchange(t: &mut FlowTable, ids: (FlowId, FlowId), p: &mut Parties, seq_a: u16, seq_b: u16, now_us: u64) -> Vec<u8> {
    let (fa, fb) = ids;
    let from_a = protect(&mut p.a_tx, seq_a, 0xaaaa);
    let (v, mut out) = run(t, fa, a(A), &from_a, now_us);
    assert!(matches!(v, Verdict::Forward { to, .. } if to == a(B)), "A seq {seq_a}: {v:?}");
    let n = out.len();
    let m = p.b_rx.unprotect_rtp(&mut out, n).unwrap_or_else(|e| panic!("B opens A's seq {seq_a}: {e}"));
    assert_eq!(&out[..m], &rtp(seq_a, 0xaaaa)[..]);
    let from_b = protect(&mut p.b_tx, seq_b, 0xbbbb);
    let (v, mut out) = run(t, fb, a(B), &from_b, now_us);
    assert!(matches!(v, Verdict::Forward { to, .. } if to == a(A)), "B seq {seq_b}: {v:?}");
    let n = out.len();
    p.a_rx.unprotect_rtp(&mut out, n).unwrap_or_else(|e| panic!("A opens B's seq {seq_b}: {e}"));
    from_a
}

#[test]
fn an_srtp_call_across_the_rollover_continues_after_restore() {
    let (ra, rb) = srtp_rules();
    let (mut t, fa, fb) = table();
    t.apply(&ra).unwrap();
    t.apply(&rb).unwrap();
    let mut p = Parties { a_tx: ctx(&key(1)), a_rx: ctx(&key(2)), b_tx: ctx(&key(3)), b_rx: ctx(&key(4)) };
    // A's sequence numbers wrap (ROC 0 -> 1) before the state is taken
    let mut before = Vec::new();
    for i in 0..300u16 {
        before.push(exchange(
            &mut t,
            (fa, fb),
            &mut p,
            65_400u16.wrapping_add(i),
            100 + i,
            1_000_000 + i as u64 * 20_000,
        ));
    }
    let now = 7_000_000;
    let (sa, sb) = (t.state(a(LA), now).unwrap(), t.state(a(LB), now).unwrap());
    assert_eq!(sa.srtp_in[0].rtp_highest, Some(1 << 16 | 163), "A's stream crossed the wrap");
    assert_eq!(sb.srtp_out[0].rtp_highest, Some(1 << 16 | 163), "re-keyed towards B with ROC 1");
    assert_eq!(sa.latched_peer, Some(a(A)));
    // the state survives the store's form
    let sa: FlowState = serde_json::from_str(&serde_json::to_string(&sa).unwrap()).unwrap();

    // a new process, a new clock
    let (mut t2, fa2, fb2) = table();
    t2.restore(&ra, sa, 2_000_000).unwrap();
    t2.restore(&rb, sb, 2_000_000).unwrap();
    for i in 300..600u16 {
        exchange(&mut t2, (fa2, fb2), &mut p, 65_400u16.wrapping_add(i), 100 + i, 2_100_000 + i as u64 * 20_000);
    }
    // replays of packets from before the restart are refused, and cost no latch
    for old in before.iter().rev().take(40) {
        let (v, _) = run(&mut t2, fa2, a(A), old, 20_000_000);
        assert!(matches!(v, Verdict::Drop(DropReason::Srtp(SrtpError::Replayed | SrtpError::TooOld))), "{v:?}");
    }
    for id in [fa2, fb2] {
        let c = t2.get(id).unwrap().counters.snapshot();
        assert_eq!((c.drop_srtp_auth, c.drop_srtp_index), (0, 0), "{c:?}");
        assert_eq!(c.forwarded, 600, "counters continue");
    }
    assert_eq!(t2.get(fa2).unwrap().counters.snapshot().drop_srtp_replay, 40);
}

#[test]
fn a_plain_latch_is_kept_and_a_spoofed_source_does_not_take_it() {
    let ra = FlowRule::rtp(a(LA), Some(a(A)), Some(a(LB)));
    let rb = FlowRule::rtp(a(LB), Some(a(B)), Some(a(LA)));
    let nat = a("203.0.113.7:6000");
    let (mut t, fa, fb) = table();
    t.apply(&ra).unwrap();
    t.apply(&rb).unwrap();
    // B is behind NAT: it latches from its real address after the grace period (weak)
    for i in 0..80u16 {
        run(&mut t, fa, a(A), &rtp(i, 1), i as u64 * 20_000);
        run(&mut t, fb, nat, &rtp(i, 2), i as u64 * 20_000);
    }
    assert_eq!(t.get(fb).unwrap().latched, Some(nat));
    let now = 1_600_000;
    let (sa, sb) = (t.state(a(LA), now).unwrap(), t.state(a(LB), now).unwrap());
    assert!(sb.weak_latch);

    let (mut t2, fa2, fb2) = table();
    t2.restore(&ra, sa, 50_000).unwrap();
    t2.restore(&rb, sb, 50_000).unwrap();
    // media towards B goes to the latched address at once
    let (v, _) = run(&mut t2, fa2, a(A), &rtp(100, 1), 60_000);
    assert_eq!(v, Verdict::Forward { via: fb2, to: nat, len: 172 });
    // a spoofed source is not latched (A's latch is strong; the peer talked lately)
    let spoof = a("6.6.6.6:666");
    for i in 0..100u16 {
        assert_eq!(
            run(&mut t2, fa2, spoof, &rtp(101 + i, 1), 70_000 + i as u64 * 20_000).0,
            Verdict::Drop(DropReason::ForeignSource)
        );
        assert!(matches!(
            run(&mut t2, fa2, a(A), &rtp(101 + i, 1), 70_000 + i as u64 * 20_000).0,
            Verdict::Forward { .. }
        ));
    }
    assert_eq!(t2.get(fa2).unwrap().latched, Some(a(A)));
    assert_eq!(t2.get(fb2).unwrap().latched, Some(nat));
    assert!(t2.get(fb2).unwrap().weakly_latched());
    assert_eq!(t2.get(fa2).unwrap().counters.snapshot().latched_peer, Some(a(A)));
}

#[test]
fn idle_time_continues_on_the_new_clock() {
    let ra = FlowRule::rtp(a(LA), Some(a(A)), Some(a(LB)));
    let rb = FlowRule::rtp(a(LB), Some(a(B)), Some(a(LA)));
    let (mut t, fa, _) = table();
    t.apply(&ra).unwrap();
    t.apply(&rb).unwrap();
    assert_eq!(t.state(a(LA), 1_000_000).unwrap().idle_ms, None, "nothing heard yet");
    run(&mut t, fa, a(A), &rtp(1, 1), 5_000_000);
    let s = t.state(a(LA), 8_000_000).unwrap();
    assert_eq!(s.idle_ms, Some(3_000));
    assert_eq!(s.counters.last_packet_ms, 5_000);
    let (mut t2, fa2, _) = table();
    t2.restore(&ra, s, 100_000_000).unwrap();
    // 3 s idle already, on the new clock
    assert_eq!(t2.get(fa2).unwrap().counters.snapshot().last_packet_ms, 97_000);
    assert_eq!(t2.state(a(LA), 101_000_000).unwrap().idle_ms, Some(4_000));
    // the latched peer has been silent past relatch-after: a proven new source may take over
    assert!(t2.get(fa2).unwrap().last_from_peer_ms == 97_000);
}

/// Kept state is input: random (and hostile) values restore without panic, and the socket
/// still works by its rule.
#[test]
fn any_state_restores_without_panic() {
    let mut rng = Rng(0xfeed_beef_0123_4567);
    let addr = |rng: &mut Rng| -> Option<SocketAddr> {
        match rng.next() % 5 {
            0 => None,
            1 => Some(a("127.0.0.1:1")),
            2 => Some(a("0.0.0.0:0")),
            3 => Some(a("[::1]:9")),
            _ => Some(SocketAddr::from(((rng.next() as u32).to_be_bytes(), rng.next() as u16))),
        }
    };
    let big = |rng: &mut Rng| -> u64 { [0, 1, u64::MAX, rng.next(), rng.next() % 100_000][(rng.next() % 5) as usize] };
    let (ra, rb) = srtp_rules();
    let plain = FlowRule::rtp(a(LA), Some(a(A)), Some(a(LB)));
    let identity = std::sync::Arc::new(crate::dtls::generate_identity(1_700_000_000, 86_400).unwrap());
    let webrtc = FlowRule {
        ice: Some(rules::dataplane::IceRule {
            local_ufrag: "relay".into(),
            local_pwd: "relaypassword0123456789".into(),
            remote_ufrag: None,
            remote_pwd: None,
        }),
        dtls: Some(rules::dataplane::DtlsRule {
            role: rules::dataplane::DtlsRole::Active,
            identity: identity.clone(),
            remote_fingerprint: Some(identity.fingerprint.clone()),
            generation: 0,
        }),
        ..plain.clone()
    };
    for round in 0..200 {
        let streams = |rng: &mut Rng| -> Vec<SrtpStreamState> {
            (0..rng.next() % 70)
                .map(|_| SrtpStreamState {
                    ssrc: (rng.next() % 4) as u32 * 0x1111,
                    sent: rng.next().is_multiple_of(2),
                    rtp_highest: (!rng.next().is_multiple_of(3)).then(|| big(rng)),
                    rtcp_next: big(rng) as u32,
                    rtcp_highest: (!rng.next().is_multiple_of(3)).then(|| big(rng) as u32),
                })
                .collect()
        };
        let mut s = FlowState {
            latched_peer: addr(&mut rng),
            weak_latch: rng.next().is_multiple_of(2),
            idle_ms: rng.next().is_multiple_of(2).then(|| big(&mut rng)),
            srtp_in: streams(&mut rng),
            srtp_out: streams(&mut rng),
            dtls_keys: rng
                .next()
                .is_multiple_of(2)
                .then(|| rules::state::DtlsKeyState { local: key(9), remote: key(8) }),
            ice_peer: addr(&mut rng),
            counters: Default::default(),
        };
        s.counters.packets = big(&mut rng);
        s.counters.lost = big(&mut rng) as i64;
        s.counters.last_packet_ms = big(&mut rng);
        let rule = [&ra, &plain, &webrtc][round % 3];
        let (mut t, fa, fb) = table();
        t.restore(rule, s.clone(), big(&mut rng) / 1000).unwrap();
        t.restore(&rb, s, big(&mut rng) / 1000).unwrap();
        for i in 0..5u16 {
            let now = rng.next() % 100_000_000;
            run(&mut t, fa, a(A), &rtp(rng.next() as u16, 0x1111), now);
            run(&mut t, fb, a(B), &rtp(i, 0x2222), now);
            let _ = t.state(a(LA), rng.next());
            t.handle_timeout(now);
            while t.poll_transmit().is_some() {}
        }
    }
    // an address that is not open is refused, as apply refuses it
    let (mut t, _, _) = table();
    let r = t.restore(&FlowRule::rtp(a("10.0.0.1:1"), None, None), FlowState::default(), 0);
    assert!(r.is_err());
}
