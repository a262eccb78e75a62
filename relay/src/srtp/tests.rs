use super::*;
use crate::test_support::hex;

const MASTER_KEY: &str = "E1F97A0D3E018BE0D64FA32C06DE4139";
const MASTER_SALT: &str = "0EC675AD498AFEEBB6960B3AABE6";

/// RFC 3711 Appendix B.3 (and the SRTCP labels of the same master key).
#[test]
fn rfc3711_b3_key_derivation() {
    let (rtp, rtcp) = derive_session_keys(Suite::AesCm128HmacSha1_80, &hex(MASTER_KEY), &hex(MASTER_SALT));
    assert_eq!(rtp.enc(), &hex("C61E7A93744F39EE10734AFE3FF7A087")[..]);
    assert_eq!(rtp.salt(), &hex("30CBBC08863D8C85D49DB34A9AE1")[..]);
    assert_eq!(&rtp.auth[..], &hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")[..]);
    assert_eq!(rtcp.enc(), &hex("4c1aa45a81f73d61c800bbb00fbb1eaa")[..]);
    assert_eq!(&rtcp.auth[..], &hex("8d54534feb49ae8e7993a6bd0b844fc323a93dfd")[..]);
    assert_eq!(rtcp.salt(), &hex("9581c7ad87b3e530bf3e4454a8b3")[..]);
}

/// RFC 3711 Appendix B.2: AES-CM keystream.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let mut out = [0u8; 48];
    // the PRF is AES-CM with IV = salt || 0000: reuse it with the B.2 "salt" as IV
    kdf::prf(&hex("2B7E151628AED2A6ABF7158809CF4F3C"), &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"), 0, &mut out);
    assert_eq!(
        &out[..],
        &hex("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0")[..]
    );
}

/// libsrtp's srtp_driver reference packet: AES_CM_128_HMAC_SHA1_80 with the B.3 key.
#[test]
fn aes_cm_reference_packet() {
    let plain = hex("800f1234decafbadcafebabeabababababababababababababababab");
    let expected = hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb");
    let mut key = Context::new(Suite::AesCm128HmacSha1_80, &hex(MASTER_KEY), &hex(MASTER_SALT)).unwrap();
    let mut buf = [0u8; 64];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = key.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &expected[..]);
    let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &hex(MASTER_KEY), &hex(MASTER_SALT)).unwrap();
    let m = rx.unprotect_rtp(&mut buf, n).unwrap();
    assert_eq!(&buf[..m], &plain[..]);
}

const GCM_SALT: &str = "517569642070726f2071756f";
const GCM_RTP: &str =
    "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";

/// RFC 7714 §16.1.1: AEAD_AES_128_GCM SRTP, session key and salt given.
#[test]
fn rfc7714_16_aes_128_gcm_rtp() {
    let k = SessionKeys::direct(&hex("000102030405060708090a0b0c0d0e0f"), &[], &hex(GCM_SALT));
    let mut ctx = Context::from_session_keys(Suite::AeadAes128Gcm, &k, &k);
    let plain = hex(GCM_RTP);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
    let expected =
        hex("8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
         899d7f27beb16a9152cf765ee4390cce");
    assert_eq!(&buf[..n], &expected[..]);
    let mut rx = Context::from_session_keys(Suite::AeadAes128Gcm, &k, &k);
    assert_eq!(rx.unprotect_rtp(&mut buf, n).unwrap(), plain.len());
    assert_eq!(&buf[..plain.len()], &plain[..]);
}

/// RFC 7714 §17: AEAD_AES_256_GCM SRTCP, SRTCP index 0x5d4.
#[test]
fn rfc7714_17_aes_256_gcm_rtcp() {
    let k = SessionKeys::direct(
        &hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        &[],
        &hex(GCM_SALT),
    );
    let protected =
        hex("81c8000d4d617273 d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de047
         6f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be 800005d4");
    let plain =
        hex("81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef");
    let mut rx = Context::from_session_keys(Suite::AeadAes256Gcm, &k, &k);
    let mut buf = [0u8; 128];
    buf[..protected.len()].copy_from_slice(&protected);
    let n = rx.unprotect_rtcp(&mut buf, protected.len()).unwrap();
    assert_eq!(&buf[..n], &plain[..]);
    // and protecting with index 0x5d4 gives the same bytes
    let mut tx = Context::from_session_keys(Suite::AeadAes256Gcm, &k, &k);
    tx.stream(0x4d617273).rtcp_index = 0x5d4;
    buf[..plain.len()].copy_from_slice(&plain);
    let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &protected[..]);
}

fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0x5au8; len];
    crate::packet::rtp::emit_header(&mut b, 0, false, seq, seq as u32 * 160, ssrc);
    b
}

