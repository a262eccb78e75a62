//! Simulated time: one millisecond counter shared by the data plane (the flow table's
//! `now_us`, counters' `last_packet_ms`) and the control plane (`Engine::tick`, ng
//! requests), so latching, relatch silence and call timeouts all see the same time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A clock that moves only when the simulation moves it. Clones share the time.
#[derive(Debug, Clone)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    /// Simulations start here, not at 0: a `last_packet_ms` of 0 means "never".
    pub const START_MS: u64 = 1_000;

    pub fn new() -> SimClock {
        SimClock(Arc::new(AtomicU64::new(Self::START_MS)))
    }

    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Move to `ms`; time never goes back.
    pub fn set_ms(&self, ms: u64) {
        self.0.fetch_max(ms, Ordering::Relaxed);
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}
