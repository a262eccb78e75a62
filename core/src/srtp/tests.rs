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
    assert_eq!(Suite::from_name("AES_CM_192_HMAC_SHA1_80"), None);
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

/// Protect RTP `seq` of `ssrc` (160-byte payload); the SRTP packet.
fn sealed(tx: &mut Context, seq: u16, ssrc: u32) -> Result<Vec<u8>, SrtpError> {
    let mut b = [0u8; 256];
    let p = rtp(seq, ssrc, 172);
    b[..p.len()].copy_from_slice(&p);
    let n = tx.protect_rtp(&mut b, p.len())?;
    Ok(b[..n].to_vec())
}

fn open(rx: &Context, pkt: &[u8]) -> Result<(usize, Accepted), SrtpError> {
    let mut b = [0u8; 256];
    b[..pkt.len()].copy_from_slice(pkt);
    rx.open_rtp(&mut b, pkt.len())
}

fn unprotect(rx: &mut Context, pkt: &[u8]) -> Result<usize, SrtpError> {
    let mut b = [0u8; 256];
    b[..pkt.len()].copy_from_slice(pkt);
    rx.unprotect_rtp(&mut b, pkt.len())
}

/// SRTCP receiver report of `ssrc`, protected.
fn sealed_rtcp(tx: &mut Context, ssrc: u32) -> Vec<u8> {
    let mut b = [0u8; 64];
    b[..4].copy_from_slice(&[0x80, 201, 0, 1]);
    b[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let n = tx.protect_rtcp(&mut b, 8).unwrap();
    b[..n].to_vec()
}

/// A datagram that looks like SRTP (or SRTCP) but carries random bytes for everything
/// after the header, with the given SSRC.
fn forged(rng: &mut crate::test_support::Rng, ssrc: u32, rtcp: bool) -> Vec<u8> {
    let mut b: Vec<u8> = (0..192).map(|_| rng.next() as u8).collect();
    if rtcp {
        b[..4].copy_from_slice(&[0x80, 200, 0, 6]);
        b[4..8].copy_from_slice(&ssrc.to_be_bytes());
    } else {
        b[0] = 0x80;
        b[1] &= 0x7f;
        b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
    b
}

/// issue 9 §3: forged datagrams with new SSRCs (more than there are slots), forged ones
/// with the stream's own SSRC and forged SRTCP change nothing at all: an established
/// stream past its first rollover keeps decrypting (the next 1000 packets), its captured
/// packets still replay as replays, and the context compares equal to before.
#[test]
fn a_failure_leaves_the_context_untouched_even_for_new_ssrcs() {
    let mut rng = crate::test_support::Rng(0x5eed_f00d_1234_5678);
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let ssrc = 0x1111_2222;
        let mut captured = Vec::new();
        for i in 0..1000u16 {
            let p = sealed(&mut tx, 65_000u16.wrapping_add(i), ssrc).unwrap();
            unprotect(&mut rx, &p).unwrap();
            captured.push(p);
        }
        assert_eq!(rx.streams.slot[rx.streams.find(ssrc).unwrap()].roc, 1, "{suite}");
        let before = rx.streams.clone();
        for k in 0..(2 * SLOTS + 1) {
            let random_ssrc = rng.next() as u32;
            let fake = forged(&mut rng, random_ssrc, false);
            assert_eq!(unprotect(&mut rx, &fake), Err(SrtpError::AuthFailed), "{suite} forged {k}");
            let mut b = fake.clone();
            assert!(rx.unprotect_rtcp(&mut b, fake.len()).is_err(), "{suite} forged rtcp {k}");
            // and with the stream's own SSRC, some of them far ahead
            let mut own = forged(&mut rng, ssrc, false);
            own[2..4].copy_from_slice(&(0x3000u16.wrapping_add(k as u16 * 1000)).to_be_bytes());
            assert!(unprotect(&mut rx, &own).is_err(), "{suite} forged own {k}");
            let own = forged(&mut rng, ssrc, true);
            let mut b = own.clone();
            assert!(rx.unprotect_rtcp(&mut b, own.len()).is_err(), "{suite} forged own rtcp {k}");
        }
        assert!(rx.streams == before, "{suite}: a forged packet changed the context");
        // captured packets are still refused: the last 128 (the window) as replays, older
        // ones as too old (150 of 150 replayed before issue 9)
        for (i, p) in captured.iter().enumerate().skip(850) {
            let want = if i >= 1000 - 128 { SrtpError::Replayed } else { SrtpError::TooOld };
            assert_eq!(unprotect(&mut rx, p), Err(want), "{suite} captured {i}");
        }
        assert!(rx.streams == before, "{suite}: a replay changed the context");
        for i in 1000..2000u16 {
            let p = sealed(&mut tx, 65_000u16.wrapping_add(i), ssrc).unwrap();
            assert_eq!(unprotect(&mut rx, &p), Ok(172), "{suite} packet {i} after the forgeries");
        }
    }
}

/// Opening is not committing: a packet opened and not committed opens again, the replay
/// state is as before; commit re-checks, so of two copies opened before either was
/// committed only one is accepted; a proof from another context is ignored.
#[test]
fn open_changes_nothing_and_commit_rechecks() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let (_, mut other) = pair(suite);
        for seq in 0..10 {
            unprotect(&mut rx, &sealed(&mut tx, seq, 9).unwrap()).unwrap();
        }
        let p = sealed(&mut tx, 10, 9).unwrap();
        let before = rx.streams.clone();
        let (n, a1) = open(&rx, &p).unwrap();
        assert_eq!(n, 172);
        assert!(rx.streams == before);
        let (_, a2) = open(&rx, &p).unwrap();
        assert_eq!(a1, a2);
        assert!(!other.commit(a1), "{suite}: a proof from another context");
        assert!(rx.streams == before);
        assert!(rx.commit(a1));
        assert!(!rx.commit(a2), "{suite}: the same index committed twice");
        assert_eq!(open(&rx, &p).err(), Some(SrtpError::Replayed));
        // a packet opened, then the window moves far past it before it is committed
        let late = sealed(&mut tx, 11, 9).unwrap();
        let (_, a_late) = open(&rx, &late).unwrap();
        let far = sealed(&mut tx, 500, 9).unwrap();
        unprotect(&mut rx, &far).unwrap();
        let before = rx.streams.clone();
        assert!(!rx.commit(a_late), "{suite}: too old by commit time");
        assert!(rx.streams == before);
        // a new SSRC opened and not committed has no slot
        let q = sealed(&mut tx, 1, 0x77).unwrap();
        let (_, aq) = open(&rx, &q).unwrap();
        assert!(rx.streams.find(0x77).is_none());
        assert!(rx.commit(aq));
        assert!(rx.streams.find(0x77).is_some());
        // SRTCP the same way
        let c = sealed_rtcp(&mut tx, 9);
        let mut b = c.clone();
        let (_, r1) = rx.open_rtcp(&mut b, c.len()).unwrap();
        let mut b = c.clone();
        let (_, r2) = rx.open_rtcp(&mut b, c.len()).unwrap();
        assert!(rx.commit(r1));
        assert!(!rx.commit(r2));
        let mut b = c.clone();
        assert_eq!(rx.open_rtcp(&mut b, c.len()).err(), Some(SrtpError::Replayed));
    }
}