fn pair(suite: Suite) -> (Context, Context) {
    let key: Vec<u8> = (0..suite.key_len() as u8).collect();
    let salt: Vec<u8> = (100..100 + suite.salt_len() as u8).collect();
    (Context::new(suite, &key, &salt).unwrap(), Context::new(suite, &key, &salt).unwrap())
}

/// 70 000 packets per suite: the sequence number wraps and the ROC moves on both sides,
/// with some reordering across the wrap.
#[test]
fn roundtrip_across_rollover_every_suite() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let start = 65_000u16;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut buf = [0u8; 256];
        for i in 0..70_000u32 {
            let seq = start.wrapping_add(i as u16);
            let p = rtp(seq, 0xabc, 12 + (i % 160) as usize);
            buf[..p.len()].copy_from_slice(&p);
            let n = tx.protect_rtp(&mut buf, p.len()).unwrap();
            assert_eq!(n, p.len() + suite.rtp_tag_len());
            pending.push(buf[..n].to_vec());
            // deliver in pairs, swapped: reordering by one
            if pending.len() == 2 {
                for pkt in pending.drain(..).rev() {
                    let mut b = [0u8; 256];
                    b[..pkt.len()].copy_from_slice(&pkt);
                    let m = rx.unprotect_rtp(&mut b, pkt.len()).unwrap_or_else(|e| panic!("{suite} packet {i}: {e}"));
                    assert_eq!(m, pkt.len() - suite.rtp_tag_len());
                }
            }
        }
        // 65 000 + 70 000 packets: two wraps
        assert_eq!(rx.stream(0xabc).roc, 2, "{suite}");
        // SRTCP
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0x0a, 0xbc];
        for _ in 0..10 {
            buf[..8].copy_from_slice(&rr);
            let n = tx.protect_rtcp(&mut buf, 8).unwrap();
            let m = rx.unprotect_rtcp(&mut buf, n).unwrap();
            assert_eq!(&buf[..m], &rr[..]);
        }
    }
}

#[test]
fn rejects_tampering_truncation_replay_and_old_packets() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let mut pkts = Vec::new();
        for seq in 0..300u16 {
            let p = rtp(seq, 7, 100);
            let mut b = [0u8; 160];
            b[..100].copy_from_slice(&p);
            let n = tx.protect_rtp(&mut b, 100).unwrap();
            pkts.push(b[..n].to_vec());
        }
        let mut b = [0u8; 160];
        let n = pkts[0].len();
        // every single flipped bit fails authentication (header, payload or tag)
        for bit in (0..n * 8).step_by(7) {
            b[..n].copy_from_slice(&pkts[0]);
            b[bit / 8] ^= 1 << (bit % 8);
            let r = rx.unprotect_rtp(&mut b, n);
            assert!(r.is_err(), "{suite}: flipped bit {bit} accepted");
        }
        // truncated tag
        b[..n].copy_from_slice(&pkts[0]);
        assert_eq!(rx.unprotect_rtp(&mut b, n - 1), Err(SrtpError::AuthFailed), "{suite}");
        assert_eq!(rx.unprotect_rtp(&mut b, 11), Err(SrtpError::Malformed));
        // the good packet, then its replay
        for p in &pkts[..200] {
            b[..p.len()].copy_from_slice(p);
            rx.unprotect_rtp(&mut b, p.len()).unwrap();
        }
        b[..pkts[199].len()].copy_from_slice(&pkts[199]);
        assert_eq!(rx.unprotect_rtp(&mut b, n), Err(SrtpError::Replayed), "{suite}");
        // 299 arrives, then 100 is far outside the 128-packet window
        b[..n].copy_from_slice(&pkts[299]);
        rx.unprotect_rtp(&mut b, n).unwrap();
        b[..n].copy_from_slice(&pkts[100]);
        assert_eq!(rx.unprotect_rtp(&mut b, n), Err(SrtpError::TooOld), "{suite}");
        // but 250, inside the window and never seen, is fine
        b[..n].copy_from_slice(&pkts[250]);
        assert!(rx.unprotect_rtp(&mut b, n).is_ok());
        // SRTCP: tamper and replay
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
        b[..8].copy_from_slice(&rr);
        let n = tx.protect_rtcp(&mut b, 8).unwrap();
        let good = b[..n].to_vec();
        b[9] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(SrtpError::AuthFailed));
        b[..n].copy_from_slice(&good);
        rx.unprotect_rtcp(&mut b, n).unwrap();
        b[..n].copy_from_slice(&good);
        assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(SrtpError::Replayed));
        // no tail room
        let p = rtp(1, 7, 100);
        let mut small = [0u8; 100];
        small.copy_from_slice(&p);
        assert_eq!(tx.protect_rtp(&mut small, 100), Err(SrtpError::BufferTooSmall));
    }
}

