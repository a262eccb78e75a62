//! SRTP and SRTCP (RFC 3711, RFC 7714, RFC 6188): pure, in-place, allocation-free.
//!
//! A [`Context`] is one direction of one SDES key: it protects (sending leg) or
//! unprotects (receiving leg) the packets of every SSRC that uses that key. Session keys
//! are derived once (key derivation rate 0) and the keyed AES and HMAC states are kept,
//! so no packet pays for a key schedule. Per-SSRC state (rollover counter, replay window,
//! SRTCP index) lives in a small fixed table.

#[cfg(target_arch = "x86_64")]
mod aesni;
mod cipher;
pub mod gcm;
mod kdf;
mod replay;

use std::fmt;

pub use cipher::{HmacSha1, SessionKeys};
pub use kdf::derive_session_keys;
pub use replay::ReplayWindow;

/// Which AES the SRTP contexts of this process use: the CPU's AES-NI + PCLMULQDQ, or the
/// crates' portable code (ring for GCM, RustCrypto for AES-CM) on CPUs without them.
pub fn implementation() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if aesni::available() {
        return "aes-ni";
    }
    "portable (ring, RustCrypto aes)"
}

use crate::packet::rtp::header_len;
use cipher::Transform;

/// SRTP protection profiles, named as in SDES (RFC 4568, RFC 6188, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AesCm256HmacSha1_80,
    AesCm256HmacSha1_32,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::AeadAes256Gcm,
        Suite::AeadAes128Gcm,
        Suite::AesCm256HmacSha1_80,
        Suite::AesCm256HmacSha1_32,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.name().eq_ignore_ascii_case(s))
    }

    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 | Suite::AeadAes128Gcm => 16,
            _ => 32,
        }
    }

    pub fn salt_len(self) -> usize {
        if self.is_gcm() {
            12
        } else {
            14
        }
    }

    pub fn is_gcm(self) -> bool {
        matches!(self, Suite::AeadAes128Gcm | Suite::AeadAes256Gcm)
    }

    /// Authentication tag on SRTP packets.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_32 | Suite::AesCm256HmacSha1_32 => 4,
            Suite::AesCm128HmacSha1_80 | Suite::AesCm256HmacSha1_80 => 10,
            _ => 16,
        }
    }

    /// SRTCP always carries an 80-bit HMAC tag, even for the _32 suites (RFC 4568 §6.2).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_gcm() {
            16
        } else {
            10
        }
    }

    /// Bytes a protected packet grows by: the most tail room a buffer needs.
    pub const MAX_OVERHEAD: usize = 16 + 4;
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    /// Shorter than a header plus tag, or a malformed RTP/RTCP header.
    Malformed,
    AuthFailed,
    Replayed,
    /// Older than the replay window.
    TooOld,
    /// No tail room for the tag.
    BufferTooSmall,
    /// The 2^48 SRTP / 2^31 SRTCP packet index is used up: the key must change.
    IndexExhausted,
    /// Master key or salt of the wrong length.
    BadKey,
}

impl SrtpError {
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpError::Malformed => "srtp-malformed",
            SrtpError::AuthFailed => "srtp-auth-failed",
            SrtpError::Replayed => "srtp-replayed",
            SrtpError::TooOld => "srtp-too-old",
            SrtpError::BufferTooSmall => "srtp-buffer-too-small",
            SrtpError::IndexExhausted => "srtp-index-exhausted",
            SrtpError::BadKey => "srtp-bad-key",
        }
    }
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for SrtpError {}

/// Per-SSRC state.
#[derive(Clone)]
struct Stream {
    ssrc: u32,
    used: u64,
    // SRTP
    rtp_init: bool,
    roc: u32,
    s_l: u16,
    rtp_replay: ReplayWindow,
    // SRTCP
    rtcp_index: u32,
    rtcp_replay: ReplayWindow,
}

/// How many SSRCs one context tracks at once (least recently used is replaced).
const STREAMS: usize = 8;

pub struct Context {
    suite: Suite,
    rtp: Transform,
    rtcp: Transform,
    streams: [Option<Stream>; STREAMS],
    window: u32,
    tick: u64,
    last: usize,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "srtp::Context({})", self.suite)
    }
}

