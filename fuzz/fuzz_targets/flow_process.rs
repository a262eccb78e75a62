#![no_main]
//! Arbitrary datagrams from arbitrary sources, at arbitrary times, at a two-leg call under
//! a production address policy: never a panic; a packet that fails validation never moves
//! a latch; nothing is ever latched to, or forwarded to, an address the policy denies.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rules::addrpolicy::AddressPolicy;
use rules::dataplane::{FlowKind, FlowRule, LatchPolicy};
use libfuzzer_sys::fuzz_target;
use relay_core::flow::{DropReason, FlowTable, Verdict};

/// Sources the fuzzer picks from: the signalled peers, NATed and foreign addresses, the
/// SIP source's IP, and addresses the policy denies (loopback, the relay's own sockets).
const SOURCES: [&str; 8] = [
    "192.0.2.1:4000",
    "192.0.2.1:4001",
    "198.51.100.7:6000",
    "203.0.113.9:7000",
    "203.0.113.9:7001",
    "127.0.0.1:2223",
    "10.0.0.1:30002",
    "0.0.0.0:4000",
];

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, data)) = data.split_first() else { return };
    let policy = Arc::new(AddressPolicy {
        own: vec!["10.0.0.1".parse().unwrap()],
        own_ports: vec![(30000, 40000), (2223, 2223)],
        ..Default::default()
    });
    let a: SocketAddr = "10.0.0.1:30000".parse().unwrap();
    let b: SocketAddr = "10.0.0.1:30002".parse().unwrap();
    let grace = [0, 1000, 20][(cfg & 3) as usize % 3];
    let mut t = FlowTable::new(2000).with_policy(policy.clone()).with_latch_grace(grace);
    let fa = t.insert(a, Default::default());
    let fb = t.insert(b, Default::default());
    let latch = LatchPolicy { asymmetric: cfg & 4 != 0, trust_address: cfg & 8 != 0, strict_source: cfg & 16 != 0 };
    let sip: Option<IpAddr> = (cfg & 32 != 0).then(|| "198.51.100.7".parse().unwrap());
    // B's signalled peer: a real one, or one the policy denies (the relay's ng port)
    let b_peer: SocketAddr = if cfg & 64 != 0 { "127.0.0.1:2223" } else { "192.0.2.1:4000" }.parse().unwrap();
    for (l, e, k, peer) in [(a, b, FlowKind::RtpMux, "192.0.2.1:4000".parse().unwrap()), (b, a, FlowKind::Rtp, b_peer)] {
        t.apply(&FlowRule {
            kind: k,
            egress_rtcp: Some(e),
            latch,
            sip_source: sip,
            ..FlowRule::rtp(l, Some(peer), Some(e))
        })
        .expect("a plain rule on an open socket applies");
    }
    let mut now = 0u64;
    for chunk in data.chunks(64) {
        let Some((&h, body)) = chunk.split_first() else { continue };
        let src: SocketAddr = SOURCES[(h & 7) as usize].parse().unwrap();
        let id = if h & 8 != 0 { fb } else { fa };
        // time moves by 0 .. ~4 s per packet, so grace periods and silences both happen
        now += ((h >> 4) as u64).pow(3) * 1_000 + body.len() as u64;
        let before = t.get(id).unwrap().latched;
        let mut buf = [0u8; 128];
        buf[..body.len()].copy_from_slice(body);
        let v = t.process(id, src, &mut buf, body.len(), now);
        let after = t.get(id).unwrap().latched;
        match v {
            Verdict::Drop(DropReason::Malformed(_) | DropReason::DeniedSource) => assert_eq!(after, before),
            Verdict::Forward { to, .. } => assert!(policy.allows(to), "forwarded to {to}"),
            _ => {}
        }
        if let Some(p) = after {
            assert!(policy.allows(p), "latched to {p}");
        }
        if !policy.allows(src) {
            assert_eq!(v, Verdict::Drop(DropReason::DeniedSource));
        }
    }
});
