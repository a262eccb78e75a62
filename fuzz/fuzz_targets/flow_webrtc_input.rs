//! The input format of the flow_process_webrtc target, shared with the example that
//! writes its seeds (fuzz/examples/flow_webrtc_seeds.rs).

/// The ICE credentials of the relay's sockets and the browser's ufrag (checks carry them).
pub const RELAY_UFRAG: &str = "relayU";
pub const RELAY_PWD: &str = "relay-password-of-22-chars";
pub const BROWSER_UFRAG: &str = "browU";

/// Configuration byte (the input's first).
pub const CFG_RELAY_ACTIVE: u8 = 1;
pub const CFG_GROUP: u8 = 2;
pub const CFG_UFRAG_UNKNOWN: u8 = 4;
pub const CFG_NO_DTLS: u8 = 8;

/// Sources an operation picks from (header bits 0-2): the browser's addresses, the
/// phone, a stranger, and addresses the policy denies.
pub const SOURCES: [&str; 8] = [
    "192.0.2.1:4000",
    "[2001:db8:b::10]:4000",
    "192.0.2.1:4001",
    "198.51.100.7:6000",
    "203.0.113.9:7000",
    "127.0.0.1:2223",
    "10.0.0.1:30002",
    "0.0.0.0:4000",
];
pub const SRC_BROWSER: u8 = 0;
pub const SRC_BROWSER6: u8 = 1;
pub const SRC_PHONE: u8 = 3;

/// Sockets (header bits 3-4): the browser leg's IPv4 socket, its IPv6 sibling, the phone's.
pub const TO_A: u8 = 0;
pub const TO_A6: u8 = 1;
pub const TO_B: u8 = 2;

/// Operations (header bits 5-7).
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Op {
    /// The body as a datagram.
    Raw = 0,
    /// A valid check built with relay_core::stun::binding_request (body[0] bit 0: a
    /// wrong password, bit 1: an unknown ufrag).
    Check = 2,
    /// The relay's replies to the browser, then the browser's DTLS flights.
    Dtls = 3,
    /// RTP carrying the body, SRTP under the browser's keys once it has them.
    Media = 4,
    /// The table's timers.
    Timers = 5,
    /// The rules again, mutated by body[0] (bit 0: no group, 1: no ICE, 2: no DTLS,
    /// 4-5: ICE restart, 6-7: DTLS generation).
    Reapply = 6,
    /// Time jumps body[0] * 256 ms.
    Wait = 7,
}

/// One operation as the target reads it.
pub fn op(op: Op, src: u8, to: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![(op as u8) << 5 | (to & 3) << 3 | (src & 7), body.len().min(255) as u8];
    v.extend_from_slice(&body[..body.len().min(255)]);
    v
}
