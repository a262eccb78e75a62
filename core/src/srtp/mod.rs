//! SRTP and SRTCP (RFC 3711, RFC 7714, RFC 6188): pure, in-place, allocation-free.
//!
//! A key may carry an MKI (RFC 3711 §3.1): then every packet carries it between the
//! (encrypted) payload, or SRTCP's E+index word, and the HMAC tag; under AEAD suites after
//! the GCM tag (RFC 7714, as libsrtp and rtpengine place it). A received packet whose MKI
//! is not the key's is an authentication failure. The MKI is handled around the
//! transforms, in a cold path of its own: a key without one costs one predictable branch.
//!
//! A [`Context`] is one direction of one SDES key: it protects (sending leg) or
//! unprotects (receiving leg) the packets of every SSRC that uses that key. Session keys
//! are derived once (key derivation rate 0) and the keyed AES and HMAC states are kept,
//! so no packet pays for a key schedule. Per-SSRC state (rollover counter, replay window,
//! SRTCP index) lives in a small fixed table; on the receiving side it changes only for
//! authenticated packets, in a separate commit step (see [`Context`]).

#[cfg(target_arch = "x86_64")]
mod aesni;
mod cipher;
mod f8;
pub mod gcm;
mod kdf;
mod replay;
mod resume;

use std::fmt;

pub use cipher::{HmacSha1, SessionKeys};
pub use kdf::derive_session_keys;
use replay::RtcpWindow;
pub use replay::{ReplayWindow, DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW};

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

/// The suites, their names and lengths: one table, in the rule API, shared with SDES.
pub use rules::dataplane::Suite;

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
    /// Sending: the packet's (SSRC, index) was already used with this key, or is older than
    /// the send window can tell apart (a repeated sequence number, a late duplicate, a
    /// stream that was evicted and came back behind itself). Dropped, not encrypted: one
    /// index twice is a two-time pad for AES-CM and gives away GCM's authentication key.
    IndexReused,
    /// A new SSRC, and every slot and tombstone holds a stream that has sent with this key
    /// (see [`Context`]): the key must change before more SSRCs can use it.
    StreamsExhausted,
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
            SrtpError::IndexReused => "srtp-index-reused",
            SrtpError::StreamsExhausted => "srtp-streams-exhausted",
        }
    }
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for SrtpError {}

/// Per-SSRC state. On a receiving context it changes only in [`Context::commit`], on a
/// sending one only in `protect_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stream {
    // SRTP
    rtp_init: bool,
    roc: u32,
    /// highest sequence number; `(roc << 16) | s_l` is the window's highest index
    s_l: u16,
    /// receiving: the indices authenticated; sending: the indices used
    rtp_replay: ReplayWindow,
    // SRTCP
    /// sending: the next SRTCP index
    rtcp_index: u32,
    /// receiving: the SRTCP indices authenticated
    rtcp_replay: RtcpWindow,
    /// has protected a packet: its indices may never be used again under this key
    sent: bool,
}

/// What is kept of an evicted stream: its highest indices. A stream that comes back is
/// restored with every index up to those taken (late packets of it are refused, replays
/// of it rejected) and its rollover counter where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tomb {
    ssrc: u32,
    sent: bool,
    /// SRTCP: the next index to send, and the highest received (`NONE32`: none)
    rtcp_next: u32,
    rtcp_recv: u32,
    /// SRTP: the highest index (`NONE64`: none)
    rtp_hi: u64,
    /// Resumed from a restart's state and not moved since: the stream's windows take a
    /// floor (resume.rs).
    resumed: bool,
}

const NONE32: u32 = u32::MAX;
const NONE64: u64 = u64::MAX;

impl Stream {
    fn new(window: u32) -> Stream {
        Stream {
            rtp_init: false,
            roc: 0,
            s_l: 0,
            rtp_replay: ReplayWindow::new(window),
            rtcp_index: 0,
            rtcp_replay: RtcpWindow::new(window),
            sent: false,
        }
    }

