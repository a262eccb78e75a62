//! STUN messages (RFC 8489, which obsoletes RFC 5389) as the relay's ICE-lite agent needs
//! them: a checked view over a received datagram, typed attributes, and a writer for the
//! responses. Short-term credentials only (ICE, RFC 8445 §7.2.2): the MESSAGE-INTEGRITY key
//! is the password itself; long-term credentials (TURN) are not spoken on media ports.
//!
//! A datagram is validated once by [`StunMessage::new_checked`]: header, magic cookie,
//! length, every attribute's bounds and padding, and the length of every attribute this
//! module knows. After that the getters cannot fail and nothing reads out of bounds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ring::hmac;

pub const HEADER_LEN: usize = 20;
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// FINGERPRINT is the CRC-32 of the message XORed with this ("STUN"), RFC 8489 §14.7.
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// The only method ICE uses.
pub const BINDING: u16 = 0x001;
/// The HMAC-SHA1 of MESSAGE-INTEGRITY.
pub const INTEGRITY_LEN: usize = 20;

/// The 96-bit transaction id a response copies from its request.
pub type TransactionId = [u8; 12];

/// Attribute types (RFC 8489 §18.3, RFC 8445 §16.1). Below 0x8000 an agent that does not
/// know the attribute must refuse the message; from 0x8000 on it may ignore it.
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;

    /// Comprehension-required: an unknown one makes a request fail with 420.
    pub fn is_comprehension_required(kind: u16) -> bool {
        kind < 0x8000
    }
}

/// Why a datagram is not a well-formed STUN message (each a counted drop reason of the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunError {
    /// Shorter than the 20-byte header.
    TooShort,
    /// The two leading zero bits or the magic cookie are wrong: not (RFC 5389+) STUN.
    NotStun,
    /// The length field is not a multiple of 4 or does not cover exactly the datagram.
    BadLength,
    /// An attribute runs past the end of the message.
    TruncatedAttribute,
    /// A known attribute has a value of the wrong size or content.
    BadAttribute(u16),
    /// FINGERPRINT is not the last attribute.
    MisplacedFingerprint,
}

/// The class bits of the message type (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

