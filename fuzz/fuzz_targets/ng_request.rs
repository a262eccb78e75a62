#![no_main]
//! Whole ng requests (cookie + bencode) through the engine with an in-memory data plane.
use std::sync::{Arc, Mutex, OnceLock};

use rules::dataplane::MemoryDataPlane;
use control::engine::{Engine, EngineConfig};
use control::ng::NgServer;
use libfuzzer_sys::fuzz_target;

static STATE: OnceLock<Mutex<(Engine, NgServer, u64)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let st = STATE.get_or_init(|| {
        let cfg = EngineConfig { port_min: 30000, port_max: 30100, ..Default::default() };
        let mut e = Engine::new(cfg, Arc::new(MemoryDataPlane::default()));
        // a DTLS certificate, so DTLS offers reach control::dtls_sdp
        e.set_dtls_identity(control::dtls_sdp::test_identity());
        Mutex::new((e, NgServer::new(), 0))
    });
    let mut g = st.lock().unwrap();
    let (e, ng, n) = &mut *g;
    *n += 1;
    let mut d = format!("f{n} ").into_bytes();
    d.extend_from_slice(data);
    let _ = ng.handle(e, std::net::SocketAddr::from(([192, 0, 2, 9], 5060)), &d, *n, 0);
    if *n % 64 == 0 {
        e.tick(*n * 1_000_000);
    }
});
