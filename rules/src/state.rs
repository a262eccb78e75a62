//! What a relay socket has learned at run time that its rule does not say, read back from
//! the data plane so a restarted relay resumes the socket where it was (the state store,
//! docs/operations.md). Plain data: serialisable, no behaviour.
//!
//! Restoring is conservative: an SRTP stream resumes with every index up to the one kept
//! marked as used (late packets from before are refused, replays rejected, an index the
//! relay protected with is never used again), and its rollover counter where it was.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::dataplane::{FlowCounters, SrtpKey};

/// The highest indices of one SSRC under one SRTP key (what a context keeps of a stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrtpStreamState {
    pub ssrc: u32,
    /// The context protected a packet of this SSRC (a sending context).
    pub sent: bool,
    /// SRTP: the highest packet index, `ROC << 16 | SEQ` (None: no SRTP packet yet).
    pub rtp_highest: Option<u64>,
    /// SRTCP: the next index to send.
    pub rtcp_next: u32,
    /// SRTCP: the highest index received (None: none yet).
    pub rtcp_highest: Option<u32>,
}

/// The SRTP keys a DTLS handshake gave a socket (a WebRTC leg keeps them across a restart:
/// the browser does not shake hands again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsKeyState {
    /// What the relay protects with towards the party (the rule's `srtp_out` role).
    pub local: SrtpKey,
    /// What the party protects with (the rule's `srtp_in` role).
    pub remote: SrtpKey,
}

/// The run-time state of one relay socket.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowState {
    /// Where the party's media comes from (the latch), and whether only the grace rule
    /// made it (an unauthenticated, unexpected source: a weak latch).
    pub latched_peer: Option<SocketAddr>,
    pub weak_latch: bool,
    /// Milliseconds since the last packet from the peer when the state was taken (None:
    /// none yet). Restoring subtracts it from the new clock, so timeouts continue.
    pub idle_ms: Option<u64>,
    /// Per-SSRC state of the context that opens what the party sends (`srtp_in`, or the
    /// DTLS remote key) and of the one that protects what leaves towards it.
    pub srtp_in: Vec<SrtpStreamState>,
    pub srtp_out: Vec<SrtpStreamState>,
    /// A WebRTC socket whose handshake completed.
    pub dtls_keys: Option<DtlsKeyState>,
    /// ICE: the address the party nominated (or last checked) with consent at the time;
    /// restored with fresh consent (the party's next consent check keeps it).
    pub ice_peer: Option<SocketAddr>,
    /// The counters so far, so statistics and call records continue.
    pub counters: FlowCounters,
}