/// The 14-bit message type of a method and class: the class bits C0/C1 sit between the
/// method bits (RFC 8489 §5, figure 3).
pub fn message_type(class: Class, method: u16) -> u16 {
    (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | class.bits()
}

/// One attribute of a message, decoded. Unknown kinds, and the known ones the relay only
/// passes through, stay raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr<'a> {
    /// `local_ufrag:remote_ufrag` in ICE; raw bytes (compared, never interpreted).
    Username(&'a [u8]),
    MessageIntegrity(&'a [u8; INTEGRITY_LEN]),
    /// The CRC value as sent (already XORed with [`FINGERPRINT_XOR`]).
    Fingerprint(u32),
    XorMappedAddress(SocketAddr),
    ErrorCode {
        code: u16,
        reason: &'a [u8],
    },
    UnknownAttributes(&'a [u8]),
    Priority(u32),
    UseCandidate,
    IceControlled(u64),
    IceControlling(u64),
    Software(&'a [u8]),
    Other {
        kind: u16,
        value: &'a [u8],
    },
}

impl<'a> Attr<'a> {
    /// Decodes a known attribute's value; `txid` unmasks XOR-MAPPED-ADDRESS.
    pub fn parse(kind: u16, value: &'a [u8], txid: &TransactionId) -> Result<Attr<'a>, StunError> {
        let bad = StunError::BadAttribute(kind);
        Ok(match kind {
            attr::USERNAME if value.len() <= 513 => Attr::Username(value),
            attr::MESSAGE_INTEGRITY => Attr::MessageIntegrity(value.try_into().map_err(|_| bad)?),
            attr::FINGERPRINT => Attr::Fingerprint(u32::from_be_bytes(value.try_into().map_err(|_| bad)?)),
            attr::XOR_MAPPED_ADDRESS => Attr::XorMappedAddress(xor_address(value, txid).ok_or(bad)?),
            attr::ERROR_CODE => {
                let [0, 0, class, number, ..] = *value else { return Err(bad) };
                let code = (class & 0x7) as u16 * 100 + number as u16;
                if !(300..700).contains(&code) || number >= 100 {
                    return Err(bad);
                }
                Attr::ErrorCode { code, reason: &value[4..] }
            }
            attr::UNKNOWN_ATTRIBUTES if value.len().is_multiple_of(2) => Attr::UnknownAttributes(value),
            attr::PRIORITY => Attr::Priority(u32::from_be_bytes(value.try_into().map_err(|_| bad)?)),
            attr::USE_CANDIDATE if value.is_empty() => Attr::UseCandidate,
            attr::ICE_CONTROLLED => Attr::IceControlled(u64::from_be_bytes(value.try_into().map_err(|_| bad)?)),
            attr::ICE_CONTROLLING => Attr::IceControlling(u64::from_be_bytes(value.try_into().map_err(|_| bad)?)),
            attr::SOFTWARE if value.len() <= 763 => Attr::Software(value),
            attr::USERNAME | attr::UNKNOWN_ATTRIBUTES | attr::USE_CANDIDATE | attr::SOFTWARE => return Err(bad),
            kind => Attr::Other { kind, value },
        })
    }

    pub fn kind(&self) -> u16 {
        match self {
            Attr::Username(_) => attr::USERNAME,
            Attr::MessageIntegrity(_) => attr::MESSAGE_INTEGRITY,
            Attr::Fingerprint(_) => attr::FINGERPRINT,
            Attr::XorMappedAddress(_) => attr::XOR_MAPPED_ADDRESS,
            Attr::ErrorCode { .. } => attr::ERROR_CODE,
            Attr::UnknownAttributes(_) => attr::UNKNOWN_ATTRIBUTES,
            Attr::Priority(_) => attr::PRIORITY,
            Attr::UseCandidate => attr::USE_CANDIDATE,
            Attr::IceControlled(_) => attr::ICE_CONTROLLED,
            Attr::IceControlling(_) => attr::ICE_CONTROLLING,
            Attr::Software(_) => attr::SOFTWARE,
            Attr::Other { kind, .. } => *kind,
        }
    }
}

/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2): the port masked with the cookie's top half, an
/// IPv4 address with the cookie, an IPv6 address with the cookie and the transaction id.
fn xor_mask(txid: &TransactionId) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[4..].copy_from_slice(txid);
    m
}

fn xor_address(v: &[u8], txid: &TransactionId) -> Option<SocketAddr> {
    let mask = xor_mask(txid);
    let port = u16::from_be_bytes([v.get(2)? ^ mask[0], v.get(3)? ^ mask[1]]);
    let ip = match (v[1], v.len()) {
        (1, 8) => IpAddr::V4(Ipv4Addr::from(std::array::from_fn::<u8, 4, _>(|i| v[4 + i] ^ mask[i]))),
        (2, 20) => IpAddr::V6(Ipv6Addr::from(std::array::from_fn::<u8, 16, _>(|i| v[4 + i] ^ mask[i]))),
        _ => return None,
    };
    (v[0] == 0).then_some(SocketAddr::new(ip, port))
}

/// Attribute values are padded to a multiple of 4 bytes (RFC 8489 §14).
fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// One attribute as it sits in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttr<'a> {
    pub kind: u16,
    pub value: &'a [u8],
    /// Where the attribute's header starts in the message.
    pub offset: usize,
}

/// Walks attributes from `offset`, each padded to 4 bytes; a truncated one ends the walk
/// (impossible on a checked message).
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttr<'a>;

    fn next(&mut self) -> Option<RawAttr<'a>> {
        let h = self.buf.get(self.offset..self.offset + 4)?;
        let (kind, len) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]]) as usize);
        let start = self.offset + 4;
        let value = self.buf.get(start..start + len)?;
        let offset = self.offset;
        self.offset = start + padded(len);
        Some(RawAttr { kind, value, offset })
    }
}

/// A validated STUN message over a buffer (smoltcp style: checked once, read in place).
#[derive(Debug, Clone, Copy)]
pub struct StunMessage<T: AsRef<[u8]>> {
    buf: T,
    /// Offset of the first MESSAGE-INTEGRITY attribute.
    integrity_at: Option<usize>,
    /// Offset of the FINGERPRINT attribute (always the last one).
    fingerprint_at: Option<usize>,
}

