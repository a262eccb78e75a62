//! The ICE-lite agent of one relay socket (RFC 8445 §2.5, §7.3): it answers the
//! connectivity and consent checks (RFC 7675) a full agent — a browser — sends to the
//! relay's candidate, and tells the data plane which peer addresses passed one. The relay
//! never sends checks of its own and is always the controlled agent (RFC 8445 §6.1.1: a
//! lite agent facing a full one takes the controlled role).
//!
//! Every input is hostile. The order of the checks in [`IceLite::handle`] is the security
//! argument: only a binding request whose FINGERPRINT, USERNAME and MESSAGE-INTEGRITY
//! (keyed with the relay's password) all hold is answered at all, and only such a request
//! changes state; everything else is dropped, with its reason, and leaves no trace.
//!
//! **Why a request that fails authentication gets no 401.** RFC 8489 §9.1.3 asks for a
//! 401 (and a 400 for missing credentials); rtpengine and libwebrtc send them, Pion and
//! str0m drop silently. We drop:
//! - a 401 cannot carry MESSAGE-INTEGRITY (there is no key the sender proved to know), so
//!   the requester cannot tell ours from a forged one: it is worth nothing to a real peer.
//!   libwebrtc treats a 401 to its check as recoverable and retries, exactly what it does
//!   after a timeout, so a browser ends up in the same place either way;
//! - answering strangers makes every relay port a reflector towards spoofed sources and
//!   an oracle for scanners (which ports are live ICE endpoints, whether a ufrag is known
//!   when the answers differ); a silent port reveals nothing without the SDP's secrets.
//!
//! Error responses are therefore sent only to authenticated requests, and carry
//! MESSAGE-INTEGRITY and FINGERPRINT like a success: 420 (an unknown comprehension-required
//! attribute, RFC 8489 §6.3.1.1), 487 (role conflict) and 400 (a request claiming both
//! roles).

use std::net::SocketAddr;

use ring::hmac;
use rules::webrtc::IceRule;

use crate::stun::{self, attr, Attr, Class, StunMessage, StunWriter, TransactionId, BINDING};

/// RFC 7675 §5.1: consent expires 30 s after the last successful check.
pub const CONSENT_TIMEOUT_US: u64 = 30_000_000;

/// How many peer addresses that passed a check are remembered. Only an authenticated peer
/// adds one, but that peer still gets no unbounded memory: a browser has a handful of
/// candidates towards one relay candidate (host v4/v6, server-reflexive, relayed).
pub const MAX_CHECKED: usize = 8;

/// Larger datagrams are dropped as malformed before any parsing. RFC 8489 §6.1 keeps STUN
/// over UDP within the path MTU (1280 bytes when unknown over IPv6); a browser's check is
/// about 100 bytes. The cap bounds what a stranger's datagram costs (attribute walk, CRC,
/// HMAC) to that of a normal-sized one.
pub const MAX_CHECK_LEN: usize = 1500;

/// At most this many attribute types are listed in a 420's UNKNOWN-ATTRIBUTES.
const MAX_UNKNOWN_LISTED: usize = 16;

/// Transaction IDs of authenticated requests remembered (with their source) to refuse a
/// copy of a check sent again from another address: a check carries nothing that proves it
/// fresh, so an on-path observer's replay of the browser's nominating check would
/// otherwise authenticate and move the media to the observer. Kept for the consent window,
/// at most this many (the oldest go first): ~3 KB per ICE socket.
pub const MAX_SEEN_CHECKS: usize = 64;

/// Why a STUN datagram got no answer (each a counted drop reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StunDrop {
    /// Not a well-formed STUN message (`stun::StunError`), or longer than [`MAX_CHECK_LEN`].
    Malformed,
    /// Not a binding request: responses (the relay sends no checks), other methods, and
    /// binding indications. Indications are the keepalives of RFC 8445 §11; they need no
    /// answer and prove nothing (no credentials), so they are counted here and otherwise
    /// ignored: consent is refreshed only by checks.
    NotARequest,
    /// USERNAME missing, or not `local_ufrag:remote_ufrag` (the remote part is checked once
    /// the peer's ufrag is known).
    UnknownUser,
    /// MESSAGE-INTEGRITY missing or not keyed with the local password.
    BadIntegrity,
    /// FINGERPRINT missing or wrong. RFC 8445 §7.2.4 makes it mandatory in checks (every
    /// browser sends it; rtpengine drops checks without it too); it is what tells STUN from the DTLS and SRTP sharing the port.
    BadFingerprint,
    /// An authenticated check whose transaction ID was seen from another address within the
    /// consent window: a copy replayed by someone else (a retransmission comes from the
    /// same address and is answered again).
    Replayed,
}

