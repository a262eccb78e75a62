//! A WebRTC socket read back for the state store and resumed after a restart: the keys
//! its DTLS handshake gave (the browser does not shake hands again: a restarted relay
//! that waited for one would never get it) and the peer its ICE nominated, with fresh
//! consent.
//!
//! A resumed link is keyed with no session. It never starts one: the active role does
//! not say hello again, and a DTLS datagram from the peer (a browser retransmitting its
//! last flight, or anyone else's) is dropped and counted (`drop_dtls`) rather than
//! answered, so it cannot unkey the socket. A new handshake comes with a new rule (a
//! changed fingerprint, role or generation: rule 7), as it would without a restart.

use std::net::SocketAddr;

use rules::dataplane::KeyDirection;
use rules::state::DtlsKeyState;

use super::super::{context, Flow};

impl Flow {
    /// The nominated (else latest checked) ICE peer with fresh consent, and the socket's
    /// DTLS keys when its handshake completed.
    pub(crate) fn webrtc_state(&self, now_us: u64) -> (Option<SocketAddr>, Option<DtlsKeyState>) {
        let Some(w) = self.webrtc.as_deref() else { return (None, None) };
        let peer = w.ice.as_ref().and_then(|ice| ice.peer(now_us));
        let keyed = w.dtls.as_ref().is_some_and(|l| l.keyed);
        let keys = match (keyed, &self.srtp_in, &self.srtp_out) {
            (true, Some((remote, _)), Some((local, _))) => {
                Some(DtlsKeyState { local: local.clone(), remote: remote.clone() })
            }
            _ => None,
        };
        (peer, keys)
    }

    /// Puts back the ICE peer (fresh consent from `now_us`) and the DTLS keys (as SRTP
    /// contexts with no stream state yet: the caller resumes those). Keys that build no
    /// context are left out (the socket then waits for a handshake, as a new one does).
    pub(crate) fn webrtc_resume(
        &mut self,
        ice_peer: Option<SocketAddr>,
        keys: Option<&DtlsKeyState>,
        window: u32,
        now_us: u64,
    ) {
        let fallback = self.latched.or(self.signalled);
        let Some(w) = self.webrtc.as_deref_mut() else { return };
        if let (Some(p), Some(ice)) = (ice_peer, w.ice.as_mut()) {
            ice.resume_peer(p, now_us);
            w.checked_us = Some(now_us);
            w.nominated_us = Some(now_us);
            *self.counters.latched.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        }
        let (Some(k), Some(link)) = (keys, w.dtls.as_mut()) else { return };
        let ctx = |k, d| context(k, d).map(|c| Box::new(c.with_replay_window(window)));
        match (ctx(&k.remote, KeyDirection::In), ctx(&k.local, KeyDirection::Out)) {
            (Ok(i), Ok(o)) => {
                link.keyed = true;
                link.session = None;
                link.kick = false;
                link.failed = false;
                link.started_us = now_us;
                link.remote = ice_peer.or(fallback);
                self.srtp_in = Some((k.remote.clone(), i));
                self.srtp_out = Some((k.local.clone(), o));
            }
            _ => log::warn!("{}: kept DTLS keys build no SRTP context; waiting for a handshake", self.local),
        }
    }
}

#[cfg(test)]
mod tests {
    use rules::dataplane::{DtlsRole, FlowRule};

    use super::super::tests::{a, browser_handshake, call, ctx, dtls, ice, peer, rtp, run, stun, transmits};
    use super::super::tests::{BROWSER, LA, LB, PHONE};
    use crate::flow::{DropReason, FlowTable, Verdict};

