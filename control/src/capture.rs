//! Live capture of one call: a [`TapSink`] that turns tapped packets into pcap records
//! in a bounded queue, and the [`CaptureStream`] that drains it into a pcap byte stream
//! (relayd serves it as `GET /calls/{id}/capture`, `relayctl capture` writes it out).
//!
//! The sink runs on the packet path, in the data plane's workers: it never blocks, and
//! it bounds what a capture can hold (packets and bytes). When the reader falls behind,
//! packets are dropped from the capture and counted; media is never held up. Pure:
//! the stream is polled with the caller's clock.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use rules::tap::{TapPacket, TapPoint, TapSink};

use crate::pcap;

/// Which copies of a packet a capture wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureView {
    /// Also the decrypted copy (TapPoint::Plain) where the relay decrypts SRTP. Off by
    /// default: the wire view (as received, as sent) is what crossed the network.
    pub decrypted: bool,
}

impl CaptureView {
    pub fn wants(&self, point: TapPoint) -> bool {
        match point {
            TapPoint::Received | TapPoint::Sent => true,
            TapPoint::Plain => self.decrypted,
        }
    }
}

/// How much one capture may hold while its reader catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub packets: usize,
    pub bytes: usize,
}

impl Default for QueueLimits {
    /// About 4 s of a busy call's packets both ways, both points (4 × 50 pps × 2 × 2 ×
    /// ~250 bytes is small; video bursts fill the byte budget first).
    fn default() -> Self {
        QueueLimits { packets: 8192, bytes: 4 << 20 }
    }
}

/// The tap sink of one live capture.
pub struct CaptureSink {
    view: CaptureView,
    queue: ArrayQueue<Vec<u8>>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// Unix time minus the data plane clock, microseconds, taken at creation.
    unix_offset_us: u64,
    captured: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl CaptureSink {
    /// `unix_now_us` and `dp_now_us` read at the same moment: the data plane clock
    /// (`DataPlane::now_ms() * 1000`, the clock of `TapPacket::at_us`) and the wall clock,
    /// so records carry Unix timestamps.
    pub fn new(view: CaptureView, limits: QueueLimits, unix_now_us: u64, dp_now_us: u64) -> CaptureSink {
        CaptureSink {
            view,
            queue: ArrayQueue::new(limits.packets.max(1)),
            queued_bytes: AtomicUsize::new(0),
            max_bytes: limits.bytes,
            unix_offset_us: unix_now_us.saturating_sub(dp_now_us),
            captured: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Packets queued so far (taken by the stream or still waiting).
    pub fn captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }

    /// Packets dropped because the queue was full (the reader was behind).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Move queued records into `out` until it holds at least `max` bytes or the queue
    /// is empty; whether anything was moved.
    pub fn take(&self, out: &mut Vec<u8>, max: usize) -> bool {
        let start = out.len();
        while out.len() < max {
            let Some(r) = self.queue.pop() else { break };
            self.queued_bytes.fetch_sub(r.len(), Ordering::Relaxed);
            out.extend_from_slice(&r);
        }
        out.len() > start
    }
}

impl TapSink for CaptureSink {
    fn packet(&self, p: &TapPacket<'_>) {
        if !self.view.wants(p.point) || self.closed.load(Ordering::Relaxed) {
            return;
        }
        let len = pcap::record_len(p.src, p.dst, p.bytes.len());
        // reserve the bytes first, so that no allocation happens for a packet we drop
        if self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut r = Vec::with_capacity(len);
        pcap::write_record(&mut r, p.at_us.saturating_add(self.unix_offset_us), p.src, p.dst, p.bytes);
        match self.queue.push(r) {
            Ok(()) => {
                self.captured.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// When a capture stream stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_duration_us: u64,
    pub max_bytes: u64,
}

/// Why a capture stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The tap was taken off: the call ended (or was deleted).
    Closed,
    Duration,
    Bytes,
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamEnd::Closed => "the call ended",
            StreamEnd::Duration => "the duration limit",
            StreamEnd::Bytes => "the size limit",
        })
    }
}

/// What the stream has for its reader now.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The next piece of the pcap (whole records; the file header first).
    Data(Vec<u8>),
    /// Nothing yet: poll again a little later.
    Wait,
    End(StreamEnd),
}

/// Bytes of pcap handed out per [`Next::Data`] (several records), so a busy call is
/// written in few large chunks.
pub const CHUNK: usize = 64 * 1024;

