//! [`MemDataPlane`]: the data-plane seam over one real [`FlowTable`], with no sockets.
//! A datagram "arrives" when the simulation calls [`MemDataPlane::receive`]; the verdict
//! says which relay socket it leaves from and where to, as the io_uring worker does.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use relay_core::flow::counters::SharedCounters;
use relay_core::flow::{DropReason, FlowSettings, FlowTable, Verdict};
use relay_core::srtp::Suite;
use rules::dataplane::{ApplyError, DataPlane, FlowCounters, FlowRule};
use rules::state::FlowState;

use crate::clock::SimClock;

/// What became of one datagram that reached a relay address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Leaves relay socket `from` towards `to` with this (possibly re-keyed) payload.
    Forward {
        from: SocketAddr,
        to: SocketAddr,
        payload: Vec<u8>,
    },
    Drop(DropReason),
    /// For the relay itself (STUN, DTLS): its replies come from [`MemDataPlane::transmits`].
    Consumed,
    /// No relay socket is open at that address (an endpoint's, or a closed one).
    NoSocket,
}

/// A datagram the relay itself sends (STUN answer, DTLS flight) from relay socket `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// Totals over all sockets (the per-socket ones are the flows' [`FlowCounters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaneStats {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
}

struct Inner {
    table: FlowTable,
    counters: HashMap<SocketAddr, Arc<SharedCounters>>,
    /// The rule each socket got last (tests re-apply it with changes).
    rules: HashMap<SocketAddr, FlowRule>,
    stats: PlaneStats,
}

/// A [`DataPlane`] that owns a real flow table: rules, latching, SRTP and counters are
/// the production code; only the sockets are simulated.
pub struct MemDataPlane {
    clock: SimClock,
    inner: Mutex<Inner>,
}

