//! What the party on a relay socket says about the media it receives (its RTCP reception
//! reports, RFC 3550 §6.4, and XR VoIP metrics, RFC 3611 §4.7), as the data plane read it,
//! and the telephone-events it sent. Plain integer data: counters stay `Eq` and cheap to
//! copy; the control plane turns them into percentages, milliseconds and verdicts.

use serde::{Deserialize, Serialize};

/// The last reception report block the party sent (in an SR or RR) about the stream the
/// relay forwards to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReceptionReport {
    /// Loss since its previous report, in 1/256 (RFC 3550 fraction lost).
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Interarrival jitter, converted from timestamp units with the flow's clock rate.
    pub jitter_us: u64,
    /// When the report arrived (the data plane's monotonic milliseconds).
    pub at_ms: u64,
}

/// RFC 3611 §4.7 VoIP metrics of the stream the party receives, as it sent them. `None`
/// where the block says "unavailable" (127 for R factor and MOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VoipMetrics {
    /// Packets lost in the network, in 1/256.
    pub loss_rate: u8,
    /// Packets discarded by the jitter buffer (late or early), in 1/256.
    pub discard_rate: u8,
    /// The party's own round-trip estimate, milliseconds (0: not measured).
    pub round_trip_delay_ms: u16,
    /// Delay inside the party's endpoint (buffering, coding), milliseconds.
    pub end_system_delay_ms: u16,
    /// ITU-T G.107 R factor, 0..=100.
    pub r_factor: Option<u8>,
    /// Listening quality MOS, times 10 (10..=50).
    pub mos_lq_x10: Option<u8>,
    /// Conversational quality MOS, times 10.
    pub mos_cq_x10: Option<u8>,
    /// When the block arrived (the data plane's monotonic milliseconds).
    pub at_ms: u64,
}
