//! Call quality per leg: the relay's own RFC 3550 view of what the party sends (loss,
//! jitter), what the party reports about what it receives (RTCP reception reports, XR
//! VoIP metrics), the round trip between relay and party, and a verdict against the
//! operators' "VoIP ready" thresholds (one-way delay, loss, jitter). Pure functions over
//! the data plane's counters: the HTTP API, relayctl, /metrics and the call detail record
//! (cdr.rs) all judge a leg the same way.

use serde::{Deserialize, Serialize};

use rules::dataplane::{FlowCounters, FlowKind};

/// The "VoIP ready" limits a leg is judged against (a value at the limit is ok).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// One-way delay between relay and party (half the round trip), milliseconds.
    pub max_delay_ms: u64,
    /// Loss, in percent, seen by the relay or reported by the party.
    pub max_loss_percent: f64,
    /// Interarrival jitter, seen by the relay or reported by the party, milliseconds.
    pub max_jitter_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { max_delay_ms: 50, max_loss_percent: 3.0, max_jitter_ms: 20 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    Poor,
    /// Nothing to judge yet: no media from the party and no report from it.
    NoData,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Ok, Verdict::Poor, Verdict::NoData];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Poor => "poor",
            Verdict::NoData => "no-data",
        }
    }
}

/// One leg's quality, as `/calls` gives it (`"quality"`; the field names are the API).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegQuality {
    /// RFC 3550 loss of the party's stream as the relay receives it.
    pub loss_percent: f64,
    /// RFC 3550 jitter of the party's stream as the relay receives it.
    pub jitter_ms: f64,
    /// Round trip between relay and party (RTCP LSR/DLSR, else the party's XR estimate).
    pub rtt_ms: Option<f64>,
    /// Loss the party reports for the stream it receives from the relay (last interval).
    pub remote_loss_percent: Option<f64>,
    pub remote_jitter_ms: Option<f64>,
    /// The party's XR listening-quality MOS.
    pub mos: Option<f64>,
    pub verdict: Verdict,
    /// Every threshold the leg is past (or why there is no verdict), for the operator.
    pub why: Vec<String>,
}

/// A leg's sockets' counters combined: `rtp` from the sockets that carry its RTP (the
/// relay's own loss/jitter, DTMF), `all` from every socket (the party's reports arrive on
/// the RTCP socket, or the RTP one with rtcp-mux).
#[derive(Debug, Clone, Default)]
pub struct LegCounters {
    pub rtp: FlowCounters,
    pub all: FlowCounters,
}

impl LegCounters {
    pub fn of(sockets: impl IntoIterator<Item = (FlowKind, FlowCounters)>) -> LegCounters {
        // the first socket as it is (merge keeps the RTP view of the later packet, and a
        // default has none), the others merged in
        let add = |into: &mut Option<FlowCounters>, c: &FlowCounters| match into {
            Some(x) => x.merge(c),
            None => *into = Some(c.clone()),
        };
        let (mut rtp, mut all) = (None, None);
        for (kind, c) in sockets {
            if kind != FlowKind::Rtcp {
                add(&mut rtp, &c);
            }
            add(&mut all, &c);
        }
        LegCounters { rtp: rtp.unwrap_or_default(), all: all.unwrap_or_default() }
    }

    /// RTP packets the party sent that the relay accepted (RTCP and drops excluded).
    pub fn rtp_received(&self) -> u64 {
        self.rtp.packets.saturating_sub(self.rtp.rtcp_packets).saturating_sub(self.rtp.dropped)
    }

