#![no_main]
//! Structure-aware: one option byte (ng flags) + an offer SDP, seeded with real SDPs
//! (fuzz/seeds/sdp_offer: desk phones, softphones with SDES, browsers, rtpengine's test
//! SDPs). Each input runs a whole call on a real engine over the in-memory data plane:
//! offer → answer (derived from the relay's rewritten offer) → re-offer → reverse
//! re-offer → delete, so mutations reach the SDP rewrite with a valid offer. Fails on any
//! panic (contained ones included) and on a port or socket left after the delete.
use std::sync::{Arc, Mutex, OnceLock};

use rules::dataplane::MemoryDataPlane;
use control::engine::Engine;
use libfuzzer_sys::fuzz_target;

static STATE: OnceLock<Mutex<(Engine, Arc<MemoryDataPlane>, u64)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let st = STATE.get_or_init(|| {
        let (e, dp) = control::fuzzing::engine();
        Mutex::new((e, dp, 0))
    });
    let mut g = st.lock().unwrap_or_else(|e| e.into_inner());
    let (e, dp, n) = &mut *g;
    *n += 1;
    control::fuzzing::sdp_offer_round(e, dp, *n, data);
});
