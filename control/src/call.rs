//! Call model: a call has monologues (one per SIP party, keyed by tag); each monologue
//! has one leg per media section. A leg is the relay side facing that party: the relay
//! ports the party sends to, and where the party is according to its SDP.
//!
//! Media from party X arrives on X's leg and leaves through the counterpart's leg, so the
//! rules of a media section are derived from the pair of legs (X[i], Y[i]).

use std::net::{IpAddr, SocketAddr};

use rules::dataplane::{FlowKind, FlowRule, LatchPolicy, SrtpKey};

#[derive(Debug, Clone)]
pub struct Leg {
    pub media_type: String,
    /// Relay's local address and RTP port (RTCP = port + 1); port 0 = not relayed.
    pub local: IpAddr,
    pub advertised: IpAddr,
    pub port: u16,
    /// The party's RTP address according to its SDP (None: unknown yet or on hold).
    pub peer: Option<SocketAddr>,
    pub peer_rtcp: Option<SocketAddr>,
    /// RTCP multiplexed on the RTP port towards this party.
    pub mux: bool,
    /// Per offer branch (ng via-branch, "" without one; at most 8, the latest last): the
    /// offer asked to accept the offerer's rtcp-mux (`rtcp-mux: accept/require`, or
    /// `demux`: the relay terminates it), so the answer to this party accepts mux whatever
    /// the answerer chose; otherwise the answer follows the answerer (rtpengine's rule).
    pub mux_forced: Vec<(String, bool)>,
    /// Forwarded without RTP validation (UDPTL).
    pub plain_udp: bool,
    pub clock_rate: u32,
    /// Reset the latch when the rule is next applied (address changed by signalling).
    pub reset_latch: bool,
    pub rejected: bool,
    /// Transport protocol this party speaks (RTP/AVP, RTP/SAVP, ...).
    pub proto: String,
    /// SDES keys this party offered (the answer to it picks one).
    pub sdes_offered: Vec<crate::sdes::Crypto>,
    /// SDES keys the relay offered to this party (its answer picks one by tag).
    pub sdes_relay_offer: Vec<crate::sdes::Crypto>,
    /// SDES: the key this party sends with (None: plain RTP from this party).
    pub srtp_in: Option<SrtpKey>,
    /// SDES: the key the relay sends to this party with.
    pub srtp_out: Option<SrtpKey>,
}

impl Leg {
    pub fn rtp(&self) -> SocketAddr {
        SocketAddr::new(self.local, self.port)
    }
    pub fn rtcp(&self) -> SocketAddr {
        SocketAddr::new(self.local, self.port.wrapping_add(1))
    }
    pub fn relayed(&self) -> bool {
        self.port != 0
    }
    /// Socket that RTCP towards this party leaves from.
    pub fn rtcp_egress(&self) -> SocketAddr {
        if self.mux {
            self.rtp()
        } else {
            self.rtcp()
        }
    }
}

/// What `replace: origin/username/session-name/SDP version` keeps stable across re-offers.
#[derive(Debug, Clone)]
pub struct OriginState {
    pub username: String,
    pub session_id: String,
    pub version: u64,
    pub session_name: Option<String>,
    pub last_body: String,
}

#[derive(Debug, Clone)]
pub struct Monologue {
    /// SIP tag; empty while the answerer of the first offer is not known.
    pub tag: String,
    pub label: Option<String>,
    pub created_unix: u64,
    pub counterpart: Option<usize>,
    /// Interface facing this party.
    pub interface: Option<String>,
    pub legs: Vec<Leg>,
    /// Payload types this party offered per media section (answers are filtered by them).
    pub offered_fmts: Vec<Vec<String>>,
    pub latch: LatchPolicy,
    /// Where this party's signalling came from (ng `received-from`), for set-up latching.
    pub sip_source: Option<IpAddr>,
    pub origin: Option<OriginState>,
}

impl Monologue {
    pub fn new(tag: &str, created_unix: u64) -> Monologue {
        Monologue {
            tag: tag.to_string(),
            label: None,
            created_unix,
            counterpart: None,
            interface: None,
            legs: Vec::new(),
            offered_fmts: Vec::new(),
            latch: LatchPolicy::default(),
            sip_source: None,
            origin: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub created_unix: u64,
    pub created_ms: u64,
    pub last_signal_ms: u64,
    pub last_signal_unix: u64,
    pub monologues: Vec<Monologue>,
    /// Set by delete with a delay: the call goes at this time.
    pub delete_at_ms: Option<u64>,
    /// Groups the call's sockets onto one data-plane worker.
    pub affinity: u64,
}

impl Call {
    pub fn new(id: &str, now_ms: u64, unix: u64, affinity: u64) -> Call {
        Call {
            id: id.to_string(),
            created_unix: unix,
            created_ms: now_ms,
            last_signal_ms: now_ms,
            last_signal_unix: unix,
            monologues: Vec::new(),
            delete_at_ms: None,
            affinity,
        }
    }

    pub fn find(&self, tag: &str) -> Option<usize> {
        self.monologues.iter().position(|m| m.tag == tag)
    }

    /// Every relay socket of the call.
    pub fn sockets(&self) -> Vec<SocketAddr> {
        self.monologues
            .iter()
            .flat_map(|m| m.legs.iter())
            .filter(|l| l.relayed())
            .flat_map(|l| [l.rtp(), l.rtcp()])
            .collect()
    }

    /// Rules for the legs of monologue `x` (media arriving from party x).
    pub fn rules_for(&mut self, x: usize) -> Vec<FlowRule> {
        let mut out = Vec::new();
        let Some(y) = self.monologues[x].counterpart else {
            return out;
        };
        let latch = self.monologues[x].latch;
        let sip_source = self.monologues[x].sip_source;
        let n = self.monologues[x].legs.len();
        for i in 0..n {
            let Some(other) = self.monologues[y].legs.get(i).cloned() else {
                continue;
            };
            let leg = &mut self.monologues[x].legs[i];
            if !leg.relayed() {
                continue;
            }
            let forward = other.relayed() && !other.rejected && !leg.rejected;
            let reset = std::mem::take(&mut leg.reset_latch);
            let rtp_kind = if leg.plain_udp {
                FlowKind::Udp
            } else if leg.mux {
                FlowKind::RtpMux
            } else {
                FlowKind::Rtp
            };
            let rtcp_kind = if leg.plain_udp { FlowKind::Udp } else { FlowKind::Rtcp };
            let egress_rtcp = (forward && !other.plain_udp).then(|| other.rtcp_egress());
            // the RTP socket and the RTCP socket of the leg differ only in these
            for (local, kind, signalled_peer, egress_rtp) in [
                (leg.rtp(), rtp_kind, leg.peer, forward.then(|| other.rtp())),
                (leg.rtcp(), rtcp_kind, leg.peer_rtcp, None),
            ] {
                out.push(FlowRule {
                    local,
                    kind,
                    signalled_peer,
                    egress_rtp,
                    egress_rtcp,
                    latch,
                    reset_latch: reset,
                    sip_source,
                    clock_rate: leg.clock_rate,
                    srtp_in: leg.srtp_in.clone(),
                    srtp_out: leg.srtp_out.clone(),
                });
            }
        }
        out
    }
}
