//! Line-preserving SDP (RFC 8866) model.
//!
//! The relay must change only the lines it owns (c=, m= ports, o= with replace flags,
//! a=rtcp, direction, ICE) and leave every other line byte-for-byte as it came:
//! a=crypto, vendor attributes and anything we do not understand included. So an SDP
//! is kept as its lines, grouped into the session part and media sections, with a
//! parsed view of the few lines the relay reasons about.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpError(pub String);

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SdpError {}

/// Parsed m= line: `m=<media> <port>[/<count>] <proto> <fmt> ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MLine {
    pub media: String,
    pub port: u16,
    pub port_count: Option<u32>,
    pub proto: String,
    pub fmts: Vec<String>,
}

impl MLine {
    pub fn parse(line: &str) -> Result<MLine, SdpError> {
        let body = line.strip_prefix("m=").ok_or_else(|| SdpError(format!("not an m= line: {line:?}")))?;
        let mut it = body.split(' ');
        let media = it.next().filter(|s| !s.is_empty());
        let port = it.next();
        let proto = it.next();
        let (Some(media), Some(port), Some(proto)) = (media, port, proto) else {
            return Err(SdpError(format!("incomplete m= line: {line:?}")));
        };
        let (port, count) = match port.split_once('/') {
            Some((p, c)) => (p, Some(c.parse::<u32>().map_err(|_| SdpError(format!("bad port count in {line:?}")))?)),
            None => (port, None),
        };
        let port = port.parse::<u16>().map_err(|_| SdpError(format!("bad port in m= line: {line:?}")))?;
        Ok(MLine {
            media: media.to_string(),
            port,
            port_count: count,
            proto: proto.to_string(),
            fmts: it.map(str::to_string).collect(),
        })
    }

    pub fn emit(&self) -> String {
        let mut s = format!("m={} {}", self.media, self.port);
        if let Some(c) = self.port_count {
            s += &format!("/{c}");
        }
        s.push(' ');
        s += &self.proto;
        for f in &self.fmts {
            s.push(' ');
            s += f;
        }
        s
    }

    /// RTP-based transport (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, ...).
    pub fn is_rtp(&self) -> bool {
        self.proto.to_ascii_uppercase().contains("RTP/")
    }

    /// Carried over UDP datagrams the relay can forward (RTP or UDPTL/T.38).
    pub fn is_relayable(&self) -> bool {
        let p = self.proto.to_ascii_lowercase();
        self.is_rtp() || p == "udptl" || p == "udp"
    }
}

/// Parsed c= line: `c=IN IP4 <addr>` (a TTL or count suffix is tolerated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub family: String,
    pub addr: String,
}

impl Connection {
    pub fn parse(line: &str) -> Option<Connection> {
        let mut it = line.strip_prefix("c=")?.split_whitespace();
        if it.next()? != "IN" {
            return None;
        }
        let family = it.next()?.to_string();
        let addr = it.next()?.split('/').next()?.to_string();
        Some(Connection { family, addr })
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.addr.parse().ok()
    }

    pub fn is_zero(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    pub fn line_for(ip: IpAddr) -> String {
        format!("c=IN {} {}", family_of(ip), ip)
    }
}

pub fn family_of(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

/// One media section: its m= line and the lines after it up to the next m= line.
#[derive(Debug, Clone)]
pub struct Media {
    pub raw_m: String,
    pub m: MLine,
    pub lines: Vec<String>,
}

impl Media {
    pub fn connection(&self) -> Option<Connection> {
        self.lines.iter().find(|l| l.starts_with("c=")).and_then(|l| Connection::parse(l))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        attr_in(&self.lines, name)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// `a=rtcp:<port> [IN IP4 <addr>]`
    pub fn rtcp_port(&self) -> Option<u16> {
        self.attr("rtcp")?.split_whitespace().next()?.parse().ok()
    }

    /// rtpmap encoding of a payload type: `a=rtpmap:<pt> <name>/<rate>[/<ch>]`.
    pub fn rtpmap(&self, pt: &str) -> Option<(String, u32)> {
        for l in &self.lines {
            if let Some(rest) = l.strip_prefix("a=rtpmap:") {
                let (p, enc) = rest.split_once(' ')?;
                if p == pt {
                    let mut parts = enc.trim().split('/');
                    let name = parts.next()?.to_string();
                    let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                    return Some((name, rate));
                }
            }
        }
        let n: u8 = pt.parse().ok()?;
        static_payload(n).map(|(name, rate, _)| (name.to_string(), rate))
    }
}

/// A whole session description.
#[derive(Debug, Clone)]
pub struct Sdp {
    pub session: Vec<String>,
    pub media: Vec<Media>,
    /// Line ending of the input ("\r\n" per the RFC; "\n" is tolerated and kept).
    pub eol: &'static str,
}

impl Sdp {
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            if line.contains('\r') {
                return Err(SdpError(format!("SDP line {} contains a stray CR", i + 1)));
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_alphabetic() {
                return Err(SdpError(format!("malformed SDP line {}: {:?}", i + 1, truncate(line))));
            }
            if line.starts_with("m=") {
                media.push(Media { raw_m: line.to_string(), m: MLine::parse(line)?, lines: Vec::new() });
            } else if let Some(m) = media.last_mut() {
                m.lines.push(line.to_string());
            } else {
                session.push(line.to_string());
            }
        }
        if session.first().map(String::as_str) != Some("v=0") {
            return Err(SdpError("SDP does not start with v=0".into()));
        }
        if !session.iter().any(|l| l.starts_with("o=")) {
            return Err(SdpError("SDP has no o= line".into()));
        }
        Ok(Sdp { session, media, eol })
    }

    pub fn session_connection(&self) -> Option<Connection> {
        self.session.iter().find(|l| l.starts_with("c=")).and_then(|l| Connection::parse(l))
    }

    /// The c= in force for a media section: its own, else the session's.
    pub fn effective_connection(&self, idx: usize) -> Option<Connection> {
        self.media.get(idx).and_then(Media::connection).or_else(|| self.session_connection())
    }

    pub fn session_attr(&self, name: &str) -> Option<&str> {
        attr_in(&self.session, name)
    }

    /// Direction in force for a media section (media-level, else session-level, else sendrecv).
    pub fn direction(&self, idx: usize) -> &'static str {
        self.media
            .get(idx)
            .and_then(|m| find_direction(&m.lines))
            .or_else(|| find_direction(&self.session))
            .unwrap_or("sendrecv")
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for l in &self.session {
            s += l;
            s += self.eol;
        }
        for m in &self.media {
            s += &m.raw_m;
            s += self.eol;
            for l in &m.lines {
                s += l;
                s += self.eol;
            }
        }
        s
    }

    /// Text of everything but the o= line: what decides whether "the SDP changed"
    /// for `replace: SDP version`.
    pub fn body_without_origin(&self) -> String {
        self.to_text().lines().filter(|l| !l.starts_with("o=")).collect::<Vec<_>>().join("\n")
    }
}

pub const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

pub fn find_direction(lines: &[String]) -> Option<&'static str> {
    lines.iter().find_map(|l| DIRECTIONS.iter().find(|d| l.strip_prefix("a=") == Some(**d)).copied())
}

