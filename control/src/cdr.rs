//! The call detail record: one JSON line in the log for every call that ends, written
//! when the engine ends it (delete, timeout, terminate) while the data plane still has
//! its sockets' counters. The line starts with `cdr ` and is logged under the `cdr`
//! target, so operators grep it out of the journal or ship it with a log forwarder:
//!
//! ```text
//! cdr {"call_id":"...","start_unix":...,"end_unix":...,"duration_s":...,"reason":"deleted",
//!      "parties":[...],"legs":[...],"verdict":"ok"}
//! ```
//!
//! Fields: docs/ops-quality.md. Its size is bounded by the call's (bounded) monologues and
//! media sections; the ids in it were checked against `max-id-length` when signalled.

use std::net::SocketAddr;

use serde::Serialize;

use rules::dataplane::FlowKind;

use crate::call::{Call, Leg};
use crate::engine::{Engine, EndReason};
use crate::quality::{LegCounters, Verdict};

/// The log target of the records (`RUST_LOG=cdr=info` keeps them alone).
pub const TARGET: &str = "cdr";

#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub call_id: String,
    pub start_unix: u64,
    pub end_unix: u64,
    pub duration_s: u64,
    /// Why it ended: deleted, timeout, silent-timeout, final-timeout, terminated.
    pub reason: EndReason,
    pub parties: Vec<Party>,
    pub legs: Vec<LegRecord>,
    /// The worst leg's verdict.
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Party {
    pub tag: String,
    pub label: Option<String>,
    /// Where its media came from (latched), else where its SDP said it was, per section.
    pub addresses: Vec<SocketAddr>,
}

/// One relayed leg: what the party on it sent and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct LegRecord {
    pub tag: String,
    pub media: usize,
    pub media_type: String,
    /// From the party's SDP, in its order (`PCMU/8000`, `telephone-event/8000`, ...).
    pub codecs: Vec<String>,
    pub local: SocketAddr,
    pub peer: Option<SocketAddr>,
    pub packets: u64,
    pub bytes: u64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub rtt_ms: Option<f64>,
    pub remote_loss_percent: Option<f64>,
    pub remote_jitter_ms: Option<f64>,
    pub mos: Option<f64>,
    pub rtcp_reports: u64,
    pub dtmf_events: u64,
    pub verdict: Verdict,
    pub why: Vec<String>,
}

/// A leg's sockets with what they carry (its own pair, then its ICE candidates' pairs).
fn sockets(l: &Leg) -> impl Iterator<Item = (SocketAddr, FlowKind)> + '_ {
    l.pairs().flat_map(move |(ip, port)| {
        [(SocketAddr::new(ip, port), l.rtp_kind()), (SocketAddr::new(ip, port.wrapping_add(1)), FlowKind::Rtcp)]
    })
}

/// The record of `call`, ending now for `reason`.
pub fn record(e: &Engine, call: &Call, reason: EndReason) -> CallRecord {
    let dp = e.dataplane();
    let now_ms = dp.now_ms();
    let duration_s = now_ms.saturating_sub(call.created_ms) / 1000;
    let mut parties = Vec::new();
    let mut legs = Vec::new();
    for (x, m) in call.monologues.iter().enumerate() {
        let mut addresses = Vec::new();
        for (i, l) in m.legs.iter().enumerate().filter(|(_, l)| l.relayed()) {
            let c = LegCounters::of(sockets(l).map(|(s, k)| (k, dp.counters(s).unwrap_or_default())));
            let q = c.assess(&e.cfg.quality);
            let peer = c.rtp.latched_peer.or(l.peer);
            if let Some(p) = peer.filter(|p| !addresses.contains(p)) {
                addresses.push(p);
            }
            legs.push(LegRecord {
                tag: m.tag.clone(),
                media: i + 1,
                media_type: l.media_type.clone(),
                codecs: crate::leg_media::of_party(call, x, i).map(|s| s.codecs).unwrap_or_default(),
                local: l.rtp(),
                peer,
                packets: c.all.packets,
                bytes: c.all.bytes,
                loss_percent: q.loss_percent,
                jitter_ms: q.jitter_ms,
                rtt_ms: q.rtt_ms,
                remote_loss_percent: q.remote_loss_percent,
                remote_jitter_ms: q.remote_jitter_ms,
                mos: q.mos,
                rtcp_reports: c.all.rtcp_reports,
                dtmf_events: c.rtp.dtmf_events,
                verdict: q.verdict,
                why: q.why,
            });
        }
        parties.push(Party { tag: m.tag.clone(), label: m.label.clone(), addresses });
    }
    CallRecord {
        call_id: call.id.clone(),
        start_unix: call.created_unix,
        end_unix: call.created_unix + duration_s,
        duration_s,
        reason,
        parties,
        verdict: crate::quality::worst(legs.iter().map(|l| l.verdict)),
        legs,
    }
}

/// The engine ends `call`: count its quality and log its record.
pub fn call_ended(e: &mut Engine, call: &Call, reason: EndReason) {
    let r = record(e, call, reason);
    let totals = &mut e.stats.quality;
    for l in &r.legs {
        *totals.legs.entry(l.verdict.as_str().to_string()).or_default() += 1;
        totals.dtmf_events += l.dtmf_events;
        totals.rtcp_reports += l.rtcp_reports;
    }
    match serde_json::to_string(&r) {
        Ok(line) => log::info!(target: TARGET, "cdr {line}"),
        Err(err) => log::warn!(target: TARGET, "cdr of call {}: {err}", call.id),
    }
}
