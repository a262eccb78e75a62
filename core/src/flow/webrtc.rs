//! WebRTC on one relay socket: the ICE-lite agent that answers the peer's connectivity and
//! consent checks, and the DTLS-SRTP association whose exported keys become the socket's
//! SRTP contexts (the very contexts SDES keys build, so re-keying works the same).
//!
//! Rules (the flow table applies them before its latching rules):
//! 1. On a WebRTC socket every datagram is classified first (RFC 7983): STUN goes to the
//!    ICE agent, DTLS to the handshake, RTP/RTCP to the media path, the rest is dropped.
//! 2. DTLS socket: no media in either direction before the handshake gave keys
//!    (`drop_dtls_pending`): never plain media where signalling asked for DTLS-SRTP.
//! 3. ICE socket: media is accepted only from an address that passed a check and whose
//!    consent is fresh; media towards the peer goes only to [`IceLite::peer`] (consent
//!    expired: dropped, `drop_no_consent`). The check replaces packet latching.
//! 4. ICE + DTLS: DTLS is accepted only from a checked address (RFC 8445 §12.1: no data
//!    before a check succeeded; a DTLS datagram from elsewhere is dropped, not answered, so
//!    the relay cannot be made to send flights to an address that never proved it wants
//!    them). Without ICE, the first source that starts a handshake owns it until it
//!    completes or fails; later DTLS from other sources is dropped (`drop_dtls`).
//! 5. Replies (STUN answers, DTLS flights) leave from this socket to the address the
//!    datagram came from. The active role sends its ClientHello to the checked address
//!    (ICE), else to the latched or signalled peer.
//! 6. A handshake that has not completed [`DTLS_HANDSHAKE_TIMEOUT_US`] after it started
//!    is dropped and counted (`dtls_failed`); a passive socket accepts a new ClientHello
//!    after that, an active one waits for a new rule.
//! 7. Re-applying the same [`DtlsRule`] keeps the association and its keys; a changed
//!    role, identity, generation or fingerprint starts a new handshake (the old keys are
//!    dropped with it). A fingerprint that arrives later (None before) is handed to the
//!    running handshake. ICE credentials update in place ([`IceLite::update`]).
//! 8. ICE siblings (`FlowRule::ice_siblings`: the leg's sockets of one component on the
//!    interface's other addresses, one host candidate each): the peer, not the relay,
//!    picks the candidate, so media forwarded into any socket of the group leaves from
//!    the one the peer nominated (latest nomination, else latest check, among those with
//!    fresh consent and DTLS keys), with that socket's keys, to its checked address. A
//!    grouped socket in the active DTLS role waits for a nomination before its hello, so
//!    the peer gets one handshake, on the pair it selected.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rules::addrpolicy::AddressPolicy;
use rules::dataplane::{DtlsRule, FlowRule, KeyDirection, SrtpKey};

mod restore;

use super::counters::{bump, SharedCounters};
use super::{context, DropReason, Flow, FlowId, Verdict};
use crate::dtls::{DtlsSession, DtlsState};
use crate::ice::{IceLite, StunOutcome};
use crate::packet::{classify, Malformed, PacketClass};
use crate::srtp;

/// Replies waiting for the backend, all sockets of a table together. A full queue drops
/// (and counts) the newest reply: peers retransmit.
pub const MAX_TRANSMITS: usize = 1024;

/// A DTLS handshake still running this long after it started is dropped (counted).
pub const DTLS_HANDSHAKE_TIMEOUT_US: u64 = 30_000_000;

/// A datagram the relay itself sends (a STUN answer, a DTLS flight): out of relay socket
/// `via` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub via: FlowId,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// What the table keeps for its WebRTC sockets: the send queue, the sockets with a DTLS
/// timer or pending work, the clock of the last call that told the time.
#[derive(Debug, Default)]
pub(crate) struct WebRtcIo {
    pub(crate) transmits: VecDeque<Transmit>,
    /// Flows whose DTLS link has a timer or work for the next `handle_timeout`.
    pub(crate) timers: Vec<FlowId>,
    pub(crate) now_us: u64,
}

impl WebRtcIo {
    fn send(&mut self, c: &SharedCounters, via: FlowId, to: SocketAddr, data: Vec<u8>) {
        if self.transmits.len() >= MAX_TRANSMITS {
            bump(&c.drop_transmit_full, 1);
            return;
        }
        self.transmits.push_back(Transmit { via, to, data });
    }

    pub(crate) fn watch(&mut self, link: &mut DtlsLink, id: FlowId) {
        if !link.in_timers {
            link.in_timers = true;
            self.timers.push(id);
        }
    }
}

/// The WebRTC state of one flow (None on plain flows: one pointer test on their path).
pub(crate) struct WebRtc {
    pub(crate) ice: Option<IceLite>,
    pub(crate) dtls: Option<DtlsLink>,
    /// The other sockets of this socket's ICE group (rule 8), resolved when the rule is
    /// applied; a socket that closes leaves every group (`FlowTable::detach`).
    pub(crate) siblings: Vec<FlowId>,
    /// When a check on this socket was last answered, and last carried USE-CANDIDATE:
    /// which socket of the group the peer chose (rule 8).
    checked_us: Option<u64>,
    nominated_us: Option<u64>,
    /// STUN answers are written here, then copied into their transmit.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for WebRtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtc")
            .field("ice", &self.ice.is_some())
            .field("dtls_keyed", &self.dtls.as_ref().map(|l| l.keyed))
            .finish()
    }
}

/// The DTLS association of one socket.
pub(crate) struct DtlsLink {
    rule: DtlsRule,
    /// None: not started yet (active: no destination yet; passive: no ClientHello yet),
    /// or dropped after a failure.
    session: Option<DtlsSession>,
    started_us: u64,
    /// Where flights go: the source of the last DTLS datagram, or the active role's
    /// first destination.
    remote: Option<SocketAddr>,
    pub(crate) keyed: bool,
    failed: bool,
    /// Something to do at the next `handle_timeout` (start the active role, look for
    /// keys after a fingerprint arrived).
    kick: bool,
    in_timers: bool,
}

impl DtlsLink {
    fn new(rule: &DtlsRule) -> DtlsLink {
        DtlsLink {
            rule: rule.clone(),
            session: None,
            started_us: 0,
            remote: None,
            keyed: false,
            failed: false,
            kick: rule.role == rules::dataplane::DtlsRole::Active,
            in_timers: false,
        }
    }

