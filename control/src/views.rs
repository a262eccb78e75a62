//! One traversal of the calls, rendered three ways: the HTTP API's call and flow views,
//! its metrics, and the ng `query` and `delete` totals. [`Snapshot::take`] copies plain
//! data out of the engine; the data plane's counters are read afterwards, from the
//! snapshot. The HTTP API takes the snapshot under the engine's lock and reads the
//! counters after releasing it (ng commands run under the lock anyway).

use std::net::SocketAddr;

use serde::Serialize;

use crate::engine::Engine;
use crate::ng::reply::{Block, CallQuery, MediaQuery, StreamQuery, TagQuery, Totals};
use rules::dataplane::{DataPlane, FlowCounters, FlowKind};

/// One relay socket of a call (`/flows`, `/calls/{id}`, relayctl).
#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    pub call_id: String,
    pub tag: String,
    pub media: usize,
    pub kind: FlowKind,
    pub local: SocketAddr,
    pub advertised: SocketAddr,
    pub signalled_peer: Option<SocketAddr>,
    pub state: &'static str,
    pub age_s: u64,
    pub idle_ms: Option<u64>,
    pub counters: FlowCounters,
}

/// One call with its traffic summed (`/calls`, relayctl).
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub call_id: String,
    pub tags: Vec<String>,
    pub labels: Vec<String>,
    pub created_unix: u64,
    pub age_s: u64,
    pub media: usize,
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub deleting: bool,
    /// The worst verdict of its legs (quality.rs).
    pub verdict: crate::quality::Verdict,
    /// RFC 4733 events its parties sent.
    pub dtmf_events: u64,
    /// Its relayed legs with their quality.
    pub legs: Vec<crate::quality::LegSummary>,
}

/// Plain data copied out of the engine under its lock, as cheaply as possible: no
/// per-flow allocation (call ids and tags go into one buffer), no sorting, no data-plane
/// calls. Counters, ordering and serialisation happen after the lock is released.
pub struct Snapshot {
    now_ms: u64,
    text: String,
    calls: Vec<CallRec>,
    monos: Vec<MonoRec>,
    legs: Vec<LegRec>,
    /// The legs' sockets on the interface's other addresses (ICE candidates).
    extra: Vec<crate::ice_sdp::RelaySocket>,
    /// What a leg's quality is judged against.
    quality: crate::quality::Thresholds,
}

type Span = (usize, usize);

struct CallRec {
    id: Span,
    created_ms: u64,
    created_unix: u64,
    last_signal_unix: u64,
    deleting: bool,
    media: usize,
    monos: Span,
}

struct MonoRec {
    tag: Span,
    label: Option<Span>,
    created_unix: u64,
    /// The counterpart's index in `monos`.
    counterpart: Option<usize>,
    legs: Span,
}

/// A leg (a media section of a monologue); `relayed` ones have sockets.
struct LegRec {
    media: usize,
    media_type: Span,
    relayed: bool,
    rtp: SocketAddr,
    advertised: std::net::IpAddr,
    peer: Option<SocketAddr>,
    peer_rtcp: Option<SocketAddr>,
    rtp_kind: FlowKind,
    rejected: bool,
    /// Its sockets on the interface's other addresses, in `Snapshot::extra`.
    extra: Span,
}

impl LegRec {
    fn rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.rtp.ip(), self.rtp.port().wrapping_add(1))
    }
}

/// One socket of a leg, as the views list it.
struct SocketRec {
    local: SocketAddr,
    advertised: SocketAddr,
    kind: FlowKind,
    peer: Option<SocketAddr>,
}

impl Snapshot {
    /// Copy every call, or only the one named, at `now_ms` (for ages).
    pub fn take(e: &Engine, only: Option<&str>, now_ms: u64) -> Snapshot {
        let mut s = Snapshot {
            now_ms,
            text: String::with_capacity(if only.is_some() { 256 } else { e.calls.len() * 48 }),
            calls: Vec::with_capacity(if only.is_some() { 1 } else { e.calls.len() }),
            monos: Vec::with_capacity(if only.is_some() { 2 } else { e.calls.len() * 2 }),
            legs: Vec::with_capacity(if only.is_some() { 4 } else { e.calls.len() * 2 }),
            extra: Vec::new(),
            quality: e.cfg.quality,
        };
        match only {
            Some(id) => {
                if let Some(c) = e.calls.get(id) {
                    s.add(c);
                }
            }
            None => e.calls.values().for_each(|c| s.add(c)),
        }
        s
    }