/// A packet that fails leaves the buffer as it arrived: AES-CM checks the HMAC before it
/// decrypts, GCM on AES-NI verifies before it writes (ring's portable GCM does not say).
#[test]
fn a_failed_open_leaves_the_buffer_as_it_arrived() {
    for suite in Suite::ALL {
        if suite.is_gcm() && implementation() != "aes-ni" {
            continue;
        }
        let (mut tx, rx) = pair(suite);
        let mut p = sealed(&mut tx, 1, 5).unwrap();
        p[40] ^= 1;
        let mut b = [0u8; 256];
        b[..p.len()].copy_from_slice(&p);
        assert_eq!(rx.open_rtp(&mut b, p.len()).err(), Some(SrtpError::AuthFailed));
        assert_eq!(&b[..p.len()], &p[..], "{suite}");
    }
}

/// With all slots taken, a new authenticated SSRC evicts the least recently
/// *authenticated* stream; an evicted stream that comes back keeps its rollover counter
/// and its replay protection (restored from its tombstone).
#[test]
fn eviction_takes_the_least_recently_authenticated_and_remembers_it() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm] {
        let (mut tx, mut rx) = pair(suite);
        // stream 1 and stream 2 both past a rollover
        let mut old = Vec::new();
        for ssrc in [1u32, 2] {
            for i in 0..20u16 {
                let p = sealed(&mut tx, 65_530u16.wrapping_add(i), ssrc).unwrap();
                unprotect(&mut rx, &p).unwrap();
                old.push((ssrc, p));
            }
        }
        for ssrc in 3..=SLOTS as u32 {
            unprotect(&mut rx, &sealed(&mut tx, 0, ssrc).unwrap()).unwrap();
        }
        // 1 is heard again; forged packets "from" 2 do not count
        unprotect(&mut rx, &sealed(&mut tx, 14, 1).unwrap()).unwrap();
        let mut rng = crate::test_support::Rng(7);
        assert!(unprotect(&mut rx, &forged(&mut rng, 2, false)).is_err());
        // a 17th SSRC: 2 goes, 1 stays
        unprotect(&mut rx, &sealed(&mut tx, 0, 100).unwrap()).unwrap();
        assert!(rx.streams.find(1).is_some(), "{suite}");
        assert!(rx.streams.find(2).is_none() && rx.streams.find_tomb(2).is_some(), "{suite}");
        // 2's captured packets are still replays, and 2 goes on at ROC 1
        for (_, p) in old.iter().filter(|(s, _)| *s == 2) {
            assert!(matches!(open(&rx, p), Err(SrtpError::Replayed | SrtpError::TooOld)), "{suite}");
        }
        for seq in 14..100u16 {
            assert_eq!(unprotect(&mut rx, &sealed(&mut tx, seq, 2).unwrap()), Ok(172), "{suite} seq {seq}");
        }
        assert_eq!(rx.streams.slot[rx.streams.find(2).unwrap()].roc, 1);
        for seq in 15..100u16 {
            assert_eq!(unprotect(&mut rx, &sealed(&mut tx, seq, 1).unwrap()), Ok(172), "{suite} seq {seq}");
        }
        // a receiving context takes any number of SSRCs: the oldest tombstones go (the
        // senders are fresh contexts: one sending context refuses a 65th SSRC)
        for ssrc in 1000..1200u32 {
            let (mut tx, _) = pair(suite);
            assert_eq!(unprotect(&mut rx, &sealed(&mut tx, 0, ssrc).unwrap()), Ok(172));
        }
        assert_eq!(rx.streams.n_tombs, TOMBS);
    }
}