    fn restore(window: u32, t: &Tomb) -> Stream {
        let mut s = Stream::new(window);
        if t.rtp_hi != NONE64 {
            s.rtp_init = true;
            s.roc = (t.rtp_hi >> 16) as u32;
            s.s_l = t.rtp_hi as u16;
            s.rtp_replay.reset_full(t.rtp_hi);
        }
        if t.rtcp_recv != NONE32 {
            s.rtcp_replay.reset_full(t.rtcp_recv as u64);
        }
        s.rtcp_index = t.rtcp_next;
        s.sent = t.sent;
        if t.resumed {
            s.rtp_replay.resume_floor();
            s.rtcp_replay.resume_floor();
        }
        s
    }

    fn tomb(&self, ssrc: u32) -> Tomb {
        Tomb {
            ssrc,
            sent: self.sent,
            rtcp_next: self.rtcp_index,
            rtcp_recv: self.rtcp_replay.highest().map_or(NONE32, |i| i as u32),
            rtp_hi: if self.rtp_init { self.rtp_replay.highest().unwrap_or(NONE64) } else { NONE64 },
            resumed: self.rtp_replay.floored() || self.rtcp_replay.floored(),
        }
    }

    /// A received packet's rollover counter and index, if the replay window allows it.
    fn receive_index(&self, seq: u16) -> Result<(u32, u64), SrtpError> {
        let v = self.guess_roc(seq);
        let index = ((v as u64) << 16) | seq as u64;
        if self.rtp_init {
            self.rtp_replay.check(index)?;
        }
        Ok((v, index))
    }

    /// RFC 3711 §3.3.1: the receiver's guess of a packet's rollover counter from the
    /// highest sequence number authenticated.
    fn guess_roc(&self, seq: u16) -> u32 {
        if !self.rtp_init {
            self.roc
        } else if self.s_l < 0x8000 {
            if seq as i32 - self.s_l as i32 > 0x8000 {
                self.roc.wrapping_sub(1)
            } else {
                self.roc
            }
        } else if (self.s_l as i32 - 0x8000) > seq as i32 {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        }
    }
}

/// How many SSRCs one context tracks at once.
const SLOTS: usize = 16;
/// How many evicted streams a context remembers (24 bytes each).
const TOMBS: usize = 48;

/// The per-SSRC table: `SLOTS` live streams, least recently used (receiving: least
/// recently *authenticated*) evicted first, and the tombstones of evicted ones.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Streams {
    ssrc: [u32; SLOTS],
    /// last use; 0: a free slot
    used: [u64; SLOTS],
    slot: [Stream; SLOTS],
    /// `tombs[..n_tombs]`, oldest first
    tombs: [Tomb; TOMBS],
    n_tombs: usize,
    tick: u64,
    /// the slot used last, looked at first
    last: usize,
    /// Resumed from a restart's state: new streams start with a floor too (resume.rs).
    resumed: bool,
}

impl Streams {
    fn new(window: u32) -> Streams {
        Streams {
            ssrc: [0; SLOTS],
            used: [0; SLOTS],
            slot: std::array::from_fn(|_| Stream::new(window)),
            tombs: [Tomb { ssrc: 0, sent: false, rtcp_next: 0, rtcp_recv: NONE32, rtp_hi: NONE64, resumed: false };
                TOMBS],
            n_tombs: 0,
            tick: 0,
            last: 0,
            resumed: false,
        }
    }

    #[inline]
    fn find(&self, ssrc: u32) -> Option<usize> {
        let l = self.last;
        if self.used[l] != 0 && self.ssrc[l] == ssrc {
            return Some(l);
        }
        (0..SLOTS).find(|&i| self.used[i] != 0 && self.ssrc[i] == ssrc)
    }

    fn find_tomb(&self, ssrc: u32) -> Option<&Tomb> {
        self.tombs[..self.n_tombs].iter().find(|t| t.ssrc == ssrc)
    }

    fn touch(&mut self, i: usize) {
        self.tick += 1;
        self.used[i] = self.tick;
        self.last = i;
    }

    fn free_slot(&self) -> Option<usize> {
        self.used.iter().position(|&u| u == 0)
    }

    fn lru(&self) -> usize {
        (0..SLOTS).min_by_key(|&i| self.used[i]).unwrap_or(0)
    }

