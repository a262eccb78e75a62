//! A relay restarted under running calls (the state store's data-plane half): relay 1
//! carries an SRTP call (re-keyed between its legs) and a plain RTP call with a NATed
//! party; every socket's `flow_state` is taken (in the store's JSON form), relay 1 goes
//! away, and relay 2 -- a new process with a fresh flow table and clock -- opens the same
//! sockets and restores them. Media continues both ways with nothing lost but what was
//! sent while no relay listened: no SRTP authentication failure, no latch to learn again.

use std::collections::HashMap;
use std::net::SocketAddr;

use relay_core::flow::FlowSettings;
use rules::dataplane::{DataPlane, FlowRule};
use rules::state::FlowState;
use sim::dataplane::{Delivery, MemDataPlane};
use sim::endpoint::DEFAULT_SUITE;
use sim::{Endpoint, SimClock};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One call's two relay sockets and the endpoints on them.
struct Leg {
    local: SocketAddr,
    party: Endpoint,
    /// Where the party's packets come from (its NAT's outside address, or itself).
    from: SocketAddr,
    received: u64,
}

struct World {
    legs: Vec<Leg>,
    sent: u64,
}

impl World {
    /// Every party sends one packet (20 ms of media) to its relay socket; what the relay
    /// forwards is delivered to the party it is addressed to. `relay` None: no process
    /// listens, the packets are lost.
    fn step(&mut self, relay: Option<&MemDataPlane>) {
        for i in 0..self.legs.len() {
            let pkt = self.legs[i].party.rtp(&[0x42; 160]);
            self.sent += 1;
            let Some(dp) = relay else { continue };
            match dp.receive(self.legs[i].local, self.legs[i].from, &pkt) {
                Delivery::Forward { from, to, payload } => {
                    let leg = self.legs.iter_mut().find(|l| l.local == from).expect("a relay socket of the call");
                    assert!(to == leg.from || to == leg.party.addr, "sent to {to}, not to the party");
                    assert_eq!(
                        leg.party.open(&payload).as_deref(),
                        Some(&[0x42u8; 160][..]),
                        "{} cannot open",
                        leg.party.name
                    );
                    leg.received += 1;
                }
                other => panic!("{}'s packet: {other:?}", self.legs[i].party.name),
            }
        }
    }

    fn received(&self) -> u64 {
        self.legs.iter().map(|l| l.received).sum()
    }
}

/// Rules as the engine would give them: the SRTP call's legs re-key (each party has its
/// own keys), the plain call's callee sends from behind a NAT.
fn call() -> (World, Vec<FlowRule>) {
    let key = || control::sdes::generate(DEFAULT_SUITE);
    let (la, lb, lc, ld) =
        (addr("203.0.113.1:30000"), addr("203.0.113.1:30002"), addr("203.0.113.1:30004"), addr("203.0.113.1:30006"));
    let mut a = Endpoint::new("A", addr("192.0.2.10:4000"), 0xa);
    let mut b = Endpoint::new("B", addr("198.51.100.20:5000"), 0xb);
    let (a_tx, a_rx, b_tx, b_rx) = (key(), key(), key(), key());
    a.use_keys(&a_tx, &a_rx);
    b.use_keys(&b_tx, &b_rx);
    let c = Endpoint::new("C", addr("192.0.2.30:6000"), 0xc);
    let d = Endpoint::new("D", addr("10.1.1.40:7000"), 0xd);
    let nat = addr("198.51.100.99:41000");
    let rules = vec![
        FlowRule { srtp_in: Some(a_tx), srtp_out: Some(a_rx), ..FlowRule::rtp(la, Some(a.addr), Some(lb)) },
        FlowRule { srtp_in: Some(b_tx), srtp_out: Some(b_rx), ..FlowRule::rtp(lb, Some(b.addr), Some(la)) },
        FlowRule::rtp(lc, Some(c.addr), Some(ld)),
        FlowRule::rtp(ld, Some(d.addr), Some(lc)),
    ];
    let leg = |local, party: Endpoint, from| Leg { local, party, from, received: 0 };
    let legs = vec![
        leg(la, a, addr("192.0.2.10:4000")),
        leg(lb, b, addr("198.51.100.20:5000")),
        leg(lc, c, addr("192.0.2.30:6000")),
        leg(ld, d, nat),
    ];
    (World { legs, sent: 0 }, rules)
}

#[test]
fn calls_continue_on_a_restarted_relay_with_no_loss_beyond_the_gap() {
    let (mut w, rules) = call();
    let clock1 = SimClock::new();
    let relay1 = MemDataPlane::new(&FlowSettings::default(), clock1.clone());
    for r in &rules {
        relay1.open(r.local, 0).unwrap();
    }
    for r in &rules {
        relay1.apply(r.clone()).unwrap();
    }
    // D's NAT address latches after the grace period; until then D's media is dropped, so
    // the call is set up by hand here: the warm-up is not counted
    let nat = w.legs[3].from;
    let mut t = SimClock::START_MS;
    while relay1.counters(rules[3].local).unwrap().latched_peer != Some(nat) {
        t += 20;
        clock1.set_ms(t);
        let pkt = w.legs[3].party.rtp(&[0x42; 160]);
        relay1.receive(rules[3].local, nat, &pkt);
        assert!(t < 5_000, "D never latched");
    }
    for _ in 0..500 {
        t += 20;
        clock1.set_ms(t);
        w.step(Some(&relay1));
    }
    assert_eq!(w.received(), w.sent, "relay 1 lost media");

    // the state store: every socket's state, in its JSON form
    let kept: HashMap<SocketAddr, String> =
        rules.iter().map(|r| (r.local, serde_json::to_string(&relay1.flow_state(r.local).unwrap()).unwrap())).collect();
    drop(relay1);

    // 2 s with no relay: what is sent meanwhile is lost
    let before_gap = w.sent;
    for _ in 0..100 {
        w.step(None);
    }
    let lost = w.sent - before_gap;

    // relay 2: a new process, its own clock from the start
    let clock2 = SimClock::new();
    let relay2 = MemDataPlane::new(&FlowSettings::default(), clock2.clone());
    for r in &rules {
        relay2.open(r.local, 0).unwrap();
    }
    for r in &rules {
        let state: FlowState = serde_json::from_str(&kept[&r.local]).unwrap();
        relay2.restore(r.clone(), state).unwrap();
    }
    let mut t2 = SimClock::START_MS;
    for _ in 0..500 {
        t2 += 20;
        clock2.set_ms(t2);
        w.step(Some(&relay2));
    }
    assert_eq!(w.received(), w.sent - lost, "media lost beyond the gap");
    for l in &w.legs {
        assert_eq!(l.received, 1000, "{} received {}", l.party.name, l.received);
    }
    for r in &rules {
        let before: FlowState = serde_json::from_str(&kept[&r.local]).unwrap();
        let (c1, c2) = (before.counters, relay2.counters(r.local).unwrap());
        assert_eq!((c2.drop_srtp_auth, c2.drop_srtp_replay, c2.drop_srtp_index), (0, 0, 0), "{}: {c2:?}", r.local);
        assert_eq!(c2.dropped, c1.dropped, "{}: dropped after the restart", r.local);
        assert_eq!(c2.forwarded, c1.forwarded + 500, "{}: the counters continue", r.local);
    }
    assert_eq!(relay2.counters(rules[3].local).unwrap().latched_peer, Some(nat));
}
