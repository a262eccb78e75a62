//! Worker-wide counters, one type for both backends: what an io_uring worker (the socket
//! path) and an AF_XDP worker (the xsk path) count, how a flow table's drop verdict
//! becomes a counter, and the `/metrics` rows they are exported as. Because both paths
//! count and render through this file, the same event has the same metric name and
//! labels whichever path a packet took; a row that cannot happen on one path stays 0
//! there. (Per relay socket counters are the flow table's `SharedCounters`.)

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use relay_core::flow::counters::bump;
use relay_core::flow::DropReason;
use relay_core::packet::Malformed;

use crate::xdp::frame::FrameError;

/// Which path a worker serves: its `path` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// An io_uring worker: datagrams the kernel delivers to the relay's UDP sockets.
    Socket,
    /// An AF_XDP worker: frames the XDP program steers to its receive queue.
    Xsk,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Socket => "socket",
            Path::Xsk => "xsk",
        }
    }
}

/// Why a worker dropped a packet: the `reason` of `relay_drops_total` (frames an AF_XDP
/// worker cannot parse are counted by their `FrameError` as well).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// Not RTP/RTCP as the flow table reads it (by `Malformed` reason: `relay_malformed_total`).
    Malformed,
    /// From a source the latch, strict-source or the address policy refuses.
    Source,
    /// No peer to send to yet, or only a denied one.
    NoDestination,
    /// To an address and port that is no relay socket (any more).
    UnknownFlow,
    /// SRTP authentication, replay or index check failed.
    Srtp,
    /// No room to send: no send slot (socket path) or a full TX ring (xsk path).
    TxFull,
    /// The datagram or its source address did not fit the receive buffer (socket path).
    Truncated,
    /// No head room in the frame for the outgoing headers (xsk path).
    NoRoom,
    /// A WebRTC socket's rules: media before the DTLS keys or from an address without an
    /// ICE check, no address with fresh consent to send to, refused STUN or DTLS.
    WebRtc,
}

impl DropCause {
    pub const ALL: [DropCause; 9] = [
        DropCause::Malformed,
        DropCause::Source,
        DropCause::NoDestination,
        DropCause::UnknownFlow,
        DropCause::Srtp,
        DropCause::TxFull,
        DropCause::Truncated,
        DropCause::NoRoom,
        DropCause::WebRtc,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DropCause::Malformed => "malformed",
            DropCause::Source => "source",
            DropCause::NoDestination => "no-destination",
            DropCause::UnknownFlow => "unknown-flow",
            DropCause::Srtp => "srtp",
            DropCause::TxFull => "tx-full",
            DropCause::Truncated => "truncated",
            DropCause::NoRoom => "no-room",
            DropCause::WebRtc => "webrtc",
        }
    }
}

/// One worker's counters. Each is written by its worker only (`bump`) and read by the
/// control plane.
#[derive(Default, Debug)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Forwarded by an AF_XDP worker through the relay socket, because the next hop was
    /// not resolved (or not on an XDP interface): counted here, not in `tx_packets`
    /// (what left by the worker's own rings).
    pub kernel_path: AtomicU64,
    /// Sends the kernel refused (or that found no socket to leave through).
    pub tx_errors: AtomicU64,
    drops: [AtomicU64; DropCause::ALL.len()],
    malformed: [AtomicU64; Malformed::ALL.len()],
    frame: [AtomicU64; FrameError::ALL.len()],
    /// Receives that found no provided buffer (socket path).
    pub rx_no_buffers: AtomicU64,
    /// Loop iterations that handled received packets (io_uring: completion batches).
    pub batches: AtomicU64,
    /// Relay sockets the worker serves.
    pub sockets: AtomicU64,
    /// Receive buffers free for the kernel (io_uring provided buffers, AF_XDP UMEM
    /// frames), sampled when the worker is idle or on its timer.
    pub buffers_available: AtomicU64,
    /// Commands applied so far: the control plane waits on it (`WorkerHandle::wait_applied`).
    pub applied: AtomicU64,
}

impl WorkerStats {
    #[inline]
    pub fn count_drop(&self, cause: DropCause, n: u64) {
        bump(&self.drops[cause.index()], n);
    }

    /// The one place a flow table's `Verdict::Drop` becomes worker counters.
    #[inline]
    pub fn count_verdict_drop(&self, reason: DropReason) {
        let cause = match reason {
            DropReason::Malformed(m) => {
                bump(&self.malformed[m.index()], 1);
                DropCause::Malformed
            }
            DropReason::StrictSource | DropReason::ForeignSource | DropReason::DeniedSource => DropCause::Source,
            DropReason::NoDestination | DropReason::DeniedDestination => DropCause::NoDestination,
            DropReason::UnknownFlow => DropCause::UnknownFlow,
            DropReason::Srtp(_) => DropCause::Srtp,
            DropReason::DtlsPending
            | DropReason::IceUnchecked
            | DropReason::NoConsent
            | DropReason::Stun
            | DropReason::Dtls => DropCause::WebRtc,
        };
        self.count_drop(cause, 1);
    }

