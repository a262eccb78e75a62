//! The process's DTLS certificate: one self-signed ECDSA P-256 certificate, made at start
//! and renewed a week before it expires. A call keeps the certificate its SDP advertised
//! (its legs hold the `Arc`), so renewal never breaks a running call.

use std::sync::Arc;

use rules::webrtc::DtlsIdentity;

/// How long a certificate is valid. Browsers do not check the validity of a self-signed
/// DTLS certificate (the fingerprint is what is checked), but a bounded life keeps a key
/// from serving for years.
pub const VALIDITY_SECS: u64 = 30 * 86_400;
/// Renew when less than this is left: longer than any call lasts.
pub const RENEW_BEFORE_SECS: u64 = 7 * 86_400;

/// A new identity valid from `now_unix`.
pub fn fresh(now_unix: u64) -> Result<Arc<DtlsIdentity>, String> {
    relay_core::dtls::generate_identity(now_unix, VALIDITY_SECS)
        .map(Arc::new)
        .map_err(|e| format!("cannot make the DTLS certificate: {e}"))
}

/// The identity is due for renewal at `now_unix`.
pub fn needs_renewal(identity: &DtlsIdentity, now_unix: u64) -> bool {
    identity.not_after_unix.saturating_sub(now_unix) < RENEW_BEFORE_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_identity_lasts_until_a_week_before_it_expires() {
        let now = 1_800_000_000;
        let id = fresh(now).unwrap();
        assert_eq!(id.fingerprint.value.len(), 32);
        assert!(!needs_renewal(&id, now));
        assert!(!needs_renewal(&id, now + VALIDITY_SECS - RENEW_BEFORE_SECS - 1));
        assert!(needs_renewal(&id, now + VALIDITY_SECS - RENEW_BEFORE_SECS + 1));
        assert!(needs_renewal(&id, u64::MAX));
        assert_ne!(fresh(now).unwrap().fingerprint, id.fingerprint, "every identity has its own key");
    }
}
