//! `relayctl capture`: stream a call's live pcap (`GET /calls/{id}/capture`) into a file
//! or a pipe (`-w -` into `wireshark -k -i -`), written through chunk by chunk so a
//! reader sees packets as they cross the relay.

use std::io::{Read, Write};
use std::time::Duration;

/// What to capture, as the command line says it.
pub struct CaptureArgs<'a> {
    pub id: &'a str,
    pub leg: Option<&'a str>,
    pub decrypted: bool,
    pub duration: Option<u64>,
    /// A file name, or "-" for standard output.
    pub out: &'a str,
}

/// The request path of a capture.
pub fn path(a: &CaptureArgs<'_>) -> String {
    let mut q = Vec::new();
    if let Some(l) = a.leg {
        q.push(format!("leg={}", crate::encode(l)));
    }
    if a.decrypted {
        q.push("decrypted=1".into());
    }
    if let Some(d) = a.duration {
        q.push(format!("duration={d}"));
    }
    let mut p = format!("/calls/{}/capture", crate::encode(a.id));
    if !q.is_empty() {
        p = format!("{p}?{}", q.join("&"));
    }
    p
}

/// Decoder of an HTTP/1.1 chunked body, fed as bytes arrive (RFC 9112 §7.1).
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    line: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Longest chunk-size or trailer line we accept.
const MAX_LINE: usize = 4096;

impl Chunked {
    /// Decode `input`, appending body bytes to `out`; whether the body is complete.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
        while !input.is_empty() && self.state != State::Done {
            match self.state {
                State::Data(n) => {
                    let k = (n.min(input.len() as u64)) as usize;
                    out.extend_from_slice(&input[..k]);
                    input = &input[k..];
                    self.state = if n == k as u64 { State::DataEnd } else { State::Data(n - k as u64) };
                }
                _ => {
                    let b = input[0];
                    input = &input[1..];
                    if b != b'\n' {
                        if self.line.len() >= MAX_LINE {
                            return Err("malformed chunked body from relayd (line too long)".into());
                        }
                        self.line.push(b);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = match self.state {
                        State::Size => {
                            let hex = line.split(|c| *c == b';').next().unwrap_or(b"");
                            let n = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                                .ok_or("malformed chunk size from relayd")?;
                            if n == 0 {
                                State::Trailer
                            } else {
                                State::Data(n)
                            }
                        }
                        State::DataEnd if line.is_empty() => State::Size,
                        State::DataEnd => return Err("malformed chunked body from relayd (no CRLF after data)".into()),
                        State::Trailer if line.is_empty() => State::Done,
                        _ => State::Trailer,
                    };
                }
            }
        }
        Ok(self.state == State::Done)
    }
}

/// Counts the records of a pcap stream as it passes (file header, then records of
/// 16 bytes + their captured length).
#[derive(Debug, Default)]
pub struct RecordCounter {
    seen: u64,
    next_record_at: u64,
    header: [u8; 16],
    pub records: u64,
}

impl RecordCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.next_record_at == 0 {
            self.next_record_at = 24;
        }
        for (i, b) in bytes.iter().enumerate() {
            let at = self.seen + i as u64;
            if at >= self.next_record_at && at < self.next_record_at + 16 {
                self.header[(at - self.next_record_at) as usize] = *b;
                if at == self.next_record_at + 15 {
                    let incl = u32::from_le_bytes(self.header[8..12].try_into().unwrap_or([0; 4]));
                    self.records += 1;
                    self.next_record_at += 16 + u64::from(incl);
                }
            }
        }
        self.seen += bytes.len() as u64;
    }
}

/// Where the body of a successful reply starts in `head` (after CRLF CRLF), the status
/// and whether it is chunked.
fn parse_head(head: &[u8]) -> Option<(usize, u16, bool)> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&head[..end]);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let chunked = text.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
        })
    });
    Some((end, status, chunked))
}