    pub fn assess(&self, t: &Thresholds) -> LegQuality {
        assess(self, t)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Judge one leg against the thresholds.
pub fn assess(c: &LegCounters, t: &Thresholds) -> LegQuality {
    let received = c.rtp_received();
    let lost = c.rtp.lost.max(0) as u64;
    let loss_percent = if received + lost == 0 { 0.0 } else { lost as f64 * 100.0 / (received + lost) as f64 };
    let jitter_ms = c.rtp.jitter_us as f64 / 1000.0;
    let voip = c.all.voip_metrics;
    // the relay's own measurement only (an SR it forwarded and the report echoing it): the
    // party's XR round-trip figure is its claim, shown with the XR data, never the verdict's
    let rtt_ms = c.all.rtt_us.map(|us| us as f64 / 1000.0);
    let remote = c.all.remote;
    let remote_loss_percent = remote.map(|r| r.fraction_lost as f64 * 100.0 / 256.0);
    let remote_jitter_ms = remote.map(|r| r.jitter_us as f64 / 1000.0);
    let mos = voip.and_then(|v| v.mos_lq_x10).map(|m| m as f64 / 10.0);
    let mut why = Vec::new();
    let verdict = if received == 0 && remote.is_none() && voip.is_none() {
        why.push("no media and no RTCP report from the party yet".to_string());
        Verdict::NoData
    } else {
        let max_loss = t.max_loss_percent;
        if loss_percent > max_loss {
            why.push(format!("loss {loss_percent:.2}% > {max_loss}%"));
        }
        if let Some(l) = remote_loss_percent.filter(|l| *l > max_loss) {
            why.push(format!("remote loss {l:.2}% > {max_loss}%"));
        }
        let max_jitter = t.max_jitter_ms as f64;
        if jitter_ms > max_jitter {
            why.push(format!("jitter {jitter_ms:.1} ms > {} ms", t.max_jitter_ms));
        }
        if let Some(j) = remote_jitter_ms.filter(|j| *j > max_jitter) {
            why.push(format!("remote jitter {j:.1} ms > {} ms", t.max_jitter_ms));
        }
        if let Some(rtt) = rtt_ms.filter(|r| r / 2.0 > t.max_delay_ms as f64) {
            why.push(format!("one-way delay {:.1} ms > {} ms (round trip {rtt:.1} ms)", rtt / 2.0, t.max_delay_ms));
        }
        if why.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Poor
        }
    };
    LegQuality {
        loss_percent: round2(loss_percent),
        jitter_ms: round2(jitter_ms),
        rtt_ms: rtt_ms.map(round2),
        remote_loss_percent: remote_loss_percent.map(round2),
        remote_jitter_ms: remote_jitter_ms.map(round2),
        mos,
        verdict,
        why,
    }
}

/// One relayed leg in `/calls` and `/calls/{id}` (`"legs"`).
#[derive(Debug, Clone, Serialize)]
pub struct LegSummary {
    pub tag: String,
    pub label: Option<String>,
    /// The media section, from 1.
    pub media: usize,
    pub media_type: String,
    /// The leg's RTP socket and where the party is (latched, else signalled).
    pub local: std::net::SocketAddr,
    pub peer: Option<std::net::SocketAddr>,
    pub packets: u64,
    pub bytes: u64,
    pub quality: LegQuality,
    /// RFC 4733 events the party sent on this leg.
    pub dtmf_events: u64,
    /// Not in the HTTP views (read without the token): see FlowCounters::dtmf_last_event.
    #[serde(skip)]
    pub last_dtmf_event: Option<u8>,
}

/// The worst verdict of a call's legs (poor over ok over no-data): a call with one poor
/// leg is a poor call.
pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    verdicts.into_iter().fold(Verdict::NoData, |w, v| match (w, v) {
        (Verdict::Poor, _) | (_, Verdict::Poor) => Verdict::Poor,
        (Verdict::Ok, _) | (_, Verdict::Ok) => Verdict::Ok,
        _ => Verdict::NoData,
    })
}

/// Quality of ended calls, for /metrics (counted from the call detail records).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndedQuality {
    /// Legs of ended calls, by verdict ("ok", "poor", "no-data").
    pub legs: std::collections::BTreeMap<String, u64>,
    pub dtmf_events: u64,
    pub rtcp_reports: u64,
}