impl Context {
    /// A context from an SDES master key and salt.
    pub fn new(suite: Suite, master_key: &[u8], master_salt: &[u8]) -> Result<Context, SrtpError> {
        if master_key.len() != suite.key_len() || master_salt.len() < suite.salt_len() || master_salt.len() > 14 {
            return Err(SrtpError::BadKey);
        }
        let (rtp, rtcp) = derive_session_keys(suite, master_key, master_salt);
        Ok(Context::from_session_keys(suite, &rtp, &rtcp))
    }

    /// A context from already derived session keys (RFC 7714's test vectors start here).
    pub fn from_session_keys(suite: Suite, rtp: &SessionKeys, rtcp: &SessionKeys) -> Context {
        Context::with_keys(suite, rtp, rtcp, false)
    }

    /// A context on the crates' AES (ring, RustCrypto) even where the CPU has AES-NI: the
    /// implementation every other CPU gets, so tests can check the two against each other.
    #[cfg(test)]
    fn new_portable(suite: Suite, master_key: &[u8], master_salt: &[u8]) -> Context {
        let (rtp, rtcp) = derive_session_keys(suite, master_key, master_salt);
        Context::with_keys(suite, &rtp, &rtcp, true)
    }

    fn with_keys(suite: Suite, rtp: &SessionKeys, rtcp: &SessionKeys, portable: bool) -> Context {
        Context {
            suite,
            rtp: Transform::new(suite, rtp, suite.rtp_tag_len(), portable),
            rtcp: Transform::new(suite, rtcp, suite.rtcp_tag_len(), portable),
            streams: Default::default(),
            window: 128,
            tick: 0,
            last: 0,
        }
    }

    /// Replay window size in packets (default 128, at most 1024).
    pub fn with_replay_window(mut self, packets: u32) -> Context {
        self.window = packets.clamp(1, replay::MAX_WINDOW);
        self
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        let i = self.stream_index(ssrc);
        self.streams[i].as_mut().unwrap()
    }

    /// Slot of an SSRC's state, created on first use (the least recently used slot is
    /// replaced when all are taken). The last slot used is checked first.
    fn stream_index(&mut self, ssrc: u32) -> usize {
        self.tick += 1;
        let tick = self.tick;
        if let Some(s) = self.streams[self.last].as_mut().filter(|s| s.ssrc == ssrc) {
            s.used = tick;
            return self.last;
        }
        let i = match self.streams.iter().position(|s| s.as_ref().is_some_and(|s| s.ssrc == ssrc)) {
            Some(i) => i,
            None => {
                let i = self.streams.iter().position(Option::is_none).unwrap_or_else(|| {
                    (0..STREAMS).min_by_key(|&i| self.streams[i].as_ref().map_or(0, |s| s.used)).unwrap()
                });
                self.streams[i] = Some(Stream {
                    ssrc,
                    used: tick,
                    rtp_init: false,
                    roc: 0,
                    s_l: 0,
                    rtp_replay: ReplayWindow::new(self.window),
                    rtcp_index: 0,
                    rtcp_replay: ReplayWindow::new(self.window),
                });
                i
            }
        };
        self.streams[i].as_mut().unwrap().used = tick;
        self.last = i;
        i
    }

    /// Protect the RTP packet in `buf[..len]` in place; `buf` needs `rtp_tag_len` bytes of
    /// tail room. Returns the SRTP packet's length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let hl = header_len(&buf[..len]).map_err(|_| SrtpError::Malformed)?;
        let tag = self.suite.rtp_tag_len();
        if buf.len() < len + tag {
            return Err(SrtpError::BufferTooSmall);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let s = self.stream(ssrc);
        // the sender's rollover counter follows its own sequence numbers
        let roc = if !s.rtp_init {
            s.rtp_init = true;
            s.s_l = seq;
            s.roc
        } else {
            let delta = seq.wrapping_sub(s.s_l);
            if delta == 0 {
                s.roc
            } else if delta < 0x8000 {
                if seq < s.s_l {
                    s.roc = s.roc.checked_add(1).ok_or(SrtpError::IndexExhausted)?;
                }
                s.s_l = seq;
                s.roc
            } else if seq > s.s_l {
                // a late packet from before the last wrap
                s.roc.wrapping_sub(1)
            } else {
                s.roc
            }
        };
        let index = ((roc as u64) << 16) | seq as u64;
        self.rtp.seal_rtp(buf, hl, len, ssrc, roc, index)?;
        Ok(len + tag)
    }

