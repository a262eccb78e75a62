//! ns per packet for SRTP protect, unprotect and a full re-key (unprotect with one key,
//! protect with another: what the relay does between an SRTP leg and another SRTP leg),
//! per suite, 172-byte payloads, against Debian's libsrtp2 measured in the same run, both
//! in L2-sized chunks of 1024 packets.
//!
//!     cargo run --release -p bench --bin srtp_bench [-- PACKETS]
//!
//! Needs libsrtp2-dev and cc (the libsrtp2 side is bench/interop/srtp_peer.c).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use relay_core::packet::rtp::emit_header;
use relay_core::srtp::{Context, Suite};

const PAYLOAD: usize = 172;
const PKT: usize = 12 + PAYLOAD;
const STRIDE: usize = 256;

fn ctx(suite: Suite, seed: u8) -> Context {
    let key: Vec<u8> = (0..suite.key_len() as u8).map(|i| i ^ seed).collect();
    let salt: Vec<u8> = (0..suite.salt_len() as u8).map(|i| i.wrapping_mul(3) ^ seed).collect();
    Context::new(suite, &key, &salt).unwrap()
}

/// Packets are processed in chunks of this many buffers (256 KiB: L2-resident), so the
/// figures are crypto cost, not cache misses; libsrtp2 is driven the same way.
const CHUNK: usize = 1024;

/// (protect, unprotect, re-key) ns per packet, best of 3.
fn ours(suite: Suite, n: usize) -> (f64, f64, f64) {
    let mut best = (f64::MAX, f64::MAX, f64::MAX);
    for round in 0..3u8 {
        let (mut tx, mut rx, mut rx2, mut out) =
            (ctx(suite, round), ctx(suite, round), ctx(suite, round), ctx(suite, round ^ 0x55));
        let mut buf = vec![0u8; CHUNK * STRIDE];
        let mut copy = vec![0u8; CHUNK * STRIDE];
        let mut lens = vec![0usize; CHUNK];
        let (mut tp, mut tu, mut tr) = (0u128, 0u128, 0u128);
        let mut seq = 0u16;
        for _ in 0..n / CHUNK {
            for i in 0..CHUNK {
                let b = &mut buf[i * STRIDE..(i + 1) * STRIDE];
                b[..PKT].fill(0x5a);
                emit_header(b, 0, false, seq.wrapping_add(i as u16), i as u32 * 160, 0x1234_5678);
            }
            seq = seq.wrapping_add(CHUNK as u16);
            let t0 = Instant::now();
            for (i, l) in lens.iter_mut().enumerate() {
                *l = tx.protect_rtp(&mut buf[i * STRIDE..(i + 1) * STRIDE], PKT).unwrap();
            }
            let t1 = Instant::now();
            copy.copy_from_slice(&buf);
            let t2 = Instant::now();
            for (i, l) in lens.iter().enumerate() {
                rx.unprotect_rtp(&mut buf[i * STRIDE..(i + 1) * STRIDE], *l).unwrap();
            }
            let t3 = Instant::now();
            for (i, l) in lens.iter().enumerate() {
                let b = &mut copy[i * STRIDE..(i + 1) * STRIDE];
                let m = rx2.unprotect_rtp(b, *l).unwrap();
                out.protect_rtp(b, m).unwrap();
            }
            let t4 = Instant::now();
            tp += (t1 - t0).as_nanos();
            tu += (t3 - t2).as_nanos();
            tr += (t4 - t3).as_nanos();
        }
        let k = (n / CHUNK * CHUNK) as f64;
        best = (best.0.min(tp as f64 / k), best.1.min(tu as f64 / k), best.2.min(tr as f64 / k));
    }
    best
}

fn libsrtp_peer() -> Option<PathBuf> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/srtp_peer.c");
    let out = std::env::temp_dir().join(format!("srtp_peer_bench_{}", std::process::id()));
    let ok = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lsrtp2")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(out)
}

fn theirs(bin: &PathBuf, suite: Suite, n: usize) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..3 {
        let o = Command::new(bin).args(["bench", suite.name(), &n.to_string()]).output().ok()?;
        let s = String::from_utf8_lossy(&o.stdout);
        let mut it = s.split_whitespace().filter_map(|x| x.parse::<f64>().ok());
        let (p, u) = (it.next()?, it.next()?);
        best = Some(match best {
            Some((bp, bu)) => (bp.min(p), bu.min(u)),
            None => (p, u),
        });
    }
    best
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let peer = libsrtp_peer();
    if peer.is_none() {
        eprintln!("libsrtp2 peer not built (apt-get install libsrtp2-dev): printing relay figures only");
    }
    println!("{} packets of {} bytes ({}-byte payload), best of 3, ns per packet\n", n, PKT, PAYLOAD);
    println!("| suite | protect | unprotect | re-key | libsrtp2 protect | libsrtp2 unprotect | libsrtp2 re-key | re-key speed-up |");
    println!("|---|---|---|---|---|---|---|---|");
    for suite in Suite::ALL {
        let (p, u, r) = ours(suite, n);
        match peer.as_ref().and_then(|b| theirs(b, suite, n)) {
            Some((lp, lu)) => println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}x |",
                suite,
                p,
                u,
                r,
                lp,
                lu,
                lp + lu,
                (lp + lu) / r
            ),
            None => println!("| {suite} | {p:.0} | {u:.0} | {r:.0} | - | - | - | - |"),
        }
    }
    if let Some(b) = peer {
        let _ = std::fs::remove_file(b);
    }
}
