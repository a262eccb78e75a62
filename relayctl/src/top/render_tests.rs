//! Frames from JSON fixtures: real shapes of /stats and /calls two seconds apart, and
//! hostile ones (missing fields, wrong types, numbers at the edge of u64 and f64,
//! 5000-character call-ids, terminal escapes, wide and combining characters).

use serde_json::{json, Value};

use super::*;
use crate::top::text::width;

fn fixture(name: &str) -> Value {
    let text = match name {
        "stats_1" => include_str!("fixtures/stats_1.json"),
        "stats_2" => include_str!("fixtures/stats_2.json"),
        "calls_1" => include_str!("fixtures/calls_1.json"),
        "calls_2" => include_str!("fixtures/calls_2.json"),
        "hostile_stats" => include_str!("fixtures/hostile_stats.json"),
        "hostile_calls" => include_str!("fixtures/hostile_calls.json"),
        _ => unreachable!("no fixture {name}"),
    };
    serde_json::from_str(text).unwrap()
}

/// Two samples 2 s apart.
fn pair() -> (Sample, Sample) {
    (
        Sample::from_json(1_000, &fixture("stats_1"), &fixture("calls_1")),
        Sample::from_json(3_000, &fixture("stats_2"), &fixture("calls_2")),
    )
}

/// Within the size, and nothing a terminal would act on.
fn assert_fits(frame: &str, w: usize, h: usize) {
    let lines: Vec<&str> = frame.split('\n').collect();
    assert!(lines.len() <= h.max(1), "{} lines > {h}:\n{frame}", lines.len());
    for l in &lines {
        assert!(width(l) <= w, "{} columns > {w}: {l:?}", width(l));
        assert!(!l.chars().any(|c| c.is_control()), "control character in {l:?}");
        assert!(!l.contains(['\u{202e}', '\u{202a}']), "bidi override in {l:?}");
    }
}

#[test]
fn rates_come_from_two_samples() {
    let (a, b) = pair();
    let f = render(Some(&a), &b, 120, 40);
    assert_fits(&f, 120, 40);
    let lines: Vec<&str> = f.lines().collect();
    // rx (17000-15000)/2 s, tx (16800-14900)/2 s; bytes of calls in both (+ the new one's)
    assert_eq!(lines[0], "calls 3  created 1/s  ended 1/s  ports 12/1000");
    assert_eq!(lines[1], "packets/s  in 1.0k  out 950   bytes/s in calls 206k");
    assert_eq!(lines[2], "drops/s  srtp 100");
    assert_eq!(lines[3], "ng/s  2.5  errors 0  answer 1  offer 1  query 0.5");
    // busiest: busy-call 1000 pkt/s, new-call 150 (all its packets are new), quiet-call 50
    let busy: Vec<&str> = lines.iter().skip(6).take(3).copied().collect();
    assert!(busy[0].ends_with("active    busy-call (a2,b2)"), "{busy:?}");
    assert!(busy[0].starts_with("   1.0k    172k    100     5  1h01m"), "{busy:?}");
    assert!(busy[1].contains("150") && busy[1].ends_with("deleting  new-call (a3)"), "{busy:?}");
    assert!(busy[2].ends_with("quiet-call (a1,b1)"), "{busy:?}");
    // worst quality: the poor leg first with its reasons, the leg without data last
    let worst_at = lines.iter().position(|l| l.contains("WORST QUALITY")).unwrap();
    assert_eq!(
        lines[worst_at + 1],
        "poor     2.9    7.5   35.0   80.0    4.0     5  busy-call / a2 m1: loss 7.5 % > 3 %; jitter 35.0 ms > 20 ms"
    );
    assert!(lines[worst_at + 2].starts_with("ok       4.4") && lines[worst_at + 2].ends_with("quiet-call / a1 m1"));
    assert!(lines[worst_at + 3].ends_with("quiet-call / b1 m1"));
    assert!(
        lines[worst_at + 4].starts_with("no-data") && lines[worst_at + 4].ends_with("busy-call / b2 m1: no RTP yet")
    );
    assert_eq!(lines.len(), worst_at + 5, "{f}");
}

