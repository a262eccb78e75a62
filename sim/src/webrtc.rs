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
use relay_core::stun;
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule, Fingerprint, IceRule};

use crate::endpoint::Endpoint;

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

    /// The offer a browser sends (Chrome's shape): one audio section, DTLS-SRTP with its
    /// certificate's fingerprint (`a=setup:actpass`), its ICE credentials, rtcp-mux, and a
    /// host candidate for every address in `candidates` (the first one is in c= and m=).
    pub fn offer_sdp(&self, candidates: &[SocketAddr]) -> String {
        let first = candidates.first().copied().unwrap_or(self.media.addr);
        let family = |a: &SocketAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = format!(
            "v=0\r\no=- 4611731400430051336 2 IN {f} {ip}\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
             m=audio {port} UDP/TLS/RTP/SAVPF 0\r\nc=IN {f} {ip}\r\na=rtcp:9 IN IP4 0.0.0.0\r\n",
            f = family(&first),
            ip = first.ip(),
            port = first.port()
        );
        for (i, c) in candidates.iter().enumerate() {
            s += &format!(
                "a=candidate:{} 1 udp {} {} {} typ host\r\n",
                i + 1,
                2_122_260_223 - i as u32 * 256,
                c.ip(),
                c.port()
            );
        }
        s += &format!(
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:actpass\r\na=mid:0\r\n\
             a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n",
            self.ufrag, self.pwd, self.identity.fingerprint
        );
        s
    }

    /// Reads the relay's answer: its ICE credentials (kept for the checks) and its host
    /// candidates of component 1 (RTP), in the answer's order.
    pub fn learn_answer(&mut self, sdp: &str) -> Vec<SocketAddr> {
        let mut candidates = Vec::new();
        for l in sdp.lines() {
            if let Some(u) = l.strip_prefix("a=ice-ufrag:") {
                self.relay_ufrag = u.trim().to_string();
            } else if let Some(p) = l.strip_prefix("a=ice-pwd:") {
                self.relay_pwd = p.trim().to_string();
            } else if let Some(c) = l.strip_prefix("a=candidate:") {
                let f: Vec<&str> = c.split_whitespace().collect();
                if f.len() >= 6 && f[1] == "1" {
                    if let (Ok(ip), Ok(port)) = (f[4].parse(), f[5].parse()) {
                        candidates.push(SocketAddr::new(ip, port));
                    }
                }
            }
        }
        candidates
    }

    /// A connectivity (or consent) check towards the relay: a binding request with
    /// USE-CANDIDATE (aggressive nomination), authenticated with the relay's password.
    pub fn binding_request(&mut self) -> Vec<u8> {
        let mut tx = [0u8; 12];
        tx[4..].copy_from_slice(&self.next_tx.to_be_bytes());
        self.next_tx += 1;
        self.pending.push(tx);
        let username = format!("{}:{}", self.relay_ufrag, self.ufrag);
        relay_core::stun::binding_request(&tx, &username, &self.relay_pwd, 0x0102_0304_0506_0708)
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
                let Ok(m) = stun::StunMessage::new_checked(datagram) else { return Received::OtherStun };
                let answers = m.class() == stun::Class::Success && m.method() == stun::BINDING;
                match self.pending.iter().position(|p| p == m.transaction_id()) {
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
