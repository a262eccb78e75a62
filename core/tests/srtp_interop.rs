//! Interop with Debian's libsrtp2 (libsrtp2-dev), both directions, every suite libsrtp2
//! has (all but F8_128_HMAC_SHA1_80/32, which libsrtp2 does not implement: the f8 cipher
//! is checked against RFC 3711's vector in `srtp::f8`): 70 000 RTP packets starting near
//! the sequence wrap (the ROC moves twice) and 200 SRTCP packets, with the plaintext
//! compared byte for byte. Then keys with an MKI (libsrtp's `srtp_*_mki` calls), one
//! suite of each transform, on 7 000 packets.
//!
//! AES_192_CM: libsrtp2 before 2.7 (Debian's is 2.5) derives AES-192 session keys with the
//! AES-256 PRF over key||salt (cisco/libsrtp#763, fixed by #765 and #770 in 2025), so it cannot
//! talk to an RFC 6188 peer (relayd, rtpengine) with these suites. The test gives our
//! context the session keys libsrtp2 derives (`libsrtp_aes192_keys`): the AES-192 counter
//! mode, HMAC and packet layout are checked against libsrtp2 here, the RFC key derivation
//! against RFC 6188's vectors in the unit tests.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use relay_core::packet::rtp::emit_header;
use relay_core::srtp::{derive_session_keys, Context, Suite};

fn peer() -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/interop/srtp_peer.c");
    let out = std::env::temp_dir().join(format!("srtp_peer_{}", std::process::id()));
    let st = Command::new("cc").args(["-O2", "-o"]).arg(&out).arg(&src).arg("-lsrtp2").status().expect("cc");
    assert!(st.success(), "cannot build the libsrtp2 peer: apt-get install libsrtp2-dev (scripts/deps.sh does)");
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Frames in, frames out through the libsrtp2 peer.
fn run_peer(
    bin: &PathBuf,
    mode: &str,
    suite: Suite,
    key: &[u8],
    salt: &[u8],
    mki: Option<&[u8]>,
    frames: Vec<(u8, Vec<u8>)>,
) -> Vec<(u8, Option<Vec<u8>>)> {
    let mut child = Command::new(bin)
        .args([mode, suite.name(), &hex(key), &hex(salt)])
        .args(mki.map(hex))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = std::io::BufWriter::new(&mut stdin);
        for (k, f) in frames {
            w.write_all(&[k, (f.len() >> 8) as u8, f.len() as u8]).unwrap();
            w.write_all(&f).unwrap();
        }
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    let mut res = Vec::new();
    let mut i = 0;
    while i < out.len() {
        let (k, len) = (out[i], ((out[i + 1] as usize) << 8) | out[i + 2] as usize);
        if len == 0xffff {
            res.push((k, None));
            i += 4;
        } else {
            res.push((k, Some(out[i + 3..i + 3 + len].to_vec())));
            i += 3 + len;
        }
    }
    res
}

fn plaintext(packets: u32) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    for i in 0..packets {
        let seq = 65_000u16.wrapping_add(i as u16);
        let len = 12 + (i as usize * 7) % 200;
        let mut b = vec![(i % 251) as u8; len];
        emit_header(&mut b, 8, i % 50 == 0, seq, i.wrapping_mul(160), 0x1234_5678);
        v.push((0, b));
        if i % 350 == 0 {
            // RR + SDES, as phones send them
            let mut rr = vec![0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
            rr.extend_from_slice(&[0x81, 202, 0, 2, 0x12, 0x34, 0x56, 0x78, 1, 1, b'x', 0]);
            v.push((1, rr));
        }
    }
    v
}

/// What libsrtp2 < 2.7 derives for AES_192_CM (srtp_stream_init_keys: a KDF key length of
/// 46, so the AES-256 PRF keyed with key || salt[..8], salted with salt[8..] || 0..0).
fn libsrtp_aes192_context(suite: Suite, key: &[u8], salt: &[u8]) -> Context {
    let mut material = [0u8; 46];
    material[..24].copy_from_slice(key);
    material[24..38].copy_from_slice(salt);
    let (rtp, rtcp) = derive_session_keys(suite, &material[..32], &material[32..]);
    Context::from_session_keys(suite, &rtp, &rtcp)
}

