//! Offer/answer: one SDP from one party of a call, turned into the legs it asks for and
//! the SDP the other party receives. A function of (call, SDP, flags, ports): it knows no
//! engine, so tests drive it with a made-up call and ports of their own. The engine
//! decides what to do with the result (apply the rules, keep or roll back the call).

use std::net::{IpAddr, SocketAddr};

use rules::addrpolicy::AddressPolicy;
use rules::dataplane::LatchPolicy;

use crate::call::{Call, Leg, Monologue, OriginState};
use crate::error::NgError;
use crate::ice_sdp;
use crate::interface::Interface;
use crate::ng::flags::Flags;
use crate::rewrite::{is_zero_hold, rewrite, MediaOut, SessionOut};
use crate::sdes_negotiation::{self, Section};
use crate::sdp::{family_of, Connection, Media, Sdp};

/// One offer or answer as the request gave it.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub sdp: &'a Sdp,
    pub flags: &'a Flags,
    pub from_tag: &'a str,
    /// Empty tags are `None`.
    pub to_tag: Option<&'a str>,
    pub is_answer: bool,
    /// Wall-clock seconds (a new monologue's creation time).
    pub unix: u64,
}

/// The relay's side of it: where it may put legs and where media may go.
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    pub interfaces: &'a [Interface],
    pub policy: &'a AddressPolicy,
    /// The certificate new DTLS legs advertise (None: the relay offers no DTLS).
    pub dtls_identity: Option<&'a std::sync::Arc<rules::webrtc::DtlsIdentity>>,
}

/// What offer/answer asks of the relay's sockets.
pub trait Ports {
    /// Bind an RTP/RTCP pair on `local` (the pair's RTP port).
    fn allocate(&mut self, local: IpAddr, affinity: u64) -> Result<u16, NgError>;
    /// Give back a pair this or an earlier request allocated.
    fn release(&mut self, local: IpAddr, port: u16);
    /// The peer the relay socket `rtp` has latched to, if any.
    fn latched_peer(&self, rtp: SocketAddr) -> Option<SocketAddr>;
}

/// The rewritten SDP, and which monologue sent the SDP it was rewritten from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub sdp: String,
    pub sender: usize,
}

/// The interface named (the first configured one if none), preferring the address
/// family asked for.
pub fn interface<'a>(
    list: &'a [Interface],
    name: Option<&str>,
    family: Option<&str>,
) -> Result<&'a Interface, NgError> {
    let first = list.first().ok_or(NgError::NoInterface)?;
    let name = name.unwrap_or(first.name.as_str());
    let named: Vec<&Interface> = list.iter().filter(|i| i.name == name).collect();
    if named.is_empty() {
        return Err(NgError::UnknownInterface(name.to_string()));
    }
    if let Some(f) = family {
        if let Some(i) = named.iter().find(|i| family_of(i.local) == f) {
            return Ok(i);
        }
    }
    Ok(named[0])
}

