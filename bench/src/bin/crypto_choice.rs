//! The measurements behind the SRTP crypto choices (docs/dependencies.md), on 172-byte
//! payloads, same buffer (crypto cost only):
//! - AES-128-GCM seal: ring vs RustCrypto aes-gcm vs relay's own (`relay_core::srtp::gcm`,
//!   AES-NI + PCLMULQDQ where the CPU has them);
//! - HMAC-SHA1 over a 184-byte packet + ROC: the `hmac` crate (keyed state cloned per
//!   packet) vs relay's HmacSha1 (pad states hashed once, blocks straight into
//!   sha1::compress).
//!
//!     cargo run --release -p bench --bin crypto_choice

use std::time::Instant;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::Mac;

const N: u32 = 300_000;

fn best_of_3(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                f();
            }
            t.elapsed().as_nanos() as f64 / N as f64
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let key = [7u8; 16];
    let aad = [0x80u8; 12];
    let mut buf = vec![0x5au8; 172];
    let mut i = 0u32;
    let ring_key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &key).unwrap());
    let ring_ns = best_of_3(|| {
        i = i.wrapping_add(1);
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&i.to_be_bytes());
        let tag = ring_key
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(n),
                ring::aead::Aad::from(&aad),
                &mut buf,
            )
            .unwrap();
        let _ = std::hint::black_box(tag);
    });
    let rc = aes_gcm::Aes128Gcm::new(&key.into());
    let rc_ns = best_of_3(|| {
        i = i.wrapping_add(1);
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&i.to_be_bytes());
        std::hint::black_box(rc.encrypt_in_place_detached(&n.into(), &aad, &mut buf).unwrap());
    });
    let gv = graviola::aead::AesGcm::new(&key);
    let gv_ns = best_of_3(|| {
        i = i.wrapping_add(1);
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&i.to_be_bytes());
        let mut tag = [0u8; 16];
        gv.encrypt(&n, &aad, &mut buf, &mut tag);
        std::hint::black_box(tag);
    });
    let ni = relay_core::srtp::gcm::AesGcm::new(&key).unwrap();
    let ni_ns = best_of_3(|| {
        i = i.wrapping_add(1);
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&i.to_be_bytes());
        std::hint::black_box(ni.seal(&n, &aad, &mut buf));
    });
    let pkt = [0x5au8; 184];
    let roc = 1u32.to_be_bytes();
    let auth = [1u8; 20];
    let keyed = <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(&auth).unwrap();
    let hmac_ns = best_of_3(|| {
        let mut m = keyed.clone();
        m.update(&pkt);
        m.update(&roc);
        std::hint::black_box(m.finalize().into_bytes());
    });
    let ours = relay_core::srtp::HmacSha1::new(&auth);
    let ours_ns = best_of_3(|| {
        std::hint::black_box(ours.tag(&pkt, &roc));
    });
    // both HMACs agree
    let mut m = keyed.clone();
    m.update(&pkt);
    m.update(&roc);
    assert_eq!(&m.finalize().into_bytes()[..], &ours.tag(&pkt, &roc)[..]);
    println!("| operation | candidate | ns |\n|---|---|---|");
    println!("| AES-128-GCM seal, 172 B | ring 0.17 | {ring_ns:.0} |");
    println!("| AES-128-GCM seal, 172 B | aes-gcm 0.10 | {rc_ns:.0} |");
    println!("| AES-128-GCM seal, 172 B | graviola 0.4 | {gv_ns:.0} |");
    println!("| AES-128-GCM seal, 172 B | relay_core::srtp::gcm ({}) | {ni_ns:.0} |", ni.implementation());
    println!("| HMAC-SHA1, 184 B + ROC | hmac 0.12 (cloned keyed state) | {hmac_ns:.0} |");
    println!("| HMAC-SHA1, 184 B + ROC | relay_core::srtp::HmacSha1 (sha1::compress) | {ours_ns:.0} |");
}
