//! STUB for h-plane: replaced by h-dtls's real DTLS-SRTP module at merge (same signatures).
//!
//! A fake handshake good enough for the data plane's tests: the Active side sends one
//! "ClientHello" record (first byte 22) and retransmits it every second; the Passive side
//! answers the first record it gets with one "ServerHello" record and is connected; the
//! Active side is connected on that answer. Both then yield fixed, mirrored keys
//! (client's local = server's remote), once a remote fingerprint is known.

use std::fmt;

use rules::dataplane::{SrtpKey, Suite};
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule, Fingerprint, HashFunction};

const HELLO: &[u8] = b"\x16\xfe\xfdstub-client-hello";
const REPLY: &[u8] = b"\x16\xfe\xfdstub-server-hello";
const RETRANSMIT_US: u64 = 1_000_000;

pub fn generate_identity(now_unix: u64, valid_for_secs: u64) -> Result<DtlsIdentity, DtlsError> {
    Ok(DtlsIdentity {
        cert_der: b"stub-cert".to_vec(),
        key_der: b"stub-key".to_vec(),
        fingerprint: Fingerprint { hash: HashFunction::Sha256, value: vec![0xab; 32] },
        not_after_unix: now_unix + valid_for_secs,
    })
}

pub struct DtlsKeys {
    /// We send with this (srtp_out).
    pub local: SrtpKey,
    /// The peer sends with this (srtp_in).
    pub remote: SrtpKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsState {
    Handshaking,
    Connected,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsError(pub String);

impl fmt::Display for DtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DtlsError {}

pub struct DtlsSession {
    role: DtlsRole,
    state: DtlsState,
    out: Vec<Vec<u8>>,
    next_retransmit: Option<u64>,
    fingerprint: Option<Fingerprint>,
    keys_taken: bool,
}

fn key(seed: u8) -> SrtpKey {
    let s = Suite::AesCm128HmacSha1_80;
    SrtpKey { suite: s, key: vec![seed; s.key_len()], salt: vec![seed ^ 0x5a; s.salt_len()], mki: None }
}

impl DtlsSession {
    pub fn new(rule: &DtlsRule, now_us: u64) -> Result<DtlsSession, DtlsError> {
        let mut s = DtlsSession {
            role: rule.role,
            state: DtlsState::Handshaking,
            out: Vec::new(),
            next_retransmit: None,
            fingerprint: rule.remote_fingerprint.clone(),
            keys_taken: false,
        };
        if rule.role == DtlsRole::Active {
            s.out.push(HELLO.to_vec());
            s.next_retransmit = Some(now_us + RETRANSMIT_US);
        }
        Ok(s)
    }

    pub fn handle_datagram(&mut self, _now_us: u64, datagram: &[u8]) -> Result<(), DtlsError> {
        if datagram.first().is_none_or(|b| !(20..=63).contains(b)) {
            return Err(DtlsError("not a DTLS record".into()));
        }
        match self.role {
            DtlsRole::Passive if datagram == HELLO => {
                self.out.push(REPLY.to_vec());
                self.state = DtlsState::Connected;
            }
            DtlsRole::Active if datagram == REPLY => {
                self.state = DtlsState::Connected;
                self.next_retransmit = None;
            }
            _ => {}
        }
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| self.out.remove(0))
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.next_retransmit
    }

    pub fn handle_timeout(&mut self, now_us: u64) {
        if let Some(t) = self.next_retransmit.filter(|t| *t <= now_us) {
            let _ = t;
            self.out.push(HELLO.to_vec());
            self.next_retransmit = Some(now_us + RETRANSMIT_US);
        }
    }

    pub fn set_remote_fingerprint(&mut self, fp: Fingerprint) {
        self.fingerprint = Some(fp);
    }

    pub fn take_keys(&mut self) -> Option<DtlsKeys> {
        if self.keys_taken || self.state != DtlsState::Connected || self.fingerprint.is_none() {
            return None;
        }
        self.keys_taken = true;
        let (client, server) = (key(1), key(2));
        Some(match self.role {
            DtlsRole::Active => DtlsKeys { local: client, remote: server },
            DtlsRole::Passive => DtlsKeys { local: server, remote: client },
        })
    }

    pub fn state(&self) -> &DtlsState {
        &self.state
    }
}
