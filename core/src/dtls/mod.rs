//! DTLS-SRTP on one relay socket (RFC 5763, 5764), sans-IO: datagrams and explicit time in,
//! datagrams to send, a retransmission deadline and finally the SRTP keys out.
//!
//! The handshake itself is `dimpl` (docs/dependencies.md): DTLS 1.2 and 1.3, auto-sensed
//! from the peer's ClientHello when the relay is the server, a hybrid ClientHello when it is
//! the client. This module adds what WebRTC needs around it: the role from the SDP, the
//! peer's certificate checked against its `a=fingerprint` before any key leaves, the
//! exported keys mapped to the relay's SRTP suites, and malformed datagrams reported
//! instead of silently dropped.
//!
//! use_srtp profiles, offered as the client in this order: AEAD_AES_256_GCM,
//! AEAD_AES_128_GCM, AES128_CM_SHA1_80, AES128_CM_SHA1_32 (dimpl's `SrtpProfile::ALL`; the
//! last one comes from the patched copy in vendor/dimpl, see its PATCHES.md); as the server
//! dimpl picks the first of these the client offers (DTLS 1.2) or the client's first one
//! (DTLS 1.3). Each maps to the SDES suite with the same transforms (`keys::suite_of`).
//!
//! Bounds on what a peer makes a session hold: datagrams over 9216 bytes are refused;
//! dimpl buffers 30 incoming records for reassembly and retains at most 64 datagrams before
//! the first complete ClientHello; 32 outgoing datagrams; a handshake not done in 40 s fails
//! (the data plane drops the session and counts it). The server answers a ClientHello
//! with a cookie round trip (HelloVerifyRequest / HelloRetryRequest), so a spoofed source
//! gets one small datagram, not a certificate flight.
//!
//! Not zeroized: dimpl's copy of the certificate key and of the exported keying material
//! (its types have no Drop that wipes them); the `SrtpKey`s handed out are.
//!
//! Time: dimpl counts in `Instant`s; `now_us` is mapped onto one process-wide anchor
//! (`anchor + now_us`), so dimpl's deadlines map back to `now_us` exactly and no clock is
//! read while a session runs.

mod identity;
mod keys;
mod record;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, DtlsCertificate, Output};
use rules::dataplane::SrtpKey;
use rules::webrtc::{DtlsRole, DtlsRule, Fingerprint};

pub use identity::{fingerprint, generate_identity};

/// Datagrams waiting in `poll_transmit`: a flight is a handful of records (dimpl queues at
/// most 10 outgoing), so more than this means nobody is polling; the oldest go first.
const MAX_QUEUED_DATAGRAMS: usize = 32;

/// The largest datagram dimpl may ask to emit (it packs records up to its MTU, 1150 bytes).
const MAX_DATAGRAM: usize = 16 * 1024;

/// Upper bound of poll_output calls in one drain: dimpl ends every cycle with a Timeout,
/// this only keeps a library bug from becoming an endless loop.
const MAX_OUTPUTS_PER_DRAIN: usize = 256;

/// dimpl reports "nothing armed" as a deadline ten years away; anything beyond this is
/// reported as no deadline at all.
const NO_TIMER_BEYOND_US: u64 = 3600 * 1_000_000;

/// Larger datagrams are refused before dimpl sees them: handshake records fit a path MTU
/// (browsers send at most ~1200 bytes, jumbo frames 9000), and a passive session retains up
/// to 64 datagrams until the first complete ClientHello, so this bounds that to ~590 KB.
const MAX_DATAGRAM_IN: usize = 9216;

/// `now_us` is capped here (~35 years) so that `anchor + now_us` never overflows an Instant.
const MAX_NOW_US: u64 = 1 << 50;

/// The SRTP keys of one socket once the handshake has completed and the peer's certificate
/// matched its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsKeys {
    /// The relay sends with this one (the socket's `srtp_out`).
    pub local: SrtpKey,
    /// The peer sends with this one (the socket's `srtp_in`).
    pub remote: SrtpKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsState {
    /// Handshake running, or complete but the peer's fingerprint is not known yet.
    Handshaking,
    /// Handshake complete and the peer's certificate matched: keys available.
    Connected,
    /// Fatal (handshake error, deadline passed, certificate mismatch, peer closed): the data
    /// plane throws the session away and counts it.
    Failed(String),
}

/// Why a datagram was refused, a certificate not made, or a session failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsError(pub String);

impl fmt::Display for DtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DtlsError {}

