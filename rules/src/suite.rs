//! The SRTP protection profiles relayd implements: one table of names, key and salt
//! lengths and tag sizes, shared by the SDES code of the control plane and the SRTP code of
//! the data plane, so the two cannot disagree about a suite.

use std::fmt;

/// SRTP protection profiles, named as in SDES (RFC 4568, RFC 6188, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    /// RFC 6188: AES-192 counter mode, the AES-192 key derivation.
    AesCm192HmacSha1_80,
    AesCm192HmacSha1_32,
    AesCm256HmacSha1_80,
    AesCm256HmacSha1_32,
    /// RFC 3711 §4.1.2: AES-128 in f8 mode (3GPP), SDES name F8_128_HMAC_SHA1_80.
    F8_128HmacSha1_80,
    F8_128HmacSha1_32,
    /// RFC 4568 §6.2.3 / RFC 3711's NULL cipher: authenticated, not encrypted.
    NullHmacSha1_80,
    NullHmacSha1_32,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite, in the order relayd offers them: rtpengine's order (its
    /// `crypto_suites` table in daemon/crypto.c), so that SDES tags agree with rtpengine's.
    pub const ALL: [Suite; 12] = [
        Suite::AeadAes256Gcm,
        Suite::AeadAes128Gcm,
        Suite::AesCm256HmacSha1_80,
        Suite::AesCm256HmacSha1_32,
        Suite::AesCm192HmacSha1_80,
        Suite::AesCm192HmacSha1_32,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::F8_128HmacSha1_80,
        Suite::F8_128HmacSha1_32,
        Suite::NullHmacSha1_80,
        Suite::NullHmacSha1_32,
    ];

    /// The SDES name (a=crypto).
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AesCm192HmacSha1_80 => "AES_192_CM_HMAC_SHA1_80",
            Suite::AesCm192HmacSha1_32 => "AES_192_CM_HMAC_SHA1_32",
            Suite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::F8_128HmacSha1_80 => "F8_128_HMAC_SHA1_80",
            Suite::F8_128HmacSha1_32 => "F8_128_HMAC_SHA1_32",
            Suite::NullHmacSha1_80 => "NULL_HMAC_SHA1_80",
            Suite::NullHmacSha1_32 => "NULL_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite an SDES name names, in any letter case; None for suites relayd does not
    /// implement.
    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.name().eq_ignore_ascii_case(s))
    }

    /// Master key length in bytes (also the key length of the key derivation's AES:
    /// NULL and F8 derive with AES-128).
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm192HmacSha1_80 | Suite::AesCm192HmacSha1_32 => 24,
            Suite::AesCm256HmacSha1_80 | Suite::AesCm256HmacSha1_32 | Suite::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        if self.is_gcm() {
            12
        } else {
            14
        }
    }

    pub fn is_gcm(self) -> bool {
        matches!(self, Suite::AeadAes128Gcm | Suite::AeadAes256Gcm)
    }

    /// The payload is encrypted (every suite but NULL).
    pub fn encrypts(self) -> bool {
        !matches!(self, Suite::NullHmacSha1_80 | Suite::NullHmacSha1_32)
    }

    /// AES in f8 mode rather than counter mode.
    pub fn is_f8(self) -> bool {
        matches!(self, Suite::F8_128HmacSha1_80 | Suite::F8_128HmacSha1_32)
    }

    /// Authentication tag on SRTP packets.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => 16,
            Suite::AesCm128HmacSha1_32
            | Suite::AesCm192HmacSha1_32
            | Suite::AesCm256HmacSha1_32
            | Suite::F8_128HmacSha1_32
            | Suite::NullHmacSha1_32 => 4,
            _ => 10,
        }
    }

    /// SRTCP always carries an 80-bit HMAC tag, even for the _32 suites (RFC 4568 §6.2).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_gcm() {
            16
        } else {
            10
        }
    }

    /// The longest MKI an SDES key may carry (RFC 4568 §6.1: 1 to 128 bytes; libsrtp's
    /// SRTP_MAX_MKI_LEN).
    pub const MAX_MKI_LEN: usize = 128;

    /// Bytes a protected packet grows by: the most tail room a buffer needs (tag, SRTCP
    /// index, MKI).
    pub const MAX_OVERHEAD: usize = 16 + 4 + Suite::MAX_MKI_LEN;
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_name(s.name()), Some(s));
            assert_eq!(Suite::from_name(&s.name().to_ascii_lowercase()), Some(s));
        }
        assert_eq!(Suite::from_name("F8_128_HMAC_SHA1_80"), Some(Suite::F8_128HmacSha1_80));
        assert_eq!(Suite::from_name("AES_CM_192_HMAC_SHA1_80"), None);
        assert_eq!(Suite::AesCm256HmacSha1_32.to_string(), "AES_256_CM_HMAC_SHA1_32");
    }

    #[test]
    fn lengths_follow_the_rfcs() {
        let lens: Vec<_> = Suite::ALL.iter().map(|s| (s.key_len(), s.salt_len(), s.rtp_tag_len())).collect();
        assert_eq!(
            lens,
            [
                (32, 12, 16),
                (16, 12, 16),
                (32, 14, 10),
                (32, 14, 4),
                (24, 14, 10),
                (24, 14, 4),
                (16, 14, 10),
                (16, 14, 4),
                (16, 14, 10),
                (16, 14, 4),
                (16, 14, 10),
                (16, 14, 4)
            ]
        );
        assert!(Suite::ALL
            .iter()
            .all(|s| s.rtp_tag_len().max(s.rtcp_tag_len()) + 4 + Suite::MAX_MKI_LEN <= Suite::MAX_OVERHEAD));
        assert_eq!(Suite::ALL.iter().filter(|s| !s.encrypts()).count(), 2);
    }
}
