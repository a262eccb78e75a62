//! SDES (RFC 4568): a=crypto lines, their inline keys, and fresh keys for the relay's legs.

use zeroize::Zeroizing;

use rules::dataplane::{Mki, SrtpKey, Suite};

/// Every suite rtpengine offers, in its order (its `crypto_suites` table). relayd
/// implements all of them ([`Suite::ALL`], in the same order) and numbers its offers by
/// this list, so that tags agree with rtpengine's (an answer picking "7" means
/// AES_CM_128_HMAC_SHA1_80 from either relay).
pub const RTPENGINE_ORDER: [&str; 12] = [
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_192_CM_HMAC_SHA1_80",
    "AES_192_CM_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "F8_128_HMAC_SHA1_80",
    "F8_128_HMAC_SHA1_32",
    "NULL_HMAC_SHA1_80",
    "NULL_HMAC_SHA1_32",
];

/// One a=crypto line's tag and key. Its key material is wiped on drop (by [`SrtpKey`])
/// and never printed: `Debug` shows the tag and suite only.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Crypto {
    pub tag: u32,
    pub key: SrtpKey,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crypto({} {})", self.tag, self.key.suite)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    Malformed(String),
    UnknownSuite(String),
    /// An MKI that is not `value:length` with a length of 1 to 128 bytes the value fits in.
    Mki(String),
    KeyLength(Suite),
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::Malformed(l) => write!(f, "malformed a=crypto line {l:?}"),
            CryptoError::UnknownSuite(s) => write!(f, "unsupported SRTP suite {s}"),
            CryptoError::Mki(m) => {
                write!(f, "a=crypto MKI {m:?} is not value:length (1 to {} bytes)", Suite::MAX_MKI_LEN)
            }
            CryptoError::KeyLength(s) => write!(f, "a=crypto key of the wrong length for {s}"),
        }
    }
}

/// Parse `a=crypto:<tag> <suite> inline:<key||salt base64>[|lifetime][|MKI:len] [params]`.
pub fn parse(line: &str) -> Result<Crypto, CryptoError> {
    let bad = || CryptoError::Malformed(line.chars().take(80).collect());
    let rest = line.strip_prefix("a=crypto:").ok_or_else(bad)?;
    let mut it = rest.split_whitespace();
    let tag: u32 = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let suite = it.next().ok_or_else(bad)?;
    let params = it.next().ok_or_else(bad)?;
    let suite = Suite::from_name(suite).ok_or_else(|| CryptoError::UnknownSuite(suite.to_string()))?;
    // several keys may be given separated by ';': the first one is used
    let first = params.split(';').next().unwrap_or("");
    let inline = first.strip_prefix("inline:").ok_or_else(bad)?;
    // key||salt, then an optional lifetime (ignored: relayd re-keys only on re-offers)
    // and an optional MKI, which only the last part may be (RFC 4568 §6.1)
    let mut parts = inline.split('|');
    let b64 = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    if rest.len() > 2 || rest.iter().rev().skip(1).any(|p| p.contains(':')) {
        return Err(bad());
    }
    let mki = match rest.last() {
        Some(m) if m.contains(':') => Some(parse_mki(m).ok_or_else(|| CryptoError::Mki(m.chars().take(40).collect()))?),
        _ => None,
    };
    let raw = Zeroizing::new(base64_decode(b64).ok_or_else(bad)?);
    if raw.len() != suite.key_len() + suite.salt_len() {
        return Err(CryptoError::KeyLength(suite));
    }
    let (key, salt) = raw.split_at(suite.key_len());
    let key = SrtpKey::new(suite, key, salt).map_err(|_| CryptoError::KeyLength(suite))?.with_mki(mki);
    Ok(Crypto { tag, key })
}

/// `value:length` (RFC 4568 §6.1: decimal MKI value, length in bytes).
fn parse_mki(s: &str) -> Option<Mki> {
    let (v, l) = s.split_once(':')?;
    let digits = |x: &str| !x.is_empty() && x.len() <= 20 && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(v) || !digits(l) {
        return None;
    }
    Mki::from_value(v.parse().ok()?, l.parse().ok()?)
}

pub fn format(c: &Crypto, pad: bool, lifetime: bool) -> String {
    let mut raw = Zeroizing::new(Vec::with_capacity(c.key.key.len() + c.key.salt.len()));
    raw.extend_from_slice(&c.key.key);
    raw.extend_from_slice(&c.key.salt);
    let mut b64 = Zeroizing::new(base64_encode(&raw));
    if !pad {
        while b64.ends_with('=') {
            b64.pop();
        }
    }
    let mki = c.key.mki.as_ref().map(|m| format!("|{}:{}", m.value(), m.len())).unwrap_or_default();
    format!("a=crypto:{} {} inline:{}{}{}", c.tag, c.key.suite, *b64, if lifetime { "|2^31" } else { "" }, mki)
}

