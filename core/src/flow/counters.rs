//! Per-flow counters shared with the control plane.
//!
//! Each flow's counters are written by exactly one worker thread and read by the
//! control plane: plain load + store (no read-modify-write, no lock) on the packet path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use rules::dataplane::FlowCounters;

#[derive(Default, Debug)]
pub struct SharedCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub forwarded: AtomicU64,
    pub drop_malformed: AtomicU64,
    pub drop_strict_source: AtomicU64,
    pub drop_foreign_source: AtomicU64,
    pub drop_no_destination: AtomicU64,
    pub drop_send_error: AtomicU64,
    pub drop_srtp_auth: AtomicU64,
    pub drop_srtp_replay: AtomicU64,
    pub drop_srtp_index: AtomicU64,
    pub drop_denied_source: AtomicU64,
    pub drop_denied_destination: AtomicU64,
    pub drop_dtls_pending: AtomicU64,
    pub drop_ice_unchecked: AtomicU64,
    pub drop_no_consent: AtomicU64,
    pub drop_stun: AtomicU64,
    pub drop_dtls: AtomicU64,
    pub drop_transmit_full: AtomicU64,
    pub stun_answered: AtomicU64,
    pub dtls_handshakes: AtomicU64,
    pub dtls_failed: AtomicU64,
    pub rtcp_packets: AtomicU64,
    pub rtcp_bytes: AtomicU64,
    pub last_packet_ms: AtomicU64,
    pub relatched: AtomicU64,
    pub ssrc: AtomicU64,
    pub lost: AtomicU64,
    pub jitter_us: AtomicU64,
    /// Changes only when the latch moves: a lock here is off the per-packet path.
    pub latched: Mutex<Option<SocketAddr>>,
    pub rtcp_reports: AtomicU64,
    pub dtmf_events: AtomicU64,
    /// The last event's code + 1 (0: none yet).
    pub dtmf_last_event: AtomicU64,
    /// What the party reports (report.rs): written on the RTCP path only, a few times a
    /// minute, so a lock costs nothing that matters.
    pub quality: Mutex<Reported>,
}

/// The party's reports as the RTCP path last read them.
#[derive(Default, Debug, Clone, Copy)]
pub struct Reported {
    pub remote: Option<rules::quality::ReceptionReport>,
    pub rtt_us: Option<u64>,
    pub voip_metrics: Option<rules::quality::VoipMetrics>,
}

/// Single-writer increment.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Single-writer decrement (a counted forward whose send then failed).
#[inline]
pub fn unbump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_sub(n), Relaxed);
}

impl SharedCounters {
    /// Resume the quality counters from a snapshot (a restarted relay restoring a
    /// socket's state): reports read, DTMF events and the party's last reports.
    pub fn restore_quality(&self, c: &FlowCounters) {
        self.rtcp_reports.store(c.rtcp_reports, Relaxed);
        self.dtmf_events.store(c.dtmf_events, Relaxed);
        self.dtmf_last_event.store(c.dtmf_last_event.map_or(0, |e| e as u64 + 1), Relaxed);
        *self.quality.lock().unwrap_or_else(|e| e.into_inner()) =
            Reported { remote: c.remote, rtt_us: c.rtt_us, voip_metrics: c.voip_metrics };
    }

    pub fn snapshot(&self) -> FlowCounters {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let dm = g(&self.drop_malformed);
        let ds = g(&self.drop_strict_source);
        let df = g(&self.drop_foreign_source);
        let dn = g(&self.drop_no_destination);
        let de = g(&self.drop_send_error);
        let da = g(&self.drop_srtp_auth);
        let dr = g(&self.drop_srtp_replay);
        let di = g(&self.drop_srtp_index);
        let dds = g(&self.drop_denied_source);
        let ddd = g(&self.drop_denied_destination);
        let webrtc = g(&self.drop_dtls_pending)
            + g(&self.drop_ice_unchecked)
            + g(&self.drop_no_consent)
            + g(&self.drop_stun)
            + g(&self.drop_dtls);
        let q = *self.quality.lock().unwrap_or_else(|e| e.into_inner());
        FlowCounters {
            packets: g(&self.packets),
            bytes: g(&self.bytes),
            forwarded: g(&self.forwarded),
            dropped: dm + ds + df + dn + de + da + dr + di + dds + ddd + webrtc,
            drop_malformed: dm,
            drop_strict_source: ds,
            drop_foreign_source: df,
            drop_no_destination: dn,
            drop_send_error: de,
            drop_srtp_auth: da,
            drop_srtp_replay: dr,
            drop_srtp_index: di,
            drop_denied_source: dds,
            drop_denied_destination: ddd,
            drop_dtls_pending: g(&self.drop_dtls_pending),
            drop_ice_unchecked: g(&self.drop_ice_unchecked),
            drop_no_consent: g(&self.drop_no_consent),
            drop_stun: g(&self.drop_stun),
            drop_dtls: g(&self.drop_dtls),
            drop_transmit_full: g(&self.drop_transmit_full),
            stun_answered: g(&self.stun_answered),
            dtls_handshakes: g(&self.dtls_handshakes),
            dtls_failed: g(&self.dtls_failed),
            rtcp_packets: g(&self.rtcp_packets),
            rtcp_bytes: g(&self.rtcp_bytes),
            last_packet_ms: g(&self.last_packet_ms),
            latched_peer: *self.latched.lock().unwrap_or_else(|e| e.into_inner()),
            relatched: g(&self.relatched),
            ssrc: g(&self.ssrc) as u32,
            lost: g(&self.lost) as i64,
            jitter_us: g(&self.jitter_us),
            rtcp_reports: g(&self.rtcp_reports),
            remote: q.remote,
            rtt_us: q.rtt_us,
            voip_metrics: q.voip_metrics,
            dtmf_events: g(&self.dtmf_events),
            dtmf_last_event: g(&self.dtmf_last_event).checked_sub(1).map(|e| e as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_counters_survive_a_restore() {
        let c = FlowCounters {
            rtcp_reports: 4,
            dtmf_events: 2,
            dtmf_last_event: Some(0),
            rtt_us: Some(12_000),
            remote: Some(rules::quality::ReceptionReport { fraction_lost: 3, at_ms: 7, ..Default::default() }),
            ..Default::default()
        };
        let s = SharedCounters::default();
        s.restore_quality(&c);
        let back = s.snapshot();
        assert_eq!((back.rtcp_reports, back.dtmf_events, back.dtmf_last_event), (4, 2, Some(0)));
        assert_eq!((back.rtt_us, back.remote, back.voip_metrics), (c.rtt_us, c.remote, None));
    }
}
