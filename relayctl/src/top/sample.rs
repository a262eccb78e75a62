//! One read of the relay: `/stats` and `/calls` as relayctl received them, turned into
//! plain numbers. Every field is optional on the wire (an older relayd, a field another
//! part of the relay has not added yet, or a hostile answer): what is missing or not a
//! number becomes `None` or empty, never a panic. Pure: the caller stamps the time.

use std::collections::BTreeMap;

use serde_json::Value;

/// Most calls one sample keeps: a frame shows a screenful, and relayctl's memory stays
/// bounded whatever relayd answers.
pub const MAX_CALLS: usize = 100_000;
/// Most legs kept per call, and most `why` reasons per leg.
const MAX_LEGS: usize = 64;
const MAX_WHY: usize = 8;
/// Call-ids, tags and reasons are cut to this many characters when read (a frame is
/// never wider than a terminal anyway).
const MAX_TEXT: usize = 256;

/// A leg's verdict as h-quality's contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Below a threshold: listed first.
    Poor,
    Ok,
    /// Not enough RTP/RTCP to judge, or a verdict this relayctl does not know.
    NoData,
}

impl Verdict {
    fn parse(v: &Value) -> Verdict {
        match v.as_str() {
            Some("poor") => Verdict::Poor,
            Some("ok") => Verdict::Ok,
            _ => Verdict::NoData,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Poor => "poor",
            Verdict::Ok => "ok",
            Verdict::NoData => "no-data",
        }
    }
}

/// A leg's `quality` object (the HTTP API's contract with h-quality).
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    pub loss_percent: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub remote_loss_percent: Option<f64>,
    pub remote_jitter_ms: Option<f64>,
    pub mos: Option<f64>,
    pub verdict: Verdict,
    pub why: Vec<String>,
}

impl Quality {
    fn parse(v: &Value) -> Option<Quality> {
        v.as_object()?;
        Some(Quality {
            loss_percent: num(&v["loss_percent"]),
            jitter_ms: num(&v["jitter_ms"]),
            rtt_ms: num(&v["rtt_ms"]),
            remote_loss_percent: num(&v["remote_loss_percent"]),
            remote_jitter_ms: num(&v["remote_jitter_ms"]),
            mos: num(&v["mos"]),
            verdict: Verdict::parse(&v["verdict"]),
            why: v["why"].as_array().map(|a| a.iter().take(MAX_WHY).filter_map(text).collect()).unwrap_or_default(),
        })
    }
}

/// One leg of a call as far as `top` cares: its quality and DTMF count.
#[derive(Debug, Clone, PartialEq)]
pub struct LegSample {
    pub tag: String,
    pub media: Option<u64>,
    pub quality: Option<Quality>,
    pub dtmf_events: Option<u64>,
}

impl LegSample {
    fn parse(v: &Value) -> LegSample {
        LegSample {
            tag: text(&v["tag"]).unwrap_or_default(),
            media: v["media"].as_u64(),
            quality: Quality::parse(&v["quality"]),
            dtmf_events: v["dtmf_events"].as_u64(),
        }
    }
}

/// One call of `/calls`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSample {
    pub id: String,
    pub tags: Vec<String>,
    pub age_s: Option<u64>,
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub deleting: bool,
    /// The legs that carry quality or DTMF fields (none from a relayd without them).
    pub legs: Vec<LegSample>,
}

impl CallSample {
    fn parse(v: &Value) -> Option<CallSample> {
        v.as_object()?;
        let mut legs: Vec<LegSample> =
            v["legs"].as_array().map(|a| a.iter().take(MAX_LEGS).map(LegSample::parse).collect()).unwrap_or_default();
        // a relayd that puts the fields on the call itself rather than on its legs
        if legs.is_empty() && (v["quality"].is_object() || v["dtmf_events"].is_u64()) {
            legs.push(LegSample { tag: String::new(), ..LegSample::parse(v) });
        }
        Some(CallSample {
            id: text(&v["call_id"]).unwrap_or_default(),
            tags: v["tags"].as_array().map(|a| a.iter().take(MAX_LEGS).filter_map(text).collect()).unwrap_or_default(),
            age_s: v["age_s"].as_u64(),
            packets: v["packets"].as_u64().unwrap_or(0),
            bytes: v["bytes"].as_u64().unwrap_or(0),
            dropped: v["dropped"].as_u64().unwrap_or(0),
            deleting: v["deleting"].as_bool() == Some(true),
            legs,
        })
    }

    /// DTMF events of all its legs; `None` when no leg reports them.
    pub fn dtmf_events(&self) -> Option<u64> {
        self.legs.iter().filter_map(|l| l.dtmf_events).reduce(u64::saturating_add)
    }
}

/// The relay at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// relayctl's monotonic clock when the reads completed, in milliseconds.
    pub at_ms: u64,
    pub calls_active: Option<u64>,
    pub ports_in_use: Option<u64>,
    pub ports_total: Option<u64>,
    pub draining: bool,
    pub calls_created: Option<u64>,
    /// Calls ended, by reason.
    pub ended: BTreeMap<String, u64>,
    /// ng commands received, by command.
    pub commands: BTreeMap<String, u64>,
    pub ng_errors: Option<u64>,
    /// Datagrams the data plane received and sent, all workers and paths.
    pub rx_packets: Option<u64>,
    pub tx_packets: Option<u64>,
    /// Data plane drops by reason, all workers and paths.
    pub drops: BTreeMap<String, u64>,
    pub calls: Vec<CallSample>,
}

