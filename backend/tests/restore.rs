//! The io_uring data plane read back and restored through its workers, on real sockets:
//! relay 1 forwards A's SRTP to B in plain and latches A; its sockets' state is taken and
//! relay 1 stops; relay 2 binds the same ports, restores, and goes on where relay 1 was
//! (a replay of A's old packet refused, a spoofed source not latched, A forwarded).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use backend::dataplane::UringDataPlane;
use relay_core::flow::FlowSettings;
use relay_core::packet::rtp::emit_header;
use relay_core::srtp::Context;
use rules::dataplane::{DataPlane, FlowRule, SrtpKey, Suite};

fn srtp(ctx: &mut Context, seq: u16) -> Vec<u8> {
    let mut b = [0u8; 256];
    emit_header(&mut b, 0, false, seq, seq as u32 * 160, 7);
    let n = ctx.protect_rtp(&mut b, 172).unwrap();
    b[..n].to_vec()
}

fn received(sock: &UdpSocket) -> Option<Vec<u8>> {
    let mut b = [0u8; 2048];
    sock.recv(&mut b).ok().map(|n| b[..n].to_vec())
}

#[test]
fn a_restored_socket_goes_on_where_the_old_process_was() {
    let key = SrtpKey::new(Suite::AesCm128HmacSha1_80, &[7; 16], &[9; 14]).unwrap();
    let party_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let party_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let spoof = UdpSocket::bind("127.0.0.1:0").unwrap();
    party_b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let (a, b) = (party_a.local_addr().unwrap(), party_b.local_addr().unwrap());
    let (la, lb): (SocketAddr, SocketAddr) = ("127.0.0.1:24860".parse().unwrap(), "127.0.0.1:24862".parse().unwrap());
    // A is latched from its address; the signalled one is elsewhere (a NAT)
    let rules = [
        FlowRule {
            srtp_in: Some(key.clone()),
            sip_source: Some(a.ip()),
            ..FlowRule::rtp(la, Some("192.0.2.1:4000".parse().unwrap()), Some(lb))
        },
        FlowRule::rtp(lb, Some(b), Some(la)),
    ];
    let mut tx = Context::from_key(&key).unwrap();

    let mut dp = UringDataPlane::start(1, &[], 0, FlowSettings::default()).unwrap();
    for r in &rules {
        dp.open(r.local, 0).unwrap();
    }
    for r in &rules {
        dp.apply(r.clone()).unwrap();
    }
    let mut last = Vec::new();
    for seq in 1..=20 {
        last = srtp(&mut tx, seq);
        party_a.send_to(&last, la).unwrap();
        assert_eq!(received(&party_b).map(|p| p.len()), Some(172), "seq {seq} not forwarded");
    }
    let states: Vec<_> = rules.iter().map(|r| dp.flow_state(r.local).expect("state of an open socket")).collect();
    assert_eq!(states[0].latched_peer, Some(a));
    assert_eq!(states[0].srtp_in[0].rtp_highest, Some(20));
    assert_eq!(states[0].counters.forwarded, 20);
    assert!(dp.flow_state("127.0.0.1:1".parse().unwrap()).is_none());
    dp.stop();
    drop(dp);

    let mut dp = UringDataPlane::start(1, &[], 0, FlowSettings::default()).unwrap();
    for r in &rules {
        // the old workers have let go of the ports
        let mut tries = 0;
        while let Err(e) = dp.open(r.local, 0) {
            tries += 1;
            assert!(tries < 100, "{}: {e}", r.local);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for (r, s) in rules.iter().zip(states) {
        dp.restore(r.clone(), s).unwrap();
    }
    // a replay of A's last packet, and a spoofed plain packet: neither goes through
    party_a.send_to(&last, la).unwrap();
    let mut plain = [0u8; 172];
    emit_header(&mut plain, 0, false, 21, 21 * 160, 7);
    spoof.send_to(&plain, la).unwrap();
    assert_eq!(received(&party_b), None, "a replay or a spoofed packet was forwarded");
    for seq in 21..=40 {
        party_a.send_to(&srtp(&mut tx, seq), la).unwrap();
        assert_eq!(received(&party_b).map(|p| p.len()), Some(172), "seq {seq} not forwarded after the restore");
    }
    let s = dp.flow_state(la).unwrap();
    assert_eq!((s.latched_peer, s.counters.forwarded), (Some(a), 40));
    let c = dp.counters(la).unwrap();
    assert_eq!((c.drop_srtp_replay, c.drop_foreign_source, c.drop_srtp_auth), (1, 1, 0), "{c:?}");
    dp.stop();
}