impl<T: AsRef<[u8]>> StunMessage<T> {
    /// Validates the header (zero leading bits, magic cookie, a length that is a multiple of
    /// 4 and covers exactly the datagram) and every attribute (bounds, padding, the value of
    /// every kind [`Attr::parse`] knows, FINGERPRINT last).
    pub fn new_checked(buf: T) -> Result<Self, StunError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(StunError::TooShort);
        }
        if b[0] & 0xC0 != 0 || b[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(StunError::NotStun);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if !len.is_multiple_of(4) || HEADER_LEN + len != b.len() {
            return Err(StunError::BadLength);
        }
        let txid: &TransactionId = b[8..20].try_into().unwrap_or(&[0; 12]);
        let (mut integrity_at, mut fingerprint_at, mut end) = (None, None, HEADER_LEN);
        for a in (Attributes { buf: b, offset: HEADER_LEN }) {
            if fingerprint_at.is_some() {
                return Err(StunError::MisplacedFingerprint);
            }
            Attr::parse(a.kind, a.value, txid)?;
            match a.kind {
                attr::MESSAGE_INTEGRITY => integrity_at = integrity_at.or(Some(a.offset)),
                attr::FINGERPRINT => fingerprint_at = Some(a.offset),
                _ => {}
            }
            end = a.offset + 4 + padded(a.value.len());
        }
        if end != b.len() {
            return Err(StunError::TruncatedAttribute);
        }
        Ok(StunMessage { buf, integrity_at, fingerprint_at })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn message_type(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }

    pub fn class(&self) -> Class {
        match self.message_type() & 0x110 {
            0x000 => Class::Request,
            0x010 => Class::Indication,
            0x100 => Class::Success,
            _ => Class::Error,
        }
    }

    pub fn method(&self) -> u16 {
        let t = self.message_type();
        (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80)
    }

    pub fn transaction_id(&self) -> &TransactionId {
        self.b()[8..20].try_into().unwrap_or(&[0; 12])
    }

    /// Every attribute in order, including those after MESSAGE-INTEGRITY.
    pub fn attributes(&self) -> Attributes<'_> {
        Attributes { buf: self.b(), offset: HEADER_LEN }
    }

    /// The attributes that count (RFC 8489 §14.5): those up to and including the first
    /// MESSAGE-INTEGRITY, then FINGERPRINT; anything between is ignored.
    pub fn attrs(&self) -> impl Iterator<Item = Attr<'_>> {
        let (mi, fp) = (self.integrity_at, self.fingerprint_at);
        let txid = self.transaction_id();
        self.attributes()
            .filter(move |a| mi.is_none_or(|m| a.offset <= m) || Some(a.offset) == fp)
            .filter_map(move |a| Attr::parse(a.kind, a.value, txid).ok())
    }

    /// The first attribute of `kind` that counts.
    pub fn get(&self, kind: u16) -> Option<Attr<'_>> {
        self.attrs().find(|a| a.kind() == kind)
    }

    pub fn has_integrity(&self) -> bool {
        self.integrity_at.is_some()
    }

    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint_at.is_some()
    }

    /// MESSAGE-INTEGRITY checked with `key` (RFC 8489 §14.5: HMAC-SHA1 over the message up
    /// to the attribute, with the header's length field set as if the message ended right
    /// after it). None when the message has none. The comparison takes constant time.
    pub fn verify_integrity(&self, key: &hmac::Key) -> Option<bool> {
        let at = self.integrity_at?;
        let tag = integrity_tag(key, &self.b()[..at]);
        let sent = &self.b()[at + 4..at + 4 + INTEGRITY_LEN];
        Some(tag.iter().zip(sent).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0)
    }

    /// FINGERPRINT checked (RFC 8489 §14.7); None when the message has none.
    pub fn verify_fingerprint(&self) -> Option<bool> {
        let at = self.fingerprint_at?;
        let b = self.b();
        let sent = u32::from_be_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]);
        Some(fingerprint(&b[..at]) == sent)
    }
}

/// HMAC-SHA1 of `msg` (a message up to where MESSAGE-INTEGRITY goes) with its length field
/// counting that attribute.
fn integrity_tag(key: &hmac::Key, msg: &[u8]) -> [u8; INTEGRITY_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&msg[..HEADER_LEN]);
    header[2..4].copy_from_slice(&((msg.len() - HEADER_LEN + 4 + INTEGRITY_LEN) as u16).to_be_bytes());
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&header);
    ctx.update(&msg[HEADER_LEN..]);
    let mut tag = [0u8; INTEGRITY_LEN];
    tag.copy_from_slice(ctx.sign().as_ref());
    tag
}

/// The FINGERPRINT value of `msg` (a message up to where FINGERPRINT goes), its length
/// field counting that attribute.
fn fingerprint(msg: &[u8]) -> u32 {
    let len = ((msg.len() - HEADER_LEN + 8) as u16).to_be_bytes();
    let crc = crc32_update(crc32_update(crc32_update(!0, &msg[..2]), &len), &msg[4..]);
    !crc ^ FINGERPRINT_XOR
}

/// The short-term credential key (RFC 8489 §9.1.1): the password itself. ICE passwords
/// are ice-chars (ALPHA / DIGIT / "+" / "/"), which OpaqueString leaves as they are.
pub fn short_term_key(password: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes())
}

/// CRC-32 (ISO-HDLC: polynomial 0xEDB88320 reflected, the one of Ethernet and zlib), table
/// built at compile time. One per STUN message: no need for a SIMD crate.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// Appends a STUN message to a buffer: the header, then attributes, each added with the
/// length field kept current so MESSAGE-INTEGRITY and FINGERPRINT cover what precedes them.
pub struct StunWriter<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    txid: TransactionId,
    padding: u8,
}

