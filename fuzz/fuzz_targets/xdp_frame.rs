//! The AF_XDP worker's frame parser and both rewrite paths: whatever arrives, parse never
//! panics, and a frame it accepts can be readdressed in place or re-framed for the other
//! address family without panicking, and re-parses to the addresses it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;
use backend::xdp::frame::{self, L2};

fuzz_target!(|data: &[u8]| {
    let Ok(ing) = frame::parse(data) else { return };
    let l2 = L2 { dst_mac: [2, 0, 0, 0, 0, 2], src_mac: [2, 0, 0, 0, 0, 1], vlan: ing.vlan };
    let (from, to) = if ing.src.is_ipv4() {
        ("10.0.0.1:30000".parse().unwrap(), "10.0.0.9:4000".parse().unwrap())
    } else {
        ("[2001:db8::1]:30000".parse().unwrap(), "[2001:db8::9]:4000".parse().unwrap())
    };
    let mut buf = data.to_vec();
    if frame::can_rewrite_in_place(&ing, from, to, &l2) {
        let n = frame::rewrite_in_place(&mut buf, &ing, from, to, &l2, 0xb8);
        let again = frame::parse(&buf[..n]).expect("a rewritten frame parses");
        assert_eq!((again.src, again.dst, again.payload_len), (from, to, ing.payload_len));
    }
    // the other family, in front of the same payload
    let (from6, to6): (std::net::SocketAddr, std::net::SocketAddr) =
        ("[2001:db8::1]:30000".parse().unwrap(), "[2001:db8::9]:4000".parse().unwrap());
    let mut room = vec![0u8; frame::MAX_HEADERS];
    room.extend_from_slice(data);
    let payload = frame::MAX_HEADERS + ing.payload;
    let start = frame::write_headers(&mut room, payload, ing.payload_len, from6, to6, &l2, 0).expect("room");
    let again = frame::parse(&room[start..payload + ing.payload_len]).expect("a written frame parses");
    assert_eq!((again.src, again.dst), (from6, to6));
});
