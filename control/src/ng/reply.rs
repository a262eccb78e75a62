//! Typed ng replies and their bencode form. The keys and their spelling are rtpengine's
//! ("last signal", "in dialogue with", "RTP"/"RTCP" totals); dictionaries encode in
//! key order, so the bytes depend only on the values here.

use std::net::SocketAddr;

use crate::bencode::Value;
use crate::error::NgError;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Pong,
    /// offer or answer: the rewritten SDP.
    Sdp(String),
    /// offer or answer of a recorded call (or one whose `record-call` failed): the SDP,
    /// the pcap files (rtpengine's `recordings`), why recording did not start.
    SdpRecorded {
        sdp: String,
        recordings: Vec<String>,
        warning: Option<String>,
    },
    /// A command that answers only `result: ok` (start/stop/pause recording).
    Ok,
    /// delete: the call's totals when it was deleted.
    Deleted(Totals),
    /// delete of a call (or tag) that is not there: ok with rtpengine's warning (Kamailio
    /// deletes on CANCEL and in failure routes, often for calls never offered); an error
    /// only with the `fatal` flag.
    NotDeleted,
    Query(CallQuery),
    List(CallList),
    Statistics(Statistics),
}

/// Packets, bytes and errors of one kind of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Block {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// A call's traffic: RTCP counts the RTCP multiplexed on RTP sockets too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub rtp: Block,
    pub rtcp: Block,
}

/// query: one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuery {
    pub created_unix: u64,
    pub last_signal_unix: u64,
    /// Monologues with a tag, in the call's order.
    pub tags: Vec<TagQuery>,
    pub totals: Totals,
    /// Some(recording now, i.e. not paused) when the call has a recording (rtpengine's
    /// `recording: {call recording, forwarding}`).
    pub recording: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagQuery {
    pub tag: String,
    pub label: Option<String>,
    pub created_unix: u64,
    pub in_dialogue_with: Option<String>,
    pub medias: Vec<MediaQuery>,
    /// RFC 4733 events this party sent (each once), and the code of the last one.
    pub dtmf_events: u64,
    pub last_dtmf_event: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaQuery {
    /// From 1, as in the SDP.
    pub index: usize,
    pub media_type: String,
    /// RTP then RTCP for a relayed section; none for one the relay does not relay.
    pub streams: Vec<StreamQuery>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuery {
    pub local: SocketAddr,
    /// Latched, else signalled.
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the last packet (0: none yet).
    pub last_packet_s: u64,
    pub stats: Block,
    pub ssrc: u32,
}

/// list: call-ids, and a warning when they were cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallList {
    pub calls: Vec<String>,
    pub warning: Option<String>,
}

/// statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statistics {
    pub sessions: u64,
    pub ports_used: u64,
    pub managed_sessions: u64,
    /// Calls ended, by reason name.
    pub ended: Vec<(String, u64)>,
}

fn ok() -> Value {
    let mut v = Value::dict();
    v.insert("result", "ok".into());
    v
}

impl Block {
    fn encode(&self) -> Value {
        let mut d = Value::dict();
        d.insert("packets", self.packets.into());
        d.insert("bytes", self.bytes.into());
        d.insert("errors", self.errors.into());
        d
    }
}

impl Totals {
    fn encode(&self) -> Value {
        let mut t = Value::dict();
        t.insert("RTP", self.rtp.encode());
        t.insert("RTCP", self.rtcp.encode());
        t
    }
}

impl StreamQuery {
    fn encode(&self) -> Value {
        let mut s = Value::dict();
        s.insert("local port", (self.local.port() as u64).into());
        s.insert("local address", self.local.ip().to_string().into());
        let mut e = Value::dict();
        if let Some(ep) = self.endpoint {
            e.insert("family", if ep.is_ipv4() { "IPv4" } else { "IPv6" }.into());
            e.insert("address", ep.ip().to_string().into());
            e.insert("port", (ep.port() as u64).into());
        }
        s.insert("endpoint", e);
        s.insert("last packet", self.last_packet_s.into());
        s.insert("stats", self.stats.encode());
        s.insert("SSRC", (self.ssrc as u64).into());
        s
    }
}

impl TagQuery {
    fn encode(&self) -> Value {
        let mut t = Value::dict();
        t.insert("tag", self.tag.as_str().into());
        if let Some(l) = &self.label {
            t.insert("label", l.as_str().into());
        }
        t.insert("created", self.created_unix.into());
        if let Some(c) = &self.in_dialogue_with {
            t.insert("in dialogue with", c.as_str().into());
        }
        let medias = self
            .medias
            .iter()
            .map(|m| {
                let mut md = Value::dict();
                md.insert("index", (m.index as u64).into());
                md.insert("type", m.media_type.as_str().into());
                md.insert("streams", Value::List(m.streams.iter().map(StreamQuery::encode).collect()));
                md
            })
            .collect();
        t.insert("medias", Value::List(medias));
        // rtpengine reports DTMF through its DTMF log (event code and digit); relayd
        // counts them per party here, with the last event in the log's terms
        t.insert("DTMF events", self.dtmf_events.into());
        if let Some(code) = self.last_dtmf_event {
            let mut d = Value::dict();
            d.insert("event", (code as u64).into());
            d.insert("digit", crate::quality::dtmf_digit(code).as_str().into());
            t.insert("last DTMF event", d);
        }
        t
    }
}

