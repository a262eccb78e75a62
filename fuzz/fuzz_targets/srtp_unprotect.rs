#![no_main]
//! The SRTP receive side under hostile input, every suite, with and without an MKI.
//!
//! 1. Arbitrary bytes into SRTP and SRTCP open / unprotect: an error, never a panic, and
//!    nothing unauthenticated ever comes out as plaintext.
//! 2. A script read from the input interleaves a genuine stream (starting just before a
//!    sequence wrap, with gaps and jumps, so its ROC moves) with forged datagrams of any
//!    SSRC, bit-flipped genuine packets, replays of captured ones, packets opened and not
//!    committed, other genuine SSRCs (which evict by least recent authentication) and
//!    SRTCP. Invariants: no panic; no forgery and no replay is accepted; a failed open or
//!    unprotect leaves the context as it was (the next genuine packet still decrypts); an
//!    opened packet opens again until it is committed, and commits at most once; the
//!    genuine stream decrypts every packet, to the end.
//!
//! The first byte picks the suite (`% Suite::ALL.len()`) and the key's MKI (none, or 1 to
//! 4 bytes: `/ Suite::ALL.len() % 5`); a bit flip may land in the MKI, which must then fail
//! as any tampering does.
use libfuzzer_sys::fuzz_target;
use relay_core::srtp::{Accepted, Context, Suite};

const SSRC: u32 = 0x5eed_0001;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u32(&mut self) -> u32 {
        let mut v = 0u32;
        for _ in 0..4 {
            v = v << 8 | self.byte().unwrap_or(0) as u32;
        }
        v
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a
    }
}

/// An RTP packet of `len` bytes (>= 12) in a buffer with tail room.
fn rtp(seq: u16, ssrc: u32, len: usize) -> ([u8; 256], usize) {
    let mut b = [0u8; 256];
    b[0] = 0x80;
    b[1] = 0;
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, x) in b[12..len].iter_mut().enumerate() {
        *x = (seq as usize + i) as u8;
    }
    (b, len)
}

