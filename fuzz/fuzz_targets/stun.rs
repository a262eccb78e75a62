#![no_main]
//! Arbitrary datagrams at the ICE-lite agent of a relay socket whose peer already passed a
//! check and was nominated: never a panic; only a check that authenticates is answered
//! with success, and only it changes who the peer is; an error response is authentic and
//! changes nothing; a drop writes nothing and changes nothing.
//! Seeds (fuzz/seeds/stun/): RFC 5769's three short-term vectors, whose credentials the
//! rule below uses, and Chrome-style checks made with them.
use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use relay_core::ice::{IceLite, StunOutcome};
use relay_core::stun::{self, attr, Attr, Class, StunMessage, StunWriter, BINDING};
use rules::webrtc::IceRule;

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
/// Within the nominated peer's consent (checked at 0).
const NOW: u64 = 10_000_000;

fuzz_target!(|data: &[u8]| {
    let rule = IceRule {
        local_ufrag: "evtj".into(),
        local_pwd: PASSWORD.into(),
        remote_ufrag: Some("h6vY".into()),
        remote_pwd: Some("remote-password-unused".into()),
    };
    let key = stun::short_term_key(PASSWORD);
    let (peer, src): (SocketAddr, SocketAddr) =
        ("192.0.2.1:1000".parse().unwrap(), "[2001:db8::9]:4000".parse().unwrap());
    let mut ice = IceLite::new(&rule);
    let mut out = vec![];
    let mut check = vec![];
    StunWriter::new(&mut check, Class::Request, BINDING, &[7; 12])
        .attr(&Attr::Username(b"evtj:h6vY"))
        .attr(&Attr::IceControlling(1))
        .attr(&Attr::UseCandidate)
        .message_integrity(&key)
        .fingerprint();
    assert_eq!(ice.handle(0, peer, &check, &mut out), StunOutcome::Answered { nominated: true });

    let outcome = ice.handle(NOW, src, data, &mut out);
    match outcome {
        StunOutcome::Answered { nominated } => {
            let m = StunMessage::new_checked(&out[..]).expect("a well-formed response");
            assert_eq!(
                (m.class(), m.verify_integrity(&key), m.verify_fingerprint()),
                (Class::Success, Some(true), Some(true))
            );
            assert_eq!(m.get(attr::XOR_MAPPED_ADDRESS), Some(Attr::XorMappedAddress(src)));
            assert!(ice.is_checked(src, NOW));
            assert_eq!(ice.peer(NOW), Some(if nominated { src } else { peer }));
            let req = StunMessage::new_checked(data).expect("an answered request is well-formed");
            assert_eq!(req.verify_integrity(&key), Some(true));
        }
        StunOutcome::ErrorResponse(code) => {
            let m = StunMessage::new_checked(&out[..]).expect("a well-formed error response");
            assert_eq!(
                (m.class(), m.verify_integrity(&key), m.verify_fingerprint()),
                (Class::Error, Some(true), Some(true))
            );
            assert!(matches!(m.get(attr::ERROR_CODE), Some(Attr::ErrorCode { code: c, .. }) if c == code));
            assert!(!ice.is_checked(src, NOW));
            assert_eq!(ice.peer(NOW), Some(peer));
        }
        StunOutcome::Dropped(_) => {
            assert!(out.is_empty());
            assert!(!ice.is_checked(src, NOW));
            assert_eq!(ice.peer(NOW), Some(peer));
        }
    }
});
