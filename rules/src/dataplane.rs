//! What the control plane asks of the data plane, and what it reads back.
//!
//! The control plane never touches packets. It reserves relay sockets, applies one
//! forwarding rule per relay socket and reads counters. The backends implement this over
//! their workers; control-plane tests use `MemoryDataPlane` (feature `testing`).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use crate::suite::Suite;
pub use crate::webrtc::{DtlsIdentity, DtlsRole, DtlsRule, Fingerprint, HashFunction, IceRule};

#[cfg(feature = "testing")]
pub use crate::memory::{MemoryDataPlane, MemoryState};

/// What a relay socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    Rtp,
    Rtcp,
    /// RTP socket that also carries RTCP (rtcp-mux, RFC 5761).
    RtpMux,
    /// UDP that is not RTP (T.38 UDPTL): forwarded without RTP validation.
    Udp,
}

/// How the source of the media arriving on a relay socket is judged (see docs/latching.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LatchPolicy {
    /// Send to the SDP address and never learn one from packets (`asymmetric`).
    pub asymmetric: bool,
    /// Trust the SDP address when it is usable (`trust-address`): no learning.
    pub trust_address: bool,
    /// Drop packets whose source is not the latched (or signalled) peer (`strict-source`).
    pub strict_source: bool,
}

/// An SDES master key for one direction of one leg. Build it with [`SrtpKey::new`], which
/// checks the lengths against the suite; a data plane still refuses a key it cannot use
/// ([`ApplyError::UnusableKey`]) rather than forward without it.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey {
    pub suite: Suite,
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
    /// The master key identifier every packet under this key carries (RFC 3711 §3.1,
    /// SDES `|value:length`, RFC 4568 §6.1); None: the packets carry none.
    pub mki: Option<Mki>,
}

impl SrtpKey {
    /// A key whose master key and salt have the lengths `suite` takes, without an MKI.
    pub fn new(suite: Suite, key: &[u8], salt: &[u8]) -> Result<SrtpKey, KeyLengthError> {
        let k = SrtpKey { suite, key: key.to_vec(), salt: salt.to_vec(), mki: None };
        k.check()?;
        Ok(k)
    }

    /// The same key, its packets carrying `mki`.
    pub fn with_mki(mut self, mki: Option<Mki>) -> SrtpKey {
        self.mki = mki;
        self
    }

    /// The lengths still fit the suite (the fields are public).
    pub fn check(&self) -> Result<(), KeyLengthError> {
        let e = KeyLengthError { suite: self.suite, key_len: self.key.len(), salt_len: self.salt.len() };
        if e.key_len == self.suite.key_len() && e.salt_len == self.suite.salt_len() {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// A master key identifier: 1 to [`Suite::MAX_MKI_LEN`] bytes (checked when it is made).
/// Not secret: it travels in clear in every packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mki(Vec<u8>);

impl Mki {
    /// None for an empty or too long identifier.
    pub fn new(bytes: &[u8]) -> Option<Mki> {
        (1..=Suite::MAX_MKI_LEN).contains(&bytes.len()).then(|| Mki(bytes.to_vec()))
    }

    /// SDES's form (RFC 4568 §6.1 `value:length`): `value` big-endian in `len` bytes; None
    /// when the length is out of range or the value does not fit in it.
    pub fn from_value(value: u64, len: usize) -> Option<Mki> {
        if len < 8 && value >> (8 * len) != 0 {
            return None;
        }
        let mut b = vec![0u8; len];
        let be = value.to_be_bytes();
        let n = len.min(8);
        b[len - n..].copy_from_slice(&be[8 - n..]);
        Mki::new(&b)
    }

    /// The value SDES writes: the identifier's last 8 bytes as a big-endian integer
    /// (exactly the value it was made from, for identifiers made by [`Mki::from_value`]).
    pub fn value(&self) -> u64 {
        let n = self.0.len().min(8);
        self.0[self.0.len() - n..].iter().fold(0u64, |v, b| v << 8 | *b as u64)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The state store's form: `{"suite": "AES_CM_128_HMAC_SHA1_80", "key": hex, "salt": hex,
/// "mki": hex or null}`. Deserialising checks the lengths as [`SrtpKey::new`] does.
impl Serialize for SrtpKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        KeyForm {
            suite: self.suite.name().to_string(),
            key: hex(&self.key),
            salt: hex(&self.salt),
            mki: self.mki.as_ref().map(|m| hex(m.as_bytes())),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SrtpKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SrtpKey, D::Error> {
        use serde::de::Error;
        let f = KeyForm::deserialize(d)?;
        let suite = Suite::from_name(&f.suite).ok_or_else(|| D::Error::custom(format!("unknown suite {}", f.suite)))?;
        let bytes = |h: &str| unhex(h).ok_or_else(|| D::Error::custom("key material is not hex"));
        let mki = match &f.mki {
            None => None,
            Some(h) => Some(Mki::new(&bytes(h)?).ok_or_else(|| D::Error::custom("MKI length out of range"))?),
        };
        let k = SrtpKey::new(suite, &bytes(&f.key)?, &bytes(&f.salt)?).map_err(D::Error::custom)?;
        Ok(k.with_mki(mki))
    }
}

#[derive(Serialize, Deserialize)]
struct KeyForm {
    suite: String,
    key: String,
    salt: String,
    mki: Option<String>,
}

impl Drop for KeyForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
        zeroize::Zeroize::zeroize(&mut self.salt);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(h: &str) -> Option<Vec<u8>> {
    if h.len() % 2 != 0 || !h.is_ascii() {
        return None;
    }
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok()).collect()
}

/// Key material is wiped when a key goes away (every clone wipes its own copy).
impl Drop for SrtpKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
        zeroize::Zeroize::zeroize(&mut self.salt);
    }
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never log key material
        match &self.mki {
            None => write!(f, "SrtpKey({})", self.suite),
            Some(m) => write!(f, "SrtpKey({} MKI {}:{})", self.suite, m.value(), m.len()),
        }
    }
}

/// A master key or salt whose length does not fit its suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLengthError {
    pub suite: Suite,
    pub key_len: usize,
    pub salt_len: usize,
}

