//! The agent against byte arrays: RFC 5769's request, a request laid out as Chrome sends
//! its checks, and hostile variations of both.

use super::*;
use crate::stun::tests::{SAMPLE_PASSWORD, SAMPLE_REQUEST};
use crate::test_support::{hex, Rng};

const LOCAL_UFRAG: &str = "evtj";
const REMOTE_UFRAG: &str = "h6vY";
/// Chrome's comprehension-optional GOOG-NETWORK-INFO (network id and cost).
const GOOG_NETWORK_INFO: u16 = 0xC057;

fn rule(remote: Option<&str>) -> IceRule {
    IceRule {
        local_ufrag: LOCAL_UFRAG.into(),
        local_pwd: SAMPLE_PASSWORD.into(),
        remote_ufrag: remote.map(Into::into),
        remote_pwd: remote.map(|_| "remote-password-not-used-by-a-lite-agent".into()),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A connectivity check with Chrome's attribute order: USERNAME, GOOG-NETWORK-INFO,
/// ICE-CONTROLLING, [USE-CANDIDATE], PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT.
fn chrome_check(username: &str, pwd: &str, txid: u8, use_candidate: bool) -> Vec<u8> {
    let mut out = vec![];
    let mut w = StunWriter::new(&mut out, Class::Request, BINDING, &[txid; 12]);
    w.attr(&Attr::Username(username.as_bytes()))
        .raw(GOOG_NETWORK_INFO, &[0, 1, 0, 10])
        .attr(&Attr::IceControlling(0x1234_5678_9abc_def0));
    if use_candidate {
        w.attr(&Attr::UseCandidate);
    }
    w.attr(&Attr::Priority(1_853_824_767)).message_integrity(&stun::short_term_key(pwd)).fingerprint();
    out
}

/// A check with a transaction ID of its own (a browser never reuses one: a repeated ID
/// from another address is a replayed copy).
fn check(use_candidate: bool) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(8);
    let txid = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).max(8);
    chrome_check("evtj:h6vY", SAMPLE_PASSWORD, txid, use_candidate)
}

/// The response in `out` is authentic: right class, transaction, integrity, fingerprint.
fn assert_response<'a>(out: &'a [u8], class: Class, txid: &TransactionId) -> StunMessage<&'a [u8]> {
    let m = StunMessage::new_checked(out).unwrap();
    assert_eq!((m.class(), m.method(), m.transaction_id()), (class, BINDING, txid));
    assert_eq!(m.verify_integrity(&stun::short_term_key(SAMPLE_PASSWORD)), Some(true));
    assert_eq!(m.verify_fingerprint(), Some(true));
    m
}

#[test]
fn a_chrome_check_is_answered_with_the_mapped_address() {
    for src in [addr("198.51.100.7:51234"), addr("[2001:db8::7]:51234")] {
        let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
        let mut out = vec![1, 2, 3];
        assert_eq!(ice.peer(0), None);
        let c = chrome_check("evtj:h6vY", SAMPLE_PASSWORD, 7, false);
        assert_eq!(ice.handle(1_000, src, &c, &mut out), StunOutcome::Answered { nominated: false });
        let m = assert_response(&out, Class::Success, &[7; 12]);
        assert_eq!(m.attrs().collect::<Vec<_>>()[0], Attr::XorMappedAddress(src));
        assert!(ice.is_checked(src, 1_000));
        assert!(!ice.is_checked(addr("198.51.100.7:51235"), 1_000));
        assert_eq!(ice.peer(1_000), Some(src));
    }
}

