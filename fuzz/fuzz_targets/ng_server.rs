#![no_main]
//! Datagrams through `NgServer::handle` (source check, cookie, reply cache keyed by
//! source and cookie, bencode, engine). Input: one byte picking the source + the
//! datagram. Seeds: fuzz/seeds/ng_server. Fails on any panic (contained ones included)
//! and when the reply cache grows past its byte bound.
use std::sync::{Arc, Mutex, OnceLock};

use rules::dataplane::MemoryDataPlane;
use control::engine::Engine;
use control::ng::NgServer;
use libfuzzer_sys::fuzz_target;

const CACHE: usize = 1 << 20;

static STATE: OnceLock<Mutex<(Engine, Arc<MemoryDataPlane>, NgServer, u64)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&src, datagram)) = data.split_first() else {
        return;
    };
    let st = STATE.get_or_init(|| {
        let (e, dp) = control::fuzzing::engine();
        Mutex::new((e, dp, NgServer::with_cache_bytes(CACHE), 0))
    });
    let mut g = st.lock().unwrap_or_else(|e| e.into_inner());
    let (e, _dp, ng, n) = &mut *g;
    *n += 1;
    let now = *n * 100;
    let _ = ng.handle(e, control::fuzzing::source(src), datagram, now, 1_700_000_000);
    assert_eq!(e.stats.panics, 0, "a contained panic");
    assert!(ng.cookies.bytes() <= CACHE);
    if *n % 256 == 0 {
        e.tick(now + 1_000_000);
    }
});
