#![no_main]
//! A passive (server) DTLS-SRTP session under hostile datagrams: what anyone who knows a
//! relay port can send before ICE or the handshake authenticated them.
//!
//! The input is a script of datagrams (2-byte big-endian length, then the bytes; a short
//! tail is one last datagram) fed in order to one session, with time advancing between
//! them so retransmission and deadline paths run too. Seeds (fuzz/seeds/dtls/) are real
//! ClientHellos: dimpl's hybrid DTLS 1.2/1.3 one, a DTLS 1.2 one, and one re-fragmented
//! into several records. Invariants: no panic; no keys without a completed handshake
//! (no client here ever proves the certificate the fingerprint names); a failed session
//! accepts nothing more and schedules nothing; the transmit queue stays bounded.
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use relay_core::dtls::{generate_identity, DtlsSession, DtlsState};
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule};

fn identities() -> &'static (Arc<DtlsIdentity>, Arc<DtlsIdentity>) {
    static IDS: OnceLock<(Arc<DtlsIdentity>, Arc<DtlsIdentity>)> = OnceLock::new();
    IDS.get_or_init(|| {
        let id = || Arc::new(generate_identity(1_790_000_000, 86400).unwrap());
        (id(), id())
    })
}

fuzz_target!(|data: &[u8]| {
    let (me, peer) = identities();
    let rule = DtlsRule {
        role: DtlsRole::Passive,
        identity: me.clone(),
        remote_fingerprint: Some(peer.fingerprint.clone()),
        generation: 0,
    };
    let mut s = DtlsSession::new(&rule, 1_000_000).unwrap();
    let mut now = 1_000_000u64;
    let mut rest = data;
    // a seed without the length prefix is one datagram
    let scripted = rest.len() >= 2 && usize::from(u16::from_be_bytes([rest[0], rest[1]])) + 2 <= rest.len();
    let mut datagrams = vec![];
    if scripted {
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            datagrams.push(&rest[2..2 + len]);
            rest = &rest[2 + len..];
        }
    } else {
        datagrams.push(rest);
    }
    for (i, d) in datagrams.iter().enumerate() {
        let failed_before = matches!(s.state(), DtlsState::Failed(_));
        let r = s.handle_datagram(now, d);
        if failed_before {
            assert!(r.is_err());
        }
        let mut queued = 0;
        while s.poll_transmit().is_some() {
            queued += 1;
        }
        assert!(queued <= 32);
        assert!(s.take_keys().is_none());
        match s.poll_timeout() {
            Some(t) => assert!(!matches!(s.state(), DtlsState::Failed(_)) && t < now + 120_000_000),
            None => {}
        }
        now += (i as u64 % 4) * 700_000;
        s.handle_timeout(now);
    }
    assert!(s.take_keys().is_none());
});
