//! One frame of `relayctl top`: a pure function of the previous sample, the current one
//! and the screen's size. Rates are differences between the two samples over the time
//! between them; a counter that went backwards (relayd restarted) has no rate.

use std::collections::HashMap;

use super::sample::{CallSample, LegSample, Quality, Sample};
use super::text::{age, decimal, fit, human, left, right};

/// Seconds between two samples, when both exist and time moved.
fn interval(prev: Option<&Sample>, cur: &Sample) -> Option<f64> {
    let dt = cur.at_ms.checked_sub(prev?.at_ms)?;
    (dt > 0).then_some(dt as f64 / 1000.0)
}

/// Per second, from two readings of a counter.
fn rate(before: Option<u64>, now: Option<u64>, dt: Option<f64>) -> Option<f64> {
    Some(now?.checked_sub(before?)? as f64 / dt?)
}

/// The frame: at most `height` lines of at most `width` columns, joined by `\n`, with
/// no terminal control characters.
pub fn render(prev: Option<&Sample>, cur: &Sample, width: usize, height: usize) -> String {
    let dt = interval(prev, cur);
    let mut lines = summary(prev, cur, dt);
    lines.push(String::new());
    let busy = busiest(prev, cur, dt);
    let worst = worst_legs(cur);
    // the rest of the screen, shared by the two tables (a header each and a blank
    // between): half each, and what one does not need goes to the other
    let room = height.saturating_sub(lines.len() + 3);
    let (need_busy, need_worst) = (busy.len().max(1), worst.len().max(1));
    let n_busy = need_busy.min(room.div_ceil(2).max(room.saturating_sub(need_worst)));
    let n_worst = need_worst.min(room - n_busy);

    lines.push(format!(
        "{} {} {} {} {} {}  BUSIEST CALLS",
        right("PKT/S", 7),
        right("BYTES/S", 7),
        right("DROP/S", 6),
        right("DTMF", 5),
        right("AGE", 6),
        left("STATE", 8)
    ));
    if busy.is_empty() {
        lines.push("  no calls".into());
    }
    let shown = if busy.len() > n_busy { n_busy.saturating_sub(1) } else { busy.len() };
    for Busy { call: c, packets, bytes, dropped } in busy.iter().take(shown) {
        lines.push(format!(
            "{} {} {} {} {} {}  {}",
            right(&human(*packets), 7),
            right(&human(*bytes), 7),
            right(&human(*dropped), 6),
            right(&human(c.dtmf_events().map(|n| n as f64)), 5),
            right(&age(c.age_s), 6),
            left(if c.deleting { "deleting" } else { "active" }, 8),
            call_name(c),
        ));
    }
    if shown < busy.len() && n_busy > 0 {
        lines.push(format!("  … {} more call(s)", busy.len() - shown));
    }
    lines.push(String::new());
    lines.push(format!(
        "{} {} {} {} {} {} {}  WORST QUALITY (call / leg: why)",
        left("VERDICT", 7),
        right("MOS", 4),
        right("LOSS%", 6),
        right("JIT_MS", 6),
        right("RTT_MS", 6),
        right("RLOSS%", 6),
        right("DTMF", 5)
    ));
    if worst.is_empty() {
        lines.push("  no leg reports quality (no calls, or a relayd without per-leg quality)".into());
    }
    let shown = if worst.len() > n_worst { n_worst.saturating_sub(1) } else { worst.len() };
    for (c, l, q) in worst.iter().take(shown) {
        let id = if c.id.is_empty() { "(no call-id)" } else { &c.id };
        let mut what = format!("{id} / {}", if l.tag.is_empty() { "-" } else { &l.tag });
        if let Some(m) = l.media {
            what += &format!(" m{m}");
        }
        if !q.why.is_empty() {
            what += ": ";
            what += &q.why.join("; ");
        }
        lines.push(format!(
            "{} {} {} {} {} {} {}  {}",
            left(q.verdict.as_str(), 7),
            right(&decimal(q.mos), 4),
            right(&decimal(q.loss_percent), 6),
            right(&decimal(q.jitter_ms), 6),
            right(&decimal(q.rtt_ms), 6),
            right(&decimal(q.remote_loss_percent), 6),
            right(&human(l.dtmf_events.map(|n| n as f64)), 5),
            what,
        ));
    }
    if shown < worst.len() && n_worst > 0 {
        lines.push(format!("  … {} more leg(s)", worst.len() - shown));
    }
    lines.iter().take(height).map(|l| fit(l.trim_end(), width)).collect::<Vec<_>>().join("\n")
}

