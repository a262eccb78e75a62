//! RFC 5769's test vectors byte for byte, and hostile input.

use super::*;
use crate::test_support::{hex, Rng};

/// RFC 5769 §2.1: a binding request of an ICE agent (short-term credentials).
pub(crate) const SAMPLE_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae
    802200105354554e207465737420636c69656e74 002400046e0001ff 80290008932ff9b151263b36
    000600096576746a3a68367659202020 000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2 80280004e57a3bcf";
/// RFC 5769 §2.2: the success response, mapped address 192.0.2.1:32853.
const SAMPLE_IPV4_RESPONSE: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae
    8022000b7465737420766563746f7220 002000080001a147e112a643
    000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7 80280004c07d4c96";
/// RFC 5769 §2.3: the same with [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const SAMPLE_IPV6_RESPONSE: &str = "010100482112a442b7e7a701bc34d686fa87dfae
    8022000b7465737420766563746f7220 002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
    00080014a382954e4be67bf11784c97c8292c275bfe3ed41 80280004c8fb0b4c";
/// The short-term password of the three vectors (the request's USERNAME is `evtj:h6vY`).
pub(crate) const SAMPLE_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const SAMPLE_TXID: TransactionId = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];

#[test]
fn crc32_has_the_published_check_value() {
    assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
}

#[test]
fn message_types_round_trip() {
    for (class, t) in
        [(Class::Request, 0x0001), (Class::Indication, 0x0011), (Class::Success, 0x0101), (Class::Error, 0x0111)]
    {
        assert_eq!(message_type(class, BINDING), t);
        let mut out = vec![];
        StunWriter::new(&mut out, class, BINDING, &SAMPLE_TXID);
        let m = StunMessage::new_checked(&out[..]).unwrap();
        assert_eq!((m.class(), m.method()), (class, BINDING));
    }
    // the method bits around the class bits: 0xFFF spreads over all 14 bits but C0/C1
    assert_eq!(message_type(Class::Request, 0xFFF), 0x3EEF);
    let mut out = vec![];
    StunWriter::new(&mut out, Class::Error, 0xABC, &SAMPLE_TXID);
    let m = StunMessage::new_checked(&out[..]).unwrap();
    assert_eq!((m.class(), m.method()), (Class::Error, 0xABC));
}

#[test]
fn rfc_5769_sample_request() {
    let b = hex(SAMPLE_REQUEST);
    let m = StunMessage::new_checked(&b[..]).unwrap();
    assert_eq!((m.class(), m.method(), m.transaction_id()), (Class::Request, BINDING, &SAMPLE_TXID));
    let attrs: Vec<Attr> = m.attrs().collect();
    assert_eq!(attrs.len(), 6);
    assert_eq!(attrs[0], Attr::Software(b"STUN test client"));
    assert_eq!(attrs[1], Attr::Priority(0x6e0001ff));
    assert_eq!(attrs[2], Attr::IceControlled(0x932ff9b151263b36));
    assert_eq!(attrs[3], Attr::Username(b"evtj:h6vY"));
    assert_eq!(m.get(attr::FINGERPRINT), Some(Attr::Fingerprint(0xe57a3bcf)));
    assert_eq!(m.verify_integrity(&short_term_key(SAMPLE_PASSWORD)), Some(true));
    assert_eq!(m.verify_integrity(&short_term_key("VOkJxbRl1RmTxUk/WvJxBT")), Some(false));
    assert_eq!(m.verify_fingerprint(), Some(true));

    // and the writer produces it byte for byte (the RFC pads with spaces)
    let mut out = vec![];
    StunWriter::new(&mut out, Class::Request, BINDING, &SAMPLE_TXID)
        .padding_byte(b' ')
        .attr(&Attr::Software(b"STUN test client"))
        .attr(&Attr::Priority(0x6e0001ff))
        .attr(&Attr::IceControlled(0x932ff9b151263b36))
        .attr(&Attr::Username(b"evtj:h6vY"))
        .message_integrity(&short_term_key(SAMPLE_PASSWORD))
        .fingerprint();
    assert_eq!(out, b);
}

