//! Copies of a relay socket's packets for recording and live capture (rules::tap).
//!
//! [`FlowTable::process`](super::FlowTable::process) hands the datagram to the rule's
//! tap at three points: as it arrived (after the source screening, before any crypto),
//! in clear after SRTP/SRTCP was authenticated, decrypted and committed (only where the
//! relay decrypts), and as it leaves (after re-keying). A flow without a tap pays one
//! `is_some` test per point; the copy itself is out of line, so the untapped path keeps
//! its shape (backend/tests/no_alloc.rs).

use std::net::SocketAddr;

use rules::tap::{Tap, TapPacket, TapPoint};

/// Hand `bytes` to `tap` (the sink copies it into its bounded queue or counts a drop).
#[cold]
#[inline(never)]
pub(super) fn copy(
    tap: &Tap,
    local: SocketAddr,
    src: SocketAddr,
    dst: SocketAddr,
    point: TapPoint,
    at_us: u64,
    bytes: &[u8],
) {
    tap.packet(&TapPacket { local, src, dst, point, at_us, bytes });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rules::dataplane::{FlowRule, SrtpKey};
    use rules::tap::{Tap, TapPacket, TapPoint, TapSink};

    use super::SocketAddr;
    use crate::flow::{DropReason, FlowId, FlowTable, Verdict};
    use crate::packet::rtp::emit_header;
    use crate::srtp;

    /// One copy: point, src, dst, bytes.
    type Copied = (TapPoint, SocketAddr, SocketAddr, Vec<u8>);

    /// A sink that keeps every copy.
    #[derive(Default)]
    struct Counting(Mutex<Vec<Copied>>);

    impl TapSink for Counting {
        fn packet(&self, p: &TapPacket<'_>) {
            self.0.lock().unwrap().push((p.point, p.src, p.dst, p.bytes.to_vec()));
        }
    }

    impl Counting {
        fn take(&self) -> Vec<Copied> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut b = vec![0u8; 172];
        emit_header(&mut b, 0, false, seq, seq as u32 * 160, 0x1234);
        b
    }

    fn key(seed: u8) -> SrtpKey {
        let s = srtp::Suite::from_name("AES_CM_128_HMAC_SHA1_80").unwrap();
        SrtpKey::new(s, &vec![seed; s.key_len()], &vec![seed ^ 0xff; s.salt_len()]).unwrap()
    }

    const A: &str = "10.0.0.1:30000";
    const B: &str = "10.0.0.1:30002";
    const PA: &str = "192.0.2.10:4000";
    const PB: &str = "198.51.100.20:5000";

    /// A <-> relay <-> B; A's socket tapped when `tap` is given.
    fn table(a_keys: (Option<SrtpKey>, Option<SrtpKey>), tap: Option<Tap>) -> (FlowTable, FlowId, FlowId) {
        let mut t = FlowTable::new(2000);
        let fa = t.insert(a(A), Default::default());
        let fb = t.insert(a(B), Default::default());
        let (i, o) = a_keys;
        t.apply(&FlowRule { srtp_in: i, srtp_out: o, tap, ..FlowRule::rtp(a(A), Some(a(PA)), Some(a(B))) }).unwrap();
        t.apply(&FlowRule::rtp(a(B), Some(a(PB)), Some(a(A)))).unwrap();
        (t, fa, fb)
    }

    fn run(t: &mut FlowTable, id: FlowId, src: &str, data: &[u8]) -> Verdict {
        let mut b = [0u8; 2048];
        b[..data.len()].copy_from_slice(data);
        t.process(id, a(src), &mut b, data.len(), 7_000)
    }

    #[test]
    fn plain_rtp_is_copied_as_received_and_as_sent() {
        let sink = Arc::new(Counting::default());
        let (mut t, fa, fb) = table((None, None), Some(Tap::new(sink.clone())));
        let p = rtp(1);
        assert!(matches!(run(&mut t, fa, PA, &p), Verdict::Forward { .. }));
        let got = sink.take();
        assert_eq!(got.len(), 2, "no Plain copy where the relay does not decrypt");
        assert_eq!(got[0], (TapPoint::Received, a(PA), a(A), p.clone()));
        assert_eq!(got[1], (TapPoint::Sent, a(B), a(PB), p.clone()), "leaves from B's socket to B");
        // the untapped socket costs nothing and copies nothing
        assert!(matches!(run(&mut t, fb, PB, &p), Verdict::Forward { .. }));
        assert!(sink.take().is_empty());
        // RTCP too
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
        t.apply(&FlowRule { kind: rules::dataplane::FlowKind::RtpMux, ..FlowRule::rtp(a(B), Some(a(PB)), Some(a(A))) })
            .unwrap();
        let mux = FlowRule {
            kind: rules::dataplane::FlowKind::RtpMux,
            egress_rtcp: Some(a(B)),
            tap: Some(Tap::new(sink.clone())),
            ..FlowRule::rtp(a(A), Some(a(PA)), Some(a(B)))
        };
        t.apply(&mux).unwrap();
        assert!(matches!(run(&mut t, fa, PA, &rr), Verdict::Forward { .. }));
        let got = sink.take();
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [TapPoint::Received, TapPoint::Sent]);
        assert_eq!(got[1].3, rr);
    }

    #[test]
    fn srtp_is_copied_encrypted_decrypted_and_rekeyed() {
        let ka = key(1);
        let kr = key(2);
        let sink = Arc::new(Counting::default());
        // A sends SRTP (ka), B gets plain RTP
        let (mut t, fa, _) = table((Some(ka.clone()), Some(kr)), Some(Tap::new(sink.clone())));
        let p = rtp(1);
        let mut b = [0u8; 2048];
        b[..p.len()].copy_from_slice(&p);
        let n = srtp::Context::new(ka.suite, &ka.key, &ka.salt).unwrap().protect_rtp(&mut b, p.len()).unwrap();
        let wire = b[..n].to_vec();
        assert!(matches!(run(&mut t, fa, PA, &wire), Verdict::Forward { .. }));
        let got = sink.take();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (TapPoint::Received, a(PA), a(A), wire.clone()), "as it arrived: encrypted");
        assert_eq!(got[1], (TapPoint::Plain, a(PA), a(A), p.clone()), "decrypted");
        assert_eq!(got[2], (TapPoint::Sent, a(B), a(PB), p.clone()));
        // a replay is refused, and a refused packet is never copied (a recording holds what
        // the relay accepted, nothing an attacker sent it)
        assert_eq!(run(&mut t, fa, PA, &wire), Verdict::Drop(DropReason::Srtp(srtp::SrtpError::Replayed)));
        assert!(sink.take().is_empty());
        // a foreign source after the latch is not copied at all (screened first)
        assert_eq!(run(&mut t, fa, "203.0.113.9:9", &rtp(2)), Verdict::Drop(DropReason::ForeignSource));
        assert!(sink.take().is_empty());
    }

    #[test]
    fn a_strangers_packet_before_the_latch_is_not_copied() {
        let sink = Arc::new(Counting::default());
        let (mut t, fa, _) = table((None, None), Some(Tap::new(sink.clone())));
        // not the signalled peer, not the SIP source: refused until a grace period passes
        assert_eq!(run(&mut t, fa, "203.0.113.9:9", &rtp(1)), Verdict::Drop(DropReason::ForeignSource));
        assert!(sink.take().is_empty(), "the refused packet reached the recording");
        assert!(matches!(run(&mut t, fa, PA, &rtp(2)), Verdict::Forward { .. }));
        assert_eq!(sink.take().len(), 2);
    }

    #[test]
    fn a_rule_without_the_tap_stops_the_copies() {
        let sink = Arc::new(Counting::default());
        let (mut t, fa, _) = table((None, None), Some(Tap::new(sink.clone())));
        assert!(matches!(run(&mut t, fa, PA, &rtp(1)), Verdict::Forward { .. }));
        assert_eq!(sink.take().len(), 2);
        t.apply(&FlowRule::rtp(a(A), Some(a(PA)), Some(a(B)))).unwrap();
        assert!(matches!(run(&mut t, fa, PA, &rtp(2)), Verdict::Forward { .. }));
        assert!(sink.take().is_empty());
        assert_eq!(Arc::strong_count(&sink), 1, "the table holds the sink no more");
    }
}
