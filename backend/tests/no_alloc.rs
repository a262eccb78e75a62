//! The packet path allocates nothing: a counting global allocator watches the flow table
//! and the real io_uring workers while they forward packets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use backend::dataplane::UringDataPlane;
use relay_core::flow::{FlowTable, Verdict};
use relay_core::packet::rtp::emit_header;
use rules::dataplane::{DataPlane, FlowRule, SrtpKey, Suite};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn rule(local: SocketAddr, peer: SocketAddr, egress: SocketAddr) -> FlowRule {
    FlowRule::rtp(local, Some(peer), Some(egress))
}

fn lb_addr() -> SocketAddr {
    "10.0.0.1:30002".parse().unwrap()
}

fn rtp(seq: u16) -> [u8; 172] {
    let mut b = [0u8; 172];
    emit_header(&mut b, 0, false, seq, seq as u32 * 160, 7);
    b
}

/// Both tests share the global counter, so they run as one.
#[test]
fn packet_path_does_not_allocate() {
    // 1. the sans-IO flow table
    let a: SocketAddr = "10.0.0.1:30000".parse().unwrap();
    let b: SocketAddr = "10.0.0.1:30002".parse().unwrap();
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a, Default::default());
    t.insert(b, Default::default());
    t.apply(&rule(a, "192.0.2.1:4000".parse().unwrap(), b)).unwrap();
    t.apply(&rule(b, "192.0.2.2:4000".parse().unwrap(), a)).unwrap();
    let src: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let mut b = [0u8; 256];
    b[..172].copy_from_slice(&rtp(0));
    t.process(fa, src, &mut b, 172, 1); // latch (its one-time work may allocate)
    let pkts: Vec<[u8; 172]> = (1..=10_000u16).map(rtp).collect();
    let before = ALLOCS.load(Relaxed);
    for (i, p) in pkts.iter().enumerate() {
        b[..172].copy_from_slice(p);
        assert!(matches!(t.process(fa, src, &mut b, 172, 1 + i as u64 * 20_000), Verdict::Forward { .. }));
    }
    let flow_table_allocs = ALLOCS.load(Relaxed) - before;

    // 1a. with a production address policy, foreign and denied sources interleaved (the
    // policy check, the grace bookkeeping and the drops allocate nothing either)
    let policy = rules::addrpolicy::AddressPolicy {
        own: vec!["10.0.0.1".parse().unwrap()],
        own_ports: vec![(30000, 40000), (2223, 2223)],
        deny: vec!["198.18.0.0/15".parse().unwrap()],
        ..Default::default()
    };
    let mut t = FlowTable::new(2000).with_policy(std::sync::Arc::new(policy));
    let fa = t.insert(a, Default::default());
    let fb = t.insert(lb_addr(), Default::default());
    t.apply(&rule(a, "192.0.2.1:4000".parse().unwrap(), lb_addr())).unwrap();
    t.apply(&rule(lb_addr(), "192.0.2.2:4000".parse().unwrap(), a)).unwrap();
    b[..172].copy_from_slice(&rtp(0));
    t.process(fa, src, &mut b, 172, 1);
    let foreign: [SocketAddr; 3] =
        ["203.0.113.9:5000".parse().unwrap(), "127.0.0.1:2223".parse().unwrap(), "198.18.0.1:9".parse().unwrap()];
    let before = ALLOCS.load(Relaxed);
    for (i, p) in pkts.iter().enumerate() {
        let now = 1 + i as u64 * 20_000;
        b[..172].copy_from_slice(p);
        assert!(matches!(t.process(fa, src, &mut b, 172, now), Verdict::Forward { .. }));
        let f = foreign[i % 3];
        b[..172].copy_from_slice(p);
        assert!(matches!(t.process(fa, f, &mut b, 172, now), Verdict::Drop(_)));
        b[..172].copy_from_slice(p);
        t.process(fb, f, &mut b, 172, now); // before B's first latch: grace bookkeeping
    }
    let policy_allocs = ALLOCS.load(Relaxed) - before;

    // 1b. the same with SRTP on both legs (decrypt with A's key, re-encrypt with B's)
    let key = |s: Suite, seed: u8| SrtpKey::new(s, &vec![seed; s.key_len()], &vec![seed; s.salt_len()]).unwrap();
    let (ka, kb) = (key(Suite::AesCm128HmacSha1_80, 1), key(Suite::AeadAes128Gcm, 2));
    let lb: SocketAddr = "10.0.0.1:30002".parse().unwrap();
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a, Default::default());
    t.insert(lb, Default::default());
    let mut ra = rule(a, "192.0.2.1:4000".parse().unwrap(), lb);
    ra.srtp_in = Some(ka.clone());
    let mut rb = rule(lb, "192.0.2.2:4000".parse().unwrap(), a);
    rb.srtp_out = Some(kb);
    t.apply(&ra).unwrap();
    t.apply(&rb).unwrap();
    let mut sender = relay_core::srtp::Context::new(ka.suite, &ka.key, &ka.salt).unwrap();
    let protected: Vec<Vec<u8>> = (0..10_000u16)
        .map(|i| {
            let mut p = [0u8; 256];
            p[..172].copy_from_slice(&rtp(i));
            let n = sender.protect_rtp(&mut p, 172).unwrap();
            p[..n].to_vec()
        })
        .collect();
    let n0 = protected[0].len();
    b[..n0].copy_from_slice(&protected[0]);
    t.process(fa, src, &mut b, n0, 1); // latch, first SSRC state
    let before = ALLOCS.load(Relaxed);
    for (i, p) in protected.iter().enumerate().skip(1) {
        b[..p.len()].copy_from_slice(p);
        assert!(matches!(
            t.process(fa, src, &mut b, p.len(), 1 + i as u64 * 20_000),
            Verdict::Forward { len: 188, .. }
        ));
    }
    let srtp_allocs = ALLOCS.load(Relaxed) - before;

    // 1c. DTLS-keyed SRTP (a WebRTC leg without ICE): after the handshake, the same
    // allocation-free path as SDES keys
    let mut t = FlowTable::new(2000);
    let fa = t.insert(a, Default::default());
    t.insert(lb, Default::default());
    let identity = std::sync::Arc::new(relay_core::dtls::generate_identity(1_700_000_000, 86_400).unwrap());
    let dtls = |role| rules::dataplane::DtlsRule {
        role,
        identity: identity.clone(),
        remote_fingerprint: Some(identity.fingerprint.clone()),
        generation: 0,
    };
    let ra = FlowRule { dtls: Some(dtls(rules::dataplane::DtlsRole::Passive)), ..rule(a, src, lb) };
    t.apply(&ra).unwrap();
    t.apply(&rule(lb, "192.0.2.2:4000".parse().unwrap(), a)).unwrap();
    let mut client = relay_core::dtls::DtlsSession::new(&dtls(rules::dataplane::DtlsRole::Active), 1).unwrap();
    let mut hs = vec![0u8; 2048];
    for _ in 0..20 {
        while let Some(d) = client.poll_transmit() {
            hs[..d.len()].copy_from_slice(&d);
            t.process(fa, src, &mut hs, d.len(), 1);
        }
        while let Some(tx) = t.poll_transmit() {
            client.handle_datagram(1, &tx.data).unwrap();
        }
    }
    let keys = client.take_keys().expect("the handshake completed");
    let mut sender = relay_core::srtp::Context::new(keys.local.suite, &keys.local.key, &keys.local.salt).unwrap();
    let protected: Vec<Vec<u8>> = (0..10_000u16)
        .map(|i| {
            let mut p = [0u8; 256];
            p[..172].copy_from_slice(&rtp(i));
            let n = sender.protect_rtp(&mut p, 172).unwrap();
            p[..n].to_vec()
        })
        .collect();
    let n0 = protected[0].len();
    b[..n0].copy_from_slice(&protected[0]);
    t.process(fa, src, &mut b, n0, 2); // latch, first SSRC state
    let before = ALLOCS.load(Relaxed);
    for (i, p) in protected.iter().enumerate().skip(1) {
        b[..p.len()].copy_from_slice(p);
        assert!(matches!(
            t.process(fa, src, &mut b, p.len(), 2 + i as u64 * 20_000),
            Verdict::Forward { len: 172, .. }
        ));
    }
    let dtls_allocs = ALLOCS.load(Relaxed) - before;

    // 2. the io_uring workers forwarding real datagrams
    let mut dp = UringDataPlane::start(1, &[], 0, relay_core::flow::FlowSettings::default()).unwrap();
    let base = 47000 + (std::process::id() % 500) as u16 * 4;
    let ra: SocketAddr = format!("127.0.0.1:{base}").parse().unwrap();
    let rb: SocketAddr = format!("127.0.0.1:{}", base + 2).parse().unwrap();
    let pa = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pb = UdpSocket::bind("127.0.0.1:0").unwrap();
    pb.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    dp.open(ra, 1).unwrap();
    dp.open(rb, 1).unwrap();
    dp.apply(rule(ra, pa.local_addr().unwrap(), rb)).unwrap();
    dp.apply(rule(rb, pb.local_addr().unwrap(), ra)).unwrap();
    let mut buf = [0u8; 2048];
    let pkts: Vec<[u8; 172]> = (0..20_000u16).map(rtp).collect();
    // warm up: latch, first batches
    for p in &pkts[..1000] {
        pa.send_to(p, ra).unwrap();
        pb.recv_from(&mut buf).unwrap();
    }
    let before = ALLOCS.load(Relaxed);
    for chunk in pkts[1000..].chunks(16) {
        for p in chunk {
            pa.send_to(p, ra).unwrap();
        }
        for _ in chunk {
            pb.recv_from(&mut buf).unwrap();
        }
    }
    let worker_allocs = ALLOCS.load(Relaxed) - before;
    dp.stop();
    println!(
        "allocations: flow table {flow_table_allocs} for 10000 packets, with policy and foreign sources {policy_allocs} for 30000, with SRTP re-keying {srtp_allocs} for 9999, DTLS-keyed SRTP {dtls_allocs} for 9999, io_uring workers {worker_allocs} for 19000 packets"
    );
    assert_eq!(flow_table_allocs, 0);
    assert_eq!(policy_allocs, 0);
    assert_eq!(srtp_allocs, 0);
    assert_eq!(dtls_allocs, 0);
    assert_eq!(worker_allocs, 0);
}