pub fn attr_in<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let rest = l.strip_prefix("a=")?.strip_prefix(name)?;
        if rest.is_empty() {
            Some("")
        } else {
            rest.strip_prefix(':')
        }
    })
}

/// Name of an attribute line (`a=rtpmap:0 PCMU/8000` -> `rtpmap`), None for non-a= lines.
pub fn attr_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("a=")?;
    Some(rest.split(':').next().unwrap_or(rest))
}

/// Static RTP payload types (RFC 3551): name, clock rate, channels.
pub fn static_payload(pt: u8) -> Option<(&'static str, u32, u8)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        25 => ("CelB", 90000, 1),
        26 => ("JPEG", 90000, 1),
        28 => ("nv", 90000, 1),
        31 => ("H261", 90000, 1),
        32 => ("MPV", 90000, 1),
        33 => ("MP2T", 90000, 1),
        34 => ("H263", 90000, 1),
        _ => return None,
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\nt=0 0\r\n\
        m=audio 2000 RTP/AVP 0 101\r\nc=IN IP4 198.51.100.1\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=x-vendor:keep me  exactly\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\r\n\
        m=message 28000 TCP/MSRP *\r\na=setup:active\r\n";

    #[test]
    fn parse_and_emit_is_byte_identical() {
        let sdp = Sdp::parse(OFFER).unwrap();
        assert_eq!(sdp.to_text(), OFFER);
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[0].m.fmts, vec!["0", "101"]);
        assert!(sdp.media[0].m.is_rtp());
        assert!(!sdp.media[1].m.is_relayable());
        assert_eq!(sdp.effective_connection(0).unwrap().addr, "198.51.100.1");
        assert_eq!(sdp.media[0].rtpmap("101"), Some(("telephone-event".into(), 8000)));
        assert_eq!(sdp.media[0].rtpmap("0"), Some(("PCMU".into(), 8000)));
        assert_eq!(sdp.direction(0), "sendrecv");
    }

    #[test]
    fn lf_only_is_kept() {
        let t = OFFER.replace("\r\n", "\n");
        assert_eq!(Sdp::parse(&t).unwrap().to_text(), t);
    }

    #[test]
    fn mline_odd_forms() {
        let m = MLine::parse("m=application 0 * ").unwrap();
        assert_eq!(m.proto, "*");
        let m = MLine::parse("m=video 5000/2 RTP/AVP 96").unwrap();
        assert_eq!((m.port, m.port_count), (5000, Some(2)));
        assert_eq!(m.emit(), "m=video 5000/2 RTP/AVP 96");
        assert!(MLine::parse("m=audio").is_err());
        assert!(MLine::parse("m=audio 99999 RTP/AVP 0").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Sdp::parse("").is_err());
        assert!(Sdp::parse("hello world").is_err());
        assert!(Sdp::parse("v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
        assert!(Sdp::parse("v=0\r\n").is_err());
        // truncated mid-line
        assert!(Sdp::parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=aud").is_err());
        // found by fuzz/sdp: a stray CR made re-serialisation unstable
        assert!(Sdp::parse("v=0\no=v=0\no=\r\r").unwrap_err().0.contains("stray CR"));
    }
}
