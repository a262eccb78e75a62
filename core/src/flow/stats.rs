//! RFC 3550 receiver statistics: extended highest sequence number and loss (A.1, A.3),
//! interarrival jitter (A.8). One implementation: each flow keeps an [`RtpStats`] for what
//! it receives, and rtpgen (bench) one per stream for what comes back through the relay.

#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    pub ssrc: u32,
    init: bool,
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    received: u64,
    /// RFC 3550 A.8 jitter, scaled by 16, in timestamp units.
    jitter16: u64,
    last_transit: i64,
    /// `last_transit` is of an RTP packet that counts for jitter.
    transit_known: bool,
}

/// Sequence jumps up to this size count as loss; larger ones as a restart.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

impl RtpStats {
    /// Account one packet. `arrival` is the arrival time in the stream's clock units.
    pub fn update(&mut self, ssrc: u32, seq: u16, ts: u32, arrival: u64) {
        let transit = arrival as i64 - ts as i64;
        if self.sequence(ssrc, seq) || !self.transit_known {
            self.last_transit = transit;
            self.transit_known = true;
            return;
        }
        let d = (transit - self.last_transit).unsigned_abs();
        self.last_transit = transit;
        // J += (|D| - J) / 16, kept scaled by 16 (RFC 3550 A.8)
        self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
    }

    /// Account a packet for loss only: an RFC 4733 telephone-event keeps the event's start
    /// timestamp in all its packets, so its transit time says nothing about jitter.
    pub fn update_sequence_only(&mut self, ssrc: u32, seq: u16) {
        if self.sequence(ssrc, seq) {
            self.transit_known = false;
        }
    }

    /// The RFC 3550 A.1 sequence bookkeeping; true when the packet (re)started the stream.
    fn sequence(&mut self, ssrc: u32, seq: u16) -> bool {
        if !self.init || ssrc != self.ssrc {
            *self = RtpStats { ssrc, init: true, max_seq: seq, base_seq: seq as u64, ..Default::default() };
            self.received = 1;
            return true;
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // a very large jump: the sender restarted its sequence
            self.base_seq = seq as u64 + self.cycles;
            self.max_seq = seq;
            self.received = 0;
        }
        // else: duplicate or reordered packet, counted as received only
        self.received += 1;
        false
    }

    pub fn expected(&self) -> u64 {
        if !self.init {
            return 0;
        }
        (self.cycles + self.max_seq as u64 + 1).saturating_sub(self.base_seq)
    }

    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    pub fn jitter(&self) -> u64 {
        self.jitter16 >> 4
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// The stream being followed: its SSRC and highest sequence number, once a packet
    /// was seen.
    pub fn highest(&self) -> Option<(u32, u16)> {
        self.init.then_some((self.ssrc, self.max_seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_wrap() {
        let mut s = RtpStats::default();
        let mut ts = 0u32;
        // 65530 .. 65535, 0 .. 9 with seq 3 missing
        for seq in (65530u16..=65535).chain(0..10).filter(|&q| q != 3) {
            ts = ts.wrapping_add(160);
            s.update(1, seq, ts, ts as u64);
        }
        assert_eq!(s.expected(), 16);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn jitter_converges_on_constant_offset() {
        let mut s = RtpStats::default();
        for i in 0..200u32 {
            // every packet arrives 80 units late, then on time, alternately
            let late = if i % 2 == 0 { 80 } else { 0 };
            s.update(9, i as u16, i * 160, (i * 160 + late) as u64);
        }
        assert!((70..=80).contains(&s.jitter()), "{}", s.jitter());
    }

    #[test]
    fn telephone_events_count_for_loss_not_jitter() {
        let mut s = RtpStats::default();
        s.update_sequence_only(4, 10);
        for i in 11..20u16 {
            // audio at constant transit, then an event held at one timestamp
            s.update(4, i, i as u32 * 160, i as u64 * 160 + 5000);
        }
        for i in 20..30u16 {
            s.update_sequence_only(4, i);
        }
        s.update(4, 31, 31 * 160, 31 * 160 + 5000);
        assert_eq!((s.jitter(), s.lost(), s.received()), (0, 1, 21));
    }

    #[test]
    fn new_ssrc_resets() {
        let mut s = RtpStats::default();
        s.update(1, 100, 0, 0);
        s.update(1, 105, 800, 800);
        assert_eq!(s.lost(), 4);
        s.update(2, 7, 0, 900);
        assert_eq!((s.ssrc, s.lost(), s.received()), (2, 0, 1));
    }
}
