//! `GET /calls/{call-id}/capture?leg=TAG&decrypted=1&duration=SECS&max_bytes=N`: a live
//! pcap of one call's packets (docs/operations.md). The reply is a stream
//! ([`Response::stream`]): the server writes the pcap file header and then records as
//! the packets cross the relay, until the call ends, the client goes away, or a limit
//! (duration, bytes) is reached.
//!
//! Capture shows media (and with `decrypted=1` the decrypted media of SRTP calls), so
//! it needs the http token like state-changing requests, and at most
//! [`CaptureLimits::max_captures`] run at once, each holding at most its queue's bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::capture::{CaptureSink, CaptureStream, CaptureView, QueueLimits, StreamLimits};
use crate::http::{authorize, percent_decode, Api, Response};

/// The content type of a pcap stream (IANA).
pub const PCAP: &str = "application/vnd.tcpdump.pcap";

/// What a capture may cost, and the defaults a request can lower or raise within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    pub default_duration_s: u64,
    pub max_duration_s: u64,
    pub default_bytes: u64,
    pub max_bytes: u64,
    /// Captures streaming at once (each holds an HTTP connection and a queue).
    pub max_captures: usize,
    pub queue: QueueLimits,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits {
            default_duration_s: 300,
            max_duration_s: 3600,
            default_bytes: 100 << 20,
            max_bytes: 1 << 30,
            max_captures: 4,
            queue: QueueLimits::default(),
        }
    }
}

/// The API's captures: their limits and how many are running.
#[derive(Debug, Default)]
pub struct Captures {
    pub limits: CaptureLimits,
    active: Arc<AtomicUsize>,
}

impl Captures {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// A capture slot, given back when the stream ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A capture request's parameters, checked against the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureQuery {
    pub leg: Option<String>,
    pub decrypted: bool,
    pub duration_s: u64,
    pub max_bytes: u64,
}

impl CaptureQuery {
    /// Parse the query string; the error names the parameter and what is wrong.
    pub fn parse(query: Option<&str>, l: &CaptureLimits) -> Result<CaptureQuery, String> {
        let mut q =
            CaptureQuery { leg: None, decrypted: false, duration_s: l.default_duration_s, max_bytes: l.default_bytes };
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            let clipped: String = k.chars().take(40).collect();
            if seen.contains(&k) {
                return Err(format!("{clipped} given twice"));
            }
            let number = |max: u64| -> Result<u64, String> {
                match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => {
                        Err(format!("{k}={:?}: a whole number from 1 to {max}", v.chars().take(40).collect::<String>()))
                    }
                }
            };
            match k {
                "leg" if !v.is_empty() && v.len() <= 256 => q.leg = Some(v),
                "leg" => return Err("leg: a tag of the call (1 to 256 bytes)".into()),
                "decrypted" => {
                    q.decrypted = match v.as_str() {
                        "" | "1" | "true" | "yes" | "on" => true,
                        "0" | "false" | "no" | "off" => false,
                        _ => return Err("decrypted: 1 or 0".into()),
                    }
                }
                "duration" => q.duration_s = number(l.max_duration_s)?,
                "max_bytes" => q.max_bytes = number(l.max_bytes)?,
                _ => return Err(format!("unknown parameter {clipped:?} (leg, decrypted, duration, max_bytes)")),
            }
            seen.push(k);
        }
        Ok(q)
    }
}

fn unix_now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Start a live capture of call `id`: checks the token, the parameters, the call and
/// leg, then puts a capture sink on the call's sockets; the reply streams its pcap.
pub fn route(api: &Api, id: &str, query: Option<&str>, headers: &[(&str, &[u8])]) -> Response {
    if let Err(r) = authorize(api, headers) {
        api.stats.refused_token.fetch_add(1, Ordering::Relaxed);
        return r;
    }
    let limits = api.captures.limits;
    let q = match CaptureQuery::parse(query, &limits) {
        Ok(q) => q,
        Err(e) => return Response::error(400, e),
    };
    let active = &api.captures.active;
    if active.fetch_add(1, Ordering::Relaxed) >= limits.max_captures {
        active.fetch_sub(1, Ordering::Relaxed);
        return Response::error(503, format!("{} captures are running, the most at once", limits.max_captures));
    }
    let slot = Slot(active.clone());
    let view = CaptureView { decrypted: q.decrypted };
    let (sink, tap) = {
        let mut e = crate::lock(&api.engine);
        let Some(call) = e.calls.get(id) else {
            return Response::error(404, format!("no call {id:?}"));
        };
        if let Some(leg) = &q.leg {
            if !call.monologues.iter().any(|m| m.tag == *leg) {
                let tags: Vec<&str> = call.monologues.iter().map(|m| m.tag.as_str()).collect();
                return Response::error(404, format!("call {id:?} has no leg tagged {leg:?} (its tags: {tags:?})"));
            }
        }
        let dp_now_us = e.dataplane().now_ms().saturating_mul(1000);
        let sink = Arc::new(CaptureSink::new(view, limits.queue, unix_now_us(), dp_now_us));
        match e.add_tap(id, q.leg.as_deref(), sink.clone()) {
            Ok(t) => (sink, t),
            // the call's tap limit (recording and captures), or a data plane refusal
            Err(why) => return Response::error(503, format!("cannot capture call {id:?}: {why}")),
        }
    };
    api.stats.captures.fetch_add(1, Ordering::Relaxed);
    log::info!(
        "capture of call {id:?} started (leg {:?}, decrypted {}, up to {} s / {} bytes)",
        q.leg.as_deref().unwrap_or("all"),
        q.decrypted,
        q.duration_s,
        q.max_bytes
    );
    let engine = api.engine.clone();
    let call = id.to_string();
    let on_drop = Box::new(move |sink: &CaptureSink| {
        crate::lock(&engine).remove_tap(tap);
        drop(slot);
        log::info!(
            "capture of call {call:?} ended: {} packets, {} dropped (the reader fell behind)",
            sink.captured(),
            sink.dropped()
        );
    });
    let stream = CaptureStream::new(
        sink,
        StreamLimits { max_duration_us: q.duration_s.saturating_mul(1_000_000), max_bytes: q.max_bytes },
        Some(on_drop),
    );
    Response { status: 200, content_type: PCAP, body: String::new(), stream: Some(stream) }
}