#[test]
fn the_first_frame_has_totals_and_no_rates() {
    let (_, b) = pair();
    let f = render(None, &b, 100, 30);
    assert_fits(&f, 100, 30);
    assert!(f.contains("(rates from the next sample)") && f.contains("drops/s  -"), "{f}");
    // ranked by total packets
    let first_call = f.lines().nth(6).unwrap();
    assert!(first_call.starts_with("      -       -      -     5") && first_call.ends_with("busy-call (a2,b2)"), "{f}");
}

#[test]
fn a_restarted_relay_has_no_rates_rather_than_huge_ones() {
    let (a, b) = pair();
    let f = render(Some(&b), &a, 120, 40); // every counter went backwards
    assert_fits(&f, 120, 40);
    assert!(f.lines().nth(1).unwrap().starts_with("packets/s  in -  out -"), "{f}");
    // and time that did not move gives no rates either
    let f = render(Some(&b), &b, 120, 40);
    assert!(f.contains("(rates from the next sample)"));
}

#[test]
fn small_screens_cut_the_tables_and_say_how_much_is_left() {
    let (a, b) = pair();
    let f = render(Some(&a), &b, 80, 11);
    assert_fits(&f, 80, 11);
    assert!(f.contains("… 2 more call(s)") || f.contains("more leg(s)"), "{f}");
    assert!(f.contains("WORST QUALITY"), "{f}");
    for (w, h) in [(0, 0), (0, 5), (1, 1), (5, 3), (20, 8), (80, 24), (300, 200)] {
        assert_fits(&render(Some(&a), &b, w, h), w, h);
        assert_fits(&render(None, &b, w, h), w, h);
        assert_fits(&render_error("\x1b[2Jrefused 日本語", w, h), w, h);
    }
    assert_eq!(render(Some(&a), &b, 0, 0), "");
}

#[test]
fn a_relay_without_quality_fields_shows_that_it_has_none() {
    let a = Sample::from_json(0, &fixture("stats_1"), &fixture("calls_1"));
    let b = Sample::from_json(1000, &fixture("stats_1"), &fixture("calls_1"));
    let f = render(Some(&a), &b, 120, 30);
    assert!(f.contains("no leg reports quality"), "{f}");
    assert!(f.contains("drops/s  none") && f.contains("ng/s  0  errors 0"), "{f}");
    let empty = Sample::from_json(0, &json!({}), &json!([]));
    let f = render(Some(&empty), &empty, 80, 24);
    assert!(f.contains("no calls") && f.starts_with("calls 0"), "{f}");
}

#[test]
fn hostile_json_never_panics_and_is_cut_to_the_screen() {
    let h = Sample::from_json(5_000, &fixture("hostile_stats"), &fixture("hostile_calls"));
    let (a, b) = pair();
    let odd = [json!(null), json!([]), json!("x"), json!({"calls": -1, "control": [], "dataplane": {}}), json!(1e308)];
    let mut samples = vec![h.clone(), a, b];
    for (i, v) in odd.iter().enumerate() {
        samples.push(Sample::from_json(i as u64, v, v));
    }
    samples.push(Sample { at_ms: u64::MAX, ..h.clone() });
    samples.push(Sample { at_ms: 0, ..h.clone() });
    for (w, ht) in [(0, 0), (1, 1), (3, 2), (7, 40), (33, 12), (80, 24), (151, 60), (1000, 1000)] {
        for p in &samples {
            for c in &samples {
                assert_fits(&render(Some(p), c, w, ht), w, ht);
            }
            assert_fits(&render(None, p, w, ht), w, ht);
        }
    }
    // what survived: the hostile call first (u64::MAX packets), its escape made harmless
    let f = render(None, &h, 1000, 50);
    assert!(f.contains("DRAINING") && f.contains("xxxx"), "{f}");
    assert!(f.contains("?[31mred") && f.contains("?[2J"), "{f}");
    // the text kept per call is bounded however long the id was
    assert!(h.calls.iter().all(|c| c.id.chars().count() <= 256 && c.tags.iter().all(|t| t.chars().count() <= 256)));
}
