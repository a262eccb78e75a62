//! The flow table: one entry per relay socket, and the forwarding decision for every
//! datagram that arrives on one. Pure logic over byte slices and explicit time; both
//! backends call [`FlowTable::process`].
//!
//! Latching rules (docs/latching.md):
//! 1. Only a packet that passes validation may latch.
//! 2. Symmetric mode (default): the first valid packet latches its source as the peer.
//!    With `trust-address` and a usable SDP address, the SDP address is the peer and
//!    nothing is learnt.
//! 3. Once latched, packets from any other source are dropped (`strict-source`:
//!    counted as strict-source; otherwise as foreign-source). They never move the latch,
//!    so spoofed or garbage traffic cannot take an established call over (RTP Bleed).
//! 4. The latch moves only when signalling changes the endpoint's address (re-offer /
//!    answer resets it), or, without strict-source, when the latched peer has been
//!    silent for `relatch_after_ms` and a valid packet arrives from a new source (NAT
//!    rebinding).
//! 5. With SRTP on a leg, a packet is authenticated and decrypted before anything else:
//!    one that fails authentication is dropped (`drop_srtp_auth`) and never latches.
//! 6. Asymmetric mode: never latch; send to the SDP address; accept any source
//!    (strict-source: only the SDP address).

pub mod counters;
pub mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use control::dataplane::{FlowKind, FlowRule, LatchPolicy, SrtpKey};

use crate::packet::{is_rtcp, Malformed, RtcpCompound, RtpPacket};
use crate::srtp::{self, SrtpError, Suite};
use counters::{bump, unbump, SharedCounters};
use stats::RtpStats;

pub type FlowId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed(Malformed),
    StrictSource,
    ForeignSource,
    NoDestination,
    UnknownFlow,
    Srtp(SrtpError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the first `len` bytes of the (possibly re-keyed) buffer out of relay socket
    /// `via` to `to`.
    Forward {
        via: FlowId,
        to: SocketAddr,
        len: usize,
    },
    Drop(DropReason),
}

#[derive(Debug)]
pub struct Flow {
    pub local: SocketAddr,
    pub kind: FlowKind,
    pub signalled: Option<SocketAddr>,
    pub latched: Option<SocketAddr>,
    last_from_peer_ms: u64,
    pub egress_rtp: Option<FlowId>,
    pub egress_rtcp: Option<FlowId>,
    pub policy: LatchPolicy,
    pub clock_rate: u32,
    pub stats: RtpStats,
    pub counters: Arc<SharedCounters>,
    /// SRTP from the party on this socket (authenticated and decrypted on arrival).
    srtp_in: Option<(SrtpKey, Box<srtp::Context>)>,
    /// SRTP towards the party on this socket (applied to packets leaving through it).
    srtp_out: Option<(SrtpKey, Box<srtp::Context>)>,
}

impl Flow {
    /// Where packets leaving through this socket go.
    pub fn peer(&self) -> Option<SocketAddr> {
        if self.policy.asymmetric {
            return self.signalled;
        }
        self.latched.or(self.signalled)
    }

    fn trusts_signalled(&self) -> bool {
        self.policy.trust_address && self.signalled.is_some_and(|s| !s.ip().is_unspecified())
    }
}

pub struct FlowTable {
    slots: Vec<Option<Flow>>,
    free: Vec<FlowId>,
    by_addr: HashMap<SocketAddr, FlowId>,
    pub relatch_after_ms: u64,
    /// SRTP replay window of the contexts this table creates.
    pub replay_window: u32,
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new(2000)
    }
}

impl FlowTable {
    pub fn new(relatch_after_ms: u64) -> FlowTable {
        FlowTable { slots: Vec::new(), free: Vec::new(), by_addr: HashMap::new(), relatch_after_ms, replay_window: 128 }
    }

    pub fn with_replay_window(mut self, packets: u32) -> FlowTable {
        self.replay_window = packets;
        self
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn lookup(&self, local: SocketAddr) -> Option<FlowId> {
        self.by_addr.get(&local).copied()
    }

    pub fn get(&self, id: FlowId) -> Option<&Flow> {
        self.slots.get(id)?.as_ref()
    }

    /// A socket was opened: create its (rule-less) flow.
    pub fn insert(&mut self, local: SocketAddr, counters: Arc<SharedCounters>) -> FlowId {
        if let Some(id) = self.by_addr.get(&local) {
            return *id;
        }
        let flow = Flow {
            local,
            kind: FlowKind::Rtp,
            signalled: None,
            latched: None,
            last_from_peer_ms: 0,
            egress_rtp: None,
            egress_rtcp: None,
            policy: LatchPolicy::default(),
            clock_rate: 8000,
            stats: RtpStats::default(),
            counters,
            srtp_in: None,
            srtp_out: None,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(flow);
                id
            }
            None => {
                self.slots.push(Some(flow));
                self.slots.len() - 1
            }
        };
        self.by_addr.insert(local, id);
        id
    }