/// RFC 5769's sample request carries ICE-CONTROLLED: a peer that thinks it is controlled
/// too is told 487 Role Conflict, authentically, and nothing is recorded.
#[test]
fn the_rfc_5769_request_claims_the_controlled_role_and_gets_487() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let mut out = vec![];
    let src = addr("192.0.2.1:32853");
    assert_eq!(ice.handle(0, src, &hex(SAMPLE_REQUEST), &mut out), StunOutcome::ErrorResponse(487));
    let m = assert_response(&out, Class::Error, &hex(SAMPLE_REQUEST)[8..20].try_into().unwrap());
    assert_eq!(m.get(attr::ERROR_CODE), Some(Attr::ErrorCode { code: 487, reason: b"Role Conflict" }));
    assert!(!ice.is_checked(src, 0));
    assert_eq!(ice.peer(0), None);
}

#[test]
fn a_request_claiming_both_roles_is_a_bad_request() {
    let mut ice = IceLite::new(&rule(None));
    let mut req = vec![];
    StunWriter::new(&mut req, Class::Request, BINDING, &[1; 12])
        .attr(&Attr::Username(b"evtj:x"))
        .attr(&Attr::IceControlling(1))
        .attr(&Attr::IceControlled(2))
        .message_integrity(&stun::short_term_key(SAMPLE_PASSWORD))
        .fingerprint();
    let mut out = vec![];
    assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &req, &mut out), StunOutcome::ErrorResponse(400));
    assert_response(&out, Class::Error, &[1; 12]);
    assert_eq!(ice.peer(0), None);
}

#[test]
fn an_unknown_comprehension_required_attribute_gets_420_naming_it() {
    let mut ice = IceLite::new(&rule(None));
    let mut req = vec![];
    StunWriter::new(&mut req, Class::Request, BINDING, &[2; 12])
        .attr(&Attr::Username(b"evtj:h6vY"))
        .raw(0x7777, b"?")
        .raw(0xC001, &[0; 4]) // comprehension-optional: ignored
        .message_integrity(&stun::short_term_key(SAMPLE_PASSWORD))
        .fingerprint();
    let mut out = vec![];
    assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &req, &mut out), StunOutcome::ErrorResponse(420));
    let m = assert_response(&out, Class::Error, &[2; 12]);
    assert_eq!(m.get(attr::UNKNOWN_ATTRIBUTES), Some(Attr::UnknownAttributes(&[0x77, 0x77])));
    assert_eq!(ice.peer(0), None);
}

#[test]
fn failed_integrity_changes_nothing_and_answers_nothing() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let (a, b) = (addr("192.0.2.1:1000"), addr("203.0.113.9:2000"));
    let mut out = vec![];
    assert!(matches!(ice.handle(0, a, &check(false), &mut out), StunOutcome::Answered { .. }));

    // a nomination from b with a wrong password, then with a forged tag under a valid
    // FINGERPRINT (only the integrity is wrong)
    let wrong_pwd = chrome_check("evtj:h6vY", "not-the-password-of-evtj", 8, true);
    let mut forged = vec![];
    StunWriter::new(&mut forged, Class::Request, BINDING, &[8; 12])
        .attr(&Attr::Username(b"evtj:h6vY"))
        .attr(&Attr::UseCandidate)
        .raw(attr::MESSAGE_INTEGRITY, &[0xAA; 20])
        .fingerprint();
    for bad in [&wrong_pwd, &forged] {
        assert_eq!(ice.handle(5, b, bad, &mut out), StunOutcome::Dropped(StunDrop::BadIntegrity));
        assert!(out.is_empty());
        assert!(!ice.is_checked(b, 5));
        assert_eq!(ice.peer(5), Some(a));
    }
    // the same from a, already checked: its consent is not refreshed either
    let late = CONSENT_TIMEOUT_US + 1;
    assert_eq!(ice.handle(late - 2, a, &wrong_pwd, &mut out), StunOutcome::Dropped(StunDrop::BadIntegrity));
    assert!(!ice.is_checked(a, late));
    assert_eq!(ice.peer(late), None);
}

