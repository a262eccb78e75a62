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
//! Fields: docs/operations.md. Its size is bounded by the call's (bounded) monologues and
//! media sections; the ids in it were checked against `max-id-length` when signalled.

use std::net::SocketAddr;

use serde::Serialize;

use rules::dataplane::FlowKind;

use crate::call::{Call, Leg};
use crate::engine::{EndReason, Engine};
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
        Err(err) => log::warn!(target: TARGET, "cdr of call {:?}: {err}", call.id),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rules::dataplane::{FlowCounters, MemoryDataPlane};
    use rules::quality::ReceptionReport;

    use super::*;
    use crate::bencode::Value;
    use crate::engine::EngineConfig;

    /// A call a (PCMU + telephone-event) → b (PCMA), set up at data-plane time 1000 ms.
    fn engine() -> (Engine, Arc<MemoryDataPlane>) {
        let dp = Arc::new(MemoryDataPlane::default());
        dp.state.lock().unwrap().now_ms = 1000;
        let mut e = Engine::new(EngineConfig::default(), dp.clone());
        for (cmd, tag, port, fmts) in [("offer", None, 4000, "0 101"), ("answer", Some("b"), 5000, "8")] {
            let mut d = Value::dict();
            d.insert("command", cmd.into());
            d.insert("call-id", "c1".into());
            d.insert("from-tag", "a".into());
            if let Some(t) = tag {
                d.insert("to-tag", t.into());
            }
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio {port} RTP/AVP {fmts}\r\n\
                 a=rtpmap:101 telephone-event/8000\r\n"
            );
            d.insert("sdp", sdp.as_str().into());
            assert_eq!(e.command(&d, 1000, 1_700_000_000).get("result").and_then(Value::as_str), Some("ok"));
        }
        (e, dp)
    }

    #[test]
    fn the_record_has_parties_codecs_traffic_and_quality() {
        let (mut e, dp) = engine();
        let call = e.calls["c1"].clone();
        let (a_rtp, b_rtp) = (call.monologues[0].legs[0].rtp(), call.monologues[1].legs[0].rtp());
        let b_rtcp = call.monologues[1].legs[0].rtcp();
        let latched: SocketAddr = "192.0.2.9:4010".parse().unwrap();
        {
            let mut s = dp.state.lock().unwrap();
            s.now_ms = 61_500;
            s.counters.insert(
                a_rtp,
                FlowCounters {
                    packets: 1000,
                    bytes: 172_000,
                    lost: 50,
                    jitter_us: 4_000,
                    latched_peer: Some(latched),
                    last_packet_ms: 61_000,
                    dtmf_events: 3,
                    ..Default::default()
                },
            );
            s.counters.insert(
                b_rtp,
                FlowCounters { packets: 1000, bytes: 172_000, last_packet_ms: 61_000, ..Default::default() },
            );
            s.counters.insert(
                b_rtcp,
                FlowCounters {
                    packets: 10,
                    rtcp_packets: 10,
                    rtcp_reports: 10,
                    rtt_us: Some(30_000),
                    remote: Some(ReceptionReport {
                        fraction_lost: 0,
                        cumulative_lost: 0,
                        jitter_us: 2000,
                        at_ms: 60_000,
                    }),
                    last_packet_ms: 60_000,
                    ..Default::default()
                },
            );
        }
        let r = record(&e, &call, EndReason::Deleted);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["call_id"], "c1");
        assert_eq!(
            (j["start_unix"].as_u64(), j["end_unix"].as_u64(), j["duration_s"].as_u64()),
            (Some(1_700_000_000), Some(1_700_000_060), Some(60))
        );
        assert_eq!(j["reason"], "deleted");
        assert_eq!(j["parties"][0]["tag"], "a");
        assert_eq!(j["parties"][0]["addresses"][0], "192.0.2.9:4010", "where its media came from");
        assert_eq!(j["parties"][1]["addresses"][0], "192.0.2.9:5000", "where its SDP said");
        let (a, b) = (&j["legs"][0], &j["legs"][1]);
        assert_eq!(a["codecs"], serde_json::json!(["PCMU/8000", "telephone-event/8000"]));
        assert_eq!(b["codecs"], serde_json::json!(["PCMA/8000"]));
        assert_eq!(
            (a["packets"].as_u64(), a["bytes"].as_u64(), a["dtmf_events"].as_u64()),
            (Some(1000), Some(172_000), Some(3))
        );
        // 50 lost of 1050 expected
        assert_eq!((a["loss_percent"].as_f64(), a["jitter_ms"].as_f64()), (Some(4.76), Some(4.0)));
        assert_eq!((a["verdict"].as_str(), a["why"][0].as_str()), (Some("poor"), Some("loss 4.76% > 3%")));
        assert_eq!(
            (b["rtt_ms"].as_f64(), b["remote_jitter_ms"].as_f64(), b["verdict"].as_str()),
            (Some(30.0), Some(2.0), Some("ok"))
        );
        assert_eq!((b["packets"].as_u64(), b["rtcp_reports"].as_u64()), (Some(1010), Some(10)));
        assert_eq!(j["verdict"], "poor");
        for key in ["local", "peer", "media", "media_type", "remote_loss_percent", "mos", "tag"] {
            assert!(a.get(key).is_some(), "{key} in {a}");
        }

        // the engine writes it when the call ends, and counts its quality
        assert!(e.terminate("c1"));
        let q = &e.stats.quality;
        assert_eq!((q.legs.get("poor"), q.legs.get("ok"), q.dtmf_events, q.rtcp_reports), (Some(&1), Some(&1), 3, 10));
    }

    #[test]
    fn the_rules_carry_the_telephone_event_payload_type() {
        let (_e, dp) = engine();
        let s = dp.state.lock().unwrap();
        let rules: Vec<_> = s.open.values().flatten().collect();
        // a announced 101; b announced none and sends with a's (RFC 3264's rule)
        assert!(!rules.is_empty());
        assert!(rules.iter().all(|r| r.telephone_event_pt == Some(101)), "{rules:?}");
    }
}