fn raw_bytes(suite: Suite, key: &[u8], salt: &[u8], mki: Option<&[u8]>, body: &[u8]) {
    let mut ctx = Context::new(suite, key, salt).unwrap().with_mki(mki);
    let mut buf = [0u8; 2048];
    buf[..body.len()].copy_from_slice(body);
    if ctx.open_rtp(&mut buf, body.len()).is_ok() {
        panic!("forged SRTP opened");
    }
    buf[..body.len()].copy_from_slice(body);
    if ctx.unprotect_rtp(&mut buf, body.len()).is_ok() {
        panic!("forged SRTP accepted");
    }
    buf[..body.len()].copy_from_slice(body);
    if ctx.unprotect_rtcp(&mut buf, body.len()).is_ok() {
        panic!("forged SRTCP accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let suite = Suite::ALL[data[0] as usize % Suite::ALL.len()];
    let mki_len = data[0] as usize / Suite::ALL.len() % 5;
    let mki_bytes = [0xc3u8, 0x01, 0x5a, 0xff];
    let mki = (mki_len > 0).then(|| &mki_bytes[..mki_len]);
    let key = vec![7u8; suite.key_len()];
    let salt = vec![9u8; suite.salt_len()];
    raw_bytes(suite, &key, &salt, mki, &data[1..data.len().min(2000)]);

    let ctx = || Context::new(suite, &key, &salt).unwrap().with_mki(mki);
    let mut tx = ctx();
    let mut rx = ctx();
    let mut seq: u16 = 65_500;
    let mut captured: Vec<Vec<u8>> = Vec::new();
    let mut pending: Option<(Vec<u8>, Accepted)> = None;
    // how far the sender is ahead of the highest packet committed: kept under half the
    // sequence space, where the receiver's ROC guess (RFC 3711 §3.3.1) is exact
    let mut ahead: u32 = 0;
    const AHEAD_MAX: u32 = 0x7000;
    let mut input = Input(&data[1..]);
    // the next genuine packet of the stream, protected
    let genuine = |tx: &mut Context, seq: &mut u16, ahead: &mut u32, gap: u16| -> (Vec<u8>, [u8; 256], usize) {
        *seq = seq.wrapping_add(gap);
        *ahead += gap as u32;
        let len = 12 + (*seq as usize % 160);
        let (mut b, _) = rtp(*seq, SSRC, len);
        let plain = b;
        let n = tx.protect_rtp(&mut b, len).expect("protect a new index");
        (b[..n].to_vec(), plain, len)
    };
    // the stream starts committed (a receiver guesses ROC 0 for an SSRC it has no state of)
    let (p, _, _) = genuine(&mut tx, &mut seq, &mut ahead, 1);
    let mut b = [0u8; 256];
    b[..p.len()].copy_from_slice(&p);
    rx.unprotect_rtp(&mut b, p.len()).expect("first genuine packet");
    ahead = 0;
    captured.push(p);
    while let Some(op) = input.byte() {
        let arg = input.byte().unwrap_or(0);
        match op % 10 {
            // genuine, committed
            0 => {
                let (p, plain, len) = genuine(&mut tx, &mut seq, &mut ahead, 1 + (arg % 4) as u16);
                ahead = 0;
                let mut b = [0u8; 256];
                b[..p.len()].copy_from_slice(&p);
                let (m, a) = rx.open_rtp(&mut b, p.len()).expect("genuine packet opens");
                assert_eq!(&b[..m], &plain[..len]);
                assert!(rx.commit(a), "genuine packet commits");
                captured.push(p);
                if captured.len() > 64 {
                    captured.remove(0);
                }
            }
            // forged: random bytes with an RTP header and any SSRC
            1 => {
                let ssrc = input.u32();
                let body = input.bytes(arg as usize);
                let mut b = [0u8; 512];
                b[12..12 + body.len()].copy_from_slice(body);
                b[0] = 0x80;
                b[2..4].copy_from_slice(&(ssrc as u16).to_be_bytes());
                b[8..12].copy_from_slice(&ssrc.to_be_bytes());
                let n = 12 + body.len();
                assert!(rx.unprotect_rtp(&mut b, n).is_err(), "forged SRTP accepted");
            }
            // a captured packet with one bit flipped
            2 => {
                if let Some(p) = captured.last() {
                    let bit = input.u32() as usize % (p.len() * 8);
                    let mut b = [0u8; 256];
                    b[..p.len()].copy_from_slice(p);
                    b[bit / 8] ^= 1 << (bit % 8);
                    let copy = b;
                    assert!(rx.open_rtp(&mut b, p.len()).is_err(), "tampered SRTP opened");
                    if !suite.is_gcm() || relay_core::srtp::implementation() == "aes-ni" {
                        assert_eq!(b[..p.len()], copy[..p.len()], "a failed open changed the buffer");
                    }
                    assert!(rx.unprotect_rtp(&mut b, p.len()).is_err(), "tampered SRTP accepted");
                }
            }
            // replay of a captured packet
            3 => {
                if !captured.is_empty() {
                    let p = &captured[arg as usize % captured.len()];
                    let mut b = [0u8; 256];
                    b[..p.len()].copy_from_slice(p);
                    assert!(rx.unprotect_rtp(&mut b, p.len()).is_err(), "replay accepted");
                }
            }
            // genuine, opened twice and not committed (yet)
            4 if ahead < AHEAD_MAX - 8 => {
                let (p, _, _) = genuine(&mut tx, &mut seq, &mut ahead, 1 + (arg % 4) as u16);
                let mut b = [0u8; 256];
                b[..p.len()].copy_from_slice(&p);
                let (_, a1) = rx.open_rtp(&mut b, p.len()).expect("genuine packet opens");
                b[..p.len()].copy_from_slice(&p);
                let (_, a2) = rx.open_rtp(&mut b, p.len()).expect("an uncommitted packet opens again");
                assert_eq!(a1, a2);
                // a packet replaced here is never committed: its index stays free
                pending = Some((p, a1));
            }
            // commit what was opened: at most once
            5 => {
                if let Some((p, a)) = pending.take() {
                    if rx.commit(a) {
                        captured.push(p);
                    }
                    assert!(!rx.commit(a), "committed twice");
                }
            }
            // forged SRTCP of any SSRC
            6 => {
                let ssrc = input.u32();
                let body = input.bytes(arg as usize);
                let mut b = [0u8; 512];
                b[..4].copy_from_slice(&[0x80, 200, 0, 6]);
                b[4..8].copy_from_slice(&ssrc.to_be_bytes());
                b[8..8 + body.len()].copy_from_slice(body);
                assert!(rx.unprotect_rtcp(&mut b, 8 + body.len()).is_err(), "forged SRTCP accepted");
            }
            // genuine SRTCP, and its replay
            7 => {
                let mut b = [0u8; 64];
                b[..4].copy_from_slice(&[0x80, 201, 0, 1]);
                b[4..8].copy_from_slice(&SSRC.to_be_bytes());
                let n = tx.protect_rtcp(&mut b, 8).expect("protect SRTCP");
                let p = b;
                assert_eq!(rx.unprotect_rtcp(&mut b, n), Ok(8), "genuine SRTCP");
                b = p;
                assert!(rx.unprotect_rtcp(&mut b, n).is_err(), "SRTCP replay accepted");
            }
            // the genuine stream jumps ahead (less than half the sequence space)
            8 => {
                let jump = ((arg as u32 % 128) * 256).min(AHEAD_MAX - 8 - ahead.min(AHEAD_MAX - 8));
                seq = seq.wrapping_add(jump as u16);
                ahead += jump;
            }
            // another genuine SSRC under the same key (its own sender): authenticated
            // streams evict each other; the main stream survives it in a tombstone (40
            // others: within the 16 slots + 48 tombstones a receiving context keeps)
            9 => {
                let ssrc = 0x0100_0000 + (input.byte().unwrap_or(0) % 40) as u32;
                let mut other = ctx();
                let (mut b, len) = rtp(arg as u16, ssrc, 40);
                let plain = b;
                let n = other.protect_rtp(&mut b, len).unwrap();
                if let Ok(m) = rx.unprotect_rtp(&mut b, n) {
                    assert_eq!(b[..m], plain[..len]);
                }
            }
            _ => {}
        }
    }
    // the genuine stream keeps decrypting
    for _ in 0..3 {
        let (p, plain, len) = genuine(&mut tx, &mut seq, &mut ahead, 1);
        let mut b = [0u8; 256];
        b[..p.len()].copy_from_slice(&p);
        assert_eq!(rx.unprotect_rtp(&mut b, p.len()), Ok(len), "genuine stream after the script");
        assert_eq!(b[..len], plain[..len]);
    }
});
