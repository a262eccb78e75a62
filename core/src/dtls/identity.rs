//! The relay's DTLS certificate (RFC 5763 §5: self-signed, identified by the fingerprint the
//! SDP carries) and certificate fingerprints under any `a=fingerprint` hash (RFC 8122).

use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber, PKCS_ECDSA_P256_SHA256};
use ring::rand::SecureRandom;
use rules::webrtc::{DtlsIdentity, Fingerprint, HashFunction};
use sha2::Digest;

use super::DtlsError;

/// Validity starts this long before `now_unix`: a peer whose clock is a little behind ours
/// must not see a certificate from the future (browsers do not check, other stacks may).
const BACKDATE_SECS: u64 = 24 * 3600;

/// One self-signed ECDSA P-256 certificate valid from `now_unix` (backdated a day) for
/// `valid_for_secs`, with a random 127-bit serial: Firefox refuses a second certificate with
/// an issuer and serial it has seen before (mediasoup #127, str0m #517), so serials must not
/// repeat across processes or machines.
pub fn generate_identity(now_unix: u64, valid_for_secs: u64) -> Result<DtlsIdentity, DtlsError> {
    let fail = |what: &str| DtlsError(format!("certificate generation failed: {what}"));
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| fail(&e.to_string()))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e.to_string()))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "relayd");
    params.distinguished_name = name;
    params.is_ca = IsCa::NoCa;
    let not_after_unix = now_unix.saturating_add(valid_for_secs);
    params.not_before = unix_time(now_unix.saturating_sub(BACKDATE_SECS)).ok_or_else(|| fail("time"))?;
    params.not_after = unix_time(not_after_unix).ok_or_else(|| fail("time"))?;
    let mut serial = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut serial).map_err(|_| fail("no randomness"))?;
    // a positive DER INTEGER with no leading zero byte to strip
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(|e| fail(&e.to_string()))?;
    let cert_der = cert.der().to_vec();
    let fingerprint = fingerprint(HashFunction::Sha256, &cert_der);
    Ok(DtlsIdentity { cert_der, key_der: key.serialize_der(), fingerprint, not_after_unix })
}

fn unix_time(secs: u64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()
}

/// The fingerprint of a DER certificate under `hash`.
pub fn fingerprint(hash: HashFunction, cert_der: &[u8]) -> Fingerprint {
    let value = match hash {
        HashFunction::Sha1 => {
            use sha1::Digest as _;
            sha1::Sha1::digest(cert_der).to_vec()
        }
        HashFunction::Sha224 => sha2::Sha224::digest(cert_der).to_vec(),
        HashFunction::Sha256 => sha2::Sha256::digest(cert_der).to_vec(),
        HashFunction::Sha384 => sha2::Sha384::digest(cert_der).to_vec(),
        HashFunction::Sha512 => sha2::Sha512::digest(cert_der).to_vec(),
    };
    Fingerprint { hash, value }
}

/// The certificate matches the `a=fingerprint` the peer's SDP gave.
pub(super) fn matches(expected: &Fingerprint, cert_der: &[u8]) -> bool {
    fingerprint(expected.hash, cert_der) == *expected
}