#[test]
fn rfc_5769_sample_responses() {
    for (vector, mapped, len) in [
        (SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853", 80),
        (SAMPLE_IPV6_RESPONSE, "[2001:db8:1234:5678:11:2233:4455:6677]:32853", 92),
    ] {
        let b = hex(vector);
        assert_eq!(b.len(), len);
        let mapped: SocketAddr = mapped.parse().unwrap();
        let m = StunMessage::new_checked(&b[..]).unwrap();
        assert_eq!((m.class(), m.method()), (Class::Success, BINDING));
        assert_eq!(m.get(attr::XOR_MAPPED_ADDRESS), Some(Attr::XorMappedAddress(mapped)));
        assert_eq!(m.get(attr::SOFTWARE), Some(Attr::Software(b"test vector")));
        assert_eq!(m.verify_integrity(&short_term_key(SAMPLE_PASSWORD)), Some(true));
        assert_eq!(m.verify_fingerprint(), Some(true));

        let mut out = vec![0xEE]; // the writer appends: whatever precedes stays
        StunWriter::new(&mut out, Class::Success, BINDING, &SAMPLE_TXID)
            .padding_byte(b' ')
            .attr(&Attr::Software(b"test vector"))
            .attr(&Attr::XorMappedAddress(mapped))
            .message_integrity(&short_term_key(SAMPLE_PASSWORD))
            .fingerprint();
        assert_eq!(out[0], 0xEE);
        assert_eq!(out[1..], b[..], "{vector}");
    }
}

#[test]
fn an_ipv4_mapped_source_is_written_as_ipv4() {
    let mut out = vec![];
    let v6: SocketAddr = "[::ffff:192.0.2.1]:32853".parse().unwrap();
    StunWriter::new(&mut out, Class::Success, BINDING, &SAMPLE_TXID).attr(&Attr::XorMappedAddress(v6));
    let m = StunMessage::new_checked(&out[..]).unwrap();
    assert_eq!(m.get(attr::XOR_MAPPED_ADDRESS), Some(Attr::XorMappedAddress("192.0.2.1:32853".parse().unwrap())));
}

#[test]
fn error_code_round_trips() {
    let mut out = vec![];
    StunWriter::new(&mut out, Class::Error, BINDING, &SAMPLE_TXID)
        .attr(&Attr::ErrorCode { code: 487, reason: b"Role Conflict" })
        .fingerprint();
    assert_eq!(&out[20..28], &[0x00, 0x09, 0x00, 0x11, 0, 0, 4, 87]);
    let m = StunMessage::new_checked(&out[..]).unwrap();
    assert_eq!(m.get(attr::ERROR_CODE), Some(Attr::ErrorCode { code: 487, reason: b"Role Conflict" }));
    assert_eq!(m.verify_fingerprint(), Some(true));
    assert_eq!(m.verify_integrity(&short_term_key("x")), None);
}

/// A binding request header followed by `attrs`.
fn message(attrs: &[u8]) -> Vec<u8> {
    let mut b = hex("000100002112a442b7e7a701bc34d686fa87dfae");
    b[2..4].copy_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b
}

fn with(b: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = b.to_vec();
    f(&mut b);
    b
}

#[test]
fn malformed_messages_are_refused_with_their_reason() {
    use StunError::*;
    let ok = message(&hex("00240004 6e0001ff"));
    assert!(StunMessage::new_checked(&ok[..]).is_ok());
    let cases: Vec<(Vec<u8>, StunError)> = vec![
        (ok[..19].to_vec(), TooShort),
        (with(&ok, |b| b[0] = 0x40), NotStun),
        (with(&ok, |b| b[4] = 0), NotStun),
        (with(&ok, |b| b[3] = 9), BadLength),
        (with(&ok, |b| b[3] = 4), BadLength),
        (with(&ok, |b| b.extend([0; 4])), BadLength),
        (message(&hex("00240008 6e0001ff")), TruncatedAttribute),
        (message(&hex("00060008 61626364")), TruncatedAttribute),
        (message(&hex("00240003 6e000100")), BadAttribute(attr::PRIORITY)),
        (message(&hex("00250004 00000000")), BadAttribute(attr::USE_CANDIDATE)),
        (message(&hex("80290004 00000000")), BadAttribute(attr::ICE_CONTROLLED)),
        (message(&hex("00080004 00000000")), BadAttribute(attr::MESSAGE_INTEGRITY)),
        (message(&hex("00200008 0003a147e112a643")), BadAttribute(attr::XOR_MAPPED_ADDRESS)),
        (message(&hex("00090004 00000263")), BadAttribute(attr::ERROR_CODE)),
        (message(&hex("80280004 00000000 00240004 6e0001ff")), MisplacedFingerprint),
    ];
    for (b, e) in cases {
        assert_eq!(StunMessage::new_checked(&b[..]).err(), Some(e), "{b:02x?}");
    }
}

#[test]
fn attributes_after_message_integrity_do_not_count_but_fingerprint_does() {
    let key = short_term_key("pwd");
    let mut out = vec![];
    StunWriter::new(&mut out, Class::Request, BINDING, &SAMPLE_TXID)
        .attr(&Attr::Username(b"a:b"))
        .message_integrity(&key)
        .attr(&Attr::UseCandidate)
        .attr(&Attr::Username(b"c:d"))
        .fingerprint();
    let m = StunMessage::new_checked(&out[..]).unwrap();
    assert_eq!(m.attributes().count(), 5);
    let kinds: Vec<u16> = m.attrs().map(|a| a.kind()).collect();
    assert_eq!(kinds, [attr::USERNAME, attr::MESSAGE_INTEGRITY, attr::FINGERPRINT]);
    assert_eq!(m.get(attr::USE_CANDIDATE), None);
    assert_eq!(m.get(attr::USERNAME), Some(Attr::Username(b"a:b")));
    assert_eq!(m.verify_integrity(&key), Some(true));
    assert_eq!(m.verify_fingerprint(), Some(true));
}

#[test]
fn every_flipped_bit_of_the_sample_request_is_caught() {
    let b = hex(SAMPLE_REQUEST);
    let key = short_term_key(SAMPLE_PASSWORD);
    for i in 0..b.len() {
        for bit in 0..8 {
            let mut f = b.clone();
            f[i] ^= 1 << bit;
            if let Ok(m) = StunMessage::new_checked(&f[..]) {
                let intact = m.verify_fingerprint() == Some(true) && m.verify_integrity(&key) == Some(true);
                assert!(!intact, "byte {i} bit {bit}");
            }
        }
    }
}

/// Deterministic stand-in for fuzz/fuzz_targets/stun.rs that always runs.
#[test]
fn truncated_mutated_and_random_messages_never_panic() {
    let mut valid = vec![hex(SAMPLE_REQUEST), hex(SAMPLE_IPV4_RESPONSE), hex(SAMPLE_IPV6_RESPONSE)];
    let key = short_term_key(SAMPLE_PASSWORD);
    let exercise = |b: &[u8]| {
        if let Ok(m) = StunMessage::new_checked(b) {
            let _ = (m.class(), m.method(), m.attrs().count(), m.verify_integrity(&key), m.verify_fingerprint());
            for a in m.attributes() {
                assert!(a.offset + 4 + a.value.len() <= b.len());
            }
        }
    };
    for v in &valid {
        for n in 0..=v.len() {
            exercise(&v[..n]);
            // a truncation with the length field fixed up reaches the attribute walk
            if n >= HEADER_LEN {
                let mut t = v[..n].to_vec();
                t[2..4].copy_from_slice(&((n - HEADER_LEN) as u16).to_be_bytes());
                exercise(&t);
            }
        }
    }
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for _ in 0..100_000 {
        let r = rng.next();
        let mut b = valid[(r % 3) as usize].clone();
        for _ in 0..(r >> 8) % 4 {
            let i = (rng.next() as usize) % b.len();
            b[i] = rng.next() as u8;
        }
        exercise(&b);
        let mut junk = vec![0u8; (rng.next() % 64) as usize];
        rng.fill(&mut junk);
        if junk.len() >= 8 {
            junk[..8].copy_from_slice(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
            junk[3] = (junk.len().saturating_sub(HEADER_LEN)) as u8;
        }
        exercise(&junk);
    }
    valid.clear();
}
