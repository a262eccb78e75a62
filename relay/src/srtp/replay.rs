//! Replay protection (RFC 3711 §3.3.2): a sliding window of packet indices, kept as a
//! circular bitmap so advancing by one packet touches one bit.

use super::SrtpError;

pub const MAX_WINDOW: u32 = 1024;

#[derive(Clone, Debug)]
pub struct ReplayWindow {
    size: u32,
    init: bool,
    highest: u64,
    bits: [u64; (MAX_WINDOW / 64) as usize],
}

impl ReplayWindow {
    pub fn new(size: u32) -> ReplayWindow {
        ReplayWindow { size: size.clamp(1, MAX_WINDOW), init: false, highest: 0, bits: [0; 16] }
    }

    pub fn initialized(&self) -> bool {
        self.init
    }

    fn bit(index: u64) -> (usize, u64) {
        let b = index % MAX_WINDOW as u64;
        ((b / 64) as usize, 1 << (b % 64))
    }

    /// May a packet with this index be accepted (before authentication)?
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

    /// Start the window at the first authenticated packet.
    pub fn reset(&mut self, index: u64) {
        self.init = true;
        self.highest = index;
        self.bits = [0; 16];
        let (w, m) = Self::bit(index);
        self.bits[w] |= m;
    }

    /// Record an authenticated packet; true when it is the new highest.
    pub fn accept(&mut self, index: u64) -> bool {
        if !self.init {
            self.reset(index);
            return true;
        }
        if index > self.highest {
            let gap = index - self.highest;
            if gap >= MAX_WINDOW as u64 {
                self.bits = [0; 16];
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