    pub fn remove(&mut self, local: SocketAddr) -> Option<FlowId> {
        let id = self.by_addr.remove(&local)?;
        self.slots[id] = None;
        // nothing may keep forwarding into the removed socket
        for f in self.slots.iter_mut().flatten() {
            if f.egress_rtp == Some(id) {
                f.egress_rtp = None;
            }
            if f.egress_rtcp == Some(id) {
                f.egress_rtcp = None;
            }
        }
        self.free.push(id);
        Some(id)
    }

    /// True when forwarding from flow `from` out of flow `via` leaves the payload exactly
    /// as it arrived (no SRTP on either side), so a backend may fix up headers only.
    pub fn passes_payload_through(&self, from: FlowId, via: FlowId) -> bool {
        matches!((self.get(from), self.get(via)), (Some(f), Some(v)) if f.srtp_in.is_none() && v.srtp_out.is_none())
    }

    /// Install or replace a rule. Egress sockets must already be in the table.
    pub fn apply(&mut self, rule: &FlowRule) -> bool {
        let egress_rtp = rule.egress_rtp.and_then(|a| self.lookup(a));
        let egress_rtcp = rule.egress_rtcp.and_then(|a| self.lookup(a));
        let window = self.replay_window;
        let Some(id) = self.lookup(rule.local) else {
            return false;
        };
        let f = self.slots[id].as_mut().unwrap();
        f.kind = rule.kind;
        if f.signalled != rule.signalled_peer || rule.reset_latch {
            f.latched = None;
            *f.counters.latched.lock().unwrap() = None;
        }
        f.signalled = rule.signalled_peer;
        f.egress_rtp = egress_rtp;
        f.egress_rtcp = egress_rtcp;
        f.policy = rule.latch;
        f.clock_rate = rule.clock_rate.max(1);
        // keep a context whose key did not change: its rollover counters and replay
        // windows must survive re-INVITEs
        for (want, have) in [(&rule.srtp_in, &mut f.srtp_in), (&rule.srtp_out, &mut f.srtp_out)] {
            if want.as_ref() != have.as_ref().map(|(k, _)| k) {
                *have = want.as_ref().and_then(|k| {
                    let suite = Suite::from_name(&k.suite)?;
                    let ctx = srtp::Context::new(suite, &k.key, &k.salt).ok()?.with_replay_window(window);
                    Some((k.clone(), Box::new(ctx)))
                });
            }
        }
        true
    }

