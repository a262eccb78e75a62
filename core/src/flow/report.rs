//! What the party on a relay socket reports about the media it receives (RTCP SR/RR
//! reception blocks, XR VoIP metrics), and the round-trip time between the relay and that
//! party. Read on the RTCP path only, after the source checks and SRTCP authentication,
//! so a report from anyone but the party (or a forged one) is never read.
//!
//! Round trip (RFC 3550 §6.4.1): when the relay forwards an SR out of a socket, it notes
//! the SR's NTP middle 32 bits and when it left ([`SrLog`], the last few per socket).
//! The party's next report on that socket echoes those bits as LSR, with DLSR (how long
//! it held the SR): RTT = now - forwarded - DLSR. The relay's clock alone measures it,
//! so the party's NTP clock need not be right.

use std::sync::atomic::Ordering::Relaxed;

use rules::quality::{ReceptionReport, VoipMetrics};

use super::counters::{bump, SharedCounters};
use crate::packet::RtcpCompound;

/// SRs kept per socket: a party reports on the latest SR it received, and reports come
/// every few seconds, as SRs do, so a few cover reordering and a lost report.
pub const SR_LOG_LEN: usize = 4;

/// The last SRs forwarded out of one socket: (NTP middle 32 bits, relay time in µs).
#[derive(Debug, Clone, Copy, Default)]
pub struct SrLog {
    sent: [Option<(u32, u64)>; SR_LOG_LEN],
    next: usize,
}

impl SrLog {
    pub fn record(&mut self, ntp_middle: u32, now_us: u64) {
        self.sent[self.next % SR_LOG_LEN] = Some((ntp_middle, now_us));
        self.next = (self.next + 1) % SR_LOG_LEN;
    }

    /// When the SR with these NTP middle bits left (the latest, if several match).
    pub fn forwarded_at(&self, lsr: u32) -> Option<u64> {
        self.sent.iter().flatten().filter(|(m, _)| *m == lsr).map(|(_, t)| *t).max()
    }
}

/// Reads an accepted RTCP compound from the party (`data`: plain, validated) into its
/// socket's counters. Returns the NTP middle bits of its SR, if it carries one: the
/// caller notes them on the socket the SR leaves through.
pub fn read(c: &SharedCounters, sent: &SrLog, clock_rate: u32, data: &[u8], now_us: u64) -> Option<u32> {
    let Ok(compound) = RtcpCompound::new_checked(data) else { return None };
    let r = compound.reports();
    if !r.read_any {
        return None;
    }
    bump(&c.rtcp_reports, 1);
    if r.block.is_none() && r.voip.is_none() {
        return r.sr_ntp_middle;
    }
    let now_ms = now_us / 1000;
    let mut q = c.quality.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = r.block {
        q.remote = Some(ReceptionReport {
            fraction_lost: b.fraction_lost,
            cumulative_lost: b.cumulative_lost,
            jitter_us: b.jitter as u64 * 1_000_000 / clock_rate.max(1) as u64,
            at_ms: now_ms.max(1),
        });
        if let Some(at) = (b.lsr != 0).then(|| sent.forwarded_at(b.lsr)).flatten() {
            let held_us = b.dlsr as u64 * 1_000_000 / 65_536;
            // a report older than its SR, or a DLSR longer than the time since: not usable
            if let Some(rtt) = now_us.checked_sub(at).and_then(|e| e.checked_sub(held_us)) {
                q.rtt_us = Some(rtt);
            }
        }
    }
    if let Some(v) = r.voip {
        let known = |x: u8| (x != 127).then_some(x);
        q.voip_metrics = Some(VoipMetrics {
            loss_rate: v.loss_rate,
            discard_rate: v.discard_rate,
            round_trip_delay_ms: v.round_trip_delay,
            end_system_delay_ms: v.end_system_delay,
            r_factor: known(v.r_factor).filter(|r| *r <= 120),
            mos_lq_x10: known(v.mos_lq).filter(|m| (10..=50).contains(m)),
            mos_cq_x10: known(v.mos_cq).filter(|m| (10..=50).contains(m)),
            at_ms: now_ms.max(1),
        });
    }
    r.sr_ntp_middle
}

/// A counted telephone-event: the count and the last code (stored as code + 1, 0: none).
pub fn dtmf_counted(c: &SharedCounters, code: u8) {
    bump(&c.dtmf_events, 1);
    c.dtmf_last_event.store(code as u64 + 1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::rtcp::tests::{RR_XR, SR_RR};

    #[test]
    fn rtt_from_a_forwarded_sr_and_its_report() {
        let c = SharedCounters::default();
        let mut log = SrLog::default();
        // the SR whose middle bits SR_RR's block echoes left 1.4 s before the report
        log.record(0x5a3b_f0a4, 10_000_000);
        log.record(0x1111_2222, 10_500_000);
        assert_eq!(read(&c, &log, 8000, &SR_RR, 11_400_000), Some(0x5a3c_8312));
        let s = c.snapshot();
        // 1.4 s elapsed, 1.25 s held: 150 ms round trip
        assert_eq!(s.rtt_us, Some(150_000));
        let r = s.remote.unwrap();
        assert_eq!((r.fraction_lost, r.cumulative_lost, r.jitter_us, r.at_ms), (2, 7, 5125, 11_400));
        assert_eq!(s.rtcp_reports, 1);
        // an unknown LSR, or a DLSR longer than the time since: no new RTT
        let mut early = SrLog::default();
        early.record(0x5a3b_f0a4, 11_000_000);
        let c2 = SharedCounters::default();
        read(&c2, &early, 8000, &SR_RR, 11_400_000);
        assert_eq!(c2.snapshot().rtt_us, None);
        read(&c2, &SrLog::default(), 8000, &SR_RR, 11_400_000);
        assert_eq!(c2.snapshot().rtt_us, None);
    }

    #[test]
    fn xr_voip_metrics_are_kept() {
        let c = SharedCounters::default();
        assert_eq!(read(&c, &SrLog::default(), 16000, &RR_XR, 5_000_000), None);
        let s = c.snapshot();
        let v = s.voip_metrics.unwrap();
        assert_eq!((v.loss_rate, v.discard_rate, v.round_trip_delay_ms, v.end_system_delay_ms), (12, 3, 120, 40));
        assert_eq!((v.r_factor, v.mos_lq_x10, v.mos_cq_x10), (Some(85), Some(42), None));
        assert_eq!(s.remote.unwrap().jitter_us, 10_000, "160 units at 16 kHz");
        assert_eq!(s.remote.unwrap().cumulative_lost, -2);
    }

    #[test]
    fn the_log_is_bounded_and_keeps_the_latest() {
        let mut log = SrLog::default();
        for i in 0..10u32 {
            log.record(i, 1_000 + i as u64);
        }
        assert_eq!(log.forwarded_at(9), Some(1_009));
        assert_eq!(log.forwarded_at(5), None, "pushed out");
        assert_eq!(log.forwarded_at(0), None);
    }
}
