//! The SRTP transforms: AES counter mode + HMAC-SHA1 (RFC 3711, RFC 6188), AES-GCM
//! (RFC 7714), and the two SDES parity ones, AES-f8 or no cipher + HMAC-SHA1 (RFC 3711
//! §4.1.2, §4.1.3). Keyed once; per packet only the IV changes.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::{Aes128Enc, Aes192Enc, Aes256Enc};
use ctr::{Ctr128BE, CtrCore};
use sha1::digest::consts::U64;
use sha1::digest::generic_array::GenericArray;

use super::f8::F8;
use super::gcm::AesGcm;
use super::{SrtpError, Suite};

/// Session keys of one of SRTP / SRTCP.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct SessionKeys {
    pub enc: [u8; 32],
    pub key_len: usize,
    pub auth: [u8; 20],
    pub salt: [u8; 14],
    pub salt_len: usize,
}

impl SessionKeys {
    pub fn enc(&self) -> &[u8] {
        &self.enc[..self.key_len]
    }
    pub fn salt(&self) -> &[u8] {
        &self.salt[..self.salt_len]
    }
    /// Session keys given directly (test vectors).
    pub fn direct(enc: &[u8], auth: &[u8], salt: &[u8]) -> SessionKeys {
        let mut k = SessionKeys { key_len: enc.len(), salt_len: salt.len(), ..Default::default() };
        k.enc[..enc.len()].copy_from_slice(enc);
        k.auth[..auth.len()].copy_from_slice(auth);
        k.salt[..salt.len()].copy_from_slice(salt);
        k
    }
}

// The variants live inside a boxed per-flow context; their size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Aes {
    /// AES-NI, where the CPU has it (`srtp::aesni`)
    #[cfg(target_arch = "x86_64")]
    Ni(super::aesni::Aes),
    A128(Aes128Enc),
    A256(Aes256Enc),
    /// AES-192 (RFC 6188) is always RustCrypto's (itself on AES-NI where the CPU has it):
    /// `srtp::aesni` expands 128- and 256-bit keys only.
    A192(Aes192Enc),
}

impl Aes {
    /// `key`: 16, 24 or 32 bytes.
    fn new(key: &[u8]) -> Aes {
        #[cfg(target_arch = "x86_64")]
        if key.len() != 24 && super::aesni::available() {
            // SAFETY: the CPU has the instructions (checked above).
            return Aes::Ni(unsafe { super::aesni::Aes::new(key) });
        }
        Aes::new_portable(key)
    }

    /// RustCrypto's `aes` + `ctr`, whatever the CPU has.
    fn new_portable(key: &[u8]) -> Aes {
        match key.len() {
            16 => Aes::A128(Aes128Enc::new(key.into())),
            24 => Aes::A192(Aes192Enc::new(key.into())),
            _ => Aes::A256(Aes256Enc::new(key.into())),
        }
    }

    /// AES counter mode from `iv` on the cached key schedule (never re-expanded).
    fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        match self {
            // SAFETY: an Ni key exists only where the CPU has the instructions.
            #[cfg(target_arch = "x86_64")]
            Aes::Ni(a) => unsafe { a.apply_cm(iv, data) },
            Aes::A128(a) => {
                Ctr128BE::<Aes128Enc>::from_core(CtrCore::inner_iv_init(a.clone(), iv.into())).apply_keystream(data)
            }
            Aes::A256(a) => {
                Ctr128BE::<Aes256Enc>::from_core(CtrCore::inner_iv_init(a.clone(), iv.into())).apply_keystream(data)
            }
            Aes::A192(a) => {
                Ctr128BE::<Aes192Enc>::from_core(CtrCore::inner_iv_init(a.clone(), iv.into())).apply_keystream(data)
            }
        }
    }
}

/// HMAC-SHA1 with the key's inner and outer pad blocks hashed once. A tag costs only the
/// message's own SHA-1 blocks plus one outer block, driven straight through
/// `sha1::compress` (SHA-NI where the CPU has it): ~50 ns less per packet than cloning a
/// keyed `hmac::Hmac<Sha1>` on this machine.
pub struct HmacSha1 {
    inner: [u32; 5],
    outer: [u32; 5],
}

const SHA1_IV: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];

fn sha1_blocks(state: &mut [u32; 5], data: &[u8]) {
    for chunk in data.chunks_exact(64) {
        sha1::compress(state, std::slice::from_ref(GenericArray::<u8, U64>::from_slice(chunk)));
    }
}

