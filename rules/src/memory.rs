//! A data plane that only remembers what it was told, for control-plane tests and the fuzz
//! targets (feature `testing`; never in the daemon).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::dataplane::{ApplyError, DataPlane, FlowCounters, FlowRule, KeyDirection};
use crate::state::FlowState;

#[derive(Default)]
pub struct MemoryDataPlane {
    pub state: Mutex<MemoryState>,
}

#[derive(Default)]
pub struct MemoryState {
    /// Open sockets and the rule each carries.
    pub open: HashMap<SocketAddr, Option<FlowRule>>,
    /// Addresses `open` refuses (as taken).
    pub refuse: Vec<SocketAddr>,
    /// Sockets whose rules `apply` refuses (as a backend failure).
    pub refuse_rules: Vec<SocketAddr>,
    pub counters: HashMap<SocketAddr, FlowCounters>,
    /// What each socket "learned": set by `restore` (or a test), read by `flow_state`, so
    /// the state store's round trip can be tested without a flow table.
    pub states: HashMap<SocketAddr, FlowState>,
    pub now_ms: u64,
}

impl DataPlane for MemoryDataPlane {
    fn open(&self, local: SocketAddr, _affinity: u64) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        if s.refuse.contains(&local) || s.open.contains_key(&local) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        s.open.insert(local, None);
        Ok(())
    }

    /// Refuses what a real data plane refuses (no socket, a key of the wrong length), and
    /// the sockets in `refuse_rules`; a refused rule leaves the socket without one.
    fn apply(&self, rule: FlowRule) -> Result<(), ApplyError> {
        let mut s = self.state.lock().unwrap();
        let refused = s.refuse_rules.contains(&rule.local);
        let Some(slot) = s.open.get_mut(&rule.local) else {
            return Err(ApplyError::NotOpen(rule.local));
        };
        *slot = None;
        for (direction, key) in [(KeyDirection::In, &rule.srtp_in), (KeyDirection::Out, &rule.srtp_out)] {
            if let Some(Err(why)) = key.as_ref().map(|k| k.check()) {
                return Err(ApplyError::UnusableKey { direction, why });
            }
        }
        if refused {
            return Err(ApplyError::Backend(format!("the test refuses rules for {}", rule.local)));
        }
        *slot = Some(rule);
        Ok(())
    }

    fn close(&self, local: SocketAddr) {
        let mut s = self.state.lock().unwrap();
        s.open.remove(&local);
        s.states.remove(&local);
    }

    /// The state kept for the socket (with its current counters), or an empty one.
    fn flow_state(&self, local: SocketAddr) -> Option<FlowState> {
        let s = self.state.lock().unwrap();
        s.open.contains_key(&local).then(|| FlowState {
            counters: s.counters.get(&local).cloned().unwrap_or_default(),
            ..s.states.get(&local).cloned().unwrap_or_default()
        })
    }

    /// `apply`, then keeps the state (its counters become the socket's).
    fn restore(&self, rule: FlowRule, state: FlowState) -> Result<(), ApplyError> {
        let local = rule.local;
        self.apply(rule)?;
        let mut s = self.state.lock().unwrap();
        s.counters.insert(local, state.counters.clone());
        s.states.insert(local, state);
        Ok(())
    }

    fn counters(&self, local: SocketAddr) -> Option<FlowCounters> {
        let s = self.state.lock().unwrap();
        s.open.contains_key(&local).then(|| s.counters.get(&local).cloned().unwrap_or_default())
    }

    fn now_ms(&self) -> u64 {
        self.state.lock().unwrap().now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SrtpStreamState;

    /// What `restore` is given, `flow_state` gives back (with the socket's counters), as
    /// long as the socket is open.
    #[test]
    fn a_restored_state_round_trips() {
        let dp = MemoryDataPlane::default();
        let a: SocketAddr = "192.0.2.1:30000".parse().unwrap();
        assert_eq!(dp.flow_state(a), None);
        dp.open(a, 0).unwrap();
        assert_eq!(dp.flow_state(a), Some(FlowState::default()));
        let mut s = FlowState { latched_peer: Some("198.51.100.1:4000".parse().unwrap()), ..Default::default() };
        s.srtp_in.push(SrtpStreamState {
            ssrc: 7,
            sent: false,
            rtp_highest: Some(1 << 16),
            rtcp_next: 0,
            rtcp_highest: None,
        });
        s.counters.forwarded = 42;
        dp.restore(FlowRule::rtp(a, None, None), s.clone()).unwrap();
        assert_eq!(dp.flow_state(a), Some(s));
        assert_eq!(dp.counters(a).unwrap().forwarded, 42);
        let b: SocketAddr = "192.0.2.1:30002".parse().unwrap();
        assert_eq!(dp.restore(FlowRule::rtp(b, None, None), FlowState::default()), Err(ApplyError::NotOpen(b)));
        dp.close(a);
        assert_eq!(dp.flow_state(a), None);
    }
}
