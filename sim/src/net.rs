//! The simulated network: datagrams in flight with a delivery time, per-endpoint link
//! impairments (loss, reordering, duplication, latency), NAT bindings that can change
//! mid-call, and forged datagrams from any source. Deterministic: the randomness is a
//! seeded generator, so a failing run repeats exactly.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// One UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
    /// When it arrives (simulated ms).
    pub at_ms: u64,
}

/// What an endpoint's access link does to the datagrams it sends and receives.
/// Probabilities are in per mille, so tests can state them exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impairment {
    /// One-way delay.
    pub latency_ms: u64,
    pub loss_per_mille: u16,
    /// Datagrams held back by `reorder_delay_ms`, so later ones overtake them.
    pub reorder_per_mille: u16,
    pub reorder_delay_ms: u64,
    /// Datagrams delivered twice (the copy 1 ms later).
    pub duplicate_per_mille: u16,
}

/// What the network did, for tests to check the impairments really happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network (by endpoints and by the relay).
    pub sent: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
    /// Forged datagrams injected with [`Network::spoof`].
    pub spoofed: u64,
}

/// SplitMix64: small, seeded, good enough to pick which datagrams a link harms.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, per_mille: u16) -> bool {
        per_mille > 0 && self.next() % 1000 < per_mille as u64
    }
}

pub struct Network {
    /// In flight, by (delivery time, sequence): equal times keep their sending order.
    in_flight: BTreeMap<(u64, u64), Datagram>,
    seq: u64,
    /// Impairment of an endpoint's link, by the endpoint's own (inside) address.
    links: HashMap<SocketAddr, Impairment>,
    /// NAT: an endpoint's inside address -> the outside address others see.
    nat_out: HashMap<SocketAddr, SocketAddr>,
    /// and back.
    nat_in: HashMap<SocketAddr, SocketAddr>,
    rng: Rng,
    pub stats: NetStats,
}

impl Network {
    pub fn new(seed: u64) -> Network {
        Network {
            in_flight: BTreeMap::new(),
            seq: 0,
            links: HashMap::new(),
            nat_out: HashMap::new(),
            nat_in: HashMap::new(),
            rng: Rng(seed),
            stats: NetStats::default(),
        }
    }

    /// Impair the link of the endpoint at (inside address) `endpoint`, both directions.
    pub fn set_link(&mut self, endpoint: SocketAddr, imp: Impairment) {
        self.links.insert(endpoint, imp);
    }

    /// Put `inside` behind a NAT that maps it to `outside` from now on (a rebinding when it
    /// had another mapping: datagrams to the old outside address are then lost).
    pub fn rebind(&mut self, inside: SocketAddr, outside: SocketAddr) {
        if let Some(old) = self.nat_out.insert(inside, outside) {
            self.nat_in.remove(&old);
        }
        self.nat_in.insert(outside, inside);
    }

    /// The address others see for `inside`.
    pub fn outside(&self, inside: SocketAddr) -> SocketAddr {
        self.nat_out.get(&inside).copied().unwrap_or(inside)
    }

    /// `from` sends a datagram to `to` at `now_ms`, through `from`'s NAT and over the
    /// impaired links of both ends.
    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, payload: Vec<u8>, now_ms: u64) {
        self.stats.sent += 1;
        let src = self.outside(from);
        let dst = self.nat_in.get(&to).copied().unwrap_or(to);
        let mut imp = self.links.get(&from).copied().unwrap_or_default();
        if let Some(d) = self.links.get(&dst) {
            imp = combine(imp, *d);
        }
        if self.rng.chance(imp.loss_per_mille) {
            self.stats.lost += 1;
            return;
        }
        let mut at = now_ms + imp.latency_ms;
        if self.rng.chance(imp.reorder_per_mille) {
            self.stats.reordered += 1;
            at += imp.reorder_delay_ms;
        }
        if self.rng.chance(imp.duplicate_per_mille) {
            self.stats.duplicated += 1;
            self.schedule(Datagram { from: src, to, payload: payload.clone(), at_ms: at + 1 });
        }
        self.schedule(Datagram { from: src, to, payload, at_ms: at });
    }

    /// A forged datagram: source `from` exactly as given (no NAT, no impairment),
    /// arriving at `now_ms`.
    pub fn spoof(&mut self, from: SocketAddr, to: SocketAddr, payload: Vec<u8>, now_ms: u64) {
        self.stats.spoofed += 1;
        self.schedule(Datagram { from, to, payload, at_ms: now_ms });
    }

    fn schedule(&mut self, d: Datagram) {
        self.seq += 1;
        self.in_flight.insert((d.at_ms, self.seq), d);
    }

    /// When the next datagram arrives.
    pub fn next_at(&self) -> Option<u64> {
        self.in_flight.keys().next().map(|k| k.0)
    }

    /// The next datagram due by `until_ms`, with `to` translated through the NAT to the
    /// inside address it reaches (or left as is).
    pub fn pop_due(&mut self, until_ms: u64) -> Option<Datagram> {
        let (&k, _) = self.in_flight.iter().next().filter(|(k, _)| k.0 <= until_ms)?;
        let mut d = self.in_flight.remove(&k)?;
        if let Some(inside) = self.nat_in.get(&d.to) {
            d.to = *inside;
        } else if self.nat_out.contains_key(&d.to) {
            // sent to an inside address the NAT hides (or to a binding that expired)
            d.to = unreachable_addr();
        }
        Some(d)
    }
}

