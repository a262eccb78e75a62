//! Call recordings on disk, laid out as rtpengine's `recording-method = pcap` so that the
//! tooling written for it reads them (docs/operations.md):
//!
//! - `DIR/pcaps/PREFIX.pcap`: the call's clear media (every party's RTP and RTCP as it
//!   sent it, decrypted where the relay decrypts), raw IP (LINKTYPE_RAW) with synthesised
//!   IP/UDP headers from the party's address to the relay socket;
//! - `DIR/tmp/rtpengine-meta-PREFIX.tmp` while the call runs, moved to
//!   `DIR/metadata/rtpengine-meta-PREFIX.txt` when the recording ends: the pcap's path,
//!   every SDP the relay sent, pauses, the call's start and end times;
//!
//! where `PREFIX` is the URI-escaped call-id, `-`, and 16 random hex digits.
//!
//! One writer thread does all file IO. Everything reaches it through one queue, in order
//! (a file is open before its first packet, a packet is written before its file closes);
//! the queue is bounded by counting: at most [`PACKET_QUEUE`] packets (a tap finding it
//! full drops its copy and counts it in `relayd_recording_dropped_total`: a slow disk
//! costs recording, never media, and never blocks a worker) and [`CONTROL_QUEUE`] opens
//! and notes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use control::pcap;
use control::recording::{Note, Recorder, Recording};
use rules::tap::{TapPacket, TapSink};

/// Packets waiting for the writer, all recordings together (beyond: dropped, counted).
pub const PACKET_QUEUE: usize = 8192;
/// Opens and notes waiting for the writer (beyond: the recording does not start, the
/// note is dropped; closes always queue: there is one per open).
pub const CONTROL_QUEUE: usize = 4096;
/// How often buffered pcap data is written out.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Longest escaped call-id in a file name (file names have at most 255 bytes).
const MAX_NAME_ID: usize = 180;

/// The recorder's counters (/metrics).
#[derive(Default)]
pub struct RecordingStats {
    pub dropped: AtomicU64,
    pub packets: AtomicU64,
    pub write_errors: AtomicU64,
    pub active: AtomicU64,
    pub notes_dropped: AtomicU64,
}

struct Packet {
    id: u64,
    unix_us: u64,
    src: SocketAddr,
    dst: SocketAddr,
    bytes: Vec<u8>,
}

enum Msg {
    Packet(Packet),
    Open {
        id: u64,
        pcap: PathBuf,
        meta_tmp: PathBuf,
        meta_done: PathBuf,
        created_unix: u64,
    },
    Text {
        id: u64,
        text: Text,
    },
    Close {
        id: u64,
        discard: bool,
    },
    #[cfg(test)]
    Sync(Sender<()>),
}

/// Metadata text, formatted by the writer (it knows how many packets came before).
enum Text {
    Sdp { label: Option<String>, started_unix_ms: u64, mode: &'static str, sdp: String },
    Paused { unix_ms: u64 },
    Resumed { unix_ms: u64 },
}

/// Opens recordings under `dir` and feeds the writer thread.
pub struct FileRecorder {
    dir: PathBuf,
    queue: Queue,
    next: AtomicU64,
    /// Unix microseconds minus the data plane's clock, for packet timestamps.
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl FileRecorder {
    /// Creates `dir` and its subdirectories `metadata`, `pcaps` and `tmp` (0750) and starts the
    /// writer thread. `dp_now_us` is the data plane's clock (taps stamp packets with it).
    pub fn start(dir: &Path, dp_now_us: Arc<dyn Fn() -> u64 + Send + Sync>) -> Result<FileRecorder, String> {
        for d in [dir.to_path_buf(), dir.join("metadata"), dir.join("pcaps"), dir.join("tmp")] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&d)
                .map_err(|e| format!("recording-dir: cannot create {}: {e}", d.display()))?;
        }
        let probe = dir.join("tmp").join(".relayd-probe");
        File::create(&probe).map_err(|e| format!("recording-dir {}: not writable: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        let (tx, rx) = channel();
        let queue = Queue {
            tx,
            packets: Arc::new(AtomicUsize::new(0)),
            control: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(RecordingStats::default()),
        };
        let w = Writer { files: HashMap::new(), q: queue.clone() };
        std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || w.run(rx))
            .map_err(|e| format!("recording: cannot start the writer thread: {e}"))?;
        Ok(FileRecorder { dir: dir.to_path_buf(), queue, next: AtomicU64::new(0), clock: dp_now_us })
    }

