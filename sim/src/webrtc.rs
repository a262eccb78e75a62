//! [`WebRtcPeer`]: a browser's media side for tests. It answers to the relay's ICE-lite
//! agent as a full (controlling) agent would: STUN binding requests with short-term
//! credentials (USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY,
//! FINGERPRINT; RFC 8445 §7.1, RFC 8489), then the DTLS handshake as the client with
//! the core's own sans-IO [`DtlsSession`], then SRTP with the keys it exports (the
//! [`Endpoint`]'s SRTP, so media is checked byte for byte as for SDES).
//!
//! The STUN request is built here by hand, from the RFCs, so the relay's agent is tested
//! against an encoder that is not its own.

use std::net::SocketAddr;
use std::sync::Arc;

use relay_core::dtls::{generate_identity, DtlsSession};
use relay_core::packet::{classify, PacketClass};
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule, Fingerprint, IceRule};

use crate::endpoint::Endpoint;

const MAGIC_COOKIE: u32 = 0x2112_a442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
const ATTR_ICE_CONTROLLING: u16 = 0x802a;
/// RFC 8489 §14.7: the CRC-32 is XOR-ed with "STUN".
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// What a datagram the peer received was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A success response to one of its binding requests.
    CheckSucceeded,
    /// A STUN message that is no answer to a request of ours.
    OtherStun,
    /// DTLS, handled; these flights go back to the relay.
    Dtls(Vec<Vec<u8>>),
    /// RTP whose payload is this (SRTP: authenticated and decrypted).
    Media(Vec<u8>),
    /// Nothing it can use (media before keys, garbage).
    Unusable,
}

pub struct WebRtcPeer {
    pub media: Endpoint,
    pub ufrag: String,
    pub pwd: String,
    /// The relay's credentials on the socket this peer talks to (from its SDP).
    pub relay_ufrag: String,
    pub relay_pwd: String,
    pub identity: Arc<DtlsIdentity>,
    dtls: Option<DtlsSession>,
    /// Transaction ids of requests not answered yet (bounded by the test's own sends).
    pending: Vec<[u8; 12]>,
    next_tx: u64,
    pub keyed: bool,
}

impl WebRtcPeer {
    pub fn new(name: &'static str, addr: SocketAddr, ssrc: u32) -> WebRtcPeer {
        let identity = Arc::new(generate_identity(1_700_000_000, 30 * 86_400).expect("an identity"));
        WebRtcPeer {
            media: Endpoint::new(name, addr, ssrc),
            ufrag: format!("{name}U"),
            pwd: format!("{name}-password-of-22-chars+"),
            relay_ufrag: "relayU".into(),
            relay_pwd: "relay-password-of-22-chars".into(),
            identity,
            dtls: None,
            pending: Vec::new(),
            next_tx: 1,
            keyed: false,
        }
    }

    /// The relay socket's side of this peer's ICE (what the control plane derives from
    /// the two SDPs).
    pub fn relay_ice_rule(&self) -> IceRule {
        IceRule {
            local_ufrag: self.relay_ufrag.clone(),
            local_pwd: self.relay_pwd.clone(),
            remote_ufrag: Some(self.ufrag.clone()),
            remote_pwd: Some(self.pwd.clone()),
        }
    }

