//! The flow table: one entry per relay socket, and the forwarding decision for every
//! datagram that arrives on one. Pure logic over byte slices and explicit time; both
//! backends call [`FlowTable::process`].
//!
//! Latching rules (docs/latching.md states them for operators, with the remaining risk):
//! 1. The media address policy ([`AddressPolicy`]) comes first: a packet whose source it
//!    denies is dropped (`drop_denied_source`) before any crypto and never latches; a
//!    signalled peer it denies is no peer, so nothing is ever sent to a denied address.
//! 2. Only a packet that passes validation (SRTP: authentication) may latch.
//! 3. Before the first latch, a packet from an *expected* address (the signalled peer,
//!    exactly; or the SIP source IP the proxy passed as `received-from`) latches at
//!    once, and so does an authenticated SRTP packet. Any other source latches only
//!    when it has been the one unexpected source for a grace period
//!    (`latch_grace_ms`); meanwhile its packets are dropped as foreign-source. Such a
//!    *weak* latch yields to a later packet from an expected address (or an
//!    authenticated one).
//! 4. Once the source is decided (latched, or pinned by trust-address / asymmetric +
//!    strict-source), a packet from any other source is dropped before any crypto, so a
//!    foreign packet costs no HMAC/GCM and cannot touch SRTP state. SRTP state is
//!    committed only after the source decision passed.
//! 5. The latch moves when signalling changes the endpoint's address (re-offer / answer
//!    with a new address, or reset_latch), or, without strict-source, when the latched
//!    peer has been silent for `relatch_after_ms` and a valid packet arrives from a new
//!    source that is expected, authenticated (SRTP), or continues the stream the flow
//!    was receiving (same SSRC, sequence number a little ahead; RTCP: same sender SSRC).
//! 6. Asymmetric mode: never latch; send to the SDP address; accept any allowed source
//!    (strict-source: only the SDP address).

pub mod counters;
pub mod dtmf;
#[cfg(test)]
mod quality_tests;
pub mod report;
mod state;
pub mod stats;
mod tapping;
pub mod webrtc;

/// Default `--relatch-after`: silence from a latched peer before a proven new source may
/// take its place (rule 5).
pub const DEFAULT_RELATCH_AFTER_MS: u64 = 2000;

/// Default `--latch-grace`: before the first latch, how long an unexpected source must be
/// the only one sending before it latches (rule 3).
pub const DEFAULT_LATCH_GRACE_MS: u64 = 1000;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rules::addrpolicy::{AddressPolicy, Denied};
use rules::dataplane::{ApplyError, FlowKind, FlowRule, KeyDirection, KeyLengthError, LatchPolicy, SrtpKey};
use rules::tap::TapPoint;

use crate::packet::{is_rtcp, Malformed, RtcpCompound, RtpPacket};
use crate::srtp::{self, SrtpError};
use counters::{bump, unbump, SharedCounters};
use stats::RtpStats;
pub use webrtc::Transmit;
use webrtc::{WebRtc, WebRtcIo};

pub type FlowId = usize;

/// A relatch after silence by stream continuity accepts a sequence number at most this
/// far ahead of the highest one seen (RFC 3550 A.1's MAX_DROPOUT).
pub const RELATCH_MAX_SEQ_JUMP: u16 = 3000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed(Malformed),
    StrictSource,
    ForeignSource,
    /// The source is an address the media address policy denies.
    DeniedSource,
    NoDestination,
    /// The only destination known is an address the media address policy denies.
    DeniedDestination,
    UnknownFlow,
    Srtp(SrtpError),
    /// A DTLS-SRTP socket before its handshake gave keys (either direction).
    DtlsPending,
    /// An ICE socket: the source passed no check (or its consent expired).
    IceUnchecked,
    /// An ICE socket: no address with fresh consent to send to.
    NoConsent,
    /// STUN not answered with success, or on a socket without ICE.
    Stun,
    /// DTLS refused (no DTLS on the socket, another source's handshake, a failed one).
    Dtls,
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
    /// The datagram was for the relay itself (STUN, DTLS): nothing to forward; any reply
    /// waits in [`FlowTable::poll_transmit`].
    Consumed,
}

/// Before the first latch: the unexpected sources seen lately.
#[derive(Debug, Clone, Copy)]
struct Grace {
    /// When the first of them was seen (the grace period runs from here).
    start_ms: u64,
    /// The last packet from any of them (a window silent for a grace period is stale).
    last_ms: u64,
    first: SocketAddr,
    /// More than one source sent in this window: none of them latches.
    several: bool,
}

#[derive(Debug)]
pub struct Flow {
    pub local: SocketAddr,
    pub kind: FlowKind,
    /// The signalled peer, if the address policy allows it.
    pub signalled: Option<SocketAddr>,
    pub latched: Option<SocketAddr>,
    /// The SIP source IP of the endpoint (ng received-from), if the policy allows it.
    pub sip_source: Option<IpAddr>,
    last_from_peer_ms: u64,
    pub egress_rtp: Option<FlowId>,
    pub egress_rtcp: Option<FlowId>,
    pub policy: LatchPolicy,
    pub clock_rate: u32,
    pub stats: RtpStats,
    pub counters: Arc<SharedCounters>,
    /// The rule named a signalled peer that the address policy denies.
    signalled_denied: bool,
    /// The latch was made by the grace rule (an unexpected, unauthenticated source).
    weak_latch: bool,
    grace: Option<Grace>,
    /// Asymmetric flows (any source): the last source the address policy allowed.
    allowed_src: Option<SocketAddr>,
    /// Sender SSRC of the last RTCP packet accepted from the peer.
    rtcp_ssrc: Option<u32>,
    /// SRTP from the party on this socket (authenticated and decrypted on arrival).
    srtp_in: Option<(SrtpKey, Box<srtp::Context>)>,
    /// SRTP towards the party on this socket (applied to packets leaving through it).
    srtp_out: Option<(SrtpKey, Box<srtp::Context>)>,
    /// ICE and DTLS of a WebRTC socket (webrtc.rs); None on plain sockets, whose path
    /// pays one test for it.
    webrtc: Option<Box<WebRtc>>,
    /// Recording / live capture of this socket's packets (tapping.rs); None: one test per
    /// tap point.
    tap: Option<rules::tap::Tap>,
    /// A tapped socket that decrypts: the packet as it arrived, kept until it is accepted
    /// (SRTP is decrypted in place). Reused, so tapping allocates nothing per packet here.
    tap_wire: Vec<u8>,
    /// The RFC 4733 payload type the party sends DTMF with (None: not counted).
    telephone_event_pt: Option<u8>,
    dtmf: dtmf::DtmfState,
    /// SRs forwarded out of this socket to its party, for the RTT of its reports.
    sr_sent: report::SrLog,
}

/// The SRTP context of a rule's key, or why there is none.
fn context(k: &SrtpKey, direction: KeyDirection) -> Result<srtp::Context, ApplyError> {
    srtp::Context::from_key(k).map_err(|_| unusable(k, direction))
}

fn unusable(k: &SrtpKey, direction: KeyDirection) -> ApplyError {
    ApplyError::UnusableKey {
        direction,
        why: KeyLengthError { suite: k.suite, key_len: k.key.len(), salt_len: k.salt.len() },
    }
}

impl Flow {
    /// The flow of an open socket that has no rule (yet, or any more): it forwards nothing.
    fn without_rule(local: SocketAddr, counters: Arc<SharedCounters>) -> Flow {
        Flow {
            local,
            kind: FlowKind::Rtp,
            signalled: None,
            latched: None,
            sip_source: None,
            last_from_peer_ms: 0,
            egress_rtp: None,
            egress_rtcp: None,
            policy: LatchPolicy::default(),
            clock_rate: 8000,
            stats: RtpStats::default(),
            counters,
            signalled_denied: false,
            weak_latch: false,
            grace: None,
            allowed_src: None,
            rtcp_ssrc: None,
            srtp_in: None,
            srtp_out: None,
            webrtc: None,
            tap: None,
            tap_wire: Vec::new(),
            telephone_event_pt: None,
            dtmf: Default::default(),
            sr_sent: Default::default(),
        }
    }

    /// Where packets leaving through this socket go.
    pub fn peer(&self) -> Option<SocketAddr> {
        if self.policy.asymmetric {
            return self.signalled;
        }
        self.latched.or(self.signalled)
    }

    /// Where media leaving through this socket goes at `now_us`, or why it goes nowhere.
    #[inline(always)]
    fn destination(&self, now_us: u64) -> Result<SocketAddr, DropReason> {
        if self.webrtc.is_some() {
            return self.webrtc_destination(now_us);
        }
        self.plain_destination()
    }

