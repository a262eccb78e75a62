//! Whole calls through the in-memory relay, in the style of str0m's tests: a caller and a
//! callee talk through the real engine and flow table, faster than real time, while the
//! network loses, reorders and duplicates datagrams, rebinds a NAT and forges sources.
//! Every test checks what the endpoints received and what the relay counted (ng `query`
//! and the data plane's per-socket counters).

use std::net::SocketAddr;

use control::bencode::Value;
use control::engine::EngineConfig;
use control::interface::Interface;
use rules::addrpolicy::AddressPolicy;
use rules::dataplane::{DataPlane, FlowCounters};
use sim::endpoint::Direction;
use sim::{Endpoint, Impairment, Relay};

const RELAY_IP: &str = "203.0.113.1";
const CALL_ID: &str = "sim-call-1";
const A_TAG: &str = "caller-tag";
const B_TAG: &str = "callee-tag";
/// One RTP packet every 20 ms (PCMU).
const PTIME_MS: u64 = 20;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A relay on 203.0.113.1 with the production address policy (not the lab one): its
/// own sockets, loopback and the like are denied as media sources.
fn relay(seed: u64) -> Relay {
    let ip = RELAY_IP.parse().unwrap();
    let media_policy = AddressPolicy { own: vec![ip], own_ports: vec![(30000, 40000)], ..AddressPolicy::default() };
    let cfg =
        EngineConfig { interfaces: vec![Interface::parse(RELAY_IP).unwrap()], media_policy, ..Default::default() };
    Relay::new(cfg, seed)
}

/// A caller, a callee and the relay between them.
struct Call {
    relay: Relay,
    a: Endpoint,
    b: Endpoint,
    /// Payloads sent so far, to tell each packet apart.
    sent: u64,
}

/// What each side received in one exchange, as payloads, in arrival order.
#[derive(Debug, Default)]
struct Heard {
    by_a: Vec<String>,
    by_b: Vec<String>,
}

impl Call {
    fn new(seed: u64, srtp: bool) -> Call {
        let mut a = Endpoint::new("caller", addr("198.51.100.10:4000"), 0xa11ce);
        let mut b = Endpoint::new("callee", addr("198.51.100.20:5000"), 0xb0b);
        if srtp {
            a.new_srtp_key();
            b.new_srtp_key();
        }
        Call { relay: relay(seed), a, b, sent: 0 }
    }

    fn ng(&mut self, cmd: &str, extra: &[(&str, Value)]) -> Value {
        let mut req = Value::dict();
        req.insert("command", Value::str(cmd));
        req.insert("call-id", Value::str(CALL_ID));
        for (k, v) in extra {
            req.insert(k, v.clone());
        }
        self.relay.ng(&req)
    }

    fn ok(reply: &Value) -> &Value {
        assert_eq!(reply.get("result").and_then(Value::as_str), Some("ok"), "ng reply {reply:?}");
        reply
    }

    /// The caller (re-)offers; the callee learns the relay's offer.
    fn offer(&mut self, dir: Direction) -> String {
        let sdp = self.a.sdp(dir);
        let r = self.ng("offer", &[("from-tag", Value::str(A_TAG)), ("sdp", Value::str(&sdp))]);
        let out = Self::ok(&r).get("sdp").and_then(Value::as_str).expect("an SDP").to_string();
        self.b.learn(&out);
        out
    }

    /// The callee answers; the caller learns the relay's answer.
    fn answer(&mut self) -> String {
        let sdp = self.b.sdp(Direction::SendRecv);
        let r = self
            .ng("answer", &[("from-tag", Value::str(A_TAG)), ("to-tag", Value::str(B_TAG)), ("sdp", Value::str(&sdp))]);
        let out = Self::ok(&r).get("sdp").and_then(Value::as_str).expect("an SDP").to_string();
        self.a.learn(&out);
        out
    }

    fn offer_answer(&mut self, dir: Direction) {
        self.offer(dir);
        self.answer();
    }