    fn active(&self) -> bool {
        self.rule.role == rules::dataplane::DtlsRole::Active
    }

    /// When this link next needs `handle_timeout`.
    fn deadline(&self, now_us: u64) -> Option<u64> {
        if self.kick {
            return Some(now_us);
        }
        let s = self.session.as_ref()?;
        let expiry = (!self.keyed).then_some(self.started_us.saturating_add(DTLS_HANDSHAKE_TIMEOUT_US));
        match (s.poll_timeout(), expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The outcome of applying a rule's WebRTC part to a flow.
pub(crate) struct Applied {
    /// The DTLS association was replaced or removed: its keys must go.
    pub(crate) drop_keys: bool,
    /// The link wants a `handle_timeout` (start the active role, check for keys).
    pub(crate) kick: bool,
}

impl WebRtc {
    /// Brings `w` in line with the rule (rule 7).
    pub(crate) fn apply(w: &mut Option<Box<WebRtc>>, rule: &FlowRule) -> Applied {
        let had_dtls = w.as_ref().is_some_and(|w| w.dtls.is_some());
        if rule.ice.is_none() && rule.dtls.is_none() {
            *w = None;
            return Applied { drop_keys: had_dtls, kick: false };
        }
        let w = w.get_or_insert_with(|| {
            Box::new(WebRtc {
                ice: None,
                dtls: None,
                siblings: Vec::new(),
                checked_us: None,
                nominated_us: None,
                scratch: Vec::new(),
            })
        });
        match (&rule.ice, w.ice.as_mut()) {
            (None, _) => w.ice = None,
            (Some(r), Some(ice)) => ice.update(r),
            (Some(r), None) => w.ice = Some(IceLite::new(r)),
        }
        let mut out = Applied { drop_keys: false, kick: false };
        match (&rule.dtls, w.dtls.as_mut()) {
            (None, _) => {
                out.drop_keys = w.dtls.take().is_some();
            }
            (Some(r), Some(link)) if same_association(&link.rule, r) => {
                if link.rule.remote_fingerprint.is_none() {
                    if let Some(fp) = &r.remote_fingerprint {
                        if let Some(s) = link.session.as_mut() {
                            s.set_remote_fingerprint(fp.clone());
                        }
                        link.kick = true;
                    }
                }
                link.rule = r.clone();
                out.kick = link.kick;
            }
            (Some(r), _) => {
                // a new association: whatever keys the socket had (SDES, an old
                // handshake's) go with the old one
                out.drop_keys = true;
                let link = DtlsLink::new(r);
                out.kick = link.kick;
                w.dtls = Some(link);
            }
        }
        out
    }
}

/// The running association survives a rule with the same role, identity and generation
/// whose fingerprint is unchanged or newly known.
fn same_association(old: &DtlsRule, new: &DtlsRule) -> bool {
    old.role == new.role
        && old.generation == new.generation
        && old.identity == new.identity
        && (old.remote_fingerprint.is_none() || old.remote_fingerprint == new.remote_fingerprint)
}

/// The SRTP contexts of keys a handshake exported (the path SDES keys take in `apply`).
type Contexts = (Option<(SrtpKey, Box<srtp::Context>)>, Option<(SrtpKey, Box<srtp::Context>)>);

impl Flow {
    /// Rules 1-4 for a datagram on a WebRTC socket. Ok(ice): media, go on (`ice`: its
    /// source passed a check, which stands in for latching); Err: the verdict.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn webrtc_ingress(
        &mut self,
        id: FlowId,
        src: SocketAddr,
        data: &[u8],
        now_us: u64,
        io: &mut WebRtcIo,
        window: u32,
        policy: &AddressPolicy,
    ) -> Result<bool, Verdict> {
        let c = &*self.counters;
        let Some(w) = self.webrtc.as_deref_mut() else { return Ok(false) };
        let class = classify(data);
        // the address policy before the relay answers anything: no STUN answer or DTLS
        // flight to an address media may not go to (media from a checked address passed
        // it with its check)
        if matches!(class, PacketClass::Stun | PacketClass::Dtls) && policy.check(src).is_err() {
            bump(&c.drop_denied_source, 1);
            return Err(Verdict::Drop(DropReason::DeniedSource));
        }
        match class {
            PacketClass::Stun => {
                let Some(ice) = w.ice.as_mut() else {
                    bump(&c.drop_stun, 1);
                    return Err(Verdict::Drop(DropReason::Stun));
                };
                match ice.handle(now_us, src, data, &mut w.scratch) {
                    StunOutcome::Answered { nominated } => {
                        bump(&c.stun_answered, 1);
                        w.checked_us = Some(now_us);
                        if nominated {
                            w.nominated_us = Some(now_us);
                        }
                        io.send(c, id, src, w.scratch.clone());
                        if ice.peer(now_us) == Some(src) {
                            let mut l = c.latched.lock().unwrap_or_else(|e| e.into_inner());
                            if *l != Some(src) {
                                *l = Some(src);
                            }
                        }
                        // the active role starts once there is a checked address (in an
                        // ICE group: a nominated one, rule 8)
                        let chosen = w.siblings.is_empty() || w.nominated_us.is_some();
                        if let Some(link) = w.dtls.as_mut().filter(|l| chosen && l.active() && l.session.is_none()) {
                            if !link.failed {
                                link.kick = true;
                                io.watch(link, id);
                            }
                        }
                    }
                    StunOutcome::ErrorResponse(_) => {
                        bump(&c.drop_stun, 1);
                        io.send(c, id, src, w.scratch.clone());
                    }
                    StunOutcome::Dropped(_) => bump(&c.drop_stun, 1),
                }
                Err(Verdict::Consumed)
            }
            PacketClass::Dtls => {
                let checked = w.ice.as_ref().map(|ice| ice.is_checked(src, now_us));
                let Some(link) = w.dtls.as_mut() else {
                    bump(&c.drop_dtls, 1);
                    return Err(Verdict::Drop(DropReason::Dtls));
                };
                if checked == Some(false) {
                    bump(&c.drop_dtls, 1);
                    return Err(Verdict::Drop(DropReason::IceUnchecked));
                }
                // without ICE the handshake's first source owns it (rule 4), except that the
                // peer signalling or RTP latching names takes over a handshake that is not
                // keyed yet from any other source: one stranger's ClientHello must not lock
                // the real peer out for the handshake's lifetime
                if checked.is_none() && link.session.is_some() && link.remote.is_some_and(|r| r != src) {
                    let expected = |a: SocketAddr| self.signalled == Some(a) || self.latched == Some(a);
                    if link.keyed || !expected(src) || link.remote.is_some_and(expected) {
                        bump(&c.drop_dtls, 1);
                        return Err(Verdict::Drop(DropReason::Dtls));
                    }
                    link.session = None;
                }
                if link.keyed && link.session.is_none() {
                    // keys resumed after a restart (restore.rs): no handshake to continue,
                    // and none is started (a retransmitted flight must not unkey the socket)
                    bump(&c.drop_dtls, 1);
                    return Err(Verdict::Drop(DropReason::Dtls));
                }
                if link.session.is_none() {
                    if link.failed && link.active() {
                        bump(&c.drop_dtls, 1);
                        return Err(Verdict::Drop(DropReason::Dtls));
                    }
                    if !start(link, now_us, c) {
                        return Err(Verdict::Drop(DropReason::Dtls));
                    }
                }
                link.remote = Some(src);
                let Some(s) = link.session.as_mut() else { return Err(Verdict::Consumed) };
                if s.handle_datagram(now_us, data).is_err() {
                    bump(&c.drop_dtls, 1);
                }
                let keys = progress(link, id, now_us, io, c, window);
                io.watch(link, id);
                self.install(keys);
                Err(Verdict::Consumed)
            }
            PacketClass::Rtp => {
                if w.dtls.as_ref().is_some_and(|l| !l.keyed) {
                    bump(&c.drop_dtls_pending, 1);
                    return Err(Verdict::Drop(DropReason::DtlsPending));
                }
                match w.ice.as_ref() {
                    Some(ice) if ice.is_checked(src, now_us) => Ok(true),
                    Some(_) => {
                        bump(&c.drop_ice_unchecked, 1);
                        Err(Verdict::Drop(DropReason::IceUnchecked))
                    }
                    None => Ok(false),
                }
            }
            PacketClass::Other => {
                bump(&c.drop_malformed, 1);
                Err(Verdict::Drop(DropReason::Malformed(Malformed::BadVersion)))
            }
        }
    }

    /// Rules 2-3 for media leaving through this socket; in an ICE group an error that
    /// sends the packet to [`send_via_group`] (rule 8).
    #[cold]
    #[inline(never)]
    pub(crate) fn webrtc_destination(&self, now_us: u64) -> Result<SocketAddr, DropReason> {
        if self.webrtc.as_deref().is_some_and(|w| !w.siblings.is_empty()) {
            return Err(DropReason::NoConsent);
        }
        self.socket_destination(now_us)
    }

    /// Rules 2-3 for media leaving through this very socket.
    fn socket_destination(&self, now_us: u64) -> Result<SocketAddr, DropReason> {
        let Some(w) = self.webrtc.as_deref() else { return self.plain_destination() };
        if w.dtls.as_ref().is_some_and(|l| !l.keyed) {
            return Err(DropReason::DtlsPending);
        }
        match (&w.ice, &w.dtls) {
            (Some(ice), _) => ice.peer(now_us).ok_or(DropReason::NoConsent),
            (None, Some(link)) => self.plain_destination().or_else(|e| link.remote.ok_or(e)),
            (None, None) => self.plain_destination(),
        }
    }

    /// Timers and pending work of this flow's DTLS link; false: nothing left to watch.
    pub(crate) fn webrtc_timeout(&mut self, id: FlowId, now_us: u64, io: &mut WebRtcIo, window: u32) -> bool {
        let c = &*self.counters;
        let peer = self.peer();
        let Some(w) = self.webrtc.as_deref_mut() else { return false };
        // in an ICE group only a nominated socket sends a hello (rule 8)
        let chosen = w.siblings.is_empty() || w.nominated_us.is_some();
        let ice_peer = w.ice.as_ref().map(|ice| ice.peer(now_us).filter(|_| chosen));
        let Some(link) = w.dtls.as_mut() else { return false };
        if !link.in_timers {
            return false;
        }
        if link.kick {
            if link.active() && link.session.is_none() && !link.failed {
                // rule 5: towards the checked address, else the latched/signalled peer
                match ice_peer.unwrap_or(peer) {
                    Some(to) => {
                        link.remote = Some(to);
                        start(link, now_us, c);
                    }
                    None => {
                        // no destination yet: still kicked, but unwatched until a check
                        // (or a rule) brings one
                        link.in_timers = false;
                        return false;
                    }
                }
            }
            link.kick = false;
        }
        if let Some(s) = link.session.as_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now_us) {
                s.handle_timeout(now_us);
            }
        }
        let keys = progress(link, id, now_us, io, c, window);
        let keep = link.deadline(now_us).is_some();
        link.in_timers = keep;
        self.install(keys);
        keep
    }