    /// A socket keyed by DTLS (with ICE, and without) is taken, restored into a new table
    /// that never shook hands, and forwards both ways under the same keys; the browser's
    /// retransmitted DTLS, and a new hello, neither unkey it nor get an answer.
    #[test]
    fn a_dtls_keyed_socket_restored_keeps_forwarding_without_a_handshake() {
        for (with_ice, role) in [(true, DtlsRole::Passive), (false, DtlsRole::Active), (false, DtlsRole::Passive)] {
            let (mut t, fa, fb, ra) = call(with_ice.then(ice), Some(dtls(role, 0)));
            let browser = a(BROWSER);
            if with_ice {
                assert_eq!(run(&mut t, fa, browser, &stun(1), 1_000).0, Verdict::Consumed);
                transmits(&mut t);
            }
            let keys = match role {
                DtlsRole::Passive => browser_handshake(&mut t, fa, browser, 2_000),
                DtlsRole::Active => {
                    // the relay says hello first, to the signalled peer
                    t.handle_timeout(2_000);
                    let mut b = peer(DtlsRole::Passive, 2_000);
                    for tx in transmits(&mut t) {
                        b.handle_datagram(2_000, &tx.data).unwrap();
                    }
                    super::super::tests::handshake(&mut t, fa, browser, &mut b, 2_000)
                }
            };
            let (mut b_tx, mut b_rx) = (ctx(&keys.local), ctx(&keys.remote));
            let mut last_flight = None;
            for seq in 1..50u16 {
                let mut b = [0u8; 2048];
                b[..172].copy_from_slice(&rtp(seq));
                let n = b_tx.protect_rtp(&mut b, 172).unwrap();
                assert!(matches!(run(&mut t, fa, browser, &b[..n], 3_000 + seq as u64).0, Verdict::Forward { .. }));
                let (v, mut out) = run(&mut t, fb, a(PHONE), &rtp(seq), 3_000 + seq as u64);
                let Verdict::Forward { len, .. } = v else { panic!("{v:?}") };
                b_rx.unprotect_rtp(&mut out, len).unwrap();
                last_flight = Some(b[..n].to_vec());
            }
            let (sa, sb) = (t.state(a(LA), 10_000).unwrap(), t.state(a(LB), 10_000).unwrap());
            assert!(sa.dtls_keys.is_some(), "keyed socket without its keys in the state");
            assert_eq!(sa.ice_peer, with_ice.then_some(browser));

            // a new process: fresh table and clock
            let mut t2 = FlowTable::new(2000);
            let fa2 = t2.insert(a(LA), Default::default());
            let fb2 = t2.insert(a(LB), Default::default());
            t2.restore(&ra, sa, 500).unwrap();
            t2.restore(&FlowRule::rtp(a(LB), Some(a(PHONE)), Some(a(LA))), sb, 500).unwrap();
            t2.handle_timeout(600);
            assert!(transmits(&mut t2).is_empty(), "a restored socket says hello again");
            assert_eq!(t2.get(fa2).unwrap().webrtc_keyed(), Some(true));
            // DTLS from the browser (a hello here; a retransmitted flight fares alike) gets no answer
            let hello = peer(DtlsRole::Active, 0).poll_transmit().unwrap();
            assert_eq!(run(&mut t2, fa2, browser, &hello, 700).0, Verdict::Drop(DropReason::Dtls));
            assert!(transmits(&mut t2).is_empty());
            assert_eq!(t2.get(fa2).unwrap().webrtc_keyed(), Some(true));
            for seq in 50..100u16 {
                let mut b = [0u8; 2048];
                b[..172].copy_from_slice(&rtp(seq));
                let n = b_tx.protect_rtp(&mut b, 172).unwrap();
                let (v, out) = run(&mut t2, fa2, browser, &b[..n], 1_000 + seq as u64);
                assert_eq!((v, out), (Verdict::Forward { via: fb2, to: a(PHONE), len: 172 }, rtp(seq)));
                let (v, mut out) = run(&mut t2, fb2, a(PHONE), &rtp(seq), 1_000 + seq as u64);
                let Verdict::Forward { len, to, .. } = v else { panic!("{v:?}") };
                assert_eq!(to, browser);
                b_rx.unprotect_rtp(&mut out, len).unwrap_or_else(|e| panic!("seq {seq}: {e}"));
            }
            // a packet from before the restart is a replay
            let old = last_flight.unwrap();
            assert!(matches!(run(&mut t2, fa2, browser, &old, 2_000).0, Verdict::Drop(DropReason::Srtp(_))));
            let c = t2.get(fa2).unwrap().counters.snapshot();
            assert_eq!((c.drop_srtp_auth, c.drop_srtp_replay, c.dtls_handshakes), (0, 1, 1), "{c:?}");
        }
    }
}