/// Sending: a repeated sequence number, a late duplicate and a too old packet are refused;
/// reordered packets with new indices (also across a wrap) are protected, and the receiver
/// decrypts every one of them.
#[test]
fn protect_refuses_used_indices_and_protects_reordered_new_ones() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let mut sent = Vec::new();
        for seq in [100u16, 101, 103, 102, 104] {
            sent.push(sealed(&mut tx, seq, 3).unwrap());
        }
        for seq in [100u16, 102, 103, 104] {
            assert_eq!(sealed(&mut tx, seq, 3).err(), Some(SrtpError::IndexReused), "{suite} seq {seq}");
        }
        // far ahead, then back: inside the window and new is fine, outside is refused
        sent.push(sealed(&mut tx, 400, 3).unwrap());
        sent.push(sealed(&mut tx, 300, 3).unwrap());
        assert_eq!(sealed(&mut tx, 105, 3).err(), Some(SrtpError::IndexReused), "{suite}: too old");
        // across the wrap: 0 after 65535 has ROC 1; a late 65535 is ROC 0's, used
        let (mut tx2, mut rx2) = pair(suite);
        let mut sent2 = Vec::new();
        for seq in [65_534u16, 65_535, 1, 0, 2] {
            sent2.push(sealed(&mut tx2, seq, 4).unwrap());
        }
        assert_eq!(sealed(&mut tx2, 65_535, 4).err(), Some(SrtpError::IndexReused));
        assert_eq!(sealed(&mut tx2, 0, 4).err(), Some(SrtpError::IndexReused));
        sent2.push(sealed(&mut tx2, 65_533, 4).unwrap());
        // before the first packet of a stream there is nothing
        let (mut tx3, _) = pair(suite);
        sealed(&mut tx3, 100, 5).unwrap();
        assert_eq!(sealed(&mut tx3, 65_000, 5).err(), Some(SrtpError::IndexReused));
        for p in &sent {
            assert_eq!(unprotect(&mut rx, p), Ok(172), "{suite}");
        }
        for p in &sent2 {
            assert_eq!(unprotect(&mut rx2, p), Ok(172), "{suite}");
        }
    }
}

