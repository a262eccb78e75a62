//! Call model: a call has monologues (one per SIP party, keyed by tag); each monologue
//! has one leg per media section. A leg is the relay side facing that party: the relay
//! ports the party sends to, and where the party is according to its SDP.
//!
//! Media from party X arrives on X's leg and leaves through the counterpart's leg, so the
//! rules of a media section are derived from the pair of legs (X[i], Y[i]).

use std::net::{IpAddr, SocketAddr};

use rules::dataplane::{FlowKind, FlowRule, LatchPolicy, SrtpKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// ICE towards this party (rtpengine's per-media ICE state; `ice_sdp`).
    pub ice: crate::ice_sdp::LegIce,
    /// DTLS-SRTP with this party (crate::dtls_sdp): a DTLS leg's keys come from the
    /// handshake, never from SDES.
    pub dtls: crate::dtls_sdp::LegDtls,
    /// The media ID (RFC 5888 a=mid) the relay writes towards this party: what this party
    /// sent in its offers, else the one copied from the other side (or generated with
    /// `generate-mid`) when this party was offered the section. As rtpengine: answers
    /// change no media ID, and a=mid never passes from one party to the other as a line.
    pub mid: Option<String>,
    /// rtpengine's media ptime (call.c `__media_init_from_flags`): the last a=ptime either
    /// party sent for this section (an SDP with one sets it on both parties' legs); it
    /// replaces any a=ptime in what this party is sent, and is written where the sender
    /// had none (an answer without a=ptime gets the offer's).
    pub ptime: Option<u32>,
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
    /// What the RTP socket of this leg carries.
    pub fn rtp_kind(&self) -> FlowKind {
        if self.plain_udp {
            FlowKind::Udp
        } else if self.mux {
            FlowKind::RtpMux
        } else {
            FlowKind::Rtp
        }
    }
    /// Every RTP/RTCP port pair of the leg: its own, then the ones on the interface's
    /// other addresses that it advertises as ICE candidates.
    pub fn pairs(&self) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
        let own = self.relayed().then_some((self.local, self.port));
        own.into_iter().chain(self.ice.extra.iter().map(|s| (s.local, s.port)))
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OriginState {
    pub username: String,
    pub session_id: String,
    pub version: u64,
    pub session_name: Option<String>,
    pub last_body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The via-branches its offers named (a branch can be deleted on its own).
    pub branches: crate::branch::Branches,
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
            branches: Default::default(),
        }
    }

    /// Forget via-branch `name`: its name and what its offer asked of rtcp-mux (the
    /// legs are shared with the other branches and stay).
    pub fn forget_branch(&mut self, name: &str) {
        self.branches.remove(name);
        for leg in self.monologues.iter_mut().flat_map(|m| m.legs.iter_mut()) {
            leg.mux_forced.retain(|(b, _)| b != name);
        }
    }

    /// Parties with a SIP tag (rtpengine counts these to decide whether a call whose
    /// branch went is left with a dialogue).
    pub fn tagged(&self) -> usize {
        self.monologues.iter().filter(|m| !m.tag.is_empty()).count()
    }

    pub fn find(&self, tag: &str) -> Option<usize> {
        self.monologues.iter().position(|m| m.tag == tag)
    }

    /// Every relay socket of the call.
    pub fn sockets(&self) -> Vec<SocketAddr> {
        self.monologues
            .iter()
            .flat_map(|m| m.legs.iter())
            .flat_map(|l| l.pairs())
            .flat_map(|(ip, port)| [SocketAddr::new(ip, port), SocketAddr::new(ip, port.wrapping_add(1))])
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
            // DTMF the party sends on this section is counted (leg_media.rs)
            let telephone_event_pt = crate::leg_media::telephone_event_pt(self, x, i);
            let leg = &mut self.monologues[x].legs[i];
            if !leg.relayed() {
                continue;
            }
            let forward = other.relayed() && !other.rejected && !leg.rejected;
            let reset = std::mem::take(&mut leg.reset_latch);
            let rtp_kind = leg.rtp_kind();
            let rtcp_kind = if leg.plain_udp { FlowKind::Udp } else { FlowKind::Rtcp };
            let egress_rtcp = (forward && !other.plain_udp).then(|| other.rtcp_egress());
            let ice = leg.ice.rule();
            // the leg's sockets on the interface's other addresses (ICE candidates) take
            // what arrives like its own; media towards the party leaves from whichever of
            // a component's sockets the party's ICE nominated (the data plane picks it
            // among the siblings each rule names)
            let extra: Vec<(SocketAddr, SocketAddr)> = leg
                .ice
                .extra
                .iter()
                .map(|s| (SocketAddr::new(s.local, s.port), SocketAddr::new(s.local, s.port.wrapping_add(1))))
                .collect();
            let rtp_group: Vec<SocketAddr> = std::iter::once(leg.rtp()).chain(extra.iter().map(|e| e.0)).collect();
            let rtcp_group: Vec<SocketAddr> = std::iter::once(leg.rtcp()).chain(extra.iter().map(|e| e.1)).collect();
            let siblings = |group: &[SocketAddr], me: SocketAddr| match ice {
                Some(_) => group.iter().copied().filter(|s| *s != me).collect(),
                None => Vec::new(),
            };
            let extra = extra.iter().flat_map(|&(rtp, rtcp)| {
                [(rtp, rtp_kind, None, forward.then(|| other.rtp())), (rtcp, rtcp_kind, None, None)]
            });
            let dtls = leg.dtls.rule();
            let sdes = |k: &Option<SrtpKey>| if dtls.is_some() { None } else { k.clone() };
            // the RTP socket and the RTCP socket of the leg differ only in these
            for (local, kind, signalled_peer, egress_rtp) in [
                (leg.rtp(), rtp_kind, leg.peer, forward.then(|| other.rtp())),
                (leg.rtcp(), rtcp_kind, leg.peer_rtcp, None),
            ]
            .into_iter()
            .chain(extra)
            {
                let group = if rtp_group.contains(&local) { &rtp_group } else { &rtcp_group };
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
                    srtp_in: sdes(&leg.srtp_in),
                    srtp_out: sdes(&leg.srtp_out),
                    ice: ice.clone(),
                    dtls: dtls.clone(),
                    ice_siblings: siblings(group, local),
                    telephone_event_pt,
                    tap: None,
                });
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rules::dataplane::Suite;

    /// A call of two monologues, `a` and `b`, with one audio leg each.
    pub(crate) fn two_party_call() -> Call {
        let mut c = Call::new("c", 0, 0, 1);
        for t in ["a", "b"] {
            let mut m = Monologue::new(t, 0);
            m.legs.push(leg("audio", "203.0.113.1", 30000, None));
            c.monologues.push(m);
        }
        c
    }

    /// An SDP with one audio section in `proto` carrying these attribute lines.
    pub(crate) fn audio_sdp(proto: &str, attrs: impl IntoIterator<Item = String>) -> crate::sdp::Sdp {
        let mut t = format!("v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nt=0 0\r\nm=audio 4000 {proto} 0\r\n");
        for a in attrs {
            t += &format!("a={a}\r\n");
        }
        crate::sdp::Sdp::parse(&t).unwrap()
    }

    /// A relayed leg of `media` on `local:port`, its party at `peer` (RTCP at peer port + 1).
    pub(crate) fn leg(media: &str, local: &str, port: u16, peer: Option<&str>) -> Leg {
        let peer: Option<SocketAddr> = peer.map(|p| p.parse().unwrap());
        Leg {
            media_type: media.into(),
            local: local.parse().unwrap(),
            advertised: local.parse().unwrap(),
            port,
            peer,
            peer_rtcp: peer.map(|p| SocketAddr::new(p.ip(), p.port() + 1)),
            mux: false,
            mux_forced: Vec::new(),
            plain_udp: false,
            clock_rate: 8000,
            reset_latch: false,
            rejected: false,
            proto: "RTP/AVP".into(),
            sdes_offered: Vec::new(),
            sdes_relay_offer: Vec::new(),
            srtp_in: None,
            srtp_out: None,
            ice: Default::default(),
            dtls: Default::default(),
            mid: None,
            ptime: None,
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn key(b: u8) -> SrtpKey {
        SrtpKey::new(Suite::AesCm128HmacSha1_80, &[b; 16], &[b; 14]).unwrap()
    }

    /// Caller "a" (monologue 0) and callee "b" (monologue 1), counterparts, one audio
    /// section each: a on 10.0.0.1:30000 facing 198.51.100.7:4000, b on 10.0.0.1:30010
    /// facing 198.51.100.8:5000.
    fn call() -> Call {
        let mut c = Call::new("c", 0, 0, 1);
        let mut a = Monologue::new("a", 0);
        a.legs.push(leg("audio", "10.0.0.1", 30000, Some("198.51.100.7:4000")));
        a.counterpart = Some(1);
        let mut b = Monologue::new("b", 0);
        b.legs.push(leg("audio", "10.0.0.1", 30010, Some("198.51.100.8:5000")));
        b.counterpart = Some(0);
        c.monologues = vec![a, b];
        c
    }

    #[test]
    fn leg_sockets_rtcp_is_the_next_port_unless_muxed() {
        let mut l = leg("audio", "10.0.0.1", 30000, None);
        assert!(l.relayed());
        assert_eq!(l.rtp(), sa("10.0.0.1:30000"));
        assert_eq!(l.rtcp(), sa("10.0.0.1:30001"));
        assert_eq!(l.rtcp_egress(), sa("10.0.0.1:30001"));
        l.mux = true;
        assert_eq!(l.rtcp_egress(), sa("10.0.0.1:30000"));
        l.port = 0;
        assert!(!l.relayed());
    }

    #[test]
    fn find_by_tag_and_sockets_of_relayed_legs() {
        let mut c = call();
        assert_eq!(c.find("a"), Some(0));
        assert_eq!(c.find("b"), Some(1));
        assert_eq!(c.find("x"), None);
        // a second, unrelayed section has no sockets
        c.monologues[0].legs.push(leg("video", "10.0.0.1", 0, None));
        assert_eq!(
            c.sockets(),
            vec![sa("10.0.0.1:30000"), sa("10.0.0.1:30001"), sa("10.0.0.1:30010"), sa("10.0.0.1:30011")]
        );
    }

    #[test]
    fn rules_without_a_counterpart_are_none() {
        let mut c = call();
        c.monologues[0].counterpart = None;
        assert!(c.rules_for(0).is_empty());
    }

    #[test]
    fn rules_forward_to_the_counterparts_sockets() {
        let mut c = call();
        let r = c.rules_for(0);
        assert_eq!(r.len(), 2, "RTP and RTCP socket of the one leg");
        let (rtp, rtcp) = (&r[0], &r[1]);
        assert_eq!(rtp.local, sa("10.0.0.1:30000"));
        assert_eq!(rtp.kind, FlowKind::Rtp);
        assert_eq!(rtp.signalled_peer, Some(sa("198.51.100.7:4000")));
        assert_eq!(rtp.egress_rtp, Some(sa("10.0.0.1:30010")), "leaves from b's RTP socket");
        assert_eq!(rtp.egress_rtcp, Some(sa("10.0.0.1:30011")), "RTCP leaves from b's RTCP socket");
        assert_eq!(rtp.clock_rate, 8000);
        assert_eq!(rtcp.local, sa("10.0.0.1:30001"));
        assert_eq!(rtcp.kind, FlowKind::Rtcp);
        assert_eq!(rtcp.signalled_peer, Some(sa("198.51.100.7:4001")));
        assert_eq!(rtcp.egress_rtp, None, "the RTCP socket never sends RTP");
        assert_eq!(rtcp.egress_rtcp, Some(sa("10.0.0.1:30011")));
        let r = c.rules_for(1);
        assert_eq!(r[0].local, sa("10.0.0.1:30010"));
        assert_eq!(r[0].egress_rtp, Some(sa("10.0.0.1:30000")));
        assert_eq!(r[1].egress_rtcp, Some(sa("10.0.0.1:30001")));
    }

    #[test]
    fn rtcp_mux_on_either_side() {
        let mut c = call();
        // a muxes: its RTP socket carries RTCP too (kind), its RTCP socket stays a plain RTCP rule
        c.monologues[0].legs[0].mux = true;
        let r = c.rules_for(0);
        assert_eq!(r[0].kind, FlowKind::RtpMux);
        assert_eq!(r[1].kind, FlowKind::Rtcp);
        // b muxes: RTCP towards b leaves from b's RTP socket
        let r = c.rules_for(0);
        assert_eq!(r[0].egress_rtcp, Some(sa("10.0.0.1:30011")));
        c.monologues[1].legs[0].mux = true;
        let r = c.rules_for(0);
        assert_eq!(r[0].egress_rtcp, Some(sa("10.0.0.1:30010")));
        assert_eq!(r[1].egress_rtcp, Some(sa("10.0.0.1:30010")));
    }

    #[test]
    fn plain_udp_legs_forward_without_rtcp() {
        let mut c = call();
        c.monologues[0].legs[0].plain_udp = true;
        let r = c.rules_for(0);
        assert_eq!((r[0].kind, r[1].kind), (FlowKind::Udp, FlowKind::Udp));
        assert_eq!(r[0].egress_rtp, Some(sa("10.0.0.1:30010")));
        // towards a UDPTL party there is no RTCP to send
        c.monologues[0].legs[0].plain_udp = false;
        c.monologues[1].legs[0].plain_udp = true;
        let r = c.rules_for(0);
        assert_eq!(r[0].egress_rtcp, None);
        assert_eq!(r[1].egress_rtcp, None);
    }

    #[test]
    fn rejected_or_unrelayed_counterpart_is_not_forwarded_to() {
        for (reject_own, reject_other, unrelay_other) in
            [(true, false, false), (false, true, false), (false, false, true)]
        {
            let mut c = call();
            c.monologues[0].legs[0].rejected = reject_own;
            c.monologues[1].legs[0].rejected = reject_other;
            if unrelay_other {
                c.monologues[1].legs[0].port = 0;
            }
            let r = c.rules_for(0);
            assert_eq!(r.len(), 2, "the socket is open: it gets a rule that drops");
            for x in &r {
                assert_eq!((x.egress_rtp, x.egress_rtcp), (None, None), "{reject_own} {reject_other} {unrelay_other}");
            }
        }
        // an unrelayed own leg gets no rule at all, nor does a section the counterpart lacks
        let mut c = call();
        c.monologues[0].legs[0].port = 0;
        c.monologues[0].legs.push(leg("video", "10.0.0.1", 30020, None));
        assert!(c.rules_for(0).is_empty());
    }

    #[test]
    fn srtp_keys_per_direction() {
        let mut c = call();
        c.monologues[0].legs[0].srtp_in = Some(key(1));
        c.monologues[0].legs[0].srtp_out = Some(key(2));
        let r = c.rules_for(0);
        for x in &r {
            assert_eq!(x.srtp_in, Some(key(1)), "what a sends with decrypts on a's sockets");
            assert_eq!(x.srtp_out, Some(key(2)));
        }
        // b's rules carry b's keys, not a's
        let r = c.rules_for(1);
        assert!(r.iter().all(|x| x.srtp_in.is_none() && x.srtp_out.is_none()));
    }

    #[test]
    fn latch_policy_sip_source_and_a_one_shot_reset() {
        let mut c = call();
        let latch = LatchPolicy { asymmetric: true, trust_address: false, strict_source: true };
        c.monologues[0].latch = latch;
        c.monologues[0].sip_source = Some("192.0.2.9".parse().unwrap());
        c.monologues[0].legs[0].reset_latch = true;
        let r = c.rules_for(0);
        for x in &r {
            assert_eq!(x.latch, latch);
            assert_eq!(x.sip_source, Some("192.0.2.9".parse().unwrap()));
            assert!(x.reset_latch, "both sockets of the leg reset");
        }
        assert!(!c.monologues[0].legs[0].reset_latch, "taken by the rules");
        assert!(c.rules_for(0).iter().all(|x| !x.reset_latch), "only once");
        // the counterpart's rules keep their own policy
        assert!(c.rules_for(1).iter().all(|x| x.latch == LatchPolicy::default() && x.sip_source.is_none()));
    }

    #[test]
    fn an_ice_legs_sockets_on_other_addresses_name_each_other_per_component() {
        let mut c = call();
        let l = &mut c.monologues[0].legs[0];
        let extra = crate::ice_sdp::RelaySocket {
            local: "2001:db8::1".parse().unwrap(),
            advertised: "2001:db8::1".parse().unwrap(),
            port: 40000,
        };
        l.ice.extra.push(extra);
        // a socket group only where the relay terminates ICE
        assert!(c.rules_for(0).iter().all(|r| r.ice_siblings.is_empty()));
        let l = &mut c.monologues[0].legs[0];
        l.ice.enabled = true;
        l.ice.local = Some(crate::ice_sdp::Credentials { ufrag: "u".into(), pwd: "p".repeat(22) });
        let r = c.rules_for(0);
        let of = |s: &str| r.iter().find(|x| x.local == sa(s)).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(of("10.0.0.1:30000").ice_siblings, vec![sa("[2001:db8::1]:40000")]);
        assert_eq!(of("[2001:db8::1]:40000").ice_siblings, vec![sa("10.0.0.1:30000")]);
        assert_eq!(of("10.0.0.1:30001").ice_siblings, vec![sa("[2001:db8::1]:40001")]);
        assert_eq!(of("[2001:db8::1]:40001").ice_siblings, vec![sa("10.0.0.1:30001")]);
        assert!(r.iter().all(|x| x.ice.is_some()));
        // the phone's leg forwards into the main socket; the group picks the way out
        assert_eq!(c.rules_for(1)[0].egress_rtp, Some(sa("10.0.0.1:30000")));
    }
}