    /// Both sides send `n` packets, one every 20 ms (`a_talks`/`b_talks` choose who), then
    /// the network drains; what each side received.
    fn talk(&mut self, n: usize, a_talks: bool, b_talks: bool) -> Heard {
        for _ in 0..n {
            self.sent += 1;
            if a_talks {
                let p = self.a.rtp(format!("a{}", self.sent).as_bytes());
                self.relay.send(self.a.addr, self.a.relay.expect("the caller knows the relay"), p);
            }
            if b_talks {
                let p = self.b.rtp(format!("b{}", self.sent).as_bytes());
                self.relay.send(self.b.addr, self.b.relay.expect("the callee knows the relay"), p);
            }
            self.relay.run_for(PTIME_MS);
        }
        self.relay.run_for(500);
        self.heard()
    }

    fn heard(&mut self) -> Heard {
        let mut h = Heard::default();
        for (e, out) in [(&mut self.a, &mut h.by_a), (&mut self.b, &mut h.by_b)] {
            for d in self.relay.take_inbox(e.addr) {
                let p = e.open(&d.payload).unwrap_or_else(|| panic!("{} got a packet it cannot open", e.name));
                out.push(String::from_utf8(p).unwrap());
            }
        }
        h
    }

    /// The data-plane counters of the relay socket that faces the caller / the callee.
    fn counters_a(&self) -> FlowCounters {
        self.relay.dataplane().counters(self.a.relay.unwrap()).expect("the caller's relay socket is open")
    }

    fn counters_b(&self) -> FlowCounters {
        self.relay.dataplane().counters(self.b.relay.unwrap()).expect("the callee's relay socket is open")
    }

    /// ng `query`: the RTP stream of `tag`'s first media section.
    fn query_stream(&mut self, tag: &str) -> Value {
        let q = self.ng("query", &[]);
        let tags = Self::ok(&q).get("tags").expect("tags");
        let media = &tags.get(tag).expect("the tag").get("medias").unwrap().as_list().unwrap()[0];
        media.get("streams").unwrap().as_list().unwrap()[0].clone()
    }
}

fn int(v: &Value, path: &str) -> i64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur.get(k).unwrap_or_else(|| panic!("no {path} in {v:?}"));
    }
    cur.as_int().unwrap()
}

/// The payloads one side sent in a range of packet numbers.
fn sent(side: char, range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|i| format!("{side}{i}")).collect()
}