    fn put(&mut self, t: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(t);
        (start, self.text.len())
    }

    fn add(&mut self, c: &crate::call::Call) {
        let id = self.put(&c.id);
        let m0 = self.monos.len();
        for m in &c.monologues {
            let tag = self.put(&m.tag);
            let label = m.label.as_deref().map(|l| self.put(l));
            let l0 = self.legs.len();
            for (i, l) in m.legs.iter().enumerate() {
                let media_type = self.put(&l.media_type);
                let e0 = self.extra.len();
                if l.relayed() {
                    self.extra.extend_from_slice(&l.ice.extra);
                }
                self.legs.push(LegRec {
                    media: i + 1,
                    media_type,
                    relayed: l.relayed(),
                    rtp: l.rtp(),
                    advertised: l.advertised,
                    peer: l.peer,
                    peer_rtcp: l.peer_rtcp,
                    rtp_kind: l.rtp_kind(),
                    rejected: l.rejected,
                    extra: (e0, self.extra.len()),
                });
            }
            self.monos.push(MonoRec {
                tag,
                label,
                created_unix: m.created_unix,
                counterpart: m.counterpart.map(|c| m0 + c),
                legs: (l0, self.legs.len()),
            });
        }
        self.calls.push(CallRec {
            id,
            created_ms: c.created_ms,
            created_unix: c.created_unix,
            last_signal_unix: c.last_signal_unix,
            deleting: c.delete_at_ms.is_some(),
            media: c.monologues.first().map(|m| m.legs.len()).unwrap_or(0),
            monos: (m0, self.monos.len()),
        });
    }

    fn str(&self, s: Span) -> &str {
        &self.text[s.0..s.1]
    }

    /// The calls in call-id order.
    fn sorted(&self) -> Vec<&CallRec> {
        let mut v: Vec<&CallRec> = self.calls.iter().collect();
        v.sort_unstable_by(|a, b| self.str(a.id).cmp(self.str(b.id)));
        v
    }

    /// The relayed legs of a call, with their monologue.
    fn legs_of<'a>(&'a self, c: &'a CallRec) -> impl Iterator<Item = (&'a MonoRec, &'a LegRec)> + 'a {
        self.monos[c.monos.0..c.monos.1]
            .iter()
            .flat_map(move |m| self.legs[m.legs.0..m.legs.1].iter().filter(|l| l.relayed).map(move |l| (m, l)))
    }

    /// Every relay socket of the copied calls.
    pub fn sockets(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.legs.iter().filter(|l| l.relayed).flat_map(|l| self.sockets_of(l).map(|s| s.local))
    }

    /// A relayed leg's sockets: its RTP and RTCP socket, then the pair on each of the
    /// interface's other addresses (ICE candidates: the party may send there instead).
    fn sockets_of<'a>(&'a self, l: &'a LegRec) -> impl Iterator<Item = SocketRec> + 'a {
        let at = |local: SocketAddr, advertised, kind, peer| SocketRec {
            local,
            advertised: SocketAddr::new(advertised, local.port()),
            kind,
            peer,
        };
        let own =
            [at(l.rtp, l.advertised, l.rtp_kind, l.peer), at(l.rtcp(), l.advertised, FlowKind::Rtcp, l.peer_rtcp)];
        let extra = self.extra[l.extra.0..l.extra.1].iter().flat_map(move |x| {
            let rtp = SocketAddr::new(x.local, x.port);
            let rtcp = SocketAddr::new(x.local, x.port.wrapping_add(1));
            [at(rtp, x.advertised, l.rtp_kind, None), at(rtcp, x.advertised, FlowKind::Rtcp, None)]
        });
        own.into_iter().chain(extra)
    }

    /// A relayed leg's counters added to the totals (its extra sockets' too).
    fn add_leg_totals(&self, t: &mut Totals, dp: &dyn DataPlane, l: &LegRec) {
        let (a, b) = counters_of(dp, l);
        add_totals(t, &a, &b);
        for x in &self.extra[l.extra.0..l.extra.1] {
            let c = |port: u16| dp.counters(SocketAddr::new(x.local, port)).unwrap_or_default();
            add_totals(t, &c(x.port), &c(x.port.wrapping_add(1)));
        }
    }

