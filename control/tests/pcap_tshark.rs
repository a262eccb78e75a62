//! The pcap writer against a real reader: tshark (Wireshark's engine) decodes our
//! records as IPv4/IPv6 + UDP with valid checksums, and as RTP. Skipped (with a note)
//! where tshark is not installed.

use std::net::SocketAddr;
use std::process::Command;

use control::pcap::{file_header, write_record, LINKTYPE_RAW};

fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0xd5u8; 12 + len];
    b[0] = 0x80;
    b[1] = 8; // PCMA
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    b
}

fn tshark(args: &[&str]) -> Option<String> {
    let out = Command::new("tshark").args(args).output().ok()?;
    assert!(out.status.success(), "tshark {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn tshark_decodes_our_records_as_rtp_with_valid_checksums() {
    let a: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let r: SocketAddr = "198.51.100.1:30000".parse().unwrap();
    let a6: SocketAddr = "[2001:db8::1]:5002".parse().unwrap();
    let r6: SocketAddr = "[2001:db8::2]:30000".parse().unwrap();
    let mut f = file_header(LINKTYPE_RAW).to_vec();
    for seq in 0..4u16 {
        write_record(&mut f, 1_700_000_000_000_000 + u64::from(seq) * 20_000, a, r, &rtp(seq, 0x1111, 160));
        write_record(&mut f, 1_700_000_000_000_500 + u64::from(seq) * 20_000, r6, a6, &rtp(seq, 0x2222, 161));
    }
    let path = std::env::temp_dir().join(format!("pcap-tshark-{}.pcap", std::process::id()));
    std::fs::write(&path, &f).unwrap();
    let p = path.to_str().unwrap();
    let fields = [
        "-r",
        p,
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-d",
        "udp.port==30000,rtp",
        "-T",
        "fields",
        "-E",
        "separator=,",
        "-e",
        "ip.src",
        "-e",
        "ipv6.src",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "ip.checksum.status",
        "-e",
        "udp.checksum.status",
        "-e",
        "rtp.ssrc",
        "-e",
        "rtp.seq",
        "-e",
        "frame.time_epoch",
    ];
    let Some(out) = tshark(&fields) else {
        eprintln!("tshark not installed: skipped (apt-get install tshark)");
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    // checksum status 1 = "Good" (verified; 0 bad, 2 unverified)
    assert!(lines[0].starts_with("192.0.2.1,,5000,30000,1,1,0x00001111,0,1700000000.000000"), "{}", lines[0]);
    assert!(lines[1].starts_with(",2001:db8::2,30000,5002,,1,0x00002222,0,1700000000.000500"), "{}", lines[1]);
    assert!(lines[7].contains(",0x00002222,3,"), "{}", lines[7]);
    // without a decode-as hint, the RTP heuristic finds it too
    let heur =
        tshark(&["-r", p, "-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp", "-T", "fields", "-e", "rtp.seq"]).unwrap();
    assert_eq!(heur.lines().count(), 8, "{heur}");
    std::fs::remove_file(&path).ok();
}
