#![no_main]
//! A state store record from disk (control::persist): whatever the bytes, no panic; a
//! record refused leaves no socket open; one restored is a call like any other (it can be
//! exported again and deleted, and then nothing is open).
use std::sync::Arc;

use control::engine::{Engine, EngineConfig};
use control::persist::CallRecord;
use libfuzzer_sys::fuzz_target;
use rules::dataplane::MemoryDataPlane;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = CallRecord::from_bytes(data) else { return };
    // the engine the seeds (fuzz/seeds/call_record/, control/tests/persist.rs) were made on
    let dp = Arc::new(MemoryDataPlane::default());
    let cfg = EngineConfig { port_min: 30000, port_max: 30199, timeout: 60, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, dp.clone());
    e.set_dtls_identity(control::dtls_sdp::test_identity());
    let id = r.call.id.clone();
    // restored as if relayd came back right after the record was written (against the
    // wall clock the seeds' calls would all have timed out, and nothing past that check
    // would be reached)
    let written = r.taken_unix_ms;
    match e.restore_call_at(r, 0, written) {
        Err(_) => assert!(dp.state.lock().unwrap().open.is_empty(), "a refused record left sockets open"),
        Ok(()) => {
            let again = e.export_call(&id).expect("the restored call");
            assert!(CallRecord::from_bytes(&again.to_bytes()).is_ok());
            e.tick(u64::MAX / 2);
            assert!(e.terminate(&id) || e.calls.is_empty());
            assert!(dp.state.lock().unwrap().open.is_empty(), "ports left after the call went");
        }
    }
});
