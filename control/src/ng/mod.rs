//! The ng wire protocol: `<cookie> <bencoded dictionary>` over UDP.
//!
//! [`NgServer`] is sans-IO: give it a datagram, its source and the time, it returns the
//! reply datagram. Retransmissions (same source, same cookie) get the cached reply
//! without re-running the command, as Kamailio's module relies on. The cache is keyed by
//! (source, cookie), so another host sending a recent cookie runs its own request instead
//! of receiving someone else's reply (which may hold SDES keys), and it is bounded by
//! bytes as well as by age.
//!
//! A panic while handling one request is contained: the request gets an error reply,
//! the event is counted (`EngineStats::panics`) and logged, and the engine carries on.

pub mod client;
pub mod flags;
pub mod reply;
pub mod request;
pub mod rtpp_flags;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ipnet::IpNet;

use crate::bencode::Value;
use crate::engine::Engine;
use crate::error::NgError;
use request::Command;
use rules::addrpolicy::AddressPolicy;

/// Replies are kept this long for retransmissions.
const COOKIE_TTL_MS: u64 = 30_000;
/// At most this many cached replies, whatever their size.
const COOKIE_MAX: usize = 20_000;
/// Default bound on the bytes the reply cache holds (cookies + replies + bookkeeping).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;
/// Where relayd listens for ng by default (`--listen-ng`), and where rtpgen sends.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2223";
/// What an entry costs besides its cookie and reply (map and queue slots, the address).
const ENTRY_OVERHEAD: usize = 96;

type Key = (SocketAddr, Vec<u8>);

/// Replies by (source, cookie), oldest first out: after `COOKIE_TTL_MS`, or when the
/// cache holds more than its byte or entry bound.
pub struct CookieCache {
    map: HashMap<Key, (u64, Vec<u8>)>,
    order: VecDeque<(u64, Key)>,
    bytes: usize,
    max_bytes: usize,
}

impl Default for CookieCache {
    fn default() -> Self {
        CookieCache::with_limit(DEFAULT_CACHE_BYTES)
    }
}

impl CookieCache {
    pub fn with_limit(max_bytes: usize) -> CookieCache {
        CookieCache { map: HashMap::new(), order: VecDeque::new(), bytes: 0, max_bytes }
    }

    fn cost(key: &Key, reply: &[u8]) -> usize {
        key.1.len() + reply.len() + ENTRY_OVERHEAD
    }

    pub fn get(&self, src: SocketAddr, cookie: &[u8], now_ms: u64) -> Option<&Vec<u8>> {
        let (t, r) = self.map.get(&(src, cookie.to_vec()))?;
        (now_ms.saturating_sub(*t) <= COOKIE_TTL_MS).then_some(r)
    }

    /// Bytes held now (what the byte bound applies to).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn evict_front(&mut self) {
        if let Some((_, k)) = self.order.pop_front() {
            if let Some((_, r)) = self.map.remove(&k) {
                self.bytes = self.bytes.saturating_sub(Self::cost(&k, &r));
            }
        }
    }

    pub fn put(&mut self, src: SocketAddr, cookie: &[u8], reply: Vec<u8>, now_ms: u64) {
        let key = (src, cookie.to_vec());
        let cost = Self::cost(&key, &reply);
        if cost > self.max_bytes {
            return;
        }
        if let Some((_, old)) = self.map.remove(&key) {
            // a retransmission after expiry: the old queue slot goes with the TTL
            self.bytes = self.bytes.saturating_sub(Self::cost(&key, &old));
            self.order.retain(|(_, k)| *k != key);
        }
        while let Some((t, _)) = self.order.front() {
            let expired = now_ms.saturating_sub(*t) > COOKIE_TTL_MS;
            if expired || self.order.len() >= COOKIE_MAX || self.bytes + cost > self.max_bytes {
                self.evict_front();
            } else {
                break;
            }
        }
        self.bytes += cost;
        self.order.push_back((now_ms, key.clone()));
        self.map.insert(key, (now_ms, reply));
    }
}

/// At most `per_second` lines a second; then one "suppressed K" line when the next
/// second starts. Sans-IO: the caller gives the time.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    per_second: u32,
    window_ms: u64,
    count: u32,
    suppressed: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(20)
    }
}

impl LogLimiter {
    pub fn new(per_second: u32) -> LogLimiter {
        LogLimiter { per_second, window_ms: 0, count: 0, suppressed: 0 }
    }