impl Sample {
    /// A sample from the JSON of `GET /stats` and `GET /calls`, read at `at_ms`.
    pub fn from_json(at_ms: u64, stats: &Value, calls: &Value) -> Sample {
        let mut s = Sample {
            at_ms,
            calls_active: stats["calls"].as_u64(),
            ports_in_use: stats["ports_in_use"].as_u64(),
            ports_total: stats["ports_total"].as_u64(),
            draining: stats["draining"].as_bool() == Some(true) || stats["control"]["draining"].as_bool() == Some(true),
            calls_created: stats["control"]["calls_created"].as_u64(),
            ended: counts(&stats["control"]["ended"]),
            commands: counts(&stats["control"]["commands"]),
            ng_errors: stats["control"]["errors"].as_u64(),
            ..Sample::default()
        };
        for m in stats["dataplane"].as_array().into_iter().flatten() {
            let (Some(name), Some(v)) = (m["name"].as_str(), m["value"].as_u64()) else { continue };
            let labels = m["labels"].as_str().unwrap_or("");
            match name {
                "relay_rx_packets_total" => add(&mut s.rx_packets, v),
                "relay_tx_packets_total" => add(&mut s.tx_packets, v),
                "relay_drops_total" => {
                    let reason = label(labels, "reason").unwrap_or("other");
                    if s.drops.len() < 64 || s.drops.contains_key(reason) {
                        let e = s.drops.entry(clip(reason)).or_insert(0);
                        *e = e.saturating_add(v);
                    }
                }
                _ => {}
            }
        }
        s.calls = calls.as_array().into_iter().flatten().take(MAX_CALLS).filter_map(CallSample::parse).collect();
        s
    }
}

fn add(acc: &mut Option<u64>, v: u64) {
    *acc = Some(acc.unwrap_or(0).saturating_add(v));
}

/// A JSON object of counters (`{"offer": 3, ...}`), at most 64 of them.
fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, n)| Some((clip(k), n.as_u64()?))).take(64).collect())
        .unwrap_or_default()
}

/// A finite number (JSON has no NaN, but a float may be huge; integers count too).
fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

/// A string field, cut to `MAX_TEXT` characters.
fn text(v: &Value) -> Option<String> {
    v.as_str().map(clip)
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

/// The value of `key="…"` in a Prometheus label set as /stats gives it.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"')).filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_sums_across_workers() {
        assert_eq!(label(r#"path="socket",worker="0",reason="srtp""#, "reason"), Some("srtp"));
        assert_eq!(label("", "reason"), None);
        let stats = json!({"dataplane": [
            {"name": "relay_rx_packets_total", "labels": "path=\"socket\",worker=\"0\"", "value": 10},
            {"name": "relay_rx_packets_total", "labels": "path=\"xsk\",worker=\"0\"", "value": 5},
            {"name": "relay_drops_total", "labels": "worker=\"0\",reason=\"srtp\"", "value": 2},
            {"name": "relay_drops_total", "labels": "worker=\"1\",reason=\"srtp\"", "value": 3},
            {"name": "relay_drops_total", "labels": "worker=\"1\"", "value": 1},
            {"name": "relay_drops_total", "labels": "reason=\"\"", "value": 1},
            {"name": "relay_tx_packets_total", "labels": "", "value": u64::MAX},
            {"name": "relay_tx_packets_total", "labels": "", "value": 1},
            {"name": "relay_rx_packets_total", "value": -1},
        ]});
        let s = Sample::from_json(7, &stats, &json!(null));
        assert_eq!((s.rx_packets, s.tx_packets), (Some(15), Some(u64::MAX)));
        assert_eq!(s.drops.get("srtp"), Some(&5));
        assert_eq!(s.drops.get("other"), Some(&2));
        assert!(s.calls.is_empty() && s.calls_active.is_none());
    }

    #[test]
    fn quality_on_legs_or_on_the_call() {
        let calls = json!([
            {"call_id": "a", "legs": [{"tag": "x", "quality": {"verdict": "poor", "mos": 2.5, "loss_percent": f64::MAX, "jitter_ms": "9"}, "dtmf_events": 3},
                                      {"tag": "y", "dtmf_events": 4}]},
            {"call_id": "b", "quality": {"verdict": "what"}},
            "not a call",
        ]);
        let s = Sample::from_json(0, &json!({}), &calls);
        assert_eq!(s.calls.len(), 2);
        let q = s.calls[0].legs[0].quality.as_ref().unwrap();
        assert_eq!((q.verdict, q.mos, q.loss_percent, q.jitter_ms), (Verdict::Poor, Some(2.5), Some(f64::MAX), None));
        assert_eq!(s.calls[0].dtmf_events(), Some(7));
        assert_eq!(s.calls[1].legs[0].quality.as_ref().unwrap().verdict, Verdict::NoData);
        assert_eq!(s.calls[1].dtmf_events(), None);
    }
}
