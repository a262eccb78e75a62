//! The SRTP protection profiles relayd implements: one table of names, key and salt
//! lengths and tag sizes, shared by the SDES code of the control plane and the SRTP code of
//! the data plane, so the two cannot disagree about a suite.

use std::fmt;

/// SRTP protection profiles, named as in SDES (RFC 4568, RFC 6188, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AesCm256HmacSha1_80,
    AesCm256HmacSha1_32,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite, in the order relayd offers them (rtpengine's order, minus the suites
    /// it does not implement: AES_192_CM, F8, NULL).
    pub const ALL: [Suite; 6] = [
        Suite::AeadAes256Gcm,
        Suite::AeadAes128Gcm,
        Suite::AesCm256HmacSha1_80,
        Suite::AesCm256HmacSha1_32,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
    ];

    /// The SDES name (a=crypto).
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite an SDES name names, in any letter case; None for suites relayd does not
    /// implement.
    pub fn from_name(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.name().eq_ignore_ascii_case(s))
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 | Suite::AeadAes128Gcm => 16,
            _ => 32,
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

    /// Authentication tag on SRTP packets.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_32 | Suite::AesCm256HmacSha1_32 => 4,
            Suite::AesCm128HmacSha1_80 | Suite::AesCm256HmacSha1_80 => 10,
            _ => 16,
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

    /// Bytes a protected packet grows by: the most tail room a buffer needs.
    pub const MAX_OVERHEAD: usize = 16 + 4;
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
        assert_eq!(Suite::from_name("F8_128_HMAC_SHA1_80"), None);
        assert_eq!(Suite::AesCm256HmacSha1_32.to_string(), "AES_256_CM_HMAC_SHA1_32");
    }

    #[test]
    fn lengths_follow_the_rfcs() {
        let lens: Vec<_> = Suite::ALL.iter().map(|s| (s.key_len(), s.salt_len(), s.rtp_tag_len())).collect();
        assert_eq!(lens, [(32, 12, 16), (16, 12, 16), (32, 14, 10), (32, 14, 4), (16, 14, 10), (16, 14, 4)]);
        assert!(Suite::ALL.iter().all(|s| s.rtp_tag_len().max(s.rtcp_tag_len()) + 4 <= Suite::MAX_OVERHEAD));
    }
}
