//! A structural check of a datagram's DTLS record framing before the library sees it, so
//! that noise on the media port is reported to the caller (dropped and counted) instead of
//! being swallowed silently. It proves nothing about the contents: the library still
//! parses and authenticates every record.

use super::DtlsError;

/// DTLSPlaintext / DTLSCiphertext (RFC 6347 §4.1) header: type, version, epoch, sequence, length.
const PLAINTEXT_HEADER: usize = 13;

/// Record content types a DTLS 1.2 peer sends in the classic header (RFC 8446 §5 registry:
/// change_cipher_spec 20, alert 21, handshake 22, application_data 23, heartbeat 24,
/// tls12_cid 25, ack 26 in DTLS 1.3's plaintext epochs).
const PLAINTEXT_TYPES: std::ops::RangeInclusive<u8> = 20..=26;

/// Every record in `datagram` is complete: a classic header whose DTLS version and length
/// fit, or a DTLS 1.3 unified header (RFC 9147 §4, first bits 001) without a connection id
/// (none is negotiated) whose length, when present, fits.
pub(super) fn check_datagram(datagram: &[u8]) -> Result<(), DtlsError> {
    let bad = |why: &str| Err(DtlsError(format!("malformed DTLS datagram: {why}")));
    if datagram.is_empty() {
        return bad("empty");
    }
    let mut rest = datagram;
    while let Some(&first) = rest.first() {
        if PLAINTEXT_TYPES.contains(&first) {
            if rest.len() < PLAINTEXT_HEADER {
                return bad("truncated record header");
            }
            if rest[1] != 0xfe {
                return bad("not a DTLS version");
            }
            let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
            rest = match rest.get(PLAINTEXT_HEADER + len..) {
                Some(r) => r,
                None => return bad("record longer than the datagram"),
            };
        } else if first & 0xe0 == 0x20 {
            if first & 0x10 != 0 {
                return bad("connection id in a unified header");
            }
            let seq_len = if first & 0x08 != 0 { 2 } else { 1 };
            let header = 1 + seq_len + if first & 0x04 != 0 { 2 } else { 0 };
            if rest.len() < header {
                return bad("truncated unified header");
            }
            if first & 0x04 == 0 {
                // no length: the record runs to the end of the datagram
                return Ok(());
            }
            let len = usize::from(u16::from_be_bytes([rest[1 + seq_len], rest[2 + seq_len]]));
            rest = match rest.get(header + len..) {
                Some(r) => r,
                None => return bad("record longer than the datagram"),
            };
        } else {
            return bad("not a DTLS record");
        }
    }
    Ok(())
}
