//! Which protocol a datagram on a media port carries, by its first byte (RFC 7983 §7, as
//! updated by RFC 9443): a WebRTC leg multiplexes STUN, DTLS and SRTP/SRTCP on one socket.

/// The protocol RFC 7983 assigns to a datagram's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketClass {
    /// 0..=3: STUN (ICE connectivity and consent checks).
    Stun,
    /// 20..=63: DTLS records (the handshake that keys SRTP).
    Dtls,
    /// 128..=191: RTP and RTCP (version 2), plain or SRTP.
    Rtp,
    /// Everything else, the empty datagram included: ZRTP (16..=19), TURN channels
    /// (64..=79) and QUIC (192..=255) are not spoken on a relay's media port.
    Other,
}

/// Classifies a datagram by its first byte alone; the protocol's own parser validates the
/// rest.
pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PacketClass::*;

    #[test]
    fn every_range_boundary_of_rfc_7983() {
        assert_eq!(classify(&[]), Other);
        for (byte, class) in [
            (0, Stun),
            (3, Stun),
            (4, Other),
            (16, Other), // ZRTP
            (19, Other),
            (20, Dtls), // change_cipher_spec
            (22, Dtls), // handshake
            (63, Dtls),
            (64, Other), // TURN channel
            (79, Other),
            (127, Other),
            (128, Rtp),
            (0x90, Rtp), // RTP with a header extension
            (191, Rtp),
            (192, Other), // QUIC long header
            (255, Other),
        ] {
            assert_eq!(classify(&[byte]), class, "first byte {byte}");
            assert_eq!(classify(&[byte, 0xff, 0, 1]), class, "first byte {byte}, longer datagram");
        }
    }

    #[test]
    fn every_first_byte_has_exactly_its_class() {
        let mut n = [0usize; 4];
        for b in 0..=255u8 {
            n[classify(&[b]) as usize] += 1;
        }
        // 4 STUN, 44 DTLS, 64 RTP/RTCP, the other 144 values
        assert_eq!(n, [4, 44, 64, 144]);
    }
}
