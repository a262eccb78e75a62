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
//! 5. Asymmetric mode: never latch; send to the SDP address; accept any source
//!    (strict-source: only the SDP address).

pub mod counters;
pub mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use control::dataplane::{FlowKind, FlowRule, LatchPolicy};

use crate::packet::{is_rtcp, Malformed, RtcpCompound, RtpPacket};
use counters::{bump, SharedCounters};
use stats::RtpStats;

pub type FlowId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed(Malformed),
    StrictSource,
    ForeignSource,
    NoDestination,
    UnknownFlow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the datagram unchanged out of relay socket `via` to `to`.
    Forward {
        via: FlowId,
        to: SocketAddr,
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
    /// Rule installed (a socket opened without one drops everything as no-destination).
    pub has_rule: bool,
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
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new(2000)
    }
}

impl FlowTable {
    pub fn new(relatch_after_ms: u64) -> FlowTable {
        FlowTable { slots: Vec::new(), free: Vec::new(), by_addr: HashMap::new(), relatch_after_ms }
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
            has_rule: false,
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

    /// Install or replace a rule. Egress sockets must already be in the table.
    pub fn apply(&mut self, rule: &FlowRule) -> bool {
        let egress_rtp = rule.egress_rtp.and_then(|a| self.lookup(a));
        let egress_rtcp = rule.egress_rtcp.and_then(|a| self.lookup(a));
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
        f.has_rule = true;
        true
    }

    /// The forwarding decision for one datagram that arrived on flow `id` from `src`.
    /// `now_us` is the relay's monotonic clock.
    pub fn process(&mut self, id: FlowId, src: SocketAddr, data: &[u8], now_us: u64) -> Verdict {
        let relatch_after_ms = self.relatch_after_ms;
        let Some(Some(f)) = self.slots.get_mut(id) else {
            return Verdict::Drop(DropReason::UnknownFlow);
        };
        let c = &*f.counters;
        let now_ms = now_us / 1000;
        bump(&c.packets, 1);
        bump(&c.bytes, data.len() as u64);

        // 1. validate
        let rtcp = match f.kind {
            FlowKind::Rtcp => true,
            FlowKind::RtpMux => is_rtcp(data),
            FlowKind::Rtp | FlowKind::Udp => false,
        };
        let mut rtp_fields = None;
        if f.kind != FlowKind::Udp {
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
            bump(&c.rtcp_bytes, data.len() as u64);
        } else if let Some((ssrc, seq, ts)) = rtp_fields {
            let arrival = now_us * f.clock_rate as u64 / 1_000_000;
            f.stats.update(ssrc, seq, ts, arrival);
            use std::sync::atomic::Ordering::Relaxed;
            c.ssrc.store(ssrc as u64, Relaxed);
            c.lost.store(f.stats.lost() as u64, Relaxed);
            c.jitter_us.store(f.stats.jitter() * 1_000_000 / f.clock_rate as u64, Relaxed);
        }

        // 4. destination: the egress socket's peer
        let via = if rtcp { f.egress_rtcp } else { f.egress_rtp };
        let Some(via) = via else {
            bump(&c.drop_no_destination, 1);
            return Verdict::Drop(DropReason::NoDestination);
        };
        let counters = f.counters.clone();
        match self.slots.get(via).and_then(|e| e.as_ref()).and_then(Flow::peer) {
            Some(to) => {
                bump(&counters.forwarded, 1);
                Verdict::Forward { via, to }
            }
            None => {
                bump(&counters.drop_no_destination, 1);
                Verdict::Drop(DropReason::NoDestination)
            }
        }
    }

    /// The send of a forwarded datagram failed.
    pub fn send_failed(&self, id: FlowId) {
        if let Some(Some(f)) = self.slots.get(id) {
            bump(&f.counters.drop_send_error, 1);
            bump(&f.counters.forwarded, u64::MAX); // undo the forward count (wrapping -1)
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
            local: a(local),
            kind: FlowKind::Rtp,
            signalled_peer: Some(a(peer)),
            egress_rtp: Some(a(egress)),
            egress_rtcp: None,
            latch: policy,
            reset_latch: false,
            clock_rate: 8000,
        };
        assert!(t.apply(&rule("10.0.0.1:30000", "192.0.2.10:4000", "10.0.0.1:30002")));
        assert!(t.apply(&rule("10.0.0.1:30002", "198.51.100.20:5000", "10.0.0.1:30000")));
        (t, fa, fb)
    }

    #[test]
    fn forwards_to_signalled_then_latched_peer() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        assert_eq!(
            t.process(fa, a("192.0.2.10:4000"), &rtp(1), 1_000),
            Verdict::Forward { via: fb, to: a("198.51.100.20:5000") }
        );
        // B is behind NAT: its packets come from another address, which latches
        assert_eq!(
            t.process(fb, a("203.0.113.7:6000"), &rtp(1), 2_000),
            Verdict::Forward { via: fa, to: a("192.0.2.10:4000") }
        );
        assert_eq!(
            t.process(fa, a("192.0.2.10:4000"), &rtp(2), 3_000),
            Verdict::Forward { via: fb, to: a("203.0.113.7:6000") }
        );
        assert_eq!(t.get(fb).unwrap().counters.snapshot().latched_peer, Some(a("203.0.113.7:6000")));
    }