    /// The flow left the table's timer list.
    pub(crate) fn webrtc_unwatch(&mut self) {
        if let Some(link) = self.webrtc.as_deref_mut().and_then(|w| w.dtls.as_mut()) {
            link.in_timers = false;
        }
    }

    /// When this flow's DTLS link next needs `handle_timeout`.
    pub(crate) fn webrtc_deadline(&self, now_us: u64) -> Option<u64> {
        self.webrtc.as_deref()?.dtls.as_ref()?.deadline(now_us)
    }

    fn install(&mut self, keys: Option<Contexts>) {
        if let Some((i, o)) = keys {
            self.srtp_in = i;
            self.srtp_out = o;
        }
    }
}

/// Media leaving through WebRTC socket `via` (rules 2, 3 and 8): out of the socket of its
/// ICE group the party chose, to that socket's destination, under its keys. The verdict's
/// socket, and where the packet goes with its new length (or why it goes nowhere).
#[cold]
#[inline(never)]
pub(crate) fn send_via_group(
    slots: &mut [Option<Flow>],
    via: FlowId,
    rtcp: bool,
    buf: &mut [u8],
    mut len: usize,
    now_us: u64,
) -> (FlowId, Result<(SocketAddr, usize), DropReason>) {
    let via = ice_egress(slots, via, now_us);
    let out = match slots.get_mut(via).and_then(|e| e.as_mut()) {
        None => Err(DropReason::NoDestination),
        Some(e) => e.socket_destination(now_us).and_then(|to| e.protect_out(to, rtcp, buf, &mut len)),
    };
    (via, out.map(|to| (to, len)))
}

