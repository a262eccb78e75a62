use std::sync::Arc;

use control::recording::{Note, Recorder, SdpMode};
use rules::tap::{TapPacket, TapPoint};

use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("relayd-rec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn recorder(d: &Path) -> FileRecorder {
    FileRecorder::start(d, Arc::new(|| 5_000_000)).unwrap()
}

fn packet(seq: u8) -> Vec<u8> {
    let mut p = vec![0x80, 8, 0, seq, 0, 0, 0, 160, 0, 0, 0, 7];
    p.extend_from_slice(&[0xd5; 160]);
    p
}

fn send(r: &dyn Recording, bytes: &[u8]) {
    let local: SocketAddr = "127.0.0.1:30000".parse().unwrap();
    let src: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    r.packet(&TapPacket { local, src, dst: local, point: TapPoint::Plain, at_us: 5_000_000, bytes });
}

/// (unix_us, UDP payload) of each record of a LINKTYPE_RAW IPv4 pcap.
fn records(file: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert_eq!(&file[..24], &pcap::file_header(pcap::LINKTYPE_RAW));
    let mut out = Vec::new();
    let mut i = 24;
    while i < file.len() {
        let w = |o: usize| u32::from_le_bytes(file[i + o..i + o + 4].try_into().unwrap()) as u64;
        let (ts, us, cap) = (w(0), w(4), w(8) as usize);
        let pkt = &file[i + 16..i + 16 + cap];
        assert_eq!(pkt[0] >> 4, 4);
        out.push((ts * 1_000_000 + us, pkt[28..].to_vec()));
        i += 16 + cap;
    }
    out
}

fn ls(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn rtpengine_pcap_layout_metadata_and_pause() {
    let d = dir("layout");
    let rec = recorder(&d);
    assert_eq!(ls(&d), ["metadata", "pcaps", "tmp"]);
    let r = rec.open("abc/../x@host", 1_700_000_000).unwrap();
    let path = r.pcap_path();
    let name = Path::new(&path).file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("abc%2F..%2Fx%40host-") && name.ends_with(".pcap"), "{name}");
    assert_eq!(name.len(), "abc%2F..%2Fx%40host-".len() + 16 + 5, "16 random hex digits");
    r.note(Note::Sdp {
        mode: SdpMode::Offer,
        tag: "a",
        label: Some("caller"),
        started_unix_ms: 1_700_000_000_000,
        sdp: "v=0\r\n",
    });
    send(r.as_ref(), &packet(1));
    send(r.as_ref(), &packet(2));
    rec.sync();
    r.note(Note::Paused { unix_ms: 1_700_000_010_000 });
    send(r.as_ref(), &packet(3)); // paused: not written
    r.note(Note::Resumed { unix_ms: 1_700_000_020_000 });
    send(r.as_ref(), &packet(4));
    rec.sync();
    // while the call runs: the metadata is in DIR/tmp
    assert_eq!(ls(&d.join("tmp")).len(), 1);
    assert!(ls(&d.join("metadata")).is_empty());
    r.close();
    r.close(); // once
    rec.sync();
    let recs = records(&std::fs::read(&path).unwrap());
    assert_eq!(recs.iter().map(|r| r.1[3]).collect::<Vec<_>>(), [1, 2, 4]);
    assert!(recs[0].0 > 1_600_000_000_000_000, "unix time stamps: {}", recs[0].0);
    let meta = ls(&d.join("metadata"));
    assert_eq!(meta, [format!("rtpengine-meta-{}.txt", name.trim_end_matches(".pcap"))]);
    assert!(ls(&d.join("tmp")).is_empty());
    let text = std::fs::read_to_string(d.join("metadata").join(&meta[0])).unwrap();
    assert!(text.starts_with(&format!("{path}\n\n\nLabel: caller\nTimestamp started ms: 1700000000000.000\nSDP mode: offer\nSDP before RTP packet: 1\n\nv=0\r\n")), "{text}");
    assert!(text.contains("\nRecording paused at: 2023-11-14T22:13:30 (1700000010000.000 ms)\n"), "{text}");
    assert!(text.contains("\nRecording resumed at: 2023-11-14T22:13:40"), "{text}");
    assert!(text.contains("\n\ncall start time: 2023-11-14T22:13:20\ncall end time: "), "{text}");
    let mode = std::fs::metadata(&path).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o640, "decrypted media: not world-readable");
    assert_eq!(rec.stats().active.load(Relaxed), 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn discard_deletes_the_files() {
    let d = dir("discard");
    let rec = recorder(&d);
    let r = rec.open("c", 0).unwrap();
    send(r.as_ref(), &packet(1));
    r.note(Note::Discard);
    r.close();
    rec.sync();
    assert!(ls(&d.join("pcaps")).is_empty() && ls(&d.join("tmp")).is_empty() && ls(&d.join("metadata")).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn every_copy_is_written_or_counted_as_dropped() {
    let d = dir("full");
    let rec = recorder(&d);
    let r = rec.open("c", 0).unwrap();
    // far more than the queue holds, faster than any disk: some are dropped, counted,
    // and the sender never waited
    let n = PACKET_QUEUE as u64 * 4;
    for _ in 0..n {
        send(r.as_ref(), &packet(1));
    }
    r.close();
    rec.sync();
    let s = rec.stats();
    assert_eq!(s.packets.load(Relaxed) + s.dropped.load(Relaxed), n);
    assert!(rec.metrics().iter().any(|(k, _)| k == "relayd_recording_dropped_total"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn names_and_times() {
    assert_eq!(escape("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(escape("x y/z"), "x%20y%2Fz");
    assert!(escape(&"/".repeat(1000)).len() <= MAX_NAME_ID);
    assert_eq!(iso_time(0), "1970-01-01T00:00:00");
    assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00");
    assert_eq!(iso_time(1_700_000_000), "2023-11-14T22:13:20");
}

#[test]
fn an_unwritable_directory_is_a_start_error() {
    let e = FileRecorder::start(Path::new("/proc/relayd-no"), Arc::new(|| 0)).err().unwrap();
    assert!(e.contains("recording-dir"), "{e}");
}