/// One DTLS association on one relay socket.
pub struct DtlsSession {
    /// Boxed: dimpl's state is ~3.5 KB, and sessions move around the data plane's tables.
    dtls: Box<Dtls>,
    role: DtlsRole,
    remote_fingerprint: Option<Fingerprint>,
    /// The peer's leaf certificate (DER) as the handshake presented it.
    peer_cert: Option<Vec<u8>>,
    /// Exported keys, held back until the certificate has matched.
    keys: Option<DtlsKeys>,
    keys_taken: bool,
    handshake_done: bool,
    transmit: VecDeque<Vec<u8>>,
    timeout_us: Option<u64>,
    state: DtlsState,
    /// Reused output buffer for dimpl's records.
    buf: Vec<u8>,
}

impl fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DtlsSession({:?}, {:?})", self.role, self.state)
    }
}

impl DtlsSession {
    /// A session in the rule's role: Active (`a=setup:active`) is the DTLS client and has its
    /// ClientHello ready in `poll_transmit`; Passive waits for one.
    pub fn new(rule: &DtlsRule, now_us: u64) -> Result<DtlsSession, DtlsError> {
        let cert =
            DtlsCertificate { certificate: rule.identity.cert_der.clone(), private_key: rule.identity.key_der.clone() };
        let config = config()?;
        let active = rule.role == DtlsRole::Active;
        let dtls = guard(|| {
            let mut dtls = Box::new(Dtls::new_auto(config, cert, instant(now_us)));
            if active {
                dtls.set_active(true);
            }
            dtls
        })
        .map_err(DtlsError)?;
        let mut s = DtlsSession {
            dtls,
            role: rule.role,
            remote_fingerprint: rule.remote_fingerprint.clone(),
            peer_cert: None,
            keys: None,
            keys_taken: false,
            handshake_done: false,
            transmit: VecDeque::new(),
            timeout_us: None,
            state: DtlsState::Handshaking,
            buf: vec![0; 2048],
        };
        let r = guarded(|| s.dtls.handle_timeout(instant(now_us)));
        s.after(now_us, r)?;
        Ok(s)
    }

    /// A datagram the demultiplexer classified as DTLS. Err: malformed framing (the session
    /// goes on; the caller drops and counts it), or the session failed (see `state`).
    /// Application data is read and ignored: WebRTC data channels are not relayed.
    pub fn handle_datagram(&mut self, now_us: u64, datagram: &[u8]) -> Result<(), DtlsError> {
        if let DtlsState::Failed(why) = &self.state {
            return Err(DtlsError(format!("session failed: {why}")));
        }
        if datagram.len() > MAX_DATAGRAM_IN {
            return Err(DtlsError(format!("a {}-byte DTLS datagram", datagram.len())));
        }
        record::check_datagram(datagram)?;
        let dtls = &mut self.dtls;
        let r = guarded(|| dtls.handle_timeout(instant(now_us)).and_then(|()| dtls.handle_packet(datagram)));
        self.after(now_us, r)
    }