impl<'a> StunWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>, class: Class, method: u16, txid: &TransactionId) -> StunWriter<'a> {
        let start = out.len();
        out.extend_from_slice(&message_type(class, method).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(txid);
        StunWriter { out, start, txid: *txid, padding: 0 }
    }

    /// The byte padding is made of (zero unless set; RFC 5769's vectors pad with spaces).
    pub fn padding_byte(mut self, b: u8) -> Self {
        self.padding = b;
        self
    }

    /// Appends a raw attribute, padded to 4 bytes.
    pub fn raw(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        self.push(kind, value, &[])
    }

    /// Appends an attribute whose value is `head` then `tail`.
    fn push(&mut self, kind: u16, head: &[u8], tail: &[u8]) -> &mut Self {
        let n = head.len() + tail.len();
        self.out.extend_from_slice(&kind.to_be_bytes());
        self.out.extend_from_slice(&(n as u16).to_be_bytes());
        self.out.extend_from_slice(head);
        self.out.extend_from_slice(tail);
        self.out.extend(std::iter::repeat_n(self.padding, padded(n) - n));
        let len = (self.out.len() - self.start - HEADER_LEN) as u16;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    /// Appends a typed attribute. MESSAGE-INTEGRITY and FINGERPRINT are computed, not
    /// given: use [`Self::message_integrity`] and [`Self::fingerprint`].
    pub fn attr(&mut self, a: &Attr<'_>) -> &mut Self {
        let mut v = [0u8; 20];
        let value: &[u8] = match *a {
            Attr::Username(s) | Attr::Software(s) | Attr::UnknownAttributes(s) => s,
            Attr::Other { value, .. } => value,
            Attr::MessageIntegrity(m) => m,
            Attr::Fingerprint(f) | Attr::Priority(f) => {
                v[..4].copy_from_slice(&f.to_be_bytes());
                &v[..4]
            }
            Attr::IceControlled(t) | Attr::IceControlling(t) => {
                v[..8].copy_from_slice(&t.to_be_bytes());
                &v[..8]
            }
            Attr::UseCandidate => &[],
            Attr::XorMappedAddress(addr) => {
                let mask = xor_mask(&self.txid);
                let port = addr.port().to_be_bytes();
                v[2..4].copy_from_slice(&[port[0] ^ mask[0], port[1] ^ mask[1]]);
                let n = match addr.ip().to_canonical() {
                    IpAddr::V4(ip) => {
                        v[1] = 1;
                        v[4..8].copy_from_slice(&ip.octets());
                        8
                    }
                    IpAddr::V6(ip) => {
                        v[1] = 2;
                        v[4..20].copy_from_slice(&ip.octets());
                        20
                    }
                };
                for i in 4..n {
                    v[i] ^= mask[i - 4];
                }
                &v[..n]
            }
            Attr::ErrorCode { code, reason } => {
                return self.push(attr::ERROR_CODE, &[0, 0, (code / 100) as u8, (code % 100) as u8], reason);
            }
        };
        self.raw(a.kind(), value)
    }

    /// Appends MESSAGE-INTEGRITY keyed with `key`, over everything written so far.
    pub fn message_integrity(&mut self, key: &hmac::Key) -> &mut Self {
        let tag = integrity_tag(key, &self.out[self.start..]);
        self.raw(attr::MESSAGE_INTEGRITY, &tag)
    }

    /// Appends FINGERPRINT, over everything written so far; it must be the last attribute.
    pub fn fingerprint(&mut self) -> &mut Self {
        let f = fingerprint(&self.out[self.start..]);
        self.raw(attr::FINGERPRINT, &f.to_be_bytes())
    }
}

/// A connectivity (or consent) check as a controlling full agent sends it (RFC 8445
/// §7.2.2): USERNAME `ufrag`, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE (aggressive
/// nomination), MESSAGE-INTEGRITY keyed with the checked agent's `password`, FINGERPRINT.
/// For the relay's test peers and benchmarks: the relay itself sends no checks.
pub fn binding_request(txid: &TransactionId, username: &str, password: &str, tie_breaker: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    StunWriter::new(&mut m, Class::Request, BINDING, txid)
        .attr(&Attr::Username(username.as_bytes()))
        .attr(&Attr::Priority(0x6e00_01ff))
        .attr(&Attr::IceControlling(tie_breaker))
        .attr(&Attr::UseCandidate)
        .message_integrity(&short_term_key(password))
        .fingerprint();
    m
}

#[cfg(test)]
pub(crate) mod tests;