    pub fn stats(&self) -> &Arc<RecordingStats> {
        &self.queue.stats
    }

    /// Wait until the writer handled everything queued before (tests).
    #[cfg(test)]
    pub fn sync(&self) {
        let (tx, rx) = channel();
        let _ = self.queue.tx.send(Msg::Sync(tx));
        let _ = rx.recv_timeout(Duration::from_secs(5));
    }
}

/// The writer's queue and its bounds.
#[derive(Clone)]
struct Queue {
    tx: Sender<Msg>,
    /// Packets queued and not yet taken by the writer.
    packets: Arc<AtomicUsize>,
    /// Opens and notes likewise.
    control: Arc<AtomicUsize>,
    stats: Arc<RecordingStats>,
}

impl Queue {
    /// Queue `m` if its bound allows (packets: [`PACKET_QUEUE`]; opens and notes:
    /// [`CONTROL_QUEUE`]; closes always).
    fn push(&self, m: Msg) -> bool {
        let bound = match &m {
            Msg::Packet(_) => Some((&self.packets, PACKET_QUEUE)),
            Msg::Open { .. } | Msg::Text { .. } => Some((&self.control, CONTROL_QUEUE)),
            _ => None,
        };
        if let Some((n, max)) = bound {
            if n.fetch_add(1, Relaxed) >= max {
                n.fetch_sub(1, Relaxed);
                return false;
            }
        }
        self.tx.send(m).is_ok()
    }
}

impl Recorder for FileRecorder {
    fn open(&self, call_id: &str, created_unix: u64) -> Result<Arc<dyn Recording>, String> {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let prefix = format!("{}-{}", escape(call_id), random_hex()?);
        let pcap = self.dir.join("pcaps").join(format!("{prefix}.pcap"));
        let meta_tmp = self.dir.join("tmp").join(format!("rtpengine-meta-{prefix}.tmp"));
        let meta_done = self.dir.join("metadata").join(format!("rtpengine-meta-{prefix}.txt"));
        let open = Msg::Open { id, pcap: pcap.clone(), meta_tmp, meta_done, created_unix };
        if !self.queue.push(open) {
            return Err("the recording writer is behind (queue full)".into());
        }
        let offset = unix_us().saturating_sub((self.clock)());
        Ok(Arc::new(FileRecording {
            id,
            pcap,
            offset_us: offset,
            paused: AtomicBool::new(false),
            discard: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            q: self.queue.clone(),
        }))
    }

    fn metrics(&self) -> Vec<(String, u64)> {
        let s = &self.queue.stats;
        vec![
            ("relayd_recording_dropped_total".into(), s.dropped.load(Relaxed)),
            ("relayd_recording_packets_total".into(), s.packets.load(Relaxed)),
            ("relayd_recording_write_errors_total".into(), s.write_errors.load(Relaxed)),
            ("relayd_recording_notes_dropped_total".into(), s.notes_dropped.load(Relaxed)),
            ("relayd_recordings_active".into(), s.active.load(Relaxed)),
        ]
    }
}

/// One call's recording: the tap sink on its sockets (through the engine's fan-out).
struct FileRecording {
    id: u64,
    pcap: PathBuf,
    offset_us: u64,
    paused: AtomicBool,
    discard: AtomicBool,
    closed: AtomicBool,
    q: Queue,
}

impl TapSink for FileRecording {
    /// On the packet path: one copy into the bounded queue, or a counted drop.
    fn packet(&self, p: &TapPacket<'_>) {
        if self.paused.load(Relaxed) {
            return;
        }
        // the bound first: a full queue costs no copy
        if self.q.packets.load(Relaxed) >= PACKET_QUEUE {
            self.q.stats.dropped.fetch_add(1, Relaxed);
            return;
        }
        let one = Packet {
            id: self.id,
            unix_us: p.at_us.saturating_add(self.offset_us),
            src: p.src,
            dst: p.dst,
            bytes: p.bytes.to_vec(),
        };
        if !self.q.push(Msg::Packet(one)) {
            self.q.stats.dropped.fetch_add(1, Relaxed);
        }
    }

