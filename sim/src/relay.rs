//! [`Relay`]: the engine, its ng server and a [`MemDataPlane`] on a simulated network,
//! driven by an event loop under simulated time. ng requests go through
//! [`NgServer::handle`] exactly as the daemon's ng socket loop calls it, and the timers
//! run [`Engine::tick`] every [`Relay::TICK_MS`] as the daemon's timer thread does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::{Engine, EngineConfig};
use control::ng::NgServer;
use relay_core::flow::FlowSettings;
use rules::dataplane::DataPlane;

use crate::clock::SimClock;
use crate::dataplane::{Delivery, MemDataPlane};
use crate::net::{Datagram, Network};

pub struct Relay {
    pub clock: SimClock,
    dp: Arc<MemDataPlane>,
    engine: Engine,
    ng: NgServer,
    pub net: Network,
    /// Datagrams delivered to addresses where no relay socket is open (the endpoints', and
    /// relay ports already released).
    inboxes: HashMap<SocketAddr, Vec<Datagram>>,
    next_tick_ms: u64,
    next_cookie: u64,
    /// When the data plane's timers last ran between ticks.
    timers_ran_ms: u64,
}

impl Relay {
    /// How often the timers run (the daemon's timer thread sleeps this long).
    pub const TICK_MS: u64 = 500;
    /// The ng client's address (a SIP proxy).
    pub const NG_CLIENT: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 250)), 2222);
    /// The wall clock the engine sees at simulated time 0 (ng `created` values).
    pub const UNIX_START: u64 = 1_700_000_000;

    /// A relay with the default flow settings under the engine's media address policy
    /// (as the daemon builds its flow tables), on a network seeded with `seed`.
    pub fn new(cfg: EngineConfig, seed: u64) -> Relay {
        let settings = FlowSettings { policy: Arc::new(cfg.media_policy.clone()), ..FlowSettings::default() };
        Relay::with_settings(cfg, &settings, seed)
    }

    pub fn with_settings(cfg: EngineConfig, settings: &FlowSettings, seed: u64) -> Relay {
        let clock = SimClock::new();
        let dp = Arc::new(MemDataPlane::new(settings, clock.clone()));
        let engine = Engine::new(cfg, dp.clone());
        let next_tick_ms = clock.now_ms() + Self::TICK_MS;
        Relay {
            clock,
            dp,
            engine,
            ng: NgServer::new(),
            net: Network::new(seed),
            inboxes: HashMap::new(),
            next_tick_ms,
            next_cookie: 0,
            timers_ran_ms: 0,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The DTLS certificate the engine advertises (relayd generates one at start).
    pub fn set_dtls_identity(&mut self, identity: Arc<rules::webrtc::DtlsIdentity>) {
        self.engine.set_dtls_identity(identity);
    }

    pub fn dataplane(&self) -> &MemDataPlane {
        &self.dp
    }

    /// One ng datagram from `from`, handled as the daemon handles it: the reply datagram,
    /// or None when the server ignores it.
    pub fn ng_datagram(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
        let now = self.dp.now_ms();
        let unix = Self::UNIX_START + now / 1000;
        self.ng.handle(&mut self.engine, from, datagram, now, unix)
    }

    /// An ng request from [`NG_CLIENT`](Self::NG_CLIENT) with a fresh cookie: the decoded
    /// reply (an error reply if there was none or it does not decode).
    pub fn ng(&mut self, req: &Value) -> Value {
        self.next_cookie += 1;
        let cookie = format!("sim{}", self.next_cookie);
        let mut dg = cookie.clone().into_bytes();
        dg.push(b' ');
        req.encode_into(&mut dg);
        let Some(reply) = self.ng_datagram(Self::NG_CLIENT, &dg) else {
            return control::ng::error_reply("the ng server ignored the request");
        };
        match reply.strip_prefix(format!("{cookie} ").as_bytes()).map(Value::decode) {
            Some(Ok(v)) => v,
            _ => control::ng::error_reply("reply without the request's cookie, or not bencode"),
        }
    }

    /// An endpoint at `from` sends a datagram to `to` now.
    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, payload: Vec<u8>) {
        let now = self.now_ms();
        self.net.send(from, to, payload, now);
    }

    /// A forged datagram claiming source `from` arrives at `to` now.
    pub fn spoof(&mut self, from: SocketAddr, to: SocketAddr, payload: Vec<u8>) {
        let now = self.now_ms();
        self.net.spoof(from, to, payload, now);
    }

    /// Run the network and the timers for `ms` simulated milliseconds.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now_ms() + ms);
    }

    /// Deliver every datagram and run every tick due by `until_ms`, in time order.
    pub fn run_until(&mut self, until_ms: u64) {
        loop {
            // the data plane's own timers (DTLS) are due at their time, as in a worker
            // they are due at its next tick
            // (at most once per simulated ms: a timer that stays due cannot stall the loop)
            let due = self.dp.next_timeout_ms().map(|t| t.max(self.timers_ran_ms + 1)).filter(|t| *t <= until_ms);
            if let Some(t) = due {
                if self.net.next_at().is_none_or(|d| t < d) && t < self.next_tick_ms {
                    self.clock.set_ms(t);
                    self.timers_ran_ms = self.now_ms();
                    self.dp.handle_timeout();
                    self.send_replies();
                    continue;
                }
            }
            let next_dg = self.net.next_at().filter(|t| *t <= until_ms);
            match next_dg {
                Some(t) if t < self.next_tick_ms => {
                    self.clock.set_ms(t);
                    if let Some(d) = self.net.pop_due(t) {
                        self.deliver(d);
                    }
                }
                _ if self.next_tick_ms <= until_ms => {
                    self.clock.set_ms(self.next_tick_ms);
                    self.next_tick_ms += Self::TICK_MS;
                    let now = self.dp.now_ms();
                    self.engine.tick(now);
                    self.dp.handle_timeout();
                    self.send_replies();
                }
                _ => break,
            }
        }
        self.clock.set_ms(until_ms);
    }

    fn deliver(&mut self, d: Datagram) {
        match self.dp.receive(d.to, d.from, &d.payload) {
            Delivery::Forward { from, to, payload } => {
                let now = self.now_ms();
                self.net.send(from, to, payload, now);
            }
            Delivery::Drop(_) => {}
            Delivery::Consumed => self.send_replies(),
            Delivery::NoSocket => self.inboxes.entry(d.to).or_default().push(d),
        }
    }

    /// The data plane's replies (STUN answers, DTLS flights) onto the network.
    fn send_replies(&mut self) {
        let now = self.now_ms();
        for r in self.dp.transmits() {
            self.net.send(r.from, r.to, r.payload, now);
        }
    }

    /// The datagrams delivered to `addr` since the last call, in arrival order.
    pub fn take_inbox(&mut self, addr: SocketAddr) -> Vec<Datagram> {
        self.inboxes.remove(&addr).unwrap_or_default()
    }
}
