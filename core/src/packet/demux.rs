//! STUB for h-plane: replaced by h-ice's real module at merge (same signatures).
//!
//! Demultiplexing on a media port by the first byte (RFC 7983 §7).

/// What a datagram on a media port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Stun,
    Dtls,
    Rtp,
    Other,
}

/// RFC 7983 first byte: 0..=3 STUN, 20..=63 DTLS, 128..=191 RTP/RTCP, the rest (incl. empty) Other.
pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}
