//! ns per `FlowTable::process` call, for the cases the latching rules touch: a latched
//! peer's plain RTP (the hot path), a foreign source on a latched flow, SRTP in from the
//! latched peer, and authentic SRTP copies from a foreign source (an on-path observer).
//! Simulated time moves 1 µs per SRTP packet, so the latched peer never goes silent.
//! Uses only the API the flow table has had since before the set-up rules, so the same
//! file measures old and new code in one session.
//!
//!     cargo run --release -p bench --bin flow_bench [-- PACKETS [plain|latched]]
//!
//! `plain`: only the plain-RTP cases, `latched`: only the first (for instruction counts
//! under `valgrind --tool=callgrind`, which a loaded machine does not disturb).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use relay_core::flow::{FlowTable, Verdict};
use relay_core::packet::rtp::emit_header;
use relay_core::srtp::{Context, Suite};
use rules::dataplane::{FlowRule, SrtpKey};

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rtp(seq: u16) -> [u8; 172] {
    let mut b = [0u8; 172];
    emit_header(&mut b, 0, false, seq, seq as u32 * 160, 0x1234);
    b
}

fn table(srtp_in: Option<SrtpKey>) -> (FlowTable, usize) {
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a("10.0.0.1:30000"), Default::default());
    t.insert(a("10.0.0.1:30002"), Default::default());
    t.apply(&FlowRule {
        srtp_in,
        ..FlowRule::rtp(a("10.0.0.1:30000"), Some(a("192.0.2.1:4000")), Some(a("10.0.0.1:30002")))
    })
    .unwrap();
    t.apply(&FlowRule::rtp(a("10.0.0.1:30002"), Some(a("192.0.2.2:4000")), Some(a("10.0.0.1:30000")))).unwrap();
    (t, fa)
}

/// Best of 5 runs of `n` calls, in ns per call.
fn measure(n: usize, mut run: impl FnMut(usize) -> Verdict) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        for i in 0..n {
            black_box(run(i));
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let peer = a("192.0.2.1:4000");
    let foreign = a("203.0.113.9:5000");
    let mut buf = [0u8; 512];

    let (mut t, fa) = table(None);
    buf[..172].copy_from_slice(&rtp(0));
    t.process(fa, peer, &mut buf, 172, 1);
    let pkts: Vec<[u8; 172]> = (0..4096u16).map(rtp).collect();
    let latched = measure(n, |i| {
        buf[..172].copy_from_slice(&pkts[i & 4095]);
        t.process(fa, peer, &mut buf, 172, 1 + i as u64 * 20)
    });
    if std::env::args().nth(2).as_deref() == Some("latched") {
        println!("  latched peer, plain RTP, forwarded     {latched:7.1}");
        return;
    }
    let foreign_plain = measure(n, |i| {
        buf[..172].copy_from_slice(&pkts[i & 4095]);
        t.process(fa, foreign, &mut buf, 172, 1 + i as u64 * 20)
    });
    if std::env::args().nth(2).as_deref() == Some("plain") {
        println!("  latched peer, plain RTP, forwarded     {latched:7.1}");
        println!("  foreign source on a latched flow, RTP  {foreign_plain:7.1}");
        return;
    }

    // SRTP: packets protected in advance, each sent once per table
    let suite = Suite::AesCm128HmacSha1_80;
    let key = SrtpKey::new(suite, &[7; 16], &[9; 14]).unwrap();
    let m = n.min(200_000);
    let mut tx = Context::new(suite, &key.key, &key.salt).unwrap();
    let srtp: Vec<Vec<u8>> = (0..=m)
        .map(|i| {
            let mut p = [0u8; 256];
            p[..172].copy_from_slice(&rtp(i as u16));
            let k = tx.protect_rtp(&mut p, 172).unwrap();
            p[..k].to_vec()
        })
        .collect();
    let mut srtp_run = |src: SocketAddr| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let (mut t, fa) = table(Some(key.clone()));
            let l = srtp[0].len();
            buf[..l].copy_from_slice(&srtp[0]);
            t.process(fa, peer, &mut buf, l, 1);
            let t0 = Instant::now();
            for (i, p) in srtp[1..].iter().enumerate() {
                buf[..p.len()].copy_from_slice(p);
                black_box(t.process(fa, src, &mut buf, p.len(), 2 + i as u64));
            }
            best = best.min(t0.elapsed().as_nanos() as f64 / m as f64);
        }
        best
    };
    let srtp_latched = srtp_run(peer);
    let srtp_foreign = srtp_run(foreign);
    println!("flow_bench: ns per process() call, best of 5 x {n} (SRTP: {m})");
    println!("  latched peer, plain RTP, forwarded     {latched:7.1}");
    println!("  foreign source on a latched flow, RTP  {foreign_plain:7.1}");
    println!("  latched peer, SRTP in (AES_CM_80)      {srtp_latched:7.1}");
    println!("  foreign source, authentic SRTP copies  {srtp_foreign:7.1}");
}