    /// Every copied call's traffic (for one call, that call's): the ng `totals`.
    pub fn totals(&self, dp: &dyn DataPlane) -> Totals {
        let mut t = Totals::default();
        for c in &self.calls {
            for (_, l) in self.legs_of(c) {
                self.add_leg_totals(&mut t, dp, l);
            }
        }
        t
    }

    /// The ng `query` of the first copied call (take the snapshot of the one call):
    /// its tags, media and streams with their counters, and its totals.
    pub fn query(&self, dp: &dyn DataPlane) -> Option<CallQuery> {
        let c = self.calls.first()?;
        let mut totals = Totals::default();
        let mut tags = Vec::new();
        for m in &self.monos[c.monos.0..c.monos.1] {
            let mut medias = Vec::new();
            let (mut dtmf_events, mut last_dtmf_event) = (0, None);
            for l in &self.legs[m.legs.0..m.legs.1] {
                let mut streams = Vec::new();
                if l.relayed {
                    let rtp = self.leg_counters(dp, l).rtp;
                    dtmf_events += rtp.dtmf_events;
                    last_dtmf_event = rtp.dtmf_last_event.or(last_dtmf_event);
                    self.add_leg_totals(&mut totals, dp, l);
                    let (a, b) = counters_of(dp, l);
                    for (local, x, peer) in [(l.rtp, a, l.peer), (l.rtcp(), b, l.peer_rtcp)] {
                        streams.push(StreamQuery {
                            local,
                            endpoint: x.latched_peer.or(peer),
                            last_packet_s: if x.last_packet_ms == 0 {
                                0
                            } else {
                                self.now_ms.saturating_sub(x.last_packet_ms) / 1000
                            },
                            stats: Block { packets: x.packets, bytes: x.bytes, errors: x.dropped },
                            ssrc: x.ssrc,
                        });
                    }
                }
                medias.push(MediaQuery { index: l.media, media_type: self.str(l.media_type).to_string(), streams });
            }
            if m.tag.0 == m.tag.1 {
                continue;
            }
            tags.push(TagQuery {
                tag: self.str(m.tag).to_string(),
                label: m.label.map(|l| self.str(l).to_string()),
                created_unix: m.created_unix,
                in_dialogue_with: m.counterpart.map(|k| self.str(self.monos[k].tag).to_string()),
                medias,
                dtmf_events,
                last_dtmf_event,
            });
        }
        Some(CallQuery {
            created_unix: c.created_unix,
            last_signal_unix: c.last_signal_unix,
            tags,
            totals,
            recording: None,
        })
    }

    /// `Engine::call_summaries`, with the data plane's counters.
    pub fn calls(&self, dp: &dyn DataPlane) -> Vec<CallSummary> {
        self.sorted()
            .into_iter()
            .map(|c| {
                let (mut packets, mut bytes, mut dropped) = (0, 0, 0);
                let mut legs = Vec::new();
                for (m, l) in self.legs_of(c) {
                    let counters = self.leg_counters(dp, l);
                    packets += counters.all.packets;
                    bytes += counters.all.bytes;
                    dropped += counters.all.dropped;
                    legs.push(self.leg_summary(m, l, counters));
                }
                let monos = &self.monos[c.monos.0..c.monos.1];
                CallSummary {
                    call_id: self.str(c.id).to_string(),
                    tags: monos.iter().map(|m| self.str(m.tag).to_string()).collect(),
                    labels: monos.iter().filter_map(|m| m.label.map(|l| self.str(l).to_string())).collect(),
                    created_unix: c.created_unix,
                    age_s: self.now_ms.saturating_sub(c.created_ms) / 1000,
                    media: c.media,
                    packets,
                    bytes,
                    dropped,
                    deleting: c.deleting,
                    verdict: crate::quality::worst(legs.iter().map(|l| l.quality.verdict)),
                    dtmf_events: legs.iter().map(|l| l.dtmf_events).sum(),
                    legs,
                }
            })
            .collect()
    }