impl fmt::Display for KeyLengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} takes a {}-byte master key and a {}-byte salt, not {} and {}",
            self.suite,
            self.suite.key_len(),
            self.suite.salt_len(),
            self.key_len,
            self.salt_len
        )
    }
}

impl std::error::Error for KeyLengthError {}

/// Which of a rule's two SRTP keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDirection {
    /// `srtp_in`: what the party on the socket sends.
    In,
    /// `srtp_out`: what leaves through the socket towards that party.
    Out,
}

impl fmt::Display for KeyDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyDirection::In => "incoming",
            KeyDirection::Out => "outgoing",
        })
    }
}

/// Why a data plane refused a rule. A refused rule is never applied in part: the socket
/// forwards nothing (and nothing is forwarded into it) until a rule is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// No relay socket is open at this address.
    NotOpen(SocketAddr),
    /// An SRTP key of the rule cannot build a context: forwarding without it would send or
    /// accept media in plain.
    UnusableKey { direction: KeyDirection, why: KeyLengthError },
    /// The backend could not carry the rule out (what went wrong, for the operator).
    Backend(String),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::NotOpen(a) => write!(f, "no relay socket is open at {a}"),
            ApplyError::UnusableKey { direction, why } => write!(f, "unusable {direction} SRTP key: {why}"),
            ApplyError::Backend(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ApplyError {}

/// Forwarding rule for one relay socket: packets that arrive on `local` leave through
/// `egress_rtp` / `egress_rtcp` (other relay sockets) towards that socket's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    pub local: SocketAddr,
    pub kind: FlowKind,
    /// Where signalling says the endpoint on this socket's side is (None: unknown, or held).
    pub signalled_peer: Option<SocketAddr>,
    pub egress_rtp: Option<SocketAddr>,
    pub egress_rtcp: Option<SocketAddr>,
    pub latch: LatchPolicy,
    /// Forget the latched peer (signalling changed the endpoint's address).
    pub reset_latch: bool,
    /// The address the signalling for this endpoint came from (ng `received-from`: the
    /// SIP source the proxy saw). Before the first latch a packet from this address, or
    /// from `signalled_peer`, latches at once; other sources only after a grace period.
    pub sip_source: Option<std::net::IpAddr>,
    /// RTP clock rate of the main payload type, for RFC 3550 jitter.
    pub clock_rate: u32,
    /// The party on this socket sends SRTP with this key: authenticate and decrypt.
    pub srtp_in: Option<SrtpKey>,
    /// Packets leaving through this socket are protected with this key.
    pub srtp_out: Option<SrtpKey>,
    /// The relay is an ICE-lite agent on this socket: it answers the peer's checks, and
    /// media leaves towards the peer only to an address that passed one, while its
    /// consent is fresh (RFC 7675).
    pub ice: Option<IceRule>,
    /// The SRTP keys of this socket come from a DTLS handshake on it (`srtp_in`/`srtp_out`
    /// are then None): media in either direction waits for the handshake.
    pub dtls: Option<DtlsRule>,
    /// The leg's other sockets of the same component (its ICE host candidates on the
    /// interface's other addresses; each one's rule names the rest). Media forwarded into
    /// this socket leaves from whichever of the group the party's ICE nominated (with that
    /// socket's DTLS keys): the peer picks the address family, not the relay. Empty
    /// without ICE.
    pub ice_siblings: Vec<SocketAddr>,
    /// The RTP payload type of RFC 4733 telephone-events the party on this socket sends
    /// (its SDP's `telephone-event` rtpmap), for counting DTMF; None: not offered.
    pub telephone_event_pt: Option<u8>,
    /// Copy this socket's packets to a recording or a live capture (None: no cost).
    pub tap: Option<crate::tap::Tap>,
}

