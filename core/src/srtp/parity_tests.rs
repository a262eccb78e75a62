//! The SDES parity suites (AES-192-CM, AES-f8, NULL) and MKIs: reference vectors, packet
//! layout and refusals. The round trips of every suite are in `tests.rs`.

use super::*;
use crate::test_support::hex;

/// rtpengine's t/aes-crypt.c AES_192_CM_HMAC_SHA1_80 packets (the RFC 3711 B.3 key
/// material stretched to 24 + 14 bytes): RFC 6188's AES-192 key derivation, counter
/// mode and HMAC, SRTP with ROC 0 and SRTCP index 1.
#[test]
fn aes_192_cm_reference_packets() {
    let key = hex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeeb");
    let salt = hex("b6960b3aabe6c173c317f2dabe35");
    let s = Suite::AesCm192HmacSha1_80;
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let want = hex("800f1234decafbadcafebabe 0157818944 62529d91cf3659d2462db308 d9a044c5d7d68b26ba");
    let (mut tx, mut rx) = (Context::new(s, &key, &salt).unwrap(), Context::new(s, &key, &salt).unwrap());
    let mut buf = [0u8; 64];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &want[..]);
    assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(plain.len()));
    assert_eq!(&buf[..plain.len()], &plain[..]);

    let rtcp = hex("81c8000bcafebabe abababababababababababababababab");
    let want = hex("81c8000bcafebabe 966d603e71f9af335cf9091a50ca4d3a 80000001 d42b40218dde4990bdef");
    buf[..want.len()].copy_from_slice(&want);
    assert_eq!(rx.unprotect_rtcp(&mut buf, want.len()), Ok(rtcp.len()));
    assert_eq!(&buf[..rtcp.len()], &rtcp[..]);
    // the sender's second SRTCP packet has index 1
    for _ in 0..2 {
        buf[..rtcp.len()].copy_from_slice(&rtcp);
        let n = tx.protect_rtcp(&mut buf, rtcp.len()).unwrap();
        assert_eq!(n, want.len());
    }
    assert_eq!(&buf[..want.len()], &want[..]);
}

/// RFC 6188 §7.2 (AES-256) and §7.4 (AES-192) key derivation.
#[test]
fn rfc6188_key_derivation() {
    for (suite, key, salt, enc, ssalt, auth) in [
        (
            Suite::AesCm256HmacSha1_80,
            "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6",
            "3b04803de51ee7c96423ab5b78d2",
            "5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4",
            "fa31791685ca444a9e07c6c64e93",
            "fd9c32d39ed5fbb5a9dc96b30818454d1313dc05",
        ),
        (
            Suite::AesCm192HmacSha1_80,
            "73edc66c4fa15776fb57f9505c17136550ffda71f3e8e5f1",
            "c8522f3acd4ce86d5add78edbb11",
            "31874736a8f1143870c26e4857d8a5b2c4a354407faadabb",
            "2372b82d639b6d8503a47adc0a6c",
            "355b10973cd95b9eacf4061c7e1a7151e7cfbfcb",
        ),
    ] {
        let (rtp, _) = derive_session_keys(suite, &hex(key), &hex(salt));
        assert_eq!((rtp.enc(), rtp.salt()), (&hex(enc)[..], &hex(ssalt)[..]), "{suite}");
        assert_eq!(&rtp.auth[..], &hex(auth)[..], "{suite}");
    }
}

/// RFC 6188 §7.3: the AES-192 counter-mode keystream, first and last three of 65282 blocks.
#[test]
fn rfc6188_aes_192_keystream() {
    let mut ks = vec![0u8; 65282 * 16];
    kdf::prf(
        &hex("eab234764e517b2d3d160d587d8c86219740f65f99b6bcf7"),
        &hex("f0f1f2f3f4f5f6f7f8f9fafbfcfd"),
        0,
        &mut ks,
    );
    let first = "35096cba4610028dc1b57503804ce37c5de986291dcce161d5165ec4568f5c9a474a40c77894bc17180202272a4c264d";
    let last = "d108d1a31a00bad6367ec23eb044b415c8f57129fdeb970b59f917b257662d4ca5dab625811034e8cebdfeb6dc158dd3";
    assert_eq!(&ks[..48], &hex(first)[..]);
    assert_eq!(&ks[ks.len() - 48..], &hex(last)[..]);
}

