#![no_main]
//! flow_process's WebRTC variant: a browser's leg whose sockets run ICE-lite and DTLS (one
//! on IPv4 and, in a socket group, its ICE sibling on IPv6) and a plain phone's socket
//! forwarding into it, fed arbitrary datagrams from a few sources at arbitrary times,
//! mixed with what a real browser sends: valid STUN checks (relay_core::stun's own
//! binding_request), the flights of a real DTLS session driven by the relay's replies,
//! SRTP under the keys that handshake gave, timers, and re-applied rules (ICE restart, a
//! new DTLS generation, DTLS or the group dropped). Never a panic; never a forward or a
//! reply to an address the policy denies; never more queued replies than the bound;
//! media towards the browser leaves only from a socket of its group, media from it only
//! towards the phone.
//!
//! Input (flow_webrtc_input.rs): a configuration byte, then operations: a header byte
//! (source, socket, operation), a length byte, that many body bytes. Seeds:
//! fuzz/seeds/flow_process_webrtc, written by `cargo run --example flow_webrtc_seeds` in
//! fuzz/ (real checks, a real hello, whole calls).
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use relay_core::dtls::{generate_identity, DtlsSession};
use relay_core::flow::webrtc::MAX_TRANSMITS;
use relay_core::flow::{FlowId, FlowTable, Verdict};
use relay_core::packet::rtp::emit_header;
use relay_core::srtp;
use rules::addrpolicy::AddressPolicy;
use rules::dataplane::{DtlsIdentity, DtlsRole, DtlsRule, FlowKind, FlowRule, IceRule};

#[allow(dead_code)] // the encoding half is the seed writer's
mod flow_webrtc_input;
use flow_webrtc_input::*;

const LA: &str = "10.0.0.1:30000";
const LA6: &str = "[2001:db8::1]:30000";
const LB: &str = "10.0.0.1:30002";
const BROWSER: &str = SOURCES[SRC_BROWSER as usize];
const BROWSER6: &str = SOURCES[SRC_BROWSER6 as usize];

/// The relay's and the browser's certificates, made once for the whole run.
fn identities() -> &'static [Arc<DtlsIdentity>; 2] {
    static IDS: OnceLock<[Arc<DtlsIdentity>; 2]> = OnceLock::new();
    IDS.get_or_init(|| [0, 1].map(|i| Arc::new(generate_identity(1_700_000_000 + i, 86_400).unwrap())))
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Cfg {
    relay_active: bool,
    group: bool,
    ufrag_known: bool,
    dtls: bool,
}

fn ice_rule(cfg: &Cfg, restart: u8) -> IceRule {
    IceRule {
        local_ufrag: if restart == 0 { RELAY_UFRAG.into() } else { format!("{RELAY_UFRAG}{restart}") },
        local_pwd: RELAY_PWD.into(),
        remote_ufrag: cfg.ufrag_known.then(|| BROWSER_UFRAG.into()),
        remote_pwd: cfg.ufrag_known.then(|| "browser-password-of-22".into()),
    }
}

fn dtls_rule(cfg: &Cfg, generation: u32) -> Option<DtlsRule> {
    let ids = identities();
    cfg.dtls.then(|| DtlsRule {
        role: if cfg.relay_active { DtlsRole::Active } else { DtlsRole::Passive },
        identity: ids[0].clone(),
        remote_fingerprint: Some(ids[1].fingerprint.clone()),
        generation,
    })
}

/// The browser leg's rules (and the phone's), as call.rs builds them; `m` mutates them.
fn apply(t: &mut FlowTable, cfg: &Cfg, m: u8) {
    let group = cfg.group && m & 1 == 0;
    let sockets: &[(&str, Option<&str>, &str)] =
        if cfg.group { &[(LA, Some(BROWSER), LA6), (LA6, None, LA)] } else { &[(LA, Some(BROWSER), LA6)] };
    for (local, peer, sibling) in sockets {
        let rule = FlowRule {
            kind: FlowKind::RtpMux,
            egress_rtcp: Some(a(LB)),
            ice: (m & 2 == 0).then(|| ice_rule(cfg, (m >> 4) & 3)),
            dtls: if m & 4 == 0 { dtls_rule(cfg, ((m >> 6) & 3) as u32) } else { None },
            ice_siblings: if group { vec![a(sibling)] } else { Vec::new() },
            ..FlowRule::rtp(a(local), peer.map(a), Some(a(LB)))
        };
        t.apply(&rule).expect("a rule on an open socket applies");
    }
    let phone = FlowRule { egress_rtcp: Some(a(LA)), ..FlowRule::rtp(a(LB), Some(a("198.51.100.7:6000")), Some(a(LA))) };
    t.apply(&phone).expect("a plain rule applies");
}

/// The browser: a real DTLS session in the role opposite the relay's, and the SRTP
/// context of the keys it got.
struct Browser {
    dtls: Option<DtlsSession>,
    tx: Option<srtp::Context>,
    seq: u16,
}

impl Browser {
    fn new(cfg: &Cfg) -> Browser {
        let ids = identities();
        let rule = DtlsRule {
            role: if cfg.relay_active { DtlsRole::Passive } else { DtlsRole::Active },
            identity: ids[1].clone(),
            remote_fingerprint: Some(ids[0].fingerprint.clone()),
            generation: 0,
        };
        Browser { dtls: cfg.dtls.then(|| DtlsSession::new(&rule, 0).ok()).flatten(), tx: None, seq: 0 }
    }

