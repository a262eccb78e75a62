//! OpenSSL's DTLS through memory buffers (what rtpengine, Asterisk and FreeSWITCH use): the
//! alternative relay_core::dtls (dimpl) was measured against in `dtls_bench`, and an
//! independent DTLS-SRTP peer for the interop tests (tests/dtls_openssl.rs). Each write of
//! OpenSSL's BIO is one datagram; reads hand it one datagram or WouldBlock. OpenSSL's
//! retransmission timer reads the wall clock, so this side is not sans-IO: fine for a peer
//! on a lossless in-memory wire.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::ssl::{
    HandshakeError, MidHandshakeSslStream, Ssl, SslContext, SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::X509;

/// Every use_srtp profile relayd implements, in relayd's order (RFC 5764, RFC 7714).
pub const ALL_PROFILES: &str =
    "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32";

#[derive(Default)]
pub struct Wire {
    inbox: VecDeque<Vec<u8>>,
    outbox: VecDeque<Vec<u8>>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let d = self.inbox.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.outbox.push_back(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Stage {
    Handshaking(MidHandshakeSslStream<Wire>),
    Done(SslStream<Wire>),
    Failed(String),
}

/// One OpenSSL DTLS endpoint (DTLS 1.2 with the system's OpenSSL 3), certificate verified
/// by the caller (any certificate is accepted, as WebRTC does before the fingerprint check).
pub struct OpensslDtls {
    stage: Stage,
}

impl OpensslDtls {
    /// An endpoint with its own context (tests).
    pub fn new(client: bool, cert_der: &[u8], key_pkcs8: &[u8], profiles: &str) -> Result<OpensslDtls, ErrorStack> {
        OpensslDtls::with_context(&Self::context(cert_der, key_pkcs8, profiles)?, client)
    }

    /// The per-process part (a relay builds it once): certificate, key, use_srtp profiles.
    pub fn context(cert_der: &[u8], key_pkcs8: &[u8], profiles: &str) -> Result<SslContext, ErrorStack> {
        let mut ctx = SslContext::builder(SslMethod::dtls())?;
        let cert = X509::from_der(cert_der)?;
        let key = PKey::private_key_from_pkcs8(key_pkcs8)?;
        ctx.set_certificate(&cert)?;
        ctx.set_private_key(&key)?;
        ctx.set_tlsext_use_srtp(profiles)?;
        ctx.set_verify_callback(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT, |_, _| true);
        ctx.set_options(SslOptions::NO_QUERY_MTU);
        Ok(ctx.build())
    }

    /// The per-session part: one SSL on memory buffers.
    pub fn with_context(ctx: &SslContext, client: bool) -> Result<OpensslDtls, ErrorStack> {
        let mut ssl = Ssl::new(ctx)?;
        ssl.set_mtu(1200)?;
        let r = if client { ssl.connect(Wire::default()) } else { ssl.accept(Wire::default()) };
        Ok(OpensslDtls { stage: Self::stage(r) })
    }

    fn stage(r: Result<SslStream<Wire>, HandshakeError<Wire>>) -> Stage {
        match r {
            Ok(s) => Stage::Done(s),
            Err(HandshakeError::WouldBlock(m)) => Stage::Handshaking(m),
            Err(HandshakeError::SetupFailure(e)) => Stage::Failed(e.to_string()),
            Err(HandshakeError::Failure(m)) => Stage::Failed(m.error().to_string()),
        }
    }

    fn wire(&mut self) -> Option<&mut Wire> {
        match &mut self.stage {
            Stage::Handshaking(m) => Some(m.get_mut()),
            Stage::Done(s) => Some(s.get_mut()),
            Stage::Failed(_) => None,
        }
    }

    pub fn handle_datagram(&mut self, d: &[u8]) {
        if let Some(w) = self.wire() {
            w.inbox.push_back(d.to_vec());
        }
        if let Stage::Handshaking(_) = self.stage {
            let Stage::Handshaking(m) = std::mem::replace(&mut self.stage, Stage::Failed(String::new())) else {
                unreachable!()
            };
            self.stage = Self::stage(m.handshake());
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.wire()?.outbox.pop_front()
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    pub fn failure(&self) -> Option<&str> {
        match &self.stage {
            Stage::Failed(why) => Some(why),
            _ => None,
        }
    }

    /// The negotiated profile's name and the RFC 5764 §4.2 keying material
    /// (`client key | server key | client salt | server salt`).
    pub fn srtp_export(&self) -> Option<(&'static str, Vec<u8>)> {
        let Stage::Done(s) = &self.stage else { return None };
        let profile = s.ssl().selected_srtp_profile()?;
        let (name, len) = match profile.name() {
            "SRTP_AEAD_AES_256_GCM" => ("SRTP_AEAD_AES_256_GCM", 2 * (32 + 12)),
            "SRTP_AEAD_AES_128_GCM" => ("SRTP_AEAD_AES_128_GCM", 2 * (16 + 12)),
            "SRTP_AES128_CM_SHA1_80" => ("SRTP_AES128_CM_SHA1_80", 2 * (16 + 14)),
            "SRTP_AES128_CM_SHA1_32" => ("SRTP_AES128_CM_SHA1_32", 2 * (16 + 14)),
            _ => return None,
        };
        let mut out = vec![0; len];
        s.ssl().export_keying_material(&mut out, "EXTRACTOR-dtls_srtp", None).ok()?;
        Some((name, out))
    }

    /// The peer's certificate, DER.
    pub fn peer_cert_der(&self) -> Option<Vec<u8>> {
        let Stage::Done(s) = &self.stage else { return None };
        s.ssl().peer_certificate()?.to_der().ok()
    }
}