/// Both directions of one suite (and MKI) over `plain`.
fn both_directions(bin: &PathBuf, suite: Suite, mki: Option<&[u8]>, plain: &[(u8, Vec<u8>)]) {
    let key: Vec<u8> = (0..suite.key_len()).map(|i| (i * 37 + 11) as u8).collect();
    let salt: Vec<u8> = (0..suite.salt_len()).map(|i| (i * 13 + 5) as u8).collect();
    let ctx = || {
        let c = if matches!(suite, Suite::AesCm192HmacSha1_80 | Suite::AesCm192HmacSha1_32) {
            libsrtp_aes192_context(suite, &key, &salt)
        } else {
            Context::new(suite, &key, &salt).unwrap()
        };
        c.with_mki(mki)
    };
    // relay protects, libsrtp2 unprotects
    let mut tx = ctx();
    let protected: Vec<(u8, Vec<u8>)> = plain
        .iter()
        .map(|(k, p)| {
            let mut b = vec![0u8; p.len() + 32 + mki.map_or(0, |m| m.len())];
            b[..p.len()].copy_from_slice(p);
            let n = if *k == 0 { tx.protect_rtp(&mut b, p.len()) } else { tx.protect_rtcp(&mut b, p.len()) }.unwrap();
            b.truncate(n);
            (*k, b)
        })
        .collect();
    let back = run_peer(bin, "unprotect", suite, &key, &salt, mki, protected);
    assert_eq!(back.len(), plain.len());
    for (i, ((_, got), (_, want))) in back.iter().zip(plain).enumerate() {
        assert_eq!(got.as_deref(), Some(&want[..]), "{suite} MKI {mki:?}: libsrtp2 could not unprotect our packet {i}");
    }
    // libsrtp2 protects, relay unprotects
    let theirs = run_peer(bin, "protect", suite, &key, &salt, mki, plain.to_vec());
    let mut rx = ctx();
    for (i, ((k, pkt), (_, want))) in theirs.into_iter().zip(plain).enumerate() {
        let mut b = pkt.unwrap_or_else(|| panic!("{suite}: libsrtp2 failed to protect packet {i}"));
        let n = b.len();
        let m = if k == 0 { rx.unprotect_rtp(&mut b, n) } else { rx.unprotect_rtcp(&mut b, n) }
            .unwrap_or_else(|e| panic!("{suite} MKI {mki:?}: packet {i} from libsrtp2: {e}"));
        assert_eq!(&b[..m], &want[..], "{suite}: packet {i}");
    }
    eprintln!("{suite} MKI {mki:?}: {} packets each way", plain.len());
}

#[test]
fn libsrtp2_interop_both_directions_every_suite() {
    let bin = peer();
    let plain = plaintext(70_000);
    for suite in Suite::ALL.into_iter().filter(|s| !s.is_f8()) {
        both_directions(&bin, suite, None, &plain);
    }
    // MKIs: placed before the HMAC tag, after the GCM tag (libsrtp2 decides both)
    let plain = plaintext(7_000);
    for (suite, mki) in [
        (Suite::AesCm128HmacSha1_80, &[0xa5][..]),
        (Suite::AesCm192HmacSha1_80, &[0, 0, 0, 1][..]),
        (Suite::NullHmacSha1_80, &[1, 2, 3, 4, 5, 6, 7, 8, 9][..]),
        (Suite::AeadAes128Gcm, &[7, 7][..]),
        (Suite::AeadAes256Gcm, &[0x42; 32][..]),
    ] {
        both_directions(&bin, suite, Some(mki), &plain);
    }
    // _32 suites with an MKI: SRTP only. libsrtp2 looks for an SRTCP packet's MKI before
    // a tag of the SRTP tag's length (srtp_get_session_keys), so it cannot unprotect even
    // its own SRTCP of a _32 suite (whose SRTCP tag is 80 bits, RFC 4568 §6.2) with an MKI.
    let rtp_only: Vec<_> = plain.iter().filter(|(k, _)| *k == 0).cloned().collect();
    for suite in [Suite::AesCm128HmacSha1_32, Suite::AesCm192HmacSha1_32, Suite::NullHmacSha1_32] {
        both_directions(&bin, suite, Some(&[0x10, 0x20]), &rtp_only);
    }
    let _ = std::fs::remove_file(bin);
}