impl FlowRule {
    /// A plain RTP rule with default latching and an 8 kHz clock: packets arriving on
    /// `local` (from `peer`, as signalled) leave through `egress`. The other fields are
    /// set with struct update syntax where they differ.
    pub fn rtp(local: SocketAddr, peer: Option<SocketAddr>, egress: Option<SocketAddr>) -> FlowRule {
        FlowRule {
            local,
            kind: FlowKind::Rtp,
            signalled_peer: peer,
            egress_rtp: egress,
            egress_rtcp: None,
            latch: LatchPolicy::default(),
            reset_latch: false,
            sip_source: None,
            clock_rate: 8000,
            srtp_in: None,
            srtp_out: None,
            ice: None,
            dtls: None,
            ice_siblings: Vec::new(),
            telephone_event_pt: None,
            tap: None,
        }
    }
}

/// Counters of one relay socket: what arrived on it, what was done with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
    /// Datagrams received and forwarded.
    pub forwarded: u64,
    /// Datagrams dropped, all reasons.
    pub dropped: u64,
    pub drop_malformed: u64,
    pub drop_strict_source: u64,
    /// Valid packets from a source other than the latched peer (RTP Bleed protection).
    pub drop_foreign_source: u64,
    pub drop_no_destination: u64,
    pub drop_send_error: u64,
    /// SRTP/SRTCP that failed authentication (or was malformed under encryption).
    pub drop_srtp_auth: u64,
    /// SRTP/SRTCP replayed or older than the replay window.
    pub drop_srtp_replay: u64,
    /// Packets the egress SRTP context refused to protect because their packet index
    /// (sequence number with rollover, or SRTCP index) was already used under that key
    /// (a repeated or restarted sequence from the sending party: never encrypted twice
    /// under one keystream or nonce), or the key's index space is used up.
    pub drop_srtp_index: u64,
    /// Packets whose source the media address policy denies (loopback, the relay's own
    /// addresses, ...): dropped before any crypto, never latched.
    pub drop_denied_source: u64,
    /// Packets not sent because the only destination known was an address the media
    /// address policy denies (a signalled peer it refused).
    pub drop_denied_destination: u64,
    /// WebRTC sockets: media (either way) before the DTLS handshake gave the keys.
    pub drop_dtls_pending: u64,
    /// ICE sockets: media from an address that passed no check, or whose consent expired.
    pub drop_ice_unchecked: u64,
    /// ICE sockets: media towards the peer with no address of fresh consent to go to.
    pub drop_no_consent: u64,
    /// STUN that got no success answer (malformed, unauthenticated, or answered with an
    /// error), or STUN on a socket without ICE.
    pub drop_stun: u64,
    /// DTLS datagrams refused: before an ICE check, from another source than the
    /// handshake's, rejected by the handshake, or on a socket without DTLS.
    pub drop_dtls: u64,
    /// Replies (STUN answers, DTLS flights) not sent because the send queue was full
    /// (outgoing: not part of `dropped`).
    pub drop_transmit_full: u64,
    /// STUN binding requests answered with success.
    pub stun_answered: u64,
    /// DTLS handshakes that completed and installed SRTP keys.
    pub dtls_handshakes: u64,
    /// DTLS handshakes that failed or did not complete in time (cleaned up).
    pub dtls_failed: u64,
    pub rtcp_packets: u64,
    pub rtcp_bytes: u64,
    /// When the last accepted packet was forwarded (liveness for --timeout), in
    /// milliseconds on the relay's monotonic clock; 0 = never.
    pub last_packet_ms: u64,
    pub latched_peer: Option<SocketAddr>,
    /// Times the latch moved to a new source after the old one went silent.
    pub relatched: u64,
    pub ssrc: u32,
    /// RFC 3550 A.3 cumulative loss of the current SSRC.
    pub lost: i64,
    /// RFC 3550 A.8 interarrival jitter, in microseconds.
    pub jitter_us: u64,
    /// RTCP compounds from the party whose SR, RR or XR blocks were read (after the source
    /// checks and SRTCP authentication: a spoofed report is never read).
    pub rtcp_reports: u64,
    /// What the party last reported about the stream it receives through this socket.
    pub remote: Option<crate::quality::ReceptionReport>,
    /// Round-trip time between the relay and the party, from its last report that named
    /// an SR the relay forwarded to it (RFC 3550 §6.4.1 LSR/DLSR), in microseconds.
    pub rtt_us: Option<u64>,
    /// The party's last RFC 3611 VoIP metrics block.
    pub voip_metrics: Option<crate::quality::VoipMetrics>,
    /// RFC 4733 telephone-events the party sent (each event once, its retransmitted end
    /// packets included).
    pub dtmf_events: u64,
    /// The code of the last of them (0-9, 10 = *, 11 = #, 12-15 = A-D, ...). Never
    /// serialised: the HTTP API's reads need no token, and polling the last digit would
    /// spell out PINs and card numbers (the ng `query` reply, to the SIP proxy, has it).
    #[serde(skip_serializing)]
    pub dtmf_last_event: Option<u8>,
}