/// Apply one offer or answer to `call`: monologues matched or created, legs allocated
/// (from `ports`) or kept, peers and keys updated. On an error `call` may be half
/// changed and ports allocated: the caller works on a copy and releases what the copy
/// holds that the original does not.
pub fn offer_answer(
    call: &mut Call,
    ex: &Exchange<'_>,
    relay: &Relay<'_>,
    ports: &mut dyn Ports,
) -> Result<Outcome, NgError> {
    let Exchange { sdp, flags, from_tag, to_tag, is_answer, unix } = *ex;
    // who sent this SDP (x) and who receives the rewritten one (y)
    let (x, y) = if !is_answer {
        let a = match call.find(from_tag) {
            Some(a) => a,
            None => {
                call.monologues.push(Monologue::new(from_tag, unix));
                call.monologues.len() - 1
            }
        };
        let b = match to_tag.and_then(|t| call.find(t)) {
            Some(b) => b,
            None => match call.monologues[a].counterpart {
                Some(b) => b,
                None => {
                    call.monologues.push(Monologue::new(to_tag.unwrap_or(""), unix));
                    call.monologues.len() - 1
                }
            },
        };
        if a == b {
            return Err(NgError::SameTags);
        }
        (a, b)
    } else {
        let a = call.find(from_tag).ok_or_else(|| NgError::UnknownFromTag(from_tag.to_string()))?;
        let to = to_tag.ok_or(NgError::NoToTagInAnswer)?;
        let b = match call.find(to) {
            Some(b) => b,
            None => {
                let b = call.monologues[a].counterpart.ok_or(NgError::AnswerWithoutOffer)?;
                call.monologues[b].tag = to.to_string();
                b
            }
        };
        if call.monologues[a].counterpart != Some(b) && call.monologues[b].counterpart != Some(a) {
            // answer from another branch: it becomes the counterpart
            call.monologues[a].counterpart = Some(b);
        }
        (b, a)
    };
    call.monologues[x].counterpart = Some(y);
    call.monologues[y].counterpart = Some(x);
    let branch = flags.via_branch.as_deref().unwrap_or("");
    if is_answer {
        call.branches.answered(branch);
    } else {
        call.branches.offered(branch);
    }
    if flags.label.is_some() {
        call.monologues[x].label = flags.label.clone();
    }
    // the SIP source of this party's signalling (ng received-from): a latching hint,
    // dropped when it is an address media may not come from anyway
    if let Some(ip) = flags.received_from {
        call.monologues[x].sip_source = relay.policy.check_ip(ip).is_ok().then_some(ip);
    }
    call.monologues[x].latch = LatchPolicy {
        asymmetric: flags.asymmetric,
        trust_address: flags.trust_address,
        strict_source: flags.strict_source,
    };

    // interfaces: the first offer decides, re-offers keep them
    let (if_x, if_y) = if let (Some(a), Some(b)) = (&flags.from_interface, &flags.to_interface) {
        (Some(a.clone()), Some(b.clone()))
    } else if flags.direction.len() >= 2 {
        (Some(flags.direction[0].clone()), Some(flags.direction[1].clone()))
    } else {
        (None, None)
    };
    for (m, i) in [(x, if_x), (y, if_y)] {
        if i.is_some() || call.monologues[m].interface.is_none() {
            let name = match i {
                Some(n) => n,
                None => relay.interfaces.first().ok_or(NgError::NoInterface)?.name.clone(),
            };
            interface(relay.interfaces, Some(&name), None)?;
            call.monologues[m].interface = Some(name);
        }
    }

    let mut outs = Vec::with_capacity(sdp.media.len());
    for (i, m) in sdp.media.iter().enumerate() {
        let conn = sdp.effective_connection(i);
        let x_family = conn.as_ref().map(|c| c.family.clone());
        let y_family = flags.address_family.clone().or_else(|| x_family.clone());
        let relay_it = m.m.is_relayable() && m.m.port != 0;
        let clock_rate = m.m.fmts.first().and_then(|f| m.rtpmap(f)).map(|(_, r)| r).unwrap_or(8000);
        let hold = is_zero_hold(sdp, i);
        // the sender's leg: where it is, what it offers
        let (peer, peer_rtcp) = signalled_peers(relay.policy, m, conn.as_ref(), is_answer, relay_it)?;
        let sender_mux = m.has_attr("rtcp-mux");
        // `no port latching`: a re-offer from a new endpoint gets the recipient new ports
        // (and so a new ICE agent there), as rtpengine does
        let old_peer = call.monologues[x].legs.get(i).and_then(|l| l.peer);
        let new_ports =
            flags.no_port_latching && !is_answer && old_peer.is_some() && peer.is_some() && old_peer != peer;
        // the sender's leg follows its SDP's family; the recipient's keeps the family it
        // has unless address-family asks for another
        let y_family = match (&flags.address_family, call.monologues[y].legs.get(i)) {
            (None, Some(l)) if l.relayed() => Some(family_of(l.local).to_string()),
            _ => y_family,
        };
        for (mono, fam) in [(x, x_family.clone()), (y, y_family)] {
            let iface =
                interface(relay.interfaces, call.monologues[mono].interface.as_deref(), fam.as_deref())?.clone();
            let legs = &call.monologues[mono].legs;
            let existing = legs.get(i).cloned();
            let keep = existing
                .as_ref()
                .is_some_and(|l| l.local == iface.local && l.relayed() == relay_it && l.media_type == m.m.media)
                && !(mono == y && new_ports);
            let leg = if keep {
                existing.unwrap()
            } else {
                for (ip, port) in existing.iter().flat_map(Leg::pairs) {
                    ports.release(ip, port);
                }
                let port = if relay_it { ports.allocate(iface.local, call.affinity)? } else { 0 };
                Leg {
                    media_type: m.m.media.clone(),
                    local: iface.local,
                    advertised: iface.advertised,
                    port,
                    peer: None,
                    peer_rtcp: None,
                    mux: false,
                    mux_forced: Vec::new(),
                    plain_udp: !m.m.is_rtp(),
                    clock_rate,
                    reset_latch: false,
                    rejected: false,
                    srtp_in: None,
                    srtp_out: None,
                    proto: m.m.proto.clone(),
                    sdes_offered: Vec::new(),
                    sdes_relay_offer: Vec::new(),
                    // new sockets under the same party (new ports, another interface): its
                    // ICE state with a new agent, as rtpengine restarts ICE there
                    ice: existing
                        .as_ref()
                        .filter(|l| l.media_type == m.m.media)
                        .map(|l| l.ice.restarted())
                        .unwrap_or_default(),
                    dtls: Default::default(),
                    mid: None,
                    // rtpengine's media keeps its ptime whatever its sockets
                    ptime: existing.as_ref().and_then(|l| l.ptime),
                }
            };
            let legs = &mut call.monologues[mono].legs;
            if legs.len() <= i {
                legs.push(leg);
            } else {
                legs[i] = leg;
            }
        }
        {
            let latched = ports.latched_peer(call.monologues[x].legs[i].rtp());
            let leg = &mut call.monologues[x].legs[i];
            let new_peer = if hold { None } else { peer };
            // only a new address resets the latch: an answer or re-offer that repeats
            // the address, or names the one already latched, keeps it
            if leg.peer != new_peer && (new_peer.is_none() || new_peer != latched) {
                leg.reset_latch = true;
            }
            leg.peer = new_peer;
            leg.peer_rtcp = if hold { None } else { peer_rtcp };
            leg.clock_rate = clock_rate;
            leg.rejected = m.m.port == 0;
            if is_answer {
                // the answerer accepted mux only if we offered it
                leg.mux = sender_mux;
            } else {
                leg.mux = sender_mux && !flags.rtcp_mux_has("reject");
                let forced = ["accept", "require", "demux"].iter().any(|f| flags.rtcp_mux_has(f));
                let branch = flags.via_branch.clone().unwrap_or_default();
                leg.mux_forced.retain(|(b, _)| *b != branch);
                if leg.mux_forced.len() >= 8 {
                    leg.mux_forced.remove(0);
                }
                leg.mux_forced.push((branch, forced));
            }
        }
        // the sender's a=ptime sets both parties' (rtpengine's __media_init_from_flags)
        if let Some(p) = m.attr("ptime").and_then(ptime_value) {
            call.monologues[x].legs[i].ptime = Some(p);
            call.monologues[y].legs[i].ptime = Some(p);
        }
        if is_answer {
            call.monologues[y].legs[i].rejected |= m.m.port == 0;
        } else {
            call.monologues[y].legs[i].rejected = false;
        }
        // payload types for the recipient
        let mut fmts = m.m.fmts.clone();
        if m.m.is_rtp() {
            if !is_answer {
                let offered = strip_codecs(m, &fmts, flags);
                let store = &mut call.monologues[x].offered_fmts;
                if store.len() <= i {
                    store.resize(i + 1, Vec::new());
                }
                store[i] = fmts.clone();
                fmts = offered;
            } else {
                let offered = call.monologues[y].offered_fmts.get(i).cloned().unwrap_or_default();
                if !offered.is_empty() {
                    let filtered: Vec<String> = fmts.iter().filter(|f| offered.contains(f)).cloned().collect();
                    fmts = if filtered.is_empty() { vec![offered[0].clone()] } else { filtered };
                }
            }
        }
        let mux_out = if is_answer {
            // rtpengine: the answer goes with the answerer's choice unless the offer
            // asked to accept (or require) the offerer's mux
            let offerer = &mut call.monologues[y].legs[i];
            let branch = flags.via_branch.as_deref().unwrap_or("");
            let forced = offerer
                .mux_forced
                .iter()
                .rev()
                .find(|(b, _)| b == branch)
                .or(offerer.mux_forced.last())
                .is_some_and(|(_, f)| *f);
            offerer.mux = offerer.mux && (forced || sender_mux);
            offerer.mux
        } else {
            (sender_mux && !flags.rtcp_mux_has("demux")) || flags.rtcp_mux_has("offer") || flags.rtcp_mux_has("require")
        };
        let (proto, crypto, dtls) = if m.m.is_rtp() && m.m.port != 0 {
            let s = Section { media: m, index: i, sender: x, recipient: y, is_answer };
            let dtls = crate::dtls_sdp::negotiate(call, flags, &s, &sdp.session, relay.dtls_identity)?;
            let (proto, crypto) = sdes_negotiation::negotiate(call, flags, s)?;
            // passthrough: the parties' own DTLS attributes go through
            (proto, crypto, (!call.monologues[y].legs[i].dtls.passthrough).then_some(dtls))
        } else {
            (None, None, None)
        };
        let s = ice_sdp::Section { sdp, index: i, sender: x, recipient: y, is_answer, mux: mux_out };
        let ice = ice_sdp::negotiate(call, relay.interfaces, ports, flags, s)?;
        let leg = Some(call.monologues[y].legs[i].clone());
        let rtcp = crate::rewrite::RtcpAttr::from_flags(flags);
        if !is_answer {
            // media IDs (rtpengine's media_update_media_id / media_copy_media_id)
            if let Some(mid) = m.attr("mid").filter(|v| !v.is_empty()) {
                call.monologues[x].legs[i].mid = Some(mid.to_string());
            }
            if call.monologues[y].legs[i].mid.is_none() {
                let copied = call.monologues[x].legs[i].mid.clone();
                call.monologues[y].legs[i].mid = copied.or_else(|| flags.generate_mid.then(|| (i + 1).to_string()));
            }
        }
        let mid = call.monologues[y].legs[i].mid.clone();
        let mux_offered = mux_out && !is_answer && !flags.rtcp_mux_has("require");
        outs.push(MediaOut { leg, fmts, proto, mux: mux_out, crypto, ice, dtls, rtcp, mux_offered, mid });
    }
    // media sections dropped by a re-offer
    let n = sdp.media.len();
    for mono in [x, y] {
        while call.monologues[mono].legs.len() > n {
            let l = call.monologues[mono].legs.pop().unwrap();
            for (ip, port) in l.pairs() {
                ports.release(ip, port);
            }
        }
    }

    // o= and s= (replace flags)
    let first_adv = outs.iter().filter_map(|o| o.leg.as_ref()).find(|l| l.relayed()).map(|l| l.advertised);
    let mut session = session_out(&mut call.monologues[x], sdp, flags, first_adv);
    session.ice_lite = outs.iter().any(|o| o.ice.session_lite);
    session.keep_session_ice = outs.iter().any(|o| o.ice.keep_sender);
    session.force_relay = ice_sdp::IceFlags::from_flags(flags).option == ice_sdp::IceOption::ForceRelay;
    Ok(Outcome { sdp: rewrite(sdp, &session, &outs), sender: x })
}

