//! [`Endpoint`]: the media side of a SIP user agent, for tests. It writes the SDP it
//! offers or answers, reads where the relay wants its media from the SDP it gets back,
//! and sends and receives RTP, protected with SDES-SRTP when its SDP says RTP/SAVP.
//! The SRTP is the core's own [`relay_core::srtp::Context`] and the keys are
//! [`control::sdes`]'s, so an endpoint speaks exactly what the relay implements.

use std::net::SocketAddr;

use control::sdes::{self, Crypto};
use relay_core::packet::rtp::{emit_header, RtpPacket, FIXED_HEADER};
use relay_core::srtp::{Context, Suite};
use rules::dataplane::{Mki, SrtpKey};

/// The suite an endpoint offers and picks unless told otherwise.
pub const DEFAULT_SUITE: Suite = Suite::AesCm128HmacSha1_80;

/// What an endpoint's SDP says about the media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    /// Hold: a=sendonly with c=0.0.0.0 (the RFC 2543 form the engine treats as "no peer").
    Hold,
}

pub struct Endpoint {
    pub name: &'static str,
    /// Where it sends from and receives on (its inside address behind any NAT).
    pub addr: SocketAddr,
    /// Where the relay wants its media (from the last SDP the relay sent it).
    pub relay: Option<SocketAddr>,
    pub ssrc: u32,
    /// The SRTP suite it offers, and picks from the relay's offer.
    pub suite: Suite,
    /// The MKI its keys (and so its packets) carry, from the next key on.
    pub mki: Option<Mki>,
    seq: u16,
    ts: u32,
    /// SDES: its own key (in its SDP; protects what it sends) and the context for it.
    key: Option<Crypto>,
    tx: Option<Context>,
    /// The relay's key for this leg (from the relay's SDP): what it receives.
    rx: Option<Context>,
    /// SDP o= version, bumped by every SDP it sends.
    version: u32,
}

fn context(k: &SrtpKey) -> Context {
    Context::from_key(k).expect("key and salt of the suite's lengths")
}

impl Endpoint {
    pub fn new(name: &'static str, addr: SocketAddr, ssrc: u32) -> Endpoint {
        Endpoint {
            name,
            addr,
            relay: None,
            ssrc,
            suite: DEFAULT_SUITE,
            mki: None,
            seq: 1000,
            ts: 0,
            key: None,
            tx: None,
            rx: None,
            version: 0,
        }
    }

    /// Use SDES-SRTP from the next SDP on, with a fresh key (called again: a re-key).
    pub fn new_srtp_key(&mut self) {
        let key = sdes::generate(self.suite).with_mki(self.mki.clone());
        self.tx = Some(context(&key));
        self.key = Some(Crypto { tag: 1, key });
    }

    /// Use SRTP keys that came from elsewhere (a DTLS handshake): `tx` protects what it
    /// sends, `rx` opens what it receives. Its SDP stays as it was (no a=crypto).
    pub fn use_keys(&mut self, tx: &SrtpKey, rx: &SrtpKey) {
        self.tx = Some(context(tx));
        self.rx = Some(context(rx));
    }

    pub fn srtp(&self) -> bool {
        self.key.is_some()
    }

    /// The SDP this endpoint sends (offer or answer): one audio section, PCMU.
    pub fn sdp(&mut self, dir: Direction) -> String {
        self.version += 1;
        let ip = self.addr.ip();
        let c = match dir {
            Direction::SendRecv => ip.to_string(),
            Direction::Hold => "0.0.0.0".to_string(),
        };
        let proto = if self.srtp() { "RTP/SAVP" } else { "RTP/AVP" };
        let mut s = format!(
            "v=0\r\no=- 4711 {} IN IP4 {ip}\r\ns=sim\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio {} {proto} 0\r\n\
             a=rtpmap:0 PCMU/8000\r\n",
            self.version,
            self.addr.port()
        );
        if let Some(k) = &self.key {
            s.push_str(&sdes::format(k, false, false));
            s.push_str("\r\n");
        }
        s.push_str(match dir {
            Direction::SendRecv => "a=sendrecv\r\n",
            Direction::Hold => "a=sendonly\r\n",
        });
        s
    }

    /// Read the relay's SDP for this endpoint: where to send (unchanged by a held c=0.0.0.0),
    /// and (SRTP) the relay's key,
    /// the first a=crypto line whose suite this endpoint uses. An answerer answers with
    /// the same tag.
    pub fn learn(&mut self, relay_sdp: &str) {
        let mut ip = None;
        let mut port = None;
        let mut crypto = None;
        for l in relay_sdp.lines() {
            if let Some(c) = l.strip_prefix("c=IN IP4 ").or_else(|| l.strip_prefix("c=IN IP6 ")) {
                ip = c.trim().parse().ok();
            } else if let Some(m) = l.strip_prefix("m=audio ") {
                port = m.split(' ').next().and_then(|p| p.parse().ok());
            } else if l.starts_with("a=crypto:") && crypto.is_none() {
                crypto = sdes::parse(l).ok().filter(|c| c.key.suite == self.suite);
            }
        }
        // c=0.0.0.0 (held) asks not to be sent to: the relay's address stays known
        if let (Some(ip), Some(port)) = (ip.filter(|i: &std::net::IpAddr| !i.is_unspecified()), port) {
            self.relay = Some(SocketAddr::new(ip, port));
        }
        self.rx = crypto.as_ref().map(|c| context(&c.key));
        if let (Some(c), Some(mine)) = (crypto, self.key.as_mut()) {
            mine.tag = c.tag;
        }
    }

    /// The next RTP packet (20 ms of PCMU) carrying `payload`, SRTP-protected if this
    /// endpoint uses SRTP.
    pub fn rtp(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; FIXED_HEADER + payload.len() + Suite::MAX_OVERHEAD];
        emit_header(&mut buf, 0, false, self.seq, self.ts, self.ssrc);
        buf[FIXED_HEADER..FIXED_HEADER + payload.len()].copy_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let mut len = FIXED_HEADER + payload.len();
        if let Some(tx) = self.tx.as_mut() {
            len = tx.protect_rtp(&mut buf, len).expect("a fresh index");
        }
        buf.truncate(len);
        buf
    }

    /// The payload of an RTP packet this endpoint received (None: not RTP, or SRTP that
    /// does not authenticate under the relay's key).
    pub fn open(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut buf = datagram.to_vec();
        let mut len = buf.len();
        if let Some(rx) = self.rx.as_mut() {
            len = rx.unprotect_rtp(&mut buf, len).ok()?;
        }
        let p = RtpPacket::new_checked(&buf[..len]).ok()?;
        Some(p.payload().to_vec())
    }
}