impl StunDrop {
    pub const ALL: [StunDrop; 6] = [
        StunDrop::Malformed,
        StunDrop::NotARequest,
        StunDrop::UnknownUser,
        StunDrop::BadIntegrity,
        StunDrop::BadFingerprint,
        StunDrop::Replayed,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StunDrop::Malformed => "stun-malformed",
            StunDrop::NotARequest => "stun-not-a-request",
            StunDrop::UnknownUser => "stun-unknown-user",
            StunDrop::BadIntegrity => "stun-bad-integrity",
            StunDrop::BadFingerprint => "stun-bad-fingerprint",
            StunDrop::Replayed => "stun-replayed",
        }
    }
}

/// What [`IceLite::handle`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StunOutcome {
    /// A check passed: a success response is in `out`; `nominated` when it carried
    /// USE-CANDIDATE (the source is now the preferred peer).
    Answered { nominated: bool },
    /// An authenticated request that could not be honoured: the error response (with this
    /// code) is in `out`; no state changed.
    ErrorResponse(u16),
    /// Nothing to send; no state changed.
    Dropped(StunDrop),
}

/// A peer address that passed a check.
#[derive(Debug, Clone, Copy)]
struct Checked {
    addr: SocketAddr,
    last_check_us: u64,
    /// When a check from it last carried USE-CANDIDATE.
    nominated_us: Option<u64>,
}

/// The ICE-lite agent of one relay socket. Sans-IO: datagrams and time in, responses out.
#[derive(Debug, Clone)]
pub struct IceLite {
    rule: IceRule,
    key: hmac::Key,
    checked: Vec<Checked>,
    /// Authenticated requests lately: (transaction ID, source, when), oldest first.
    seen: std::collections::VecDeque<(TransactionId, SocketAddr, u64)>,
}

impl IceLite {
    pub fn new(rule: &IceRule) -> IceLite {
        IceLite {
            rule: rule.clone(),
            key: stun::short_term_key(&rule.local_pwd),
            checked: Vec::with_capacity(MAX_CHECKED),
            seen: std::collections::VecDeque::new(),
        }
    }

    /// Applies a new rule. Changed local credentials are an ICE restart (RFC 8445 §9; RFC
    /// 8839 §4.4.1.1.2 has both sides change theirs): addresses checked under the old ones
    /// lose their consent until they pass a check with the new ones. Learning or changing
    /// only the remote ufrag keeps them; later checks must carry the new one.
    pub fn update(&mut self, rule: &IceRule) {
        if rule.local_ufrag != self.rule.local_ufrag || rule.local_pwd != self.rule.local_pwd {
            self.checked.clear();
            self.seen.clear();
            self.key = stun::short_term_key(&rule.local_pwd);
        }
        self.rule = rule.clone();
    }

    /// STUN `packet` from `src`: response (success or error) written to `out` (cleared first); only an
    /// authenticated request changes state.
    pub fn handle(&mut self, now_us: u64, src: SocketAddr, packet: &[u8], out: &mut Vec<u8>) -> StunOutcome {
        out.clear();
        if packet.len() > MAX_CHECK_LEN {
            return StunOutcome::Dropped(StunDrop::Malformed);
        }
        let Ok(m) = StunMessage::new_checked(packet) else { return StunOutcome::Dropped(StunDrop::Malformed) };
        if m.method() != BINDING || m.class() != Class::Request {
            return StunOutcome::Dropped(StunDrop::NotARequest);
        }
        if m.verify_fingerprint() != Some(true) {
            return StunOutcome::Dropped(StunDrop::BadFingerprint);
        }
        match m.get(attr::USERNAME) {
            Some(Attr::Username(u)) if self.is_our_username(u) => {}
            _ => return StunOutcome::Dropped(StunDrop::UnknownUser),
        }
        if m.verify_integrity(&self.key) != Some(true) {
            return StunOutcome::Dropped(StunDrop::BadIntegrity);
        }

        // authenticated from here on
        let txid = m.transaction_id();
        if !self.first_seen(txid, src, now_us) {
            return StunOutcome::Dropped(StunDrop::Replayed);
        }
        let mut unknown = [0u8; 2 * MAX_UNKNOWN_LISTED];
        let mut n = 0;
        for a in m.attrs() {
            if let Attr::Other { kind, .. } = a {
                if attr::is_comprehension_required(kind) && n < unknown.len() {
                    unknown[n..n + 2].copy_from_slice(&kind.to_be_bytes());
                    n += 2;
                }
            }
        }
        if n > 0 {
            return self.error(out, txid, 420, b"Unknown Attribute", &[Attr::UnknownAttributes(&unknown[..n])]);
        }
        let (controlled, controlling) = (m.get(attr::ICE_CONTROLLED).is_some(), m.get(attr::ICE_CONTROLLING).is_some());
        if controlled && controlling {
            return self.error(out, txid, 400, b"Bad Request: both ICE roles", &[]);
        }
        if controlled {
            // Both sides think they are controlled. RFC 8445 §7.3.1.1 (written for full
            // agents) has a controlled agent receiving ICE-CONTROLLED answer 487 when its
            // tie-breaker is not smaller, else switch to controlling. A lite agent never
            // controls (§6.1.1: facing a full agent it MUST be controlled), so it answers
            // as if its tie-breaker were the largest: always 487, which makes the full
            // agent take the controlling role (§7.2.5.1) and nominate. No state changes.
            return self.error(out, txid, 487, b"Role Conflict", &[]);
        }
        let nominated = m.get(attr::USE_CANDIDATE).is_some();
        self.record_check(src, now_us, nominated);
        StunWriter::new(out, Class::Success, BINDING, txid)
            .attr(&Attr::XorMappedAddress(src))
            .message_integrity(&self.key)
            .fingerprint();
        StunOutcome::Answered { nominated }
    }

