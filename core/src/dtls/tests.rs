//! Two sessions handshaking in memory under explicit time: both roles, DTLS 1.2 and 1.3
//! peers, late and wrong fingerprints, lost flights, a ClientHello cut into fragments, and
//! garbage.

use std::sync::{Arc, OnceLock};

use rules::dataplane::Suite;
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule, Fingerprint, HashFunction};

use super::*;

const NOW_UNIX: u64 = 1_790_000_000;
const START_US: u64 = 5_000_000;

fn identities() -> &'static (Arc<DtlsIdentity>, Arc<DtlsIdentity>) {
    static IDS: OnceLock<(Arc<DtlsIdentity>, Arc<DtlsIdentity>)> = OnceLock::new();
    IDS.get_or_init(|| {
        let id = || Arc::new(generate_identity(NOW_UNIX, 30 * 86400).unwrap());
        (id(), id())
    })
}

fn rule(role: DtlsRole, me: &Arc<DtlsIdentity>, peer: Option<&Arc<DtlsIdentity>>) -> DtlsRule {
    DtlsRule { role, identity: me.clone(), remote_fingerprint: peer.map(|p| p.fingerprint.clone()), generation: 0 }
}

/// (relay in `role`, its peer in the other role), each knowing the other's fingerprint.
fn pair(role: DtlsRole) -> (DtlsSession, DtlsSession) {
    let (a, b) = identities();
    let other = if role == DtlsRole::Active { DtlsRole::Passive } else { DtlsRole::Active };
    (
        DtlsSession::new(&rule(role, a, Some(b)), START_US).unwrap(),
        DtlsSession::new(&rule(other, b, Some(a)), START_US).unwrap(),
    )
}

/// A session around a DTLS 1.2-only dimpl endpoint (what OpenSSL-based stacks such as
/// aiortc speak).
fn dtls12_peer(role: DtlsRole, me: &Arc<DtlsIdentity>, peer: &Arc<DtlsIdentity>) -> DtlsSession {
    configured_peer(role, me, peer, config().unwrap(), Some(dimpl::ProtocolVersion::DTLS1_2))
}

/// A session around a dimpl endpoint with its own configuration (e.g. fewer use_srtp
/// profiles), speaking only `version` or, with None, both like the relay.
fn configured_peer(
    role: DtlsRole,
    me: &Arc<DtlsIdentity>,
    peer: &Arc<DtlsIdentity>,
    config: Arc<Config>,
    version: Option<dimpl::ProtocolVersion>,
) -> DtlsSession {
    let cert = DtlsCertificate { certificate: me.cert_der.clone(), private_key: me.key_der.clone() };
    let mut dtls = match version {
        Some(dimpl::ProtocolVersion::DTLS1_2) => Dtls::new_12(config, cert, instant(START_US)),
        Some(v) => panic!("no {v:?}-only peer"),
        None => Dtls::new_auto(config, cert, instant(START_US)),
    };
    if role == DtlsRole::Active {
        dtls.set_active(true);
    }
    let mut s = DtlsSession::new(&rule(role, me, Some(peer)), START_US).unwrap();
    s.dtls = Box::new(dtls);
    s.transmit.clear();
    let r = s.dtls.handle_timeout(instant(START_US));
    s.after(START_US, Ok(r)).unwrap();
    s
}