    fn close(&self) {
        if !self.closed.swap(true, Relaxed) {
            self.q.push(Msg::Close { id: self.id, discard: self.discard.load(Relaxed) });
        }
    }
}

impl Recording for FileRecording {
    fn note(&self, n: Note<'_>) {
        let text = match n {
            Note::Sdp { mode, label, started_unix_ms, sdp, .. } => Text::Sdp {
                label: label.map(str::to_string),
                started_unix_ms,
                mode: mode.as_str(),
                sdp: sdp.to_string(),
            },
            Note::Paused { unix_ms } => {
                self.paused.store(true, Relaxed);
                Text::Paused { unix_ms }
            }
            Note::Resumed { unix_ms } => {
                self.paused.store(false, Relaxed);
                Text::Resumed { unix_ms }
            }
            Note::Discard => {
                self.discard.store(true, Relaxed);
                return;
            }
        };
        if !self.q.push(Msg::Text { id: self.id, text }) {
            self.q.stats.notes_dropped.fetch_add(1, Relaxed);
        }
    }

    fn pcap_path(&self) -> String {
        self.pcap.display().to_string()
    }
}

/// One open recording on the writer's side.
struct Files {
    pcap: Option<BufWriter<File>>,
    pcap_path: PathBuf,
    meta: Option<File>,
    meta_tmp: PathBuf,
    meta_done: PathBuf,
    created_unix: u64,
    /// Packets written so far (rtpengine's "SDP before RTP packet", from 1).
    written: u64,
    buf: Vec<u8>,
}

struct Writer {
    files: HashMap<u64, Files>,
    q: Queue,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        // buffered writes reach the disk at least every FLUSH_EVERY, under load too (a
        // killed relayd loses at most that much of each recording)
        let mut flushed = std::time::Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(m) => self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish_all(),
            }
            if flushed.elapsed() >= FLUSH_EVERY {
                self.flush();
                flushed = std::time::Instant::now();
            }
        }
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Packet(p) => {
                self.q.packets.fetch_sub(1, Relaxed);
                self.packet(p);
            }
            Msg::Open { id, pcap, meta_tmp, meta_done, created_unix } => {
                self.q.control.fetch_sub(1, Relaxed);
                self.open(id, pcap, meta_tmp, meta_done, created_unix);
            }
            Msg::Text { id, text } => {
                self.q.control.fetch_sub(1, Relaxed);
                if let Some(f) = self.files.get_mut(&id) {
                    let t = f.text(&text);
                    self.meta(id, t.as_bytes());
                }
            }
            Msg::Close { id, discard } => self.close(id, discard),
            #[cfg(test)]
            Msg::Sync(tx) => {
                self.flush();
                let _ = tx.send(());
            }
        }
    }

    fn open(&mut self, id: u64, pcap_path: PathBuf, meta_tmp: PathBuf, meta_done: PathBuf, created_unix: u64) {
        let create = |p: &Path| OpenOptions::new().write(true).create_new(true).mode(0o640).open(p);
        let pcap = match create(&pcap_path).and_then(|f| {
            let mut w = BufWriter::with_capacity(64 * 1024, f);
            w.write_all(&pcap::file_header(pcap::LINKTYPE_RAW))?;
            Ok(w)
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
                log::warn!("recording: cannot create {}: {e}", pcap_path.display());
                None
            }
        };
        let meta = match create(&meta_tmp) {
            Ok(f) => Some(f),
            Err(e) => {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
                log::warn!("recording: cannot create {}: {e}", meta_tmp.display());
                None
            }
        };
        self.q.stats.active.fetch_add(1, Relaxed);
        let f = Files { pcap, pcap_path, meta, meta_tmp, meta_done, created_unix, written: 0, buf: Vec::new() };
        let head = format!("{}\n\n", f.pcap_path.display());
        self.files.insert(id, f);
        self.meta(id, head.as_bytes());
    }

    fn meta(&mut self, id: u64, bytes: &[u8]) {
        let Some(f) = self.files.get_mut(&id) else { return };
        if let Some(m) = f.meta.as_mut() {
            if let Err(e) = m.write_all(bytes) {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
                log::warn!("recording: writing {}: {e}; no more metadata for it", f.meta_tmp.display());
                f.meta = None;
            }
        }
    }

    fn packet(&mut self, p: Packet) {
        let Packet { id, unix_us, src, dst, bytes } = p;
        let Some(f) = self.files.get_mut(&id) else { return };
        let Some(w) = f.pcap.as_mut() else { return };
        f.buf.clear();
        pcap::write_record(&mut f.buf, unix_us, src, dst, &bytes);
        match w.write_all(&f.buf) {
            Ok(()) => {
                f.written += 1;
                self.q.stats.packets.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
                log::warn!("recording: writing {}: {e}; no more packets for it", f.pcap_path.display());
                f.pcap = None;
            }
        }
    }

    fn flush(&mut self) {
        for f in self.files.values_mut() {
            if let Some(w) = f.pcap.as_mut() {
                if w.flush().is_err() {
                    self.q.stats.write_errors.fetch_add(1, Relaxed);
                    f.pcap = None;
                }
            }
        }
    }

    fn close(&mut self, id: u64, discard: bool) {
        let Some(mut f) = self.files.remove(&id) else { return };
        self.q.stats.active.fetch_sub(1, Relaxed);
        if let Some(mut w) = f.pcap.take() {
            if w.flush().is_err() {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
            }
        }
        if discard {
            let _ = std::fs::remove_file(&f.pcap_path);
            let _ = std::fs::remove_file(&f.meta_tmp);
            log::info!("recording {} discarded", f.pcap_path.display());
            return;
        }
        let end = unix_us() / 1_000_000;
        let trailer = format!(
            "\nTimestamp terminated ms(first monologue): {:.3}\n\ncall start time: {}\ncall end time: {}\n",
            (end * 1000) as f64,
            iso_time(f.created_unix),
            iso_time(end)
        );
        if let Some(mut m) = f.meta.take() {
            if m.write_all(trailer.as_bytes()).is_err() {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
            }
            drop(m);
            if let Err(e) = std::fs::rename(&f.meta_tmp, &f.meta_done) {
                self.q.stats.write_errors.fetch_add(1, Relaxed);
                log::warn!("recording: cannot move {} to metadata/: {e}", f.meta_tmp.display());
            }
        }
        log::info!("recording {} finished ({} packets)", f.pcap_path.display(), f.written);
    }

    fn finish_all(&mut self) {
        let ids: Vec<u64> = self.files.keys().copied().collect();
        for id in ids {
            self.close(id, false);
        }
    }
}

