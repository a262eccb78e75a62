#![no_main]
//! HTTP requests through the API's request handling (control::http::route) against an
//! engine with calls on an in-memory data plane. Even first byte: the rest is a raw
//! request head, parsed with httparse as hyper does. Odd: the rest is split into lines
//! (method, target, `name:value` headers) and routed as lossy UTF-8, so targets and
//! headers a parser would refuse reach the router too (percent-decoding, Host, token).
use std::sync::{Arc, Mutex, OnceLock};

use control::bencode::Value;
use rules::dataplane::MemoryDataPlane;
use control::engine::{Engine, EngineConfig};
use control::http::{route, route_raw, Api, HttpOptions};
use libfuzzer_sys::fuzz_target;

static API: OnceLock<Api> = OnceLock::new();

const IDS: [&str; 3] = ["c1", "a/1 x", "%a\u{e9}\u{1f600}"];

fn ensure_calls(e: &mut Engine) {
    for id in IDS {
        if e.calls.contains_key(id) {
            continue;
        }
        for (cmd, tag, port) in [("offer", None, 5000), ("answer", Some("B"), 6000)] {
            let mut d = Value::dict();
            d.insert("command", cmd.into());
            d.insert("call-id", id.into());
            d.insert("from-tag", "A".into());
            if let Some(t) = tag {
                d.insert("to-tag", t.into());
            }
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
            );
            d.insert("sdp", sdp.as_str().into());
            e.command(&d, 1000, 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let api = API.get_or_init(|| {
        let cfg = EngineConfig { port_min: 30000, port_max: 30100, ..Default::default() };
        let engine = Arc::new(Mutex::new(Engine::new(cfg, Arc::new(MemoryDataPlane::default()))));
        let opts = HttpOptions {
            token: Some("fuzz-token".into()),
            hosts: vec!["relay.example".into()],
            ..Default::default()
        };
        Api::new(engine, opts)
    });
    ensure_calls(&mut control::lock(&api.engine));
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let _ = route_raw(api, rest);
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let target = lines.next().unwrap_or("");
    let headers: Vec<(&str, &[u8])> =
        lines.map(|l| l.split_once(':').unwrap_or((l, ""))).map(|(n, v)| (n, v.as_bytes())).collect();
    let r = route(api, method, target, &headers);
    assert!((200..600).contains(&r.status));
});
