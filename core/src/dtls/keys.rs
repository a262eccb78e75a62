//! SRTP master keys from the DTLS exporter (RFC 5764 §4.2): the exported block is
//! `client_write_key | server_write_key | client_write_salt | server_write_salt`, and each
//! side sends with its own write key.

use dimpl::SrtpProfile;
use rules::dataplane::{SrtpKey, Suite};
use rules::webrtc::DtlsRole;

use super::{DtlsError, DtlsKeys};

/// The SDES suite that has the same transforms and lengths as a use_srtp profile
/// (RFC 5764 §4.1.2, RFC 7714 §14.2).
pub(super) fn suite_of(profile: SrtpProfile) -> Option<Suite> {
    match profile {
        SrtpProfile::AEAD_AES_256_GCM => Some(Suite::AeadAes256Gcm),
        SrtpProfile::AEAD_AES_128_GCM => Some(Suite::AeadAes128Gcm),
        SrtpProfile::AES128_CM_SHA1_80 => Some(Suite::AesCm128HmacSha1_80),
        SrtpProfile::AES128_CM_SHA1_32 => Some(Suite::AesCm128HmacSha1_32),
        _ => None,
    }
}

/// Splits exported keying material into the relay's (`local`) and the peer's (`remote`) keys:
/// the DTLS client's write key is `local` when the relay is the client (`Active`).
pub(super) fn split(material: &[u8], profile: SrtpProfile, role: DtlsRole) -> Result<DtlsKeys, DtlsError> {
    let suite = suite_of(profile).ok_or_else(|| DtlsError(format!("unsupported SRTP profile {profile}")))?;
    let (k, s) = (suite.key_len(), suite.salt_len());
    if material.len() < 2 * (k + s) {
        return Err(DtlsError(format!("{} bytes of keying material for {profile}", material.len())));
    }
    let key = |key_at: usize, salt_at: usize| {
        SrtpKey::new(suite, &material[key_at..key_at + k], &material[salt_at..salt_at + s])
            .map_err(|e| DtlsError(e.to_string()))
    };
    let client = key(0, 2 * k)?;
    let server = key(k, 2 * k + s)?;
    Ok(match role {
        DtlsRole::Active => DtlsKeys { local: client, remote: server },
        DtlsRole::Passive => DtlsKeys { local: server, remote: client },
    })
}