    /// A frame the AF_XDP worker could not parse (`relay_drops_total{reason="frame-…"}`).
    #[inline]
    pub fn count_frame_error(&self, e: FrameError) {
        bump(&self.frame[e.index()], 1);
    }

    pub fn drops(&self, cause: DropCause) -> u64 {
        self.drops[cause.index()].load(Relaxed)
    }

    /// Appends this worker's `/metrics` samples, labelled `path="…",worker="…"` (and
    /// `reason="…"` for drops): the same rows for both paths.
    pub fn render(&self, v: &mut Vec<(String, String, u64)>, path: Path, worker: usize) {
        let base = format!("path=\"{}\",worker=\"{worker}\"", path.as_str());
        let mut row = |name: &str, reason: Option<&str>, c: &AtomicU64| {
            let labels = match reason {
                Some(r) => format!("{base},reason=\"{r}\""),
                None => base.clone(),
            };
            v.push((name.to_string(), labels, c.load(Relaxed)));
        };
        row("relay_rx_packets_total", None, &self.rx_packets);
        row("relay_tx_packets_total", None, &self.tx_packets);
        row("relay_kernel_path_total", None, &self.kernel_path);
        row("relay_tx_errors_total", None, &self.tx_errors);
        for c in DropCause::ALL {
            row("relay_drops_total", Some(c.as_str()), &self.drops[c.index()]);
        }
        for e in FrameError::ALL {
            row("relay_drops_total", Some(e.as_str()), &self.frame[e.index()]);
        }
        for m in Malformed::ALL {
            row("relay_malformed_total", Some(m.as_str()), &self.malformed[m.index()]);
        }
        row("relay_rx_no_buffers_total", None, &self.rx_no_buffers);
        row("relay_batches_total", None, &self.batches);
        row("relay_worker_sockets", None, &self.sockets);
        row("relay_worker_buffers_available", None, &self.buffers_available);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::srtp::SrtpError;

    fn rows(s: &WorkerStats, path: Path) -> Vec<(String, String, u64)> {
        let mut v = Vec::new();
        s.render(&mut v, path, 3);
        v
    }

    /// Both paths export the same names and labels (the path aside), drop reasons included.
    #[test]
    fn both_paths_render_the_same_rows() {
        let s = WorkerStats::default();
        let strip = |v: Vec<(String, String, u64)>| -> Vec<(String, String)> {
            v.into_iter().map(|(n, l, _)| (n, l.replacen("path=\"xsk\"", "path=\"socket\"", 1))).collect()
        };
        assert_eq!(strip(rows(&s, Path::Xsk)), strip(rows(&s, Path::Socket)));
        let labels: Vec<String> = rows(&s, Path::Xsk).into_iter().map(|(n, l, _)| format!("{n}{{{l}}}")).collect();
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), labels.len(), "a row twice: {labels:?}");
    }

    #[test]
    fn verdict_drops_are_counted_by_reason() {
        let s = WorkerStats::default();
        s.count_verdict_drop(DropReason::Malformed(Malformed::ALL[1]));
        s.count_verdict_drop(DropReason::ForeignSource);
        s.count_verdict_drop(DropReason::DeniedSource);
        s.count_verdict_drop(DropReason::DeniedDestination);
        s.count_verdict_drop(DropReason::Srtp(SrtpError::AuthFailed));
        s.count_verdict_drop(DropReason::DtlsPending);
        s.count_frame_error(FrameError::BadLength);
        assert_eq!(s.drops(DropCause::WebRtc), 1);
        assert_eq!(s.drops(DropCause::Malformed), 1);
        assert_eq!(s.drops(DropCause::Source), 2);
        assert_eq!(s.drops(DropCause::NoDestination), 1);
        assert_eq!(s.drops(DropCause::Srtp), 1);
        let v = rows(&s, Path::Socket);
        let get = |n: &str, reason: &str| {
            v.iter().find(|(k, l, _)| k == n && l.ends_with(&format!("reason=\"{reason}\""))).unwrap().2
        };
        assert_eq!(get("relay_malformed_total", Malformed::ALL[1].as_str()), 1);
        assert_eq!(get("relay_drops_total", "frame-bad-length"), 1);
        assert_eq!(get("relay_drops_total", "source"), 2);
        assert!(v.iter().all(|(_, l, _)| l.starts_with("path=\"socket\",worker=\"3\"")));
    }
}