/// Where a datagram to a NAT's hidden side goes: nowhere anyone listens.
fn unreachable_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// Both ends' links harm the datagram: delays add, the worse probability wins.
fn combine(a: Impairment, b: Impairment) -> Impairment {
    Impairment {
        latency_ms: a.latency_ms + b.latency_ms,
        loss_per_mille: a.loss_per_mille.max(b.loss_per_mille),
        reorder_per_mille: a.reorder_per_mille.max(b.reorder_per_mille),
        reorder_delay_ms: a.reorder_delay_ms.max(b.reorder_delay_ms),
        duplicate_per_mille: a.duplicate_per_mille.max(b.duplicate_per_mille),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn datagrams_arrive_in_time_order_and_equal_times_in_sending_order() {
        let mut n = Network::new(1);
        let (x, y) = (a("192.0.2.1:1000"), a("192.0.2.2:2000"));
        n.set_link(x, Impairment { latency_ms: 30, ..Default::default() });
        n.send(x, y, b"late".to_vec(), 0);
        n.send(y, a("192.0.2.3:3000"), b"first".to_vec(), 0);
        n.send(y, a("192.0.2.3:3000"), b"second".to_vec(), 0);
        assert_eq!(n.next_at(), Some(0));
        let got: Vec<_> = std::iter::from_fn(|| n.pop_due(29)).map(|d| d.payload).collect();
        assert_eq!(got, [b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(n.pop_due(30).map(|d| (d.payload, d.at_ms)), Some((b"late".to_vec(), 30)));
    }

    #[test]
    fn impairments_are_deterministic_and_near_their_rates() {
        let run = |seed| {
            let mut n = Network::new(seed);
            let x = a("192.0.2.1:1000");
            let imp = Impairment {
                loss_per_mille: 100,
                reorder_per_mille: 50,
                reorder_delay_ms: 40,
                duplicate_per_mille: 20,
                ..Default::default()
            };
            n.set_link(x, imp);
            for i in 0..10_000u64 {
                n.send(x, a("192.0.2.9:9"), i.to_be_bytes().to_vec(), i);
            }
            n.stats
        };
        let s = run(42);
        assert_eq!(s, run(42), "same seed, same run");
        assert!((900..1100).contains(&s.lost), "{s:?}");
        assert!((400..600).contains(&s.reordered) && (120..280).contains(&s.duplicated), "{s:?}");
    }

    #[test]
    fn a_nat_rebinding_changes_the_source_and_strands_the_old_mapping() {
        let mut n = Network::new(1);
        let (inside, relay) = (a("10.0.0.5:4000"), a("203.0.113.1:30000"));
        let (first, second) = (a("198.51.100.9:50000"), a("198.51.100.9:50001"));
        n.rebind(inside, first);
        n.send(inside, relay, vec![1], 0);
        assert_eq!(n.pop_due(0).map(|d| d.from), Some(first));
        n.rebind(inside, second);
        n.send(inside, relay, vec![2], 1);
        assert_eq!(n.pop_due(1).map(|d| d.from), Some(second));
        // the relay answers both mappings: only the current one reaches the endpoint
        n.send(relay, first, vec![3], 2);
        n.send(relay, second, vec![4], 2);
        let to: Vec<_> = std::iter::from_fn(|| n.pop_due(2)).map(|d| (d.to, d.payload)).collect();
        assert_eq!(to, [(first, vec![3]), (inside, vec![4])]);
        // nor does anything sent to the hidden inside address
        n.send(relay, inside, vec![5], 3);
        assert_eq!(n.pop_due(3).map(|d| d.to), Some(unreachable_addr()));
    }
}
