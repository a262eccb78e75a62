//! Rewriting an SDP for its recipient, line-preserving.
//!
//! Only the lines the relay owns change: o= (replace flags), s= (session-name), c=, the
//! m= port / protocol / payload list, a=rtcp, a=rtcp-mux, direction on hold, ICE, and
//! rtpmap/fmtp/rtcp-fb of payload types that were stripped. Everything else is copied as
//! it came, in the order it came.

use std::net::IpAddr;

use crate::call::Leg;
use crate::ice_sdp::IceOut;
use crate::sdp::{attr_name, find_direction, static_payload, Connection, Sdp};

/// What the relay puts into one media section.
#[derive(Debug, Clone)]
pub struct MediaOut {
    /// Leg facing the recipient (its advertised address and port go into the SDP).
    pub leg: Option<Leg>,
    pub fmts: Vec<String>,
    pub proto: Option<String>,
    pub mux: bool,
    /// a=crypto lines for the recipient: they replace the sender's (None: leave them).
    pub crypto: Option<Vec<String>>,
    /// ICE towards the recipient: the relay's lines, or the sender's kept (passthrough).
    pub ice: IceOut,
    /// The relay's a=setup / a=fingerprint / a=tls-id for the recipient: they replace the
    /// sender's (crate::dtls_sdp; None: leave them).
    pub dtls: Option<Vec<String>>,
    pub rtcp: RtcpAttr,
    /// rtcp-mux offered but not agreed yet (an offer without `rtcp-mux-require`): a=rtcp
    /// names the RTCP port, which stays open in case the answerer declines mux.
    pub mux_offered: bool,
    /// The recipient's media ID (crate::call::Leg::mid): replaces the sender's a=mid.
    pub mid: Option<String>,
}

/// How the relay writes a=rtcp (rtpengine's `print_rtcp` / `insert_rtcp_attr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RtcpAttr {
    /// `a=rtcp:<port>`
    #[default]
    Port,
    /// `a=rtcp:<port> IN IP4 <address>` (`full-rtcp-attribute`)
    Full,
    /// none (`no-rtcp-attribute`)
    None,
    /// only with rtcp-mux (`ICE=force-relay`: no RTCP stream of its own is advertised)
    MuxOnly,
}

