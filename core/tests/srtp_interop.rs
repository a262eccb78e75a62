//! Interop with Debian's libsrtp2 (libsrtp2-dev), both directions, every suite: 70 000
//! RTP packets starting near the sequence wrap (the ROC moves twice) and 200 SRTCP
//! packets, with the plaintext compared byte for byte.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use relay_core::packet::rtp::emit_header;
use relay_core::srtp::{Context, Suite};

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
    frames: Vec<(u8, Vec<u8>)>,
) -> Vec<(u8, Option<Vec<u8>>)> {
    let mut child = Command::new(bin)
        .args([mode, suite.name(), &hex(key), &hex(salt)])
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

fn plaintext() -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    for i in 0..70_000u32 {
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

#[test]
fn libsrtp2_interop_both_directions_every_suite() {
    let bin = peer();
    let plain = plaintext();
    for suite in Suite::ALL {
        let key: Vec<u8> = (0..suite.key_len()).map(|i| (i * 37 + 11) as u8).collect();
        let salt: Vec<u8> = (0..suite.salt_len()).map(|i| (i * 13 + 5) as u8).collect();
        // relay protects, libsrtp2 unprotects
        let mut tx = Context::new(suite, &key, &salt).unwrap();
        let protected: Vec<(u8, Vec<u8>)> = plain
            .iter()
            .map(|(k, p)| {
                let mut b = vec![0u8; p.len() + 32];
                b[..p.len()].copy_from_slice(p);
                let n =
                    if *k == 0 { tx.protect_rtp(&mut b, p.len()) } else { tx.protect_rtcp(&mut b, p.len()) }.unwrap();
                b.truncate(n);
                (*k, b)
            })
            .collect();
        let back = run_peer(&bin, "unprotect", suite, &key, &salt, protected);
        assert_eq!(back.len(), plain.len());
        for (i, ((_, got), (_, want))) in back.iter().zip(&plain).enumerate() {
            assert_eq!(got.as_deref(), Some(&want[..]), "{suite}: libsrtp2 could not unprotect our packet {i}");
        }
        // libsrtp2 protects, relay unprotects
        let theirs = run_peer(&bin, "protect", suite, &key, &salt, plain.clone());
        let mut rx = Context::new(suite, &key, &salt).unwrap();
        for (i, ((k, pkt), (_, want))) in theirs.into_iter().zip(&plain).enumerate() {
            let mut b = pkt.unwrap_or_else(|| panic!("{suite}: libsrtp2 failed to protect packet {i}"));
            let n = b.len();
            let m = if k == 0 { rx.unprotect_rtp(&mut b, n) } else { rx.unprotect_rtcp(&mut b, n) }
                .unwrap_or_else(|e| panic!("{suite}: packet {i} from libsrtp2: {e}"));
            assert_eq!(&b[..m], &want[..], "{suite}: packet {i}");
        }
        eprintln!("{suite}: {} RTP + {} RTCP packets each way", 70_000, plain.len() - 70_000);
    }
    let _ = std::fs::remove_file(bin);
}
