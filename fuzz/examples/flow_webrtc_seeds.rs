//! Writes the seeds of the flow_process_webrtc target (fuzz/seeds/flow_process_webrtc):
//! whole calls as a browser makes them — valid checks built with relay_core's own
//! binding_request (as raw datagrams, so the fuzzer mutates real bytes), the DTLS
//! handshake in either role, SRTP both ways, consent running out — on the IPv4 socket,
//! and on the IPv6 sibling of a socket group. Run from fuzz/:
//! `cargo run --example flow_webrtc_seeds`.

#[allow(dead_code)] // the decoding half is the target's
#[path = "../fuzz_targets/flow_webrtc_input.rs"]
mod flow_webrtc_input;

use flow_webrtc_input::*;
use relay_core::dtls::{generate_identity, DtlsSession};
use rules::dataplane::{DtlsRole, DtlsRule};

fn check(tx: u8) -> Vec<u8> {
    relay_core::stun::binding_request(&[tx; 12], &format!("{RELAY_UFRAG}:{BROWSER_UFRAG}"), RELAY_PWD, 7)
}

/// A browser's first DTLS flight (its ClientHello), as raw bytes.
fn hello() -> Vec<u8> {
    let ids = [0, 1].map(|i| std::sync::Arc::new(generate_identity(1_700_000_000 + i, 86_400).unwrap()));
    let rule = DtlsRule {
        role: DtlsRole::Active,
        identity: ids[1].clone(),
        remote_fingerprint: Some(ids[0].fingerprint.clone()),
        generation: 0,
    };
    DtlsSession::new(&rule, 0).unwrap().poll_transmit().unwrap_or_default()
}

/// A call on socket `to` from `src`: check, handshake, media both ways, timers, silence.
fn call(cfg: u8, src: u8, to: u8) -> Vec<u8> {
    let mut v = vec![cfg];
    v.extend(op(Op::Raw, src, to, &check(1)));
    if cfg & CFG_RELAY_ACTIVE != 0 {
        v.extend(op(Op::Timers, src, to, &[]));
    }
    for _ in 0..4 {
        v.extend(op(Op::Dtls, src, to, &[]));
        v.extend(op(Op::Timers, src, to, &[]));
    }
    for i in 0..4u8 {
        v.extend(op(Op::Media, src, to, &[i; 20]));
        v.extend(op(Op::Raw, SRC_PHONE, TO_B, &rtp(i)));
    }
    v.extend(op(Op::Check, src, to, &[0]));
    v.extend(op(Op::Wait, src, to, &[120])); // 30.7 s: consent expires
    v.extend(op(Op::Raw, SRC_PHONE, TO_B, &rtp(9)));
    v.extend(op(Op::Reapply, src, to, &[0x50]));
    v.extend(op(Op::Raw, src, to, &check(2)));
    v
}

fn rtp(seq: u8) -> Vec<u8> {
    let mut b = vec![0u8; 32];
    relay_core::packet::rtp::emit_header(&mut b, 0, false, seq as u16, seq as u32 * 160, 0xf0);
    b
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/flow_process_webrtc");
    std::fs::create_dir_all(&dir).unwrap();
    let mut hello_seed = vec![CFG_GROUP];
    hello_seed.extend(op(Op::Raw, SRC_BROWSER6, TO_A6, &check(3)));
    hello_seed.extend(op(Op::Raw, SRC_BROWSER6, TO_A6, &hello()));
    hello_seed.extend(op(Op::Raw, 4, TO_A, &hello()));
    let seeds: [(&str, Vec<u8>); 7] = [
        ("ipv4-relay-passive", call(0, SRC_BROWSER, TO_A)),
        ("ipv4-relay-active", call(CFG_RELAY_ACTIVE, SRC_BROWSER, TO_A)),
        ("group-ipv6-relay-passive", call(CFG_GROUP, SRC_BROWSER6, TO_A6)),
        ("group-ipv6-relay-active", call(CFG_GROUP | CFG_RELAY_ACTIVE, SRC_BROWSER6, TO_A6)),
        ("ice-only-group-ipv6", call(CFG_GROUP | CFG_NO_DTLS, SRC_BROWSER6, TO_A6)),
        ("trickle-ufrag-unknown", call(CFG_UFRAG_UNKNOWN, SRC_BROWSER, TO_A)),
        ("raw-check-and-hello", hello_seed),
    ];
    let n = seeds.len();
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    println!("wrote {n} seeds to {}", dir.display());
}