impl FlowCounters {
    /// Combine the counters of one flow kept by several single-writer workers (a backend
    /// whose packets for one socket can take more than one path): sums, the latest
    /// packet, and the RTP view (latch, SSRC, loss, jitter) of whichever saw it last.
    pub fn merge(&mut self, o: &FlowCounters) {
        let newer = o.last_packet_ms > self.last_packet_ms;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.forwarded += o.forwarded;
        self.dropped += o.dropped;
        self.drop_malformed += o.drop_malformed;
        self.drop_strict_source += o.drop_strict_source;
        self.drop_foreign_source += o.drop_foreign_source;
        self.drop_no_destination += o.drop_no_destination;
        self.drop_send_error += o.drop_send_error;
        self.drop_srtp_auth += o.drop_srtp_auth;
        self.drop_srtp_replay += o.drop_srtp_replay;
        self.drop_srtp_index += o.drop_srtp_index;
        self.drop_denied_source += o.drop_denied_source;
        self.drop_denied_destination += o.drop_denied_destination;
        self.drop_dtls_pending += o.drop_dtls_pending;
        self.drop_ice_unchecked += o.drop_ice_unchecked;
        self.drop_no_consent += o.drop_no_consent;
        self.drop_stun += o.drop_stun;
        self.drop_dtls += o.drop_dtls;
        self.drop_transmit_full += o.drop_transmit_full;
        self.stun_answered += o.stun_answered;
        self.dtls_handshakes += o.dtls_handshakes;
        self.dtls_failed += o.dtls_failed;
        self.rtcp_packets += o.rtcp_packets;
        self.rtcp_bytes += o.rtcp_bytes;
        self.relatched += o.relatched;
        if newer || self.latched_peer.is_none() {
            self.latched_peer = o.latched_peer.or(self.latched_peer);
        }
        if newer {
            self.last_packet_ms = o.last_packet_ms;
            self.ssrc = o.ssrc;
            self.lost = o.lost;
            self.jitter_us = o.jitter_us;
        }
        self.rtcp_reports += o.rtcp_reports;
        self.dtmf_events += o.dtmf_events;
        // the party's reports: the later one (each carries its arrival time)
        let later = |a: Option<u64>, b: Option<u64>| b.is_some() && (a.is_none() || b > a);
        if later(self.remote.map(|r| r.at_ms), o.remote.map(|r| r.at_ms)) {
            self.remote = o.remote;
            self.rtt_us = o.rtt_us.or(self.rtt_us);
        } else if self.rtt_us.is_none() {
            self.rtt_us = o.rtt_us;
        }
        if later(self.voip_metrics.map(|r| r.at_ms), o.voip_metrics.map(|r| r.at_ms)) {
            self.voip_metrics = o.voip_metrics;
        }
        if newer || self.dtmf_last_event.is_none() {
            self.dtmf_last_event = o.dtmf_last_event.or(self.dtmf_last_event);
        }
    }
}