    /// A relayed leg's sockets' counters, combined (quality.rs).
    fn leg_counters(&self, dp: &dyn DataPlane, l: &LegRec) -> crate::quality::LegCounters {
        crate::quality::LegCounters::of(self.sockets_of(l).map(|s| (s.kind, dp.counters(s.local).unwrap_or_default())))
    }

    fn leg_summary(&self, m: &MonoRec, l: &LegRec, c: crate::quality::LegCounters) -> crate::quality::LegSummary {
        crate::quality::LegSummary {
            tag: self.str(m.tag).to_string(),
            label: m.label.map(|x| self.str(x).to_string()),
            media: l.media,
            media_type: self.str(l.media_type).to_string(),
            local: l.rtp,
            peer: c.rtp.latched_peer.or(l.peer),
            packets: c.all.packets,
            bytes: c.all.bytes,
            quality: c.assess(&self.quality),
            dtmf_events: c.rtp.dtmf_events,
            last_dtmf_event: c.rtp.dtmf_last_event,
        }
    }

    /// `Engine::flows`, with the data plane's counters.
    pub fn flows(&self, dp: &dyn DataPlane) -> Vec<FlowView> {
        let mut out = Vec::with_capacity(self.legs.len() * 2);
        for c in self.sorted() {
            for (m, l) in self.legs_of(c) {
                for SocketRec { local: sock, advertised, kind, peer } in self.sockets_of(l) {
                    let counters = dp.counters(sock).unwrap_or_default();
                    let state = if l.rejected {
                        "rejected"
                    } else if counters.latched_peer.is_some() {
                        "latched"
                    } else if peer.is_some() {
                        "signalled"
                    } else {
                        "waiting"
                    };
                    out.push(FlowView {
                        call_id: self.str(c.id).to_string(),
                        tag: self.str(m.tag).to_string(),
                        media: l.media,
                        kind,
                        local: sock,
                        advertised,
                        signalled_peer: peer,
                        state,
                        age_s: self.now_ms.saturating_sub(c.created_ms) / 1000,
                        idle_ms: if counters.last_packet_ms == 0 {
                            None
                        } else {
                            Some(self.now_ms.saturating_sub(counters.last_packet_ms))
                        },
                        counters,
                    });
                }
            }
        }
        out
    }
}

/// A relayed leg's RTP and RTCP socket counters (zero when the data plane has none).
fn counters_of(dp: &dyn DataPlane, l: &LegRec) -> (FlowCounters, FlowCounters) {
    (dp.counters(l.rtp).unwrap_or_default(), dp.counters(l.rtcp()).unwrap_or_default())
}