    /// Where media to the peer goes: nominated (else latest checked) address with fresh consent, else None.
    pub fn peer(&self, now_us: u64) -> Option<SocketAddr> {
        let fresh = || self.checked.iter().filter(|c| has_consent(c, now_us));
        fresh()
            .filter(|c| c.nominated_us.is_some())
            .max_by_key(|c| c.nominated_us)
            .or_else(|| fresh().max_by_key(|c| c.last_check_us))
            .map(|c| c.addr)
    }

    /// After a restart: `addr` was the nominated peer when the state was kept. It gets
    /// fresh consent now, as if it had just passed a nominating check; the party's next
    /// consent check (every few seconds) keeps it, or it expires as any other would.
    pub fn resume_peer(&mut self, addr: SocketAddr, now_us: u64) {
        self.record_check(addr, now_us, true);
    }

    /// `src` passed a check and its consent is fresh (media from it is accepted).
    pub fn is_checked(&self, src: SocketAddr, now_us: u64) -> bool {
        self.checked.iter().any(|c| c.addr == src && has_consent(c, now_us))
    }

    /// `local_ufrag:remote_ufrag` (RFC 8445 §7.2.2). Ufrags are ice-chars, which exclude
    /// ':', so the first colon separates them. Empty local credentials (a control-plane
    /// bug) authenticate nobody.
    fn is_our_username(&self, u: &[u8]) -> bool {
        let Some(colon) = u.iter().position(|&c| c == b':') else { return false };
        let (local, remote) = (&u[..colon], &u[colon + 1..]);
        !self.rule.local_ufrag.is_empty()
            && !self.rule.local_pwd.is_empty()
            && local == self.rule.local_ufrag.as_bytes()
            && self.rule.remote_ufrag.as_ref().is_none_or(|r| remote == r.as_bytes())
    }

    /// Refreshes `src`'s consent, or remembers it. When the table is full the entry to go is
    /// the least recently checked one, except that the nominated address with fresh consent
    /// goes last: the checks of a browser's backup pairs must not cut the media path.
    fn record_check(&mut self, src: SocketAddr, now_us: u64, nominated: bool) {
        let nominated_us = nominated.then_some(now_us);
        if let Some(c) = self.checked.iter_mut().find(|c| c.addr == src) {
            c.last_check_us = now_us;
            c.nominated_us = nominated_us.or(c.nominated_us);
            return;
        }
        let entry = Checked { addr: src, last_check_us: now_us, nominated_us };
        if self.checked.len() < MAX_CHECKED {
            self.checked.push(entry);
        } else if let Some(victim) = self
            .checked
            .iter_mut()
            .min_by_key(|c| (c.nominated_us.is_some() && has_consent(c, now_us), c.last_check_us))
        {
            *victim = entry;
        }
    }

    /// Remembers an authenticated request; false when its transaction ID came from another
    /// address within the consent window (a replayed copy).
    fn first_seen(&mut self, txid: &TransactionId, src: SocketAddr, now_us: u64) -> bool {
        while self.seen.front().is_some_and(|&(_, _, at)| now_us.saturating_sub(at) > CONSENT_TIMEOUT_US) {
            self.seen.pop_front();
        }
        if let Some(&(_, from, _)) = self.seen.iter().find(|(t, _, _)| t == txid) {
            return from == src;
        }
        if self.seen.len() == MAX_SEEN_CHECKS {
            self.seen.pop_front();
        }
        self.seen.push_back((*txid, src, now_us));
        true
    }

    /// Writes an error response to an authenticated request.
    fn error(
        &self,
        out: &mut Vec<u8>,
        txid: &TransactionId,
        code: u16,
        reason: &[u8],
        extra: &[Attr<'_>],
    ) -> StunOutcome {
        let mut w = StunWriter::new(out, Class::Error, BINDING, txid);
        w.attr(&Attr::ErrorCode { code, reason });
        for a in extra {
            w.attr(a);
        }
        w.message_integrity(&self.key).fingerprint();
        StunOutcome::ErrorResponse(code)
    }
}

/// RFC 7675: consent holds until CONSENT_TIMEOUT_US after the last successful check.
fn has_consent(c: &Checked, now_us: u64) -> bool {
    now_us.saturating_sub(c.last_check_us) <= CONSENT_TIMEOUT_US
}

#[cfg(test)]
mod tests;
