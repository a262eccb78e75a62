//! The fuzz targets' seed corpora (fuzz/seeds/) do what they are for: every SDP seed of
//! `sdp_offer` is a valid offer that reaches the rewrite and gets an ok offer and answer
//! (seeds named `*.expect-error` are kept for mutation and must get a clean error), and
//! the `ng_server` seeds get replies.

use std::path::PathBuf;

use control::bencode::Value;
use control::fuzzing;
use control::ng::NgServer;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

fn result(v: &Value) -> String {
    format!(
        "{} {}",
        v.get("result").and_then(Value::as_str).unwrap_or("?"),
        v.get("error-reason").and_then(Value::as_str).unwrap_or("")
    )
}

#[test]
fn sdp_offer_seeds_reach_the_rewrite() {
    let (mut e, dp) = fuzzing::engine();
    let all = seeds("sdp_offer");
    assert!(all.len() >= 20, "seed corpus missing");
    let mut n = 0;
    let mut failed = Vec::new();
    for (i, (name, data)) in all.iter().enumerate() {
        let steps = fuzzing::sdp_offer_round(&mut e, &dp, i as u64, data);
        let by = |s: &str| steps.iter().find(|(n, _)| *n == s).map(|(_, v)| v);
        if name.ends_with(".expect-error") {
            assert!(result(by("offer").unwrap()).starts_with("error"), "{name}");
            continue;
        }
        for step in ["offer", "answer", "re-offer", "reverse offer", "delete"] {
            match by(step) {
                Some(v) if result(v).starts_with("ok") => {}
                Some(v) => failed.push(format!("{name}: {step}: {}", result(v))),
                None => failed.push(format!("{name}: no {step}")),
            }
        }
        if by("offer").is_none_or(|v| v.get("sdp").is_none()) {
            failed.push(format!("{name}: no rewritten SDP"));
        }
        n += 1;
    }
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(n >= 20);
    assert_eq!(e.stats.panics, 0);
}

#[test]
fn ng_server_seeds_get_replies() {
    let (mut e, _dp) = fuzzing::engine();
    let mut ng = NgServer::new();
    let all = seeds("ng_server");
    assert!(!all.is_empty());
    for (i, (name, data)) in all.iter().enumerate() {
        let (src, d) = data.split_first().unwrap();
        let r = ng.handle(&mut e, fuzzing::source(*src), d, i as u64, 0);
        assert!(r.is_some(), "{name}");
    }
    assert_eq!(e.stats.panics, 0);
}