    /// Verify and decrypt the SRTP packet in `buf[..len]` in place. Returns the RTP
    /// packet's length. A failure leaves the context's state untouched.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag = self.suite.rtp_tag_len();
        let hl = header_len(&buf[..len]).map_err(|_| SrtpError::Malformed)?;
        if len < hl + tag {
            return Err(SrtpError::Malformed);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let si = self.stream_index(ssrc);
        let s = self.streams[si].as_mut().unwrap();
        // RFC 3711 §3.3.1: guess the rollover counter from the highest sequence seen
        let v = if !s.rtp_init {
            s.roc
        } else if s.s_l < 0x8000 {
            if seq as i32 - s.s_l as i32 > 0x8000 {
                s.roc.wrapping_sub(1)
            } else {
                s.roc
            }
        } else if (s.s_l as i32 - 0x8000) > seq as i32 {
            s.roc.wrapping_add(1)
        } else {
            s.roc
        };
        let index = ((v as u64) << 16) | seq as u64;
        if s.rtp_init {
            s.rtp_replay.check(index)?;
        }
        self.rtp.open_rtp(buf, hl, len, ssrc, v, index)?;
        let s = self.streams[si].as_mut().unwrap();
        if !s.rtp_init {
            s.rtp_init = true;
            s.roc = v;
            s.s_l = seq;
            s.rtp_replay.reset(index);
        } else if s.rtp_replay.accept(index) {
            s.roc = v;
            s.s_l = seq;
        }
        Ok(len - tag)
    }

    /// Protect the RTCP compound packet in `buf[..len]` in place (encrypted, E = 1).
    /// Needs 4 + `rtcp_tag_len` bytes of tail room.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag = self.suite.rtcp_tag_len();
        if len < 8 || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        if buf.len() < len + 4 + tag {
            return Err(SrtpError::BufferTooSmall);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let s = self.stream(ssrc);
        let index = s.rtcp_index;
        if index >= 0x7fff_ffff {
            return Err(SrtpError::IndexExhausted);
        }
        s.rtcp_index += 1;
        self.rtcp.seal_rtcp(buf, len, ssrc, index)?;
        Ok(len + 4 + tag)
    }

    /// Verify (and decrypt, when E is set) the SRTCP packet in `buf[..len]` in place.
    /// Returns the RTCP compound packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag = self.suite.rtcp_tag_len();
        if len < 8 + 4 + tag || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let word_at = if self.suite.is_gcm() { len - 4 } else { len - tag - 4 };
        let word = u32::from_be_bytes([buf[word_at], buf[word_at + 1], buf[word_at + 2], buf[word_at + 3]]);
        let index = word & 0x7fff_ffff;
        let si = self.stream_index(ssrc);
        self.streams[si].as_ref().unwrap().rtcp_replay.check(index as u64)?;
        let plain = self.rtcp.open_rtcp(buf, len, ssrc, word)?;
        let s = self.streams[si].as_mut().unwrap();
        if !s.rtcp_replay.initialized() {
            s.rtcp_replay.reset(index as u64);
        } else {
            s.rtcp_replay.accept(index as u64);
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests;

// SHIM until h-srtp lands: delete on merge
/// Proof that a packet authenticated, to be committed with [`Context::commit`]
/// (stand-in for h-srtp's token: here `open_*` still commits at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted;

impl Context {
    pub fn open_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        self.unprotect_rtp(buf, len).map(|n| (n, Accepted))
    }

    pub fn open_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        self.unprotect_rtcp(buf, len).map(|n| (n, Accepted))
    }

    pub fn commit(&mut self, _: Accepted) -> bool {
        true
    }
}
// end of SHIM until h-srtp lands
