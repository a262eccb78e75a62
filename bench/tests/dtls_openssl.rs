//! relay_core::dtls (dimpl) against OpenSSL's DTLS (the stack aiortc, rtpengine, Asterisk
//! and FreeSWITCH use), in both roles, with OpenSSL offering one use_srtp profile at a
//! time: the handshake completes, the certificates cross, and the SRTP keys the relay
//! hands out are the ones OpenSSL's own RFC 5764 exporter gives (an independent
//! implementation of the key export and of the client/server key split).

use std::sync::Arc;

use bench::dtls_openssl::{OpensslDtls, ALL_PROFILES};
use relay_core::dtls::{generate_identity, DtlsKeys, DtlsSession, DtlsState};
use rules::dataplane::Suite;
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule};

fn handshake(role: DtlsRole, profiles: &str) -> (DtlsSession, OpensslDtls, Arc<DtlsIdentity>) {
    let relay_id = Arc::new(generate_identity(1_790_000_000, 86400).unwrap());
    let peer_id = generate_identity(1_790_000_000, 86400).unwrap();
    let rule = DtlsRule {
        role,
        identity: relay_id.clone(),
        remote_fingerprint: Some(peer_id.fingerprint.clone()),
        generation: 0,
    };
    let mut now = 1_000_000;
    let mut relay = DtlsSession::new(&rule, now).unwrap();
    let mut peer = OpensslDtls::new(role == DtlsRole::Passive, &peer_id.cert_der, &peer_id.key_der, profiles).unwrap();
    for _ in 0..200 {
        let mut moved = false;
        while let Some(d) = relay.poll_transmit() {
            moved = true;
            peer.handle_datagram(&d);
        }
        while let Some(d) = peer.poll_transmit() {
            moved = true;
            let _ = relay.handle_datagram(now, &d);
        }
        let relay_done = relay.state() != &DtlsState::Handshaking;
        if !moved && (relay_done || peer.failure().is_some()) && (peer.is_connected() || peer.failure().is_some()) {
            break;
        }
        if !moved {
            match relay.poll_timeout() {
                Some(t) => {
                    now = now.max(t);
                    relay.handle_timeout(now);
                }
                None => break,
            }
        }
    }
    (relay, peer, relay_id)
}

/// The relay's keys against OpenSSL's export: client key | server key | client salt | server salt.
fn check_keys(role: DtlsRole, keys: &DtlsKeys, material: &[u8]) {
    let (k, s) = (keys.local.key.len(), keys.local.salt.len());
    assert_eq!(material.len(), 2 * (k + s));
    let client = (&material[..k], &material[2 * k..2 * k + s]);
    let server = (&material[k..2 * k], &material[2 * k + s..]);
    let (local, remote) = if role == DtlsRole::Active { (client, server) } else { (server, client) };
    assert_eq!((&keys.local.key[..], &keys.local.salt[..]), local);
    assert_eq!((&keys.remote.key[..], &keys.remote.salt[..]), remote);
}

#[test]
fn openssl_peers_get_the_same_srtp_keys_in_either_role_and_every_profile() {
    for role in [DtlsRole::Active, DtlsRole::Passive] {
        for (profile, suite) in [
            ("SRTP_AEAD_AES_256_GCM", Suite::AeadAes256Gcm),
            ("SRTP_AEAD_AES_128_GCM", Suite::AeadAes128Gcm),
            ("SRTP_AES128_CM_SHA1_80", Suite::AesCm128HmacSha1_80),
            // dimpl 0.9.0 failed this one; the copy in vendor/dimpl adds it (PATCHES.md)
            ("SRTP_AES128_CM_SHA1_32", Suite::AesCm128HmacSha1_32),
            // OpenSSL's default order: the relay's preference (AES-256-GCM) must win
            (ALL_PROFILES, Suite::AeadAes256Gcm),
        ] {
            let (mut relay, peer, relay_id) = handshake(role, profile);
            assert_eq!(peer.failure(), None, "{role:?} {profile}");
            assert_eq!(relay.state(), &DtlsState::Connected, "{role:?} {profile}");
            assert_eq!(peer.peer_cert_der().as_deref(), Some(&relay_id.cert_der[..]));
            let keys = relay.take_keys().unwrap();
            assert_eq!(keys.local.suite, suite, "{role:?} {profile}");
            let (name, material) = peer.srtp_export().unwrap();
            assert!(profile.starts_with(name) || profile == ALL_PROFILES, "{name}");
            check_keys(role, &keys, &material);
        }
    }
}
