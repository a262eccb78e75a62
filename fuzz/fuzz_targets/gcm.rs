#![no_main]
//! The AES-NI/PCLMULQDQ AES-GCM against ring on arbitrary keys, nonces, AAD and data:
//! the same ciphertext and tag, each opens the other's output, and a changed tag is
//! rejected with the buffer left as it was.
use libfuzzer_sys::fuzz_target;
use relay_core::srtp::gcm::AesGcm;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 + 32 + 12 {
        return;
    }
    let klen = if data[0] & 1 == 0 { 16 } else { 32 };
    let key = &data[2..2 + klen];
    let nonce: [u8; 12] = data[34..46].try_into().unwrap();
    let rest = &data[46..];
    let split = (data[1] as usize).min(rest.len());
    let (aad, plain) = rest.split_at(split);
    let ring = AesGcm::new_ring(key).unwrap();
    let Some(ni) = AesGcm::new_ni(key) else { return };
    let (mut a, mut b) = (plain.to_vec(), plain.to_vec());
    let (ta, tb) = (ring.seal(&nonce, aad, &mut a), ni.seal(&nonce, aad, &mut b));
    assert_eq!(a, b, "ciphertexts differ");
    assert_eq!(ta, tb, "tags differ");
    let mut c = a.clone();
    assert!(ni.open(&nonce, aad, &mut c, &ta), "own seal not opened");
    assert_eq!(c, plain);
    let mut bad = ta;
    bad[plain.len() % 16] ^= 1 << (data[1] % 8);
    let mut c = a.clone();
    assert!(!ni.open(&nonce, aad, &mut c, &bad), "changed tag accepted");
    assert_eq!(c, a, "rejected buffer changed");
});
