//! DTLS-SRTP handshakes per second on one core, relay side only: N in-memory handshakes
//! of a relay endpoint against a peer, timing only the relay's calls (creating the session,
//! feeding datagrams, polling output, taking the keys), so the figure is what one relay
//! core sustains. The relay endpoint is relay_core::dtls (dimpl, RustCrypto) or OpenSSL
//! through memory buffers (bench::dtls_openssl, the system's libssl); the peer is OpenSSL
//! (DTLS 1.2, what aiortc and SIP-side stacks speak) or dimpl (DTLS 1.3, as Chrome and
//! Firefox now negotiate). ECDSA P-256 certificates, ECDHE, use_srtp, both sides.
//!
//!     cargo run --release -p bench --bin dtls_bench [N]

use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::SslContext;

use bench::dtls_openssl::{OpensslDtls, ALL_PROFILES};
use relay_core::dtls::{generate_identity, DtlsSession, DtlsState};
use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule};

#[allow(clippy::large_enum_variant)] // a handful per run
enum Endpoint {
    Dimpl(DtlsSession, u64),
    Openssl(OpensslDtls),
}

impl Endpoint {
    fn dimpl(role: DtlsRole, me: &Arc<DtlsIdentity>, peer: &Arc<DtlsIdentity>) -> Endpoint {
        let rule =
            DtlsRule { role, identity: me.clone(), remote_fingerprint: Some(peer.fingerprint.clone()), generation: 0 };
        Endpoint::Dimpl(DtlsSession::new(&rule, 1_000_000).unwrap(), 1_000_000)
    }

    fn openssl(role: DtlsRole, ctx: &SslContext) -> Endpoint {
        Endpoint::Openssl(OpensslDtls::with_context(ctx, role == DtlsRole::Active).unwrap())
    }

    fn input(&mut self, d: &[u8]) {
        match self {
            Endpoint::Dimpl(s, now) => {
                let _ = s.handle_datagram(*now, d);
            }
            Endpoint::Openssl(s) => s.handle_datagram(d),
        }
    }

    fn output(&mut self) -> Option<Vec<u8>> {
        match self {
            Endpoint::Dimpl(s, _) => s.poll_transmit(),
            Endpoint::Openssl(s) => s.poll_transmit(),
        }
    }

    /// Done with keys in hand (the relay takes them, as the data plane would).
    fn finished(&mut self) -> bool {
        match self {
            Endpoint::Dimpl(s, _) => {
                assert!(!matches!(s.state(), DtlsState::Failed(_)), "{:?}", s.state());
                s.state() == &DtlsState::Connected && s.take_keys().is_some()
            }
            Endpoint::Openssl(s) => {
                assert_eq!(s.failure(), None);
                s.is_connected() && s.srtp_export().is_some()
            }
        }
    }
}

/// CPU time of this thread: the box is shared, wall time would count other processes.
#[derive(Clone, Copy)]
struct Instant(Duration);

impl Instant {
    fn now() -> Instant {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid timespec to fill
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Instant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    fn elapsed(self) -> Duration {
        Instant::now().0.saturating_sub(self.0)
    }
}

/// Relay-side time of `n` handshakes; `relay` and `peer` make fresh endpoints.
fn bench(n: u32, relay: impl Fn() -> Endpoint, peer: impl Fn() -> Endpoint) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..n {
        let t = Instant::now();
        let mut r = relay();
        spent += t.elapsed();
        let mut p = peer();
        let (mut relay_done, mut peer_done) = (false, false);
        for _ in 0..50 {
            let mut to_peer = vec![];
            let t = Instant::now();
            while let Some(d) = r.output() {
                to_peer.push(d);
            }
            spent += t.elapsed();
            for d in to_peer {
                p.input(&d);
            }
            let mut to_relay = vec![];
            while let Some(d) = p.output() {
                to_relay.push(d);
            }
            let t = Instant::now();
            for d in &to_relay {
                r.input(d);
            }
            relay_done = relay_done || r.finished();
            spent += t.elapsed();
            peer_done = peer_done || p.finished();
            if relay_done && peer_done {
                break;
            }
        }
        assert!(relay_done && peer_done, "handshake did not complete");
    }
    spent
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let relay_id = Arc::new(generate_identity(1_790_000_000, 86400).unwrap());
    let peer_id = Arc::new(generate_identity(1_790_000_000, 86400).unwrap());
    let (r, p) = (&relay_id, &peer_id);
    // one OpenSSL context per process and side, as a relay would keep it
    let relay_ctx = OpensslDtls::context(&r.cert_der, &r.key_der, ALL_PROFILES).unwrap();
    let peer_ctx = OpensslDtls::context(&p.cert_der, &p.key_der, ALL_PROFILES).unwrap();
    use DtlsRole::{Active, Passive};
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("{n} handshakes each, relay-side thread CPU time only");
    for role in [Passive, Active] {
        let other = if role == Passive { Active } else { Passive };
        let d = rate(bench(n, || Endpoint::dimpl(role, r, p), || Endpoint::openssl(other, &peer_ctx)));
        let o = rate(bench(n, || Endpoint::openssl(role, &relay_ctx), || Endpoint::openssl(other, &peer_ctx)));
        println!(
            "relay {role:?} vs OpenSSL peer (DTLS 1.2): dimpl {d:.0}/s, OpenSSL {o:.0}/s, OpenSSL/dimpl {:.2}",
            o / d
        );
    }
    let d13 = rate(bench(n, || Endpoint::dimpl(Passive, r, p), || Endpoint::dimpl(Active, p, r)));
    println!("relay Passive vs dimpl peer (DTLS 1.3): dimpl {d13:.0}/s");
}