#[test]
fn missing_integrity_or_fingerprint_is_dropped() {
    let mut ice = IceLite::new(&rule(None));
    let mut out = vec![];
    let mut no_mi = vec![];
    StunWriter::new(&mut no_mi, Class::Request, BINDING, &[3; 12]).attr(&Attr::Username(b"evtj:h6vY")).fingerprint();
    assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &no_mi, &mut out), StunOutcome::Dropped(StunDrop::BadIntegrity));
    let mut no_fp = vec![];
    StunWriter::new(&mut no_fp, Class::Request, BINDING, &[3; 12])
        .attr(&Attr::Username(b"evtj:h6vY"))
        .message_integrity(&stun::short_term_key(SAMPLE_PASSWORD));
    assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &no_fp, &mut out), StunOutcome::Dropped(StunDrop::BadFingerprint));
    let mut bad_fp = check(false);
    *bad_fp.last_mut().unwrap() ^= 0x80;
    assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &bad_fp, &mut out), StunOutcome::Dropped(StunDrop::BadFingerprint));
    assert!(out.is_empty());
    assert_eq!(ice.peer(0), None);
}

#[test]
fn the_username_must_be_ours_and_name_the_peer_once_known() {
    let src = addr("192.0.2.1:1");
    let mut out = vec![];
    for (remote, username, ok) in [
        (Some(REMOTE_UFRAG), "evtj:h6vY", true),
        (Some(REMOTE_UFRAG), "evtj:h6vZ", false),
        (Some(REMOTE_UFRAG), "evtj:", false),
        (Some(REMOTE_UFRAG), "evtX:h6vY", false),
        (Some(REMOTE_UFRAG), "h6vY:evtj", false),
        (Some(REMOTE_UFRAG), "evtjh6vY", false),
        (Some(REMOTE_UFRAG), "evtj:h6vY:", false),
        (None, "evtj:anything", true),
        (None, "evtj:", true),
        (None, "evt:h6vY", false),
        (None, "", false),
    ] {
        let mut ice = IceLite::new(&rule(remote));
        let got = ice.handle(0, src, &chrome_check(username, SAMPLE_PASSWORD, 1, false), &mut out);
        let want =
            if ok { StunOutcome::Answered { nominated: false } } else { StunOutcome::Dropped(StunDrop::UnknownUser) };
        assert_eq!(got, want, "{remote:?} {username}");
        assert_eq!(ice.is_checked(src, 0), ok);
    }
    // no USERNAME at all
    let mut ice = IceLite::new(&rule(None));
    let mut req = vec![];
    StunWriter::new(&mut req, Class::Request, BINDING, &[4; 12])
        .message_integrity(&stun::short_term_key(SAMPLE_PASSWORD))
        .fingerprint();
    assert_eq!(ice.handle(0, src, &req, &mut out), StunOutcome::Dropped(StunDrop::UnknownUser));
    // empty local credentials authenticate nobody, not even with an empty key
    let mut ice =
        IceLite::new(&IceRule { local_ufrag: "".into(), local_pwd: "".into(), remote_ufrag: None, remote_pwd: None });
    assert_eq!(
        ice.handle(0, src, &chrome_check(":x", "", 1, false), &mut out),
        StunOutcome::Dropped(StunDrop::UnknownUser)
    );
}

#[test]
fn consent_expires_30_seconds_after_the_last_check() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let src = addr("192.0.2.1:1000");
    let mut out = vec![];
    let t0 = 5_000_000;
    ice.handle(t0, src, &check(true), &mut out);
    assert!(ice.is_checked(src, t0 + CONSENT_TIMEOUT_US));
    assert_eq!(ice.peer(t0 + CONSENT_TIMEOUT_US), Some(src));
    assert!(!ice.is_checked(src, t0 + CONSENT_TIMEOUT_US + 1));
    assert_eq!(ice.peer(t0 + CONSENT_TIMEOUT_US + 1), None);
    // a consent check (RFC 7675 §5.1) every 5 s keeps it
    let t1 = t0 + 40_000_000;
    assert!(matches!(ice.handle(t1, src, &check(false), &mut out), StunOutcome::Answered { .. }));
    assert_eq!(ice.peer(t1 + CONSENT_TIMEOUT_US), Some(src));
    ice.handle(t1 + 5_000_000, src, &check(false), &mut out);
    assert_eq!(ice.peer(t1 + 5_000_000 + CONSENT_TIMEOUT_US), Some(src));
    assert_eq!(ice.peer(t1 + 5_000_001 + CONSENT_TIMEOUT_US), None);
}