/// Add a leg's counters to the totals: RTCP multiplexed on the RTP socket counts as RTCP.
fn add_totals(t: &mut Totals, rtp: &FlowCounters, rtcp: &FlowCounters) {
    t.rtp.packets += rtp.packets - rtp.rtcp_packets;
    t.rtp.bytes += rtp.bytes - rtp.rtcp_bytes;
    t.rtp.errors += rtp.dropped;
    t.rtcp.packets += rtcp.packets + rtp.rtcp_packets;
    t.rtcp.bytes += rtcp.bytes + rtp.rtcp_bytes;
    t.rtcp.errors += rtcp.dropped;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rules::dataplane::MemoryDataPlane;

    use super::*;
    use crate::bencode::Value;
    use crate::engine::EngineConfig;

    fn engine() -> (Engine, Arc<MemoryDataPlane>) {
        let dp = Arc::new(MemoryDataPlane::default());
        let mut e = Engine::new(EngineConfig::default(), dp.clone());
        for (cmd, tag, port) in [("offer", None, 4000), ("answer", Some("b"), 5000)] {
            let mut d = Value::dict();
            d.insert("command", cmd.into());
            d.insert("call-id", "c".into());
            d.insert("from-tag", "a".into());
            if let Some(t) = tag {
                d.insert("to-tag", t.into());
            }
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
            );
            d.insert("sdp", sdp.as_str().into());
            assert_eq!(e.command(&d, 1000, 1).get("result").and_then(Value::as_str), Some("ok"));
        }
        (e, dp)
    }

    /// The ng query, the totals and the HTTP flow view agree: one traversal, three renderings.
    #[test]
    fn query_totals_and_flows_render_the_same_counters() {
        let (e, dp) = engine();
        let a_rtp = e.calls["c"].monologues[0].legs[0].rtp();
        let latched: SocketAddr = "192.0.2.10:4000".parse().unwrap();
        dp.state.lock().unwrap().counters.insert(
            a_rtp,
            FlowCounters {
                packets: 10,
                bytes: 1000,
                rtcp_packets: 2,
                rtcp_bytes: 100,
                dropped: 1,
                latched_peer: Some(latched),
                last_packet_ms: 3000,
                ssrc: 77,
                ..Default::default()
            },
        );
        let snap = Snapshot::take(&e, Some("c"), 5500);
        let q = snap.query(dp.as_ref()).unwrap();
        assert_eq!(q.tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.tags[0].in_dialogue_with.as_deref(), Some("b"));
        let s = &q.tags[0].medias[0].streams[0];
        assert_eq!((s.local, s.endpoint, s.last_packet_s, s.ssrc), (a_rtp, Some(latched), 2, 77));
        assert_eq!(s.stats, Block { packets: 10, bytes: 1000, errors: 1 });
        // multiplexed RTCP counts as RTCP in the totals
        let t = snap.totals(dp.as_ref());
        assert_eq!(
            (t.rtp, t.rtcp),
            (Block { packets: 8, bytes: 900, errors: 1 }, Block { packets: 2, bytes: 100, errors: 0 })
        );
        assert_eq!(q.totals, t);
        let flows = snap.flows(dp.as_ref());
        let f = flows.iter().find(|f| f.local == a_rtp).unwrap();
        assert_eq!((f.state, f.counters.packets, f.idle_ms), ("latched", 10, Some(2500)));
        assert_eq!(flows.len(), 4);
        // a call not in the snapshot has no query
        assert!(Snapshot::take(&e, Some("nope"), 0).query(dp.as_ref()).is_none());
    }

    /// Sections the relay does not relay are listed by query without streams, and have no flows.
    #[test]
    fn unrelayed_sections_have_no_streams_or_flows() {
        let (mut e, dp) = engine();
        e.calls.get_mut("c").unwrap().monologues[0].legs[0].port = 0;
        let snap = Snapshot::take(&e, Some("c"), 0);
        let q = snap.query(dp.as_ref()).unwrap();
        assert!(q.tags[0].medias[0].streams.is_empty());
        assert_eq!(q.tags[0].medias[0].media_type, "audio");
        assert_eq!(snap.flows(dp.as_ref()).len(), 2);
        assert_eq!(snap.sockets().count(), 2);
    }

    /// A leg's sockets on the interface's other addresses (ICE candidates) are listed and
    /// counted like its own: a browser that picked one sends and receives only there.
    #[test]
    fn a_legs_ice_candidate_sockets_are_flows_and_count_in_the_totals() {
        let (mut e, dp) = engine();
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let x = crate::ice_sdp::RelaySocket { local: v6, advertised: v6, port: 40000 };
        e.calls.get_mut("c").unwrap().monologues[0].legs[0].ice.extra.push(x);
        let sock = SocketAddr::new(v6, 40000);
        let c = FlowCounters { packets: 5, bytes: 500, dropped: 2, drop_no_consent: 2, ..Default::default() };
        dp.state.lock().unwrap().open.insert(sock, None);
        dp.state.lock().unwrap().counters.insert(sock, c);
        let snap = Snapshot::take(&e, Some("c"), 0);
        assert_eq!(snap.sockets().count(), 6);
        assert!(snap.sockets().any(|s| s == SocketAddr::new(v6, 40001)));
        let flows = snap.flows(dp.as_ref());
        let f = flows.iter().find(|f| f.local == sock).unwrap();
        assert_eq!((f.tag.as_str(), f.advertised, f.signalled_peer, f.counters.drop_no_consent), ("a", sock, None, 2));
        assert_eq!(flows.len(), 6);
        let t = snap.totals(dp.as_ref());
        assert_eq!(t.rtp, Block { packets: 5, bytes: 500, errors: 2 });
        assert_eq!(snap.query(dp.as_ref()).unwrap().totals, t);
        assert_eq!((snap.calls(dp.as_ref())[0].packets, snap.calls(dp.as_ref())[0].dropped), (5, 2));
    }
}