/// A Prometheus metric family: name, type, help, rows of (labels, value).
pub type Family = (&'static str, &'static str, &'static str, Vec<(String, u64)>);

/// The quality families of /metrics: per-relay aggregates (legs by verdict, reports
/// read, DTMF events), for the calls in progress and those that ended; no per-call
/// label, so the series stay few whatever the traffic.
pub fn metric_families(active: &[crate::views::CallSummary], ended: &EndedQuality) -> Vec<Family> {
    let legs = || active.iter().flat_map(|c| c.legs.iter());
    let by_verdict = |count: &dyn Fn(Verdict) -> u64| {
        Verdict::ALL.iter().map(|v| (format!("verdict=\"{}\"", v.as_str()), count(*v))).collect::<Vec<_>>()
    };
    vec![
        (
            "relay_active_legs",
            "gauge",
            "Legs of calls in progress, by quality verdict",
            by_verdict(&|v| legs().filter(|l| l.quality.verdict == v).count() as u64),
        ),
        (
            "relay_active_dtmf_events",
            "gauge",
            "RFC 4733 telephone-events sent on the calls in progress",
            vec![(String::new(), legs().map(|l| l.dtmf_events).sum())],
        ),
        (
            "relay_ended_legs_total",
            "counter",
            "Legs of ended calls, by quality verdict",
            by_verdict(&|v| ended.legs.get(v.as_str()).copied().unwrap_or(0)),
        ),
        (
            "relay_ended_dtmf_events_total",
            "counter",
            "RFC 4733 telephone-events sent on ended calls",
            vec![(String::new(), ended.dtmf_events)],
        ),
        (
            "relay_ended_rtcp_reports_total",
            "counter",
            "RTCP SR/RR/XR reports read on ended calls",
            vec![(String::new(), ended.rtcp_reports)],
        ),
    ]
}

/// The DTMF digit of an RFC 4733 event code (§3.2: 0-9, *, #, A-D; others by number).
pub fn dtmf_digit(code: u8) -> String {
    match code {
        0..=9 => ((b'0' + code) as char).to_string(),
        10 => "*".into(),
        11 => "#".into(),
        12..=15 => ((b'A' + code - 12) as char).to_string(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rules::quality::{ReceptionReport, VoipMetrics};

    use super::*;

    fn leg(received: u64, lost: i64, jitter_us: u64) -> LegCounters {
        LegCounters::of([(FlowKind::Rtp, FlowCounters { packets: received, lost, jitter_us, ..Default::default() })])
    }

    #[test]
    fn verdicts_at_and_past_the_thresholds() {
        let t = Thresholds::default();
        // 3 lost of 100 expected: 3 %, at the limit; jitter 20 ms, at the limit
        let q = leg(97, 3, 20_000).assess(&t);
        assert_eq!((q.loss_percent, q.jitter_ms, q.verdict), (3.0, 20.0, Verdict::Ok), "{:?}", q.why);
        let q = leg(96, 4, 20_001).assess(&t);
        assert_eq!(q.verdict, Verdict::Poor);
        assert_eq!(q.why, ["loss 4.00% > 3%", "jitter 20.0 ms > 20 ms"]);
        // round trip 100 ms: one way 50, at the limit; 102 ms: past it
        let mut c = leg(100, 0, 0);
        c.all.rtt_us = Some(100_000);
        assert_eq!(c.assess(&t).verdict, Verdict::Ok);
        c.all.rtt_us = Some(102_000);
        let q = c.assess(&t);
        assert_eq!((q.rtt_ms, q.verdict), (Some(102.0), Verdict::Poor));
        assert_eq!(q.why, ["one-way delay 51.0 ms > 50 ms (round trip 102.0 ms)"]);
        // stricter thresholds from the configuration
        let strict = Thresholds { max_delay_ms: 20, max_loss_percent: 1.0, max_jitter_ms: 5 };
        assert_eq!(leg(98, 2, 0).assess(&strict).why, ["loss 2.00% > 1%"]);
    }

    #[test]
    fn what_the_party_reports_counts_too() {
        let t = Thresholds::default();
        let mut c = leg(500, 0, 1_000);
        // 13/256 = 5.08 % lost towards the party, 30 ms jitter there
        c.all.remote = Some(ReceptionReport { fraction_lost: 13, cumulative_lost: 40, jitter_us: 30_000, at_ms: 9 });
        c.all.voip_metrics = Some(VoipMetrics { mos_lq_x10: Some(36), round_trip_delay_ms: 80, ..Default::default() });
        let q = c.assess(&t);
        assert_eq!((q.remote_loss_percent, q.remote_jitter_ms, q.mos), (Some(5.08), Some(30.0), Some(3.6)));
        assert_eq!(q.rtt_ms, None, "the party's XR round trip is its claim, not the relay's measure");
        assert_eq!(q.verdict, Verdict::Poor);
        assert_eq!(q.why, ["remote loss 5.08% > 3%", "remote jitter 30.0 ms > 20 ms"]);
    }

    #[test]
    fn nothing_received_is_no_data_and_the_worst_leg_rules() {
        let q = LegCounters::default().assess(&Thresholds::default());
        assert_eq!((q.verdict, q.rtt_ms, q.mos), (Verdict::NoData, None, None));
        assert_eq!(serde_json::to_value(q.verdict).unwrap(), "no-data");
        assert_eq!(worst([Verdict::NoData, Verdict::Ok]), Verdict::Ok);
        assert_eq!(worst([Verdict::Ok, Verdict::Poor, Verdict::NoData]), Verdict::Poor);
        assert_eq!(worst([]), Verdict::NoData);
        assert_eq!(
            (dtmf_digit(5), dtmf_digit(10), dtmf_digit(11), dtmf_digit(15)),
            ("5".into(), "*".into(), "#".into(), "D".into())
        );
    }

    #[test]
    fn metrics_are_per_relay_aggregates() {
        let summary = |verdicts: &[Verdict]| crate::views::CallSummary {
            call_id: "c".into(),
            tags: vec![],
            labels: vec![],
            created_unix: 0,
            age_s: 0,
            media: 1,
            packets: 0,
            bytes: 0,
            dropped: 0,
            deleting: false,
            verdict: worst(verdicts.iter().copied()),
            dtmf_events: 0,
            legs: verdicts
                .iter()
                .map(|v| LegSummary {
                    tag: "a".into(),
                    label: None,
                    media: 1,
                    media_type: "audio".into(),
                    local: "10.0.0.1:30000".parse().unwrap(),
                    peer: None,
                    packets: 0,
                    bytes: 0,
                    quality: LegQuality { verdict: *v, ..leg(0, 0, 0).assess(&Thresholds::default()) },
                    dtmf_events: 2,
                    last_dtmf_event: None,
                })
                .collect(),
        };
        let active = [summary(&[Verdict::Ok, Verdict::Poor]), summary(&[Verdict::Poor, Verdict::NoData])];
        let mut ended = EndedQuality { dtmf_events: 7, rtcp_reports: 9, ..Default::default() };
        ended.legs.insert("ok".into(), 5);
        let f = metric_families(&active, &ended);
        let rows = |name: &str| f.iter().find(|x| x.0 == name).unwrap().3.clone();
        assert_eq!(
            rows("relay_active_legs"),
            [
                ("verdict=\"ok\"".to_string(), 1),
                ("verdict=\"poor\"".to_string(), 2),
                ("verdict=\"no-data\"".to_string(), 1)
            ]
        );
        assert_eq!(rows("relay_active_dtmf_events"), [(String::new(), 8)]);
        assert_eq!(rows("relay_ended_legs_total")[0], ("verdict=\"ok\"".to_string(), 5));
        assert_eq!(rows("relay_ended_legs_total")[1].1, 0);
        assert_eq!((rows("relay_ended_dtmf_events_total")[0].1, rows("relay_ended_rtcp_reports_total")[0].1), (7, 9));
        // no family has a per-call label
        assert!(f.iter().flat_map(|x| x.3.iter()).all(|(l, _)| !l.contains("call")));
    }

    #[test]
    fn rtcp_sockets_give_reports_not_rtp_statistics() {
        let rtp = FlowCounters { packets: 100, lost: 5, last_packet_ms: 10, ..Default::default() };
        let rtcp = FlowCounters {
            packets: 3,
            rtcp_packets: 3,
            rtt_us: Some(30_000),
            last_packet_ms: 20,
            ..Default::default()
        };
        let c = LegCounters::of([(FlowKind::Rtp, rtp), (FlowKind::Rtcp, rtcp)]);
        assert_eq!((c.rtp.lost, c.rtp_received(), c.all.rtt_us), (5, 100, Some(30_000)));
    }
}