/// The relay-wide lines: calls, packets, bytes, drops by reason, ng commands.
fn summary(prev: Option<&Sample>, cur: &Sample, dt: Option<f64>) -> Vec<String> {
    let p = |f: fn(&Sample) -> Option<u64>| rate(prev.and_then(f), f(cur), dt);
    let sum = |m: &std::collections::BTreeMap<String, u64>| m.values().copied().reduce(u64::saturating_add);
    let ended = rate(prev.and_then(|s| sum(&s.ended)).or(prev.map(|_| 0)), sum(&cur.ended).or(Some(0)), dt);
    let mut first = format!(
        "calls {}  created {}/s  ended {}/s  ports {}/{}",
        count(cur.calls_active.or(Some(cur.calls.len() as u64))),
        human(p(|s| s.calls_created)),
        human(ended),
        count(cur.ports_in_use),
        count(cur.ports_total),
    );
    if cur.draining {
        first += "  DRAINING (new offers refused)";
    }
    if dt.is_none() {
        first += "  (rates from the next sample)";
    }
    let bytes = |s: &Sample| s.calls.iter().map(|c| c.bytes).reduce(u64::saturating_add);
    let second = format!(
        "packets/s  in {}  out {}   bytes/s in calls {}",
        human(p(|s| s.rx_packets)),
        human(p(|s| s.tx_packets)),
        human(rate(prev.and_then(bytes).or(prev.map(|_| 0)), bytes(cur).or(Some(0)), dt)),
    );
    let mut drops: Vec<(&str, f64)> = cur
        .drops
        .iter()
        .filter_map(|(k, n)| Some((k.as_str(), rate(Some(*prev?.drops.get(k).unwrap_or(&0)), Some(*n), dt)?)))
        .filter(|(_, r)| *r > 0.0)
        .collect();
    drops.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let third = if dt.is_none() {
        "drops/s  -".to_string()
    } else if drops.is_empty() {
        "drops/s  none".to_string()
    } else {
        let parts: Vec<String> = drops.iter().map(|(k, r)| format!("{k} {}", human(Some(*r)))).collect();
        format!("drops/s  {}", parts.join("  "))
    };
    let mut cmds: Vec<(&str, f64)> = cur
        .commands
        .iter()
        .filter_map(|(k, n)| Some((k.as_str(), rate(Some(*prev?.commands.get(k).unwrap_or(&0)), Some(*n), dt)?)))
        .collect();
    let total: f64 = cmds.iter().map(|(_, r)| r).sum();
    cmds.retain(|(_, r)| *r > 0.0);
    cmds.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut fourth = format!("ng/s  {}  errors {}", human(dt.map(|_| total)), human(p(|s| s.ng_errors)));
    for (k, r) in cmds {
        fourth += &format!("  {k} {}", human(Some(r)));
    }
    vec![first, second, third, fourth]
}

/// A call with its rates per second.
struct Busy<'a> {
    call: &'a CallSample,
    packets: Option<f64>,
    bytes: Option<f64>,
    dropped: Option<f64>,
}

/// Calls by packet rate, highest first. A call not in the previous sample began within
/// the interval: all its packets count. Without a previous sample the calls are ranked
/// by their totals and have no rates.
fn busiest<'a>(prev: Option<&'a Sample>, cur: &'a Sample, dt: Option<f64>) -> Vec<Busy<'a>> {
    let before: HashMap<&str, &CallSample> =
        prev.map(|p| p.calls.iter().map(|c| (c.id.as_str(), c)).collect()).unwrap_or_default();
    let mut v: Vec<_> = cur
        .calls
        .iter()
        .map(|c| {
            let b = before.get(c.id.as_str());
            let r = |f: fn(&CallSample) -> u64| rate(Some(b.map(|b| f(b)).unwrap_or(0)), Some(f(c)), dt);
            Busy { call: c, packets: r(|c| c.packets), bytes: r(|c| c.bytes), dropped: r(|c| c.dropped) }
        })
        .collect();
    let key = |x: &Busy| x.packets.unwrap_or(x.call.packets as f64);
    v.sort_by(|a, b| key(b).total_cmp(&key(a)).then_with(|| a.call.id.cmp(&b.call.id)));
    v
}

/// Legs that report quality, worst first: poor before ok before no data (a leg without
/// media in a call that has some is how one-way audio looks), then the lowest MOS, then
/// the highest loss and jitter.
fn worst_legs(cur: &Sample) -> Vec<(&CallSample, &LegSample, &Quality)> {
    let mut v: Vec<_> =
        cur.calls.iter().flat_map(|c| c.legs.iter().filter_map(move |l| Some((c, l, l.quality.as_ref()?)))).collect();
    let worse = |x: Option<f64>| x.map(|x| -x).unwrap_or(0.0);
    v.sort_by(|a, b| {
        let (qa, qb) = (a.2, b.2);
        (qa.verdict.cmp(&qb.verdict))
            .then(qa.mos.unwrap_or(f64::INFINITY).total_cmp(&qb.mos.unwrap_or(f64::INFINITY)))
            .then(worse(qa.loss_percent).total_cmp(&worse(qb.loss_percent)))
            .then(worse(qa.jitter_ms).total_cmp(&worse(qb.jitter_ms)))
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    v
}

/// An exact count, `-` when unknown.
fn count(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

/// A call-id with its tags, as the last column shows it.
fn call_name(c: &CallSample) -> String {
    let id = if c.id.is_empty() { "(no call-id)" } else { &c.id };
    if c.tags.is_empty() {
        id.to_string()
    } else {
        format!("{id} ({})", c.tags.join(","))
    }
}

/// The frame shown while relayd cannot be read: the reason, and that the view retries.
pub fn render_error(why: &str, width: usize, height: usize) -> String {
    let lines = [format!("relayctl top: {why}"), "retrying; q quits".to_string()];
    lines.iter().take(height).map(|l| fit(l, width)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