/// Sending: a stream evicted by 16 others and back again goes on from its highest index
/// (ROC 1 here) and its SRTCP index; none of its used indices is protected again.
#[test]
fn protect_refuses_an_index_reused_after_eviction() {
    for suite in Suite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let a = 0xaaaa;
        for i in 0..12u16 {
            unprotect(&mut rx, &sealed(&mut tx, 65_530u16.wrapping_add(i), a).unwrap()).unwrap();
        }
        for _ in 0..3 {
            let c = sealed_rtcp(&mut tx, a);
            let mut b = c.clone();
            rx.unprotect_rtcp(&mut b, c.len()).unwrap();
        }
        for ssrc in 1..=SLOTS as u32 {
            sealed(&mut tx, 0, ssrc).unwrap();
        }
        assert!(tx.streams.find(a).is_none(), "{suite}: evicted");
        for seq in [5u16, 3, 65_535] {
            assert_eq!(sealed(&mut tx, seq, a).err(), Some(SrtpError::IndexReused), "{suite} seq {seq}");
        }
        let p = sealed(&mut tx, 6, a).unwrap();
        assert_eq!(unprotect(&mut rx, &p), Ok(172), "{suite}: ROC 1 kept");
        let c = sealed_rtcp(&mut tx, a);
        let at = c.len() - if suite.is_gcm() { 4 } else { suite.rtcp_tag_len() + 4 };
        let e = if suite.encrypts() { 0x80 } else { 0 };
        assert_eq!(&c[at..at + 4], &[e, 0, 0, 3], "{suite}: SRTCP index kept");
        let mut b = c.clone();
        assert_eq!(rx.unprotect_rtcp(&mut b, c.len()), Ok(8));
    }
}

/// A sending context remembers every stream it evicted (48 tombstones); past 16 + 48
/// SSRCs it refuses new ones rather than forget an SSRC's used indices. Known streams,
/// evicted or not, keep going.
#[test]
fn a_sending_context_refuses_new_ssrcs_rather_than_forget_used_indices() {
    let (mut tx, mut rx) = pair(Suite::AeadAes128Gcm);
    let total = (SLOTS + TOMBS) as u32;
    for ssrc in 1..=total {
        unprotect(&mut rx, &sealed(&mut tx, 0, ssrc).unwrap()).unwrap();
    }
    assert_eq!(sealed(&mut tx, 0, total + 1).err(), Some(SrtpError::StreamsExhausted));
    let mut b = [0u8; 64];
    b[..8].copy_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 0xff]);
    assert_eq!(tx.protect_rtcp(&mut b, 8).err(), Some(SrtpError::StreamsExhausted));
    for ssrc in 1..=total {
        assert_eq!(sealed(&mut tx, 0, ssrc).err(), Some(SrtpError::IndexReused), "ssrc {ssrc}");
        assert_eq!(unprotect(&mut rx, &sealed(&mut tx, 1, ssrc).unwrap()), Ok(172), "ssrc {ssrc}");
    }
    assert_eq!(sealed(&mut tx, 0, total + 1).err(), Some(SrtpError::StreamsExhausted));
}
