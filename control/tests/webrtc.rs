//! A browser ↔ relay ↔ SIP phone call through the engine with the flag strings of the
//! most copied Kamailio WebRTC-to-SIP config (sent raw as `rtpp-flags`), in both call
//! directions: the DTLS role each relay socket gets is the one the SDP sent to that party
//! announced, and it is decided when that SDP is produced (rtpengine issue #2145).

use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::{Engine, EngineConfig};
use rules::dataplane::{FlowRule, MemoryDataPlane};
use rules::webrtc::DtlsRole;

const CHROME: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 54609 UDP/TLS/RTP/SAVPF 111 0 8\r\n\
    c=IN IP4 198.51.100.77\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=candidate:1 1 udp 2122260223 198.51.100.77 54609 typ host\r\na=ice-ufrag:a9Hg\r\n\
    a=ice-pwd:G8cJkzGxkFu3PU1O8qBsjd2T\r\na=ice-options:trickle\r\n\
    a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
    a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

const PHONE: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.8\r\ns=-\r\nc=IN IP4 198.51.100.8\r\nt=0 0\r\n\
    m=audio 5000 RTP/AVP 0 8\r\na=sendrecv\r\n";

/// The config's flags towards the phone and towards the browser.
const TO_PHONE: &str = "replace-origin replace-session-connection via-branch=extra ICE=remove DTLS=off RTP/AVP \
                        rtcp-mux-demux address-family=IP4 trust-address";
const TO_BROWSER: &str = "replace-origin replace-session-connection via-branch=extra ICE=force DTLS=passive \
                          UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require SDES-off generate-mid";

fn engine() -> (Engine, Arc<MemoryDataPlane>) {
    let dp = Arc::new(MemoryDataPlane::default());
    let mut e = Engine::new(EngineConfig::default(), dp.clone());
    e.set_dtls_identity(control::dtls_sdp::test_identity());
    (e, dp)
}

fn cmd(e: &mut Engine, c: &str, from: &str, to: Option<&str>, sdp: &str, rtpp: &str) -> String {
    let mut r = Value::dict();
    r.insert("command", c.into());
    r.insert("call-id", "webrtc".into());
    r.insert("from-tag", from.into());
    if let Some(t) = to {
        r.insert("to-tag", t.into());
    }
    r.insert("sdp", sdp.into());
    r.insert("rtpp-flags", rtpp.into());
    let v = e.command(&r, 1000, 1_700_000_000);
    assert_eq!(v.get("result").and_then(Value::as_str), Some("ok"), "{c}: {v:?}");
    v.get("sdp").and_then(Value::as_str).unwrap().to_string()
}

fn port_of(sdp: &str) -> u16 {
    let m = sdp.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    m.split(' ').nth(1).unwrap().parse().unwrap()
}

fn rule(dp: &MemoryDataPlane, port: u16) -> FlowRule {
    let s: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    dp.state.lock().unwrap().open.get(&s).cloned().flatten().expect("a rule on the socket")
}

fn setup(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=setup:"))
}

#[test]
fn browser_calls_phone() {
    let (mut e, dp) = engine();
    let to_phone = cmd(&mut e, "offer", "browser", None, CHROME, TO_PHONE);
    assert!(to_phone.contains("m=audio") && to_phone.contains(" RTP/AVP 111 0 8"), "{to_phone}");
    assert!(!to_phone.contains("a=fingerprint") && !to_phone.contains("a=setup"), "{to_phone}");
    // the browser has not been answered: the relay must not start a handshake towards it
    let to_browser = cmd(&mut e, "answer", "browser", Some("phone"), PHONE, TO_BROWSER);
    assert_eq!(setup(&to_browser), Some("passive"), "{to_browser}");
    assert!(to_browser.contains(" UDP/TLS/RTP/SAVPF "), "{to_browser}");
    assert!(to_browser.contains("a=fingerprint:sha-256 "), "{to_browser}");
    // the browser gets its own media ID back although the phone's answer has none
    assert!(to_browser.contains("a=mid:0\r\n"), "{to_browser}");
    let browser_socket = rule(&dp, port_of(&to_browser));
    let d = browser_socket.dtls.expect("the browser's socket does DTLS");
    assert_eq!(d.role, DtlsRole::Passive, "what the answer told the browser");
    assert!(browser_socket.srtp_in.is_none() && browser_socket.srtp_out.is_none(), "keys from the handshake");
    let phone_socket = rule(&dp, port_of(&to_phone));
    assert!(phone_socket.dtls.is_none() && phone_socket.srtp_in.is_none(), "plain RTP to the phone");
}

#[test]
fn before_the_answer_the_browser_socket_has_no_role() {
    let (mut e, dp) = engine();
    cmd(&mut e, "offer", "browser", None, CHROME, TO_PHONE);
    let state = dp.state.lock().unwrap();
    assert!(!state.open.is_empty());
    assert!(state.open.values().flatten().all(|r| r.dtls.is_none()), "no DTLS role before the browser is answered");
}