/// RFC 3711 B.2's f8 packet through a whole SRTP context: session key and (32-bit) salt
/// given, ROC 0xd462564a.
#[test]
fn f8_context_matches_rfc3711_b2() {
    let k = SessionKeys::direct(&hex("234829008467be186c3de14aae72d62c"), &[7; 20], &hex("32f2870d"));
    let mut tx = Context::from_session_keys(Suite::F8_128HmacSha1_80, &k, &k);
    tx.stream(0x5c62_1599).roc = 0xd462_564a;
    let payload = hex("70736575646f72616e646f6d6e657373 20697320746865206e65787420626573 74207468696e67");
    let mut buf = [0u8; 96];
    buf[..12].copy_from_slice(&hex("806e5cba50681de55c621599"));
    buf[12..12 + payload.len()].copy_from_slice(&payload);
    let n = tx.protect_rtp(&mut buf, 12 + payload.len()).unwrap();
    assert_eq!(n, 12 + payload.len() + 10);
    let want = hex("019ce7a26e7854014a6366aa95d4eefd 1ad4172a14f9faf455b7f1d4b62bd08f 562c0eef7c4802");
    assert_eq!(&buf[12..12 + payload.len()], &want[..]);
}

/// NULL_HMAC_SHA1: the payload travels in clear, authenticated; SRTCP says E = 0.
#[test]
fn null_suites_authenticate_without_encrypting() {
    for s in [Suite::NullHmacSha1_80, Suite::NullHmacSha1_32] {
        let key: Vec<u8> = (0..16).collect();
        let salt: Vec<u8> = (0..14).collect();
        let (mut tx, mut rx) = (Context::new(s, &key, &salt).unwrap(), Context::new(s, &key, &salt).unwrap());
        let mut p = vec![0u8; 40];
        crate::packet::rtp::emit_header(&mut p, 0, false, 7, 160, 0x1234);
        p[12..].fill(0x42);
        let mut buf = [0u8; 96];
        buf[..40].copy_from_slice(&p);
        let n = tx.protect_rtp(&mut buf, 40).unwrap();
        assert_eq!((n, &buf[..40]), (40 + s.rtp_tag_len(), &p[..]), "{s}: clear payload");
        let mut bad = buf;
        bad[20] ^= 1;
        assert_eq!(rx.unprotect_rtp(&mut bad, n), Err(SrtpError::AuthFailed), "{s}");
        assert_eq!(rx.unprotect_rtp(&mut buf, n), Ok(40));
        let rr = [0x80, 201, 0, 1, 0, 0, 0x12, 0x34];
        buf[..8].copy_from_slice(&rr);
        let n = tx.protect_rtcp(&mut buf, 8).unwrap();
        assert_eq!((&buf[..8], &buf[8..12]), (&rr[..], &[0u8, 0, 0, 0][..]), "{s}: E = 0, index 0");
        assert_eq!(rx.unprotect_rtcp(&mut buf, n), Ok(8));
    }
}

fn mki_pair(suite: Suite, mki: &[u8]) -> (Context, Context, Context) {
    let key: Vec<u8> = (0..suite.key_len() as u8).map(|i| i ^ 0x3c).collect();
    let salt: Vec<u8> = (0..suite.salt_len() as u8).collect();
    let c = || Context::new(suite, &key, &salt).unwrap();
    (c().with_mki(Some(mki)), c().with_mki(Some(mki)), c())
}

