//! rtpengine's `loop-protect`: with the flag, the relay marks the SDP it writes with
//! `a=rtpengine:<instance id>` (session level); an SDP that comes back carrying the mark
//! (the proxy routed the call through this relay again) is answered unchanged and not
//! processed, so one call does not take the relay's ports twice in a loop.

use std::sync::OnceLock;

use crate::sdp::Sdp;

/// This process's instance id: 12 random hex digits (rtpengine's `rtpe_instance_id`).
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| rand::random::<[u8; 6]>().iter().map(|b| format!("{b:02x}")).collect())
}

/// The session-level mark.
pub fn mark() -> String {
    format!("a=rtpengine:{}", instance_id())
}

/// The SDP already went through this relay (it carries the mark).
pub fn is_duplicate(sdp: &Sdp) -> bool {
    let m = mark();
    sdp.session.contains(&m)
}

/// The SDP as it came (lines and line ending kept).
pub fn unchanged(sdp: &Sdp) -> String {
    let mut s = String::new();
    let lines =
        sdp.session.iter().chain(sdp.media.iter().flat_map(|m| std::iter::once(&m.raw_m).chain(m.lines.iter())));
    for l in lines {
        s += l;
        s += sdp.eol;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_recognised_and_the_sdp_kept() {
        assert_eq!(instance_id().len(), 12);
        assert!(instance_id().bytes().all(|b| b.is_ascii_hexdigit()));
        let text =
            format!("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n{}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=x\r\n", mark());
        let sdp = Sdp::parse(&text).unwrap();
        assert!(is_duplicate(&sdp));
        assert_eq!(unchanged(&sdp), text);
        let other = Sdp::parse(&text.replace(instance_id(), "000000000000")).unwrap();
        assert!(!is_duplicate(&other));
    }
}
