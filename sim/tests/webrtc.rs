//! A WebRTC caller (ICE + DTLS-SRTP) and a plain RTP phone through the in-memory relay:
//! the real engine sets the call up over ng, the WebRTC leg's rule then carries ICE and
//! DTLS (set on the data plane directly until the control plane writes them), and the
//! browser side is the simulated peer of sim/src/webrtc.rs with the core's own DTLS
//! module as its client.
//!
//! Decided here (docs in core/src/flow/webrtc.rs): on an ICE socket DTLS is accepted
//! only from an address that passed a check (RFC 8445 §12.1); DTLS from anywhere else is
//! dropped and not answered, so a forged source cannot make the relay send flights.
//!
//! The dual-stack call is set up wholly by the engine (the Kamailio config's flags, ICE
//! and DTLS from the SDPs): the browser's leg has a socket per address of the interface,
//! and media towards the browser leaves from the one its ICE nominated.

use std::net::SocketAddr;
use std::sync::Arc;

use control::bencode::Value;
use control::engine::EngineConfig;
use control::interface::Interface;
use relay_core::dtls::generate_identity;
use relay_core::ice::CONSENT_TIMEOUT_US;
use rules::addrpolicy::AddressPolicy;
use rules::dataplane::{DataPlane, DtlsIdentity, DtlsRole, FlowCounters, FlowRule};
use sim::endpoint::Direction;
use sim::webrtc::Received;
use sim::{Endpoint, Relay, WebRtcPeer};

const RELAY_IP: &str = "203.0.113.1";
const CALL_ID: &str = "webrtc-call-1";
const PTIME_MS: u64 = 20;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn relay() -> Relay {
    let ip = RELAY_IP.parse().unwrap();
    let media_policy = AddressPolicy { own: vec![ip], own_ports: vec![(30000, 40000)], ..AddressPolicy::default() };
    let cfg =
        EngineConfig { interfaces: vec![Interface::parse(RELAY_IP).unwrap()], media_policy, ..Default::default() };
    Relay::new(cfg, 7)
}

struct Call {
    relay: Relay,
    browser: WebRtcPeer,
    phone: Endpoint,
    /// The relay socket facing the browser, and the one facing the phone.
    a_sock: SocketAddr,
    b_sock: SocketAddr,
    relay_identity: Arc<DtlsIdentity>,
    sent: u64,
}

#[derive(Debug, Default)]
struct Heard {
    by_browser: Vec<String>,
    by_phone: Vec<String>,
    checks_ok: usize,
}

impl Call {
    /// Offer from the browser, answer from the phone (plain SDP through the engine), then
    /// the browser's leg becomes WebRTC with the relay in `role`.
    fn new(role: DtlsRole) -> Call {
        let mut relay = relay();
        let mut browser = WebRtcPeer::new("browser", addr("198.51.100.10:50000"), 0xb7);
        let mut phone = Endpoint::new("phone", addr("192.0.2.20:5000"), 0xf0);
        let ng = |relay: &mut Relay, cmd: &str, extra: &[(&str, &str)]| {
            let mut req = Value::dict();
            req.insert("command", Value::str(cmd));
            req.insert("call-id", Value::str(CALL_ID));
            for (k, v) in extra {
                req.insert(k, Value::str(v));
            }
            let r = relay.ng(&req);
            assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
            r.get("sdp").and_then(Value::as_str).unwrap().to_string()
        };
        let offer = browser.media.sdp(Direction::SendRecv);
        let out = ng(&mut relay, "offer", &[("from-tag", "br"), ("sdp", &offer)]);
        phone.learn(&out);
        let answer = phone.sdp(Direction::SendRecv);
        let out = ng(&mut relay, "answer", &[("from-tag", "br"), ("to-tag", "ph"), ("sdp", &answer)]);
        browser.media.learn(&out);
        let (a_sock, b_sock) = (browser.media.relay.unwrap(), phone.relay.unwrap());
        let relay_identity = Arc::new(generate_identity(Relay::UNIX_START, 30 * 86_400).unwrap());
        let dp = relay.dataplane();
        let rule = dp.rule(a_sock).expect("the engine's rule for the browser's socket");
        dp.apply(FlowRule {
            ice: Some(browser.relay_ice_rule()),
            dtls: Some(browser.relay_dtls_rule(&relay_identity, role)),
            ..rule
        })
        .unwrap();
        Call { relay, browser, phone, a_sock, b_sock, relay_identity, sent: 0 }
    }

