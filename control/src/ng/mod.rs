//! The ng wire protocol: `<cookie> <bencoded dictionary>` over UDP.
//!
//! [`NgServer`] is sans-IO: give it a datagram and the time, it returns the reply
//! datagram. Retransmissions (same cookie) get the cached reply without re-running the
//! command, as Kamailio's module relies on.

pub mod client;
pub mod flags;

use std::collections::{HashMap, VecDeque};

use crate::bencode::Value;
use crate::engine::Engine;

/// Replies are kept this long for retransmissions.
const COOKIE_TTL_MS: u64 = 30_000;
const COOKIE_MAX: usize = 20_000;

#[derive(Default)]
pub struct CookieCache {
    map: HashMap<Vec<u8>, Vec<u8>>,
    order: VecDeque<(u64, Vec<u8>)>,
}

impl CookieCache {
    pub fn get(&self, cookie: &[u8]) -> Option<&Vec<u8>> {
        self.map.get(cookie)
    }

    pub fn put(&mut self, cookie: &[u8], reply: Vec<u8>, now_ms: u64) {
        while let Some((t, _)) = self.order.front() {
            if now_ms.saturating_sub(*t) > COOKIE_TTL_MS || self.order.len() >= COOKIE_MAX {
                let (_, k) = self.order.pop_front().unwrap();
                self.map.remove(&k);
            } else {
                break;
            }
        }
        self.order.push_back((now_ms, cookie.to_vec()));
        self.map.insert(cookie.to_vec(), reply);
    }
}

pub struct NgServer {
    pub cookies: CookieCache,
}

impl Default for NgServer {
    fn default() -> Self {
        Self::new()
    }
}

impl NgServer {
    pub fn new() -> NgServer {
        NgServer { cookies: CookieCache::default() }
    }

    /// One request datagram in, one reply datagram out (None: not even a cookie to answer to).
    pub fn handle(&mut self, engine: &mut Engine, datagram: &[u8], now_ms: u64, unix: u64) -> Option<Vec<u8>> {
        let sp = datagram.iter().position(|&b| b == b' ')?;
        let (cookie, body) = (&datagram[..sp], &datagram[sp + 1..]);
        if cookie.is_empty() {
            return None;
        }
        if let Some(r) = self.cookies.get(cookie) {
            return Some(r.clone());
        }
        let reply = match Value::decode(body) {
            Ok(req @ Value::Dict(_)) => engine.command(&req, now_ms, unix),
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
        self.cookies.put(cookie, out.clone(), now_ms);
        Some(out)
    }
}

pub fn error_reply(reason: &str) -> Value {
    let mut v = Value::dict();
    v.insert("result", "error".into());
    v.insert("error-reason", reason.into());
    v
}
