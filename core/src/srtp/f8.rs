//! AES-128 in f8 mode (RFC 3711 §4.1.2), the 3GPP cipher of F8_128_HMAC_SHA1_80/32.
//! Each keystream block depends on the one before it (S(j) = E(k_e, IV' ⊕ j ⊕ S(j-1))), so
//! unlike counter mode it cannot be computed eight blocks at a time; the suite exists for
//! SDES parity with rtpengine, not for speed. The block cipher is RustCrypto's `aes`
//! (AES-NI where the CPU has it).

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128Enc;

/// An f8 key: E(k_e) for the keystream and E(k_e ⊕ m) for IV' (m = k_s || 0x55..55).
pub(super) struct F8 {
    k: Aes128Enc,
    masked: Aes128Enc,
}

impl F8 {
    /// `key`: 16 bytes; `salt`: at most 16 (the session salt, 14 bytes in SRTP).
    pub(super) fn new(key: &[u8], salt: &[u8]) -> F8 {
        let mut m = [0x55u8; 16];
        m[..salt.len()].copy_from_slice(salt);
        for (a, b) in m.iter_mut().zip(key) {
            *a ^= b;
        }
        F8 { k: Aes128Enc::new(key.into()), masked: Aes128Enc::new(&m.into()) }
    }

    /// XORs the f8 keystream for `iv` into `data` (encryption and decryption alike).
    pub(super) fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut ivp = GenericArray::clone_from_slice(iv);
        self.masked.encrypt_block(&mut ivp);
        let mut s = GenericArray::from([0u8; 16]);
        for (j, chunk) in data.chunks_mut(16).enumerate() {
            let mut x = ivp;
            for (a, b) in x.iter_mut().zip(s.iter()) {
                *a ^= b;
            }
            for (a, b) in x[12..].iter_mut().zip((j as u32).to_be_bytes()) {
                *a ^= b;
            }
            self.k.encrypt_block(&mut x);
            s = x;
            for (d, k) in chunk.iter_mut().zip(s.iter()) {
                *d ^= k;
            }
        }
    }

    /// RFC 3711 §4.1.2.2: IV = 0x00 || M || PT || SEQ || TS || SSRC || ROC.
    pub(super) fn rtp_iv(header: &[u8], roc: u32) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[1..12].copy_from_slice(&header[1..12]);
        iv[12..].copy_from_slice(&roc.to_be_bytes());
        iv
    }

    /// RFC 3711 §4.1.2.3: IV = 0..0 (32 bits) || E || SRTCP index || V P RC PT length SSRC.
    pub(super) fn rtcp_iv(header: &[u8], word: u32) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[4..8].copy_from_slice(&word.to_be_bytes());
        iv[8..].copy_from_slice(&header[..8]);
        iv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::hex;

    /// RFC 3711 Appendix B.2 (AES-f8), with its 32-bit salt.
    #[test]
    fn rfc3711_b2_f8_vector() {
        let f8 = F8::new(&hex("234829008467be186c3de14aae72d62c"), &hex("32f2870d"));
        let header = hex("806e5cba50681de55c621599");
        let iv = F8::rtp_iv(&header, 0xd462_564a);
        assert_eq!(iv.to_vec(), hex("006e5cba50681de55c621599d462564a"));
        let plain =
            hex(concat!("70736575646f72616e646f6d6e657373", "20697320746865206e65787420626573", "74207468696e67"));
        let mut data = plain.clone();
        f8.apply(&iv, &mut data);
        assert_eq!(data, hex("019ce7a26e7854014a6366aa95d4eefd1ad4172a14f9faf455b7f1d4b62bd08f562c0eef7c4802"));
        f8.apply(&iv, &mut data);
        assert_eq!(data, plain);
    }
}