#[test]
fn bad_keys_are_refused() {
    assert_eq!(Context::new(Suite::AesCm128HmacSha1_80, &[0; 15], &[0; 14]).err(), Some(SrtpError::BadKey));
    assert_eq!(Context::new(Suite::AeadAes256Gcm, &[0; 32], &[0; 11]).err(), Some(SrtpError::BadKey));
    assert_eq!(Suite::from_name("aes_cm_128_hmac_sha1_32"), Some(Suite::AesCm128HmacSha1_32));
    assert_eq!(Suite::from_name("F8_128_HMAC_SHA1_80"), None);
}

/// Random garbage into unprotect: errors, never a panic (fuzz/fuzz_targets/srtp_unprotect.rs
/// does this coverage-guided).
#[test]
fn garbage_unprotect_never_panics() {
    let mut rng = crate::test_support::Rng(0xdead_beef_cafe_f00d);
    let mut rnd = || rng.next();
    for suite in Suite::ALL {
        let (_, mut rx) = pair(suite);
        let mut b = [0u8; 256];
        for _ in 0..20_000 {
            let len = (rnd() % 200) as usize;
            for x in b[..len].iter_mut() {
                *x = rnd() as u8;
            }
            if len > 0 {
                b[0] = 0x80 | (b[0] & 0x3f);
            }
            assert!(rx.unprotect_rtp(&mut b, len).is_err());
            assert!(rx.unprotect_rtcp(&mut b, len).is_err());
        }
    }
}

/// SRTP and SRTCP between a context on the CPU's AES-NI code and one on the crates' (what
/// a CPU without AES-NI runs), both ways, every suite, across a sequence number wrap.
#[test]
fn aes_ni_and_portable_contexts_interoperate() {
    for suite in Suite::ALL {
        let key: Vec<u8> = (0..suite.key_len() as u8).map(|i| i.wrapping_mul(7)).collect();
        let salt: Vec<u8> = (0..suite.salt_len() as u8).map(|i| i ^ 0x5c).collect();
        let fast = || Context::new(suite, &key, &salt).unwrap();
        let portable = || Context::new_portable(suite, &key, &salt);
        for (mut tx, mut rx) in [(fast(), portable()), (portable(), fast())] {
            for i in 0..3000u32 {
                let seq = 0xfa00u16.wrapping_add(i as u16);
                let len = 12 + (i as usize * 7) % 300;
                let mut b = [0u8; 400];
                crate::packet::rtp::emit_header(&mut b, 0, false, seq, i * 160, 0x0bad_cafe);
                for (j, x) in b[12..len].iter_mut().enumerate() {
                    *x = (i as usize + j) as u8;
                }
                let plain = b;
                let n = tx.protect_rtp(&mut b, len).unwrap();
                assert_eq!(rx.unprotect_rtp(&mut b, n), Ok(len), "{suite} rtp {i}");
                assert_eq!(b[..len], plain[..len], "{suite} rtp {i}");
                if i % 100 == 0 {
                    let mut c = [0u8; 200];
                    c[..8].copy_from_slice(&[0x80, 200, 0, 6, 0x0b, 0xad, 0xca, 0xfe]);
                    c[8..28].fill(i as u8);
                    let n = tx.protect_rtcp(&mut c, 28).unwrap();
                    assert_eq!(rx.unprotect_rtcp(&mut c, n), Ok(28), "{suite} rtcp {i}");
                    assert!(c[8..28].iter().all(|&x| x == i as u8));
                }
            }
        }
    }
}