/// Run a capture: connect, ask, and copy the pcap to `a.out` until relayd ends the
/// stream. Returns a line for the operator (packets and bytes written).
pub fn run(addr: &str, token: Option<&str>, a: &CaptureArgs<'_>) -> Result<String, String> {
    if a.out == "-" && unsafe { libc::isatty(1) } == 1 {
        return Err("-w -: standard output is a terminal; pipe it (| wireshark -k -i -) or give a file".into());
    }
    let mut s = crate::connect(addr)?;
    // no packets for a while is normal (silence, hold): wait as long as relayd may stream
    let wait = a.duration.unwrap_or(3600) + 30;
    s.set_read_timeout(Some(Duration::from_secs(wait))).ok();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n", path(a))
        .map_err(|e| format!("sending the request to relayd: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let (body_at, status, chunked) = loop {
        let n = s.read(&mut buf).map_err(|e| format!("reading relayd's answer: {e}"))?;
        if n == 0 {
            return Err("relayd closed the connection without an answer".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(h) = parse_head(&head) {
            break h;
        }
        if head.len() > 64 * 1024 {
            return Err("malformed HTTP answer from relayd".into());
        }
    };
    let mut dec = chunked.then(Chunked::default);
    let mut body = Vec::new();
    let mut pending = head.split_off(body_at);
    if status != 200 {
        // an error reply is small JSON: read it whole, bounded
        loop {
            match &mut dec {
                Some(d) => {
                    if d.feed(&pending, &mut body)? {
                        break;
                    }
                }
                None => body.extend_from_slice(&pending),
            }
            if body.len() > 64 * 1024 {
                break;
            }
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            pending = buf[..n].to_vec();
        }
        let text = String::from_utf8_lossy(&body);
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status} {}", text.trim()));
        return Err(match status {
            401 | 403 => format!("{why} (relayd's --http-token, given as RELAYCTL_TOKEN or --token)"),
            _ => why,
        });
    }
    // the file is made only once relayd said yes: a refused capture leaves no empty file
    let mut out: Box<dyn Write> =
        if a.out == "-" { Box::new(std::io::stdout().lock()) } else { Box::new(open(a.out)?) };
    let mut count = RecordCounter::default();
    let mut written = 0u64;
    loop {
        let done = match &mut dec {
            Some(d) => d.feed(&pending, &mut body)?,
            None => {
                body.extend_from_slice(&pending);
                false
            }
        };
        if !body.is_empty() {
            out.write_all(&body).and_then(|_| out.flush()).map_err(|e| format!("writing {}: {e}", a.out))?;
            count.feed(&body);
            written += body.len() as u64;
            body.clear();
        }
        if done {
            break;
        }
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(format!("reading the capture from relayd: {e} ({written} bytes written)")),
        };
        if n == 0 {
            if dec.is_some() {
                return Err(format!("relayd closed the capture mid-stream ({written} bytes written)"));
            }
            break;
        }
        pending = buf[..n].to_vec();
    }
    Ok(format!("capture of call {}: {} packets, {written} bytes written to {}", a.id, count.records, a.out))
}

fn open(path: &str) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| format!("cannot write {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let wire = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 1..wire.len() {
            let mut d = Chunked::default();
            let mut out = Vec::new();
            let mut done = false;
            for piece in wire.chunks(split) {
                assert!(!done);
                done = d.feed(piece, &mut out).unwrap();
            }
            assert!(done, "split {split}");
            assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.");
        }
        let mut d = Chunked::default();
        assert!(d.feed(b"zz\r\n", &mut Vec::new()).is_err());
        let mut d = Chunked::default();
        assert!(d.feed(b"1\r\nab\r\n", &mut Vec::new()).is_err());
        let mut d = Chunked::default();
        assert!(d.feed(&[b'1'; 5000], &mut Vec::new()).is_err());
    }

    #[test]
    fn records_are_counted_across_pieces() {
        let mut pcap = vec![0u8; 24];
        for len in [3u32, 0, 70] {
            let mut h = [0u8; 16];
            h[8..12].copy_from_slice(&len.to_le_bytes());
            pcap.extend_from_slice(&h);
            pcap.extend(std::iter::repeat_n(0xaa, len as usize));
        }
        for split in [1, 7, 16, 1000] {
            let mut c = RecordCounter::default();
            for p in pcap.chunks(split) {
                c.feed(p);
            }
            assert_eq!(c.records, 3, "split {split}");
        }
    }

    #[test]
    fn paths_and_heads() {
        let a = CaptureArgs { id: "a b/c", leg: Some("tag;1"), decrypted: true, duration: Some(30), out: "-" };
        assert_eq!(path(&a), "/calls/a%20b%2Fc/capture?leg=tag%3B1&decrypted=1&duration=30");
        let a = CaptureArgs { id: "x", leg: None, decrypted: false, duration: None, out: "-" };
        assert_eq!(path(&a), "/calls/x/capture");
        let h = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.tcpdump.pcap\r\ntransfer-encoding: chunked\r\n\r\n18\r\n";
        assert_eq!(parse_head(h), Some((h.len() - 4, 200, true)));
        assert_eq!(parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}"), Some((45, 404, false)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