impl HmacSha1 {
    pub fn new(key: &[u8]) -> HmacSha1 {
        let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
        for (i, k) in key.iter().enumerate().take(64) {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let (mut inner, mut outer) = (SHA1_IV, SHA1_IV);
        sha1_blocks(&mut inner, &ipad);
        sha1_blocks(&mut outer, &opad);
        HmacSha1 { inner, outer }
    }

    /// HMAC-SHA1 of `a || b` (`b` is at most 8 bytes: the ROC).
    pub fn tag(&self, a: &[u8], b: &[u8]) -> [u8; 20] {
        let mut st = self.inner;
        let full = a.len() / 64 * 64;
        sha1_blocks(&mut st, &a[..full]);
        let rem = &a[full..];
        let mut tail = [0u8; 128];
        let n = rem.len() + b.len();
        tail[..rem.len()].copy_from_slice(rem);
        tail[rem.len()..n].copy_from_slice(b);
        tail[n] = 0x80;
        let end = if n + 9 > 64 { 128 } else { 64 };
        let bits = ((64 + a.len() + b.len()) as u64) * 8;
        tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
        sha1_blocks(&mut st, &tail[..end]);
        let mut ob = [0u8; 64];
        for (i, w) in st.iter().enumerate() {
            ob[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        ob[20] = 0x80;
        ob[56..].copy_from_slice(&((64u64 + 20) * 8).to_be_bytes());
        let mut out_state = self.outer;
        sha1_blocks(&mut out_state, &ob);
        let mut out = [0u8; 20];
        for (i, w) in out_state.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Constant-time comparison of a truncated tag.
    fn verify(&self, a: &[u8], b: &[u8], tag: &[u8]) -> bool {
        let full = self.tag(a, b);
        tag.len() <= 20 && full.iter().zip(tag).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }
}

/// `repr(u8)`: an explicit tag byte, one compare per packet to pick the transform (a
/// niche-encoded discriminant took a dozen instructions to decode).
#[allow(clippy::large_enum_variant)]
#[repr(u8)]
pub(super) enum Transform {
    Cm {
        aes: Aes,
        salt: [u8; 14],
        hmac: HmacSha1,
        tag: usize,
    },
    Gcm {
        aead: AesGcm,
        salt: [u8; 12],
    },
    /// HMAC-SHA1 with AES-f8 (`f8`) or with no cipher at all (None: the NULL suites).
    Sha1 {
        f8: Option<Box<F8>>,
        hmac: HmacSha1,
        tag: usize,
    },
}

impl Transform {
    /// `portable`: the crates' implementations even where the CPU has AES-NI (tests).
    pub(super) fn new(suite: Suite, k: &SessionKeys, tag: usize, portable: bool) -> Transform {
        if suite.is_gcm() {
            let aead = if portable { AesGcm::new_ring(k.enc()) } else { AesGcm::new(k.enc()) };
            let aead = aead.expect("GCM key length");
            let mut salt = [0u8; 12];
            salt.copy_from_slice(&k.salt[..12]);
            Transform::Gcm { aead, salt }
        } else if suite.is_f8() || !suite.encrypts() {
            let f8 = suite.is_f8().then(|| Box::new(F8::new(k.enc(), k.salt())));
            Transform::Sha1 { f8, hmac: HmacSha1::new(&k.auth), tag }
        } else {
            let aes = if portable { Aes::new_portable(k.enc()) } else { Aes::new(k.enc()) };
            let hmac = HmacSha1::new(&k.auth);
            Transform::Cm { aes, salt: k.salt, hmac, tag }
        }
    }

    /// RFC 3711 §4.1.1: IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16)
    fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        iv
    }

    /// RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt
    fn gcm_rtp_iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..10].copy_from_slice(&roc.to_be_bytes());
        iv[10..12].copy_from_slice(&seq.to_be_bytes());
        for (a, b) in iv.iter_mut().zip(salt) {
            *a ^= b;
        }
        iv
    }

    /// RFC 7714 §9.1: IV = (0x0000 || SSRC || 0x0000 || 0 || SRTCP index) XOR salt
    fn gcm_rtcp_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..12].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
        for (a, b) in iv.iter_mut().zip(salt) {
            *a ^= b;
        }
        iv
    }

    fn gcm_open(aead: &AesGcm, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), SrtpError> {
        let tag: &[u8; 16] = tag.try_into().map_err(|_| SrtpError::Malformed)?;
        if aead.open(nonce, aad, data, tag) {
            Ok(())
        } else {
            Err(SrtpError::AuthFailed)
        }
    }

    pub(super) fn seal_rtp(
        &self,
        buf: &mut [u8],
        hl: usize,
        len: usize,
        ssrc: u32,
        roc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        match self {
            Transform::Cm { aes, salt, hmac, tag } => {
                aes.apply(&Self::cm_iv(salt, ssrc, index), &mut buf[hl..len]);
                let full = hmac.tag(&buf[..len], &roc.to_be_bytes());
                buf[len..len + tag].copy_from_slice(&full[..*tag]);
            }
            Transform::Gcm { aead, salt } => {
                let seq = index as u16;
                let nonce = Self::gcm_rtp_iv(salt, ssrc, roc, seq);
                let (head, rest) = buf.split_at_mut(hl);
                let t = aead.seal(&nonce, head, &mut rest[..len - hl]);
                buf[len..len + 16].copy_from_slice(&t);
            }
            Transform::Sha1 { .. } => self.sha1_seal_rtp(buf, hl, len, roc),
        }
        Ok(())
    }

    pub(super) fn open_rtp(
        &self,
        buf: &mut [u8],
        hl: usize,
        len: usize,
        ssrc: u32,
        roc: u32,
        index: u64,
    ) -> Result<(), SrtpError> {
        match self {
            Transform::Cm { aes, salt, hmac, tag } => {
                let body = len - tag;
                if !hmac.verify(&buf[..body], &roc.to_be_bytes(), &buf[body..len]) {
                    return Err(SrtpError::AuthFailed);
                }
                aes.apply(&Self::cm_iv(salt, ssrc, index), &mut buf[hl..body]);
            }
            Transform::Gcm { aead, salt } => {
                let body = len - 16;
                let nonce = Self::gcm_rtp_iv(salt, ssrc, roc, index as u16);
                let (head, rest) = buf.split_at_mut(hl);
                let (ct, tag) = rest[..len - hl].split_at_mut(body - hl);
                Self::gcm_open(aead, &nonce, head, ct, tag)?;
            }
            Transform::Sha1 { .. } => return self.sha1_open_rtp(buf, hl, len, roc),
        }
        Ok(())
    }

    pub(super) fn seal_rtcp(&self, buf: &mut [u8], len: usize, ssrc: u32, index: u32) -> Result<(), SrtpError> {
        let word = (0x8000_0000 | index).to_be_bytes();
        match self {
            Transform::Cm { aes, salt, hmac, tag } => {
                aes.apply(&Self::cm_iv(salt, ssrc, index as u64), &mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&word);
                let full = hmac.tag(&buf[..len + 4], &[]);
                buf[len + 4..len + 4 + tag].copy_from_slice(&full[..*tag]);
            }
            Transform::Gcm { aead, salt } => {
                let nonce = Self::gcm_rtcp_iv(salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&word);
                let t = aead.seal(&nonce, &aad, &mut buf[8..len]);
                buf[len..len + 16].copy_from_slice(&t);
                buf[len + 16..len + 20].copy_from_slice(&word);
            }
            Transform::Sha1 { .. } => self.sha1_seal_rtcp(buf, len, index),
        }
        Ok(())
    }

    /// Returns the plain RTCP length.
    pub(super) fn open_rtcp(&self, buf: &mut [u8], len: usize, ssrc: u32, word: u32) -> Result<usize, SrtpError> {
        let encrypted = word & 0x8000_0000 != 0;
        let index = word & 0x7fff_ffff;
        match self {
            Transform::Cm { aes, salt, hmac, tag } => {
                let body = len - tag;
                if !hmac.verify(&buf[..body], &[], &buf[body..len]) {
                    return Err(SrtpError::AuthFailed);
                }
                let plain = body - 4;
                if encrypted {
                    aes.apply(&Self::cm_iv(salt, ssrc, index as u64), &mut buf[8..plain]);
                }
                Ok(plain)
            }
            Transform::Gcm { aead, salt } => {
                let plain = len - 20;
                let nonce = Self::gcm_rtcp_iv(salt, ssrc, index);
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&buf[plain..plain + 16]);
                let wb = word.to_be_bytes();
                if encrypted {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&buf[..8]);
                    aad[8..].copy_from_slice(&wb);
                    Self::gcm_open(aead, &nonce, &aad, &mut buf[8..plain], &tag)?;
                } else {
                    // E = 0: the whole packet is authenticated data (RFC 7714 §9.2)
                    let mut aad = [0u8; 2048];
                    if plain + 4 > aad.len() {
                        return Err(SrtpError::Malformed);
                    }
                    aad[..plain].copy_from_slice(&buf[..plain]);
                    aad[plain..plain + 4].copy_from_slice(&wb);
                    Self::gcm_open(aead, &nonce, &aad[..plain + 4], &mut [], &tag)?;
                }
                Ok(plain)
            }
            Transform::Sha1 { .. } => self.sha1_open_rtcp(buf, len, word),
        }
    }

    // The f8 and NULL suites, out of line: their match arms stay one call in the hot
    // functions of the suites that matter.

    #[cold]
    #[inline(never)]
    fn sha1_seal_rtp(&self, buf: &mut [u8], hl: usize, len: usize, roc: u32) {
        let Transform::Sha1 { f8, hmac, tag } = self else { return };
        if let Some(f8) = f8 {
            f8.apply(&F8::rtp_iv(buf, roc), &mut buf[hl..len]);
        }
        let full = hmac.tag(&buf[..len], &roc.to_be_bytes());
        buf[len..len + tag].copy_from_slice(&full[..*tag]);
    }

    #[cold]
    #[inline(never)]
    fn sha1_open_rtp(&self, buf: &mut [u8], hl: usize, len: usize, roc: u32) -> Result<(), SrtpError> {
        let Transform::Sha1 { f8, hmac, tag } = self else { return Err(SrtpError::AuthFailed) };
        let body = len - tag;
        if !hmac.verify(&buf[..body], &roc.to_be_bytes(), &buf[body..len]) {
            return Err(SrtpError::AuthFailed);
        }
        if let Some(f8) = f8 {
            f8.apply(&F8::rtp_iv(buf, roc), &mut buf[hl..body]);
        }
        Ok(())
    }

    /// E = 0 under the NULL cipher: nothing is encrypted (as libsrtp sends it).
    #[cold]
    #[inline(never)]
    fn sha1_seal_rtcp(&self, buf: &mut [u8], len: usize, index: u32) {
        let Transform::Sha1 { f8, hmac, tag } = self else { return };
        let word = match f8 {
            Some(f8) => {
                let word = 0x8000_0000 | index;
                f8.apply(&F8::rtcp_iv(buf, word), &mut buf[8..len]);
                word
            }
            None => index,
        };
        buf[len..len + 4].copy_from_slice(&word.to_be_bytes());
        let full = hmac.tag(&buf[..len + 4], &[]);
        buf[len + 4..len + 4 + tag].copy_from_slice(&full[..*tag]);
    }

    #[cold]
    #[inline(never)]
    fn sha1_open_rtcp(&self, buf: &mut [u8], len: usize, word: u32) -> Result<usize, SrtpError> {
        let Transform::Sha1 { f8, hmac, tag } = self else { return Err(SrtpError::AuthFailed) };
        let body = len - tag;
        if !hmac.verify(&buf[..body], &[], &buf[body..len]) {
            return Err(SrtpError::AuthFailed);
        }
        let plain = body - 4;
        if let (true, Some(f8)) = (word & 0x8000_0000 != 0, f8) {
            f8.apply(&F8::rtcp_iv(buf, word), &mut buf[8..plain]);
        }
        Ok(plain)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// AES-NI counter mode against RustCrypto's `aes` + `ctr` for both key sizes, every
    /// length 0..=600 and SRTP-shaped IVs (last 16 bits zero).
    #[test]
    fn aes_ni_cm_matches_portable() {
        if !super::super::aesni::available() {
            return;
        }
        let mut rng = crate::test_support::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next() as u8;
        for klen in [16, 32] {
            let key: Vec<u8> = (0..klen).map(|_| next()).collect();
            let (ni, portable) = (Aes::new(&key), Aes::new_portable(&key));
            assert!(matches!(ni, Aes::Ni(_)));
            for len in 0..=600 {
                let mut iv = [0u8; 16];
                iv[..14].iter_mut().for_each(|b| *b = next());
                let data: Vec<u8> = (0..len).map(|_| next()).collect();
                let (mut a, mut b) = (data.clone(), data);
                ni.apply(&iv, &mut a);
                portable.apply(&iv, &mut b);
                assert_eq!(a, b, "key {klen} len {len}");
            }
        }
    }
}