    #[test]
    fn garbage_and_spoofing_never_move_the_latch() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        assert!(matches!(t.process(fa, a("192.0.2.10:4000"), &rtp(1), 1_000), Verdict::Forward { .. }));
        for i in 0..1000u64 {
            let now = 1_000 + i * 100; // the real peer keeps talking every 100 µs of test time
            assert_eq!(
                t.process(fa, a("6.6.6.6:666"), b"garbage!!!!!!!!", now),
                Verdict::Drop(DropReason::Malformed(Malformed::BadVersion))
            );
            assert_eq!(t.process(fa, a("6.6.6.6:666"), &rtp(5), now), Verdict::Drop(DropReason::ForeignSource));
            assert!(
                matches!(t.process(fa, a("192.0.2.10:4000"), &rtp(2 + i as u16), now), Verdict::Forward { via, .. } if via == fb)
            );
        }
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.drop_malformed, c.drop_foreign_source, c.forwarded), (1000, 1000, 1001));
        assert_eq!(c.latched_peer, Some(a("192.0.2.10:4000")));
        // garbage before any latch does not latch either
        assert_eq!(
            t.process(fb, a("6.6.6.6:666"), b"\x80", 5_000),
            Verdict::Drop(DropReason::Malformed(Malformed::TooShort))
        );
        assert_eq!(t.get(fb).unwrap().latched, None);
    }

    #[test]
    fn relatch_after_silence_but_not_with_strict_source() {
        let (mut t, fa, _) = table(LatchPolicy::default());
        t.process(fa, a("192.0.2.10:4000"), &rtp(1), 1_000_000);
        assert_eq!(t.process(fa, a("192.0.2.10:4999"), &rtp(2), 1_500_000), Verdict::Drop(DropReason::ForeignSource));
        // 2 s of silence from the latched peer: a NAT rebinding takes over
        assert!(matches!(t.process(fa, a("192.0.2.10:4999"), &rtp(3), 3_100_000), Verdict::Forward { .. }));
        assert_eq!(t.get(fa).unwrap().latched, Some(a("192.0.2.10:4999")));

        let (mut t, fa, _) = table(LatchPolicy { strict_source: true, ..Default::default() });
        t.process(fa, a("192.0.2.10:4000"), &rtp(1), 1_000_000);
        assert_eq!(t.process(fa, a("192.0.2.10:4999"), &rtp(3), 9_000_000), Verdict::Drop(DropReason::StrictSource));
    }

    #[test]
    fn signalling_change_resets_latch() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        t.process(fa, a("192.0.2.10:4000"), &rtp(1), 1_000);
        let mut r = FlowRule {
            local: a("10.0.0.1:30000"),
            kind: FlowKind::Rtp,
            signalled_peer: Some(a("192.0.2.99:4000")),
            egress_rtp: Some(a("10.0.0.1:30002")),
            egress_rtcp: None,
            latch: LatchPolicy::default(),
            reset_latch: false,
            clock_rate: 8000,
        };
        t.apply(&r);
        assert_eq!(t.get(fa).unwrap().latched, None);
        assert!(matches!(t.process(fa, a("192.0.2.99:4000"), &rtp(2), 2_000), Verdict::Forward { .. }));
        r.reset_latch = true;
        t.apply(&r);
        assert_eq!(t.get(fa).unwrap().latched, None);
        // removing the egress socket stops forwarding into it
        t.remove(a("10.0.0.1:30002"));
        assert_eq!(t.process(fa, a("192.0.2.99:4000"), &rtp(3), 3_000), Verdict::Drop(DropReason::NoDestination));
        assert_eq!(t.process(fb, a("192.0.2.99:4000"), &rtp(3), 3_000), Verdict::Drop(DropReason::UnknownFlow));
    }

    #[test]
    fn trust_address_and_asymmetric() {
        let (mut t, fa, _) = table(LatchPolicy { trust_address: true, ..Default::default() });
        assert_eq!(t.process(fa, a("203.0.113.1:1"), &rtp(1), 1_000), Verdict::Drop(DropReason::ForeignSource));
        assert!(matches!(t.process(fa, a("192.0.2.10:4000"), &rtp(1), 1_000), Verdict::Forward { .. }));
        let (mut t, fa, fb) = table(LatchPolicy { asymmetric: true, ..Default::default() });
        assert_eq!(
            t.process(fa, a("203.0.113.1:1"), &rtp(1), 1_000),
            Verdict::Forward { via: fb, to: a("198.51.100.20:5000") }
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
            local: a("10.0.0.1:30000"),
            kind: FlowKind::RtpMux,
            signalled_peer: Some(a("192.0.2.10:4000")),
            egress_rtp: Some(a("10.0.0.1:30002")),
            egress_rtcp: Some(a("10.0.0.1:30003")),
            latch: LatchPolicy::default(),
            reset_latch: false,
            clock_rate: 8000,
        });
        for (l, p) in [("10.0.0.1:30002", "198.51.100.20:5000"), ("10.0.0.1:30003", "198.51.100.20:5001")] {
            t.apply(&FlowRule {
                local: a(l),
                kind: FlowKind::Rtp,
                signalled_peer: Some(a(p)),
                egress_rtp: None,
                egress_rtcp: None,
                latch: LatchPolicy::default(),
                reset_latch: false,
                clock_rate: 8000,
            });
        }
        let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
        assert!(
            matches!(t.process(fa, a("192.0.2.10:4000"), &rr, 1), Verdict::Forward { to, .. } if to == a("198.51.100.20:5001"))
        );
        assert!(matches!(t.process(fa, a("192.0.2.10:4000"), &rtp(1), 2), Verdict::Forward { via, .. } if via == fb));
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.rtcp_packets, c.packets), (1, 2));
    }
}
