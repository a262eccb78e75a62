//! SRTP key derivation (RFC 3711 §4.3) with key derivation rate 0: the AES-CM PRF keyed
//! with the master key (AES-128, -192 or -256 by its length, RFC 6188), over the master
//! salt XORed with the label. The NULL and f8 suites derive with AES-128, like libsrtp and
//! rtpengine.

use aes::cipher::{KeyIvInit, StreamCipher};
use aes::{Aes128, Aes192, Aes256};
use ctr::Ctr128BE;

use super::cipher::SessionKeys;
use super::Suite;

const LABEL_RTP_ENC: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_ENC: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// PRF output for one label into `out`.
pub fn prf(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    // x = master_salt (zero-padded to 112 bits, as for GCM's 96-bit salts) XOR (label << 48)
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    match master_key.len() {
        16 => Ctr128BE::<Aes128>::new(master_key.into(), &iv.into()).apply_keystream(out),
        // RFC 6188 §3: AES_192_CM_PRF
        24 => Ctr128BE::<Aes192>::new(master_key.into(), &iv.into()).apply_keystream(out),
        32 => Ctr128BE::<Aes256>::new(master_key.into(), &iv.into()).apply_keystream(out),
        n => panic!("master key of {n} bytes"),
    }
}

/// Session keys for SRTP and SRTCP.
pub fn derive_session_keys(suite: Suite, master_key: &[u8], master_salt: &[u8]) -> (SessionKeys, SessionKeys) {
    let derive = |enc: u8, auth: u8, salt: u8| {
        let mut k = SessionKeys { key_len: suite.key_len(), salt_len: suite.salt_len(), ..Default::default() };
        prf(master_key, master_salt, enc, &mut k.enc[..k.key_len]);
        prf(master_key, master_salt, auth, &mut k.auth);
        prf(master_key, master_salt, salt, &mut k.salt[..k.salt_len]);
        k
    };
    (derive(LABEL_RTP_ENC, LABEL_RTP_AUTH, LABEL_RTP_SALT), derive(LABEL_RTCP_ENC, LABEL_RTCP_AUTH, LABEL_RTCP_SALT))
}
