//! AES-GCM (NIST SP 800-38D) for SRTP-sized packets.
//!
//! On x86-64 with AES-NI and PCLMULQDQ the cipher is driven straight through the CPU's
//! instructions (`srtp::aesni`): the AES key schedule and the powers H¹..H⁸ of the hash
//! key are computed once per key, counter blocks are encrypted eight at a time, and GHASH
//! reduces once per eight blocks. For a 172-byte SRTP payload that is ~60 % of ring's cost
//! per call: ring's assembly is built for long messages and its fixed cost per call
//! dominates at this size (docs/dependencies.md has the figures).
//!
//! Everywhere else (another architecture, a CPU without those instructions) the same API
//! is served by ring. The two are checked against each other on random keys, nonces,
//! lengths and tampered tags (tests below, and the `gcm` fuzz target), and against the
//! NIST / RFC 7714 vectors.
//!
//! Opening authenticates before it decrypts: a packet whose tag does not verify is left
//! exactly as it arrived (with ring's fallback its contents are unspecified; the relay
//! drops it either way).

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM, AES_256_GCM};

#[cfg(target_arch = "x86_64")]
use super::aesni as ni;

/// An AES-128-GCM or AES-256-GCM key, ready for any number of seal/open calls.
pub struct AesGcm(Backend);

// The per-flow contexts are boxed; the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    #[cfg(target_arch = "x86_64")]
    Ni(ni::GcmKey),
    Ring(LessSafeKey),
}

impl AesGcm {
    /// `key` is 16 or 32 bytes (`None` otherwise). Uses the CPU's AES and carry-less
    /// multiply instructions where it has them.
    pub fn new(key: &[u8]) -> Option<AesGcm> {
        #[cfg(target_arch = "x86_64")]
        if ni::available() {
            return AesGcm::new_ni(key);
        }
        AesGcm::new_ring(key)
    }

    /// The portable implementation (ring), whatever the CPU has.
    pub fn new_ring(key: &[u8]) -> Option<AesGcm> {
        let alg = match key.len() {
            16 => &AES_128_GCM,
            32 => &AES_256_GCM,
            _ => return None,
        };
        Some(AesGcm(Backend::Ring(LessSafeKey::new(UnboundKey::new(alg, key).ok()?))))
    }

    /// The AES-NI/PCLMULQDQ implementation; `None` if the CPU lacks it or the key length
    /// is wrong.
    #[cfg(target_arch = "x86_64")]
    pub fn new_ni(key: &[u8]) -> Option<AesGcm> {
        if !ni::available() || !(key.len() == 16 || key.len() == 32) {
            return None;
        }
        // SAFETY: the CPU has the instructions (checked above).
        Some(AesGcm(Backend::Ni(unsafe { ni::GcmKey::new(key) })))
    }