/// What runs when a stream is dropped (takes the tap off; sees the sink's counters).
pub type OnDrop = Box<dyn FnOnce(&CaptureSink) + Send>;

/// One capture's pcap byte stream. Dropping it runs its `on_drop` (takes the tap off
/// the call): the reader going away ends the capture.
pub struct CaptureStream {
    sink: Arc<CaptureSink>,
    limits: StreamLimits,
    started_us: Option<u64>,
    header_sent: bool,
    written: u64,
    end: Option<StreamEnd>,
    on_drop: Option<OnDrop>,
}

impl CaptureStream {
    pub fn new(sink: Arc<CaptureSink>, limits: StreamLimits, on_drop: Option<OnDrop>) -> CaptureStream {
        CaptureStream { sink, limits, started_us: None, header_sent: false, written: 0, end: None, on_drop }
    }

    pub fn limits(&self) -> StreamLimits {
        self.limits
    }

    pub fn sink(&self) -> &Arc<CaptureSink> {
        &self.sink
    }

    /// Bytes of pcap handed out so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The next piece of the stream at `now_us` (any monotonic clock; the first poll
    /// starts the duration limit). After an `End`, always that `End`.
    pub fn poll(&mut self, now_us: u64) -> Next {
        if let Some(e) = self.end {
            return Next::End(e);
        }
        let start = *self.started_us.get_or_insert(now_us);
        if !self.header_sent {
            self.header_sent = true;
            self.written = 24;
            return Next::Data(pcap::file_header(pcap::LINKTYPE_RAW).to_vec());
        }
        let end = if self.written >= self.limits.max_bytes {
            Some(StreamEnd::Bytes)
        } else if now_us.saturating_sub(start) >= self.limits.max_duration_us {
            Some(StreamEnd::Duration)
        } else {
            None
        };
        if let Some(e) = end {
            self.end = Some(e);
            return Next::End(e);
        }
        // closed is read before draining: records queued before the close are still sent
        let closed = self.sink.is_closed();
        let room = (self.limits.max_bytes - self.written).min(CHUNK as u64) as usize;
        let mut out = Vec::new();
        if self.sink.take(&mut out, room) {
            self.written += out.len() as u64;
            return Next::Data(out);
        }
        if closed {
            self.end = Some(StreamEnd::Closed);
            return Next::End(StreamEnd::Closed);
        }
        Next::Wait
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f(&self.sink);
        }
    }
}

