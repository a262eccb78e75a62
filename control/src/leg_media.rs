//! What a party's SDP says about the media of one of its sections, for counting and
//! reporting: its codecs (for the call detail record) and the payload type of its RFC 4733
//! telephone-events (for the data plane to count DTMF). Read from the last SDP the party
//! sent (the monologue's kept body), so no state is added to the call for it.

use crate::call::Call;
use crate::sdp::{MLine, Media};

/// One media section of a party's SDP, as the relay reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionMedia {
    /// Encoding names in the m= line's order (`PCMU/8000`, `opus/48000`, ...), the
    /// telephone-event included; payload types without an rtpmap or a static
    /// assignment appear as their number.
    pub codecs: Vec<String>,
    pub telephone_event_pt: Option<u8>,
}

/// Media section `index` (from 0) of the SDP text `body`; None when it has no such
/// section. Lines that do not parse are skipped: this never fails a call.
pub fn section(body: &str, index: usize) -> Option<SectionMedia> {
    let mut current: Option<Media> = None;
    let mut n = 0usize;
    for raw in body.lines() {
        let line = raw.trim_end_matches('\r');
        if line.starts_with("m=") {
            if n == index + 1 {
                break;
            }
            n += 1;
            current = (n == index + 1).then(|| MLine::parse(line).ok()).flatten().map(|m| Media {
                raw_m: line.to_string(),
                m,
                lines: Vec::new(),
            });
            if n == index + 1 && current.is_none() {
                return None;
            }
        } else if let Some(m) = current.as_mut() {
            m.lines.push(line.to_string());
        }
    }
    let m = current?;
    let mut out = SectionMedia::default();
    for pt in &m.m.fmts {
        match m.rtpmap(pt) {
            Some((name, rate)) => {
                if name.eq_ignore_ascii_case("telephone-event") && out.telephone_event_pt.is_none() {
                    out.telephone_event_pt = pt.parse().ok().filter(|p: &u8| *p < 128);
                }
                out.codecs.push(format!("{name}/{rate}"));
            }
            None => out.codecs.push(pt.clone()),
        }
    }
    Some(out)
}

/// Section `index` of the last SDP party `mono` of `call` sent (None: it sent none yet).
pub fn of_party(call: &Call, mono: usize, index: usize) -> Option<SectionMedia> {
    let body = &call.monologues.get(mono)?.origin.as_ref()?.last_body;
    section(body, index)
}

/// The telephone-event payload type the party `mono` sends with on section `index`: its
/// own SDP's (parties send what they announce, in practice), else its counterpart's (the
/// one RFC 3264 says a sender uses).
pub fn telephone_event_pt(call: &Call, mono: usize, index: usize) -> Option<u8> {
    let own = of_party(call, mono, index).and_then(|s| s.telephone_event_pt);
    own.or_else(|| {
        let other = call.monologues.get(mono)?.counterpart?;
        of_party(call, other, index)?.telephone_event_pt
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "v=0\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
        m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
        m=audio 4004 RTP/AVP 111 126 13\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:126 TELEPHONE-EVENT/48000\r\n";

    #[test]
    fn codecs_and_the_telephone_event_of_each_section() {
        let a = section(BODY, 0).unwrap();
        assert_eq!(a.codecs, ["PCMU/8000", "PCMA/8000", "telephone-event/8000"]);
        assert_eq!(a.telephone_event_pt, Some(101));
        let v = section(BODY, 1).unwrap();
        assert_eq!((v.codecs.as_slice(), v.telephone_event_pt), (&["H264/90000".to_string()][..], None));
        let o = section(BODY, 2).unwrap();
        assert_eq!(o.codecs, ["opus/48000", "TELEPHONE-EVENT/48000", "CN/8000"]);
        assert_eq!(o.telephone_event_pt, Some(126));
        assert_eq!(section(BODY, 3), None);
        assert_eq!(section("garbage\nm=nonsense", 0), None);
        assert_eq!(section("", 0), None);
    }
}