    fn now_us(&self) -> u64 {
        self.relay.now_ms() * 1000
    }

    fn browser_sends(&mut self, datagrams: Vec<Vec<u8>>) {
        for d in datagrams {
            self.relay.send(self.browser.media.addr, self.a_sock, d);
        }
    }

    fn check(&mut self) {
        let r = self.browser.binding_request();
        self.browser_sends(vec![r]);
    }

    /// Runs `ms`, the browser answering DTLS as it goes; what each side received.
    fn run(&mut self, ms: u64) -> Heard {
        let mut h = Heard::default();
        let end = self.relay.now_ms() + ms;
        while self.relay.now_ms() < end {
            self.relay.run_for(5);
            let now = self.now_us();
            let resend = self.browser.dtls_timeout(now);
            self.browser_sends(resend);
            for d in self.relay.take_inbox(self.browser.media.addr) {
                match self.browser.receive(&d.payload, now) {
                    Received::CheckSucceeded => h.checks_ok += 1,
                    Received::Dtls(flights) => self.browser_sends(flights),
                    Received::Media(p) => h.by_browser.push(String::from_utf8(p).unwrap()),
                    r => panic!("the browser got {r:?}"),
                }
            }
            for d in self.relay.take_inbox(self.phone.addr) {
                let p = self.phone.open(&d.payload).expect("the phone gets plain RTP");
                h.by_phone.push(String::from_utf8(p).unwrap());
            }
        }
        h
    }

    /// Both sides talk for `n` packets (the browser only once it has keys: before, it
    /// sends plain RTP, which must not get through either).
    fn talk(&mut self, n: usize) -> Heard {
        let mut h = Heard::default();
        for _ in 0..n {
            self.sent += 1;
            let p = self.browser.media.rtp(format!("a{}", self.sent).as_bytes());
            self.relay.send(self.browser.media.addr, self.a_sock, p);
            let p = self.phone.rtp(format!("b{}", self.sent).as_bytes());
            self.relay.send(self.phone.addr, self.b_sock, p);
            let got = self.run(PTIME_MS);
            h.by_browser.extend(got.by_browser);
            h.by_phone.extend(got.by_phone);
            h.checks_ok += got.checks_ok;
        }
        let got = self.run(200);
        h.by_browser.extend(got.by_browser);
        h.by_phone.extend(got.by_phone);
        h
    }

    fn counters(&self, sock: SocketAddr) -> FlowCounters {
        self.relay.dataplane().counters(sock).unwrap()
    }
}