impl Files {
    /// The metadata text rtpengine's pcap method writes for `t`.
    fn text(&self, t: &Text) -> String {
        match t {
            Text::Sdp { label, started_unix_ms, mode, sdp } => {
                let label = label.as_deref().map(|l| format!("\nLabel: {l}")).unwrap_or_default();
                format!(
                    "{label}\nTimestamp started ms: {:.3}\nSDP mode: {mode}\nSDP before RTP packet: {}\n\n{sdp}",
                    *started_unix_ms as f64,
                    self.written + 1
                )
            }
            Text::Paused { unix_ms } => {
                format!("\nRecording paused at: {} ({:.3} ms)\n", iso_time(unix_ms / 1000), *unix_ms as f64)
            }
            Text::Resumed { unix_ms } => {
                format!("\nRecording resumed at: {} ({:.3} ms)\n", iso_time(unix_ms / 1000), *unix_ms as f64)
            }
        }
    }
}

fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// `YYYY-MM-DDThh:mm:ss` of unix seconds, UTC (rtpengine writes local time; relayd runs
/// as a service whose zone is often UTC anyway, and UTC is unambiguous).
pub fn iso_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let s = unix % 86_400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// The call-id as rtpengine puts it in file names (g_uri_escape_string: everything but
/// the unreserved characters percent-encoded, so no `/` or `..` reaches the path), cut
/// to [`MAX_NAME_ID`] bytes (the random tag that follows keeps "." and ".." out).
pub fn escape(call_id: &str) -> String {
    let mut out = String::new();
    for b in call_id.bytes() {
        let piece = if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        if out.len() + piece.len() > MAX_NAME_ID {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// 16 hex digits from the kernel's random source (rtpengine's random tag).
fn random_hex() -> Result<String, String> {
    let mut b = [0u8; 8];
    // SAFETY: `b` is a valid buffer of `b.len()` bytes
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(format!("no random bytes: {}", std::io::Error::last_os_error()));
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests;