    /// Could `ssrc` get a slot without forgetting a stream that has sent?
    fn can_claim(&self, ssrc: u32) -> bool {
        self.free_slot().is_some()
            || self.n_tombs < TOMBS
            || self.find_tomb(ssrc).is_some()
            || self.tombs.iter().any(|t| !t.sent)
            || !self.slot[self.lru()].sent
    }

    fn remove_tomb(&mut self, j: usize) -> Tomb {
        let t = self.tombs[j];
        self.tombs.copy_within(j + 1..self.n_tombs, j);
        self.n_tombs -= 1;
        t
    }

    /// Remember an evicted stream. When the list is full the oldest tombstone of a stream
    /// that only received goes (at worst, old packets of that stream replay once it is
    /// forgotten); tombstones of streams that sent are never dropped. False when the
    /// stream sent and there is no room: it must not be evicted.
    fn bury(&mut self, t: Tomb) -> bool {
        if self.n_tombs == TOMBS {
            match self.tombs.iter().position(|t| !t.sent) {
                Some(j) => {
                    self.remove_tomb(j);
                }
                None if !t.sent => return true,
                None => return false,
            }
        }
        self.tombs[self.n_tombs] = t;
        self.n_tombs += 1;
        true
    }

    /// A slot for an SSRC that has none: a free one, or the least recently used one's,
    /// whose stream becomes a tombstone. The stream is restored from its own tombstone if
    /// it has one. None when that would forget a stream that sent.
    #[cold]
    #[inline(never)]
    fn claim(&mut self, ssrc: u32, window: u32) -> Option<usize> {
        let restored = self.tombs[..self.n_tombs].iter().position(|t| t.ssrc == ssrc).map(|j| self.remove_tomb(j));
        let i = match self.free_slot() {
            Some(i) => i,
            None => {
                let v = self.lru();
                let t = self.slot[v].tomb(self.ssrc[v]);
                if !self.bury(t) {
                    if let Some(r) = restored {
                        // room was made by taking `r` out, so this cannot be refused
                        self.bury(r);
                    }
                    return None;
                }
                v
            }
        };
        self.ssrc[i] = ssrc;
        self.slot[i] = match restored {
            Some(t) => Stream::restore(window, &t),
            None if self.resumed => resume::fresh_stream(window),
            None => Stream::new(window),
        };
        self.touch(i);
        Some(i)
    }
}

/// Proof that a packet authenticated under one [`Context`]; carries what committing it
/// changes (its SSRC and index, SRTP or SRTCP). Copy, no allocation. It names the context
/// that opened it: [`Context::commit`] on any other context ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    ctx: u32,
    ssrc: u32,
    index: u64,
    rtcp: bool,
}

static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// One direction of one SDES key, for every SSRC that uses it.
///
/// Receiving: [`Context::open_rtp`] / [`Context::open_rtcp`] authenticate and decrypt
/// against the committed state and change nothing (`&self`); [`Context::commit`] records
/// an accepted packet (rollover counter, replay window, the stream's slot) once the
/// caller has also accepted its source. Only authenticated packets ever create, touch or
/// evict a stream, so forged packets, whatever their SSRC, cannot disturb a call. Other
/// packets may be committed between one packet's open and its commit: commit checks again
/// that the index is still new and drops it (returns false) if not.
///
/// Sending: `protect_*` never encrypts two packets under one (SSRC, index). Each stream
/// keeps a window of the indices it used (the replay window's size): a reordered packet
/// whose index is new is protected, a repeated or too old one is refused
/// ([`SrtpError::IndexReused`]), as libsrtp's `srtp_protect` does with its rdbx. SRTCP
/// indices are a counter per stream.
///
/// Bounds: 16 live SSRCs per context (least recently used, on a receiving context least
/// recently *authenticated*, evicted first) and 48 tombstones of evicted streams (their
/// highest indices: a stream that comes back neither reuses an index nor accepts a replay
/// of itself, and keeps its rollover counter). A fixed 4.4 KB table, 6.5 KB per context
/// with the keyed ciphers (8 slots and no tombstones were 4.7 KB). When the tombstones are
/// full, the oldest of a stream that only received goes (at worst, that stream's old
/// packets replay if it comes back after 64 other SSRCs authenticated under the key);
/// those of streams that sent never go: a sending context refuses a 65th SSRC
/// ([`SrtpError::StreamsExhausted`]) rather than forget which indices an earlier one
/// used. Only the sender's own, already accepted media chooses the SSRCs a sending
/// context sees, real calls use a handful per key, and losing the media of a sender that
/// sprays SSRCs is better than a two-time pad; a new key starts afresh.
///
/// A context is meant for one direction: used both ways, one index window serves both.
pub struct Context {
    suite: Suite,
    /// The MKI every packet carries (see the module's doc); None for most keys.
    mki: Option<Box<[u8]>>,
    /// The suite's SRTP and SRTCP tag lengths, read per packet (a field, not a match over
    /// every suite).
    rtp_tag: usize,
    rtcp_tag: usize,
    rtp: Transform,
    rtcp: Transform,
    window: u32,
    id: u32,
    streams: Streams,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "srtp::Context({})", self.suite)
    }
}