/// Moves datagrams both ways through `wire` (which may drop, rewrite or split them) and
/// advances time to the next deadline whenever the wire is quiet, until both sides are
/// Connected or one failed. Returns the time reached.
fn run(a: &mut DtlsSession, b: &mut DtlsSession, mut wire: impl FnMut(bool, Vec<u8>) -> Vec<Vec<u8>>) -> u64 {
    let mut now = START_US;
    for _ in 0..500 {
        let mut moved = false;
        while let Some(d) = a.poll_transmit() {
            moved = true;
            for d in wire(true, d) {
                let _ = b.handle_datagram(now, &d);
            }
        }
        while let Some(d) = b.poll_transmit() {
            moved = true;
            for d in wire(false, d) {
                let _ = a.handle_datagram(now, &d);
            }
        }
        let done = |s: &DtlsSession| s.state() != &DtlsState::Handshaking;
        let quiet = a.transmit.is_empty() && b.transmit.is_empty();
        let handshaken = |s: &DtlsSession| s.handshake_done || done(s);
        if quiet && handshaken(a) && handshaken(b) {
            return now;
        }
        if !moved {
            let next = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min();
            let Some(next) = next else { return now };
            now = now.max(next);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
    }
    panic!("no progress: {a:?} {b:?}");
}

fn pass(_: bool, d: Vec<u8>) -> Vec<Vec<u8>> {
    vec![d]
}

fn assert_crosswise(a: &mut DtlsSession, b: &mut DtlsSession) -> Suite {
    assert_eq!((a.state(), b.state()), (&DtlsState::Connected, &DtlsState::Connected));
    let (ka, kb) = (a.take_keys().unwrap(), b.take_keys().unwrap());
    assert_eq!(ka.local, kb.remote);
    assert_eq!(ka.remote, kb.local);
    assert_ne!(ka.local.key, ka.remote.key);
    assert!(a.take_keys().is_none(), "keys are handed out once");
    ka.local.suite
}

#[test]
fn handshake_in_either_role_gives_matching_keys() {
    for role in [DtlsRole::Active, DtlsRole::Passive] {
        let (mut relay, mut peer) = pair(role);
        let first = relay.poll_transmit();
        match role {
            // the client's first flight is a ClientHello: handshake record, msg_type 1
            DtlsRole::Active => assert_eq!(first.as_ref().map(|d| (d[0], d[13])), Some((22, 1))),
            DtlsRole::Passive => {
                assert_eq!(first, None, "a server speaks only when spoken to");
                assert_eq!(relay.poll_timeout(), None, "and has no timer before");
            }
        }
        if let Some(d) = first {
            relay.transmit.push_front(d);
        }
        let (c, s) = if role == DtlsRole::Active { (&mut relay, &mut peer) } else { (&mut peer, &mut relay) };
        run(c, s, pass);
        // dimpl offers the GCM profiles first; both sides pick the strongest
        assert_eq!(assert_crosswise(&mut relay, &mut peer), Suite::AeadAes256Gcm, "{role:?}");
        assert_eq!(relay.dtls.protocol_version(), Some(dimpl::ProtocolVersion::DTLS1_3));
        assert_eq!(relay.poll_timeout(), None, "nothing armed after the handshake ({role:?})");
    }
}

#[test]
fn dtls12_only_peers_handshake_in_either_role() {
    let (a, b) = identities();
    for role in [DtlsRole::Active, DtlsRole::Passive] {
        let other = if role == DtlsRole::Active { DtlsRole::Passive } else { DtlsRole::Active };
        let mut relay = DtlsSession::new(&rule(role, a, Some(b)), START_US).unwrap();
        let mut peer = dtls12_peer(other, b, a);
        run(&mut relay, &mut peer, pass);
        assert_eq!(relay.dtls.protocol_version(), Some(dimpl::ProtocolVersion::DTLS1_2), "{role:?}");
        assert_crosswise(&mut relay, &mut peer);
    }
}

#[test]
fn a_peer_offering_only_aes128_cm_sha1_32_gets_it() {
    // RFC 5764's fourth profile (4-byte RTP auth tag): the relay offers it last as the
    // client and accepts it as the server, in DTLS 1.3 and 1.2
    let (a, b) = identities();
    let only_32 = Arc::new(Config::builder().srtp_profiles(&[dimpl::SrtpProfile::AES128_CM_SHA1_32]).build().unwrap());
    for version in [None, Some(dimpl::ProtocolVersion::DTLS1_2)] {
        for role in [DtlsRole::Active, DtlsRole::Passive] {
            let other = if role == DtlsRole::Active { DtlsRole::Passive } else { DtlsRole::Active };
            let mut relay = DtlsSession::new(&rule(role, a, Some(b)), START_US).unwrap();
            let mut peer = configured_peer(other, b, a, only_32.clone(), version);
            run(&mut relay, &mut peer, pass);
            let suite = assert_crosswise(&mut relay, &mut peer);
            assert_eq!(suite, Suite::AesCm128HmacSha1_32, "{version:?} {role:?}");
            let spoken = version.unwrap_or(dimpl::ProtocolVersion::DTLS1_3);
            assert_eq!(relay.dtls.protocol_version(), Some(spoken), "{role:?}");
        }
    }
}

#[test]
fn client_write_key_is_local_for_the_client() {
    // RFC 5764 §4.2 layout: client key | server key | client salt | server salt
    let m: Vec<u8> = (0..88).collect();
    let k = keys::split(&m, dimpl::SrtpProfile::AEAD_AES_256_GCM, DtlsRole::Active).unwrap();
    assert_eq!((k.local.key[0], k.remote.key[0], k.local.salt[0], k.remote.salt[0]), (0, 32, 64, 76));
    let k = keys::split(&m[..60], dimpl::SrtpProfile::AES128_CM_SHA1_80, DtlsRole::Passive).unwrap();
    assert_eq!(
        (k.local.suite, k.local.key[0], k.remote.key[0], k.local.salt[0], k.remote.salt[0]),
        (Suite::AesCm128HmacSha1_80, 16, 0, 46, 32)
    );
    let k = keys::split(&m[..60], dimpl::SrtpProfile::AES128_CM_SHA1_32, DtlsRole::Active).unwrap();
    assert_eq!(
        (k.local.suite, k.local.key[0], k.remote.key[0], k.local.salt[0], k.remote.salt[0]),
        (Suite::AesCm128HmacSha1_32, 0, 16, 32, 46)
    );
    let k = keys::split(&m[..56], dimpl::SrtpProfile::AEAD_AES_128_GCM, DtlsRole::Active).unwrap();
    assert_eq!((k.local.suite, k.remote.salt.len()), (Suite::AeadAes128Gcm, 12));
    assert!(keys::split(&m[..55], dimpl::SrtpProfile::AEAD_AES_128_GCM, DtlsRole::Active).is_err());
}

#[test]
fn a_wrong_fingerprint_fails_without_keys() {
    let (a, b) = identities();
    for role in [DtlsRole::Active, DtlsRole::Passive] {
        let other = if role == DtlsRole::Active { DtlsRole::Passive } else { DtlsRole::Active };
        // the relay expects its own certificate from the peer: a mismatch
        let mut relay = DtlsSession::new(&rule(role, a, Some(a)), START_US).unwrap();
        let mut peer = DtlsSession::new(&rule(other, b, Some(a)), START_US).unwrap();
        run(&mut relay, &mut peer, pass);
        assert!(matches!(relay.state(), DtlsState::Failed(w) if w.contains("fingerprint")), "{relay:?}");
        assert_eq!(relay.take_keys(), None);
        assert_eq!(relay.poll_timeout(), None);
        assert!(relay.handle_datagram(START_US, &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
    // any hash function the SDP may name is checked
    let mut wrong = fingerprint(HashFunction::Sha1, &b.cert_der);
    wrong.value[0] ^= 1;
    let mut relay = DtlsSession::new(&rule(DtlsRole::Passive, a, None), START_US).unwrap();
    relay.set_remote_fingerprint(wrong);
    let mut peer = DtlsSession::new(&rule(DtlsRole::Active, b, Some(a)), START_US).unwrap();
    run(&mut relay, &mut peer, pass);
    assert!(matches!(relay.state(), DtlsState::Failed(_)));
}

#[test]
fn keys_wait_for_a_late_fingerprint() {
    let (a, b) = identities();
    for hash in [HashFunction::Sha1, HashFunction::Sha224, HashFunction::Sha384, HashFunction::Sha512] {
        let mut relay = DtlsSession::new(&rule(DtlsRole::Passive, a, None), START_US).unwrap();
        let mut peer = DtlsSession::new(&rule(DtlsRole::Active, b, Some(a)), START_US).unwrap();
        run(&mut relay, &mut peer, pass);
        assert_eq!(peer.state(), &DtlsState::Connected);
        assert_eq!(relay.state(), &DtlsState::Handshaking);
        assert_eq!(relay.take_keys(), None, "no keys before the fingerprint is known");
        relay.set_remote_fingerprint(fingerprint(hash, &b.cert_der));
        assert_crosswise(&mut relay, &mut peer);
    }
    // a late fingerprint that does not match
    let mut relay = DtlsSession::new(&rule(DtlsRole::Active, a, None), START_US).unwrap();
    let mut peer = DtlsSession::new(&rule(DtlsRole::Passive, b, Some(a)), START_US).unwrap();
    run(&mut relay, &mut peer, pass);
    relay.set_remote_fingerprint(a.fingerprint.clone());
    assert!(matches!(relay.state(), DtlsState::Failed(_)));
    assert_eq!(relay.take_keys(), None);
}

#[test]
fn lost_flights_are_retransmitted_on_timeouts() {
    for role in [DtlsRole::Active, DtlsRole::Passive] {
        let (mut relay, mut peer) = pair(role);
        // drop the first two datagrams in each direction, then every third
        let (mut from_relay, mut from_peer) = (0, 0);
        let end = run(&mut relay, &mut peer, |relay_sent, d| {
            let n = if relay_sent { &mut from_relay } else { &mut from_peer };
            *n += 1;
            if *n <= 2 || *n % 3 == 0 {
                vec![]
            } else {
                vec![d]
            }
        });
        assert!(end >= START_US + 1_000_000, "recovered only through a retransmission timer");
        assert_crosswise(&mut relay, &mut peer);
    }
}

#[test]
fn a_handshake_that_never_completes_fails_at_its_deadline() {
    let (mut relay, _peer) = pair(DtlsRole::Active);
    let mut now = START_US;
    let mut sent = 0;
    while let Some(t) = relay.poll_timeout() {
        assert!(t >= now && t < START_US + 60_000_000, "deadline {t}");
        now = t;
        relay.handle_timeout(now);
        while relay.poll_transmit().is_some() {
            sent += 1;
        }
    }
    assert!(matches!(relay.state(), DtlsState::Failed(_)), "{relay:?}");
    assert!(sent >= 4, "retransmitted {sent} times");
}

/// Records of one datagram: (content type, epoch, sequence, body).
fn records(d: &[u8]) -> Vec<(u8, u16, u64, Vec<u8>)> {
    let mut out = vec![];
    let mut rest = d;
    while rest.len() >= 13 && (20..=26).contains(&rest[0]) {
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let seq = rest[5..11].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        out.push((rest[0], u16::from_be_bytes([rest[3], rest[4]]), seq, rest[13..13 + len].to_vec()));
        rest = &rest[13 + len..];
    }
    assert!(rest.is_empty() || rest[0] & 0xe0 == 0x20, "unparsed tail");
    out
}

fn record(kind: u8, epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 0xfe, 0xfd];
    r.extend_from_slice(&epoch.to_be_bytes());
    r.extend_from_slice(&seq.to_be_bytes()[2..]);
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// Re-fragments every ClientHello of the client's epoch-0 records into `size`-byte
/// handshake fragments, one record each, and renumbers epoch-0 records so that no
/// sequence number repeats. `per_datagram` records go into one datagram; `reverse`
/// sends the fragments last first.
struct Fragmenter {
    size: usize,
    per_datagram: usize,
    reverse: bool,
    next_seq: u64,
    hellos: usize,
}

impl Fragmenter {
    fn apply(&mut self, d: Vec<u8>) -> Vec<Vec<u8>> {
        if d[0] & 0xe0 == 0x20 {
            return vec![d];
        }
        let mut out: Vec<Vec<u8>> = vec![];
        for (kind, epoch, seq, body) in records(&d) {
            if epoch != 0 {
                out.push(record(kind, epoch, seq, &body));
                continue;
            }
            if kind != 22 || body[0] != 1 {
                out.push(record(kind, epoch, self.next_seq, &body));
                self.next_seq += 1;
                continue;
            }
            self.hellos += 1;
            let (head, msg) = body.split_at(12);
            assert_eq!(&head[6..9], &[0, 0, 0], "dimpl sent the hello in one fragment");
            let mut frags = vec![];
            for (i, chunk) in msg.chunks(self.size).enumerate() {
                let off = (i * self.size) as u32;
                let mut h = head[..6].to_vec();
                h.extend_from_slice(&off.to_be_bytes()[1..]);
                h.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
                h.extend_from_slice(chunk);
                frags.push(h);
            }
            if self.reverse {
                frags.reverse();
            }
            for f in frags {
                out.push(record(22, 0, self.next_seq, &f));
                self.next_seq += 1;
            }
        }
        out.chunks(self.per_datagram).map(|c| c.concat()).collect()
    }
}

#[test]
fn a_client_hello_in_fragments_is_reassembled() {
    // dimpl's hybrid ClientHello is 1150 bytes: 8 to 20 fragments, one or several records per
    // datagram, and datagrams arriving in reverse order. (Fragments packed into one datagram
    // last first, which no sender does, are not reassembled by dimpl 0.9's DTLS 1.3 server.)
    for (size, per_datagram, reverse) in [(150, 1, false), (64, 1, true), (100, 3, false), (60, 2, false)] {
        for client_12 in [false, true] {
            let (a, b) = identities();
            let mut relay = DtlsSession::new(&rule(DtlsRole::Passive, a, Some(b)), START_US).unwrap();
            let mut peer = if client_12 {
                dtls12_peer(DtlsRole::Active, b, a)
            } else {
                DtlsSession::new(&rule(DtlsRole::Active, b, Some(a)), START_US).unwrap()
            };
            let mut f = Fragmenter { size, per_datagram, reverse, next_seq: 0, hellos: 0 };
            run(&mut peer, &mut relay, |from_peer, d| if from_peer { f.apply(d) } else { vec![d] });
            assert!(f.hellos >= 1);
            assert_crosswise(&mut relay, &mut peer);
        }
    }
}

#[test]
fn a_client_hello_in_too_many_fragments_fails_bounded() {
    // 31 fragments: more than the 30 records dimpl buffers for reassembly; each retransmission
    // adds datagrams to the auto-sensing server's retained list until it gives up (64)
    let (a, b) = identities();
    let mut relay = DtlsSession::new(&rule(DtlsRole::Passive, a, Some(b)), START_US).unwrap();
    let mut peer = DtlsSession::new(&rule(DtlsRole::Active, b, Some(a)), START_US).unwrap();
    let mut f = Fragmenter { size: 37, per_datagram: 1, reverse: true, next_seq: 0, hellos: 0 };
    run(&mut peer, &mut relay, |from_peer, d| if from_peer { f.apply(d) } else { vec![d] });
    assert!(matches!(relay.state(), DtlsState::Failed(_)), "{relay:?}");
}

/// The first flight of an Active session: the bytes a browser's passive side receives.
fn client_hello() -> Vec<u8> {
    let (mut c, _) = pair(DtlsRole::Active);
    c.poll_transmit().unwrap()
}

#[test]
fn garbage_is_an_error_and_the_handshake_survives_it() {
    let (mut relay, mut peer) = pair(DtlsRole::Passive);
    let hello = client_hello();
    let mut bumped = hello.clone();
    bumped[12] = bumped[12].wrapping_add(1);
    let mut framing_errors: Vec<Vec<u8>> = vec![
        vec![],
        vec![22],
        vec![22, 0xfe, 0xfd, 0, 0],
        vec![22, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0x80, 0, 0, 0],
        vec![0x30],
        vec![0x3c, 0, 0, 0xff],
        bumped,
    ];
    for cut in [1, 12, 13, 25, hello.len() - 1] {
        framing_errors.push(hello[..cut].to_vec());
    }
    framing_errors.push([hello.clone(), vec![22; 9000]].concat());
    for d in &framing_errors {
        assert!(relay.handle_datagram(START_US, d).is_err(), "{d:?}");
        assert_eq!(relay.state(), &DtlsState::Handshaking);
    }
    // framed right, nonsense inside: the library drops it; nothing may panic or fail
    let mut x = 0x1234_5678u32;
    for len in 0..600 {
        let mut d = hello.clone();
        for _ in 0..(len % 7 + 1) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let i = 13 + (x as usize) % (d.len() - 13);
            d[i] = (x >> 8) as u8;
        }
        let _ = relay.handle_datagram(START_US, &d);
        let _ = relay.handle_datagram(START_US, &d[..(13 + len % (d.len() - 13))]);
    }
    let mut relay =
        DtlsSession::new(&rule(DtlsRole::Passive, &identities().0, Some(&identities().1)), START_US).unwrap();
    for d in &framing_errors {
        let _ = relay.handle_datagram(START_US, d);
    }
    run(&mut peer, &mut relay, pass);
    assert_crosswise(&mut relay, &mut peer);
}

#[test]
fn record_framing() {
    let hello = client_hello();
    assert!(record::check_datagram(&hello).is_ok());
    assert!(record::check_datagram(&[hello.clone(), hello.clone()].concat()).is_ok());
    // unified headers: with a length, and without one (runs to the end)
    assert!(record::check_datagram(&[0x2c, 0, 1, 0, 2, 9, 9]).is_ok());
    assert!(record::check_datagram(&[0x2c, 0, 1, 0, 3, 9, 9]).is_err());
    assert!(record::check_datagram(&[0x28, 0, 1, 9, 9, 9]).is_ok());
    assert!(record::check_datagram(&[0x3c, 0, 1, 0, 0]).is_err(), "connection id");
}

#[test]
fn identities_are_p256_self_signed_with_random_serials() {
    let (a, b) = identities();
    assert_eq!(a.fingerprint, fingerprint(HashFunction::Sha256, &a.cert_der));
    assert_eq!(a.fingerprint.value.len(), 32);
    assert_eq!(a.not_after_unix, NOW_UNIX + 30 * 86400);
    assert_ne!(a.fingerprint, b.fingerprint);
    // id-ecPublicKey + prime256v1 + ecdsa-with-SHA256 in the certificate
    let has = |oid: &[u8]| a.cert_der.windows(oid.len()).any(|w| w == oid);
    assert!(has(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]));
    assert!(has(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]));
    assert!(has(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
    // serial: tbsCertificate's first INTEGER after the [0] version: 16 random bytes
    let serial = |der: &[u8]| {
        let at = der.windows(5).position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02]).unwrap() + 5;
        assert_eq!(&der[at..at + 2], &[0x02, 16]);
        der[at + 2..at + 18].to_vec()
    };
    assert_ne!(serial(&a.cert_der), serial(&b.cert_der));
    let parsed = Fingerprint::parse(&a.fingerprint.to_string()).unwrap();
    assert_eq!(&parsed, &a.fingerprint);
}

#[test]
fn fingerprints_match_the_fips_180_vectors() {
    let hex = |f: Fingerprint| f.value.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(fingerprint(HashFunction::Sha1, b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(
        hex(fingerprint(HashFunction::Sha224, b"abc")),
        "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
    );
    assert_eq!(
        hex(fingerprint(HashFunction::Sha256, b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    for h in [HashFunction::Sha384, HashFunction::Sha512] {
        assert_eq!(fingerprint(h, b"abc").value.len(), h.len());
    }
}

/// Writes the fuzz seeds (`cargo test -p relay-core --lib dtls::tests::write_fuzz_seeds -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/dtls");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/client-hello-hybrid"), client_hello()).unwrap();
    let (a, b) = identities();
    let mut c12 = dtls12_peer(DtlsRole::Active, b, a);
    std::fs::write(format!("{dir}/client-hello-dtls12"), c12.poll_transmit().unwrap()).unwrap();
    let mut f = Fragmenter { size: 100, per_datagram: 8, reverse: false, next_seq: 0, hellos: 0 };
    std::fs::write(format!("{dir}/client-hello-fragmented"), f.apply(client_hello()).concat()).unwrap();
}

#[test]
fn sessions_move_between_threads() {
    fn send<T: Send + 'static>() {}
    send::<DtlsSession>();
    send::<DtlsKeys>();
    send::<DtlsError>();
}

/// An identity whose key the library cannot load (it `expect`s on that) fails the session
/// with an error: a panic would end the worker thread and the process.
#[test]
fn an_unusable_private_key_is_an_error_not_a_panic() {
    let mut id = generate_identity(1_800_000_000, 86_400).unwrap();
    id.key_der = vec![0x30, 0x03, 0x02, 0x01, 0x00];
    for role in [DtlsRole::Passive, DtlsRole::Active] {
        let rule = DtlsRule { role, identity: Arc::new(id.clone()), remote_fingerprint: None, generation: 0 };
        match DtlsSession::new(&rule, 1_000) {
            Err(e) => assert!(e.to_string().contains("DTLS library"), "{e}"),
            Ok(mut s) => {
                // the library may load the key lazily: the first ClientHello then fails it
                let hello = client_hello();
                let _ = s.handle_datagram(2_000, &hello);
                assert!(matches!(s.state(), DtlsState::Failed(_)), "{:?}", s.state());
            }
        }
    }
}