/// An a=ptime value as rtpengine reads it (`str_to_i`): the leading decimal digits
/// after any blanks ("20", " 30", "20.5" → 20); none for 0, a sign, no digits or a
/// value past u32.
fn ptime_value(v: &str) -> Option<u32> {
    let v = v.trim_start();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v[..end].parse::<u32>().ok().filter(|&p| p > 0)
}

/// Where the sender of media section `m` receives RTP and RTCP according to its SDP,
/// checked against the media address policy: an address media may not go to is
/// refused with an error naming it. Ignored as rtpengine ignores them (no address:
/// the relay latches from packets): c=0.0.0.0 / :: (hold), port 0 (a rejected
/// stream), a c= that is not an IP address, and an a=rtcp whose port is 0 or whose
/// address is unspecified or not an IP address (the RTP address and port + 1 are
/// used). Sections the relay does not relay are not checked: nothing is sent there.
fn signalled_peers(
    policy: &AddressPolicy,
    m: &Media,
    conn: Option<&Connection>,
    is_answer: bool,
    relay_it: bool,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), NgError> {
    let Some(ip) = conn.and_then(|c| c.ip()).filter(|ip| !ip.is_unspecified()) else {
        return Ok((None, None));
    };
    if m.m.port == 0 {
        return Ok((None, None));
    }
    let peer = SocketAddr::new(ip, m.m.port);
    // a=rtcp:<port> [IN IP4 <addr>]
    let mut rtcp_attr = m.attr("rtcp").unwrap_or("").split_whitespace();
    let rtcp_port = rtcp_attr.next().and_then(|p| p.parse::<u16>().ok()).filter(|&p| p != 0);
    let rtcp_ip = match (rtcp_attr.next(), rtcp_attr.next(), rtcp_attr.next()) {
        (Some(net), Some(_), Some(a)) if net.eq_ignore_ascii_case("IN") => {
            a.parse::<IpAddr>().ok().filter(|a| !a.is_unspecified())
        }
        _ => None,
    };
    let peer_rtcp = if m.has_attr("rtcp-mux") && is_answer {
        Some(peer)
    } else {
        match rtcp_port {
            Some(p) => Some(SocketAddr::new(rtcp_ip.unwrap_or(ip), p)),
            // RTP port + 1; none past 65535
            None => m.m.port.checked_add(1).map(|p| SocketAddr::new(ip, p)),
        }
    };
    if relay_it {
        policy.check(peer).map_err(|denied| NgError::MediaRefused { addr: peer, denied, rtcp: false })?;
        if let Some(r) = peer_rtcp {
            policy.check(r).map_err(|denied| NgError::MediaRefused { addr: r, denied, rtcp: true })?;
        }
    }
    Ok((Some(peer), peer_rtcp))
}

