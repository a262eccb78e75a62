//! STUB for h-plane: replaced by h-ice's real ICE-lite agent at merge (same signatures).
//!
//! This fake treats any 20-byte-or-longer datagram whose first byte is 0..=3 as an
//! authenticated, nominating binding request and answers it with a 20-byte "success"
//! header carrying the request's transaction id. Good enough for the data plane's tests;
//! it checks no credentials.

use std::net::SocketAddr;

use rules::webrtc::IceRule;

/// Consent freshness (RFC 7675 §5.1): media stops 30 s after the last check.
pub const CONSENT_TIMEOUT_US: u64 = 30_000_000;

/// Checked addresses remembered per socket (bounded: a peer makes us store them).
const MAX_CHECKED: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunDrop {
    Malformed,
    NotARequest,
    UnknownUser,
    BadIntegrity,
    BadFingerprint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunOutcome {
    Answered { nominated: bool },
    ErrorResponse(u16),
    Dropped(StunDrop),
}

#[derive(Debug)]
pub struct IceLite {
    local_ufrag: String,
    local_pwd: String,
    /// (address, last check, nominated)
    checked: Vec<(SocketAddr, u64, bool)>,
}

impl IceLite {
    pub fn new(rule: &IceRule) -> IceLite {
        IceLite { local_ufrag: rule.local_ufrag.clone(), local_pwd: rule.local_pwd.clone(), checked: Vec::new() }
    }

    pub fn update(&mut self, rule: &IceRule) {
        if rule.local_ufrag != self.local_ufrag || rule.local_pwd != self.local_pwd {
            *self = IceLite::new(rule);
        }
    }

    pub fn handle(&mut self, now_us: u64, src: SocketAddr, packet: &[u8], out: &mut Vec<u8>) -> StunOutcome {
        out.clear();
        if packet.len() < 20 || packet[0] > 3 {
            return StunOutcome::Dropped(StunDrop::Malformed);
        }
        if packet[0] != 0 || packet[1] != 1 {
            return StunOutcome::Dropped(StunDrop::NotARequest);
        }
        out.extend_from_slice(&[0x01, 0x01, 0, 0]);
        out.extend_from_slice(&packet[4..20]);
        match self.checked.iter_mut().find(|(a, ..)| *a == src) {
            Some(e) => *e = (src, now_us, true),
            None => {
                if self.checked.len() == MAX_CHECKED {
                    self.checked.remove(0);
                }
                self.checked.push((src, now_us, true));
            }
        }
        StunOutcome::Answered { nominated: true }
    }

    pub fn peer(&self, now_us: u64) -> Option<SocketAddr> {
        self.checked.iter().rev().find(|(_, t, _)| now_us.saturating_sub(*t) < CONSENT_TIMEOUT_US).map(|(a, ..)| *a)
    }

    pub fn is_checked(&self, src: SocketAddr, now_us: u64) -> bool {
        self.checked.iter().any(|(a, t, _)| *a == src && now_us.saturating_sub(*t) < CONSENT_TIMEOUT_US)
    }
}