/// RFC 3711 §3.1 / §3.4: the MKI sits before the HMAC tag (after the E+index word in
/// SRTCP); RFC 7714 AEAD packets carry it after the GCM tag. Otherwise the packet is the
/// one a key without MKI makes.
#[test]
fn mki_sits_before_the_hmac_tag_and_after_the_gcm_tag() {
    let mki = [0xde, 0xad, 0xbe];
    for s in Suite::ALL {
        let (mut tx, mut rx, mut plain_tx) = mki_pair(s, &mki);
        let t = |rtcp: bool| match (s.is_gcm(), rtcp) {
            (true, _) => 0,
            (false, false) => s.rtp_tag_len(),
            (false, true) => s.rtcp_tag_len(),
        };
        for rtcp in [false, true] {
            let mut p = vec![0u8; 60];
            if rtcp {
                p[..8].copy_from_slice(&[0x80, 200, 0, 14, 0, 0, 0xab, 0xcd]);
            } else {
                crate::packet::rtp::emit_header(&mut p, 0, false, 9, 160, 0xabcd);
            }
            let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
            a[..60].copy_from_slice(&p);
            b[..60].copy_from_slice(&p);
            let (n, m) = if rtcp {
                (tx.protect_rtcp(&mut a, 60).unwrap(), plain_tx.protect_rtcp(&mut b, 60).unwrap())
            } else {
                (tx.protect_rtp(&mut a, 60).unwrap(), plain_tx.protect_rtp(&mut b, 60).unwrap())
            };
            let t = t(rtcp);
            assert_eq!(n, m + 3, "{s}");
            assert_eq!(&a[..m - t], &b[..m - t], "{s} rtcp {rtcp}");
            assert_eq!(&a[m - t..m - t + 3], &mki, "{s} rtcp {rtcp}");
            assert_eq!(&a[m - t + 3..n], &b[m - t..m], "{s} rtcp {rtcp}");
            // a wrong MKI is an authentication failure, and the buffer stays as it came
            let mut bad = a;
            bad[m - t] ^= 0xff;
            let copy = bad;
            let r = if rtcp { rx.open_rtcp(&mut bad, n) } else { rx.open_rtp(&mut bad, n) };
            assert_eq!(r.err(), Some(SrtpError::AuthFailed), "{s}");
            assert_eq!(bad, copy);
            // so does a bad tag, and the MKI and tag are put back
            let mut bad = a;
            bad[n - 1] ^= 1;
            let copy = bad;
            let r = if rtcp { rx.open_rtcp(&mut bad, n) } else { rx.open_rtp(&mut bad, n) };
            assert_eq!(r.err(), Some(SrtpError::AuthFailed), "{s}");
            if !s.is_gcm() || implementation() == "aes-ni" {
                assert_eq!(bad, copy, "{s}: a failed open changed the buffer");
            }
            // a packet without the MKI does not authenticate
            let mut short = b;
            let r = if rtcp { rx.open_rtcp(&mut short, m) } else { rx.open_rtp(&mut short, m) };
            assert!(r.is_err(), "{s}");
            let r = if rtcp { rx.unprotect_rtcp(&mut a, n) } else { rx.unprotect_rtp(&mut a, n) };
            assert_eq!(r, Ok(60), "{s} rtcp {rtcp}");
            assert_eq!(&a[..60], &p[..], "{s}");
        }
        // room for the tag but not for the MKI: refused before the index is taken
        let mut small = [0u8; 76];
        crate::packet::rtp::emit_header(&mut small, 0, false, 10, 160, 0xabcd);
        let len = small.len() - s.rtp_tag_len() - 2;
        assert_eq!(tx.protect_rtp(&mut small, len), Err(SrtpError::BufferTooSmall));
        assert_eq!(tx.protect_rtp(&mut small, len - 1), Ok(small.len()), "{s}: seq 10 still unused");
        let mut buf = [0u8; 40];
        for len in 0..40 {
            assert!(rx.open_rtp(&mut buf, len).is_err() && rx.open_rtcp(&mut buf, len).is_err());
        }
    }
}

/// A rule's key with an MKI builds a context that expects it.
#[test]
fn from_key_carries_the_mki() {
    let s = Suite::AesCm128HmacSha1_32;
    let k = rules::dataplane::SrtpKey::new(s, &[1; 16], &[2; 14]).unwrap();
    let mut tx = Context::from_key(&k.clone().with_mki(rules::dataplane::Mki::from_value(1, 1))).unwrap();
    let mut rx = Context::from_key(&k).unwrap();
    let mut buf = [0u8; 64];
    crate::packet::rtp::emit_header(&mut buf, 0, false, 1, 160, 1);
    let n = tx.protect_rtp(&mut buf, 20).unwrap();
    assert_eq!((n, buf[20]), (20 + 1 + 4, 1));
    assert_eq!(rx.unprotect_rtp(&mut buf, n), Err(SrtpError::AuthFailed), "a key without MKI does not skip it");
}