fn session_out(mono: &mut Monologue, sdp: &Sdp, flags: &Flags, relay_addr: Option<IpAddr>) -> SessionOut {
    let mut out = SessionOut {
        replace_zero_address: flags.replace_zero_address,
        media_address: flags.media_address,
        loop_protect: flags.loop_protect,
        ..Default::default()
    };
    let o_line = sdp.session.iter().find(|l| l.starts_with("o=")).cloned().unwrap_or_default();
    let parts: Vec<&str> = o_line.strip_prefix("o=").unwrap_or_default().split(' ').collect();
    let any_replace =
        flags.replace_origin || flags.replace_username || flags.replace_sdp_version || flags.replace_session_name;
    let body = sdp.body_without_origin();
    let s_line = sdp.session.iter().find(|l| l.starts_with("s=")).cloned();
    if mono.origin.is_none() && parts.len() >= 6 {
        mono.origin = Some(OriginState {
            username: parts[0].to_string(),
            session_id: parts[1].to_string(),
            version: parts[2].parse().unwrap_or(0),
            session_name: s_line.clone(),
            last_body: body.clone(),
        });
    }
    let Some(st) = mono.origin.as_mut() else {
        return out;
    };
    if flags.replace_sdp_version && st.last_body != body {
        st.version = st.version.wrapping_add(1);
    }
    st.last_body = body;
    if !any_replace || parts.len() < 6 {
        return out;
    }
    let user = if flags.replace_username { st.username.clone() } else { parts[0].to_string() };
    let version = if flags.replace_sdp_version { st.version.to_string() } else { parts[2].to_string() };
    // ICE=force-relay leaves the o= address as it came (rtpengine's sdp_replace)
    let force_relay = ice_sdp::IceFlags::from_flags(flags).option == ice_sdp::IceOption::ForceRelay;
    let (fam, addr) = match (flags.replace_origin && !force_relay, flags.media_address.or(relay_addr)) {
        (true, Some(a)) => (family_of(a).to_string(), a.to_string()),
        _ => (parts[4].to_string(), parts[5].to_string()),
    };
    out.origin_line = Some(format!("o={} {} {} {} {} {}", user, parts[1], version, parts[3], fam, addr));
    if flags.replace_session_name {
        out.session_name_line = st.session_name.clone();
    }
    out
}