pub trait DataPlane: Send + Sync {
    /// Bind (reserve) a relay socket. `affinity` groups the sockets of one call onto one
    /// worker, so a call's flow state is owned by one thread.
    fn open(&self, local: SocketAddr, affinity: u64) -> io::Result<()>;
    /// Apply the rule of an open socket, replacing the one it had. On an error the socket
    /// carries no rule at all, never part of this one (see [`ApplyError`]).
    fn apply(&self, rule: FlowRule) -> Result<(), ApplyError>;
    /// Remove the rule and release the socket.
    fn close(&self, local: SocketAddr);
    fn counters(&self, local: SocketAddr) -> Option<FlowCounters>;
    /// Data-plane-wide counters for /metrics: (name, labels, value).
    fn metrics(&self) -> Vec<(String, String, u64)> {
        Vec::new()
    }
    /// The data plane's monotonic clock in milliseconds (the time base of `last_packet_ms`).
    fn now_ms(&self) -> u64;
    /// What an open socket has learned (latch, SRTP indices, DTLS keys, ICE peer,
    /// counters), for the state store; None: not open, or the data plane keeps none.
    /// Not on the packet path, but it may wait for the socket's worker.
    fn flow_state(&self, _local: SocketAddr) -> Option<crate::state::FlowState> {
        None
    }
    /// After a restart: apply `rule` to an open socket and resume from `state`, as if the
    /// socket had never gone away. Errors as [`DataPlane::apply`].
    fn restore(&self, rule: FlowRule, _state: crate::state::FlowState) -> Result<(), ApplyError> {
        self.apply(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mki_in_sdes_form() {
        let m = Mki::from_value(1, 4).unwrap();
        assert_eq!((m.as_bytes(), m.value()), (&[0, 0, 0, 1][..], 1));
        assert_eq!(Mki::from_value(258, 2).unwrap().as_bytes(), [1, 2]);
        assert_eq!(Mki::from_value(256, 1), None);
        assert_eq!(Mki::from_value(1, 0), None);
        assert_eq!(Mki::from_value(1, Suite::MAX_MKI_LEN + 1), None);
        let long = Mki::from_value(u64::MAX, 32).unwrap();
        assert_eq!((long.len(), long.value(), long.as_bytes()[23]), (32, u64::MAX, 0));
        assert_eq!(Mki::new(&[]), None);
    }

    #[test]
    fn merged_counters_sum_and_keep_the_latest_rtp_view() {
        let a = FlowCounters {
            packets: 10,
            forwarded: 9,
            dropped: 1,
            drop_malformed: 1,
            last_packet_ms: 100,
            ssrc: 1,
            ..Default::default()
        };
        let peer = Some("192.0.2.1:4000".parse().unwrap());
        let b = FlowCounters {
            packets: 5,
            forwarded: 5,
            last_packet_ms: 200,
            latched_peer: peer,
            ssrc: 2,
            lost: 3,
            drop_denied_source: 3,
            drop_srtp_index: 4,
            drop_denied_destination: 5,
            drop_dtls_pending: 6,
            dtls_handshakes: 1,
            ..Default::default()
        };
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!((m.packets, m.forwarded, m.dropped, m.drop_malformed), (15, 14, 1, 1));
        assert_eq!((m.last_packet_ms, m.latched_peer, m.ssrc, m.lost), (200, peer, 2, 3));
        assert_eq!((m.drop_denied_source, m.drop_srtp_index, m.drop_denied_destination), (3, 4, 5));
        assert_eq!((m.drop_dtls_pending, m.dtls_handshakes), (6, 1));
        let mut m2 = b.clone();
        m2.merge(&a);
        assert_eq!((m2.packets, m2.last_packet_ms, m2.latched_peer, m2.ssrc), (15, 200, peer, 2));
    }

    #[test]
    fn merged_counters_keep_the_latest_report_and_sum_events() {
        use crate::quality::{ReceptionReport, VoipMetrics};
        let report = |at_ms| Some(ReceptionReport { fraction_lost: at_ms as u8, at_ms, ..Default::default() });
        let a = FlowCounters {
            rtcp_reports: 2,
            remote: report(100),
            rtt_us: Some(40_000),
            dtmf_events: 1,
            dtmf_last_event: Some(4),
            last_packet_ms: 100,
            ..Default::default()
        };
        let b = FlowCounters {
            rtcp_reports: 3,
            remote: report(200),
            voip_metrics: Some(VoipMetrics { mos_lq_x10: Some(41), at_ms: 200, ..Default::default() }),
            dtmf_events: 2,
            dtmf_last_event: Some(11),
            last_packet_ms: 200,
            ..Default::default()
        };
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!((m.rtcp_reports, m.dtmf_events, m.dtmf_last_event), (5, 3, Some(11)));
        assert_eq!((m.remote, m.rtt_us, m.voip_metrics), (b.remote, Some(40_000), b.voip_metrics));
        let mut m = b.clone();
        m.merge(&a);
        assert_eq!((m.remote, m.rtt_us, m.dtmf_last_event), (b.remote, Some(40_000), Some(11)));
        // the state store's form keeps them — all but the last DTMF digit, which is never
        // serialised (the token-free HTTP views must not show it); an older one without them
        // reads as none
        let j = serde_json::to_string(&m).unwrap();
        assert!(!j.contains("dtmf_last_event"), "{j}");
        assert_eq!(serde_json::from_str::<FlowCounters>(&j).unwrap(), FlowCounters { dtmf_last_event: None, ..m });
        assert_eq!(serde_json::from_str::<FlowCounters>("{\"packets\": 1}").unwrap().remote, None);
    }

    #[test]
    fn a_key_survives_the_state_store_and_a_bad_one_is_refused() {
        let k = SrtpKey::new(Suite::AeadAes256Gcm, &[7; 32], &[9; 12]).unwrap().with_mki(Mki::from_value(5, 2));
        let j = serde_json::to_string(&k).unwrap();
        assert!(j.contains("\"AEAD_AES_256_GCM\""), "{j}");
        assert_eq!(serde_json::from_str::<SrtpKey>(&j).unwrap(), k);
        let short = j.replace(&"07".repeat(32), &"07".repeat(31));
        assert!(serde_json::from_str::<SrtpKey>(&short).is_err());
        assert!(serde_json::from_str::<SrtpKey>(&j.replace("AEAD_AES_256_GCM", "ROT13")).is_err());
        assert!(serde_json::from_str::<SrtpKey>(&j.replace(&"09".repeat(12), "zz")).is_err());
    }

    #[test]
    fn a_key_must_fit_its_suite() {
        let s = Suite::AesCm128HmacSha1_80;
        let k = SrtpKey::new(s, &[1; 16], &[2; 14]).unwrap();
        assert_eq!(format!("{k:?}"), "SrtpKey(AES_CM_128_HMAC_SHA1_80)");
        let e = SrtpKey::new(s, &[1; 15], &[2; 14]).unwrap_err();
        assert_eq!(e, KeyLengthError { suite: s, key_len: 15, salt_len: 14 });
        assert!(SrtpKey::new(Suite::AeadAes128Gcm, &[1; 16], &[2; 14]).is_err());
        let k = k.with_mki(Mki::from_value(1, 4));
        assert_eq!(format!("{k:?}"), "SrtpKey(AES_CM_128_HMAC_SHA1_80 MKI 1:4)");
        let why = ApplyError::UnusableKey { direction: KeyDirection::Out, why: e };
        assert_eq!(
            why.to_string(),
            "unusable outgoing SRTP key: AES_CM_128_HMAC_SHA1_80 takes a 16-byte master key and a 14-byte salt, not 15 and 14"
        );
    }
}