/// A fresh random key for a suite, without an MKI.
pub fn generate(suite: Suite) -> SrtpKey {
    let mut k = SrtpKey { suite, key: vec![0u8; suite.key_len()], salt: vec![0u8; suite.salt_len()], mki: None };
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k.key);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k.salt);
    k
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional (SDES keys are often sent without it).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mki_parsed_and_written_back() {
        let k = "cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv";
        for (line, mki) in [
            (format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|1:4"), &[0u8, 0, 0, 1][..]),
            (format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:32"), &[&[0u8; 31][..], &[1]].concat()[..]),
            (format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^31|258:2"), &[1u8, 2][..]),
        ] {
            let c = parse(&line).unwrap();
            assert_eq!(c.key.mki.as_ref().map(|m| m.as_bytes().to_vec()), Some(mki.to_vec()), "{line}");
            // written as rtpengine writes it: |value:length after the lifetime
            let lifetime = line.contains("|2^");
            let want = line.replace("|2^20", "|2^31");
            assert_eq!(format(&c, false, lifetime), want);
        }
        for bad in ["1:0", "1:129", "256:1", "x:4", "1:", ":4", "-1:4", "1:4:4"] {
            let line = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|{bad}");
            assert!(matches!(parse(&line), Err(CryptoError::Mki(_))), "{bad}: {:?}", parse(&line));
        }
        // an MKI must be the last part
        assert!(matches!(
            parse(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:4|2^31")),
            Err(CryptoError::Malformed(_))
        ));
        let e = parse(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:200")).unwrap_err();
        assert_eq!(e.to_string(), "a=crypto MKI \"1:200\" is not value:length (1 to 128 bytes)");
    }

    #[test]
    fn parity_suites_parse_with_their_key_lengths() {
        for (name, b64_len) in [
            ("AES_192_CM_HMAC_SHA1_80", 51),
            ("AES_192_CM_HMAC_SHA1_32", 51),
            ("F8_128_HMAC_SHA1_80", 40),
            ("F8_128_HMAC_SHA1_32", 40),
            ("NULL_HMAC_SHA1_80", 40),
            ("NULL_HMAC_SHA1_32", 40),
        ] {
            let s = Suite::from_name(name).unwrap();
            let c = Crypto { tag: 5, key: generate(s) };
            let line = format(&c, false, false);
            let b64 = line.rsplit("inline:").next().unwrap();
            assert_eq!(b64.len(), b64_len, "{line}");
            assert_eq!(parse(&line).unwrap(), c);
        }
    }

    #[test]
    fn base64_roundtrip() {
        for n in 0..50 {
            let d: Vec<u8> = (0..n as u8).map(|x| x.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&d)).unwrap(), d);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn implemented_suites_keep_rtpengines_order() {
        let ours: Vec<Suite> = RTPENGINE_ORDER.iter().filter_map(|n| Suite::from_name(n)).collect();
        assert_eq!(ours, Suite::ALL);
    }

    #[test]
    fn parse_and_format() {
        let l = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv";
        let c = parse(l).unwrap();
        assert_eq!((c.tag, c.key.suite, c.key.key.len(), c.key.salt.len()), (1, Suite::AesCm128HmacSha1_80, 16, 14));
        assert_eq!(format(&c, false, false), l);
        let l = "a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:8AbZePWwsKhLGX3GlXA+yHYPQ3cgraer/9DkFJYCOPZZy3o9wC0NIbIFYZfyHw==|2^31";
        let c = parse(l).unwrap();
        assert_eq!((c.key.key.len(), c.key.salt.len()), (32, 14));
        assert_eq!(format(&c, true, true), l);
        assert!(matches!(parse("a=crypto:1 F9_128_HMAC_SHA1_80 inline:AAAA"), Err(CryptoError::UnknownSuite(_))));
        assert!(matches!(parse("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"), Err(CryptoError::KeyLength(_))));
        assert!(matches!(parse("a=crypto:x"), Err(CryptoError::Malformed(_))));
        let g = generate(Suite::AeadAes128Gcm);
        assert_eq!((g.key.len(), g.salt.len()), (16, 12));
        // suite names in any case, written back in canonical form
        let c = parse("a=crypto:2 aes_cm_128_hmac_sha1_32 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv").unwrap();
        assert_eq!(format(&c, false, false).split(' ').nth(1), Some("AES_CM_128_HMAC_SHA1_32"));
        // Debug never shows key material
        let c = parse("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:cJOJ7kxQjhFBp2fP6AYjs3vKw7CeBdWZCj0isbJv").unwrap();
        let d = format!("{c:?} {:?} {:?}", c.key, Some(vec![c.clone()]));
        assert!(!d.contains("cJOJ") && !d.contains("112") && d.contains("AES_CM_128_HMAC_SHA1_80"), "{d}");
    }
}
