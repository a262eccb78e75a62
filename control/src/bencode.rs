//! Bencode (BEP 3) values, decoder and encoder, as used by the ng control protocol.
//!
//! The decoder is strict and bounded: it never panics on any input, it rejects
//! trailing data, and nesting is limited so a hostile datagram cannot blow the stack.

use std::collections::BTreeMap;
use std::fmt;

/// Deepest nesting accepted (ng messages nest three or four levels).
const MAX_DEPTH: usize = 32;

#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed bencode at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for DecodeError {}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => f.debug_map().entries(d.iter().map(|(k, v)| (String::from_utf8_lossy(k), v))).finish(),
        }
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn dict() -> Value {
        Value::Dict(BTreeMap::new())
    }

    /// Insert into a dictionary value; a no-op on other kinds.
    pub fn insert(&mut self, key: &str, v: Value) {
        if let Value::Dict(d) = self {
            d.insert(key.as_bytes().to_vec(), v);
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            // Kamailio sends some numbers as strings
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Strings of a list value, or a single string as a one-element list.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Value::List(l) => l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Value::Bytes(_) => self.as_str().map(|s| vec![s.to_string()]).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(k.len().to_string().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decode exactly one value spanning the whole input.
    pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
        let mut d = Decoder { buf: input, pos: 0 };
        let v = d.value(0)?;
        if d.pos != input.len() {
            return Err(d.err("trailing data after the value"));
        }
        Ok(v)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Bytes(s.into_bytes())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    fn from(i: u64) -> Value {
        Value::Int(i.min(i64::MAX as u64) as i64)
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError { offset: self.pos, what }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf.get(self.pos).copied().ok_or_else(|| self.err("unexpected end of input"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.number(b'e')?;
                Ok(Value::Int(n))
            }
            b'l' => {
                self.pos += 1;
                let mut l = Vec::new();
                while self.peek()? != b'e' {
                    l.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(l))
            }
            b'd' => {
                self.pos += 1;
                let mut d = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.err("dictionary key is not a string"));
                    }
                    let k = self.bytes()?;
                    let v = self.value(depth + 1)?;
                    d.insert(k, v);
                }
                self.pos += 1;
                Ok(Value::Dict(d))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            _ => Err(self.err("unexpected byte")),
        }
    }

    fn number(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        while self.peek()? != end {
            self.pos += 1;
            if self.pos - start > 20 {
                return Err(self.err("number too long"));
            }
        }
        let s = std::str::from_utf8(&self.buf[start..self.pos]).map_err(|_| self.err("bad number"))?;
        let n = s.parse::<i64>().map_err(|_| self.err("bad number"))?;
        self.pos += 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.number(b':')?;
        if len < 0 {
            return Err(self.err("negative string length"));
        }
        let len = len as usize;
        if self.buf.len() - self.pos < len {
            return Err(self.err("string runs past the end of input"));
        }
        let b = self.buf[self.pos..self.pos + len].to_vec();
        self.pos += len;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_ng_message() {
        let raw = b"d7:command4:ping4:listli1ei2ee1:xd1:ai-5eee";
        let v = Value::decode(raw).unwrap();
        assert_eq!(v.get("command").unwrap().as_str(), Some("ping"));
        assert_eq!(v.get("x").unwrap().get("a").unwrap().as_int(), Some(-5));
        assert_eq!(v.encode(), raw.to_vec());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"d",
            b"d3:abc",
            b"di1ei2ee",
            b"5:abc",
            b"i12",
            b"ixe",
            b"-1:a",
            b"d1:ai1ee1",
            b"i99999999999999999999999e",
            b"x",
        ] {
            assert!(Value::decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "l".repeat(100) + &"e".repeat(100);
        assert!(Value::decode(deep.as_bytes()).is_err());
        // as deep as a 64 KiB datagram can nest: an error, not a stack overflow
        for (open, close) in [("l", "e"), ("d1:k", "e")] {
            let deep = open.repeat(65536 / open.len()) + &close.repeat(65536);
            assert_eq!(Value::decode(deep.as_bytes()).unwrap_err().what, "nesting too deep");
        }
        let ok = "l".repeat(MAX_DEPTH) + &"e".repeat(MAX_DEPTH);
        assert!(Value::decode(ok.as_bytes()).is_ok());
    }

    #[test]
    fn string_numbers_are_ints() {
        assert_eq!(Value::str("30").as_int(), Some(30));
    }
}
