//! Replay protection (RFC 3711 §3.3.2): a sliding window of packet indices, kept as a
//! circular bitmap so advancing by one packet touches one bit.
//!
//! The same window serves the sending side as a record of the indices already used: an
//! index the window calls replayed or too old must not be encrypted again.

use super::SrtpError;

/// The largest SRTP replay window (`--srtp-replay-window`'s upper bound).
pub const MAX_REPLAY_WINDOW: u32 = 1024;

/// The SRTP replay window a context has unless told otherwise (libsrtp's size; the
/// default of `--srtp-replay-window`).
pub const DEFAULT_REPLAY_WINDOW: u32 = 128;

/// A window of up to `64 * W` packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window<const W: usize> {
    size: u32,
    init: bool,
    highest: u64,
    bits: [u64; W],
    /// A window resumed after a restart (see [`resume_floor`](Self::resume_floor)): the
    /// next new highest index marks every index below it as taken.
    floor: bool,
}

/// SRTP's window: up to [`MAX_REPLAY_WINDOW`] packets.
pub type ReplayWindow = Window<{ (MAX_REPLAY_WINDOW / 64) as usize }>;

/// SRTCP's window: up to 128 packets (libsrtp's size; RTCP comes a few per second).
pub type RtcpWindow = Window<2>;

impl<const W: usize> Window<W> {
    const MAX: u64 = 64 * W as u64;

    pub fn new(size: u32) -> Window<W> {
        Window { size: size.clamp(1, Self::MAX as u32), init: false, highest: 0, bits: [0; W], floor: false }
    }

    pub fn initialized(&self) -> bool {
        self.init
    }

    /// The highest index recorded, once there is one.
    pub fn highest(&self) -> Option<u64> {
        self.init.then_some(self.highest)
    }

    fn bit(index: u64) -> (usize, u64) {
        let b = index % Self::MAX;
        ((b / 64) as usize, 1 << (b % 64))
    }

    /// May a packet with this index be accepted (before authentication)?
    #[inline]
    pub fn check(&self, index: u64) -> Result<(), SrtpError> {
        if !self.init || index > self.highest {
            return Ok(());
        }
        if self.highest - index >= self.size as u64 {
            return Err(SrtpError::TooOld);
        }
        let (w, m) = Self::bit(index);
        if self.bits[w] & m != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Start the window at the first authenticated packet (in a resumed window: with
    /// every index below it taken).
    pub fn reset(&mut self, index: u64) {
        if self.floor {
            self.floor = false;
            self.reset_full(index);
            return;
        }
        self.init = true;
        self.highest = index;
        self.bits = [0; W];
        let (w, m) = Self::bit(index);
        self.bits[w] |= m;
    }

    /// Start the window with every index up to `highest` taken: a stream restored from
    /// what is remembered of it after eviction (only its highest index).
    pub fn reset_full(&mut self, highest: u64) {
        self.init = true;
        self.highest = highest;
        self.bits = [u64::MAX; W];
    }

    /// After a restart the state this window was resumed from may lag behind what was
    /// really used (a crash between two writes of the state store). Until the next new
    /// highest index, the indices between the resumed highest and it are not known to be
    /// free: taking that index marks every one below it as taken, so none of them can be
    /// used (sending) or accepted (receiving) afterwards, whoever offers it later.
    pub fn resume_floor(&mut self) {
        self.floor = true;
    }

    /// Still waiting for the first new index after a resume.
    pub fn floored(&self) -> bool {
        self.floor
    }

    /// Record a packet if its index is new ([`check`](Self::check) and
    /// [`accept`](Self::accept) in one): true when it is the new highest.
    #[inline]
    pub fn try_accept(&mut self, index: u64) -> Result<bool, SrtpError> {
        if self.init && !self.floor && index == self.highest.wrapping_add(1) {
            // the usual case: the next packet
            self.highest = index;
            let (w, m) = Self::bit(index);
            self.bits[w] |= m;
            return Ok(true);
        }
        if !self.init || index > self.highest {
            return Ok(self.accept(index));
        }
        self.check(index)?;
        let (w, m) = Self::bit(index);
        self.bits[w] |= m;
        Ok(false)
    }

    /// Record an authenticated packet; true when it is the new highest.
    pub fn accept(&mut self, index: u64) -> bool {
        if !self.init {
            self.reset(index);
            return true;
        }
        if index > self.highest && self.floor {
            self.floor = false;
            self.reset_full(index);
            return true;
        }
        if index > self.highest {
            let gap = index - self.highest;
            if gap >= Self::MAX {
                self.bits = [0; W];
            } else {
                for i in self.highest + 1..index {
                    let (w, m) = Self::bit(i);
                    self.bits[w] &= !m;
                }
            }
            self.highest = index;
            let (w, m) = Self::bit(index);
            self.bits[w] |= m;
            true
        } else {
            let (w, m) = Self::bit(index);
            self.bits[w] |= m;
            false
        }
    }
}