/// Flow `id` is a socket of an ICE group (rule 8).
pub(crate) fn in_group(slots: &[Option<Flow>], id: FlowId) -> bool {
    let w = slots.get(id).and_then(|f| f.as_ref()).and_then(|f| f.webrtc.as_deref());
    w.is_some_and(|w| !w.siblings.is_empty())
}

/// Rule 8: the socket of `via`'s ICE group that media towards the party leaves from: of
/// the ones that can send (an ICE socket with fresh consent and, with DTLS, keys), the
/// latest nominated, else the latest checked; `via` itself when none can (its own drop
/// reason then stands), on a tie, or without a group.
fn ice_egress(slots: &[Option<Flow>], via: FlowId, now_us: u64) -> FlowId {
    let Some(w) = slots.get(via).and_then(|f| f.as_ref()).and_then(|f| f.webrtc.as_deref()) else { return via };
    if w.siblings.is_empty() {
        return via;
    }
    let ready = |id: FlowId| {
        let f = slots.get(id)?.as_ref()?;
        let w = f.webrtc.as_deref()?;
        w.ice.as_ref()?;
        f.socket_destination(now_us).ok()?;
        Some((w.nominated_us, w.checked_us))
    };
    // the last of equal maxima wins: `via` comes last
    w.siblings
        .iter()
        .copied()
        .chain(std::iter::once(via))
        .filter_map(|id| ready(id).map(|score| (score, id)))
        .max_by_key(|(score, _)| *score)
        .map_or(via, |(_, id)| id)
}

/// A new session for `link` (its clock starts now); false (counted) when it cannot be made.
fn start(link: &mut DtlsLink, now_us: u64, c: &SharedCounters) -> bool {
    match DtlsSession::new(&link.rule, now_us) {
        Ok(s) => {
            link.session = Some(s);
            link.started_us = now_us;
            link.failed = false;
            true
        }
        Err(e) => {
            log::warn!("DTLS session refused: {e}");
            bump(&c.dtls_failed, 1);
            link.failed = true;
            false
        }
    }
}

/// After the session moved: send its flights, take its keys (as SRTP contexts), or drop
/// it when it failed or ran out of time (rule 6).
fn progress(
    link: &mut DtlsLink,
    id: FlowId,
    now_us: u64,
    io: &mut WebRtcIo,
    c: &SharedCounters,
    window: u32,
) -> Option<Contexts> {
    let s = link.session.as_mut()?;
    while let Some(d) = s.poll_transmit() {
        // the remote is set before a session makes flights
        if let Some(to) = link.remote {
            io.send(c, id, to, d);
        }
    }
    if !link.keyed {
        if let Some(k) = s.take_keys() {
            let ctx = |k: &SrtpKey, d| context(k, d).map(|x| Some((k.clone(), Box::new(x.with_replay_window(window)))));
            match (ctx(&k.remote, KeyDirection::In), ctx(&k.local, KeyDirection::Out)) {
                (Ok(i), Ok(o)) => {
                    link.keyed = true;
                    bump(&c.dtls_handshakes, 1);
                    return Some((i, o));
                }
                _ => {
                    log::warn!("DTLS exported keys that build no SRTP context");
                    fail(link, c);
                    return None;
                }
            }
        }
        let failed = matches!(s.state(), DtlsState::Failed(_));
        if failed || now_us >= link.started_us.saturating_add(DTLS_HANDSHAKE_TIMEOUT_US) {
            fail(link, c);
        }
    }
    None
}