    /// Applies this socket's outgoing SRTP (if any) to the packet in `buf[..*len]` about
    /// to leave through it towards `to`.
    #[inline(always)]
    fn protect_out(
        &mut self,
        to: SocketAddr,
        rtcp: bool,
        buf: &mut [u8],
        len: &mut usize,
    ) -> Result<SocketAddr, DropReason> {
        let Some((_, ctx)) = self.srtp_out.as_mut() else { return Ok(to) };
        match if rtcp { ctx.protect_rtcp(buf, *len) } else { ctx.protect_rtp(buf, *len) } {
            Ok(n) => {
                *len = n;
                Ok(to)
            }
            Err(e) => Err(DropReason::Srtp(e)),
        }
    }

    /// The latched or signalled peer (non-WebRTC rules).
    #[inline(always)]
    fn plain_destination(&self) -> Result<SocketAddr, DropReason> {
        match self.peer() {
            Some(to) => Ok(to),
            None if self.signalled_denied => Err(DropReason::DeniedDestination),
            None => Err(DropReason::NoDestination),
        }
    }

    /// A WebRTC socket whose DTLS handshake completed (or that has no DTLS): true; a
    /// plain socket: None.
    pub fn webrtc_keyed(&self) -> Option<bool> {
        self.webrtc.as_deref().map(|w| w.dtls.as_ref().is_none_or(|l| l.keyed))
    }

    /// The latch was learnt from an unexpected source after the set-up grace period.
    pub fn weakly_latched(&self) -> bool {
        self.weak_latch
    }

    fn trusts_signalled(&self) -> bool {
        self.policy.trust_address && self.signalled.is_some_and(|s| !s.ip().is_unspecified())
    }

    /// Signalling names `src` as this endpoint: the signalled peer, or the SIP source IP.
    fn expects(&self, src: SocketAddr) -> bool {
        self.signalled == Some(src) || self.sip_source.is_some_and(|ip| ip == src.ip().to_canonical())
    }

    /// A packet from a source other than the owner (or on an asymmetric flow): the
    /// checks that come before any parsing or crypto. Ok(None): accept (asymmetric);
    /// Ok(Some(idle)): a candidate for the latch, decided after validation; Err: drop
    /// (counted here). Off the owner's path, so kept out of line.
    #[cold]
    #[inline(never)]
    fn screen_source(
        &mut self,
        policy: &AddressPolicy,
        src: SocketAddr,
        now_ms: u64,
        relatch_after_ms: u64,
    ) -> Result<Option<bool>, DropReason> {
        let c = &*self.counters;
        if self.policy.asymmetric {
            if let Some(s) = self.signalled.filter(|_| self.policy.strict_source) {
                if s == src {
                    return Ok(None);
                }
                if policy.check(src).is_err() {
                    bump(&c.drop_denied_source, 1);
                    return Err(DropReason::DeniedSource);
                }
                bump(&c.drop_strict_source, 1);
                return Err(DropReason::StrictSource);
            }
            if self.allowed_src != Some(src) {
                if policy.check(src).is_err() {
                    bump(&c.drop_denied_source, 1);
                    return Err(DropReason::DeniedSource);
                }
                self.allowed_src = Some(src);
            }
            return Ok(None);
        }
        if policy.check(src).is_err() {
            bump(&c.drop_denied_source, 1);
            return Err(DropReason::DeniedSource);
        }
        let trusted = self.trusts_signalled();
        let idle = now_ms.saturating_sub(self.last_from_peer_ms) >= relatch_after_ms;
        if trusted || self.latched.is_some() {
            if self.policy.strict_source {
                bump(&c.drop_strict_source, 1);
                return Err(DropReason::StrictSource);
            }
            // a strong latch is owned until silence; a weak one yields to an expected or
            // authenticated source (decided in may_latch)
            if trusted || !(idle || self.weak_latch) {
                bump(&c.drop_foreign_source, 1);
                return Err(DropReason::ForeignSource);
            }
        }
        Ok(Some(idle))
    }

    /// May `src`, which passed validation (and authentication when `authenticated`),
    /// become the owner? Some((first latch, weak latch)) if so.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn may_latch(
        &mut self,
        src: SocketAddr,
        idle: bool,
        authenticated: bool,
        rtp: Option<(u32, u16, u32)>,
        rtcp_ssrc: Option<u32>,
        now_ms: u64,
        grace_ms: u64,
    ) -> Option<(bool, bool)> {
        let expected = self.expects(src);
        let first = self.latched.is_none();
        let ok = expected
            || authenticated
            || if first {
                grace_passes(&mut self.grace, src, now_ms, grace_ms)
            } else {
                idle && self.continues_stream(rtp, rtcp_ssrc)
            };
        ok.then_some((first, !(expected || authenticated) && (first || self.weak_latch)))
    }

    /// The packet continues the stream this flow was receiving: RTP with the same SSRC
    /// and a sequence number a little ahead of the highest seen; RTCP from the same
    /// sender SSRC (the last RTCP sender's, or the RTP stream's).
    fn continues_stream(&self, rtp: Option<(u32, u16, u32)>, rtcp_ssrc: Option<u32>) -> bool {
        let stream = self.stats.highest();
        if let Some((ssrc, seq, _)) = rtp {
            return stream
                .is_some_and(|(s, max)| s == ssrc && (1..=RELATCH_MAX_SEQ_JUMP).contains(&seq.wrapping_sub(max)));
        }
        rtcp_ssrc.is_some_and(|s| self.rtcp_ssrc == Some(s) || stream.is_some_and(|(x, _)| x == s))
    }
}

/// SSRC, sequence number and timestamp of an RTP header that passed validation (read
/// here, always inlined: this is on every packet's path).
#[inline(always)]
fn rtp_header_fields(data: &[u8]) -> Option<(u32, u16, u32)> {
    let h = data.first_chunk::<12>()?;
    Some((
        u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        u16::from_be_bytes([h[2], h[3]]),
        u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
    ))
}

/// The set-up grace rule for an unexpected source before the first latch: true when
/// `src` has been the only unexpected source for `grace_ms`.
fn grace_passes(g: &mut Option<Grace>, src: SocketAddr, now_ms: u64, grace_ms: u64) -> bool {
    match g {
        Some(w) if now_ms.saturating_sub(w.last_ms) < grace_ms => {
            w.last_ms = now_ms;
            w.several |= w.first != src;
            if now_ms.saturating_sub(w.start_ms) < grace_ms {
                return false;
            }
            if w.several {
                // several sources wanted this socket: none of them gets it; start over
                *w = Grace { start_ms: now_ms, last_ms: now_ms, first: src, several: false };
                return false;
            }
            true
        }
        _ => {
            // the first unexpected source, or the old window went silent for a grace
            // period (a stray packet long ago does not count)
            *g = Some(Grace { start_ms: now_ms, last_ms: now_ms, first: src, several: false });
            grace_ms == 0
        }
    }
}

/// How a backend's flow tables are made: each setting defined once (relayd's
/// configuration fills it; `Default` is what the tests use).
#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// Silence from a latched peer before a proven new source may take over.
    pub relatch_after_ms: u64,
    /// Before the first latch, how long an unexpected source must be the only one.
    pub latch_grace_ms: u64,
    /// SRTP/SRTCP replay window in packets.
    pub replay_window: u32,
    /// Which remote addresses media may come from or go to.
    pub policy: Arc<AddressPolicy>,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            relatch_after_ms: DEFAULT_RELATCH_AFTER_MS,
            latch_grace_ms: DEFAULT_LATCH_GRACE_MS,
            replay_window: srtp::DEFAULT_REPLAY_WINDOW,
            policy: Arc::new(AddressPolicy::permissive()),
        }
    }
}

impl FlowSettings {
    pub fn table(&self) -> FlowTable {
        FlowTable::new(self.relatch_after_ms)
            .with_latch_grace(self.latch_grace_ms)
            .with_replay_window(self.replay_window)
            .with_policy(self.policy.clone())
    }
}

pub struct FlowTable {
    slots: Vec<Option<Flow>>,
    free: Vec<FlowId>,
    by_addr: HashMap<SocketAddr, FlowId>,
    pub relatch_after_ms: u64,
    /// Before the first latch, how long an unexpected source must be the only one
    /// sending before it latches (docs/latching.md).
    pub latch_grace_ms: u64,
    /// SRTP replay window of the contexts this table creates.
    pub replay_window: u32,
    /// Which remote addresses media may come from or go to.
    policy: Arc<AddressPolicy>,
    /// Replies and DTLS timers of the WebRTC sockets.
    io: WebRtcIo,
}

impl Default for FlowTable {
    fn default() -> Self {
        Self::new(DEFAULT_RELATCH_AFTER_MS)
    }
}

