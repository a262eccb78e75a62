use super::*;
use crate::srtp::{SrtpError, Suite};
use crate::test_support::Rng;

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut b = vec![0x5au8; 172];
    crate::packet::rtp::emit_header(&mut b, 0, false, seq, seq as u32 * 160, ssrc);
    b
}

fn ctx(suite: Suite) -> Context {
    let key: Vec<u8> = (0..suite.key_len() as u8).collect();
    let salt: Vec<u8> = (100..100 + suite.salt_len() as u8).collect();
    Context::new(suite, &key, &salt).unwrap()
}

fn sealed(tx: &mut Context, seq: u16, ssrc: u32) -> Result<Vec<u8>, SrtpError> {
    let mut b = [0u8; 256];
    let p = rtp(seq, ssrc);
    b[..p.len()].copy_from_slice(&p);
    let n = tx.protect_rtp(&mut b, p.len())?;
    Ok(b[..n].to_vec())
}

fn unprotect(rx: &mut Context, pkt: &[u8]) -> Result<usize, SrtpError> {
    let mut b = [0u8; 256];
    b[..pkt.len()].copy_from_slice(pkt);
    rx.unprotect_rtp(&mut b, pkt.len())
}

fn sealed_rtcp(tx: &mut Context, ssrc: u32) -> Vec<u8> {
    let mut b = [0u8; 64];
    b[..4].copy_from_slice(&[0x80, 201, 0, 1]);
    b[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let n = tx.protect_rtcp(&mut b, 8).unwrap();
    b[..n].to_vec()
}

/// The SRTCP index of a protected AES-CM packet (the E+index word before the tag).
fn rtcp_index(pkt: &[u8], suite: Suite) -> u32 {
    let at = pkt.len() - suite.rtcp_tag_len() - 4;
    u32::from_be_bytes(pkt[at..at + 4].try_into().unwrap()) & 0x7fff_ffff
}

/// Both sides restart from their kept state after the sender's sequence number wrapped:
/// the stream continues with no authentication failure and its old packets are refused.
#[test]
fn a_resumed_pair_continues_across_the_rollover_and_refuses_old_packets() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm] {
        let (mut tx, mut rx) = (ctx(suite), ctx(suite));
        let mut old = Vec::new();
        for i in 0..200u16 {
            let p = sealed(&mut tx, 65_500u16.wrapping_add(i), 7).unwrap();
            unprotect(&mut rx, &p).unwrap();
            old.push(p);
        }
        let r = sealed_rtcp(&mut tx, 7);
        let mut b = r.clone();
        rx.unprotect_rtcp(&mut b, r.len()).unwrap();
        let (ts, rs) = (tx.stream_states(), rx.stream_states());
        assert_eq!(ts[0].rtp_highest, Some(1 << 16 | 163), "ROC 1 after the wrap");
        assert!(ts[0].sent && !rs[0].sent);
        let (mut tx2, mut rx2) = (ctx(suite), ctx(suite));
        tx2.resume(&ts);
        rx2.resume(&rs);
        for i in 200..400u16 {
            let p = sealed(&mut tx2, 65_500u16.wrapping_add(i), 7).unwrap();
            unprotect(&mut rx2, &p).unwrap_or_else(|e| panic!("{suite} packet {i}: {e}"));
        }
        for p in &old {
            assert!(unprotect(&mut rx2, p).is_err(), "a packet from before the restart replays");
        }
        assert!(rx2.unprotect_rtcp(&mut r.clone(), r.len()).is_err(), "an SRTCP replay");
        // the sender never protects an index it used before the restart
        assert_eq!(sealed(&mut tx2, 100, 7), Err(SrtpError::IndexReused));
        // SRTCP goes on, past the margin
        let r2 = sealed_rtcp(&mut tx2, 7);
        let mut b = r2.clone();
        rx2.unprotect_rtcp(&mut b, r2.len()).unwrap();
        if !suite.is_gcm() {
            assert_eq!(rtcp_index(&r2, suite), 1 + RTCP_RESUME_MARGIN);
        }
    }
}