impl fmt::Debug for CaptureStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureStream")
            .field("limits", &self.limits)
            .field("written", &self.written)
            .field("end", &self.end)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    const WIRE: CaptureView = CaptureView { decrypted: false };

    fn tapped(point: TapPoint, at_us: u64, bytes: &[u8]) -> TapPacket<'_> {
        let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let r: SocketAddr = "198.51.100.1:30000".parse().unwrap();
        TapPacket { local: r, src: a, dst: r, point, at_us, bytes }
    }

    fn records(pcap: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut v = Vec::new();
        let mut b = &pcap[24..];
        while b.len() >= 16 {
            let sec = u32::from_le_bytes(b[0..4].try_into().unwrap()) as u64;
            let us = u32::from_le_bytes(b[4..8].try_into().unwrap()) as u64;
            let n = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
            v.push((sec * 1_000_000 + us, b[16 + 28..16 + n].to_vec()));
            b = &b[16 + n..];
        }
        assert!(b.is_empty());
        v
    }

    fn drain(s: &mut CaptureStream, now: u64) -> (Vec<u8>, Next) {
        let mut all = Vec::new();
        loop {
            match s.poll(now) {
                Next::Data(d) => all.extend_from_slice(&d),
                other => return (all, other),
            }
        }
    }

    const LONG: StreamLimits = StreamLimits { max_duration_us: 60_000_000, max_bytes: 1 << 30 };

    #[test]
    fn wire_view_by_default_decrypted_on_request_unix_times() {
        let sink = Arc::new(CaptureSink::new(WIRE, QueueLimits::default(), 1_700_000_000_000_000, 5_000_000));
        sink.packet(&tapped(TapPoint::Received, 5_000_001, b"srtp"));
        sink.packet(&tapped(TapPoint::Plain, 5_000_002, b"rtp"));
        sink.packet(&tapped(TapPoint::Sent, 5_000_003, b"out"));
        let mut s = CaptureStream::new(sink.clone(), LONG, None);
        let (bytes, next) = drain(&mut s, 0);
        assert_eq!(next, Next::Wait);
        assert_eq!(&bytes[..24], &pcap::file_header(pcap::LINKTYPE_RAW));
        let r = records(&bytes);
        assert_eq!(r, vec![(1_700_000_000_000_001, b"srtp".to_vec()), (1_700_000_000_000_003, b"out".to_vec())]);
        assert_eq!(s.written(), bytes.len() as u64);

        let dec = CaptureSink::new(CaptureView { decrypted: true }, QueueLimits::default(), 0, 0);
        for p in [TapPoint::Received, TapPoint::Plain, TapPoint::Sent] {
            dec.packet(&tapped(p, 1, b"x"));
        }
        assert_eq!(dec.captured(), 3);
    }

    #[test]
    fn a_full_queue_drops_and_counts_never_blocks() {
        let sink = CaptureSink::new(WIRE, QueueLimits { packets: 3, bytes: 1 << 20 }, 0, 0);
        for i in 0..10 {
            sink.packet(&tapped(TapPoint::Received, i, &[0u8; 100]));
        }
        assert_eq!((sink.captured(), sink.dropped()), (3, 7));
        // the byte budget: records of 16 + 28 + 1000 bytes, 3000 bytes allowed
        let sink = CaptureSink::new(WIRE, QueueLimits { packets: 100, bytes: 3000 }, 0, 0);
        for i in 0..5 {
            sink.packet(&tapped(TapPoint::Received, i, &[0u8; 1000]));
        }
        assert_eq!((sink.captured(), sink.dropped()), (2, 3));
        // taking makes room again
        let mut out = Vec::new();
        assert!(sink.take(&mut out, usize::MAX));
        assert_eq!(out.len(), 2 * 1044);
        sink.packet(&tapped(TapPoint::Received, 9, &[0u8; 1000]));
        assert_eq!(sink.captured(), 3);
    }

    #[test]
    fn close_ends_the_stream_after_what_was_queued() {
        let sink = Arc::new(CaptureSink::new(WIRE, QueueLimits::default(), 0, 0));
        let ended = Arc::new(AtomicBool::new(false));
        let e2 = ended.clone();
        let mut s = CaptureStream::new(sink.clone(), LONG, Some(Box::new(move |_| e2.store(true, Ordering::SeqCst))));
        assert!(matches!(s.poll(0), Next::Data(_)));
        assert_eq!(s.poll(0), Next::Wait);
        sink.packet(&tapped(TapPoint::Received, 1, b"last"));
        sink.close();
        sink.packet(&tapped(TapPoint::Received, 2, b"after the close"));
        let (bytes, next) = drain(&mut s, 0);
        assert_eq!(records(&[&[0u8; 24][..], &bytes].concat()), vec![(1, b"last".to_vec())]);
        assert_eq!(next, Next::End(StreamEnd::Closed));
        assert_eq!(s.poll(0), Next::End(StreamEnd::Closed));
        assert!(!ended.load(Ordering::SeqCst));
        drop(s);
        assert!(ended.load(Ordering::SeqCst), "dropping the stream takes the tap off");
    }

    #[test]
    fn duration_and_size_limits_end_the_stream() {
        let sink = Arc::new(CaptureSink::new(WIRE, QueueLimits::default(), 0, 0));
        let mut s =
            CaptureStream::new(sink.clone(), StreamLimits { max_duration_us: 1_000_000, max_bytes: 1 << 30 }, None);
        assert!(matches!(s.poll(10_000_000), Next::Data(_)));
        assert_eq!(s.poll(10_999_999), Next::Wait);
        assert_eq!(s.poll(11_000_000), Next::End(StreamEnd::Duration));

        let mut s = CaptureStream::new(sink.clone(), StreamLimits { max_duration_us: u64::MAX, max_bytes: 500 }, None);
        for i in 0..20 {
            sink.packet(&tapped(TapPoint::Received, i, &[0u8; 100]));
        }
        let (bytes, next) = drain(&mut s, 0);
        assert_eq!(next, Next::End(StreamEnd::Bytes));
        // whole records: the last one may cross the limit
        assert!(bytes.len() >= 500 && bytes.len() < 500 + 144, "{}", bytes.len());
    }
}