#[test]
fn the_nominated_address_is_the_peer_while_its_consent_lasts() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let (a, b, c) = (addr("192.0.2.1:1000"), addr("[2001:db8::1]:1000"), addr("203.0.113.5:3478"));
    let mut out = vec![];
    ice.handle(0, a, &check(false), &mut out);
    ice.handle(1, b, &check(false), &mut out);
    assert_eq!(ice.peer(2), Some(b), "no nomination yet: the latest checked");
    assert_eq!(ice.handle(2, a, &check(true), &mut out), StunOutcome::Answered { nominated: true });
    ice.handle(3, b, &check(false), &mut out);
    ice.handle(4, c, &check(false), &mut out);
    assert_eq!(ice.peer(5), Some(a), "backup pairs' checks do not move the media");
    // renomination: the latest nomination wins
    ice.handle(6, c, &check(true), &mut out);
    assert_eq!(ice.peer(7), Some(c));
    ice.handle(8, a, &check(true), &mut out);
    assert_eq!(ice.peer(9), Some(a));
    // a's consent lapses while b and c are still checked: c was nominated, then b is newer
    ice.handle(20_000_000, c, &check(false), &mut out);
    ice.handle(25_000_000, b, &check(false), &mut out);
    assert_eq!(ice.peer(30_000_008), Some(a));
    assert_eq!(ice.peer(30_000_009), Some(c));
    assert_eq!(ice.peer(50_000_001), Some(b));
    assert_eq!(ice.peer(55_000_001), None);
}

#[test]
fn an_ice_restart_forgets_every_checked_address() {
    let mut ice = IceLite::new(&rule(None));
    let src = addr("192.0.2.1:1000");
    let mut out = vec![];
    ice.handle(0, src, &check(true), &mut out);
    // learning the remote ufrag is no restart
    ice.update(&rule(Some(REMOTE_UFRAG)));
    assert_eq!(ice.peer(1), Some(src));
    assert_eq!(
        ice.handle(1, src, &chrome_check("evtj:other", SAMPLE_PASSWORD, 1, false), &mut out),
        StunOutcome::Dropped(StunDrop::UnknownUser)
    );
    let restarted =
        IceRule { local_ufrag: "n3wU".into(), local_pwd: "a-new-password-22-chars".into(), ..rule(Some("r3mo")) };
    ice.update(&restarted);
    assert!(!ice.is_checked(src, 2));
    assert_eq!(ice.peer(2), None);
    assert_eq!(ice.handle(3, src, &check(true), &mut out), StunOutcome::Dropped(StunDrop::UnknownUser));
    let mut renamed = chrome_check("n3wU:r3mo", SAMPLE_PASSWORD, 1, true);
    assert_eq!(ice.handle(3, src, &renamed, &mut out), StunOutcome::Dropped(StunDrop::BadIntegrity));
    renamed = chrome_check("n3wU:r3mo", "a-new-password-22-chars", 1, true);
    assert_eq!(ice.handle(4, src, &renamed, &mut out), StunOutcome::Answered { nominated: true });
    let m = StunMessage::new_checked(&out[..]).unwrap();
    assert_eq!(m.verify_integrity(&stun::short_term_key("a-new-password-22-chars")), Some(true));
    assert_eq!(ice.peer(5), Some(src));
}