fn fail(link: &mut DtlsLink, c: &SharedCounters) {
    bump(&c.dtls_failed, 1);
    link.session = None;
    link.failed = true;
    link.remote = None;
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use rules::dataplane::{DtlsRole, IceRule};

    use super::*;
    use crate::dtls::{generate_identity, DtlsKeys};
    use crate::flow::FlowTable;
    use crate::packet::rtp::emit_header;

    pub(super) fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    pub(super) const LA: &str = "10.0.0.1:30000";
    pub(super) const LB: &str = "10.0.0.1:30002";
    pub(super) const BROWSER: &str = "192.0.2.10:50000";
    pub(super) const PHONE: &str = "198.51.100.20:5000";

    pub(super) fn ice() -> IceRule {
        IceRule {
            local_ufrag: "relay".into(),
            local_pwd: "relaypassword0123456789".into(),
            remote_ufrag: Some("brow".into()),
            remote_pwd: Some("browserpassword012345678".into()),
        }
    }

    /// The relay's and the browser's certificates, one each for the whole test binary.
    pub(super) fn identity(which: usize) -> Arc<rules::dataplane::DtlsIdentity> {
        static IDS: std::sync::OnceLock<[Arc<rules::dataplane::DtlsIdentity>; 2]> = std::sync::OnceLock::new();
        let ids = IDS.get_or_init(|| [0, 1].map(|i| Arc::new(generate_identity(1_700_000_000 + i, 86_400).unwrap())));
        ids[which].clone()
    }

    /// The relay socket's DTLS rule: its certificate, the browser's fingerprint.
    pub(super) fn dtls(role: DtlsRole, generation: u32) -> DtlsRule {
        DtlsRule { role, identity: identity(0), remote_fingerprint: Some(identity(1).fingerprint.clone()), generation }
    }

    /// The browser's session: its certificate, the relay's fingerprint.
    pub(super) fn peer(role: DtlsRole, now: u64) -> DtlsSession {
        let rule = DtlsRule {
            role,
            identity: identity(1),
            remote_fingerprint: Some(identity(0).fingerprint.clone()),
            generation: 0,
        };
        DtlsSession::new(&rule, now).unwrap()
    }

    /// A binding request as a browser sends it to the relay socket of `ice()`.
    pub(super) fn stun(tx: u8) -> Vec<u8> {
        let r = ice();
        let user = format!("{}:{}", r.local_ufrag, r.remote_ufrag.unwrap());
        crate::stun::binding_request(&[tx; 12], &user, &r.local_pwd, 7)
    }

    pub(super) fn rtp(seq: u16) -> Vec<u8> {
        let mut b = vec![0u8; 172];
        emit_header(&mut b, 0, false, seq, seq as u32 * 160, 0x1234);
        b
    }

    pub(super) fn run(t: &mut FlowTable, id: FlowId, src: SocketAddr, data: &[u8], now_us: u64) -> (Verdict, Vec<u8>) {
        let mut b = [0u8; 2048];
        b[..data.len()].copy_from_slice(data);
        let v = t.process(id, src, &mut b, data.len(), now_us);
        let len = if let Verdict::Forward { len, .. } = v { len } else { 0 };
        (v, b[..len].to_vec())
    }

    pub(super) fn transmits(t: &mut FlowTable) -> Vec<Transmit> {
        std::iter::from_fn(|| t.poll_transmit()).collect()
    }

    /// A: the browser's leg (ICE and/or DTLS as given), B: a plain RTP phone.
    pub(super) fn call(
        ice_rule: Option<IceRule>,
        dtls_rule: Option<DtlsRule>,
    ) -> (FlowTable, FlowId, FlowId, FlowRule) {
        let mut t = FlowTable::new(2000);
        let fa = t.insert(a(LA), Default::default());
        let fb = t.insert(a(LB), Default::default());
        let ra = FlowRule { ice: ice_rule, dtls: dtls_rule, ..FlowRule::rtp(a(LA), Some(a(BROWSER)), Some(a(LB))) };
        t.apply(&ra).unwrap();
        t.apply(&FlowRule::rtp(a(LB), Some(a(PHONE)), Some(a(LA)))).unwrap();
        (t, fa, fb, ra)
    }

    /// Runs the handshake between the table's socket `fa` and the browser's session `b`
    /// (whatever its role) until the browser has keys; returns them.
    pub(super) fn handshake(
        t: &mut FlowTable,
        fa: FlowId,
        from: SocketAddr,
        b: &mut DtlsSession,
        now: u64,
    ) -> DtlsKeys {
        for _ in 0..10 {
            while let Some(d) = b.poll_transmit() {
                assert_eq!(run(t, fa, from, &d, now).0, Verdict::Consumed);
            }
            for tx in transmits(t) {
                assert_eq!((tx.via, tx.to), (fa, from), "the reply leaves from the socket to the sender");
                b.handle_datagram(now, &tx.data).unwrap();
            }
            if let Some(k) = b.take_keys() {
                // the browser's last flight, if it has one (DTLS 1.3: its Finished)
                while let Some(d) = b.poll_transmit() {
                    run(t, fa, from, &d, now);
                }
                // the relay's acknowledgement of it (DTLS 1.3) is of no further use here
                transmits(t);
                return k;
            }
        }
        panic!("no keys after 10 round trips")
    }

    pub(super) fn browser_handshake(t: &mut FlowTable, fa: FlowId, from: SocketAddr, now: u64) -> DtlsKeys {
        handshake(t, fa, from, &mut peer(DtlsRole::Active, now), now)
    }

    pub(super) fn ctx(k: &SrtpKey) -> srtp::Context {
        srtp::Context::new(k.suite, &k.key, &k.salt).unwrap()
    }

    #[test]
    fn nothing_before_check_and_keys_then_media_both_ways_until_consent_expires() {
        let (mut t, fa, fb, _) = call(Some(ice()), Some(dtls(DtlsRole::Passive, 0)));
        let (browser, phone, spoof) = (a(BROWSER), a(PHONE), a("203.0.113.66:50000"));
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(false));
        assert_eq!(t.get(fb).unwrap().webrtc_keyed(), None);
        // before anything: the phone's media has nowhere to go, the browser's is refused
        assert_eq!(run(&mut t, fb, phone, &rtp(1), 1_000).0, Verdict::Drop(DropReason::DtlsPending));
        assert_eq!(run(&mut t, fa, browser, &rtp(1), 1_000).0, Verdict::Drop(DropReason::DtlsPending));
        // DTLS before a check: dropped, not answered
        let hello = peer(DtlsRole::Active, 0).poll_transmit().unwrap();
        assert_eq!(run(&mut t, fa, browser, &hello, 2_000).0, Verdict::Drop(DropReason::IceUnchecked));
        assert!(transmits(&mut t).is_empty());
        // the check: answered from the socket to the source
        assert_eq!(run(&mut t, fa, browser, &stun(1), 3_000).0, Verdict::Consumed);
        let tx = transmits(&mut t);
        assert_eq!((tx.len(), tx[0].via, tx[0].to, tx[0].data[0]), (1, fa, browser, 1));
        // checked, but no keys yet: still nothing
        assert_eq!(run(&mut t, fb, phone, &rtp(2), 4_000).0, Verdict::Drop(DropReason::DtlsPending));
        // DTLS from an unchecked source is ignored
        assert_eq!(run(&mut t, fa, spoof, &hello, 4_500).0, Verdict::Drop(DropReason::IceUnchecked));
        let keys = browser_handshake(&mut t, fa, browser, 5_000);
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
        let (mut b_tx, mut b_rx) = (ctx(&keys.local), ctx(&keys.remote));

        // browser -> phone: SRTP in, plain out
        let mut b = [0u8; 2048];
        b[..172].copy_from_slice(&rtp(3));
        let n = b_tx.protect_rtp(&mut b, 172).unwrap();
        let (v, out) = run(&mut t, fa, browser, &b[..n], 6_000);
        assert_eq!((v, out), (Verdict::Forward { via: fb, to: phone, len: 172 }, rtp(3)));
        // phone -> browser: protected with the handshake's keys, to the checked address
        let (v, mut out) = run(&mut t, fb, phone, &rtp(4), 7_000);
        let protected = 172 + keys.remote.suite.rtp_tag_len();
        assert!(
            matches!(v, Verdict::Forward { via, to, len } if via == fa && to == browser && len == protected),
            "{v:?}"
        );
        let m = b_rx.unprotect_rtp(&mut out, protected).unwrap();
        assert_eq!(&out[..m], &rtp(4)[..]);
        // a spoofed source with valid SRTP but no check: dropped before any crypto
        b[..172].copy_from_slice(&rtp(5));
        let n = b_tx.protect_rtp(&mut b, 172).unwrap();
        assert_eq!(run(&mut t, fa, spoof, &b[..n], 8_000).0, Verdict::Drop(DropReason::IceUnchecked));

        // consent expires 30 s after the last check: media stops both ways
        let late = 3_000 + crate::ice::CONSENT_TIMEOUT_US + 1;
        assert_eq!(run(&mut t, fb, phone, &rtp(6), late).0, Verdict::Drop(DropReason::NoConsent));
        assert_eq!(run(&mut t, fa, browser, &b[..n], late).0, Verdict::Drop(DropReason::IceUnchecked));
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.stun_answered, c.dtls_handshakes, c.drop_dtls, c.drop_ice_unchecked), (1, 1, 2, 2));
        assert_eq!(c.drop_dtls_pending, 1);
        let c = t.get(fb).unwrap().counters.snapshot();
        assert_eq!((c.drop_dtls_pending, c.drop_no_consent, c.forwarded), (2, 1, 1));
    }

    #[test]
    fn without_ice_a_strangers_hello_does_not_lock_the_signalled_peer_out() {
        let (mut t, fa, fb, _) = call(None, Some(dtls(DtlsRole::Passive, 0)));
        let stranger = a("203.0.113.66:1");
        let hello = peer(DtlsRole::Active, 0).poll_transmit().unwrap();
        assert_eq!(run(&mut t, fa, stranger, &hello, 1_000).0, Verdict::Consumed);
        transmits(&mut t);
        // the signalled peer takes the unkeyed handshake over and completes it
        browser_handshake(&mut t, fa, a(BROWSER), 2_000);
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
        assert!(matches!(run(&mut t, fb, a(PHONE), &rtp(1), 3_000).0, Verdict::Forward { to, .. } if to == a(BROWSER)));
        // once keyed, nobody takes it over
        assert_eq!(run(&mut t, fa, stranger, &hello, 4_000).0, Verdict::Drop(DropReason::Dtls));
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
    }

    #[test]
    fn reapplying_the_same_rule_keeps_the_keys_and_a_new_generation_starts_over() {
        let (mut t, fa, fb, ra) = call(None, Some(dtls(DtlsRole::Passive, 0)));
        let browser = a(BROWSER);
        browser_handshake(&mut t, fa, browser, 1_000);
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
        // a re-INVITE with the same DTLS parameters (and a changed ICE-less rule elsewhere)
        t.apply(&FlowRule { clock_rate: 48_000, ..ra.clone() }).unwrap();
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
        assert!(matches!(run(&mut t, fb, a(PHONE), &rtp(1), 2_000).0, Verdict::Forward { to, .. } if to == browser));
        // the peer's fingerprint / tls-id changed: a new handshake; nothing until it is done
        t.apply(&FlowRule { dtls: Some(dtls(DtlsRole::Passive, 1)), ..ra.clone() }).unwrap();
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(false));
        assert_eq!(run(&mut t, fb, a(PHONE), &rtp(2), 3_000).0, Verdict::Drop(DropReason::DtlsPending));
        browser_handshake(&mut t, fa, browser, 4_000);
        assert!(matches!(run(&mut t, fb, a(PHONE), &rtp(3), 5_000).0, Verdict::Forward { .. }));
        assert_eq!(t.get(fa).unwrap().counters.snapshot().dtls_handshakes, 2);
        // without ICE the first source owns the handshake: another one's DTLS is dropped
        let other = peer(DtlsRole::Active, 0).poll_transmit().unwrap();
        assert_eq!(run(&mut t, fa, a("203.0.113.66:1"), &other, 6_000).0, Verdict::Drop(DropReason::Dtls));
        // dropping DTLS from the rule drops its keys: plain RTP again
        t.apply(&FlowRule { dtls: None, ..ra }).unwrap();
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), None);
        let (v, out) = run(&mut t, fb, a(PHONE), &rtp(4), 7_000);
        assert!(matches!(v, Verdict::Forward { len: 172, .. }));
        assert_eq!(out, rtp(4));
    }

    #[test]
    fn no_answer_to_a_source_the_address_policy_denies() {
        let (t, _, _, ra) = call(Some(ice()), Some(dtls(DtlsRole::Passive, 0)));
        let mut t = t.with_policy(Arc::new(rules::addrpolicy::AddressPolicy::default()));
        t.apply(&ra).unwrap();
        let fa = t.lookup(a(LA)).unwrap();
        let hello = peer(DtlsRole::Active, 0).poll_transmit().unwrap();
        for (src, d) in [("127.0.0.1:5000", stun(1)), ("0.0.0.0:5000", stun(2)), ("127.0.0.1:5000", hello)] {
            assert_eq!(run(&mut t, fa, a(src), &d, 1_000).0, Verdict::Drop(DropReason::DeniedSource), "{src}");
        }
        assert!(transmits(&mut t).is_empty());
        assert_eq!(t.get(fa).unwrap().counters.snapshot().drop_denied_source, 3);
    }

    /// Deterministic stand-in for a fuzz target: random datagrams of every class (STUN,
    /// DTLS, RTP, other first bytes; real requests and hellos mutated) from allowed and
    /// denied sources, at random times, with timers run in between. Never a panic, never
    /// a reply or a forward to a denied address, never more queued than the bound.
    #[test]
    fn random_datagrams_at_a_webrtc_socket() {
        let policy = Arc::new(rules::addrpolicy::AddressPolicy {
            own: vec!["10.0.0.1".parse().unwrap()],
            own_ports: vec![(30000, 40000)],
            ..Default::default()
        });
        let mut rng = crate::test_support::Rng(0x9e3779b97f4a7c15);
        let sources = [BROWSER, "192.0.2.10:50001", PHONE, "127.0.0.1:2223", "10.0.0.1:30002", "0.0.0.0:1"];
        let hello = peer(DtlsRole::Active, 0).poll_transmit().unwrap();
        for role in [DtlsRole::Passive, DtlsRole::Active] {
            let (t, _, _, ra) = call(Some(ice()), Some(dtls(role, 0)));
            let mut t = t.with_policy(policy.clone());
            t.apply(&ra).unwrap();
            let (fa, fb) = (t.lookup(a(LA)).unwrap(), t.lookup(a(LB)).unwrap());
            let mut now = 0u64;
            for _ in 0..50_000 {
                let r = rng.next();
                let src = a(sources[(r % sources.len() as u64) as usize]);
                let mut d = match (r >> 8) % 4 {
                    0 => stun((r >> 16) as u8),
                    1 => hello.clone(),
                    2 => rtp((r >> 16) as u16),
                    _ => (0..(r >> 16) % 64).map(|_| rng.next() as u8).collect(),
                };
                if !d.is_empty() && (r >> 40).is_multiple_of(2) {
                    let i = (rng.next() as usize) % d.len();
                    d[i] = rng.next() as u8;
                }
                now += (r >> 48) % 2_000_000;
                let id = if (r >> 32).is_multiple_of(4) { fb } else { fa };
                let (v, _) = run(&mut t, id, src, &d, now);
                if let Verdict::Forward { to, .. } = v {
                    assert!(policy.allows(to), "forwarded to {to}");
                }
                if (r >> 36).is_multiple_of(8) {
                    t.handle_timeout(now);
                }
                assert!(t.io.transmits.len() <= MAX_TRANSMITS);
                if (r >> 44).is_multiple_of(16) {
                    for tx in transmits(&mut t) {
                        assert!(policy.allows(tx.to), "replied to {}", tx.to);
                    }
                }
            }
        }
    }

    #[test]
    fn the_transmit_queue_is_bounded() {
        let (mut t, fa, _, _) = call(Some(ice()), None);
        for i in 0..MAX_TRANSMITS + 10 {
            let src = SocketAddr::from(([192, 0, 2, 10], 1000 + i as u16));
            assert_eq!(run(&mut t, fa, src, &stun(i as u8), 1_000 + i as u64).0, Verdict::Consumed);
        }
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.stun_answered, c.drop_transmit_full), (MAX_TRANSMITS as u64 + 10, 10));
        assert_eq!(c.dropped, 0, "replies not sent are no received datagram dropped");
        assert_eq!(transmits(&mut t).len(), MAX_TRANSMITS);
        // STUN on a socket without ICE, DTLS on one without DTLS: dropped and counted
        let (mut t, _, fb, _) = call(Some(ice()), None);
        assert_eq!(
            run(&mut t, fb, a(PHONE), &stun(1), 1).0,
            Verdict::Drop(DropReason::Malformed(Malformed::BadVersion))
        );
        let (mut t, fa, _, _) = call(Some(ice()), None);
        run(&mut t, fa, a(BROWSER), &stun(1), 1);
        assert_eq!(run(&mut t, fa, a(BROWSER), b"\x16\xfe\xfd", 2).0, Verdict::Drop(DropReason::Dtls));
        assert_eq!(
            run(&mut t, fa, a(BROWSER), b"\x40junk", 3).0,
            Verdict::Drop(DropReason::Malformed(Malformed::BadVersion))
        );
        let c = t.get(fa).unwrap().counters.snapshot();
        assert_eq!((c.drop_dtls, c.drop_malformed, c.dropped), (1, 1, 2));
    }

    #[test]
    fn the_active_role_sends_its_hello_retransmits_and_gives_up() {
        // no ICE: towards the signalled peer as soon as the rule is applied
        let (mut t, fa, _, _) = call(None, Some(dtls(DtlsRole::Active, 0)));
        assert_eq!(t.poll_timeout(), Some(0), "work waiting: due at once");
        t.handle_timeout(10_000);
        let tx = transmits(&mut t);
        assert_eq!((tx.len(), tx[0].via, tx[0].to, tx[0].data[0]), (1, fa, a(BROWSER), 22));
        let next = t.poll_timeout().unwrap();
        assert!(next > 10_000);
        t.handle_timeout(next - 1);
        assert!(transmits(&mut t).is_empty(), "not due yet");
        t.handle_timeout(next);
        assert_eq!(transmits(&mut t).len(), 1, "retransmitted");
        // nobody answers: dropped after the bound, counted, no timer left
        let mut now = next;
        while let Some(d) = t.poll_timeout() {
            now = d;
            t.handle_timeout(now);
            assert!(now <= 10_000 + DTLS_HANDSHAKE_TIMEOUT_US);
        }
        // the DTLS library may give up on its own retransmission schedule before the bound
        assert!(now > next);
        assert_eq!(t.get(fa).unwrap().counters.snapshot().dtls_failed, 1);
        transmits(&mut t);

        // ICE: the hello waits for the first check and goes to the checked address
        let (mut t, fa, _, _) = call(Some(ice()), Some(dtls(DtlsRole::Active, 0)));
        t.handle_timeout(1_000);
        assert!(transmits(&mut t).is_empty());
        assert_eq!(t.poll_timeout(), None);
        let nat = a("192.0.2.10:61000");
        run(&mut t, fa, nat, &stun(1), 2_000);
        assert_eq!(t.poll_timeout(), Some(2_000));
        t.handle_timeout(2_000);
        let tx = transmits(&mut t);
        assert_eq!(tx.len(), 2, "the STUN answer, then the hello");
        assert_eq!((tx[1].to, tx[1].data[0]), (nat, 22));
        // the server's answer completes it
        let mut server = peer(DtlsRole::Passive, 3_000);
        server.handle_datagram(3_000, &tx[1].data).unwrap();
        handshake(&mut t, fa, nat, &mut server, 3_000);
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
    }

    #[test]
    fn a_fingerprint_that_arrives_later_completes_the_running_handshake() {
        let no_fp = DtlsRule { remote_fingerprint: None, ..dtls(DtlsRole::Passive, 0) };
        let (mut t, fa, fb, ra) = call(None, Some(no_fp.clone()));
        // the browser (which knows the relay's fingerprint) completes its side
        browser_handshake(&mut t, fa, a(BROWSER), 1_000);
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(false), "no fingerprint to check yet");
        // the answer's SDP brings it: same association, keys once it is handed over
        t.apply(&FlowRule { dtls: Some(dtls(DtlsRole::Passive, 0)), ..ra }).unwrap();
        assert_eq!(t.poll_timeout(), Some(1_000));
        t.handle_timeout(2_000);
        assert_eq!(t.get(fa).unwrap().webrtc_keyed(), Some(true));
        assert!(matches!(run(&mut t, fb, a(PHONE), &rtp(1), 3_000).0, Verdict::Forward { .. }));
    }

    /// The browser's leg on two addresses of the interface (one host candidate each):
    /// main socket LA (IPv4) and its sibling LA6 (IPv6), both with the same ICE and DTLS
    /// rule, each naming the other; B a plain phone forwarding into LA.
    const LA6: &str = "[2001:db8::1]:30000";
    const BROWSER6: &str = "[2001:db8:b::10]:50000";

    fn dual(dtls_rule: Option<DtlsRule>) -> (FlowTable, FlowId, FlowId, FlowId) {
        let mut t = FlowTable::new(2000);
        let fa = t.insert(a(LA), Default::default());
        let fa6 = t.insert(a(LA6), Default::default());
        let fb = t.insert(a(LB), Default::default());
        let leg = |local: &str, peer: Option<&str>, sibling: &str| FlowRule {
            ice: Some(ice()),
            dtls: dtls_rule.clone(),
            ice_siblings: vec![a(sibling)],
            ..FlowRule::rtp(a(local), peer.map(a), Some(a(LB)))
        };
        t.apply(&leg(LA, Some(BROWSER), LA6)).unwrap();
        t.apply(&leg(LA6, None, LA)).unwrap();
        t.apply(&FlowRule::rtp(a(LB), Some(a(PHONE)), Some(a(LA)))).unwrap();
        (t, fa, fa6, fb)
    }

    /// A check without USE-CANDIDATE (a full agent's ordinary check before it nominates).
    fn stun_unnominated(tx: u8) -> Vec<u8> {
        let r = ice();
        let user = format!("{}:{}", r.local_ufrag, r.remote_ufrag.unwrap());
        let mut m = Vec::new();
        crate::stun::StunWriter::new(&mut m, crate::stun::Class::Request, crate::stun::BINDING, &[tx; 12])
            .attr(&crate::stun::Attr::Username(user.as_bytes()))
            .attr(&crate::stun::Attr::IceControlling(7))
            .message_integrity(&crate::stun::short_term_key(&r.local_pwd))
            .fingerprint();
        m
    }

    #[test]
    fn media_to_the_browser_leaves_from_the_sibling_socket_it_checked_and_keyed() {
        let (mut t, fa, fa6, fb) = dual(Some(dtls(DtlsRole::Passive, 0)));
        let (browser6, phone) = (a(BROWSER6), a(PHONE));
        // nothing ready anywhere: the main socket's reason stands
        assert_eq!(run(&mut t, fb, phone, &rtp(1), 1_000).0, Verdict::Drop(DropReason::DtlsPending));
        // the browser picked IPv6: its check and its handshake reach the sibling only
        assert_eq!(run(&mut t, fa6, browser6, &stun(1), 2_000).0, Verdict::Consumed);
        let tx = transmits(&mut t);
        assert_eq!((tx.len(), tx[0].via, tx[0].to), (1, fa6, browser6));
        let keys = browser_handshake(&mut t, fa6, browser6, 3_000);
        assert_eq!((t.get(fa).unwrap().webrtc_keyed(), t.get(fa6).unwrap().webrtc_keyed()), (Some(false), Some(true)));
        // phone -> browser: out of the IPv6 socket, with its handshake's keys
        let (v, mut out) = run(&mut t, fb, phone, &rtp(2), 4_000);
        let protected = 172 + keys.remote.suite.rtp_tag_len();
        assert_eq!(v, Verdict::Forward { via: fa6, to: browser6, len: protected });
        let n = ctx(&keys.remote).unprotect_rtp(&mut out, protected).unwrap();
        assert_eq!(&out[..n], &rtp(2)[..]);
        // browser -> phone on the IPv6 socket
        let mut b = [0u8; 2048];
        b[..172].copy_from_slice(&rtp(3));
        let n = ctx(&keys.local).protect_rtp(&mut b, 172).unwrap();
        assert_eq!(
            run(&mut t, fa6, browser6, &b[..n], 5_000),
            (Verdict::Forward { via: fb, to: phone, len: 172 }, rtp(3))
        );
        // consent on the IPv6 socket expires: nothing is ready, the main socket's reason
        let late = 2_000 + crate::ice::CONSENT_TIMEOUT_US + 1;
        assert_eq!(run(&mut t, fb, phone, &rtp(4), late).0, Verdict::Drop(DropReason::DtlsPending));
        let c = t.get(fb).unwrap().counters.snapshot();
        assert_eq!((c.forwarded, c.drop_dtls_pending), (1, 2));
        // the sibling closes: the group forgets it, the main socket sends alone
        t.remove(a(LA6));
        assert!(t.get(fa).unwrap().webrtc.as_deref().unwrap().siblings.is_empty());
    }

    #[test]
    fn the_nominated_socket_of_the_group_wins_over_a_merely_checked_one() {
        let (mut t, fa, fa6, fb) = dual(None);
        let (browser, browser6, phone) = (a(BROWSER), a(BROWSER6), a(PHONE));
        let to = |t: &mut FlowTable, seq, now| match run(t, fb, phone, &rtp(seq), now).0 {
            Verdict::Forward { via, to, .. } => Some((via, to)),
            _ => None,
        };
        assert_eq!(to(&mut t, 1, 1_000), None);
        // an ordinary check on IPv4, then a nomination on IPv6, then IPv4 checked again
        run(&mut t, fa, browser, &stun_unnominated(1), 2_000);
        assert_eq!(to(&mut t, 2, 2_500), Some((fa, browser)));
        run(&mut t, fa6, browser6, &stun(2), 3_000);
        assert_eq!(to(&mut t, 3, 3_500), Some((fa6, browser6)));
        run(&mut t, fa, browser, &stun_unnominated(3), 4_000);
        assert_eq!(to(&mut t, 4, 4_500), Some((fa6, browser6)), "nominated beats checked later");
        // a later nomination on IPv4 (the browser switched pairs) moves it back
        run(&mut t, fa, browser, &stun(4), 5_000);
        assert_eq!(to(&mut t, 5, 5_500), Some((fa, browser)));
        // the IPv4 consent expires while IPv6 was refreshed: IPv6 again
        run(&mut t, fa6, browser6, &stun_unnominated(5), 20_000_000);
        assert_eq!(to(&mut t, 6, 5_000 + crate::ice::CONSENT_TIMEOUT_US + 1), Some((fa6, browser6)));
        // a rule without ICE has no group, whatever it names
        let plain = FlowRule { ice_siblings: vec![a(LA6)], ..FlowRule::rtp(a(LA), Some(a(BROWSER)), Some(a(LB))) };
        t.apply(&plain).unwrap();
        assert!(t.get(fa).unwrap().webrtc.is_none());
    }

    #[test]
    fn in_a_group_the_active_role_says_hello_only_on_the_nominated_socket() {
        let (mut t, fa, fa6, _) = dual(Some(dtls(DtlsRole::Active, 0)));
        // checked but not nominated: no hello
        run(&mut t, fa, a(BROWSER), &stun_unnominated(1), 1_000);
        t.handle_timeout(1_000);
        assert_eq!(transmits(&mut t).len(), 1, "the STUN answer only");
        // nominated on the sibling: the hello goes there
        run(&mut t, fa6, a(BROWSER6), &stun(2), 2_000);
        t.handle_timeout(2_000);
        let tx = transmits(&mut t);
        assert_eq!(tx.len(), 2, "the STUN answer, then the hello");
        assert_eq!((tx[1].via, tx[1].to, tx[1].data[0]), (fa6, a(BROWSER6), 22));
    }
}