impl FlowTable {
    /// A table with the permissive address policy (see [`with_policy`](Self::with_policy))
    /// and the default set-up grace period.
    pub fn new(relatch_after_ms: u64) -> FlowTable {
        FlowTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            relatch_after_ms,
            latch_grace_ms: DEFAULT_LATCH_GRACE_MS,
            replay_window: srtp::DEFAULT_REPLAY_WINDOW,
            policy: Arc::new(AddressPolicy::permissive()),
            io: WebRtcIo::default(),
        }
    }

    pub fn with_replay_window(mut self, packets: u32) -> FlowTable {
        self.replay_window = packets;
        self
    }

    /// The media address policy: packets from denied sources are dropped, denied
    /// addresses are never latched and never sent to. Set it before applying rules.
    pub fn with_policy(mut self, policy: Arc<AddressPolicy>) -> FlowTable {
        self.policy = policy;
        self
    }

    /// The set-up grace period for unexpected sources (0: the first valid packet
    /// latches, as before).
    pub fn with_latch_grace(mut self, ms: u64) -> FlowTable {
        self.latch_grace_ms = ms;
        self
    }

    pub fn address_policy(&self) -> &AddressPolicy {
        &self.policy
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
        let flow = Flow::without_rule(local, counters);
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
        self.detach(id);
        self.io.timers.retain(|t| *t != id);
        self.free.push(id);
        Some(id)
    }

    /// Nothing may keep forwarding into flow `id` (removed, or its rule refused).
    fn detach(&mut self, id: FlowId) {
        for f in self.slots.iter_mut().flatten() {
            if f.egress_rtp == Some(id) {
                f.egress_rtp = None;
            }
            if f.egress_rtcp == Some(id) {
                f.egress_rtcp = None;
            }
            if let Some(w) = f.webrtc.as_deref_mut() {
                w.siblings.retain(|s| *s != id);
            }
        }
    }

    /// True when forwarding from flow `from` out of flow `via` leaves the payload exactly
    /// as it arrived (no SRTP on either side), so a backend may fix up headers only.
    pub fn passes_payload_through(&self, from: FlowId, via: FlowId) -> bool {
        matches!((self.get(from), self.get(via)), (Some(f), Some(v)) if f.srtp_in.is_none() && v.srtp_out.is_none())
    }

    /// Apply the rule of an open socket. A rule with an SRTP key that cannot build a
    /// context is refused, and then the flow forwards nothing and nothing is forwarded
    /// into it (its old rule is gone too) until a rule applies: never media in plain that
    /// signalling agreed to protect.
    pub fn apply(&mut self, rule: &FlowRule) -> Result<(), ApplyError> {
        let egress_rtp = rule.egress_rtp.and_then(|a| self.lookup(a));
        let egress_rtcp = rule.egress_rtcp.and_then(|a| self.lookup(a));
        // (an ICE group only: a rule without ICE has no siblings to send through)
        let siblings: Vec<FlowId> = match rule.ice {
            Some(_) => rule.ice_siblings.iter().filter(|a| **a != rule.local).filter_map(|a| self.lookup(*a)).collect(),
            None => Vec::new(),
        };
        let window = self.replay_window;
        let Some(id) = self.lookup(rule.local) else {
            return Err(ApplyError::NotOpen(rule.local));
        };
        let Some(f) = self.slots[id].as_ref() else {
            return Err(ApplyError::NotOpen(rule.local));
        };
        // keep a context whose key did not change: its rollover counters and replay
        // windows must survive re-INVITEs; build the new ones before anything changes
        let fresh = |want: &Option<SrtpKey>, have: &Option<(SrtpKey, Box<srtp::Context>)>, direction| match want {
            _ if want.as_ref() == have.as_ref().map(|(k, _)| k) => Ok(None),
            None => Ok(Some(None)),
            Some(k) => context(k, direction).map(|c| Some(Some((k.clone(), Box::new(c.with_replay_window(window)))))),
        };
        // a DTLS socket's keys come from its handshake (webrtc.rs), not from the rule
        let keys_from_rule = |want, have, d| if rule.dtls.is_some() { Ok(None) } else { fresh(want, have, d) };
        let (srtp_in, srtp_out) = match (
            keys_from_rule(&rule.srtp_in, &f.srtp_in, KeyDirection::In),
            keys_from_rule(&rule.srtp_out, &f.srtp_out, KeyDirection::Out),
        ) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                if let Some(f) = self.slots[id].as_mut() {
                    *f = Flow::without_rule(f.local, f.counters.clone());
                    *f.counters.latched.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                self.detach(id);
                return Err(e);
            }
        };
        let checked = rule.signalled_peer.map(|p| (p, self.policy.check(p)));
        let signalled = checked.and_then(|(p, r)| r.is_ok().then_some(p));
        // on hold (c=0.0.0.0) or disabled (port 0) there is simply no peer
        let signalled_denied =
            matches!(checked, Some((_, Err(d))) if !matches!(d, Denied::Unspecified | Denied::PortZero));
        let sip_source = rule.sip_source.filter(|ip| self.policy.check_ip(*ip).is_ok()).map(|ip| ip.to_canonical());
        let Some(f) = self.slots[id].as_mut() else { return Err(ApplyError::NotOpen(rule.local)) };
        f.kind = rule.kind;
        if f.signalled != signalled || rule.reset_latch {
            f.latched = None;
            f.weak_latch = false;
            f.grace = None;
            *f.counters.latched.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        // an unchanged signalled peer (an answer or re-INVITE confirming the address)
        // keeps the latch
        f.signalled = signalled;
        f.signalled_denied = signalled_denied;
        f.sip_source = sip_source;
        f.egress_rtp = egress_rtp;
        f.egress_rtcp = egress_rtcp;
        f.policy = rule.latch;
        f.clock_rate = rule.clock_rate.max(1);
        f.tap = rule.tap.clone();
        if f.tap.is_none() {
            f.tap_wire = Vec::new();
        }
        f.telephone_event_pt = rule.telephone_event_pt;
        let webrtc = WebRtc::apply(&mut f.webrtc, rule);
        if let Some(w) = f.webrtc.as_deref_mut() {
            w.siblings = siblings;
        }
        if webrtc.drop_keys {
            f.srtp_in = None;
            f.srtp_out = None;
        }
        if webrtc.kick {
            if let Some(link) = f.webrtc.as_deref_mut().and_then(|w| w.dtls.as_mut()) {
                self.io.watch(link, id);
            }
        }
        if let Some(c) = srtp_in {
            f.srtp_in = c;
        }
        if let Some(c) = srtp_out {
            f.srtp_out = c;
        }
        Ok(())
    }

    /// What [`apply`](Self::apply) would refuse in the rule itself (not in the table): an
    /// SRTP key that cannot build a context. Checked without deriving keys, so a backend
    /// whose workers apply rules later can answer the control plane at once.
    pub fn check_rule(rule: &FlowRule) -> Result<(), ApplyError> {
        for (direction, key) in [(KeyDirection::In, &rule.srtp_in), (KeyDirection::Out, &rule.srtp_out)] {
            if let Some(k) = key {
                srtp::Context::check_key(k.suite, &k.key, &k.salt).map_err(|_| unusable(k, direction))?;
            }
        }
        Ok(())
    }

    /// The forwarding decision for the datagram in `buf[..len]` that arrived on flow `id`
    /// from `src`. SRTP is removed and applied in place, so `buf` needs
    /// [`srtp::Suite::MAX_OVERHEAD`] bytes of room after `len`. `now_us` is the relay's clock.
    pub fn process(&mut self, id: FlowId, src: SocketAddr, buf: &mut [u8], len: usize, now_us: u64) -> Verdict {
        let relatch_after_ms = self.relatch_after_ms;
        let grace_ms = self.latch_grace_ms;
        let policy = &*self.policy;
        let Some(Some(f)) = self.slots.get_mut(id) else {
            return Verdict::Drop(DropReason::UnknownFlow);
        };
        let now_ms = now_us / 1000;
        let mut len = len.min(buf.len());
        bump(&f.counters.packets, 1);
        bump(&f.counters.bytes, len as u64);

        // 0. a WebRTC socket: STUN and DTLS stop here; media must pass the ICE and DTLS
        // rules (webrtc.rs). On ICE sockets the check stands in for latching.
        let mut ice_checked = false;
        if f.webrtc.is_some() {
            self.io.now_us = now_us;
            match f.webrtc_ingress(id, src, &buf[..len], now_us, &mut self.io, self.replay_window, policy) {
                Ok(checked) => ice_checked = checked,
                Err(v) => return v,
            }
        }

        // 1. the source, before any crypto. The owner (latched or pinned peer) passed the
        // address policy when it became the owner: its packets pay one comparison.
        // `learn`: another source that may become the owner, decided after validation
        // (Some(idle): the owner has been silent for relatch_after_ms).
        let owner = if f.trusts_signalled() { f.signalled } else { f.latched };
        let learn = if ice_checked || (!f.policy.asymmetric && owner == Some(src)) {
            None
        } else {
            match f.screen_source(policy, src, now_ms, relatch_after_ms) {
                Ok(learn) => learn,
                Err(r) => return Verdict::Drop(r),
            }
        };
        // a tapped socket: the packet as it arrived is handed to the tap only once it is
        // accepted — a recording or capture never holds a packet the relay refused (a
        // stranger's, a replay, a forgery). SRTP is decrypted in place below, so a socket
        // that decrypts keeps the wire bytes until then. Untapped sockets: one test.
        if f.tap.is_some() && f.srtp_in.is_some() {
            f.tap_wire.clear();
            f.tap_wire.extend_from_slice(&buf[..len]);
        }

        // 2. validate (SRTP: authenticate and decrypt first, committing nothing yet)
        let rtcp = match f.kind {
            FlowKind::Rtcp => true,
            FlowKind::RtpMux => is_rtcp(&buf[..len]),
            FlowKind::Rtp | FlowKind::Udp => false,
        };
        let mut rtp_fields = None;
        let mut rtcp_ssrc = None;
        let mut accepted = None;
        if f.kind != FlowKind::Udp {
            let c = &*f.counters;
            if let Some((_, ctx)) = f.srtp_in.as_mut() {
                let r = if rtcp { ctx.open_rtcp(buf, len) } else { ctx.open_rtp(buf, len) };
                match r {
                    Ok((n, a)) => {
                        len = n;
                        accepted = Some(a);
                    }
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
                RtcpCompound::new_checked(data).map(|p| rtcp_ssrc = p.sender_ssrc())
            } else {
                RtpPacket::new_checked(data).map(|_| rtp_fields = rtp_header_fields(data))
            };
            if let Err(m) = checked {
                bump(&c.drop_malformed, 1);
                return Verdict::Drop(DropReason::Malformed(m));
            }
        }

        // 3. latch: may this source become the owner?
        let latch = match learn {
            None => None,
            Some(idle) => match f.may_latch(src, idle, accepted.is_some(), rtp_fields, rtcp_ssrc, now_ms, grace_ms) {
                Some(l) => Some(l),
                None => {
                    // nothing committed: an SRTP context is as it was
                    bump(&f.counters.drop_foreign_source, 1);
                    return Verdict::Drop(DropReason::ForeignSource);
                }
            },
        };
        let c = &*f.counters;
        // 4. the packet is accepted: SRTP state changes now, and only now
        let mut decrypted = false;
        if let (Some(a), Some((_, ctx))) = (accepted, f.srtp_in.as_mut()) {
            if !ctx.commit(a) {
                // another copy was committed since it was opened
                bump(&c.drop_srtp_replay, 1);
                return Verdict::Drop(DropReason::Srtp(SrtpError::Replayed));
            }
            decrypted = true;
        }
        if let Some(tap) = f.tap.as_ref() {
            // a socket that does not decrypt left the buffer as it arrived
            let wire = if decrypted { &f.tap_wire[..] } else { &buf[..len] };
            tapping::copy(tap, f.local, src, f.local, TapPoint::Received, now_us, wire);
            if decrypted {
                tapping::copy(tap, f.local, src, f.local, TapPoint::Plain, now_us, &buf[..len]);
            }
        }
        if let Some((first, weak)) = latch {
            f.weak_latch = weak;
            if !first {
                bump(&c.relatched, 1);
            }
            f.latched = Some(src);
            f.grace = None;
            *c.latched.lock().unwrap_or_else(|e| e.into_inner()) = Some(src);
        }
        f.last_from_peer_ms = now_ms;

        // 5. account
        let mut sr_forwarded = None;
        if rtcp {
            bump(&c.rtcp_packets, 1);
            bump(&c.rtcp_bytes, len as u64);
            if rtcp_ssrc.is_some() {
                f.rtcp_ssrc = rtcp_ssrc;
            }
            // the party's reports, read in plain (after SRTCP), from the accepted source — not
            // from one only the grace rule latched (a stranger who outwaited a silent party)
            if !f.weak_latch {
                sr_forwarded = report::read(c, &f.sr_sent, f.clock_rate, &buf[..len], now_us);
            }
        } else if let Some((ssrc, seq, ts)) = rtp_fields {
            if f.telephone_event_pt.is_some_and(|pt| buf[1] & 0x7f == pt) {
                // RFC 4733: one timestamp per event, so loss only (and the event counted)
                f.stats.update_sequence_only(ssrc, seq);
                let span = RtpPacket::new_checked(&buf[..len]).map(|p| (p.header_len(), p.payload().len()));
                let payload = span.map(|(h, n)| &buf[h..h + n]).unwrap_or_default();
                if let Some(code) = f.dtmf.on_packet(ts, payload) {
                    if !f.weak_latch {
                        report::dtmf_counted(c, code);
                    }
                }
            } else {
                let arrival = now_us * f.clock_rate as u64 / 1_000_000;
                f.stats.update(ssrc, seq, ts, arrival);
            }
            use std::sync::atomic::Ordering::Relaxed;
            c.ssrc.store(ssrc as u64, Relaxed);
            c.lost.store(f.stats.lost() as u64, Relaxed);
            c.jitter_us.store(f.stats.jitter() * 1_000_000 / f.clock_rate as u64, Relaxed);
        }

        // 6. destination: the egress socket's peer (latched or signalled, so it passed
        // the address policy), with its SRTP applied
        let via = if rtcp { f.egress_rtcp } else { f.egress_rtp };
        let Some(via) = via else {
            bump(&c.drop_no_destination, 1);
            return Verdict::Drop(DropReason::NoDestination);
        };
        let outcome = match self.slots.get_mut(via).and_then(|e| e.as_mut()) {
            None => Err(DropReason::NoDestination),
            Some(egress) => match (egress.destination(now_us), egress.srtp_out.as_mut()) {
                (Err(r), _) => Err(r),
                (Ok(to), None) => Ok(to),
                (Ok(to), Some((_, ctx))) => {
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
        // a socket of an ICE group sends nothing itself: the group picks the socket
        // (webrtc.rs rule 8), off the plain path, which only ever sees Ok here
        let (via, outcome) = match outcome {
            Err(_) if webrtc::in_group(&self.slots, via) => {
                match webrtc::send_via_group(&mut self.slots, via, rtcp, buf, len, now_us) {
                    (v, Ok((to, n))) => {
                        len = n;
                        (v, Ok(to))
                    }
                    (v, Err(r)) => (v, Err(r)),
                }
            }
            o => (via, o),
        };
        // an SR that leaves towards the egress party: when, for the RTT of its reports
        if let (Some(ntp), Ok(_)) = (sr_forwarded, &outcome) {
            if let Some(Some(v)) = self.slots.get_mut(via) {
                v.sr_sent.record(ntp, now_us);
            }
        }
        // the ingress flow's counters, looked up again rather than holding a clone of its Arc
        let Some(Some(f)) = self.slots.get(id) else {
            return Verdict::Drop(DropReason::UnknownFlow);
        };
        let c = &f.counters;
        match outcome {
            Ok(to) => {
                if let Some(tap) = f.tap.as_ref() {
                    let from = self.slots.get(via).and_then(|v| v.as_ref()).map_or(f.local, |v| v.local);
                    tapping::copy(tap, f.local, from, to, TapPoint::Sent, now_us, &buf[..len]);
                }
                bump(&c.forwarded, 1);
                // liveness (--timeout) counts only accepted packets that were forwarded: a
                // peer's packets with nowhere to go, or anything refused, keep no call alive
                c.last_packet_ms.store(now_ms.max(1), std::sync::atomic::Ordering::Relaxed);
                Verdict::Forward { via, to, len }
            }
            Err(r) => {
                let counter = match r {
                    // a bug of ours, not the packet's
                    DropReason::Srtp(SrtpError::BufferTooSmall | SrtpError::Malformed | SrtpError::BadKey) => {
                        &c.drop_send_error
                    }
                    // the index was used already (IndexReused) or is used up: never
                    // encrypt twice under one keystream / nonce
                    DropReason::Srtp(_) => &c.drop_srtp_index,
                    DropReason::DeniedDestination => &c.drop_denied_destination,
                    DropReason::DtlsPending => &c.drop_dtls_pending,
                    DropReason::NoConsent => &c.drop_no_consent,
                    _ => &c.drop_no_destination,
                };
                bump(counter, 1);
                Verdict::Drop(r)
            }
        }
    }

    /// The next datagram the relay itself sends (STUN answers, DTLS flights), in order.
    /// Backends drain this after each batch and after `handle_timeout`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.io.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due (relay microseconds):
    /// DTLS retransmissions, handshake expiry, an active handshake to start.
    pub fn poll_timeout(&self) -> Option<u64> {
        let now = self.io.now_us;
        self.io.timers.iter().filter_map(|id| self.get(*id)?.webrtc_deadline(now)).min()
    }

    /// Runs the DTLS timers that are due at `now_us` (and work a rule left: starting an
    /// active handshake, keys after a fingerprint arrived). Cheap when nothing is due.
    pub fn handle_timeout(&mut self, now_us: u64) {
        self.io.now_us = now_us;
        let window = self.replay_window;
        let mut i = 0;
        while i < self.io.timers.len() {
            let id = self.io.timers[i];
            let due = self.slots.get(id).and_then(|f| f.as_ref()).and_then(|f| f.webrtc_deadline(now_us));
            let keep = match (due, self.slots.get_mut(id).and_then(|f| f.as_mut())) {
                (Some(t), Some(f)) if t <= now_us => f.webrtc_timeout(id, now_us, &mut self.io, window),
                (Some(_), Some(_)) => true,
                _ => false,
            };
            if keep {
                i += 1;
            } else {
                self.io.timers.swap_remove(i);
                if let Some(Some(f)) = self.slots.get_mut(id) {
                    f.webrtc_unwatch();
                }
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
        t.apply(&rule("10.0.0.1:30000", "192.0.2.10:4000", "10.0.0.1:30002")).unwrap();
        t.apply(&rule("10.0.0.1:30002", "198.51.100.20:5000", "10.0.0.1:30000")).unwrap();
        (t, fa, fb)
    }

    #[test]
    fn only_forwarded_packets_keep_a_call_alive() {
        let mut t = FlowTable::new(2000);
        let f = t.insert(a("10.0.0.1:30000"), Default::default());
        t.apply(&FlowRule::rtp(a("10.0.0.1:30000"), Some(a("192.0.2.10:4000")), None)).unwrap();
        // accepted (latched) but nowhere to go: no liveness
        assert_eq!(run(&mut t, f, a("192.0.2.10:4000"), &rtp(1), 5_000_000), Verdict::Drop(DropReason::NoDestination));
        assert_eq!(t.get(f).unwrap().counters.snapshot().last_packet_ms, 0);
        let (mut t, fa, _) = table(LatchPolicy::default());
        assert!(matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 7_000_000), Verdict::Forward { .. }));
        assert_eq!(t.get(fa).unwrap().counters.snapshot().last_packet_ms, 7_000);
        // a foreign packet does not refresh it
        run(&mut t, fa, a("203.0.113.66:4000"), &rtp(2), 8_000_000);
        assert_eq!(t.get(fa).unwrap().counters.snapshot().last_packet_ms, 7_000);
    }

    #[test]
    fn forwards_to_signalled_then_latched_peer() {
        let (mut t, fa, fb) = table(LatchPolicy::default());
        assert_eq!(
            run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000),
            Verdict::Forward { via: fb, to: a("198.51.100.20:5000"), len: 172 }
        );
        // B is behind NAT: its packets come from another address, which latches once it
        // has been the only unexpected source for the grace period (1 s)
        assert_eq!(run(&mut t, fb, a("203.0.113.7:6000"), &rtp(1), 2_000), Verdict::Drop(DropReason::ForeignSource));
        assert_eq!(
            run(&mut t, fa, a("192.0.2.10:4000"), &rtp(2), 3_000),
            Verdict::Forward { via: fb, to: a("198.51.100.20:5000"), len: 172 }
        );
        assert_eq!(run(&mut t, fb, a("203.0.113.7:6000"), &rtp(2), 500_000), Verdict::Drop(DropReason::ForeignSource));
        assert_eq!(
            run(&mut t, fb, a("203.0.113.7:6000"), &rtp(3), 1_002_000),
            Verdict::Forward { via: fa, to: a("192.0.2.10:4000"), len: 172 }
        );
        assert!(t.get(fb).unwrap().weakly_latched());
        assert_eq!(
            run(&mut t, fa, a("192.0.2.10:4000"), &rtp(3), 1_003_000),
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
                                       // once latched, the source is checked first: foreign garbage costs no parsing
            assert_eq!(
                run(&mut t, fa, a("6.6.6.6:666"), b"garbage!!!!!!!!", now),
                Verdict::Drop(DropReason::ForeignSource)
            );
            assert_eq!(
                run(&mut t, fa, a("192.0.2.10:4000"), b"garbage!!!!!!!!", now),
                Verdict::Drop(DropReason::Malformed(Malformed::BadVersion))
            );
            assert_eq!(run(&mut t, fa, a("6.6.6.6:666"), &rtp(5), now), Verdict::Drop(DropReason::ForeignSource));
            assert!(
                matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(2 + i as u16), now), Verdict::Forward { via, .. } if via == fb)
            );
        }
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.drop_malformed, c.drop_foreign_source, c.forwarded), (1000, 2000, 1001));
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
        t.apply(&r).unwrap();
        assert_eq!(t.get(fa).unwrap().latched, None);
        assert!(matches!(run(&mut t, fa, a("192.0.2.99:4000"), &rtp(2), 2_000), Verdict::Forward { .. }));
        r.reset_latch = true;
        t.apply(&r).unwrap();
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
        })
        .unwrap();
        for (l, p) in [("10.0.0.1:30002", "198.51.100.20:5000"), ("10.0.0.1:30003", "198.51.100.20:5001")] {
            t.apply(&FlowRule::rtp(a(l), Some(a(p)), None)).unwrap();
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
        let s = srtp::Suite::from_name(suite).unwrap();
        SrtpKey::new(s, &vec![seed; s.key_len()], &vec![seed ^ 0xff; s.salt_len()]).unwrap()
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
            t.apply(&FlowRule { srtp_in: i, srtp_out: o, ..FlowRule::rtp(a(l), Some(a(p)), Some(a(e))) }).unwrap();
        }
        (t, fa, fb)
    }

    fn ctx(k: &SrtpKey) -> srtp::Context {
        srtp::Context::new(k.suite, &k.key, &k.salt).unwrap()
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
    fn a_rule_with_an_unusable_key_is_refused_and_nothing_is_forwarded_in_plain() {
        let (la, lb) = ("10.0.0.1:30000", "10.0.0.1:30002");
        let (pa, pb) = (a("192.0.2.10:4000"), a("198.51.100.20:5000"));
        let good = key("AES_CM_128_HMAC_SHA1_80", 1);
        let bad = SrtpKey { suite: good.suite, key: vec![1; 15], salt: good.salt.clone(), mki: None };
        let rule_b = |out: SrtpKey| FlowRule { srtp_out: Some(out), ..FlowRule::rtp(a(lb), Some(pb), Some(a(la))) };
        let expected = ApplyError::UnusableKey {
            direction: KeyDirection::Out,
            why: KeyLengthError { suite: srtp::Suite::AesCm128HmacSha1_80, key_len: 15, salt_len: 14 },
        };
        assert_eq!(FlowTable::check_rule(&rule_b(bad.clone())), Err(expected.clone()));
        assert_eq!(FlowTable::check_rule(&rule_b(good.clone())), Ok(()));
        // A plain, B to be protected: B's rule is refused, so A's media must not leave B
        let (mut t, fa, fb) = srtp_table(None, None, None, Some(good.clone()));
        let mut rx = ctx(&good);
        let mut b = [0u8; 2048];
        b[..172].copy_from_slice(&rtp(1));
        assert!(matches!(t.process(fa, pa, &mut b, 172, 1_000), Verdict::Forward { via, len: 182, .. } if via == fb));
        assert!(rx.unprotect_rtp(&mut b, 182).is_ok());
        assert_eq!(t.apply(&rule_b(bad.clone())), Err(expected));
        assert_eq!(run(&mut t, fa, pa, &rtp(2), 2_000), Verdict::Drop(DropReason::NoDestination));
        // B has no rule left at all (no peer, no egress)
        assert!(matches!(run(&mut t, fb, pb, &rtp(1), 2_000), Verdict::Drop(_)));
        assert_eq!((t.get(fb).unwrap().signalled, t.get(fb).unwrap().egress_rtp), (None, None));
        // a rule that applies restores forwarding (both sides apply theirs again)
        t.apply(&rule_b(good.clone())).unwrap();
        t.apply(&FlowRule::rtp(a(la), Some(pa), Some(a(lb)))).unwrap();
        b[..172].copy_from_slice(&rtp(3));
        assert!(matches!(t.process(fa, pa, &mut b, 172, 3_000), Verdict::Forward { len: 182, .. }));
        // a socket that is not open
        let other = FlowRule::rtp(a("10.0.0.1:30010"), None, None);
        assert_eq!(t.apply(&other), Err(ApplyError::NotOpen(a("10.0.0.1:30010"))));
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
            run(&mut t, fa, a("192.0.2.10:4000"), &good, 40),
            Verdict::Drop(DropReason::Srtp(SrtpError::Replayed))
        ));
        // from another source it is not even looked at: the source is checked first
        assert_eq!(run(&mut t, fa, a("6.6.6.6:666"), &good, 50), Verdict::Drop(DropReason::ForeignSource));
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.drop_srtp_auth, c.drop_srtp_replay, c.drop_foreign_source, c.forwarded), (2, 1, 1, 1));
    }

    fn rtp_s(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut b = vec![0u8; 172];
        emit_header(&mut b, 0, false, seq, seq as u32 * 160, ssrc);
        b
    }

    /// A relay on 10.0.0.1 with its media range 30000-40000, ng on 2223, HTTP on 9900.
    fn prod_policy() -> Arc<AddressPolicy> {
        Arc::new(AddressPolicy {
            own: vec!["10.0.0.1".parse().unwrap(), "203.0.113.1".parse().unwrap()],
            own_ports: vec![(30000, 40000), (2223, 2223), (9900, 9900)],
            lab_loopback: false,
            allow: Vec::new(),
            deny: vec!["198.18.0.0/15".parse().unwrap()],
        })
    }

    const LA: &str = "10.0.0.1:30000";
    const LB: &str = "10.0.0.1:30002";

    /// Caller A on LA (signalled 192.0.2.10:4000), callee B on LB with `b_rule`'s peer and
    /// SIP source, production address policy.
    fn call(b_peer: Option<&str>, b_sip: Option<&str>) -> (FlowTable, FlowId, FlowId) {
        let mut t = FlowTable::new(2000).with_policy(prod_policy());
        let fa = t.insert(a(LA), Default::default());
        let fb = t.insert(a(LB), Default::default());
        t.apply(&FlowRule::rtp(a(LA), Some(a("192.0.2.10:4000")), Some(a(LB)))).unwrap();
        t.apply(&FlowRule {
            sip_source: b_sip.map(|s| s.parse().unwrap()),
            ..FlowRule::rtp(a(LB), b_peer.map(a), Some(a(LA)))
        })
        .unwrap();
        (t, fa, fb)
    }

    #[test]
    fn denied_sources_are_dropped_first_and_never_latch() {
        let (mut t, fa, fb) = call(Some("198.51.100.20:5000"), Some("127.0.0.1"));
        for (i, src) in [
            "127.0.0.1:5000",
            "10.0.0.1:2223",
            "10.0.0.1:30002",
            "203.0.113.1:7000",
            "169.254.0.9:5000",
            "198.19.0.1:5000",
            "0.0.0.0:5000",
            "[::1]:5000",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                run(&mut t, fb, a(src), &rtp(i as u16), 1_000),
                Verdict::Drop(DropReason::DeniedSource),
                "{src}"
            );
            // and after any grace period: never latched
            assert_eq!(
                run(&mut t, fb, a(src), &rtp(i as u16), 5_000_000),
                Verdict::Drop(DropReason::DeniedSource),
                "{src}"
            );
        }
        let f = t.get(fb).unwrap();
        assert_eq!(f.latched, None);
        assert_eq!(f.sip_source, None, "a denied SIP source is no expected address");
        assert_eq!(f.counters.snapshot().drop_denied_source, 16);
        assert_eq!(f.counters.snapshot().dropped, 16);
        // a latched flow: a spoofed loopback source is still counted as denied
        assert!(matches!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 6_000_000), Verdict::Forward { .. }));
        assert_eq!(run(&mut t, fa, a("127.0.0.1:4000"), &rtp(2), 6_001_000), Verdict::Drop(DropReason::DeniedSource));
        // the policy is checked before any crypto: garbage SRTP from a denied source
        // costs no HMAC (it would count as srtp-auth otherwise)
        let k = key("AES_CM_128_HMAC_SHA1_80", 5);
        t.apply(&FlowRule { srtp_in: Some(k), ..FlowRule::rtp(a(LB), Some(a("198.51.100.20:5000")), Some(a(LA))) })
            .unwrap();
        assert_eq!(run(&mut t, fb, a("127.0.0.1:5000"), &rtp(1), 6_002_000), Verdict::Drop(DropReason::DeniedSource));
        assert_eq!(t.get(fb).unwrap().counters.snapshot().drop_srtp_auth, 0);
    }

    #[test]
    fn denied_destinations_are_never_sent_to() {
        // SDP pointing the callee's leg at the relay's ng port, at its own media port (a
        // loop), at loopback: no destination, counted as denied
        for peer in ["10.0.0.1:2223", "10.0.0.1:30000", "127.0.0.53:53", "224.0.0.1:5000", "198.18.5.5:5000"] {
            let (mut t, fa, fb) = call(Some(peer), None);
            assert_eq!(t.get(fb).unwrap().signalled, None, "{peer}");
            assert_eq!(
                run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000),
                Verdict::Drop(DropReason::DeniedDestination),
                "{peer}"
            );
            let c = t.get(fa).unwrap().counters.snapshot();
            assert_eq!((c.drop_denied_destination, c.dropped, c.forwarded), (1, 1, 0));
            // the same denied address again: the latch state is not reset by it
            t.apply(&FlowRule::rtp(a(LB), Some(a(peer)), Some(a(LA)))).unwrap();
        }
        // hold (c=0.0.0.0) is simply no destination
        let (mut t, fa, _) = call(Some("0.0.0.0:5000"), None);
        assert_eq!(run(&mut t, fa, a("192.0.2.10:4000"), &rtp(1), 1_000), Verdict::Drop(DropReason::NoDestination));
        // asymmetric: any source the policy allows, never a denied one (the cache of the
        // last allowed source does not let a denied one through)
        let mut t = FlowTable::new(2000).with_policy(prod_policy());
        let fa = t.insert(a(LA), Default::default());
        t.insert(a(LB), Default::default());
        let asym = LatchPolicy { asymmetric: true, ..Default::default() };
        t.apply(&FlowRule { latch: asym, ..FlowRule::rtp(a(LA), Some(a("192.0.2.10:4000")), Some(a(LB))) }).unwrap();
        t.apply(&FlowRule { latch: asym, ..FlowRule::rtp(a(LB), Some(a("127.0.0.1:2223")), Some(a(LA))) }).unwrap();
        for src in ["192.0.2.77:1", "192.0.2.77:1", "127.0.0.1:1", "192.0.2.77:1", "10.0.0.1:30002"] {
            let v = run(&mut t, fa, a(src), &rtp(1), 1_000);
            let want = if src.starts_with("192.") { DropReason::DeniedDestination } else { DropReason::DeniedSource };
            assert_eq!(v, Verdict::Drop(want), "{src}");
        }
    }

    #[test]
    fn srtp_source_is_checked_before_crypto_and_state_commits_after() {
        let ka = key("AES_CM_128_HMAC_SHA1_80", 1);
        let (mut t, fa, fb) = srtp_table(Some(ka.clone()), None, None, None);
        let mut a_tx = ctx(&ka);
        let mut protect = |seq: u16| {
            let mut b = [0u8; 256];
            b[..172].copy_from_slice(&rtp(seq));
            let n = a_tx.protect_rtp(&mut b, 172).unwrap();
            b[..n].to_vec()
        };
        let real = a("192.0.2.10:4000");
        assert!(matches!(run(&mut t, fa, real, &protect(1), 1_000), Verdict::Forward { via, .. } if via == fb));
        // an on-path observer copies each packet and sends the copy first from its own
        // address: dropped before crypto, so the real packet is not a "replay"
        for seq in 2..50u16 {
            let p = protect(seq);
            let now = 1_000 + seq as u64 * 20_000;
            assert_eq!(run(&mut t, fa, a("6.6.6.6:666"), &p, now), Verdict::Drop(DropReason::ForeignSource));
            assert!(matches!(run(&mut t, fa, real, &p, now + 1), Verdict::Forward { len: 172, .. }), "{seq}");
        }
        // forged packets with fresh SSRCs from foreign sources touch nothing either
        for i in 0..100u32 {
            assert_eq!(
                run(&mut t, fa, a("6.6.6.6:666"), &rtp_s(i, 9), 2_000_000),
                Verdict::Drop(DropReason::ForeignSource)
            );
        }
        assert!(matches!(run(&mut t, fa, real, &protect(50), 2_000_001), Verdict::Forward { .. }));
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.forwarded, c.drop_foreign_source, c.drop_srtp_auth, c.drop_srtp_replay), (50, 148, 0, 0));

        // before the first latch an authenticated packet is proof of the key: it latches
        // at once, from any (allowed) source, and the latch is not weak
        let (mut t, fa, _) = srtp_table(Some(ka.clone()), None, None, None);
        let mut a_tx = ctx(&ka);
        let mut b = [0u8; 256];
        b[..172].copy_from_slice(&rtp(1));
        let n = a_tx.protect_rtp(&mut b, 172).unwrap();
        assert_eq!(
            run(&mut t, fa, a("6.6.6.6:666"), &rtp(1), 1_000),
            Verdict::Drop(DropReason::Srtp(SrtpError::AuthFailed))
        );
        assert!(matches!(run(&mut t, fa, a("203.0.113.50:6000"), &b[..n], 2_000), Verdict::Forward { .. }));
        let f = t.get(fa).unwrap();
        assert_eq!((f.latched, f.weakly_latched()), (Some(a("203.0.113.50:6000")), false));
        // after silence, only an authenticated packet moves it: plain RTP carrying the
        // stream's SSRC and next sequence number fails authentication
        assert_eq!(
            run(&mut t, fa, a("6.6.6.6:666"), &rtp(2), 5_000_000),
            Verdict::Drop(DropReason::Srtp(SrtpError::AuthFailed))
        );
        b[..172].copy_from_slice(&rtp(2));
        let n = a_tx.protect_rtp(&mut b, 172).unwrap();
        assert!(matches!(run(&mut t, fa, a("203.0.113.50:6001"), &b[..n], 5_000_001), Verdict::Forward { .. }));
        assert_eq!(t.get(fa).unwrap().counters.snapshot().relatched, 1);
    }

    #[test]
    fn protect_refusals_are_counted() {
        // SRTP towards A: a buffer without tail room is our bug (send-error)
        let kr = key("AES_CM_128_HMAC_SHA1_80", 2);
        let (mut t, _, fb) = srtp_table(None, Some(kr.clone()), None, None);
        let p = rtp(1);
        let mut b = p.clone();
        assert_eq!(
            t.process(fb, a("198.51.100.20:5000"), &mut b, 172, 1_000),
            Verdict::Drop(DropReason::Srtp(SrtpError::BufferTooSmall))
        );
        assert_eq!(t.get(fb).unwrap().counters.snapshot().drop_send_error, 1);
        // a plain-RTP sender repeating a sequence number: once the SRTP context refuses
        // a reused index (h-srtp), the repeat is dropped and counted as srtp-index,
        // never encrypted twice under one keystream
        let mut probe = ctx(&kr);
        let mut pb = [0u8; 256];
        pb[..172].copy_from_slice(&p);
        probe.protect_rtp(&mut pb, 172).unwrap();
        pb[..172].copy_from_slice(&p);
        let refuses_reuse = probe.protect_rtp(&mut pb, 172).is_err();
        let (mut t, _, fb) = srtp_table(None, Some(kr), None, None);
        assert!(matches!(run(&mut t, fb, a("198.51.100.20:5000"), &p, 1_000), Verdict::Forward { .. }));
        let v = run(&mut t, fb, a("198.51.100.20:5000"), &p, 2_000);
        if refuses_reuse {
            assert!(matches!(v, Verdict::Drop(DropReason::Srtp(_))), "{v:?}");
            let c = t.get(fb).unwrap().counters.snapshot();
            assert_eq!((c.drop_srtp_index, c.drop_send_error, c.forwarded), (1, 0, 1));
        }
    }

    /// One sender in the simulation: valid RTP every `every_us` from `start_us`.
    struct Sender {
        flow: FlowId,
        src: SocketAddr,
        ssrc: u32,
        start_us: u64,
        every_us: u64,
        /// A new source port for every packet.
        rotate: bool,
    }

    /// Runs every sender for 10 s of simulated time, in time order. Returns, per sender,
    /// the verdicts of its packets.
    fn simulate(t: &mut FlowTable, senders: &[Sender]) -> Vec<Vec<Verdict>> {
        const END_US: u64 = 10_000_000;
        let mut events: Vec<(u64, usize, u16)> = Vec::new();
        for (i, s) in senders.iter().enumerate() {
            let mut at = s.start_us;
            let mut seq = 0u16;
            while at < END_US {
                events.push((at, i, seq));
                at += s.every_us;
                seq = seq.wrapping_add(1);
            }
        }
        events.sort();
        let mut out = vec![Vec::new(); senders.len()];
        for (at, i, seq) in events {
            let s = &senders[i];
            let mut src = s.src;
            if s.rotate {
                src.set_port(1024 + seq % 60000);
            }
            out[i].push(run(t, s.flow, src, &rtp_s(s.ssrc, seq), at));
        }
        out
    }

    fn share_to(verdicts: &[Verdict], to: SocketAddr) -> (usize, usize) {
        let n = verdicts.iter().filter(|v| matches!(v, Verdict::Forward { to: x, .. } if *x == to)).count();
        (n, verdicts.len())
    }

    const SPRAYER: &str = "203.0.113.66:7777";

    fn race(
        t: &mut FlowTable,
        fa: FlowId,
        fb: FlowId,
        callee_src: &str,
        sprayer: bool,
        rotate: bool,
    ) -> Vec<Vec<Verdict>> {
        let mut s = vec![
            // the caller, from its signalled address, every 20 ms from t=0
            Sender { flow: fa, src: a("192.0.2.10:4000"), ssrc: 0x1234, start_us: 0, every_us: 20_000, rotate: false },
            // the real callee from t=200 ms
            Sender { flow: fb, src: a(callee_src), ssrc: 0xca11ee, start_us: 200_000, every_us: 20_000, rotate: false },
        ];
        if sprayer {
            // an off-path host spraying valid RTP at the callee's relay port every 1 ms
            s.push(Sender { flow: fb, src: a(SPRAYER), ssrc: 0xbad, start_us: 0, every_us: 1_000, rotate });
        }
        simulate(t, &s)
    }

    #[test]
    fn setup_race_the_real_callee_gets_the_media() {
        let callee = "198.51.100.20:5000";
        let (mut t, fa, fb) = call(Some(callee), None);
        let v = race(&mut t, fa, fb, callee, true, false);
        let (got, sent) = share_to(&v[0], a(callee));
        println!("set-up race: callee received {got} of the caller's {sent} packets");
        assert!(got * 100 >= sent * 99, "{got}/{sent}");
        assert_eq!(share_to(&v[0], a(SPRAYER)).0, 0);
        assert_eq!(t.get(fb).unwrap().latched, Some(a(callee)));
        // the callee's own media reaches the caller; the sprayer's never does
        assert!(v[1].iter().all(|v| matches!(v, Verdict::Forward { .. })));
        assert!(v[2].iter().all(|v| *v == Verdict::Drop(DropReason::ForeignSource)));
        let c = t.get(fb).unwrap().counters.snapshot();
        assert_eq!((c.relatched, c.drop_foreign_source), (0, v[2].len() as u64));

        // the sprayer rotating its source port every packet changes nothing
        let (mut t, fa, fb) = call(Some(callee), None);
        let v = race(&mut t, fa, fb, callee, true, true);
        let (got, sent) = share_to(&v[0], a(callee));
        assert!(got * 100 >= sent * 99, "{got}/{sent}");
        assert_eq!(t.get(fb).unwrap().latched, Some(a(callee)));
    }

    #[test]
    fn setup_race_nated_callee() {
        // the SDP names a private address; the packets come from the NAT's public one
        let (sdp, public) = ("192.168.1.20:4000", "198.51.100.20:61000");
        let after = |v: &[Verdict], skip: usize| share_to(&v[skip..], a(public));
        // with received-from (the proxy saw the SIP from 198.51.100.20): latched on the
        // callee's first packet, whatever the sprayer does
        for rotate in [false, true] {
            let (mut t, fa, fb) = call(Some(sdp), Some("198.51.100.20"));
            let v = race(&mut t, fa, fb, public, true, rotate);
            // the caller's first 11 packets (up to t=200 ms, before the callee sent
            // anything) go to the SDP address; from then on every one reaches the callee
            let (got, sent) = after(&v[0], 11);
            assert_eq!(got, sent, "rotate {rotate}");
            assert_eq!(share_to(&v[0], a(SPRAYER)).0, 0);
            assert!(v[1].iter().all(|v| matches!(v, Verdict::Forward { .. })));
            assert!(!t.get(fb).unwrap().weakly_latched());
        }
        // without received-from and nobody else sending: latched after the grace
        // period (1 s from the callee's first packet); the caller's packets from then on
        // all reach the callee
        let (mut t, fa, fb) = call(Some(sdp), None);
        let v = race(&mut t, fa, fb, public, false, false);
        let (got, sent) = after(&v[0], 61);
        assert_eq!(got, sent);
        assert_eq!(share_to(&v[0], a(public)).0, 500 - 61);
        assert_eq!(v[1].iter().filter(|v| matches!(v, Verdict::Forward { .. })).count(), 490 - 50);
        assert!(t.get(fb).unwrap().weakly_latched());
        // ... and an unexpected source arriving later does not take it over
        assert_eq!(run(&mut t, fb, a(SPRAYER), &rtp_s(0xbad, 1), 10_000_000), Verdict::Drop(DropReason::ForeignSource));
        // no received-from and a sprayer: the relay cannot tell them apart. Nobody
        // latches (no media for the callee: the remaining risk in docs/latching.md),
        // but not one of the caller's packets goes to the sprayer.
        let (mut t, fa, fb) = call(Some(sdp), None);
        let v = race(&mut t, fa, fb, public, true, false);
        assert_eq!(share_to(&v[0], a(SPRAYER)).0, 0);
        assert_eq!(t.get(fb).unwrap().latched, None);
    }

    #[test]
    fn grace_period_details() {
        // callee before the answer: no signalled peer, no SIP source. A lone source
        // latches after the grace; a stray packet long before does not count
        let (mut t, _, fb) = call(None, None);
        assert_eq!(run(&mut t, fb, a(SPRAYER), &rtp_s(9, 1), 1_000), Verdict::Drop(DropReason::ForeignSource));
        let nat = a("198.51.100.20:61000");
        let mut now = 5_000_000;
        while t.get(fb).unwrap().latched.is_none() {
            assert!(now < 7_000_000);
            run(&mut t, fb, nat, &rtp_s(7, (now / 20_000) as u16), now);
            now += 20_000;
        }
        assert_eq!(now, 6_020_000, "latched 1 s after its first packet");
        assert_eq!(t.get(fb).unwrap().latched, Some(nat));
        // the answer arrives with the callee's address: it differs from None, so the
        // latch resets; the expected address latches at once
        t.apply(&FlowRule::rtp(a(LB), Some(a("198.51.100.20:5000")), Some(a(LA)))).unwrap();
        assert_eq!(t.get(fb).unwrap().latched, None);
        assert!(matches!(run(&mut t, fb, a("198.51.100.20:5000"), &rtp_s(7, 1), 7_000_000), Verdict::Forward { .. }));

        // a weak latch yields to the expected address at once (no silence needed), and
        // that latch is no longer weak
        let (mut t, _, fb) = call(Some("198.51.100.20:5000"), None);
        for i in 0..60u64 {
            run(&mut t, fb, a(SPRAYER), &rtp_s(9, i as u16), i * 20_000);
        }
        assert_eq!(t.get(fb).unwrap().latched, Some(a(SPRAYER)));
        assert!(t.get(fb).unwrap().weakly_latched());
        assert!(matches!(run(&mut t, fb, a("198.51.100.20:5000"), &rtp_s(7, 1), 1_210_000), Verdict::Forward { .. }));
        let f = t.get(fb).unwrap();
        assert_eq!(
            (f.latched, f.weakly_latched(), f.counters.snapshot().relatched),
            (Some(a("198.51.100.20:5000")), false, 1)
        );
        assert_eq!(run(&mut t, fb, a(SPRAYER), &rtp_s(9, 61), 1_220_000), Verdict::Drop(DropReason::ForeignSource));

        // grace 0: the first valid packet latches (the old behaviour)
        let (t, _, _) = call(None, None);
        let mut t = t.with_latch_grace(0);
        let fb = t.lookup(a(LB)).unwrap();
        assert!(matches!(run(&mut t, fb, a(SPRAYER), &rtp(1), 1_000), Verdict::Forward { .. }));

        // T.38 (UDP, no RTP checks): the same grace; after silence only an expected
        // address moves the latch (there is no stream to recognise)
        let (mut t, _, fb) = call(Some("198.51.100.20:5000"), Some("198.51.100.20"));
        t.apply(&FlowRule {
            kind: FlowKind::Udp,
            sip_source: Some("198.51.100.20".parse().unwrap()),
            ..FlowRule::rtp(a(LB), Some(a("198.51.100.20:5000")), Some(a(LA)))
        })
        .unwrap();
        assert_eq!(run(&mut t, fb, a(SPRAYER), b"udptl", 1_000), Verdict::Drop(DropReason::ForeignSource));
        assert!(matches!(run(&mut t, fb, a("198.51.100.20:5000"), b"udptl", 2_000), Verdict::Forward { .. }));
        assert_eq!(run(&mut t, fb, a(SPRAYER), b"udptl", 9_000_000), Verdict::Drop(DropReason::ForeignSource));
        assert!(matches!(run(&mut t, fb, a("198.51.100.20:5002"), b"udptl", 9_000_001), Verdict::Forward { .. }));
    }

    #[test]
    fn answer_confirming_the_address_keeps_the_latch() {
        let (mut t, fa, _) = call(Some("198.51.100.20:5000"), None);
        let nat = a("192.0.2.10:40000");
        // A behind NAT latched after the grace
        for i in 0..60u64 {
            run(&mut t, fa, nat, &rtp(i as u16), i * 20_000);
        }
        assert_eq!(t.get(fa).unwrap().latched, Some(nat));
        // answer, then re-INVITE, confirming A's signalled address: the latch stays
        let same = FlowRule::rtp(a(LA), Some(a("192.0.2.10:4000")), Some(a(LB)));
        t.apply(&same).unwrap();
        t.apply(&FlowRule { sip_source: Some("192.0.2.10".parse().unwrap()), ..same.clone() }).unwrap();
        assert_eq!(t.get(fa).unwrap().latched, Some(nat));
        assert!(t.get(fa).unwrap().counters.snapshot().latched_peer.is_some());
        // a new address, or reset_latch, resets it
        t.apply(&FlowRule { reset_latch: true, ..same.clone() }).unwrap();
        assert_eq!(t.get(fa).unwrap().latched, None);
        assert_eq!(t.get(fa).unwrap().counters.snapshot().latched_peer, None);
    }

    #[test]
    fn silence_is_not_enough_to_relatch() {
        let real = a("198.51.100.20:5000");
        let (mut t, _, fb) = call(Some("198.51.100.20:5000"), None);
        for seq in 0..100u16 {
            assert!(matches!(
                run(&mut t, fb, real, &rtp_s(0xca11ee, seq), seq as u64 * 20_000),
                Verdict::Forward { .. }
            ));
        }
        // hold or silence suppression: 5 s without a packet. An off-path host cannot
        // take the call over, whatever it sends and for however long
        let quiet = 99 * 20_000 + 5_000_000;
        for i in 0..1000u64 {
            let attacker = SocketAddr::from(([203, 0, 113, 66], 1000 + i as u16));
            let v = run(&mut t, fb, attacker, &rtp_s(0xbad0 + i as u32, i as u16), quiet + i * 1000);
            assert_eq!(v, Verdict::Drop(DropReason::ForeignSource));
        }
        // the stream's SSRC with a sequence number far off, or repeated, is not enough
        assert_eq!(
            run(&mut t, fb, a(SPRAYER), &rtp_s(0xca11ee, 99 + 20_000), quiet + 2_000_000),
            Verdict::Drop(DropReason::ForeignSource)
        );
        assert_eq!(
            run(&mut t, fb, a(SPRAYER), &rtp_s(0xca11ee, 99), quiet + 2_000_001),
            Verdict::Drop(DropReason::ForeignSource)
        );
        assert_eq!(t.get(fb).unwrap().latched, Some(real));
        assert_eq!(t.get(fb).unwrap().counters.snapshot().relatched, 0);
        // the real peer after NAT rebinding: same SSRC, continuing sequence numbers
        let rebound = a("198.51.100.20:5123");
        assert!(matches!(run(&mut t, fb, rebound, &rtp_s(0xca11ee, 100), quiet + 3_000_000), Verdict::Forward { .. }));
        assert_eq!(t.get(fb).unwrap().latched, Some(rebound));
        // a strong latch again: the old address is foreign now
        assert_eq!(
            run(&mut t, fb, real, &rtp_s(0xca11ee, 101), quiet + 3_000_001),
            Verdict::Drop(DropReason::ForeignSource)
        );
        assert_eq!(t.get(fb).unwrap().counters.snapshot().relatched, 1);

        // an expected address (the SIP source's IP, a new port, a new SSRC) relatches
        // after silence, but not before
        let (mut t, _, fb) = call(Some("198.51.100.20:5000"), Some("198.51.100.20"));
        run(&mut t, fb, real, &rtp_s(1, 1), 1_000);
        let moved = a("198.51.100.20:7000");
        assert_eq!(run(&mut t, fb, moved, &rtp_s(2, 500), 1_000_000), Verdict::Drop(DropReason::ForeignSource));
        assert!(matches!(run(&mut t, fb, moved, &rtp_s(2, 500), 3_100_000), Verdict::Forward { .. }));
        assert_eq!(t.get(fb).unwrap().latched, Some(moved));
    }

    #[test]
    fn rtcp_relatches_only_for_the_same_sender() {
        let mut t = FlowTable::new(2000).with_policy(prod_policy());
        let fr = t.insert(a("10.0.0.1:30001"), Default::default());
        t.insert(a("10.0.0.1:30003"), Default::default());
        t.apply(&FlowRule {
            kind: FlowKind::Rtcp,
            egress_rtcp: Some(a("10.0.0.1:30003")),
            ..FlowRule::rtp(a("10.0.0.1:30001"), Some(a("192.0.2.10:4001")), None)
        })
        .unwrap();
        t.apply(&FlowRule::rtp(a("10.0.0.1:30003"), Some(a("198.51.100.20:5001")), None)).unwrap();
        let rr = |ssrc: u32| {
            let mut p = vec![0x80u8, 201, 0, 1];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p
        };
        assert!(matches!(run(&mut t, fr, a("192.0.2.10:4001"), &rr(0x1234), 1_000), Verdict::Forward { .. }));
        // 5 s of silence; another sender's report from elsewhere is foreign
        assert_eq!(run(&mut t, fr, a(SPRAYER), &rr(0xbad), 6_000_000), Verdict::Drop(DropReason::ForeignSource));
        // the same sender SSRC from a new address (NAT rebinding) relatches
        assert!(matches!(run(&mut t, fr, a("192.0.2.10:4555"), &rr(0x1234), 6_000_001), Verdict::Forward { .. }));
        assert_eq!(t.get(fr).unwrap().latched, Some(a("192.0.2.10:4555")));
    }
}