    /// A connectivity (or consent) check towards the relay: a binding request with
    /// USE-CANDIDATE (aggressive nomination), authenticated with the relay's password.
    pub fn binding_request(&mut self) -> Vec<u8> {
        let mut tx = [0u8; 12];
        tx[4..].copy_from_slice(&self.next_tx.to_be_bytes());
        self.next_tx += 1;
        self.pending.push(tx);
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&tx);
        attr(&mut m, ATTR_USERNAME, format!("{}:{}", self.relay_ufrag, self.ufrag).as_bytes());
        attr(&mut m, ATTR_PRIORITY, &0x6e00_01ffu32.to_be_bytes());
        attr(&mut m, ATTR_ICE_CONTROLLING, &0x0102_0304_0506_0708u64.to_be_bytes());
        attr(&mut m, ATTR_USE_CANDIDATE, &[]);
        // MESSAGE-INTEGRITY: HMAC-SHA1 over the message so far, its length counting the
        // attribute itself (RFC 8489 §14.5)
        set_len(&mut m, 24);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, self.relay_pwd.as_bytes());
        let mac = ring::hmac::sign(&key, &m);
        attr(&mut m, ATTR_MESSAGE_INTEGRITY, mac.as_ref());
        set_len(&mut m, 8);
        let fp = crc32(&m) ^ FINGERPRINT_XOR;
        attr(&mut m, ATTR_FINGERPRINT, &fp.to_be_bytes());
        m
    }

    /// Start the handshake as the DTLS client (`a=setup:active`, the browser's usual
    /// role towards a relay that answered passive): the ClientHello flight.
    pub fn start_dtls(&mut self, relay_fingerprint: &Fingerprint, now_us: u64) -> Vec<Vec<u8>> {
        let rule = DtlsRule {
            role: DtlsRole::Active,
            identity: self.identity.clone(),
            remote_fingerprint: Some(relay_fingerprint.clone()),
            generation: 0,
        };
        let mut s = DtlsSession::new(&rule, now_us).expect("a DTLS client session");
        let out = std::iter::from_fn(|| s.poll_transmit()).collect();
        self.dtls = Some(s);
        out
    }

    /// A DTLS rule for the relay's side of this peer (passive: it waits for our hello).
    pub fn relay_dtls_rule(&self, relay: &Arc<DtlsIdentity>, role: DtlsRole) -> DtlsRule {
        DtlsRule {
            role,
            identity: relay.clone(),
            remote_fingerprint: Some(self.identity.fingerprint.clone()),
            generation: 0,
        }
    }

    /// Take the relay as the DTLS client (the relay answered `a=setup:active`): our
    /// server session waits for its hello.
    pub fn accept_dtls(&mut self, relay_fingerprint: &Fingerprint, now_us: u64) {
        let rule = DtlsRule {
            role: DtlsRole::Passive,
            identity: self.identity.clone(),
            remote_fingerprint: Some(relay_fingerprint.clone()),
            generation: 0,
        };
        self.dtls = Some(DtlsSession::new(&rule, now_us).expect("a DTLS server session"));
    }

    /// The DTLS timers (retransmissions): flights to resend.
    pub fn dtls_timeout(&mut self, now_us: u64) -> Vec<Vec<u8>> {
        let Some(s) = self.dtls.as_mut() else { return Vec::new() };
        if s.poll_timeout().is_some_and(|t| t <= now_us) {
            s.handle_timeout(now_us);
        }
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    /// A datagram from the relay.
    pub fn receive(&mut self, datagram: &[u8], now_us: u64) -> Received {
        match classify(datagram) {
            PacketClass::Stun => {
                let answers = datagram.len() >= 20
                    && u16::from_be_bytes([datagram[0], datagram[1]]) == BINDING_SUCCESS
                    && datagram[4..8] == MAGIC_COOKIE.to_be_bytes();
                let tx: [u8; 12] = datagram.get(8..20).and_then(|t| t.try_into().ok()).unwrap_or_default();
                match self.pending.iter().position(|p| *p == tx) {
                    Some(i) if answers => {
                        self.pending.remove(i);
                        Received::CheckSucceeded
                    }
                    _ => Received::OtherStun,
                }
            }
            PacketClass::Dtls => {
                let Some(s) = self.dtls.as_mut() else { return Received::Unusable };
                if s.handle_datagram(now_us, datagram).is_err() {
                    return Received::Unusable;
                }
                let out = std::iter::from_fn(|| s.poll_transmit()).collect();
                if let Some(k) = s.take_keys() {
                    self.media.use_keys(&k.local, &k.remote);
                    self.keyed = true;
                }
                Received::Dtls(out)
            }
            PacketClass::Rtp if self.keyed => {
                self.media.open(datagram).map(Received::Media).unwrap_or(Received::Unusable)
            }
            _ => Received::Unusable,
        }
    }
}

/// Appends a STUN attribute, padded to 4 bytes, and updates the message length.
fn attr(m: &mut Vec<u8>, kind: u16, value: &[u8]) {
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    m.resize(m.len().next_multiple_of(4), 0);
    set_len(m, 0);
}

/// Sets the header's length: the attributes so far plus `extra` bytes still to come.
fn set_len(m: &mut [u8], extra: usize) {
    let n = (m.len() - 20 + extra) as u16;
    m[2..4].copy_from_slice(&n.to_be_bytes());
}

/// CRC-32 (ISO-HDLC, as STUN's FINGERPRINT uses), bitwise: a test tool, not a hot path.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        c ^= *b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_the_request_layout() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let mut p = WebRtcPeer::new("b", "192.0.2.1:1".parse().unwrap(), 1);
        let m = p.binding_request();
        assert_eq!(&m[..2], &[0, 1]);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len() - 20);
        // FINGERPRINT last, MESSAGE-INTEGRITY before it
        assert_eq!(&m[m.len() - 8..m.len() - 6], &ATTR_FINGERPRINT.to_be_bytes());
        assert_eq!(&m[m.len() - 32..m.len() - 30], &ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        let fp = u32::from_be_bytes(m[m.len() - 4..].try_into().unwrap());
        assert_eq!(fp, crc32(&m[..m.len() - 8]) ^ FINGERPRINT_XOR);
    }
}