fn expect(prefix: &str, from: u64, to: u64) -> Vec<String> {
    (from..=to).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn browser_to_phone_after_check_and_handshake_and_until_consent_expires() {
    let mut c = Call::new(DtlsRole::Passive);
    let attacker = addr("198.51.100.66:50000");

    // before the check and the handshake: nothing either way
    let h = c.talk(10);
    assert!(h.by_browser.is_empty() && h.by_phone.is_empty(), "{h:?}");
    assert_eq!(c.counters(c.a_sock).drop_dtls_pending, 10);
    assert_eq!(c.counters(c.b_sock).drop_dtls_pending, 10);

    // a forged ClientHello: no check from that address, so dropped and not answered
    let hello = WebRtcPeer::new("x", attacker, 1).start_dtls(&c.relay_identity.fingerprint, 0);
    for d in hello {
        c.relay.spoof(attacker, c.a_sock, d);
    }
    c.run(100);
    assert!(c.relay.take_inbox(attacker).is_empty());
    assert!(c.counters(c.a_sock).drop_dtls >= 1);

    // the browser's check, then its handshake
    c.check();
    assert_eq!(c.run(50).checks_ok, 1);
    let now = c.now_us();
    let hello = c.browser.start_dtls(&c.relay_identity.fingerprint, now);
    c.browser_sends(hello);
    c.run(200);
    assert!(c.browser.keyed, "the handshake completed");
    let ca = c.counters(c.a_sock);
    assert_eq!((ca.stun_answered, ca.dtls_handshakes, ca.dtls_failed), (1, 1, 0));

    // media both ways, byte for byte, SRTP with the handshake's keys on the browser's leg
    let first = c.sent + 1;
    let h = c.talk(50);
    assert_eq!(h.by_phone, expect("a", first, c.sent));
    assert_eq!(h.by_browser, expect("b", first, c.sent));
    assert_eq!(c.counters(c.a_sock).latched_peer, Some(c.browser.media.addr));

    // a copy of the browser's SRTP from a forged source: dropped before any crypto
    let p = c.browser.media.rtp(b"forged");
    c.relay.spoof(attacker, c.a_sock, p);
    assert!(c.run(100).by_phone.is_empty());
    assert_eq!(c.counters(c.a_sock).drop_ice_unchecked, 1);

    // consent: the browser stops checking; media towards it stops when consent expires,
    // and what it still sends is refused
    c.relay.run_for(CONSENT_TIMEOUT_US / 1000);
    let h = c.talk(10);
    assert!(h.by_browser.is_empty() && h.by_phone.is_empty(), "{h:?}");
    assert_eq!(c.counters(c.b_sock).drop_no_consent, 10);
    assert_eq!(c.counters(c.a_sock).drop_ice_unchecked, 11);
    // a fresh check restores it (the keys were kept)
    c.check();
    c.run(50);
    let first = c.sent + 1;
    let h = c.talk(5);
    assert_eq!(h.by_phone, expect("a", first, c.sent));
    assert_eq!(h.by_browser, expect("b", first, c.sent));
}

#[test]
fn the_relay_as_dtls_client_sends_its_hello_to_the_checked_address() {
    let mut c = Call::new(DtlsRole::Active);
    let now = c.now_us();
    c.browser.accept_dtls(&c.relay_identity.fingerprint, now);
    // no check yet: the relay has nowhere to send its hello
    let h = c.run(2_000);
    assert!(!c.browser.keyed && h.by_browser.is_empty());
    c.check();
    c.run(1_000);
    assert!(c.browser.keyed, "the relay's hello went to the checked address and completed");
    assert_eq!(c.counters(c.a_sock).dtls_handshakes, 1);
    let first = c.sent + 1;
    let h = c.talk(20);
    assert_eq!(h.by_phone, expect("a", first, c.sent));
    assert_eq!(h.by_browser, expect("b", first, c.sent));
}

/// The relay's interface "default" on an IPv4 and an IPv6 address (`--interface=A
/// --interface=B`): with ICE the browser's leg advertises a host candidate on each.
const RELAY_IP6: &str = "2001:db8::1";

/// The flags of the most copied Kamailio WebRTC-to-SIP config, sent raw as rtpp-flags.
const TO_PHONE: &str = "replace-origin replace-session-connection ICE=remove DTLS=off RTP/AVP \
                        rtcp-mux-demux address-family=IP4 trust-address";
const TO_BROWSER: &str = "replace-origin replace-session-connection ICE=force DTLS=passive \
                          UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require SDES-off generate-mid";

impl Call {
    /// The whole call through the engine: the browser offers from IPv4 and IPv6 host
    /// candidates, the phone answers plain RTP, the relay answers the browser with its
    /// candidates on both addresses of the interface; the browser then does ICE and DTLS
    /// on the relay's IPv6 candidate only (it preferred IPv6), from its IPv6 address.
    fn dual_stack() -> Call {
        let (ip4, ip6) = (RELAY_IP.parse().unwrap(), RELAY_IP6.parse().unwrap());
        let media_policy = AddressPolicy { own: vec![ip4, ip6], own_ports: vec![(30000, 40000)], ..Default::default() };
        let interfaces = vec![Interface::parse(RELAY_IP).unwrap(), Interface::parse(RELAY_IP6).unwrap()];
        let mut relay = Relay::new(EngineConfig { interfaces, media_policy, ..Default::default() }, 7);
        let relay_identity = Arc::new(generate_identity(Relay::UNIX_START, 30 * 86_400).unwrap());
        relay.set_dtls_identity(relay_identity.clone());
        let (browser4, browser6) = (addr("198.51.100.10:50000"), addr("[2001:db8:b::10]:50000"));
        let mut browser = WebRtcPeer::new("browser", browser6, 0xb7);
        let mut phone = Endpoint::new("phone", addr("192.0.2.20:5000"), 0xf0);
        let ng = |relay: &mut Relay, cmd: &str, tags: &[(&str, &str)], sdp: &str, flags: &str| {
            let mut req = Value::dict();
            req.insert("command", Value::str(cmd));
            req.insert("call-id", Value::str(CALL_ID));
            for (k, v) in tags {
                req.insert(k, Value::str(v));
            }
            req.insert("sdp", Value::str(sdp));
            req.insert("rtpp-flags", Value::str(flags));
            let r = relay.ng(&req);
            assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
            r.get("sdp").and_then(Value::as_str).unwrap().to_string()
        };
        let offer = browser.offer_sdp(&[browser4, browser6]);
        let out = ng(&mut relay, "offer", &[("from-tag", "br")], &offer, TO_PHONE);
        phone.learn(&out);
        let answer = phone.sdp(Direction::SendRecv);
        let out = ng(&mut relay, "answer", &[("from-tag", "br"), ("to-tag", "ph")], &answer, TO_BROWSER);
        let candidates = browser.learn_answer(&out);
        assert_eq!(candidates.len(), 2, "a host candidate per address of the interface: {out}");
        assert!(candidates[0].is_ipv4(), "the leg's own socket first: {out}");
        let a_sock = *candidates.iter().find(|c| c.is_ipv6()).expect("an IPv6 candidate");
        browser.media.relay = Some(a_sock);
        let b_sock = phone.relay.unwrap();
        Call { relay, browser, phone, a_sock, b_sock, relay_identity, sent: 0 }
    }
}

#[test]
fn dual_stack_interface_the_browser_checks_and_keys_the_ipv6_candidate_media_both_ways() {
    let mut c = Call::dual_stack();
    let main_sock = c.relay.dataplane().rule(c.b_sock).unwrap().egress_rtp.unwrap();
    assert!(main_sock.is_ipv4(), "the phone's media is forwarded into the leg's IPv4 socket");
    c.check();
    assert_eq!(c.run(50).checks_ok, 1);
    let now = c.now_us();
    let fingerprint = c.relay_identity.fingerprint.clone();
    let hello = c.browser.start_dtls(&fingerprint, now);
    c.browser_sends(hello);
    c.run(200);
    assert!(c.browser.keyed, "the handshake on the IPv6 socket completed");
    let first = c.sent + 1;
    let h = c.talk(50);
    assert_eq!(h.by_phone, expect("a", first, c.sent), "browser -> phone");
    assert_eq!(h.by_browser, expect("b", first, c.sent), "phone -> browser, out of the IPv6 socket");
    let (c6, c4) = (c.counters(c.a_sock), c.counters(main_sock));
    assert_eq!((c6.stun_answered, c6.dtls_handshakes, c6.forwarded), (1, 1, 50));
    assert_eq!((c4.stun_answered, c4.dtls_handshakes, c4.packets), (0, 0, 0), "the IPv4 socket saw nothing");
    assert_eq!(c.counters(c.b_sock).forwarded, 50);
    assert_eq!(c.counters(c.b_sock).dropped, 0);
}
