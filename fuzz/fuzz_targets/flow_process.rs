#![no_main]
//! Arbitrary datagrams from arbitrary sources at a two-leg call: never a panic, and a
//! packet that fails validation never moves the latch.
use std::net::SocketAddr;

use control::dataplane::{FlowKind, FlowRule};
use libfuzzer_sys::fuzz_target;
use relay::flow::{FlowTable, Verdict};

fuzz_target!(|data: &[u8]| {
    let a: SocketAddr = "10.0.0.1:30000".parse().unwrap();
    let b: SocketAddr = "10.0.0.1:30002".parse().unwrap();
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a, Default::default());
    t.insert(b, Default::default());
    for (l, e, k) in [(a, b, FlowKind::RtpMux), (b, a, FlowKind::Rtp)] {
        t.apply(&FlowRule {
            kind: k,
            egress_rtcp: Some(e),
            ..FlowRule::rtp(l, Some("192.0.2.1:4000".parse().unwrap()), Some(e))
        });
    }
    let mut now = 0u64;
    for chunk in data.chunks(64) {
        let src = SocketAddr::from(([192, 0, 2, chunk[0] % 4], 4000 + (chunk.len() as u16 % 3)));
        let before = t.get(fa).unwrap().latched;
        now += chunk.len() as u64 * 10_000;
        let mut buf = [0u8; 128];
        buf[..chunk.len() - 1].copy_from_slice(&chunk[1..]);
        if let Verdict::Drop(relay::flow::DropReason::Malformed(_)) = t.process(fa, src, &mut buf, chunk.len() - 1, now)
        {
            assert_eq!(t.get(fa).unwrap().latched, before);
        }
    }
});
