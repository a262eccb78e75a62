//! A copy of a relay socket's packets for recording and live capture (docs/operations.md).
//!
//! A rule with a [`Tap`] makes the data plane hand every datagram it accepts on that
//! socket to the tap's sink, at up to three points: as it arrived, decrypted (where the
//! relay decrypts), and as it left (after re-keying). The sink must never block the data
//! path: it copies into a bounded queue and counts what it drops. Sockets without a tap
//! pay one branch.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where on its way through the relay a packet was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapPoint {
    /// As it arrived on the socket (from the party: SRTP stays encrypted).
    Received,
    /// Decrypted: the RTP/RTCP the party sent, in clear (only where the relay decrypts;
    /// plain RTP has no such copy, `Received` is already clear).
    Plain,
    /// As it left through the egress socket towards the other party (re-keyed, if the
    /// relay re-keys).
    Sent,
}

/// One copied datagram. `bytes` is the UDP payload.
#[derive(Debug, Clone, Copy)]
pub struct TapPacket<'a> {
    /// The relay socket the packet arrived on (which party, which leg).
    pub local: SocketAddr,
    /// UDP source and destination as at this point (Sent: the egress socket to the
    /// destination).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub point: TapPoint,
    /// The data plane's monotonic clock, microseconds (`now_us` in core; the same clock
    /// as `DataPlane::now_ms` × 1000).
    pub at_us: u64,
    pub bytes: &'a [u8],
}

/// Where tapped packets go. Called on the packet path, from any worker thread.
pub trait TapSink: Send + Sync {
    /// Take a copy of `p` or drop it (and count that); never block.
    fn packet(&self, p: &TapPacket<'_>);
    /// The control plane took the tap off (capture stopped, recording stopped, call
    /// ended): no more packets will come once the rules without it are applied.
    fn close(&self) {}
}

/// A rule's tap: a shared sink. Two taps are equal when they are the same sink.
#[derive(Clone)]
pub struct Tap(pub Arc<dyn TapSink>);

impl Tap {
    pub fn new(sink: Arc<dyn TapSink>) -> Tap {
        Tap(sink)
    }

    #[inline]
    pub fn packet(&self, p: &TapPacket<'_>) {
        self.0.packet(p)
    }
}

impl PartialEq for Tap {
    fn eq(&self, o: &Tap) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Tap {}

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tap")
    }
}