#[test]
fn an_srtp_call_from_offer_to_delete() {
    let mut c = Call::new(1, true);

    // offer -> answer: both legs SDES-SRTP, the relay's own keys towards each party
    let to_b = c.offer(Direction::SendRecv);
    assert!(to_b.contains("RTP/SAVP") && to_b.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80"), "{to_b}");
    assert!(to_b.contains(&format!("c=IN IP4 {RELAY_IP}")), "{to_b}");
    let to_a = c.answer();
    assert!(to_a.contains("RTP/SAVP") && to_a.contains("a=crypto:1 "), "{to_a}");
    let (relay_a, relay_b) = (c.a.relay.unwrap(), c.b.relay.unwrap());
    assert_ne!(relay_a, relay_b);

    // media both ways, every packet decrypted by the far end in order
    let h = c.talk(50, true, true);
    assert_eq!(h.by_b, sent('a', 1..=50));
    assert_eq!(h.by_a, sent('b', 1..=50));
    let s = c.query_stream(A_TAG);
    assert_eq!((int(&s, "stats.packets"), int(&s, "stats.errors")), (50, 0));
    assert_eq!((int(&s, "local port"), int(&s, "endpoint.port")), (relay_a.port() as i64, 4000));
    assert_eq!(int(&s, "SSRC"), 0xa11ce);

    // re-INVITE from a new port: the relay keeps its sockets, sends to the new port
    let old_a = c.a.addr;
    c.a.addr = addr("198.51.100.10:4002");
    c.offer_answer(Direction::SendRecv);
    assert_eq!((c.a.relay.unwrap(), c.b.relay.unwrap()), (relay_a, relay_b), "a re-INVITE keeps the ports");
    let h = c.talk(20, true, true);
    assert_eq!(h.by_b, sent('a', 51..=70));
    assert_eq!(h.by_a, sent('b', 51..=70));
    assert!(c.relay.take_inbox(old_a).is_empty(), "nothing goes to the old port");
    assert_eq!(int(&c.query_stream(A_TAG), "endpoint.port"), 4002);

    // hold (c=0.0.0.0, a=sendonly): the callee's media has nowhere to go
    let held = c.offer(Direction::Hold);
    assert!(held.contains("a=sendonly"), "{held}");
    c.answer();
    let before = c.counters_b().drop_no_destination;
    let h = c.talk(10, false, true);
    assert!(h.by_a.is_empty(), "media reached a held party: {:?}", h.by_a);
    assert_eq!(c.counters_b().drop_no_destination - before, 10);

    // resume: media flows both ways again
    c.offer_answer(Direction::SendRecv);
    let h = c.talk(20, true, true);
    assert_eq!(h.by_b, sent('a', 81..=100));
    assert_eq!(h.by_a, sent('b', 81..=100));

    // SDES re-key: both parties send under new keys from the re-INVITE on
    c.a.new_srtp_key();
    c.b.new_srtp_key();
    c.offer_answer(Direction::SendRecv);
    let h = c.talk(20, true, true);
    assert_eq!(h.by_b, sent('a', 101..=120));
    assert_eq!(h.by_a, sent('b', 101..=120));
    for cn in [c.counters_a(), c.counters_b()] {
        assert_eq!((cn.drop_srtp_auth, cn.drop_srtp_replay, cn.drop_srtp_index), (0, 0, 0), "{cn:?}");
    }
    let s = c.query_stream(B_TAG);
    assert_eq!((int(&s, "stats.packets"), int(&s, "stats.errors")), (120, 10), "the 10 held packets are errors");

    // delete: the call lingers for delete-delay (30 s), then the timers tear it down
    Call::ok(&c.ng("delete", &[("from-tag", Value::str(A_TAG))]));
    let h = c.talk(5, true, true);
    assert_eq!(h.by_b, sent('a', 121..=125), "late packets flow during delete-delay");
    c.relay.run_for(31_000);
    let q = c.ng("query", &[]);
    assert_eq!(q.get("result").and_then(Value::as_str), Some("error"), "{q:?}");
    assert!(!c.relay.dataplane().is_open(relay_a) && !c.relay.dataplane().is_open(relay_b));
    let h = c.talk(5, true, true);
    assert!(h.by_a.is_empty() && h.by_b.is_empty());
    // nothing listens on the released ports any more
    assert_eq!((c.relay.take_inbox(relay_a).len(), c.relay.take_inbox(relay_b).len()), (5, 5));
}

#[test]
fn loss_reordering_and_duplication_show_in_the_stats() {
    let mut c = Call::new(7, false);
    c.offer_answer(Direction::SendRecv);
    let link = Impairment {
        latency_ms: 15,
        loss_per_mille: 80,
        reorder_per_mille: 100,
        reorder_delay_ms: 45,
        duplicate_per_mille: 20,
    };
    c.relay.net.set_link(c.a.addr, link);
    let h = c.talk(500, true, false);
    let net = c.relay.net.stats.clone();
    assert!(net.lost > 10 && net.reordered > 10 && net.duplicated > 0, "{net:?}");

    // what arrived is what was sent, minus losses, plus duplicates, partly out of order
    let all = sent('a', 1..=500);
    assert!(h.by_b.iter().all(|p| all.contains(p)));
    let n = |p: &String| p[1..].parse::<u64>().unwrap();
    let mut uniq: Vec<u64> = h.by_b.iter().map(n).collect();
    let out_of_order = uniq.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(out_of_order > 10, "reordering visible at the callee ({out_of_order})");
    uniq.sort();
    let dups = uniq.len();
    uniq.dedup();
    assert!(dups > uniq.len(), "a duplicate reached the callee");
    assert!((400..500).contains(&uniq.len()), "{} of 500 arrived", uniq.len());

    // the relay counted every packet it got and forwarded, RFC 3550 loss and jitter
    let cn = c.counters_a();
    assert_eq!(cn.forwarded as usize, h.by_b.len());
    let missing = 500 - uniq.len() as i64;
    let dup = (h.by_b.len() - uniq.len()) as i64;
    // cumulative loss is expected - received (duplicates count as received); the last
    // packets' loss is not known yet
    assert!((cn.lost - (missing - dup)).abs() <= 3, "lost {} vs {missing} missing, {dup} duplicated", cn.lost);
    assert!(cn.jitter_us > 1000, "reordering by 45 ms shows as jitter ({} us)", cn.jitter_us);
    let s = c.query_stream(A_TAG);
    assert_eq!(int(&s, "stats.packets") as usize, h.by_b.len());
    assert_eq!(int(&s, "stats.errors"), 0);
}

#[test]
fn nat_rebinding_moves_the_latch_after_the_relatch_silence() {
    let mut c = Call::new(3, false);
    c.offer_answer(Direction::SendRecv);
    let h = c.talk(25, true, true);
    assert_eq!((h.by_a.len(), h.by_b.len()), (25, 25));
    assert_eq!(c.counters_a().latched_peer, Some(c.a.addr));

    // the caller's NAT gives it a new public port mid-call; it keeps talking
    let silent_since = c.counters_a().last_packet_ms;
    let outside = addr("198.51.100.99:61000");
    c.relay.net.rebind(c.a.addr, outside);
    let start = c.relay.now_ms();
    let h = c.talk(150, true, true);
    let cn = c.counters_a();
    assert_eq!((cn.relatched, cn.latched_peer), (1, Some(outside)), "{cn:?}");

    // until the old address had been silent for --relatch-after (2 s), the new source
    // was foreign; then a packet that continues the stream (same SSRC, sequence ahead)
    // took the latch
    let relatch_ms = relay_core::flow::FlowSettings::default().relatch_after_ms;
    let early = (silent_since + relatch_ms).saturating_sub(start).div_ceil(PTIME_MS);
    let dropped = cn.drop_foreign_source;
    assert!(dropped.abs_diff(early) <= 1, "{dropped} dropped as foreign, {early} sent within the silence");
    assert_eq!(h.by_b, sent('a', 26 + dropped..=175), "forwarded from the relatch on, in order");
    // the callee's media went to the old mapping (gone) until the latch moved with it
    assert_eq!(h.by_a, sent('b', 26 + dropped..=175));
    let s = c.query_stream(A_TAG);
    assert_eq!((int(&s, "endpoint.port"), int(&s, "stats.errors")), (61000, dropped as i64));
}

#[test]
fn foreign_and_spoofed_sources_are_dropped_and_never_take_the_latch() {
    let mut c = Call::new(5, false);
    c.offer_answer(Direction::SendRecv);
    c.talk(10, true, true);
    let relay_a = c.a.relay.unwrap();
    let relay_b = c.b.relay.unwrap();

    // an attacker who sniffed the stream imitates the caller: same SSRC, next sequence
    // numbers, from its own address, while the caller is talking
    let mut mimic = Endpoint::new("mimic", addr("192.0.2.66:5004"), 0xa11ce);
    for i in 0..3 {
        mimic.rtp(format!("skip{i}").as_bytes());
    }
    for i in 0..50 {
        let p = mimic.rtp(format!("spoof{i}").as_bytes());
        c.relay.spoof(mimic.addr, relay_a, p);
        let p = c.a.rtp(format!("a-live{i}").as_bytes());
        c.relay.send(c.a.addr, relay_a, p);
        c.relay.run_for(PTIME_MS);
    }
    // forged sources the address policy denies: loopback, the relay's own sockets
    let garbage = mimic.rtp(b"denied");
    c.relay.spoof(addr("127.0.0.1:5004"), relay_a, garbage.clone());
    c.relay.spoof(relay_b, relay_a, garbage.clone());
    c.relay.spoof(addr("0.0.0.0:5004"), relay_a, garbage);
    c.relay.run_for(100);
    let h = c.heard();
    assert_eq!(h.by_b, (0..50).map(|i| format!("a-live{i}")).collect::<Vec<_>>(), "only the caller is forwarded");
    let cn = c.counters_a();
    assert_eq!((cn.drop_foreign_source, cn.drop_denied_source), (50, 3), "{cn:?}");
    assert_eq!(cn.latched_peer, Some(c.a.addr));

    // the caller goes silent (hold music off, silence suppression) for longer than the
    // relatch silence: a source that does not continue the stream still cannot take over
    c.relay.run_for(3_000);
    let mut stranger = Endpoint::new("stranger", addr("192.0.2.77:7078"), 0x5eed);
    for i in 0..100 {
        let p = stranger.rtp(format!("stranger{i}").as_bytes());
        c.relay.spoof(stranger.addr, relay_a, p);
        c.relay.run_for(PTIME_MS);
    }
    let h = c.heard();
    assert!(h.by_b.is_empty(), "a stranger's media was forwarded: {:?}", h.by_b);
    let cn = c.counters_a();
    assert_eq!((cn.drop_foreign_source, cn.relatched, cn.latched_peer), (150, 0, Some(c.a.addr)));

    // the caller comes back and is heard at once; the callee's media still goes to it
    let h = c.talk(10, true, true);
    assert_eq!(h.by_b.len(), 10);
    assert_eq!(h.by_a.len(), 10);
    assert!(c.relay.take_inbox(mimic.addr).is_empty() && c.relay.take_inbox(stranger.addr).is_empty());
    let s = c.query_stream(A_TAG);
    assert_eq!((int(&s, "endpoint.port"), int(&s, "stats.errors")), (4000, 153));
}

#[test]
fn a_spoofed_srtp_packet_cannot_latch_or_touch_the_replay_window() {
    let mut c = Call::new(9, true);
    c.offer_answer(Direction::SendRecv);
    let h = c.talk(10, true, true);
    assert_eq!((h.by_a.len(), h.by_b.len()), (10, 10));
    let relay_a = c.a.relay.unwrap();
    // a copy of the caller's next packet, sent first from another address: dropped as
    // foreign before any crypto, so the real one is not a "replay"
    let real = c.a.rtp(b"a-real");
    c.relay.spoof(addr("192.0.2.66:5004"), relay_a, real.clone());
    c.relay.run_for(5);
    c.relay.send(c.a.addr, relay_a, real.clone());
    // a replay of it from the caller's own address is refused by the replay window
    c.relay.run_for(5);
    c.relay.send(c.a.addr, relay_a, real);
    c.relay.run_for(200);
    let h = c.heard();
    assert_eq!(h.by_b, vec!["a-real".to_string()]);
    let cn = c.counters_a();
    assert_eq!((cn.drop_foreign_source, cn.drop_srtp_replay, cn.drop_srtp_auth), (1, 1, 0), "{cn:?}");
    assert_eq!(cn.latched_peer, Some(c.a.addr));
}

/// Lync-style SDES keys with MKIs on one leg, a parity suite without on the other: the
/// relay checks the caller's MKI on every packet, puts the MKI of its own key on what it
/// sends the caller, and re-encrypts between the legs.
#[test]
fn mki_keys_on_one_leg_and_a_parity_suite_on_the_other() {
    let mut c = Call::new(12, false);
    c.a.suite = relay_core::srtp::Suite::AesCm128HmacSha1_80;
    c.a.mki = rules::dataplane::Mki::from_value(1, 1);
    c.b.suite = relay_core::srtp::Suite::AesCm192HmacSha1_32;
    c.a.new_srtp_key();
    c.b.new_srtp_key();
    let to_b = c.offer(Direction::SendRecv);
    assert!(
        to_b.lines().any(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 ") && l.ends_with("|1:1")),
        "{to_b}"
    );
    assert!(to_b.contains("AES_192_CM_HMAC_SHA1_32") && to_b.contains("NULL_HMAC_SHA1_80"), "{to_b}");
    let to_a = c.answer();
    assert!(to_a.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") && to_a.contains("|1:1"), "{to_a}");
    let h = c.talk(30, true, true);
    assert_eq!(h.by_b, sent('a', 1..=30));
    assert_eq!(h.by_a, sent('b', 1..=30));
    assert_eq!((c.counters_a().dropped, c.counters_b().dropped), (0, 0));
}

#[test]
fn the_relay_re_encrypts_between_legs_of_different_suites() {
    let mut c = Call::new(11, false);
    c.a.suite = relay_core::srtp::Suite::AesCm128HmacSha1_80;
    c.b.suite = relay_core::srtp::Suite::AeadAes256Gcm;
    c.a.new_srtp_key();
    c.b.new_srtp_key();
    let to_b = c.offer(Direction::SendRecv);
    assert!(to_b.contains("AEAD_AES_256_GCM"), "the relay offers the callee its other suites: {to_b}");
    let to_a = c.answer();
    assert!(to_a.contains("AES_CM_128_HMAC_SHA1_80") && !to_a.contains("GCM"), "{to_a}");
    let h = c.talk(30, true, true);
    assert_eq!(h.by_b, sent('a', 1..=30));
    assert_eq!(h.by_a, sent('b', 1..=30));
    assert_eq!((c.counters_a().dropped, c.counters_b().dropped), (0, 0));
}
