//! A small blocking ng client (used by rtpgen, relayctl-style tools and tests).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::bencode::Value;

pub struct NgClient {
    sock: UdpSocket,
    next: u64,
    prefix: String,
    pub retries: u32,
}

impl NgClient {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<NgClient> {
        let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
        let sock = UdpSocket::bind(bind)?;
        sock.connect(addr)?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(NgClient { sock, next: 0, prefix: format!("{}_{}", std::process::id(), rand::random::<u32>()), retries: 2 })
    }

    /// Send raw bytes (for tests of malformed input) and wait for a reply datagram.
    pub fn raw(&self, datagram: &[u8]) -> io::Result<Vec<u8>> {
        self.sock.send(datagram)?;
        let mut buf = vec![0u8; 65536];
        let n = self.sock.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn request(&mut self, req: &Value) -> io::Result<Value> {
        self.next += 1;
        let cookie = format!("{}_{}", self.prefix, self.next);
        let mut pkt = cookie.clone().into_bytes();
        pkt.push(b' ');
        req.encode_into(&mut pkt);
        let mut buf = vec![0u8; 65536];
        for _ in 0..=self.retries {
            self.sock.send(&pkt)?;
            loop {
                match self.sock.recv(&mut buf) {
                    Ok(n) => {
                        let r = &buf[..n];
                        let Some(sp) = r.iter().position(|&b| b == b' ') else {
                            continue;
                        };
                        if &r[..sp] != cookie.as_bytes() {
                            continue; // a late reply to an earlier request
                        }
                        return Value::decode(&r[sp + 1..]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "no ng reply"))
    }

    /// Build a request dictionary from (key, value) pairs.
    pub fn req(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::dict();
        for (k, x) in pairs {
            v.insert(k, x.clone());
        }
        v
    }
}
