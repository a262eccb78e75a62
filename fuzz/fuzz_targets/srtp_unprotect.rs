#![no_main]
//! Arbitrary bytes into SRTP and SRTCP unprotect for every suite: an error, never a panic,
//! and nothing unauthenticated ever comes out as plaintext.
use libfuzzer_sys::fuzz_target;
use relay::srtp::{Context, Suite};

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let suite = Suite::ALL[data[0] as usize % Suite::ALL.len()];
    let key = vec![7u8; suite.key_len()];
    let salt = vec![9u8; suite.salt_len()];
    let mut ctx = Context::new(suite, &key, &salt).unwrap();
    let mut buf = [0u8; 2048];
    let body = &data[1..data.len().min(2000)];
    buf[..body.len()].copy_from_slice(body);
    if ctx.unprotect_rtp(&mut buf, body.len()).is_ok() {
        panic!("forged SRTP accepted");
    }
    buf[..body.len()].copy_from_slice(body);
    if ctx.unprotect_rtcp(&mut buf, body.len()).is_ok() {
        panic!("forged SRTCP accepted");
    }
});