    fn receive(&mut self, now: u64, d: &[u8]) {
        if let Some(s) = self.dtls.as_mut() {
            let _ = s.handle_datagram(now, d);
            if let Some(k) = s.take_keys() {
                self.tx = srtp::Context::from_key(&k.local).ok();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, mut data)) = data.split_first() else { return };
    let cfg = Cfg {
        relay_active: c & CFG_RELAY_ACTIVE != 0,
        group: c & CFG_GROUP != 0,
        ufrag_known: c & CFG_UFRAG_UNKNOWN == 0,
        dtls: c & CFG_NO_DTLS == 0,
    };
    let policy = Arc::new(AddressPolicy {
        own: vec!["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        own_ports: vec![(30000, 40000), (2223, 2223)],
        ..Default::default()
    });
    let mut t = FlowTable::new(2000).with_policy(policy.clone());
    let fa = t.insert(a(LA), Default::default());
    let fa6 = t.insert(a(LA6), Default::default());
    let fb = t.insert(a(LB), Default::default());
    apply(&mut t, &cfg, 0);
    let mut browser = Browser::new(&cfg);
    let mut now = 1u64;
    let mut txid = 0u64;

    // the relay's replies: never to a denied address, never more than the bound; the
    // browser's own get to it
    let drain = |t: &mut FlowTable, browser: &mut Browser, now: u64| {
        let mut n = 0;
        while let Some(tx) = t.poll_transmit() {
            n += 1;
            assert!(n <= MAX_TRANSMITS, "more replies queued than the bound");
            assert!(policy.allows(tx.to), "replied to {}", tx.to);
            assert!([fa, fa6, fb].contains(&tx.via));
            if tx.to == a(BROWSER) || tx.to == a(BROWSER6) {
                browser.receive(now, &tx.data);
            }
        }
    };

    while data.len() >= 2 {
        let (h, len) = (data[0], data[1] as usize);
        let body = &data[2..(2 + len).min(data.len())];
        data = &data[(2 + len).min(data.len())..];
        let src = a(SOURCES[(h & 7) as usize]);
        let id: FlowId = [fa, fa6, fb, fa][((h >> 3) & 3) as usize];
        now += body.len() as u64 * 997 + 1;
        let mut datagrams: Vec<Vec<u8>> = Vec::new();
        match h >> 5 {
            // a datagram as it came (the seeds' valid checks and hellos among them)
            0 | 1 => datagrams.push(body.to_vec()),
            // a valid check (body[0] bit 0: under a wrong password, bit 1: unknown ufrag)
            2 => {
                txid += 1;
                let mut tx = [0u8; 12];
                tx[4..].copy_from_slice(&txid.to_be_bytes());
                let f = body.first().copied().unwrap_or(0);
                let user = if f & 2 == 0 { format!("{RELAY_UFRAG}:{BROWSER_UFRAG}") } else { "x:y".into() };
                let pwd = if f & 1 == 0 { RELAY_PWD } else { "wrong-password-of-22-chars" };
                datagrams.push(relay_core::stun::binding_request(&tx, &user, pwd, 7));
            }
            // the browser's DTLS: the relay's replies to it, then its flights
            3 => {
                drain(&mut t, &mut browser, now);
                if let Some(s) = browser.dtls.as_mut() {
                    if s.poll_timeout().is_some_and(|d| d <= now) {
                        s.handle_timeout(now);
                    }
                    datagrams.extend(std::iter::from_fn(|| s.poll_transmit()));
                }
            }
            // media: SRTP under the browser's keys when it has them, plain RTP otherwise
            4 => {
                browser.seq = browser.seq.wrapping_add(1);
                let mut b = vec![0u8; 12 + body.len() + srtp::Suite::MAX_OVERHEAD];
                emit_header(&mut b, 0, false, browser.seq, browser.seq as u32 * 160, 0xb7);
                b[12..12 + body.len()].copy_from_slice(body);
                let mut n = 12 + body.len();
                if let Some(ctx) = browser.tx.as_mut() {
                    n = ctx.protect_rtp(&mut b, n).unwrap_or(n);
                }
                b.truncate(n);
                datagrams.push(b);
            }
            5 => {
                t.handle_timeout(now);
                drain(&mut t, &mut browser, now);
            }
            6 => apply(&mut t, &cfg, body.first().copied().unwrap_or(0)),
            _ => now += u32::from_le_bytes([0, body.first().copied().unwrap_or(0), 0, 0]) as u64 * 1000,
        }
        for d in datagrams {
            let mut buf = vec![0u8; d.len() + srtp::Suite::MAX_OVERHEAD];
            buf[..d.len()].copy_from_slice(&d);
            match t.process(id, src, &mut buf, d.len(), now) {
                Verdict::Forward { via, to, len } => {
                    assert!(policy.allows(to), "forwarded to {to}");
                    assert!(len <= buf.len());
                    if id == fb {
                        assert!(via == fa || (cfg.group && via == fa6), "towards the browser out of {via}");
                    } else {
                        assert_eq!(via, fb, "from the browser's leg only towards the phone");
                    }
                }
                Verdict::Drop(_) | Verdict::Consumed => {}
            }
        }
        if h & 0x80 != 0 && h & 0x40 == 0 {
            drain(&mut t, &mut browser, now);
        }
    }
    drain(&mut t, &mut browser, now);
});