    /// Which implementation this key uses ("aes-ni" or "ring").
    pub fn implementation(&self) -> &'static str {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Backend::Ni(_) => "aes-ni",
            Backend::Ring(_) => "ring",
        }
    }

    /// Encrypts `data` in place and returns the 16-byte tag over `aad` and the ciphertext.
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        match &self.0 {
            // SAFETY: a GcmKey exists only where the CPU has the instructions.
            #[cfg(target_arch = "x86_64")]
            Backend::Ni(k) => unsafe { k.seal(nonce, aad, data) },
            Backend::Ring(k) => {
                let t = k
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), data)
                    .expect("GCM input within limits");
                let mut out = [0u8; 16];
                out.copy_from_slice(t.as_ref());
                out
            }
        }
    }

    /// Verifies `tag` over `aad` and `data`, then decrypts `data` in place. On failure
    /// returns false; the AES-NI implementation leaves `data` as it was, ring's leaves it
    /// unspecified (the packet is dropped either way).
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
        match &self.0 {
            // SAFETY: a GcmKey exists only where the CPU has the instructions.
            #[cfg(target_arch = "x86_64")]
            Backend::Ni(k) => unsafe { k.open(nonce, aad, data, tag) },
            Backend::Ring(k) => {
                let t = Tag::from(*tag);
                k.open_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), t, data, 0..).is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{hex, Rng};

    fn impls(key: &[u8]) -> Vec<AesGcm> {
        let mut v = vec![AesGcm::new_ring(key).unwrap()];
        #[cfg(target_arch = "x86_64")]
        v.extend(AesGcm::new_ni(key));
        v
    }

    /// NIST GCM spec (McGrew–Viega) test cases 2, 4, 14 and 16.
    #[test]
    fn nist_vectors() {
        let cases = [
            // (key, iv, aad, plaintext, ciphertext, tag)
            (
                "00000000000000000000000000000000",
                "000000000000000000000000",
                "",
                "00000000000000000000000000000000",
                "0388dace60b6a392f328c2b971b2fe78",
                "ab6e47d42cec13bdf53a67b21257bddf",
            ),
            (
                "feffe9928665731c6d6a8f9467308308",
                "cafebabefacedbaddecaf888",
                "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "000000000000000000000000",
                "",
                "00000000000000000000000000000000",
                "cea7403d4d606b6e074ec5d3baf39d18",
                "d0d1c8a799996bf0265b98b5d48ab919",
            ),
            (
                "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                "cafebabefacedbaddecaf888",
                "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ];
        for (key, iv, aad, pt, ct, tag) in cases {
            let (key, aad, pt, ct, tag) = (hex(key), hex(aad), hex(pt), hex(ct), hex(tag));
            let iv: [u8; 12] = hex(iv).try_into().unwrap();
            for g in impls(&key) {
                let mut buf = pt.clone();
                let t = g.seal(&iv, &aad, &mut buf);
                assert_eq!(buf, ct, "{}", g.implementation());
                assert_eq!(t.to_vec(), tag, "{}", g.implementation());
                assert!(g.open(&iv, &aad, &mut buf, &t));
                assert_eq!(buf, pt);
            }
        }
    }

    /// The AES-NI implementation against ring: random keys, nonces, AAD and data of every
    /// length from 0 to 300 and a few long ones, and one flipped bit anywhere.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn matches_ring() {
        if !ni::available() {
            eprintln!("no AES-NI/PCLMULQDQ: nothing to compare");
            return;
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let lens: Vec<usize> = (0..=300).chain([511, 512, 1024, 1500, 2048]).collect();
        for &len in &lens {
            for &klen in &[16usize, 32] {
                let mut key = vec![0u8; klen];
                rng.fill(&mut key);
                let (r, n) = (AesGcm::new_ring(&key).unwrap(), AesGcm::new_ni(&key).unwrap());
                let mut nonce = [0u8; 12];
                rng.fill(&mut nonce);
                let mut aad = vec![0u8; (rng.next() % 80) as usize];
                rng.fill(&mut aad);
                let mut pt = vec![0u8; len];
                rng.fill(&mut pt);
                let (mut a, mut b) = (pt.clone(), pt.clone());
                let (ta, tb) = (r.seal(&nonce, &aad, &mut a), n.seal(&nonce, &aad, &mut b));
                assert_eq!((a.clone(), ta), (b.clone(), tb), "len {len} key {klen}");
                // each opens the other's
                let mut c = a.clone();
                assert!(n.open(&nonce, &aad, &mut c, &ta));
                assert_eq!(c, pt);
                let mut c = b.clone();
                assert!(r.open(&nonce, &aad, &mut c, &tb));
                assert_eq!(c, pt);
                // a flipped bit in the tag, the AAD or the ciphertext: rejected, untouched
                let total = 16 + aad.len() + len;
                let bit = (rng.next() % (total as u64 * 8)) as usize;
                let (mut t2, mut aad2, mut ct2) = (ta, aad.clone(), a.clone());
                let byte = bit / 8;
                if byte < 16 {
                    t2[byte] ^= 1 << (bit % 8);
                } else if byte < 16 + aad.len() {
                    aad2[byte - 16] ^= 1 << (bit % 8);
                } else {
                    ct2[byte - 16 - aad.len()] ^= 1 << (bit % 8);
                }
                for g in [&r, &n] {
                    let mut c = ct2.clone();
                    assert!(!g.open(&nonce, &aad2, &mut c, &t2), "{} accepted a flipped bit", g.implementation());
                }
                let mut c = ct2.clone();
                n.open(&nonce, &aad2, &mut c, &t2);
                assert_eq!(c, ct2, "a rejected buffer was changed");
            }
        }
    }

    #[test]
    fn wrong_key_length() {
        assert!(AesGcm::new(&[0; 24]).is_none());
        assert!(AesGcm::new_ring(&[0; 15]).is_none());
    }
}