/// Payload types left after `codec-strip` / `codec-mask` / `except`. Masking without
/// transcoding is the same as stripping towards the recipient. Stripping every codec
/// keeps the section as it was (rtpengine's behaviour without allow-no-codec-media).
fn strip_codecs(m: &Media, fmts: &[String], flags: &Flags) -> Vec<String> {
    if flags.codec_strip.is_empty() && flags.codec_mask.is_empty() {
        return fmts.to_vec();
    }
    let name_of = |pt: &str| m.rtpmap(pt).map(|(n, _)| n.to_ascii_lowercase()).unwrap_or_default();
    let matches = |list: &[String], pt: &str| {
        let n = name_of(pt);
        list.iter().any(|c| {
            let c = c.to_ascii_lowercase();
            c == "all" || c == n || c == pt
        })
    };
    let kept: Vec<String> = fmts
        .iter()
        .filter(|pt| {
            let remove = matches(&flags.codec_strip, pt) || matches(&flags.codec_mask, pt);
            !remove
                || (matches(&flags.codec_except, pt)
                    && !flags.codec_except.iter().any(|c| c.eq_ignore_ascii_case("all")))
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        fmts.to_vec()
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Ports from a counter; what was released and what is latched, on record.
    #[derive(Default)]
    struct TestPorts {
        next: u16,
        held: Vec<(IpAddr, u16)>,
        released: Vec<(IpAddr, u16)>,
        latched: HashMap<SocketAddr, SocketAddr>,
    }

    impl Ports for TestPorts {
        fn allocate(&mut self, local: IpAddr, _affinity: u64) -> Result<u16, NgError> {
            let p = 30000 + 2 * self.next;
            self.next += 1;
            self.held.push((local, p));
            Ok(p)
        }
        fn release(&mut self, local: IpAddr, port: u16) {
            self.held.retain(|h| *h != (local, port));
            self.released.push((local, port));
        }
        fn latched_peer(&self, rtp: SocketAddr) -> Option<SocketAddr> {
            self.latched.get(&rtp).copied()
        }
    }

    fn sdp(ip: &str, port: u16, extra: &str) -> Sdp {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8\r\n\
             a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n{extra}"
        );
        Sdp::parse(&text).unwrap()
    }

    struct Setup {
        interfaces: Vec<Interface>,
        policy: AddressPolicy,
    }

    impl Setup {
        fn new() -> Setup {
            Setup { interfaces: vec![Interface::parse("203.0.113.1").unwrap()], policy: AddressPolicy::permissive() }
        }
        fn relay(&self) -> Relay<'_> {
            Relay { interfaces: &self.interfaces, policy: &self.policy, dtls_identity: None }
        }
    }

    fn run(
        call: &mut Call,
        s: &Setup,
        ports: &mut TestPorts,
        sdp: &Sdp,
        flags: &Flags,
        tags: (&str, Option<&str>),
        is_answer: bool,
    ) -> Result<Outcome, NgError> {
        let ex = Exchange { sdp, flags, from_tag: tags.0, to_tag: tags.1, is_answer, unix: 7 };
        offer_answer(call, &ex, &s.relay(), ports)
    }

    #[test]
    fn offer_then_answer_on_a_made_up_call() {
        let s = Setup::new();
        let mut ports = TestPorts::default();
        let mut call = Call::new("c", 0, 0, 1);
        let flags = Flags::default();
        let offer = sdp("192.0.2.7", 4000, "");
        let out = run(&mut call, &s, &mut ports, &offer, &flags, ("a", None), false).unwrap();
        assert_eq!(out.sender, 0);
        assert_eq!(call.monologues.len(), 2);
        assert_eq!((call.monologues[0].counterpart, call.monologues[1].counterpart), (Some(1), Some(0)));
        let (a, b) = (&call.monologues[0].legs[0], &call.monologues[1].legs[0]);
        assert_eq!((a.port, b.port), (30000, 30002));
        assert_eq!(a.peer, Some("192.0.2.7:4000".parse().unwrap()));
        assert_eq!(a.peer_rtcp, Some("192.0.2.7:4001".parse().unwrap()));
        assert_eq!(b.peer, None);
        // the callee is sent the relay's address and its own leg's port
        assert!(out.sdp.contains("c=IN IP4 203.0.113.1\r\n"), "{}", out.sdp);
        assert!(out.sdp.contains("m=audio 30002 RTP/AVP 0 8\r\n"), "{}", out.sdp);

        let answer = sdp("198.51.100.9", 5000, "");
        let out = run(&mut call, &s, &mut ports, &answer, &flags, ("a", Some("b")), true).unwrap();
        assert_eq!(out.sender, 1);
        assert_eq!(call.monologues[1].tag, "b");
        assert_eq!(call.monologues[1].legs[0].peer, Some("198.51.100.9:5000".parse().unwrap()));
        assert!(out.sdp.contains("m=audio 30000 RTP/AVP 0 8\r\n"), "{}", out.sdp);
        // nothing new allocated for the answer, nothing released
        assert_eq!((ports.held.len(), ports.released.len()), (2, 0));
    }

    #[test]
    fn a_reoffer_keeps_ports_and_a_latched_peer() {
        let s = Setup::new();
        let mut ports = TestPorts::default();
        let mut call = Call::new("c", 0, 0, 1);
        let flags = Flags::default();
        let offer = sdp("192.0.2.7", 4000, "");
        run(&mut call, &s, &mut ports, &offer, &flags, ("a", None), false).unwrap();
        call.monologues[0].legs[0].reset_latch = false;
        ports.latched.insert(call.monologues[0].legs[0].rtp(), "192.0.2.99:4000".parse().unwrap());
        run(&mut call, &s, &mut ports, &offer, &flags, ("a", None), false).unwrap();
        assert_eq!(ports.held.len(), 2);
        assert!(!call.monologues[0].legs[0].reset_latch, "the same address keeps the latch");
        // hold (c=0.0.0.0): no peer, and the latch is reset
        let hold = sdp("0.0.0.0", 4000, "");
        run(&mut call, &s, &mut ports, &hold, &flags, ("a", None), false).unwrap();
        assert_eq!(call.monologues[0].legs[0].peer, None);
        assert!(call.monologues[0].legs[0].reset_latch);
        // a re-offer with fewer sections releases the dropped legs' ports
        let none = Sdp::parse("v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nt=0 0\r\n").unwrap();
        run(&mut call, &s, &mut ports, &none, &flags, ("a", None), false).unwrap();
        assert_eq!((ports.held.len(), ports.released.len()), (0, 2));
    }

    #[test]
    fn refusals_name_the_problem() {
        let s = Setup::new();
        let mut ports = TestPorts::default();
        let flags = Flags::default();
        let offer = sdp("192.0.2.7", 4000, "");
        let mut call = Call::new("c", 0, 0, 1);
        let e = run(&mut call, &s, &mut ports, &offer, &flags, ("a", Some("b")), true).unwrap_err();
        assert_eq!(e, NgError::UnknownFromTag("a".into()));
        run(&mut call, &s, &mut ports, &offer, &flags, ("a", None), false).unwrap();
        let e = run(&mut call, &s, &mut ports, &offer, &flags, ("a", None), true).unwrap_err();
        assert_eq!(e, NgError::NoToTagInAnswer);
        let dir = Flags { direction: vec!["nope".into(), "x".into()], ..Default::default() };
        let e = run(&mut call, &s, &mut ports, &offer, &dir, ("a", None), false).unwrap_err();
        assert_eq!(e.to_string(), "unknown interface \"nope\"");
        // the media address policy: loopback is refused outside the lab
        let strict = Setup { policy: AddressPolicy::default(), ..Setup::new() };
        let lo = sdp("127.0.0.1", 4000, "");
        let e = run(&mut Call::new("d", 0, 0, 2), &strict, &mut ports, &lo, &flags, ("a", None), false).unwrap_err();
        assert_eq!(e.to_string(), "media address 127.0.0.1:4000 refused: loopback address");
        let rtcp = sdp("192.0.2.7", 4000, "a=rtcp:4001 IN IP4 127.0.0.1\r\n");
        let e = run(&mut Call::new("d", 0, 0, 2), &strict, &mut ports, &rtcp, &flags, ("a", None), false).unwrap_err();
        assert_eq!(e.to_string(), "media address 127.0.0.1:4001 refused: loopback address (a=rtcp)");
    }

    #[test]
    fn codec_strip_and_the_answer_filter() {
        let s = Setup::new();
        let mut ports = TestPorts::default();
        let mut call = Call::new("c", 0, 0, 1);
        let strip = Flags { codec_strip: vec!["pcma".into()], ..Default::default() };
        let out = run(&mut call, &s, &mut ports, &sdp("192.0.2.7", 4000, ""), &strip, ("a", None), false).unwrap();
        assert!(out.sdp.contains("m=audio 30002 RTP/AVP 0\r\n"), "{}", out.sdp);
        // stripping every codec keeps the section as it was
        let all = Flags { codec_strip: vec!["all".into()], ..Default::default() };
        let out = run(&mut call, &s, &mut ports, &sdp("192.0.2.7", 4000, ""), &all, ("a", None), false).unwrap();
        assert!(out.sdp.contains("m=audio 30002 RTP/AVP 0 8\r\n"), "{}", out.sdp);
        // the answer towards the offerer keeps only what the offerer offered
        let answer = Sdp::parse(
            "v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 5000 RTP/AVP 9 8\r\n",
        )
        .unwrap();
        let flags = Flags::default();
        let out = run(&mut call, &s, &mut ports, &answer, &flags, ("a", Some("b")), true).unwrap();
        assert!(out.sdp.contains("m=audio 30000 RTP/AVP 8\r\n"), "{}", out.sdp);
    }
}