    /// The forwarding decision for the datagram in `buf[..len]` that arrived on flow `id`
    /// from `src`. SRTP is removed and applied in place, so `buf` needs
    /// [`Suite::MAX_OVERHEAD`] bytes of room after `len`. `now_us` is the relay's clock.
    pub fn process(&mut self, id: FlowId, src: SocketAddr, buf: &mut [u8], len: usize, now_us: u64) -> Verdict {
        let relatch_after_ms = self.relatch_after_ms;
        let Some(Some(f)) = self.slots.get_mut(id) else {
            return Verdict::Drop(DropReason::UnknownFlow);
        };
        let c = &*f.counters;
        let now_ms = now_us / 1000;
        let mut len = len.min(buf.len());
        bump(&c.packets, 1);
        bump(&c.bytes, len as u64);

        // 1. validate (SRTP: authenticate and decrypt first)
        let rtcp = match f.kind {
            FlowKind::Rtcp => true,
            FlowKind::RtpMux => is_rtcp(&buf[..len]),
            FlowKind::Rtp | FlowKind::Udp => false,
        };
        let mut rtp_fields = None;
        if f.kind != FlowKind::Udp {
            if let Some((_, ctx)) = f.srtp_in.as_mut() {
                let r = if rtcp { ctx.unprotect_rtcp(buf, len) } else { ctx.unprotect_rtp(buf, len) };
                match r {
                    Ok(n) => len = n,
                    Err(e) => {
                        let counter = match e {
                            SrtpError::Replayed | SrtpError::TooOld => &c.drop_srtp_replay,
                            SrtpError::Malformed => &c.drop_malformed,
                            _ => &c.drop_srtp_auth,
                        };
                        bump(counter, 1);
                        return Verdict::Drop(DropReason::Srtp(e));
                    }
                }
            }
            let data = &buf[..len];
            let checked = if rtcp {
                RtcpCompound::new_checked(data).map(|_| ())
            } else {
                RtpPacket::new_checked(data).map(|p| rtp_fields = Some((p.ssrc(), p.sequence(), p.timestamp())))
            };
            if let Err(m) = checked {
                bump(&c.drop_malformed, 1);
                return Verdict::Drop(DropReason::Malformed(m));
            }
        }

        // 2. source
        if f.policy.asymmetric {
            if f.policy.strict_source && f.signalled.is_some_and(|s| s != src) {
                bump(&c.drop_strict_source, 1);
                return Verdict::Drop(DropReason::StrictSource);
            }
        } else {
            let expected = if f.trusts_signalled() { f.signalled } else { f.latched };
            match expected {
                Some(p) if p == src => {}
                Some(_) => {
                    let idle = now_ms.saturating_sub(f.last_from_peer_ms) >= relatch_after_ms;
                    if f.policy.strict_source {
                        bump(&c.drop_strict_source, 1);
                        return Verdict::Drop(DropReason::StrictSource);
                    }
                    if !idle || f.trusts_signalled() {
                        bump(&c.drop_foreign_source, 1);
                        return Verdict::Drop(DropReason::ForeignSource);
                    }
                    f.latched = Some(src);
                    bump(&c.relatched, 1);
                    *c.latched.lock().unwrap() = Some(src);
                }
                None => {
                    f.latched = Some(src);
                    *c.latched.lock().unwrap() = Some(src);
                }
            }
        }
        f.last_from_peer_ms = now_ms;
        c.last_packet_ms.store(now_ms.max(1), std::sync::atomic::Ordering::Relaxed);

        // 3. account
        if rtcp {
            bump(&c.rtcp_packets, 1);
            bump(&c.rtcp_bytes, len as u64);
        } else if let Some((ssrc, seq, ts)) = rtp_fields {
            let arrival = now_us * f.clock_rate as u64 / 1_000_000;
            f.stats.update(ssrc, seq, ts, arrival);
            use std::sync::atomic::Ordering::Relaxed;
            c.ssrc.store(ssrc as u64, Relaxed);
            c.lost.store(f.stats.lost() as u64, Relaxed);
            c.jitter_us.store(f.stats.jitter() * 1_000_000 / f.clock_rate as u64, Relaxed);
        }

        // 4. destination: the egress socket's peer, with its SRTP applied
        let via = if rtcp { f.egress_rtcp } else { f.egress_rtp };
        let Some(via) = via else {
            bump(&c.drop_no_destination, 1);
            return Verdict::Drop(DropReason::NoDestination);
        };
        let outcome = match self.slots.get_mut(via).and_then(|e| e.as_mut()) {
            None => Err(DropReason::NoDestination),
            Some(egress) => match (egress.peer(), egress.srtp_out.as_mut()) {
                (None, _) => Err(DropReason::NoDestination),
                (Some(to), None) => Ok(to),
                (Some(to), Some((_, ctx))) => {
                    match if rtcp { ctx.protect_rtcp(buf, len) } else { ctx.protect_rtp(buf, len) } {
                        Ok(n) => {
                            len = n;
                            Ok(to)
                        }
                        Err(e) => Err(DropReason::Srtp(e)),
                    }
                }
            },
        };
        // the ingress flow's counters, looked up again rather than holding a clone of its Arc
        let c = &self.slots[id].as_ref().expect("ingress flow checked above").counters;
        match outcome {
            Ok(to) => {
                bump(&c.forwarded, 1);
                Verdict::Forward { via, to, len }
            }
            Err(r) => {
                bump(if matches!(r, DropReason::Srtp(_)) { &c.drop_send_error } else { &c.drop_no_destination }, 1);
                Verdict::Drop(r)
            }
        }
    }

