//! What a relay socket needs to terminate WebRTC on its side: ICE short-term credentials
//! (the relay answers connectivity and consent checks, RFC 8445/7675) and DTLS-SRTP
//! parameters (RFC 5763/5764: the role the SDP gave the relay, the certificate the SDP
//! advertised, the fingerprint the peer's certificate must match).
//!
//! The control plane decides these from the SDP and the ng flags; the data plane runs the
//! agent and the handshake and, once the handshake completes and the peer's certificate
//! matches, derives the SRTP keys of the socket itself (a DTLS rule carries no SrtpKey).

use std::fmt;
use std::sync::Arc;

/// ICE credentials of one relay socket (RFC 8445 §5.3). The relay is an ICE-lite agent:
/// it answers binding requests whose USERNAME is `local_ufrag:remote_ufrag` and whose
/// MESSAGE-INTEGRITY is keyed with `local_pwd`; it sends no checks of its own.
#[derive(Clone, PartialEq, Eq)]
pub struct IceRule {
    pub local_ufrag: String,
    pub local_pwd: String,
    /// The peer's credentials from its SDP (None until known, e.g. trickle before the answer).
    pub remote_ufrag: Option<String>,
    pub remote_pwd: Option<String>,
}

impl fmt::Debug for IceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // passwords are keys: never logged
        write!(f, "IceRule({}:{})", self.local_ufrag, self.remote_ufrag.as_deref().unwrap_or("?"))
    }
}

/// The DTLS role the relay's SDP announced on this socket (RFC 4145 a=setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DtlsRole {
    /// `a=setup:active`: the relay is the DTLS client and sends the ClientHello.
    Active,
    /// `a=setup:passive`: the relay is the DTLS server and waits for a ClientHello.
    Passive,
}

/// Hash function of an `a=fingerprint` (RFC 8122).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum HashFunction {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashFunction {
    /// The SDP name (`sha-256`).
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Sha1 => "sha-1",
            HashFunction::Sha224 => "sha-224",
            HashFunction::Sha256 => "sha-256",
            HashFunction::Sha384 => "sha-384",
            HashFunction::Sha512 => "sha-512",
        }
    }

    /// The function an SDP name names, in any letter case.
    pub fn from_name(s: &str) -> Option<HashFunction> {
        use HashFunction::*;
        [Sha1, Sha224, Sha256, Sha384, Sha512].into_iter().find(|h| h.name().eq_ignore_ascii_case(s))
    }

    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            HashFunction::Sha1 => 20,
            HashFunction::Sha224 => 28,
            HashFunction::Sha256 => 32,
            HashFunction::Sha384 => 48,
            HashFunction::Sha512 => 64,
        }
    }
}

/// A certificate fingerprint: `a=fingerprint:sha-256 AB:CD:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub hash: HashFunction,
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// Parses the value of an `a=fingerprint` attribute (`sha-256 AB:CD:..`); None when the
    /// hash is unknown or the digest is not colon-separated hex of the hash's length.
    pub fn parse(s: &str) -> Option<Fingerprint> {
        let (h, v) = s.trim().split_once(' ')?;
        let hash = HashFunction::from_name(h)?;
        let value = v
            .trim()
            .split(':')
            .map(|b| if b.len() == 2 { u8::from_str_radix(b, 16).ok() } else { None })
            .collect::<Option<Vec<u8>>>()?;
        (value.len() == hash.len()).then_some(Fingerprint { hash, value })
    }
}

/// `sha-256 AB:CD:...`, upper-case hex as browsers write it.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hash.name())?;
        for (i, b) in self.value.iter().enumerate() {
            write!(f, "{}{:02X}", if i == 0 { ' ' } else { ':' }, b)?;
        }
        Ok(())
    }
}

/// The relay's DTLS certificate and private key. One per process, renewed before it
/// expires; a call keeps the identity its SDP advertised (the rule holds an `Arc` of it).
#[derive(Clone, PartialEq, Eq)]
pub struct DtlsIdentity {
    /// X.509 certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// SHA-256 fingerprint of `cert_der`: what the SDP advertises.
    pub fingerprint: Fingerprint,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: u64,
}

impl fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DtlsIdentity({})", self.fingerprint)
    }
}

impl Drop for DtlsIdentity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_der);
    }
}

/// DTLS-SRTP on one relay socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsRule {
    pub role: DtlsRole,
    pub identity: Arc<DtlsIdentity>,
    /// The peer's certificate must match this (None: the peer's SDP gave none yet; the
    /// handshake then completes only once a rule with one is applied).
    pub remote_fingerprint: Option<Fingerprint>,
    /// Changes when the peer's fingerprint or `a=tls-id` changes (RFC 8842): the data plane
    /// then starts a new handshake. A rule applied again with the same role, identity,
    /// fingerprint and generation keeps the running association and its keys.
    pub generation: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_refuse_bad_digests() {
        let s =
            "sha-256 D1:2C:7A:32:68:8F:30:BE:3F:61:4E:3A:2A:3C:85:A8:AF:4E:C7:9E:54:2B:5B:52:8D:6E:AA:EE:7C:7B:5F:F9";
        let f = Fingerprint::parse(s).unwrap();
        assert_eq!((f.hash, f.value.len()), (HashFunction::Sha256, 32));
        assert_eq!(f.to_string(), s);
        assert_eq!(Fingerprint::parse(&s.to_ascii_lowercase().replace("sha-256", "SHA-256")), Some(f));
        for bad in [
            "sha-256 D1:2C",
            "md5 D1:2C",
            "sha-1",
            "sha-1 GG:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
            "",
        ] {
            assert_eq!(Fingerprint::parse(bad), None, "{bad}");
        }
    }
}