/// State kept before the last packets (a crash between two writes of the store): once
/// the live stream's next packet went through, the indices between are taken on both
/// sides, so a plain packet injected with an old sequence number is not protected again
/// and a captured SRTP packet is not accepted again.
#[test]
fn a_lagging_state_takes_a_floor_at_the_first_new_packet() {
    let suite = Suite::AesCm128HmacSha1_80;
    let (mut tx, mut rx) = (ctx(suite), ctx(suite));
    let mut kept = None;
    let mut old = Vec::new();
    for seq in 1000..1100u16 {
        let p = sealed(&mut tx, seq, 9).unwrap();
        unprotect(&mut rx, &p).unwrap();
        if seq == 1050 {
            // the store's last write
            kept = Some((tx.stream_states(), rx.stream_states()));
        } else if seq > 1050 {
            old.push((seq, p));
        }
    }
    let (ts, rs) = kept.unwrap();
    let (mut tx2, mut rx2) = (ctx(suite), ctx(suite));
    tx2.resume(&ts);
    rx2.resume(&rs);
    // the live stream went on while no process listened
    let p = sealed(&mut tx2, 1120, 9).unwrap();
    unprotect(&mut rx2, &p).unwrap();
    for (seq, pkt) in &old {
        assert_eq!(sealed(&mut tx2, *seq, 9), Err(SrtpError::IndexReused), "seq {seq} protected twice");
        assert!(unprotect(&mut rx2, pkt).is_err(), "seq {seq} accepted twice");
    }
    // after the floor, reordering works as ever
    let p122 = sealed(&mut tx2, 1122, 9).unwrap();
    let p121 = sealed(&mut tx2, 1121, 9).unwrap();
    unprotect(&mut rx2, &p122).unwrap();
    unprotect(&mut rx2, &p121).unwrap();
}

/// A stream new to a resumed context (it may have started after the state was kept)
/// starts its SRTCP indices past the margin.
#[test]
fn a_new_stream_of_a_resumed_context_skips_the_rtcp_margin() {
    let suite = Suite::AesCm128HmacSha1_80;
    let mut tx = ctx(suite);
    tx.resume(&[]);
    let mut rx = ctx(suite);
    let r = sealed_rtcp(&mut tx, 42);
    assert_eq!(rtcp_index(&r, suite), RTCP_RESUME_MARGIN);
    rx.unprotect_rtcp(&mut r.clone(), r.len()).unwrap();
    let p = sealed(&mut tx, 5, 42).unwrap();
    unprotect(&mut rx, &p).unwrap();
}

/// Kept state is input: any values, duplicates, far too many streams. No panic, the
/// bounds hold, and what an SSRC is said to have used stays used.
#[test]
fn any_kept_state_resumes_without_panic() {
    let mut rng = Rng(0x5eed_1234_5678_9abc);
    let pick = |rng: &mut Rng| -> u64 {
        match rng.next() % 6 {
            0 => 0,
            1 => u64::MAX,
            2 => (1 << 48) - 1,
            3 => 1 << 48,
            4 => rng.next() % 70_000,
            _ => rng.next(),
        }
    };
    for round in 0..300 {
        let n = if round % 50 == 0 { 5000 } else { (rng.next() % 80) as usize };
        let states: Vec<SrtpStreamState> = (0..n)
            .map(|_| SrtpStreamState {
                ssrc: (rng.next() % 100) as u32,
                sent: rng.next().is_multiple_of(2),
                rtp_highest: (!rng.next().is_multiple_of(4)).then(|| pick(&mut rng)),
                rtcp_next: pick(&mut rng) as u32,
                rtcp_highest: (!rng.next().is_multiple_of(4)).then(|| pick(&mut rng) as u32),
            })
            .collect();
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes256Gcm] {
            let mut c = ctx(suite);
            c.resume(&states);
            let back = c.stream_states();
            assert!(back.len() <= SLOTS + TOMBS);
            for s in &back {
                assert!(s.rtp_highest.is_none_or(|h| h <= RTP_INDEX_MAX));
                assert!(s.rtcp_next <= RTCP_INDEX_MAX);
                // every index said to be used stays used
                let said = states.iter().filter(|x| x.ssrc == s.ssrc).filter_map(|x| x.rtp_highest).max();
                assert!(said.map(|h| h.min(RTP_INDEX_MAX)) <= s.rtp_highest, "{s:?}");
            }
            for i in 0..20u16 {
                let ssrc = (rng.next() % 100) as u32;
                let _ = sealed(&mut c, rng.next() as u16, ssrc);
                let mut b = [0u8; 64];
                b[..4].copy_from_slice(&[0x80, 201, 0, 1]);
                b[4..8].copy_from_slice(&ssrc.to_be_bytes());
                let _ = c.protect_rtcp(&mut b, 8);
                let p = rtp(i, ssrc);
                let _ = unprotect(&mut c, &p);
            }
        }
    }
}
