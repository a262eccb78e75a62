//! Rewriting an SDP for its recipient, line-preserving.
//!
//! Only the lines the relay owns change: o= (replace flags), s= (session-name), c=, the
//! m= port / protocol / payload list, a=rtcp, a=rtcp-mux, direction on hold, ICE, and
//! rtpmap/fmtp/rtcp-fb of payload types that were stripped. Everything else is copied as
//! it came, in the order it came.

use std::net::IpAddr;

use crate::call::Leg;
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
}

#[derive(Debug, Clone, Default)]
pub struct SessionOut {
    pub origin_line: Option<String>,
    pub session_name_line: Option<String>,
    pub replace_zero_address: bool,
    pub media_address: Option<IpAddr>,
}

const ICE_ATTRS: [&str; 8] = [
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "candidate",
    "remote-candidates",
    "end-of-candidates",
];

fn is_ice(line: &str) -> bool {
    attr_name(line).is_some_and(|n| ICE_ATTRS.contains(&n))
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
        Some((i, m)) if !keep_zero.get(i).copied().unwrap_or(false) => {
            m.leg.as_ref().map(|l| Connection::line_for(addr_of(l)))
        }
        _ => orig_session_c.clone(),
    };
    let mut out: Vec<String> = Vec::with_capacity(sdp.session.len() + 16 * sdp.media.len());
    for l in &sdp.session {
        if l.starts_with("o=") {
            out.push(session.origin_line.clone().unwrap_or_else(|| l.clone()));
        } else if l.starts_with("s=") {
            out.push(session.session_name_line.clone().unwrap_or_else(|| l.clone()));
        } else if l.starts_with("c=") {
            out.push(new_session_c.clone().unwrap_or_else(|| l.clone()));
        } else if is_ice(l) {
            continue;
        } else {
            out.push(l.clone());
        }
    }
    let session_dir = find_direction(&sdp.session);
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
                if l.starts_with("c=") {
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
        let c_line = if keep_zero[i] {
            sdp.effective_connection(i).map(|c| format!("c=IN {} {}", c.family, c.addr)).unwrap_or(c_line)
        } else {
            c_line
        };
        mline.port = leg.port;
        out.push(mline.emit());
        let mut wrote_c = false;
        let need_c = !has_media_c && new_session_c.as_deref() != Some(c_line.as_str());
        let mut dir_seen = false;
        let is_rtp = mline.is_rtp();
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
            if is_ice(l) || matches!(attr_name(l), Some("rtcp" | "rtcp-mux")) {
                continue;
            }
            if mo.crypto.is_some() && attr_name(l) == Some("crypto") {
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
        if is_rtp {
            let rtcp_port = if mo.mux { leg.port } else { leg.port.wrapping_add(1) };
            out.push(format!("a=rtcp:{rtcp_port}"));
            if mo.mux {
                out.push("a=rtcp-mux".into());
            }
        }
        if let Some(lines) = &mo.crypto {
            out.extend(lines.iter().cloned());
        }
    }
    let mut s = String::with_capacity(out.iter().map(|l| l.len() + 2).sum());
    for l in out {
        s += &l;
        s += sdp.eol;
    }
    s
}

/// Direction a party on legacy hold (c=0.0.0.0) ends up with.
fn held(d: &str) -> &'static str {
    match d {
        "sendrecv" | "sendonly" => "sendonly",
        _ => "inactive",
    }
}
