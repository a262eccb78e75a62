//! Control plane of the media relay: the rtpengine-compatible ng protocol, SDP
//! rewriting, the call model that turns signalling into forwarding rules, and the HTTP
//! API's request handling. Everything here is sans-IO (the daemon serves the API).

pub mod bencode;
pub mod branch;
pub mod call;
pub mod capture;
pub mod cdr;
pub mod dtls_sdp;
pub mod engine;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod http_capture;
pub mod ice_sdp;
pub mod interface;
pub mod leg_media;
pub mod loop_protect;
pub mod ng;
pub mod offer_answer;
pub mod pcap;
pub mod persist;
pub mod quality;
pub mod recording;
pub mod rewrite;
pub mod sdes;
pub mod sdes_negotiation;
pub mod sdp;
pub mod taps;
pub mod views;

use std::sync::{Mutex, MutexGuard};

/// Lock a mutex, recovering it if a thread panicked while holding it. The engine keeps
/// its state consistent across a caught panic (requests work on copies and commit at the
/// end), so a poisoned lock must not take every other thread down with it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn lock_recovers_a_poisoned_mutex() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *super::lock(&m) += 1;
        assert_eq!(*super::lock(&m), 2);
    }
}