#[test]
fn at_most_max_checked_addresses_are_kept_the_nominated_one_last_to_go() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let mut out = vec![];
    let nominated = addr("192.0.2.1:9");
    ice.handle(0, nominated, &check(true), &mut out);
    for i in 0..100u16 {
        let src = SocketAddr::new("198.51.100.1".parse().unwrap(), 10_000 + i);
        assert!(matches!(ice.handle(1 + i as u64, src, &check(false), &mut out), StunOutcome::Answered { .. }));
        assert!(ice.checked.len() <= MAX_CHECKED);
        assert!(ice.is_checked(src, 1 + i as u64));
    }
    assert_eq!(ice.checked.len(), MAX_CHECKED);
    assert_eq!(ice.peer(200), Some(nominated));
    // the last MAX_CHECKED - 1 others are there, the older ones evicted
    let kept =
        (0..100u16).filter(|i| ice.is_checked(SocketAddr::new("198.51.100.1".parse().unwrap(), 10_000 + i), 200));
    assert_eq!(kept.collect::<Vec<_>>(), (100 - MAX_CHECKED as u16 + 1..100).collect::<Vec<_>>());
    // once its consent lapsed, the nominated address is the first to go
    let late = CONSENT_TIMEOUT_US + 50;
    ice.handle(late, addr("203.0.113.1:1"), &check(false), &mut out);
    assert!(!ice.checked.iter().any(|c| c.addr == nominated));
}

#[test]
fn what_is_not_a_binding_request_is_not_answered() {
    let mut ice = IceLite::new(&rule(None));
    let key = stun::short_term_key(SAMPLE_PASSWORD);
    let mut out = vec![9];
    for (class, method) in
        [(Class::Indication, BINDING), (Class::Success, BINDING), (Class::Error, BINDING), (Class::Request, 0x003)]
    {
        let mut m = vec![];
        StunWriter::new(&mut m, class, method, &[5; 12])
            .attr(&Attr::Username(b"evtj:h6vY"))
            .message_integrity(&key)
            .fingerprint();
        assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &m, &mut out), StunOutcome::Dropped(StunDrop::NotARequest));
        assert!(out.is_empty());
    }
    // a valid check padded with SOFTWARE beyond MAX_CHECK_LEN
    let mut big = vec![];
    StunWriter::new(&mut big, Class::Request, BINDING, &[6; 12])
        .attr(&Attr::Username(b"evtj:h6vY"))
        .raw(attr::SOFTWARE, &[b'x'; 700])
        .raw(attr::SOFTWARE, &[b'x'; 700])
        .raw(attr::SOFTWARE, &[b'x'; 700])
        .message_integrity(&key)
        .fingerprint();
    assert!(big.len() > MAX_CHECK_LEN);
    assert_eq!(ice.handle(0, addr("192.0.2.1:1"), &big, &mut out), StunOutcome::Dropped(StunDrop::Malformed));
    for junk in [&b""[..], b"\x16\xfe\xfd", &[0x80; 40]] {
        assert_eq!(ice.handle(0, addr("192.0.2.1:1"), junk, &mut out), StunOutcome::Dropped(StunDrop::Malformed));
    }
    assert_eq!(ice.peer(0), None);
}