impl Context {
    /// A context from an SDES master key and salt.
    pub fn new(suite: Suite, master_key: &[u8], master_salt: &[u8]) -> Result<Context, SrtpError> {
        Context::check_key(suite, master_key, master_salt)?;
        let (rtp, rtcp) = derive_session_keys(suite, master_key, master_salt);
        Ok(Context::from_session_keys(suite, &rtp, &rtcp))
    }

    /// A context from a rule's key, MKI included.
    pub fn from_key(k: &rules::dataplane::SrtpKey) -> Result<Context, SrtpError> {
        Ok(Context::new(k.suite, &k.key, &k.salt)?.with_mki(k.mki.as_ref().map(|m| m.as_bytes())))
    }

    /// The packets under this key carry `mki` (None, or an empty one: no MKI). At most
    /// [`Suite::MAX_MKI_LEN`] bytes are used.
    pub fn with_mki(mut self, mki: Option<&[u8]>) -> Context {
        self.mki = mki.filter(|m| !m.is_empty()).map(|m| m[..m.len().min(Suite::MAX_MKI_LEN)].into());
        self
    }

    /// What `new` refuses, without deriving keys: a master key of another length than the
    /// suite's, a salt shorter than the suite's or longer than 112 bits.
    pub fn check_key(suite: Suite, master_key: &[u8], master_salt: &[u8]) -> Result<(), SrtpError> {
        if master_key.len() != suite.key_len() || master_salt.len() < suite.salt_len() || master_salt.len() > 14 {
            return Err(SrtpError::BadKey);
        }
        Ok(())
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
            mki: None,
            rtp_tag: suite.rtp_tag_len(),
            rtcp_tag: suite.rtcp_tag_len(),
            rtp: Transform::new(suite, rtp, suite.rtp_tag_len(), portable),
            rtcp: Transform::new(suite, rtcp, suite.rtcp_tag_len(), portable),
            window: DEFAULT_REPLAY_WINDOW,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            streams: Streams::new(DEFAULT_REPLAY_WINDOW),
        }
    }

    /// Replay window size in packets ([`DEFAULT_REPLAY_WINDOW`], at most [`MAX_REPLAY_WINDOW`];
    /// SRTCP's at most 128).
    /// On a sending context, how far back a reordered packet may still be protected.
    pub fn with_replay_window(mut self, packets: u32) -> Context {
        self.window = packets.clamp(1, MAX_REPLAY_WINDOW);
        self
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The slot of a sending stream, created (or restored) on first use.
    fn send_slot(&mut self, ssrc: u32) -> Result<usize, SrtpError> {
        let i = match self.streams.find(ssrc) {
            Some(i) => i,
            None => self.streams.claim(ssrc, self.window).ok_or(SrtpError::StreamsExhausted)?,
        };
        self.streams.touch(i);
        Ok(i)
    }

    /// The HMAC tag that follows the MKI in an SRTP (`rtcp` false) or SRTCP packet: none
    /// under AEAD, whose tag comes before the MKI.
    fn tag_after_mki(&self, rtcp: bool) -> usize {
        match (self.suite.is_gcm(), rtcp) {
            (true, _) => 0,
            (false, false) => self.suite.rtp_tag_len(),
            (false, true) => self.suite.rtcp_tag_len(),
        }
    }

    /// Puts the MKI into the protected packet `buf[..n]` before its last `t` bytes (the
    /// tag); returns the new length. The caller checked the room.
    fn insert_mki(mki: &[u8], buf: &mut [u8], n: usize, t: usize) -> usize {
        let (m, at) = (mki.len(), n - t);
        buf.copy_within(at..n, at + m);
        buf[at..at + m].copy_from_slice(mki);
        n + m
    }

    /// Checks and takes out the MKI of the received packet `buf[..len]` (it sits before
    /// the last `t` bytes); returns the packet's length without it. A wrong MKI is an
    /// authentication failure.
    fn remove_mki(mki: &[u8], buf: &mut [u8], len: usize, t: usize, min: usize) -> Result<usize, SrtpError> {
        let m = mki.len();
        if len < min + t + m {
            return Err(SrtpError::Malformed);
        }
        let at = len - t - m;
        if buf[at..at + m] != *mki {
            return Err(SrtpError::AuthFailed);
        }
        buf.copy_within(len - t..len, at);
        Ok(len - m)
    }

    /// Undoes [`Context::remove_mki`] after a failed open: the packet as it arrived.
    fn restore_mki(mki: &[u8], buf: &mut [u8], len: usize, t: usize) {
        let at = len - t - mki.len();
        buf.copy_within(at..at + t, len - t);
        buf[at..at + mki.len()].copy_from_slice(mki);
    }

    /// Protect the RTP packet in `buf[..len]` in place; `buf` needs `rtp_tag_len` bytes of
    /// tail room (plus the MKI's). Returns the SRTP packet's length. A packet whose index
    /// this context has already used (or that is too old to tell) is refused:
    /// [`SrtpError::IndexReused`].
    #[inline]
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if self.mki.is_some() {
            return self.protect_rtp_mki(buf, len);
        }
        self.protect_rtp_inner(buf, len)
    }

    #[cold]
    #[inline(never)]
    fn protect_rtp_mki(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let mki = self.mki.take().unwrap_or_default();
        let r = if buf.len() < len + self.suite.rtp_tag_len() + mki.len() {
            Err(SrtpError::BufferTooSmall)
        } else {
            self.protect_rtp_inner(buf, len).map(|n| Self::insert_mki(&mki, buf, n, self.tag_after_mki(false)))
        };
        self.mki = Some(mki);
        r
    }

    #[inline(always)]
    fn protect_rtp_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let hl = header_len(&buf[..len]).map_err(|_| SrtpError::Malformed)?;
        let tag = self.rtp_tag;
        if buf.len() < len + tag {
            return Err(SrtpError::BufferTooSmall);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let i = self.send_slot(ssrc)?;
        let s = &self.streams.slot[i];
        // the sender's rollover counter follows its own sequence numbers
        let roc = if !s.rtp_init {
            s.roc
        } else {
            let delta = seq.wrapping_sub(s.s_l);
            if delta < 0x8000 {
                if seq < s.s_l {
                    s.roc.checked_add(1).ok_or(SrtpError::IndexExhausted)?
                } else {
                    s.roc
                }
            } else if seq > s.s_l {
                // a late packet from before the last wrap (none before the first)
                s.roc.checked_sub(1).ok_or(SrtpError::IndexReused)?
            } else {
                s.roc
            }
        };
        let index = ((roc as u64) << 16) | seq as u64;
        // the index is taken before it is used: sealing cannot fail
        let s = &mut self.streams.slot[i];
        if !s.rtp_init {
            s.rtp_init = true;
            s.rtp_replay.reset(index);
            s.roc = roc;
            s.s_l = seq;
        } else if s.rtp_replay.try_accept(index).map_err(|_| SrtpError::IndexReused)? {
            s.roc = roc;
            s.s_l = seq;
        }
        s.sent = true;
        self.rtp.seal_rtp(buf, hl, len, ssrc, roc, index)?;
        Ok(len + tag)
    }

    /// Authenticate and decrypt the SRTP packet in `buf[..len]` in place; returns the RTP
    /// packet's length and the proof to [`commit`](Context::commit). Changes no state of
    /// the context: the replay check is against committed state, so a packet opened but
    /// not committed opens again. On failure the buffer is as it arrived (AES-CM checks
    /// the HMAC before decrypting; GCM on AES-NI verifies before it writes; only the
    /// portable GCM, ring on CPUs without AES-NI, leaves the bytes unspecified).
    #[inline]
    pub fn open_rtp(&self, buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        if let Some(mki) = &self.mki {
            return self.open_rtp_mki(mki, buf, len);
        }
        self.open_rtp_inner(buf, len)
    }

    #[cold]
    #[inline(never)]
    fn open_rtp_mki(&self, mki: &[u8], buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        let t = self.tag_after_mki(false);
        let n = Self::remove_mki(mki, buf, len, t, 12)?;
        self.open_rtp_inner(buf, n).inspect_err(|_| Self::restore_mki(mki, buf, len, t))
    }

    #[inline(always)]
    fn open_rtp_inner(&self, buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        let tag = self.rtp_tag;
        let hl = header_len(&buf[..len]).map_err(|_| SrtpError::Malformed)?;
        if len < hl + tag {
            return Err(SrtpError::Malformed);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let (v, index) = match self.streams.find(ssrc) {
            Some(i) => self.streams.slot[i].receive_index(seq)?,
            None => self.receive_index_without_slot(ssrc, seq)?,
        };
        self.rtp.open_rtp(buf, hl, len, ssrc, v, index)?;
        Ok((len - tag, Accepted { ctx: self.id, ssrc, index, rtcp: false }))
    }

    /// [`Stream::receive_index`] for an SSRC with no slot: evicted (its tombstone), or
    /// unknown (rollover counter 0, nothing to replay).
    #[cold]
    #[inline(never)]
    fn receive_index_without_slot(&self, ssrc: u32, seq: u16) -> Result<(u32, u64), SrtpError> {
        match self.streams.find_tomb(ssrc) {
            Some(t) => Stream::restore(self.window, t).receive_index(seq),
            None if self.streams.can_claim(ssrc) => Ok((0, seq as u64)),
            None => Err(SrtpError::StreamsExhausted),
        }
    }

    /// Verify the SRTCP packet in `buf[..len]` (and decrypt it in place, when E is set);
    /// returns the RTCP compound packet's length and the proof to
    /// [`commit`](Context::commit). Changes no state, like [`open_rtp`](Context::open_rtp).
    pub fn open_rtcp(&self, buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        if let Some(mki) = &self.mki {
            return self.open_rtcp_mki(mki, buf, len);
        }
        self.open_rtcp_inner(buf, len)
    }

    #[cold]
    #[inline(never)]
    fn open_rtcp_mki(&self, mki: &[u8], buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        let t = self.tag_after_mki(true);
        let n = Self::remove_mki(mki, buf, len, t, 8 + 4)?;
        self.open_rtcp_inner(buf, n).inspect_err(|_| Self::restore_mki(mki, buf, len, t))
    }

    fn open_rtcp_inner(&self, buf: &mut [u8], len: usize) -> Result<(usize, Accepted), SrtpError> {
        let tag = self.rtcp_tag;
        if len < 8 + 4 + tag || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let word_at = if self.suite.is_gcm() { len - 4 } else { len - tag - 4 };
        let word = u32::from_be_bytes([buf[word_at], buf[word_at + 1], buf[word_at + 2], buf[word_at + 3]]);
        let index = (word & 0x7fff_ffff) as u64;
        match self.streams.find(ssrc) {
            Some(i) => self.streams.slot[i].rtcp_replay.check(index)?,
            None => match self.streams.find_tomb(ssrc) {
                Some(t) if t.rtcp_recv != NONE32 && index <= t.rtcp_recv as u64 => return Err(SrtpError::Replayed),
                Some(_) => {}
                None if self.streams.can_claim(ssrc) => {}
                None => return Err(SrtpError::StreamsExhausted),
            },
        }
        let plain = self.rtcp.open_rtcp(buf, len, ssrc, word)?;
        Ok((plain, Accepted { ctx: self.id, ssrc, index, rtcp: true }))
    }

    /// Record an accepted packet: its stream's slot (created, or restored, on its first
    /// packet; the least recently authenticated stream is evicted when all are taken), its
    /// rollover counter and replay window. Call it once the caller has also accepted the
    /// packet's source. Never fails: a packet whose index is no longer new (another copy
    /// was committed since it was opened), or that is not from this context, is dropped
    /// silently — then it returns false and the caller should not forward it.
    #[inline]
    pub fn commit(&mut self, a: Accepted) -> bool {
        if a.ctx != self.id {
            return false;
        }
        let i = match self.streams.find(a.ssrc) {
            Some(i) => i,
            None => match self.slot_for_accepted(a) {
                Some(i) => i,
                None => return false,
            },
        };
        let s = &mut self.streams.slot[i];
        if a.rtcp {
            if s.rtcp_replay.try_accept(a.index).is_err() {
                return false;
            }
        } else {
            // a stream's first packet starts its window (one from SRTCP alone has none yet)
            let highest = if !s.rtp_init {
                s.rtp_init = true;
                s.rtp_replay.reset(a.index);
                true
            } else {
                match s.rtp_replay.try_accept(a.index) {
                    Ok(highest) => highest,
                    Err(_) => return false,
                }
            };
            if highest {
                s.roc = (a.index >> 16) as u32;
                s.s_l = a.index as u16;
            }
        }
        self.streams.touch(i);
        true
    }

    /// A slot for an accepted packet of an SSRC that has none; None if the packet is not
    /// newer than its stream's tombstone, or there is no room.
    #[cold]
    #[inline(never)]
    fn slot_for_accepted(&mut self, a: Accepted) -> Option<usize> {
        // an evicted stream comes back only with an index newer than it had
        if let Some(t) = self.streams.find_tomb(a.ssrc) {
            let old = if a.rtcp {
                t.rtcp_recv != NONE32 && a.index <= t.rtcp_recv as u64
            } else {
                t.rtp_hi != NONE64 && a.index <= t.rtp_hi
            };
            if old {
                return None;
            }
        }
        self.streams.claim(a.ssrc, self.window)
    }

    /// Verify and decrypt the SRTP packet in `buf[..len]` in place and commit it
    /// ([`open_rtp`](Context::open_rtp) + [`commit`](Context::commit), for callers with no
    /// source check in between). Returns the RTP packet's length. A failure leaves the
    /// context's state untouched.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let (n, a) = self.open_rtp(buf, len)?;
        if self.commit(a) {
            Ok(n)
        } else {
            Err(SrtpError::Replayed)
        }
    }

    /// Protect the RTCP compound packet in `buf[..len]` in place (encrypted, E = 1, but
    /// for the NULL suites). Needs 4 + `rtcp_tag_len` bytes of tail room (plus the MKI's).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let Some(mki) = self.mki.take() else {
            return self.protect_rtcp_inner(buf, len);
        };
        let r = if buf.len() < len + 4 + self.suite.rtcp_tag_len() + mki.len() {
            Err(SrtpError::BufferTooSmall)
        } else {
            self.protect_rtcp_inner(buf, len).map(|n| Self::insert_mki(&mki, buf, n, self.tag_after_mki(true)))
        };
        self.mki = Some(mki);
        r
    }

    fn protect_rtcp_inner(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag = self.rtcp_tag;
        if len < 8 || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        if buf.len() < len + 4 + tag {
            return Err(SrtpError::BufferTooSmall);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let i = self.send_slot(ssrc)?;
        let index = self.streams.slot[i].rtcp_index;
        if index >= 0x7fff_ffff {
            return Err(SrtpError::IndexExhausted);
        }
        self.rtcp.seal_rtcp(buf, len, ssrc, index)?;
        let s = &mut self.streams.slot[i];
        s.rtcp_index += 1;
        s.sent = true;
        Ok(len + 4 + tag)
    }

    /// Verify (and decrypt, when E is set) the SRTCP packet in `buf[..len]` in place and
    /// commit it. Returns the RTCP compound packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let (n, a) = self.open_rtcp(buf, len)?;
        if self.commit(a) {
            Ok(n)
        } else {
            Err(SrtpError::Replayed)
        }
    }
}

#[cfg(test)]
impl Context {
    /// A stream's state, created as a sending stream would be (tests).
    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        let i = self.send_slot(ssrc).expect("room for a test stream");
        &mut self.streams.slot[i]
    }
}

#[cfg(test)]
mod parity_tests;
#[cfg(test)]
mod tests;
