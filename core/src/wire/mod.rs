//! Zero-copy views of the headers under the media: Ethernet (with 802.1Q/802.1ad tags),
//! IPv4, IPv6 and UDP, and the Internet checksum they share. In the smoltcp style: a
//! view wraps a buffer (`Packet<T: AsRef<[u8]>>`), `new_checked` validates the lengths
//! once, and getters then read in place; on `T: AsMut<[u8]>` setters write in place, so
//! the AF_XDP backend rewrites a frame inside its UMEM without copying it. Field byte
//! ranges are named in each file's `field` module; a `Repr` parses a header into values
//! and emits it back.
//!
//! No allocation, no I/O: the views are what the backend's frame code composes.

pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

#[cfg(test)]
mod captured;

use std::ops::{Range, RangeFrom};

/// The bytes of one header field.
pub type Field = Range<usize>;
/// Everything from a header's end on: its payload.
pub type Rest = RangeFrom<usize>;

/// Why a buffer is not a well-formed header of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed header.
    Truncated,
    /// A length field disagrees with itself or with the buffer.
    BadLength,
    /// A field holds a value a `Repr` cannot stand for (another IP version, IPv4
    /// options, a fragment).
    Unsupported,
}

/// The protocol number an IPv4 header's `protocol` or an IPv6 header's `next header`
/// names (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
}

#[inline]
fn get_u16(b: &[u8], f: Field) -> u16 {
    let s = &b[f];
    u16::from_be_bytes([s[0], s[1]])
}

#[inline]
fn set_u16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
