//! The BPF maps' binary interface: relayd's copies of the keys and values that
//! ebpf/relay_abi.h defines for the steering program (ebpf/relay_xdp.c).
//!
//! Checked at build time, not trusted: backend/build.rs compiles ebpf/abi_layout.c
//! against that header with clang and writes the C sizes, field offsets and field sizes,
//! and the shared constants, into OUT_DIR/abi_layout.rs. The assertions below compare
//! them with these `#[repr(C)]` structs (`size_of`, `offset_of!`) and constants, so a
//! field changed, added or moved on one side only fails the build instead of
//! corrupting the maps. Change both sides together.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, SocketAddr};

use rules::dataplane::FlowRule;

/// The C side, as printed by ebpf/abi_layout.c: `STRUCT_SIZE`, `STRUCT_FIELD: (offset, size)`.
mod c {
    include!(concat!(env!("OUT_DIR"), "/abi_layout.rs"));
}

/// Key of the program's `flows` map (struct flow_key): the relay's own media socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// 4 or 6.
    pub family: u8,
    pub pad: u8,
    /// Network byte order.
    pub port: u16,
    /// IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
}

/// Value of the `flows` map (struct flow_val).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowVal {
    /// [`FLOW_STRICT_SOURCE`] or 0.
    pub flags: u32,
    /// Network byte order.
    pub peer_port: u16,
    pub pad: u16,
    pub peer_addr: [u8; 16],
}

/// Key of the program's `own_addrs` map (struct own_key): one of the relay's addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnKey {
    pub family: u8,
    pub pad: [u8; 3],
    pub addr: [u8; 16],
}

// SAFETY: plain C structs without padding holes that matter (explicit pad fields)
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for FlowVal {}
unsafe impl aya::Pod for OwnKey {}

/// `FlowVal::flags`: the program drops what does not come from the peer.
pub const FLOW_STRICT_SOURCE: u32 = 1;

/// The size of the field `f` picks, taken from the struct's own definition.
const fn field_size<T, F>(_f: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Asserts a Rust field has the C field's (offset, size).
macro_rules! same_field {
    ($t:ty, $f:ident, $c:expr) => {
        const _: () = assert!(offset_of!($t, $f) == $c.0 && field_size(|v: &$t| &v.$f) == $c.1);
    };
}

const _: () = assert!(size_of::<FlowKey>() == c::FLOW_KEY_SIZE);
same_field!(FlowKey, family, c::FLOW_KEY_FAMILY);
same_field!(FlowKey, pad, c::FLOW_KEY_PAD);
same_field!(FlowKey, port, c::FLOW_KEY_PORT);
same_field!(FlowKey, addr, c::FLOW_KEY_ADDR);

const _: () = assert!(size_of::<FlowVal>() == c::FLOW_VAL_SIZE);
same_field!(FlowVal, flags, c::FLOW_VAL_FLAGS);
same_field!(FlowVal, peer_port, c::FLOW_VAL_PEER_PORT);
same_field!(FlowVal, pad, c::FLOW_VAL_PAD);
same_field!(FlowVal, peer_addr, c::FLOW_VAL_PEER_ADDR);

const _: () = assert!(size_of::<OwnKey>() == c::OWN_KEY_SIZE);
same_field!(OwnKey, family, c::OWN_KEY_FAMILY);
same_field!(OwnKey, pad, c::OWN_KEY_PAD);
same_field!(OwnKey, addr, c::OWN_KEY_ADDR);

const _: () = assert!(FLOW_STRICT_SOURCE as u64 == c::FLOW_STRICT_SOURCE);
const _: () = assert!(super::OWN_ADDRS_MAX as u64 == c::OWN_ADDRS_MAX);
const _: () = assert!(super::SETTING_LOCAL_SOURCES as u64 == c::SETTING_LOCAL_SOURCES);
const _: () = assert!(super::PROGRAM_STATS.len() as u64 == c::STAT_MAX);

impl FlowKey {
    pub fn new(a: SocketAddr) -> FlowKey {
        let mut addr = [0u8; 16];
        let family = match a.ip() {
            IpAddr::V4(v) => {
                addr[..4].copy_from_slice(&v.octets());
                4
            }
            IpAddr::V6(v) => {
                addr = v.octets();
                6
            }
        };
        FlowKey { family, pad: 0, port: a.port().to_be(), addr }
    }
}

impl OwnKey {
    pub fn new(ip: IpAddr) -> OwnKey {
        let k = FlowKey::new(SocketAddr::new(ip, 0));
        OwnKey { family: k.family, pad: [0; 3], addr: k.addr }
    }
}

impl FlowVal {
    /// The program's view of a rule: a strict-source check when the rule pins the peer to
    /// its signalled address (asymmetric or trust-address with strict-source). Latched
    /// peers are learned by the workers, which enforce strict-source for those. On an ICE
    /// socket the source is whatever passed a check (the flow table decides): no pin.
    pub fn for_rule(rule: &FlowRule) -> FlowVal {
        let mut v = FlowVal { flags: 0, peer_port: 0, pad: 0, peer_addr: [0; 16] };
        let pinned = (rule.latch.asymmetric || rule.latch.trust_address) && rule.ice.is_none();
        if let (true, true, Some(peer)) = (rule.latch.strict_source, pinned, rule.signalled_peer) {
            if !peer.ip().is_unspecified() && peer.is_ipv4() == rule.local.is_ipv4() {
                let k = FlowKey::new(peer);
                v.flags = FLOW_STRICT_SOURCE;
                v.peer_port = k.port;
                v.peer_addr = k.addr;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules::dataplane::{IceRule, LatchPolicy};

    #[test]
    fn the_program_pins_a_strict_signalled_peer_but_never_on_an_ice_socket() {
        let local: SocketAddr = "203.0.113.1:30000".parse().unwrap();
        let latch = LatchPolicy { trust_address: true, strict_source: true, ..Default::default() };
        let rule = FlowRule { latch, ..FlowRule::rtp(local, Some("192.0.2.1:4000".parse().unwrap()), None) };
        let v = FlowVal::for_rule(&rule);
        assert_eq!((v.flags, u16::from_be(v.peer_port)), (FLOW_STRICT_SOURCE, 4000));
        let ice = IceRule { local_ufrag: "u".into(), local_pwd: "p".into(), remote_ufrag: None, remote_pwd: None };
        let v = FlowVal::for_rule(&FlowRule { ice: Some(ice), ..rule });
        assert_eq!((v.flags, v.peer_port), (0, 0));
    }
}