impl MemDataPlane {
    pub fn new(settings: &FlowSettings, clock: SimClock) -> MemDataPlane {
        let inner = Inner {
            table: settings.table(),
            counters: HashMap::new(),
            rules: HashMap::new(),
            stats: PlaneStats::default(),
        };
        MemDataPlane { clock, inner: Mutex::new(inner) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Is a relay socket open at `local`?
    pub fn is_open(&self, local: SocketAddr) -> bool {
        self.lock().table.lookup(local).is_some()
    }

    pub fn stats(&self) -> PlaneStats {
        self.lock().stats.clone()
    }

    /// A datagram from `src` arrives on relay socket `local`, at the clock's time.
    pub fn receive(&self, local: SocketAddr, src: SocketAddr, payload: &[u8]) -> Delivery {
        let now_us = self.clock.now_ms() * 1000;
        let mut g = self.lock();
        let Inner { table, stats, .. } = &mut *g;
        let Some(id) = table.lookup(local) else {
            return Delivery::NoSocket;
        };
        stats.received += 1;
        // SRTP is added in place: the buffer needs tail room, as a worker's buffer has
        let mut buf = vec![0u8; payload.len() + Suite::MAX_OVERHEAD];
        buf[..payload.len()].copy_from_slice(payload);
        match table.process(id, src, &mut buf, payload.len(), now_us) {
            Verdict::Forward { via, to, len } => match table.get(via) {
                Some(v) => {
                    stats.forwarded += 1;
                    buf.truncate(len);
                    Delivery::Forward { from: v.local, to, payload: buf }
                }
                None => {
                    table.send_failed(id);
                    stats.dropped += 1;
                    Delivery::Drop(DropReason::NoDestination)
                }
            },
            Verdict::Drop(r) => {
                stats.dropped += 1;
                Delivery::Drop(r)
            }
            Verdict::Consumed => Delivery::Consumed,
        }
    }

    /// The replies the flow table queued (STUN answers, DTLS flights), in order, as a
    /// worker sends them after each batch.
    pub fn transmits(&self) -> Vec<Reply> {
        let mut g = self.lock();
        let mut out = Vec::new();
        while let Some(t) = g.table.poll_transmit() {
            if let Some(f) = g.table.get(t.via) {
                out.push(Reply { from: f.local, to: t.to, payload: t.data });
            }
        }
        out
    }

    /// The flow table's timers (DTLS retransmissions and expiry) at the clock's time, as
    /// a worker's tick runs them.
    pub fn handle_timeout(&self) {
        let now_us = self.clock.now_ms() * 1000;
        self.lock().table.handle_timeout(now_us);
    }

    /// When the flow table's timers are next due, in simulated ms (rounded up).
    pub fn next_timeout_ms(&self) -> Option<u64> {
        self.lock().table.poll_timeout().map(|us| us.div_ceil(1000))
    }

    /// The rule applied last to the socket at `local`.
    pub fn rule(&self, local: SocketAddr) -> Option<FlowRule> {
        self.lock().rules.get(&local).cloned()
    }
}

impl DataPlane for MemDataPlane {
    fn open(&self, local: SocketAddr, _affinity: u64) -> io::Result<()> {
        let mut g = self.lock();
        if g.table.lookup(local).is_some() {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        let c = Arc::new(SharedCounters::default());
        g.table.insert(local, c.clone());
        g.counters.insert(local, c);
        Ok(())
    }

    fn apply(&self, rule: FlowRule) -> Result<(), ApplyError> {
        let mut g = self.lock();
        g.rules.insert(rule.local, rule.clone());
        g.table.apply(&rule)
    }

    fn flow_state(&self, local: SocketAddr) -> Option<FlowState> {
        let now_us = self.clock.now_ms() * 1000;
        self.lock().table.state(local, now_us)
    }

    fn restore(&self, rule: FlowRule, state: FlowState) -> Result<(), ApplyError> {
        let now_us = self.clock.now_ms() * 1000;
        let mut g = self.lock();
        g.rules.insert(rule.local, rule.clone());
        g.table.restore(&rule, state, now_us)
    }

    fn close(&self, local: SocketAddr) {
        let mut g = self.lock();
        g.table.remove(local);
        g.counters.remove(&local);
        g.rules.remove(&local);
    }

    fn counters(&self, local: SocketAddr) -> Option<FlowCounters> {
        self.lock().counters.get(&local).map(|c| c.snapshot())
    }

    fn metrics(&self) -> Vec<(String, String, u64)> {
        let s = self.stats();
        [("received", s.received), ("forwarded", s.forwarded), ("dropped", s.dropped)]
            .into_iter()
            .map(|(n, v)| (format!("sim_packets_{n}_total"), String::new(), v))
            .collect()
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::packet::rtp::emit_header;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_rule_forwards_through_the_real_flow_table_and_counts() {
        let clock = SimClock::new();
        let dp = MemDataPlane::new(&FlowSettings::default(), clock.clone());
        let (x, y) = (a("203.0.113.1:30000"), a("203.0.113.1:30002"));
        let (px, py) = (a("198.51.100.1:4000"), a("198.51.100.2:5000"));
        dp.open(x, 0).unwrap();
        dp.open(y, 0).unwrap();
        assert_eq!(dp.open(x, 0).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        dp.apply(FlowRule::rtp(x, Some(px), Some(y))).unwrap();
        dp.apply(FlowRule::rtp(y, Some(py), Some(x))).unwrap();
        let mut pkt = [0u8; 16];
        emit_header(&mut pkt, 0, false, 1, 160, 7);
        clock.set_ms(5_000);
        let out = dp.receive(x, px, &pkt);
        assert_eq!(out, Delivery::Forward { from: y, to: py, payload: pkt.to_vec() });
        assert!(matches!(dp.receive(x, px, b"not rtp"), Delivery::Drop(DropReason::Malformed(_))));
        assert_eq!(dp.receive(a("203.0.113.1:39999"), px, &pkt), Delivery::NoSocket);
        let c = dp.counters(x).unwrap();
        assert_eq!((c.packets, c.forwarded, c.dropped, c.last_packet_ms), (2, 1, 1, 5_000));
        assert_eq!(c.latched_peer, Some(px));
        assert_eq!(dp.stats(), PlaneStats { received: 2, forwarded: 1, dropped: 1 });
        dp.close(y);
        assert!(!dp.is_open(y) && dp.counters(y).is_none());
        assert!(matches!(dp.receive(x, px, &pkt), Delivery::Drop(_)), "nothing forwards into a closed socket");
    }
}