    /// The send of a forwarded datagram failed.
    pub fn send_failed(&self, id: FlowId) {
        if let Some(Some(f)) = self.slots.get(id) {
            bump(&f.counters.drop_send_error, 1);
            unbump(&f.counters.forwarded, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::rtp::emit_header;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// process() with tail room, as the backends call it.
    fn run(t: &mut FlowTable, id: FlowId, src: SocketAddr, data: &[u8], now_us: u64) -> Verdict {
        let mut b = [0u8; 2048];
        b[..data.len()].copy_from_slice(data);
        t.process(id, src, &mut b, data.len(), now_us)
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut b = vec![0u8; 172];
        emit_header(&mut b, 0, false, seq, seq as u32 * 160, 0x1234);
        b
    }

    /// Caller A (sends to relay :30000), callee B (sends to relay :30002).
    fn table(policy: LatchPolicy) -> (FlowTable, FlowId, FlowId) {
        let mut t = FlowTable::new(2000);
        let fa = t.insert(a("10.0.0.1:30000"), Default::default());
        let fb = t.insert(a("10.0.0.1:30002"), Default::default());
        let rule = |local: &str, peer: &str, egress: &str| FlowRule {
            latch: policy,
            ..FlowRule::rtp(a(local), Some(a(peer)), Some(a(egress)))
        };
        assert!(t.apply(&rule("10.0.0.1:30000", "192.0.2.10:4000", "10.0.0.1:30002")));
        assert!(t.apply(&rule("10.0.0.1:30002", "198.51.100.20:5000", "10.0.0.1:30000")));
        (t, fa, fb)
    }

    #[test]
    fn forwards_to_signalled_then_latched_peer() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        assert_eq!(
            run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000),
            Verdict::Forward { via: fb, to: a("198.51.100.20:5000"), len: 172 }
        );
        // B is behind NAT: its packets come from another address, which latches
        assert_eq!(
            run(&mut t, fb, a("203.0.113.7:6000"), &rtp(1), 2_000),
            Verdict::Forward { via: fa, to: a("192.0.2.10:4000"), len: 172 }
        );
        assert_eq!(
            run(&mut t, fa, a("192.0.2.10:4000"), &rtp(2), 3_000),
            Verdict::Forward { via: fb, to: a("203.0.113.7:6000"), len: 172 }
        );
        assert_eq!(t.get(fb).unwrap().counters.snapshot().latched_peer, Some(a("203.0.113.7:6000")));
    }

    #[test]
    fn garbage_and_spoofing_never_move_the_latch() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        assert!(matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000), Verdict::Forward { .. }));
        for i in 0..1000u64 {
            let now = 1_000 + i * 100; // the real peer keeps talking every 100 µs of test time
            assert_eq!(
                run(&mut t, fa, a("6.6.6.6:666"), b"garbage!!!!!!!!", now),
                Verdict::Drop(DropReason::Malformed(Malformed::BadVersion))
            );
            assert_eq!(run(&mut t, fa, a("6.6.6.6:666"), &rtp(5), now), Verdict::Drop(DropReason::ForeignSource));
            assert!(
                matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(2 + i as u16), now), Verdict::Forward { via, .. } if via == fb)
            );
        }
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.drop_malformed, c.drop_foreign_source, c.forwarded), (1000, 1000, 1001));
        assert_eq!(c.latched_peer, Some(a("192.0.2.10:4000")));
        // garbage before any latch does not latch either
        assert_eq!(
            run(&mut t, fb, a("6.6.6.6:666"), b"\x80", 5_000),
            Verdict::Drop(DropReason::Malformed(Malformed::TooShort))
        );
        assert_eq!(t.get(fb).unwrap().latched, None);
    }

    #[test]
    fn relatch_after_silence_but_not_with_strict_source() {
        let (mut t, fa, _) = table(LatchPolicy::default());
        run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000_000);
        assert_eq!(run(&mut t, fa, a("192.0.2.10:4999"), &rtp(2), 1_500_000), Verdict::Drop(DropReason::ForeignSource));
        // 2 s of silence from the latched peer: a NAT rebinding takes over
        assert!(matches!(run(&mut t, fa, a("192.0.2.10:4999"), &rtp(3), 3_100_000), Verdict::Forward { .. }));
        assert_eq!(t.get(fa).unwrap().latched, Some(a("192.0.2.10:4999")));

        let (mut t, fa, _) = table(LatchPolicy { strict_source: true, ..Default::default() });
        run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000_000);
        assert_eq!(run(&mut t, fa, a("192.0.2.10:4999"), &rtp(3), 9_000_000), Verdict::Drop(DropReason::StrictSource));
    }

    #[test]
    fn signalling_change_resets_latch() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000);
        let mut r = FlowRule::rtp(a("10.0.0.1:30000"), Some(a("192.0.2.99:4000")), Some(a("10.0.0.1:30002")));
        t.apply(&r);
        assert_eq!(t.get(fa).unwrap().latched, None);
        assert!(matches!(run(&mut t, fa, a("192.0.2.99:4000"), &rtp(2), 2_000), Verdict::Forward { .. }));
        r.reset_latch = true;
        t.apply(&r);
        assert_eq!(t.get(fa).unwrap().latched, None);
        // removing the egress socket stops forwarding into it
        t.remove(a("10.0.0.1:30002"));
        assert_eq!(run(&mut t, fa, a("192.0.2.99:4000"), &rtp(3), 3_000), Verdict::Drop(DropReason::NoDestination));
        assert_eq!(run(&mut t, fb, a("192.0.2.99:4000"), &rtp(3), 3_000), Verdict::Drop(DropReason::UnknownFlow));
    }

    #[test]
    fn trust_address_and_asymmetric() {
        let (mut t, fa, _) = table(LatchPolicy { trust_address: true, ..Default::default() });
        assert_eq!(run(&mut t, fa, a("203.0.113.1:1"), &rtp(1), 1_000), Verdict::Drop(DropReason::ForeignSource));
        assert!(matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000), Verdict::Forward { .. }));
        let (mut t, fa, fb) = table(LatchPolicy { asymmetric: true, ..Default::default() });
        assert_eq!(
            run(&mut t, fa, a("203.0.113.1:1"), &rtp(1), 1_000),
            Verdict::Forward { via: fb, to: a("198.51.100.20:5000"), len: 172 }
        );
        assert_eq!(t.get(fa).unwrap().latched, None);
    }

    #[test]
    fn rtcp_mux_demux() {
        let mut t = FlowTable::new(2000);
        let fa = t.insert(a("10.0.0.1:30000"), Default::default());
        let _rtcp_b = t.insert(a("10.0.0.1:30003"), Default::default());
        let fb = t.insert(a("10.0.0.1:30002"), Default::default());
        t.apply(&FlowRule {
            kind: FlowKind::RtpMux,
            egress_rtcp: Some(a("10.0.0.1:30003")),
            ..FlowRule::rtp(a("10.0.0.1:30000"), Some(a("192.0.2.10:4000")), Some(a("10.0.0.1:30002")))
        });
        for (l, p) in [("10.0.0.1:30002", "198.51.100.20:5000"), ("10.0.0.1:30003", "198.51.100.20:5001")] {
            t.apply(&FlowRule::rtp(a(l), Some(a(p)), None));
        }
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
        assert!(
            matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rr, 1), Verdict::Forward { to, .. } if to == a("198.51.100.20:5001"))
        );
        assert!(matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 2), Verdict::Forward { via, .. } if via == fb));
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.rtcp_packets, c.packets), (1, 2));
    }

    fn key(suite: &str, seed: u8) -> SrtpKey {
        let s = Suite::from_name(suite).unwrap();
        SrtpKey { suite: suite.into(), key: vec![seed; s.key_len()], salt: vec![seed ^ 0xff; s.salt_len()] }
    }

    /// A (SRTP, key ka) <-> relay <-> B (plain or SRTP with key kb); returns the table.
    fn srtp_table(
        a_in: Option<SrtpKey>,
        a_out: Option<SrtpKey>,
        b_in: Option<SrtpKey>,
        b_out: Option<SrtpKey>,
    ) -> (FlowTable, FlowId, FlowId) {
        let mut t = FlowTable::new(2000);
        let fa = t.insert(a("10.0.0.1:30000"), Default::default());
        let fb = t.insert(a("10.0.0.1:30002"), Default::default());
        for (l, p, e, i, o) in [
            ("10.0.0.1:30000", "192.0.2.10:4000", "10.0.0.1:30002", a_in, a_out),
            ("10.0.0.1:30002", "198.51.100.20:5000", "10.0.0.1:30000", b_in, b_out),
        ] {
            t.apply(&FlowRule { srtp_in: i, srtp_out: o, ..FlowRule::rtp(a(l), Some(a(p)), Some(a(e))) });
        }
        (t, fa, fb)
    }

    fn ctx(k: &SrtpKey) -> srtp::Context {
        srtp::Context::new(Suite::from_name(&k.suite).unwrap(), &k.key, &k.salt).unwrap()
    }

    #[test]
    fn srtp_to_rtp_and_back_and_rekeying() {
        let ka = key("AES_CM_128_HMAC_SHA1_80", 1);
        let kr = key("AES_CM_128_HMAC_SHA1_80", 2);
        // A speaks SRTP (sends with ka, receives kr), B speaks plain RTP
        let (mut t, fa, fb) = srtp_table(Some(ka.clone()), Some(kr.clone()), None, None);
        let (mut a_tx, mut a_rx) = (ctx(&ka), ctx(&kr));
        let mut b = [0u8; 2048];
        let p = rtp(1);
        b[..172].copy_from_slice(&p);
        let n = a_tx.protect_rtp(&mut b, 172).unwrap();
        match t.process(fa, a("192.0.2.10:4000"), &mut b, n, 1000) {
            Verdict::Forward { via, len, .. } => assert_eq!((via, &b[..len]), (fb, &p[..]), "B gets plain RTP"),
            v => panic!("{v:?}"),
        }
        // B -> A: plain in, SRTP out with the relay's key for A
        b[..172].copy_from_slice(&p);
        let Verdict::Forward { len, .. } = t.process(fb, a("198.51.100.20:5000"), &mut b, 172, 2000) else { panic!() };
        assert_eq!(len, 182);
        let m = a_rx.unprotect_rtp(&mut b, len).unwrap();
        assert_eq!(&b[..m], &p[..]);

        // SRTP on both legs with different keys and suites: re-keyed
        let kb = key("AEAD_AES_128_GCM", 3);
        let kr2 = key("AEAD_AES_128_GCM", 4);
        let (mut t, fa, _) = srtp_table(Some(ka.clone()), Some(kr.clone()), Some(kb.clone()), Some(kr2.clone()));
        let (mut a_tx, mut b_rx) = (ctx(&ka), ctx(&kr2));
        for seq in 0..100u16 {
            let p = rtp(seq);
            b[..172].copy_from_slice(&p);
            let n = a_tx.protect_rtp(&mut b, 172).unwrap();
            let Verdict::Forward { len, .. } = t.process(fa, a("192.0.2.10:4000"), &mut b, n, 1000 + seq as u64) else {
                panic!()
            };
            assert_eq!(len, 172 + 16);
            let m = b_rx.unprotect_rtp(&mut b, len).unwrap();
            assert_eq!(&b[..m], &p[..]);
        }
    }

    #[test]
    fn forged_or_replayed_srtp_is_dropped_and_never_latches() {
        let ka = key("AEAD_AES_256_GCM", 9);
        let (mut t, fa, _) = srtp_table(Some(ka.clone()), None, None, None);
        let mut a_tx = ctx(&ka);
        let mut b = [0u8; 2048];
        // a forged packet (plain RTP, or SRTP under another key) from an attacker first
        b[..172].copy_from_slice(&rtp(1));
        assert!(matches!(
            run(&mut t, fa, a("6.6.6.6:666"), &rtp(1), 10),
            Verdict::Drop(DropReason::Srtp(SrtpError::AuthFailed))
        ));
        let mut other = ctx(&key("AEAD_AES_256_GCM", 10));
        let n = other.protect_rtp(&mut b, 172).unwrap();
        assert!(matches!(
            t.process(fa, a("6.6.6.6:666"), &mut b, n, 20),
            Verdict::Drop(DropReason::Srtp(SrtpError::AuthFailed))
        ));
        assert_eq!(t.get(fa).unwrap().latched, None);
        // the real party latches; its packet replayed later is dropped
        b[..172].copy_from_slice(&rtp(1));
        let n = a_tx.protect_rtp(&mut b, 172).unwrap();
        let good = b[..n].to_vec();
        assert!(matches!(t.process(fa, a("192.0.2.10:4000"), &mut b, n, 30), Verdict::Forward { len: 172, .. }));
        assert_eq!(t.get(fa).unwrap().latched, Some(a("192.0.2.10:4000")));
        assert!(matches!(
            run(&mut t, fa, a("6.6.6.6:666"), &good, 40),
            Verdict::Drop(DropReason::Srtp(SrtpError::Replayed))
        ));
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.drop_srtp_auth, c.drop_srtp_replay, c.forwarded), (2, 1, 1));
    }
}