    /// May a line be logged now? Logs the "suppressed" line itself when a window ends.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        if now_ms.saturating_sub(self.window_ms) >= 1000 {
            if self.suppressed > 0 {
                log::warn!("{} similar log lines suppressed in the last second(s)", self.suppressed);
            }
            self.window_ms = now_ms;
            self.count = 0;
            self.suppressed = 0;
        }
        if self.count < self.per_second {
            self.count += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// Peer-supplied text for a log line: lossy UTF-8, control characters escaped, at most
/// `max` characters (then "…").
pub fn log_text(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out = String::with_capacity(max.min(s.len()) + 4);
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a datagram got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// No `<cookie> ` prefix.
    NoCookie,
    /// The cookie is longer than `max-id-length`.
    CookieTooLong,
    /// The source is not on the `--ng-allow` list.
    NotAllowed,
    /// The source is one of the relay's own media sockets (media looped into ng).
    RelaySocket,
}

impl Ignored {
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NoCookie => "no cookie",
            Ignored::CookieTooLong => "cookie too long",
            Ignored::NotAllowed => "source not on the ng allow-list",
            Ignored::RelaySocket => "source is one of the relay's own media sockets",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NgCounters {
    pub replies: u64,
    pub cached: u64,
    pub ignored_no_cookie: u64,
    pub ignored_cookie_too_long: u64,
    pub ignored_not_allowed: u64,
    pub ignored_relay_socket: u64,
    pub panics: u64,
}

pub struct NgServer {
    pub cookies: CookieCache,
    /// Empty: every source may send commands.
    allowed: Vec<IpNet>,
    pub counters: NgCounters,
    /// The reason of the last datagram that got no reply.
    pub last_ignored: Option<Ignored>,
}

impl Default for NgServer {
    fn default() -> Self {
        Self::new()
    }
}

impl NgServer {
    pub fn new() -> NgServer {
        NgServer::with_cache_bytes(DEFAULT_CACHE_BYTES)
    }

    pub fn with_cache_bytes(bytes: usize) -> NgServer {
        NgServer {
            cookies: CookieCache::with_limit(bytes),
            allowed: Vec::new(),
            counters: NgCounters::default(),
            last_ignored: None,
        }
    }

    /// Only these sources may send commands (empty: all).
    pub fn with_allowed_sources(mut self, nets: Vec<IpNet>) -> NgServer {
        self.allowed = nets;
        self
    }

    /// Replace the allow-list (relayd's reload).
    pub fn set_allowed_sources(&mut self, nets: Vec<IpNet>) {
        self.allowed = nets;
    }

    fn allowed(&self, src: SocketAddr) -> bool {
        let ip = match src.ip() {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(src.ip()),
            ip => ip,
        };
        self.allowed.is_empty() || self.allowed.iter().any(|n| n.contains(&ip) || n.contains(&src.ip()))
    }

    /// May `src` send commands? No when it is not on the allow-list, or when the policy
    /// says it is one of the relay's own sockets (the engine refines the latter with the
    /// sockets it really has open, see [`handle`](Self::handle)).
    pub fn accepts(&self, src: SocketAddr, policy: &AddressPolicy) -> bool {
        self.allowed(src) && !policy.is_own_socket(src)
    }

    fn ignore(&mut self, engine: &mut Engine, why: Ignored) -> Option<Vec<u8>> {
        engine.stats.ng_ignored += 1;
        match why {
            Ignored::NoCookie => self.counters.ignored_no_cookie += 1,
            Ignored::CookieTooLong => self.counters.ignored_cookie_too_long += 1,
            Ignored::NotAllowed => self.counters.ignored_not_allowed += 1,
            Ignored::RelaySocket => self.counters.ignored_relay_socket += 1,
        }
        self.last_ignored = Some(why);
        None
    }

    /// One request datagram from `src` in, one reply datagram out (None: ignored; the
    /// reason is in `last_ignored` and counted).
    pub fn handle(
        &mut self,
        engine: &mut Engine,
        src: SocketAddr,
        datagram: &[u8],
        now_ms: u64,
        unix: u64,
    ) -> Option<Vec<u8>> {
        self.last_ignored = None;
        if !self.allowed(src) {
            return self.ignore(engine, Ignored::NotAllowed);
        }
        if engine.cfg.media_policy.is_own_socket(src) && engine.owns_socket(src) {
            return self.ignore(engine, Ignored::RelaySocket);
        }
        let Some(sp) = datagram.iter().position(|&b| b == b' ') else {
            return self.ignore(engine, Ignored::NoCookie);
        };
        let (cookie, body) = datagram.split_at(sp);
        let body = body.get(1..).unwrap_or_default();
        if cookie.is_empty() {
            return self.ignore(engine, Ignored::NoCookie);
        }
        if cookie.len() > engine.cfg.max_id_length {
            return self.ignore(engine, Ignored::CookieTooLong);
        }
        if let Some(r) = self.cookies.get(src, cookie, now_ms) {
            self.counters.cached += 1;
            return Some(r.clone());
        }
        let reply = match Value::decode(body) {
            Ok(req @ Value::Dict(_)) => match catch_unwind(AssertUnwindSafe(|| engine.command(&req, now_ms, unix))) {
                Ok(v) => v,
                Err(p) => {
                    let cmd = Command::name_in(&req);
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    engine.stats.panics += 1;
                    engine.stats.errors += 1;
                    self.counters.panics += 1;
                    log::error!(
                        "ng {}: internal error (panic: {}) in the request from {src} with cookie {}; \
                         the request was refused, the relay carries on",
                        log_text(cmd.as_bytes(), 40),
                        log_text(what.as_bytes(), 200),
                        log_text(cookie, 64),
                    );
                    NgError::Internal(log_text(cmd.as_bytes(), 40)).encode()
                }
            },
            Ok(_) => {
                engine.stats.errors += 1;
                error_reply("request is not a bencoded dictionary")
            }
            Err(e) => {
                engine.stats.errors += 1;
                error_reply(&e.to_string())
            }
        };
        let mut out = Vec::with_capacity(cookie.len() + 1 + 512);
        out.extend_from_slice(cookie);
        out.push(b' ');
        reply.encode_into(&mut out);
        self.cookies.put(src, cookie, out.clone(), now_ms);
        self.counters.replies += 1;
        Some(out)
    }
}

pub use reply::error_reply;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::EngineConfig;
    use rules::dataplane::MemoryDataPlane;

    fn engine() -> Engine {
        Engine::new(EngineConfig::default(), Arc::new(MemoryDataPlane::default()))
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn result(reply: &[u8]) -> Value {
        let sp = reply.iter().position(|&b| b == b' ').unwrap();
        Value::decode(&reply[sp + 1..]).unwrap()
    }

    #[test]
    fn a_panicking_request_gets_an_error_reply_and_the_next_one_works() {
        let mut e = engine();
        let mut ng = NgServer::new();
        let src = a("192.0.2.9:5060");
        let r = ng.handle(&mut e, src, b"c1 d7:command10:test-panice", 1, 0).unwrap();
        let v = result(&r);
        assert_eq!(v.get("result").and_then(Value::as_str), Some("error"));
        assert_eq!(v.get("error-reason").and_then(Value::as_str), Some("internal error handling test-panic"));
        assert_eq!((e.stats.panics, ng.counters.panics), (1, 1));
        let r = ng.handle(&mut e, src, b"c2 d7:command4:pinge", 2, 0).unwrap();
        assert_eq!(result(&r).get("result").and_then(Value::as_str), Some("pong"));
    }

    #[test]
    fn the_cache_is_per_source() {
        let mut e = engine();
        let mut ng = NgServer::new();
        let (s1, s2) = (a("192.0.2.9:5060"), a("198.51.100.7:5060"));
        let r1 = ng.handle(&mut e, s1, b"k d7:command4:pinge", 1, 0).unwrap();
        // the same source retransmitting gets the cached reply without a new command
        assert_eq!(ng.handle(&mut e, s1, b"k d7:command4:pinge", 2, 0).unwrap(), r1);
        assert_eq!(e.stats.commands.get("ping"), Some(&1));
        // another source with the same cookie runs its own request
        let r2 = ng.handle(&mut e, s2, b"k d7:command10:statisticse", 3, 0).unwrap();
        assert_ne!(r2, r1);
        assert!(result(&r2).get("statistics").is_some());
        // expired entries are not served
        ng.handle(&mut e, s1, b"k d7:command4:pinge", 2 + COOKIE_TTL_MS + 1, 0).unwrap();
        assert_eq!(e.stats.commands.get("ping"), Some(&2));
    }

    #[test]
    fn the_cache_is_bounded_by_bytes_and_long_cookies_are_refused() {
        let mut e = engine();
        let mut ng = NgServer::new();
        let src = a("192.0.2.9:5060");
        // 2000 requests with 60 KB cookies: refused, nothing stored
        for i in 0..2000u32 {
            let mut d = format!("{i:05}").into_bytes();
            d.resize(60_000, b'x');
            d.extend_from_slice(b" d7:command4:pinge");
            assert!(ng.handle(&mut e, src, &d, i as u64, 0).is_none());
            assert_eq!(ng.last_ignored, Some(Ignored::CookieTooLong));
        }
        assert_eq!(ng.cookies.bytes(), 0);
        // legal cookies with big replies: the byte bound holds
        let mut ng = NgServer::with_cache_bytes(1 << 20);
        for i in 0..3000u32 {
            let d = format!("{i:0200} d7:command4:ping3:padi1ee");
            ng.handle(&mut e, src, d.as_bytes(), 1000 + i as u64, 0).unwrap();
            assert!(ng.cookies.bytes() <= 1 << 20);
        }
        // and by count/TTL
        assert!(ng.cookies.len() <= COOKIE_MAX);
        let big = 64 * 1024;
        let mut c = CookieCache::with_limit(10 * big);
        for i in 0..2000u32 {
            c.put(src, format!("{i}").as_bytes(), vec![0; big], i as u64);
            assert!(c.bytes() <= 10 * big);
        }
        assert!(c.len() <= 10);
        assert!(c.get(src, b"1999", 1999).is_some());
    }

    #[test]
    fn allow_list_and_own_sockets() {
        let mut e = engine();
        let nets = vec!["192.0.2.0/24".parse().unwrap(), "::1/128".parse().unwrap()];
        let mut ng = NgServer::new().with_allowed_sources(nets);
        assert!(ng.handle(&mut e, a("192.0.2.9:5060"), b"c d7:command4:pinge", 1, 0).is_some());
        assert!(ng.handle(&mut e, a("[::1]:5060"), b"c d7:command4:pinge", 1, 0).is_some());
        assert!(ng.handle(&mut e, a("198.51.100.1:5060"), b"c d7:command4:pinge", 1, 0).is_none());
        assert_eq!(ng.last_ignored, Some(Ignored::NotAllowed));
        assert_eq!((ng.counters.ignored_not_allowed, e.stats.ng_ignored), (1, 1));
        assert!(!ng.accepts(a("198.51.100.1:5060"), &e.cfg.media_policy));
        assert!(ng.accepts(a("192.0.2.9:5060"), &e.cfg.media_policy));
    }

    #[test]
    fn datagrams_from_the_relays_own_media_sockets_are_ignored() {
        let policy = AddressPolicy {
            own: vec!["127.0.0.1".parse().unwrap()],
            own_ports: vec![(30000, 40000), (2223, 2223)],
            lab_loopback: true,
            ..Default::default()
        };
        let cfg = EngineConfig { media_policy: policy, port_min: 30000, port_max: 40000, ..Default::default() };
        let mut e = Engine::new(cfg, Arc::new(MemoryDataPlane::default()));
        let mut ng = NgServer::new();
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let mut req = b"o d7:command5:offer7:call-id1:c8:from-tag1:a3:sdp".to_vec();
        req.extend_from_slice(format!("{}:{sdp}e", sdp.len()).as_bytes());
        let r = ng.handle(&mut e, a("127.0.0.1:45000"), &req, 1, 0).unwrap();
        assert!(String::from_utf8_lossy(&r).contains("6:result2:ok"));
        let ports: Vec<u16> = e.calls["c"].sockets().iter().map(|s| s.port()).collect();
        assert!(!ports.is_empty());
        for p in ports {
            let src = SocketAddr::new("127.0.0.1".parse().unwrap(), p);
            assert!(!ng.accepts(src, &e.cfg.media_policy));
            assert!(ng.handle(&mut e, src, b"x d7:command4:liste", 2, 0).is_none(), "{src}");
            assert_eq!(ng.last_ignored, Some(Ignored::RelaySocket));
        }
        // a client whose ephemeral port lies in the media range but is not ours is served
        let free = (30000..40000).find(|p| !e.owns_socket(SocketAddr::new([127, 0, 0, 1].into(), *p))).unwrap();
        assert!(ng
            .handle(&mut e, SocketAddr::new([127, 0, 0, 1].into(), free), b"y d7:command4:pinge", 3, 0)
            .is_some());
    }

    #[test]
    fn log_limiter_and_log_text() {
        let mut l = LogLimiter::new(3);
        let n = (0..10).filter(|_| l.allow(5000)).count();
        assert_eq!((n, l.suppressed()), (3, 7));
        assert!(l.allow(6000));
        assert_eq!(l.suppressed(), 0);
        assert_eq!(log_text(b"ab\ncd", 10), "ab\\ncd");
        assert_eq!(log_text("é".repeat(300).as_bytes(), 200).chars().count(), 201);
        assert_eq!(log_text(&[0xff, b'a'], 10), "\u{fffd}a");
    }
}