impl RtcpAttr {
    pub fn from_flags(f: &crate::ng::flags::Flags) -> RtcpAttr {
        if f.no_rtcp_attr {
            RtcpAttr::None
        } else if crate::ice_sdp::IceFlags::from_flags(f).option == crate::ice_sdp::IceOption::ForceRelay {
            RtcpAttr::MuxOnly
        } else if f.full_rtcp_attr {
            RtcpAttr::Full
        } else {
            RtcpAttr::Port
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SessionOut {
    pub origin_line: Option<String>,
    pub session_name_line: Option<String>,
    pub replace_zero_address: bool,
    pub media_address: Option<IpAddr>,
    /// The relay writes `a=ice-lite` at session level.
    pub ice_lite: bool,
    /// Session-level ICE attributes of the sender stay (ICE passthrough).
    pub keep_session_ice: bool,
    /// `loop-protect`: the session gets the relay's mark (crate::loop_protect).
    pub loop_protect: bool,
    /// `ICE=force-relay`: the relay is reached only through its relay candidates, so
    /// (rtpengine's sdp_replace) the sender's c= lines, m= lines (port, transport,
    /// payload types), o= address and a=rtcp / a=rtcp-mux go through as they came.
    pub force_relay: bool,
}

fn is_ice(line: &str) -> bool {
    crate::ice_sdp::is_ice_line(line)
}

/// A sender's `a=candidate` of type relay: `ICE=force-relay` drops them, the relay's own
/// taking their place (rtpengine's process_session/media_attributes).
fn is_relay_candidate(line: &str) -> bool {
    line.strip_prefix("a=candidate:").is_some_and(|v| {
        let mut f = v.split_ascii_whitespace().skip(6);
        f.next() == Some("typ") && f.next().is_some_and(|t| t.eq_ignore_ascii_case("relay"))
    })
}

fn has_ice(lines: &[String]) -> bool {
    lines.iter().any(|l| attr_name(l) == Some("ice-ufrag"))
}

/// Payload type an attribute line is about (`a=rtpmap:96 ...`, `a=fmtp:96 ...`, `a=rtcp-fb:96 ...`).
fn pt_attr(line: &str) -> Option<&str> {
    let name = attr_name(line)?;
    if !matches!(name, "rtpmap" | "fmtp" | "rtcp-fb") {
        return None;
    }
    // `a=rtpmap` without a colon (Kamailio passes it through) names no payload type
    let rest = line.strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':')?;
    rest.split(' ').next()
}

/// Media sections whose c= is the legacy hold address 0.0.0.0 (and no ICE, where
/// 0.0.0.0 only means "candidates follow").
pub fn is_zero_hold(sdp: &Sdp, i: usize) -> bool {
    let zero = sdp.effective_connection(i).is_some_and(|c| c.is_zero());
    zero && !sdp.media.get(i).is_some_and(|m| has_ice(&m.lines)) && !has_ice(&sdp.session)
}

pub fn rewrite(sdp: &Sdp, session: &SessionOut, media: &[MediaOut]) -> String {
    let addr_of = |leg: &Leg| session.media_address.unwrap_or(leg.advertised);
    let holds: Vec<bool> = (0..sdp.media.len()).map(|i| is_zero_hold(sdp, i)).collect();
    // `replace: zero address` writes the relay's address but the stream stays held
    let keep_zero: Vec<bool> = holds.iter().map(|h| *h && !session.replace_zero_address).collect();
    // session-level c=: the relay's address of the first relayed section
    let orig_session_c = sdp.session.iter().find(|l| l.starts_with("c=")).cloned();
    let first_relayed =
        media.iter().enumerate().find(|(_, m)| m.leg.as_ref().is_some_and(|l| l.relayed() && !l.rejected));
    let new_session_c = match first_relayed {
        _ if session.force_relay => orig_session_c.clone(),
        Some((i, m)) if !keep_zero.get(i).copied().unwrap_or(false) => {
            m.leg.as_ref().map(|l| Connection::line_for(addr_of(l)))
        }
        _ => orig_session_c.clone(),
    };
    let mut out: Vec<String> = Vec::with_capacity(sdp.session.len() + 16 * sdp.media.len());
    for l in &sdp.session {
        if let Some(ids) = l.strip_prefix("a=group:BUNDLE") {
            // the group names the recipient's media IDs of the sections the sender grouped
            if let Some(g) = bundle_group(sdp, media, ids) {
                out.push(g);
            }
        } else if l.starts_with("o=") {
            out.push(session.origin_line.clone().unwrap_or_else(|| l.clone()));
        } else if l.starts_with("s=") {
            out.push(session.session_name_line.clone().unwrap_or_else(|| l.clone()));
        } else if l.starts_with("c=") {
            out.push(new_session_c.clone().unwrap_or_else(|| l.clone()));
        } else if (is_ice(l) && !session.keep_session_ice) || (session.force_relay && is_relay_candidate(l)) {
            continue;
        } else {
            out.push(l.clone());
        }
    }
    if session.ice_lite {
        out.push("a=ice-lite".into());
    }
    if session.loop_protect {
        out.push(crate::loop_protect::mark());
    }
    let session_dir = find_direction(&sdp.session);
    // the relay terminates DTLS: a sender's session-level DTLS attributes go too
    if media.iter().any(|m| m.dtls.is_some()) {
        out.retain(|l| !crate::dtls_sdp::is_dtls_attr(l));
    }
    for (i, m) in sdp.media.iter().enumerate() {
        // one MediaOut per media section; a section without one is copied as it came
        let Some(mo) = media.get(i) else {
            out.push(m.raw_m.clone());
            out.extend(m.lines.iter().cloned());
            continue;
        };
        let leg = mo.leg.as_ref().filter(|l| l.media_type == m.m.media);
        let relayed = leg.is_some_and(|l| l.relayed() && !l.rejected) && m.m.port != 0;
        let has_media_c = m.lines.iter().any(|l| l.starts_with("c="));
        if !relayed && m.m.port != 0 {
            // not ours (TCP/MSRP, ...): untouched, but it must keep its own address if the
            // session-level c= now points at the relay
            out.push(m.raw_m.clone());
            let mut inserted = has_media_c || orig_session_c == new_session_c;
            for l in &m.lines {
                if !inserted && !l.starts_with("i=") {
                    out.push(orig_session_c.clone().unwrap_or_default());
                    inserted = true;
                }
                out.push(l.clone());
            }
            if !inserted {
                out.push(orig_session_c.clone().unwrap_or_default());
            }
            continue;
        }
        let mut mline = m.m.clone();
        if !mo.fmts.is_empty() {
            mline.fmts = mo.fmts.clone();
        }
        if let Some(p) = &mo.proto {
            mline.proto = p.clone();
        }
        if !relayed {
            // rejected section: port 0, relay address, no direction / RTCP / ICE
            mline.port = 0;
            out.push(mline.emit());
            for l in &m.lines {
                if l.starts_with("c=") && !session.force_relay {
                    match leg.or(first_relayed.and_then(|(_, f)| f.leg.as_ref())) {
                        Some(lg) => out.push(Connection::line_for(addr_of(lg))),
                        None => out.push(l.clone()),
                    }
                } else if is_ice(l)
                    || find_direction(std::slice::from_ref(l)).is_some()
                    || matches!(attr_name(l), Some("rtcp" | "rtcp-mux"))
                {
                    continue;
                } else {
                    out.push(l.clone());
                }
            }
            continue;
        }
        let Some(leg) = leg else { continue };
        let hold = holds[i];
        let c_line = Connection::line_for(addr_of(leg));
        let c_line = if keep_zero[i] || session.force_relay {
            sdp.effective_connection(i).map(|c| format!("c=IN {} {}", c.family, c.addr)).unwrap_or(c_line)
        } else {
            c_line
        };
        if session.force_relay {
            mline = m.m.clone();
            out.push(m.raw_m.clone());
        } else {
            mline.port = leg.port;
            out.push(mline.emit());
        }
        let mut wrote_c = false;
        let need_c = !has_media_c && !session.force_relay && new_session_c.as_deref() != Some(c_line.as_str());
        let mut dir_seen = false;
        let mut wrote_mid = false;
        let is_rtp = mline.is_rtp();
        // rtpengine's media ptime (crate::call::Leg::ptime): the sender's a=ptime gives
        // way to it, written after the crypto and DTLS lines
        let ptime = leg.ptime.filter(|_| is_rtp);
        let kept_fmts = &mline.fmts;
        let mut have_rtpmap: Vec<&str> = Vec::new();
        for l in &m.lines {
            if need_c && !wrote_c && !l.starts_with("i=") {
                out.push(c_line.clone());
                wrote_c = true;
            }
            if l.starts_with("c=") {
                out.push(c_line.clone());
                wrote_c = true;
                continue;
            }
            if (is_ice(l) && !mo.ice.keep_sender) || (session.force_relay && is_relay_candidate(l)) {
                continue;
            }
            if matches!(attr_name(l), Some("rtcp" | "rtcp-mux")) && !session.force_relay {
                continue;
            }
            if ptime.is_some() && attr_name(l) == Some("ptime") {
                continue;
            }
            if mo.crypto.is_some() && attr_name(l) == Some("crypto") {
                continue;
            }
            if mo.dtls.is_some() && crate::dtls_sdp::is_dtls_attr(l) {
                continue;
            }
            if attr_name(l) == Some("mid") {
                // the recipient's own media ID, where the sender had its
                if let Some(mid) = mo.mid.as_ref().filter(|_| !wrote_mid) {
                    out.push(format!("a=mid:{mid}"));
                    wrote_mid = true;
                }
                continue;
            }
            if let Some(pt) = pt_attr(l) {
                if is_rtp && pt != "*" && !kept_fmts.iter().any(|f| f == pt) {
                    continue;
                }
                if attr_name(l) == Some("rtpmap") {
                    have_rtpmap.push(pt);
                }
            }
            if let Some(d) = find_direction(std::slice::from_ref(l)) {
                dir_seen = true;
                out.push(format!("a={}", if hold { held(d) } else { d }));
                continue;
            }
            out.push(l.clone());
        }
        if need_c && !wrote_c {
            out.push(c_line.clone());
        }
        if is_rtp {
            for f in kept_fmts {
                if have_rtpmap.contains(&f.as_str()) {
                    continue;
                }
                if let Some((name, rate, ch)) = f.parse().ok().and_then(static_payload) {
                    if ch > 1 {
                        out.push(format!("a=rtpmap:{f} {name}/{rate}/{ch}"));
                    } else {
                        out.push(format!("a=rtpmap:{f} {name}/{rate}"));
                    }
                }
            }
        }
        if !dir_seen && (session_dir.is_none() || hold) {
            let d = if hold { held(session_dir.unwrap_or("sendrecv")) } else { "sendrecv" };
            out.push(format!("a={d}"));
        }
        if let Some(mid) = mo.mid.as_ref().filter(|_| !wrote_mid) {
            out.push(format!("a=mid:{mid}"));
        }
        if is_rtp {
            let rtcp_port = if mo.mux && !mo.mux_offered { leg.port } else { leg.port.wrapping_add(1) };
            match mo.rtcp {
                RtcpAttr::Port => out.push(format!("a=rtcp:{rtcp_port}")),
                // rtpengine's print_rtcp: a=rtcp only once mux is agreed (an answer, or
                // an offer that requires it), a=rtcp-mux with it and not without
                RtcpAttr::MuxOnly if mo.mux && !mo.mux_offered => out.push(format!("a=rtcp:{rtcp_port}")),
                RtcpAttr::MuxOnly => {}
                RtcpAttr::Full => {
                    let a = addr_of(leg);
                    out.push(format!("a=rtcp:{rtcp_port} IN {} {a}", crate::sdp::family_of(a)))
                }
                RtcpAttr::None => {}
            }
            if mo.mux && (mo.rtcp != RtcpAttr::MuxOnly || !mo.mux_offered) {
                out.push("a=rtcp-mux".into());
            }
        }
        if let Some(lines) = &mo.crypto {
            out.extend(lines.iter().cloned());
        }
        if let Some(lines) = &mo.dtls {
            out.extend(lines.iter().cloned());
        }
        if let Some(p) = ptime {
            out.push(format!("a=ptime:{p}"));
        }
        out.extend(mo.ice.lines.iter().cloned());
    }
    let mut s = String::with_capacity(out.iter().map(|l| l.len() + 2).sum());
    for l in out {
        s += &l;
        s += sdp.eol;
    }
    s
}

/// `a=group:BUNDLE` for the recipient: each of the sender's IDs replaced by the
/// recipient's media ID of that section; None when no section is left in the group.
fn bundle_group(sdp: &Sdp, media: &[MediaOut], ids: &str) -> Option<String> {
    let mut out = String::from("a=group:BUNDLE");
    let mut any = false;
    for id in ids.split_whitespace() {
        let section = sdp.media.iter().position(|m| m.attr("mid") == Some(id));
        // a section the relay does not manage keeps its own ID
        let mapped = match section.map(|k| media.get(k)) {
            Some(Some(mo)) => mo.mid.as_deref(),
            Some(None) => Some(id),
            None => None,
        };
        if let Some(m) = mapped {
            out.push(' ');
            out += m;
            any = true;
        }
    }
    any.then_some(out)
}

/// Direction a party on legacy hold (c=0.0.0.0) ends up with.
fn held(d: &str) -> &'static str {
    match d {
        "sendrecv" | "sendonly" => "sendonly",
        _ => "inactive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::tests::leg as leg_at;

    fn leg(port: u16) -> Leg {
        leg_at("audio", "203.0.113.1", port, Some("198.51.100.7:4000"))
    }

    fn out(leg: Option<Leg>) -> MediaOut {
        MediaOut {
            leg,
            fmts: Vec::new(),
            proto: None,
            mux: false,
            crypto: None,
            ice: IceOut::default(),
            dtls: None,
            rtcp: RtcpAttr::Port,
            mux_offered: false,
            mid: None,
        }
    }

    fn run(text: &str, session: &SessionOut, media: &[MediaOut]) -> String {
        rewrite(&Sdp::parse(text).unwrap(), session, media)
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
                         m=audio 4000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n";

    #[test]
    fn owned_lines_are_replaced_and_the_rest_kept_in_order() {
        let s = run(OFFER, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert_eq!(
            s,
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtcp:30001\r\n"
        );
    }

    #[test]
    fn lines_not_owned_are_kept_byte_for_byte() {
        let odd = [
            "a=x-unknown:  two  spaces ",
            "b=AS:64",
            "a=ptime:20",
            "a=fmtp:8 whatever=1;  odd",
            "a=rtpmap:8  PCMA/8000",
            "a=label:1\t",
            "a=sendrecv",
        ];
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\ni=  info \r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             a=tool:x  y\r\nm=audio 4000 RTP/AVP 8\r\n{}\r\n",
            odd.join("\r\n")
        );
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000)))]);
        let lines: Vec<&str> = s.split("\r\n").collect();
        for l in ["i=  info ", "a=tool:x  y"].iter().chain(odd.iter()) {
            assert!(lines.contains(l), "{l:?} kept as it came: {s:?}");
        }
        let pos = |l: &str| lines.iter().position(|x| *x == l).unwrap();
        assert!(odd.windows(2).all(|w| pos(w[0]) < pos(w[1])), "in the order they came: {s:?}");
    }

    #[test]
    fn line_endings_follow_the_input() {
        let lf = OFFER.replace("\r\n", "\n");
        let s = run(&lf, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(!s.contains('\r'), "{s:?}");
        assert!(s.ends_with("a=rtcp:30001\n"));
        assert_eq!(s.replace('\n', "\r\n"), run(OFFER, &SessionOut::default(), &[out(Some(leg(30000)))]));
        // an input without a final line ending gets one; empty lines are dropped
        let s = run("v=0\no=- 1 1 IN IP4 1.2.3.4\n\ns=-\nt=0 0", &SessionOut::default(), &[]);
        assert_eq!(s, "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n");
    }

    #[test]
    fn rtcp_and_mux_are_written_by_the_relay() {
        let text = OFFER.replace("a=sendrecv\r\n", "a=sendrecv\r\na=rtcp:4001 IN IP4 198.51.100.7\r\na=rtcp-mux\r\n");
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(!s.contains("4001") && !s.contains("a=rtcp-mux"), "the sender's dropped: {s}");
        assert!(s.ends_with("a=rtcp:30001\r\n"), "{s}");
        let mut m = out(Some(leg(30000)));
        m.mux = true;
        let s = run(&text, &SessionOut::default(), &[m]);
        assert!(s.ends_with("a=rtcp:30000\r\na=rtcp-mux\r\n"), "{s}");
        // not RTP (UDPTL): no a=rtcp
        let t38 = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=image 4000 udptl t38\r\n";
        let s = run(t38, &SessionOut::default(), &[out(Some(leg_at("image", "203.0.113.1", 30000, None)))]);
        assert!(s.contains("m=image 30000 udptl t38\r\n") && !s.contains("a=rtcp"), "{s}");
    }

    #[test]
    fn rtcp_attribute_forms_as_rtpengine_writes_them() {
        let with = |rtcp: RtcpAttr, mux: bool, mux_offered: bool| {
            let mut m = out(Some(leg(30000)));
            (m.rtcp, m.mux, m.mux_offered) = (rtcp, mux, mux_offered);
            run(OFFER, &SessionOut::default(), &[m])
        };
        assert!(with(RtcpAttr::Full, false, false).ends_with("a=rtcp:30001 IN IP4 203.0.113.1\r\n"));
        assert!(!with(RtcpAttr::None, true, false).contains("a=rtcp:"));
        assert!(with(RtcpAttr::None, true, false).ends_with("a=rtcp-mux\r\n"));
        // an offer of mux names the RTCP port (kept open if the answerer declines)
        assert!(with(RtcpAttr::Port, true, true).ends_with("a=rtcp:30001\r\na=rtcp-mux\r\n"));
        assert!(with(RtcpAttr::Port, true, false).ends_with("a=rtcp:30000\r\na=rtcp-mux\r\n"));
        // ICE=force-relay: a=rtcp only with mux
        assert!(!with(RtcpAttr::MuxOnly, false, false).contains("a=rtcp"));
        assert!(with(RtcpAttr::MuxOnly, true, false).contains("a=rtcp:30000\r\n"));
    }

    #[test]
    fn force_relay_keeps_the_senders_lines_and_ptime_is_the_media_s() {
        let text = OFFER
            .replace("m=audio 4000 RTP/AVP 8 0\r\n", "m=audio 4000 RTP/AVP 8 0\r\nc=IN IP4 198.51.100.9\r\n")
            .replace("a=sendrecv\r\n", "a=sendrecv\r\na=ptime:30\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux\r\n");
        let session = SessionOut { force_relay: true, ..Default::default() };
        // the sender's relay candidates go, its others stay (ICE passthrough)
        let cands = "a=candidate:1 1 udp 5 192.0.2.9 5000 typ RELAY raddr 1.2.3.4 rport 1\r\n\
                     a=candidate:2 1 udp 9 192.0.2.9 5002 typ host\r\na=candidate:3 1 udp 9 x\r\n";
        let mut m = out(Some(leg(30000)));
        m.ice.keep_sender = true;
        let s = run(&format!("{text}{cands}"), &session, &[m]);
        assert!(!s.contains("typ RELAY") && s.contains("typ host") && s.contains("a=candidate:3 1 udp 9 x"), "{s}");
        let mut m = out(Some(leg(30000)));
        (m.rtcp, m.mux, m.mux_offered) = (RtcpAttr::MuxOnly, true, true);
        m.leg.as_mut().unwrap().ptime = Some(20);
        let s = run(&text, &session, std::slice::from_ref(&m));
        assert_eq!(
            s,
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 8 0\r\nc=IN IP4 198.51.100.9\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n\
             a=rtcp:9 IN IP4 0.0.0.0\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
        );
        // mux agreed (an answer): the relay's a=rtcp and a=rtcp-mux besides the sender's
        m.mux_offered = false;
        let s = run(&text, &session, &[m]);
        assert!(s.ends_with("a=rtcp:30000\r\na=rtcp-mux\r\na=ptime:20\r\n"), "{s}");
        assert_eq!(s.matches("a=rtcp-mux").count(), 2, "{s}");
    }

    #[test]
    fn dtls_attributes_are_replaced_and_mids_generated() {
        let text = OFFER
            .replace("t=0 0\r\n", "t=0 0\r\na=fingerprint:sha-256 AA\r\n")
            .replace("a=sendrecv\r\n", "a=sendrecv\r\na=setup:actpass\r\na=tls-id:x\r\n");
        let mut m = out(Some(leg(30000)));
        let s = run(&text, &SessionOut::default(), std::slice::from_ref(&m));
        assert!(s.contains("a=fingerprint:sha-256 AA") && s.contains("a=setup:actpass"), "left alone: {s}");
        m.dtls = Some(vec!["a=setup:passive".into(), "a=fingerprint:sha-256 BB".into()]);
        m.mid = Some("1".into());
        let s = run(&text, &SessionOut::default(), &[m.clone()]);
        assert!(!s.contains("AA") && !s.contains("actpass") && !s.contains("tls-id"), "the sender's go: {s}");
        assert!(s.ends_with("a=mid:1\r\na=rtcp:30001\r\na=setup:passive\r\na=fingerprint:sha-256 BB\r\n"), "{s}");
        // the sender's a=mid is replaced in place by the recipient's; BUNDLE follows
        let bundled = text
            .replace("t=0 0\r\n", "t=0 0\r\na=group:BUNDLE audio video\r\n")
            .replace("a=sendrecv\r\n", "a=sendrecv\r\na=mid:audio\r\n");
        let s = run(&bundled, &SessionOut::default(), std::slice::from_ref(&m));
        assert!(s.contains("a=sendrecv\r\na=mid:1\r\n") && !s.contains("a=mid:audio"), "{s}");
        assert!(s.contains("a=group:BUNDLE 1\r\n"), "{s}");
        m.mid = None;
        let s = run(&bundled, &SessionOut::default(), &[m]);
        assert!(!s.contains("a=mid") && !s.contains("a=group"), "no media ID towards this party: {s}");
    }

    #[test]
    fn media_level_connection_is_replaced_in_place() {
        let text = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 8\r\ni=voice\r\nc=IN IP4 198.51.100.7\r\na=sendrecv\r\n\
                    m=audio 4002 RTP/AVP 8\r\ni=second\r\na=sendrecv\r\n";
        let mut second = leg(30010);
        second.advertised = "203.0.113.2".parse().unwrap();
        let s = run(text, &SessionOut::default(), &[out(Some(leg(30000))), out(Some(second))]);
        assert_eq!(
            s,
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 8\r\ni=voice\r\nc=IN IP4 203.0.113.1\r\na=sendrecv\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtcp:30001\r\n\
             m=audio 30010 RTP/AVP 8\r\ni=second\r\nc=IN IP4 203.0.113.2\r\na=sendrecv\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtcp:30011\r\n",
            "no session c=: each section gets its own, after i="
        );
    }

    #[test]
    fn session_connection_names_the_first_relayed_section() {
        let text = format!("{OFFER}m=audio 4002 RTP/AVP 8\r\n");
        let mut second = leg(30010);
        second.advertised = "203.0.113.2".parse().unwrap();
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000))), out(Some(second))]);
        assert!(s.contains("\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n"), "{s}");
        assert_eq!(s.matches("c=IN IP4 203.0.113.1").count(), 1, "the first section relies on it: {s}");
        assert!(s.contains("m=audio 30010 RTP/AVP 8\r\nc=IN IP4 203.0.113.2\r\n"), "the second differs: {s}");
        // the media address flag overrides the legs' addresses
        let sess = SessionOut { media_address: Some("192.0.2.55".parse().unwrap()), ..Default::default() };
        let s = run(&text, &sess, &[out(Some(leg(30000))), out(Some(leg(30010)))]);
        assert_eq!(s.matches("c=").count(), 1, "{s}");
        assert!(s.contains("c=IN IP4 192.0.2.55\r\n"), "{s}");
    }

    #[test]
    fn a_section_the_relay_does_not_own_keeps_its_address() {
        let text = format!("{OFFER}m=message 9 TCP/MSRP *\r\ni=chat\r\na=path:msrp://x\r\n");
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000))), out(None)]);
        assert!(
            s.ends_with("m=message 9 TCP/MSRP *\r\ni=chat\r\nc=IN IP4 198.51.100.7\r\na=path:msrp://x\r\n"),
            "the sender's address, after i=: {s}"
        );
        // a section without a MediaOut is copied as it came
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(s.ends_with("m=message 9 TCP/MSRP *\r\ni=chat\r\na=path:msrp://x\r\n"), "{s}");
    }

    #[test]
    fn rejected_sections_stay_at_port_zero() {
        let text = format!("{OFFER}m=video 0 RTP/AVP 96\r\nc=IN IP4 198.51.100.7\r\na=sendrecv\r\na=rtcp-mux\r\na=ice-ufrag:x\r\na=rtpmap:96 VP8/90000\r\n");
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000))), out(None)]);
        assert!(
            s.ends_with("m=video 0 RTP/AVP 96\r\nc=IN IP4 203.0.113.1\r\na=rtpmap:96 VP8/90000\r\n"),
            "port 0, the relay's address, no direction / RTCP / ICE: {s}"
        );
    }

    /// Suspected bug: a section whose recipient's leg is rejected but whose m= port is live
    /// takes the "not ours" path and is copied as it came, so the sender's own address and
    /// port reach the recipient past the relay. Expected: port 0 like a rejected section.
    /// Not reached through the engine in a probe: an answer with a live port for a section
    /// the offer rejected gets relay ports on both sides (the offerer then sees a live port
    /// for the section it rejected), so this guards the rewrite's own contract.
    #[test]
    #[ignore = "suspected bug: a rejected leg under a live m= port is copied as it came"]
    fn a_rejected_leg_under_a_live_port_is_rejected() {
        let mut l = leg(30000);
        l.rejected = true;
        let s = run(OFFER, &SessionOut::default(), &[out(Some(l))]);
        assert!(s.contains("m=audio 0 RTP/AVP 8 0\r\n"), "{s}");
    }

    #[test]
    fn zero_hold_is_detected_unless_ice() {
        let hold = OFFER.replace("c=IN IP4 198.51.100.7", "c=IN IP4 0.0.0.0");
        assert!(is_zero_hold(&Sdp::parse(&hold).unwrap(), 0));
        assert!(!is_zero_hold(&Sdp::parse(OFFER).unwrap(), 0));
        let ice = hold.replace("a=sendrecv", "a=sendrecv\r\na=ice-ufrag:abc");
        assert!(!is_zero_hold(&Sdp::parse(&ice).unwrap(), 0));
        let ice = hold.replace("t=0 0", "t=0 0\r\na=ice-ufrag:abc");
        assert!(!is_zero_hold(&Sdp::parse(&ice).unwrap(), 0));
        // a media-level c= decides over the session's
        let media_zero = OFFER.replace("a=sendrecv", "c=IN IP4 0.0.0.0\r\na=sendrecv");
        assert!(is_zero_hold(&Sdp::parse(&media_zero).unwrap(), 0));
        let v6 = OFFER.replace("c=IN IP4 198.51.100.7", "c=IN IP6 ::");
        assert!(is_zero_hold(&Sdp::parse(&v6).unwrap(), 0));
    }

    #[test]
    fn zero_hold_keeps_the_zero_address_and_holds_the_direction() {
        let hold = OFFER.replace("c=IN IP4 198.51.100.7", "c=IN IP4 0.0.0.0");
        let s = run(&hold, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(s.contains("c=IN IP4 0.0.0.0\r\n") && !s.contains("203.0.113.1"), "{s}");
        assert!(s.contains("m=audio 30000 ") && s.contains("a=sendonly\r\n") && !s.contains("a=sendrecv"), "{s}");
        let recv = hold.replace("a=sendrecv", "a=recvonly");
        assert!(run(&recv, &SessionOut::default(), &[out(Some(leg(30000)))]).contains("a=inactive\r\n"));
        // no direction at all: the held one is added
        let none = hold.replace("a=sendrecv\r\n", "");
        assert!(run(&none, &SessionOut::default(), &[out(Some(leg(30000)))]).contains("a=sendonly\r\n"));
        // `replace: zero address`: the relay's address, still held
        let sess = SessionOut { replace_zero_address: true, ..Default::default() };
        let s = run(&hold, &sess, &[out(Some(leg(30000)))]);
        assert!(s.contains("c=IN IP4 203.0.113.1\r\n") && !s.contains("0.0.0.0"), "{s}");
        assert!(s.contains("a=sendonly\r\n"), "{s}");
    }

    #[test]
    fn direction_is_added_only_without_a_session_level_one() {
        let none = OFFER.replace("a=sendrecv\r\n", "");
        assert!(run(&none, &SessionOut::default(), &[out(Some(leg(30000)))]).contains("a=sendrecv\r\n"));
        let session = none.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
        let s = run(&session, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(!s.contains("a=sendrecv") && s.contains("t=0 0\r\na=recvonly\r\n"), "{s}");
    }

    #[test]
    fn origin_and_session_name_replaced_when_asked() {
        let sess = SessionOut {
            origin_line: Some("o=relay 9 9 IN IP4 203.0.113.1".into()),
            session_name_line: Some("s=relayed".into()),
            ..Default::default()
        };
        let s = run(OFFER, &sess, &[out(Some(leg(30000)))]);
        assert!(s.starts_with("v=0\r\no=relay 9 9 IN IP4 203.0.113.1\r\ns=relayed\r\nc="), "{s}");
    }

    #[test]
    fn ipv6_relay_address() {
        let l = leg_at("audio", "2001:db8::1", 30000, Some("[2001:db8::7]:4000"));
        let s = run(OFFER, &SessionOut::default(), &[out(Some(l))]);
        assert!(s.contains("\r\nc=IN IP6 2001:db8::1\r\n"), "{s}");
        let v6 = OFFER.replace("c=IN IP4 198.51.100.7", "c=IN IP6 2001:db8::7");
        let s = run(&v6, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(s.contains("\r\nc=IN IP4 203.0.113.1\r\n") && !s.contains("IP6 2001"), "{s}");
    }

    #[test]
    fn ice_is_stripped_everywhere() {
        let text = OFFER
            .replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\na=ice-options:trickle\r\n")
            .replace("a=sendrecv\r\n", "a=sendrecv\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=candidate:1 1 UDP 1 1.2.3.4 4000 typ host\r\na=end-of-candidates\r\n");
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(!s.contains("ice") && !s.contains("candidate"), "{s}");
    }

    #[test]
    fn relay_ice_lines_replace_the_senders_unless_passed_through() {
        let text = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n").replace(
            "a=sendrecv\r\n",
            "a=sendrecv\r\na=ice-ufrag:u\r\na=candidate:1 1 UDP 1 1.2.3.4 4000 typ host\r\n",
        );
        let mut m = out(Some(leg(30000)));
        m.ice.lines = vec!["a=ice-ufrag:relay".into(), "a=candidate:x 1 UDP 2 203.0.113.1 30000 typ host".into()];
        let sess = SessionOut { ice_lite: true, ..Default::default() };
        let s = run(&text, &sess, &[m.clone()]);
        assert!(!s.contains("a=ice-ufrag:u\r\n") && !s.contains("1.2.3.4"), "the sender's are gone: {s}");
        assert!(s.contains("t=0 0\r\na=ice-lite\r\nm=audio"), "the relay's ice-lite, once: {s}");
        assert_eq!(s.matches("a=ice-lite").count(), 1, "{s}");
        assert!(
            s.ends_with("a=rtcp:30001\r\na=ice-ufrag:relay\r\na=candidate:x 1 UDP 2 203.0.113.1 30000 typ host\r\n")
        );
        // passthrough: the sender's stay (session level too), the relay's are added
        m.ice.keep_sender = true;
        let sess = SessionOut { keep_session_ice: true, ..Default::default() };
        let s = run(&text, &sess, &[m]);
        assert!(s.contains("a=ice-lite\r\n") && s.contains("a=ice-ufrag:u\r\n") && s.contains("1.2.3.4 4000"), "{s}");
        assert!(s.contains("a=ice-ufrag:relay\r\n"), "{s}");
    }

    #[test]
    fn payload_types_dropped_take_their_attributes_along() {
        let text = OFFER.replace(
            "m=audio 4000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n",
            "m=audio 4000 RTP/AVP 96 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
             a=rtcp-fb:96 nack\r\na=rtcp-fb:* ccm fir\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap\r\n",
        );
        let mut m = out(Some(leg(30000)));
        m.fmts = vec!["8".into(), "101".into()];
        m.proto = Some("RTP/SAVP".into());
        let s = run(&text, &SessionOut::default(), &[m]);
        assert!(s.contains("m=audio 30000 RTP/SAVP 8 101\r\n"), "{s}");
        assert!(!s.contains(":96"), "{s}");
        assert!(
            s.contains("a=rtcp-fb:* ccm fir\r\n") && s.contains("a=rtpmap:101 telephone-event/8000\r\na=rtpmap\r\n")
        );
        assert!(s.contains("a=rtpmap:8 PCMA/8000\r\n"), "a static type gets its rtpmap: {s}");
    }

    #[test]
    fn crypto_lines_replaced_only_when_given() {
        let text = OFFER.replace("a=sendrecv", "a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:old");
        let s = run(&text, &SessionOut::default(), &[out(Some(leg(30000)))]);
        assert!(s.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:old\r\n"), "{s}");
        let mut m = out(Some(leg(30000)));
        m.crypto = Some(vec!["a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:new".into()]);
        let s = run(&text, &SessionOut::default(), &[m]);
        assert!(!s.contains("inline:old"), "{s}");
        assert!(s.ends_with("a=rtcp:30001\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:new\r\n"), "{s}");
    }

    #[test]
    fn a_leg_of_another_media_type_is_not_used() {
        let s = run(OFFER, &SessionOut::default(), &[out(Some(leg_at("video", "203.0.113.1", 30000, None)))]);
        assert!(s.contains("m=audio 4000 RTP/AVP 8 0\r\nc=IN IP4 198.51.100.7\r\n"), "as it came, own address: {s}");
        // (the session c= still names the leg's address: `first_relayed` does not check the
        // media type; harmless, every section then carries its own c=)
        assert!(s.contains("\r\nc=IN IP4 203.0.113.1\r\nt=0 0"), "{s}");
    }
}