/// rtpengine's warning for a delete that found nothing (call_delete_ng).
pub const NOT_DELETED: &str = "Call-ID not found or tags didn't match";

impl Reply {
    /// The reply dictionary (`result` "ok", or "pong" for ping).
    pub fn encode(&self) -> Value {
        match self {
            Reply::Pong => {
                let mut v = Value::dict();
                v.insert("result", "pong".into());
                v
            }
            Reply::Sdp(sdp) => {
                let mut v = ok();
                v.insert("sdp", sdp.as_str().into());
                v
            }
            Reply::SdpRecorded { sdp, recordings, warning } => {
                let mut v = ok();
                v.insert("sdp", sdp.as_str().into());
                if !recordings.is_empty() {
                    v.insert("recordings", Value::List(recordings.iter().map(|r| r.as_str().into()).collect()));
                }
                if let Some(w) = warning {
                    v.insert("warning", w.as_str().into());
                }
                v
            }
            Reply::Ok => ok(),
            Reply::Deleted(totals) => {
                let mut v = ok();
                v.insert("totals", totals.encode());
                v
            }
            Reply::NotDeleted => {
                let mut v = ok();
                v.insert("warning", NOT_DELETED.into());
                v
            }
            Reply::Query(q) => {
                let mut v = ok();
                v.insert("created", q.created_unix.into());
                v.insert("last signal", q.last_signal_unix.into());
                let mut tags = Value::dict();
                for t in &q.tags {
                    tags.insert(&t.tag, t.encode());
                }
                v.insert("tags", tags);
                v.insert("totals", q.totals.encode());
                if let Some(on) = q.recording {
                    let mut r = Value::dict();
                    r.insert("call recording", (on as u64).into());
                    r.insert("forwarding", 0u64.into());
                    v.insert("recording", r);
                }
                v
            }
            Reply::List(l) => {
                let mut v = ok();
                if let Some(w) = &l.warning {
                    v.insert("warning", w.as_str().into());
                }
                v.insert("calls", Value::List(l.calls.iter().map(|c| c.as_str().into()).collect()));
                v
            }
            Reply::Statistics(s) => {
                let mut cur = Value::dict();
                cur.insert("sessionsown", s.sessions.into());
                cur.insert("sessionsforeign", 0u64.into());
                cur.insert("sessionstotal", s.sessions.into());
                cur.insert("portsused", s.ports_used.into());
                let mut tot = Value::dict();
                tot.insert("managedsessions", s.managed_sessions.into());
                for (k, n) in &s.ended {
                    tot.insert(&format!("ended-{k}"), (*n).into());
                }
                let mut st = Value::dict();
                st.insert("currentstatistics", cur);
                st.insert("totalstatistics", tot);
                let mut v = ok();
                v.insert("statistics", st);
                v
            }
        }
    }
}

/// An error reply with `reason`.
pub fn error_reply(reason: &str) -> Value {
    let mut v = Value::dict();
    v.insert("result", "error".into());
    v.insert("error-reason", reason.into());
    v
}

impl NgError {
    /// This error as an ng reply.
    pub fn encode(&self) -> Value {
        error_reply(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: &Reply) -> String {
        String::from_utf8(r.encode().encode()).unwrap()
    }

    /// The wire bytes of the replies whose shape is fixed (others carry SDP and counters).
    #[test]
    fn replies_encode_as_rtpengine_spells_them() {
        assert_eq!(bytes(&Reply::Pong), "d6:result4:ponge");
        let list = CallList { calls: vec!["a".into(), "b".into()], warning: Some("cut".into()) };
        assert_eq!(bytes(&Reply::List(list)), "d5:callsl1:a1:be6:result2:ok7:warning3:cute");
        let t = Totals { rtp: Block { packets: 1, bytes: 2, errors: 3 }, rtcp: Block::default() };
        assert_eq!(
            bytes(&Reply::Deleted(t)),
            "d6:result2:ok6:totalsd4:RTCPd5:bytesi0e6:errorsi0e7:packetsi0ee3:RTPd5:bytesi2e6:errorsi3e7:packetsi1eeee"
        );
        let s = Statistics { sessions: 2, ports_used: 8, managed_sessions: 5, ended: vec![("timeout".into(), 3)] };
        assert_eq!(
            bytes(&Reply::Statistics(s)),
            "d6:result2:ok10:statisticsd17:currentstatisticsd9:portsusedi8e15:sessionsforeigni0e\
             11:sessionsowni2e13:sessionstotali2ee15:totalstatisticsd13:ended-timeouti3e\
             15:managedsessionsi5eeee"
        );
        assert_eq!(
            String::from_utf8(NgError::UnknownCallId("x".into()).encode().encode()).unwrap(),
            "d12:error-reason19:Unknown call-id \"x\"6:result5:errore"
        );
    }
}