    /// The next datagram to send to the peer (from the socket and to the address the
    /// handshake's datagrams came from).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// When `handle_timeout` is due (absolute `now_us`); None when no timer is armed (a
    /// server waiting for a ClientHello, a completed handshake) or the session failed.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            DtlsState::Failed(_) => None,
            _ => self.timeout_us,
        }
    }

    /// Retransmits a flight whose answer did not come, or fails the handshake whose
    /// deadline (40 s) has passed.
    pub fn handle_timeout(&mut self, now_us: u64) {
        if matches!(self.state, DtlsState::Failed(_)) {
            return;
        }
        let r = guarded(|| self.dtls.handle_timeout(instant(now_us)));
        // the outcome is in `state`
        let _ = self.after(now_us, r);
    }

    /// The peer's `a=fingerprint` arrived or changed: the certificate seen (if any) is
    /// checked against it now.
    pub fn set_remote_fingerprint(&mut self, fp: Fingerprint) {
        self.remote_fingerprint = Some(fp);
        if !matches!(self.state, DtlsState::Failed(_)) {
            let _ = self.check_peer();
        }
    }

    /// The SRTP keys, once: after the handshake completed and the peer's certificate matched.
    pub fn take_keys(&mut self) -> Option<DtlsKeys> {
        if self.state != DtlsState::Connected || self.keys_taken {
            return None;
        }
        self.keys_taken = true;
        self.keys.take()
    }

    pub fn state(&self) -> &DtlsState {
        &self.state
    }

    /// Drains dimpl after an input, then settles the state.
    fn after(&mut self, now_us: u64, r: Result<Result<(), dimpl::Error>, String>) -> Result<(), DtlsError> {
        let r = r.and_then(|r| r.map_err(|e| format!("handshake failed: {e}")));
        match r.and_then(|()| self.drain(now_us)) {
            Ok(()) => self.check_peer(),
            Err(why) => Err(self.fail(why)),
        }
    }

    fn drain(&mut self, now_us: u64) -> Result<(), String> {
        for _ in 0..MAX_OUTPUTS_PER_DRAIN {
            let (dtls, buf) = (&mut self.dtls, &mut self.buf);
            // the output borrows `buf`: copied out before the next call
            let out = guard(|| match dtls.poll_output(buf) {
                Output::Packet(p) => Polled::Packet(p.to_vec()),
                Output::BufferTooSmall { needed } => Polled::TooSmall(needed),
                Output::Timeout(at) => Polled::Timeout(at),
                Output::Connected => Polled::Connected,
                Output::PeerCert(der) => Polled::PeerCert(der.to_vec()),
                Output::KeyingMaterial(material, profile) => Polled::Keys(material, profile),
                Output::CloseNotify => Polled::Closed,
                _ => Polled::Nothing,
            })?;
            match out {
                Polled::Packet(p) => {
                    if self.transmit.len() == MAX_QUEUED_DATAGRAMS {
                        self.transmit.pop_front();
                    }
                    self.transmit.push_back(p);
                }
                Polled::TooSmall(needed) if needed <= MAX_DATAGRAM => self.buf.resize(needed, 0),
                Polled::TooSmall(needed) => return Err(format!("a {needed}-byte record to send")),
                Polled::Timeout(at) => {
                    let at = micros(at);
                    self.timeout_us = (at <= now_us.saturating_add(NO_TIMER_BEYOND_US)).then_some(at);
                    return Ok(());
                }
                Polled::Connected => self.handshake_done = true,
                Polled::PeerCert(der) => self.peer_cert = Some(der),
                Polled::Keys(material, profile) => {
                    self.keys = Some(keys::split(&material, profile, self.role).map_err(|e| e.0)?);
                }
                Polled::Closed => return Err("peer closed the association".into()),
                Polled::Nothing => {}
            }
        }
        Err("DTLS library produced endless output".into())
    }

    /// Once the handshake has completed (its Finished messages authenticate the transcript,
    /// the certificate included; nothing earlier is trusted to change the state): fails on a
    /// certificate that does not match the fingerprint or on no use_srtp profile in common,
    /// becomes Connected when the fingerprint matches, waits while none is known.
    fn check_peer(&mut self) -> Result<(), DtlsError> {
        if !self.handshake_done {
            return Ok(());
        }
        if self.keys.is_none() && !self.keys_taken {
            return Err(self.fail("handshake completed without an SRTP profile in common".into()));
        }
        let Some(cert) = &self.peer_cert else {
            return Err(self.fail("handshake completed without a peer certificate".into()));
        };
        let Some(fp) = &self.remote_fingerprint else { return Ok(()) };
        if !identity::matches(fp, cert) {
            let why = format!("peer certificate does not match a=fingerprint {}", fp.hash.name());
            return Err(self.fail(why));
        }
        self.state = DtlsState::Connected;
        Ok(())
    }

    fn fail(&mut self, why: String) -> DtlsError {
        self.keys = None;
        self.transmit.clear();
        self.state = DtlsState::Failed(why.clone());
        DtlsError(why)
    }
}

/// One configuration for every session: dimpl's defaults (1 s first retransmission, 4
/// retries, 40 s handshake deadline, client certificate required, cookie exchange on)
/// with the RustCrypto provider.
/// One `poll_output` result, owned (the library's borrows its buffer).
enum Polled {
    Packet(Vec<u8>),
    TooSmall(usize),
    Timeout(Instant),
    Connected,
    PeerCert(Vec<u8>),
    Keys(dimpl::KeyingMaterial, dimpl::SrtpProfile),
    Closed,
    /// Application data (WebRTC data channels are not relayed) and anything newer.
    Nothing,
}

/// Runs a call into the DTLS library so that a panic in it (the library `expect`s in a few
/// places, e.g. on a private key it cannot load) fails this one session instead of ending
/// the worker thread and with it the process.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        format!("internal error in the DTLS library: {why}")
    })
}

/// [`guard`] for the library's fallible calls.
fn guarded(f: impl FnOnce() -> Result<(), dimpl::Error>) -> Result<Result<(), dimpl::Error>, String> {
    guard(f)
}

fn config() -> Result<Arc<Config>, DtlsError> {
    static CONFIG: OnceLock<Result<Arc<Config>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Config::builder().build().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| DtlsError(format!("DTLS configuration: {e}")))
}

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

fn instant(now_us: u64) -> Instant {
    anchor() + Duration::from_micros(now_us.min(MAX_NOW_US))
}

/// Rounded up: dimpl's deadlines carry nanoseconds, and a deadline rounded down would
/// come back as "not due yet" forever.
fn micros(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(anchor()).as_nanos().div_ceil(1000)).unwrap_or(u64::MAX)
}