/// Deterministic stand-in for fuzz/fuzz_targets/stun.rs that always runs: no truncation or
/// mutation of a valid check panics, is answered, or is recorded.
#[test]
fn truncated_and_mutated_checks_never_panic_nor_pass() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let src = addr("192.0.2.1:1");
    let mut out = vec![];
    for valid in [check(true), hex(SAMPLE_REQUEST)] {
        for n in 0..valid.len() {
            let r = ice.handle(0, src, &valid[..n], &mut out);
            assert!(matches!(r, StunOutcome::Dropped(_)), "{n}: {r:?}");
            // with the length field fixed up, the walk and the checks run on the rest
            if n >= stun::HEADER_LEN {
                let mut t = valid[..n].to_vec();
                t[2..4].copy_from_slice(&((n - stun::HEADER_LEN) as u16).to_be_bytes());
                assert!(matches!(ice.handle(0, src, &t, &mut out), StunOutcome::Dropped(_)));
            }
        }
    }
    assert_eq!(ice.peer(0), None);
    let valid = check(true);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..50_000 {
        let mut b = valid.clone();
        for _ in 0..1 + rng.next() % 3 {
            let i = (rng.next() as usize) % b.len();
            let v = rng.next() as u8;
            if b[i] != v {
                b[i] = v;
            }
        }
        if b == valid {
            continue;
        }
        let r = ice.handle(1, src, &b, &mut out);
        assert!(!matches!(r, StunOutcome::Answered { .. }), "{b:02x?}");
    }
    assert_eq!(ice.peer(1), None);
}

/// The fuzz seeds were made with Python's hmac and zlib, not with this crate: a second
/// implementation of MESSAGE-INTEGRITY and FINGERPRINT that the agent must agree with.
#[test]
fn the_fuzz_seeds_get_the_outcomes_they_were_made_for() {
    let seeds: [(&[u8], StunOutcome); 5] = [
        (include_bytes!("../../../fuzz/seeds/stun/chrome-check"), StunOutcome::Answered { nominated: false }),
        (
            include_bytes!("../../../fuzz/seeds/stun/chrome-check-use-candidate"),
            StunOutcome::Answered { nominated: true },
        ),
        (include_bytes!("../../../fuzz/seeds/stun/rfc5769-2.1-request"), StunOutcome::ErrorResponse(487)),
        (
            include_bytes!("../../../fuzz/seeds/stun/rfc5769-2.2-ipv4-response"),
            StunOutcome::Dropped(StunDrop::NotARequest),
        ),
        (
            include_bytes!("../../../fuzz/seeds/stun/rfc5769-2.3-ipv6-response"),
            StunOutcome::Dropped(StunDrop::NotARequest),
        ),
    ];
    let mut out = vec![];
    for (seed, want) in seeds {
        let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
        assert_eq!(ice.handle(0, addr("192.0.2.1:1"), seed, &mut out), want);
    }
    assert_eq!(include_bytes!("../../../fuzz/seeds/stun/rfc5769-2.1-request")[..], hex(SAMPLE_REQUEST)[..]);
}

#[test]
fn a_check_copied_and_sent_again_from_elsewhere_is_refused() {
    let mut ice = IceLite::new(&rule(Some(REMOTE_UFRAG)));
    let (browser, observer) = (addr("192.0.2.1:1000"), addr("203.0.113.66:4000"));
    let nominating = check(true);
    let mut out = vec![];
    assert_eq!(ice.handle(1_000, browser, &nominating, &mut out), StunOutcome::Answered { nominated: true });
    // the browser's own retransmission (our answer was lost) is answered again
    assert_eq!(ice.handle(2_000, browser, &nominating, &mut out), StunOutcome::Answered { nominated: true });
    // the observer's copy is authentic but not fresh: dropped, nothing moves, no answer
    assert_eq!(ice.handle(3_000, observer, &nominating, &mut out), StunOutcome::Dropped(StunDrop::Replayed));
    assert!(out.is_empty());
    assert_eq!(ice.peer(4_000), Some(browser));
    assert!(!ice.is_checked(observer, 4_000));
    // the window is bounded: the oldest IDs go once MAX_SEEN_CHECKS newer ones came
    for i in 0..MAX_SEEN_CHECKS {
        ice.handle(
            5_000 + i as u64,
            browser,
            &chrome_check("evtj:h6vY", SAMPLE_PASSWORD, 200 + (i % 50) as u8, false),
            &mut out,
        );
    }
    assert!(ice.seen.len() <= MAX_SEEN_CHECKS);
}