#[test]
fn phone_calls_browser() {
    let (mut e, dp) = engine();
    let to_browser = cmd(&mut e, "offer", "phone", None, PHONE, TO_BROWSER);
    assert_eq!(setup(&to_browser), Some("actpass"), "{to_browser}");
    assert!(!to_browser.contains("a=crypto"), "SDES-off: {to_browser}");
    assert!(to_browser.contains("a=mid:1") && to_browser.contains("a=rtcp-mux"), "{to_browser}");
    // actpass: the relay waits for the browser's ClientHello
    assert_eq!(rule(&dp, port_of(&to_browser)).dtls.unwrap().role, DtlsRole::Passive);
    let answer = CHROME.replace("a=setup:actpass", "a=setup:active").replace("a=ice-options:trickle\r\n", "");
    let to_phone = cmd(&mut e, "answer", "phone", Some("browser"), &answer, TO_PHONE);
    assert!(to_phone.contains(" RTP/AVP ") && !to_phone.contains("a=setup"), "{to_phone}");
    let d = rule(&dp, port_of(&to_browser)).dtls.unwrap();
    assert_eq!(d.role, DtlsRole::Passive, "the browser is the client");
    assert!(d.remote_fingerprint.is_some());
    // a browser answering passive makes the relay the client
    let (mut e, dp) = engine();
    let to_browser = cmd(&mut e, "offer", "phone", None, PHONE, TO_BROWSER);
    let answer = CHROME.replace("a=setup:actpass", "a=setup:passive");
    cmd(&mut e, "answer", "phone", Some("browser"), &answer, TO_PHONE);
    assert_eq!(rule(&dp, port_of(&to_browser)).dtls.unwrap().role, DtlsRole::Active);
}

#[test]
fn a_reinvite_keeps_the_association_and_a_new_fingerprint_restarts_it() {
    let (mut e, dp) = engine();
    cmd(&mut e, "offer", "browser", None, CHROME, TO_PHONE);
    let to_browser = cmd(&mut e, "answer", "browser", Some("phone"), PHONE, TO_BROWSER);
    let first = rule(&dp, port_of(&to_browser)).dtls.unwrap();
    let fp1 = to_browser.lines().find(|l| l.starts_with("a=fingerprint")).unwrap().to_string();
    cmd(&mut e, "offer", "browser", Some("phone"), CHROME, TO_PHONE);
    let again = cmd(&mut e, "answer", "browser", Some("phone"), PHONE, TO_BROWSER);
    assert_eq!(rule(&dp, port_of(&again)).dtls.unwrap(), first, "same role, identity, fingerprint, generation");
    assert!(again.contains(&fp1), "the call keeps its certificate");
    let new_cert = CHROME.replace("D2:FA:0E", "D2:FA:0F");
    cmd(&mut e, "offer", "browser", Some("phone"), &new_cert, TO_PHONE);
    let after = cmd(&mut e, "answer", "browser", Some("phone"), PHONE, TO_BROWSER);
    assert_eq!(rule(&dp, port_of(&after)).dtls.unwrap().generation, first.generation + 1, "DTLS restart");
}

#[test]
fn loop_protect_marks_and_answers_a_looped_sdp_unchanged() {
    let (mut e, dp) = engine();
    let out = cmd(&mut e, "offer", "a", None, PHONE, "loop-protect");
    let mark = format!("a=rtpengine:{}", control::loop_protect::instance_id());
    assert!(out.contains(&format!("{mark}\r\n")), "{out}");
    let sockets = dp.state.lock().unwrap().open.len();
    // the proxy sends the relay's own SDP back to it: nothing is allocated
    let mut r = Value::dict();
    r.insert("command", "offer".into());
    r.insert("call-id", "looped".into());
    r.insert("from-tag", "x".into());
    r.insert("sdp", out.as_str().into());
    r.insert("flags", Value::List(vec!["loop-protect".into()]));
    let v = e.command(&r, 1000, 0);
    assert_eq!(v.get("sdp").and_then(Value::as_str), Some(out.as_str()));
    assert_eq!(dp.state.lock().unwrap().open.len(), sockets);
    assert!(!e.calls.contains_key("looped"));
}

#[test]
fn a_call_keeps_the_certificate_it_advertised() {
    let (mut e, dp) = engine();
    cmd(&mut e, "offer", "browser", None, CHROME, TO_PHONE);
    let to_browser = cmd(&mut e, "answer", "browser", Some("phone"), PHONE, TO_BROWSER);
    let fp = |s: &str| s.lines().find(|l| l.starts_with("a=fingerprint:")).unwrap().to_string();
    // the certificate is renewed
    let mut renewed = (*control::dtls_sdp::test_identity()).clone();
    renewed.cert_der = b"the renewed certificate".to_vec();
    // (a dummy: any 32 bytes other than the first certificate's SHA-256)
    renewed.fingerprint.value =
        control::dtls_sdp::fingerprint_of(&renewed, rules::webrtc::HashFunction::Sha384).value[..32].to_vec();
    let renewed = Arc::new(renewed);
    e.set_dtls_identity(renewed.clone());
    cmd(&mut e, "offer", "browser", Some("phone"), CHROME, TO_PHONE);
    let again = cmd(&mut e, "answer", "browser", Some("phone"), PHONE, TO_BROWSER);
    assert_eq!(fp(&again), fp(&to_browser), "the running call keeps its certificate");
    assert_ne!(rule(&dp, port_of(&again)).dtls.unwrap().identity, renewed);
    // a new call advertises the renewed one
    let mut r = Value::dict();
    r.insert("command", "offer".into());
    r.insert("call-id", "second".into());
    r.insert("from-tag", "p".into());
    r.insert("sdp", PHONE.into());
    r.insert("rtpp-flags", TO_BROWSER.into());
    let v = e.command(&r, 1000, 0);
    let out = v.get("sdp").and_then(Value::as_str).unwrap();
    assert_eq!(fp(out), format!("a=fingerprint:{}", renewed.fingerprint));
}
