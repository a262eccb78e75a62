//! `relayctl top`: a live view of a relay for the operator watching the box: its rates
//! (packets, bytes, drops by reason, calls, ng commands per second), its busiest calls
//! and its worst-quality legs, refreshed every `--interval`.
//!
//! Each refresh reads `GET /stats` and `GET /calls` into a [`sample::Sample`]; the frame
//! is [`render::render`] of the previous and the current sample and the window's size, a
//! pure function tested on JSON fixtures. The terminal handling is in [`term`].

mod render;
mod sample;
mod term;
pub(crate) mod text;

use std::time::{Duration, Instant};

use serde_json::Value;

use render::{render, render_error};
use sample::Sample;
use term::{Screen, Wake};

/// `relayctl top`'s options.
#[derive(clap::Args)]
pub struct TopArgs {
    /// Seconds between refreshes (0.2 to 3600)
    #[arg(long, short = 'n', default_value = "1", value_parser = parse_interval)]
    interval: Duration,
    /// Print one frame (two reads, --interval apart) as plain text, without terminal control codes, and exit
    #[arg(long)]
    once: bool,
    /// Columns of the --once frame (default: the terminal's, or 120 when not on a terminal)
    #[arg(long)]
    width: Option<usize>,
    /// Lines of the --once frame (default: the terminal's, or 60 when not on a terminal)
    #[arg(long)]
    height: Option<usize>,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if (0.2..=3600.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{s} s is outside 0.2 to 3600 s"))
    }
}

/// One `GET` of the API as JSON, with relayd's reason when it refuses.
fn get(http: &str, token: Option<&str>, path: &str) -> Result<Value, String> {
    let (code, body) = super::request(http, token, "GET", path)?;
    let v: Result<Value, _> = serde_json::from_str(&body);
    match (code, v) {
        (200, Ok(v)) => Ok(v),
        (200, Err(e)) => Err(format!("relayd's {path} is not JSON: {e}")),
        (_, Ok(v)) if v["error"].is_string() => Err(format!("{path}: {}", v["error"].as_str().unwrap_or(""))),
        (code, _) => Err(format!("{path}: HTTP {code}")),
    }
}

/// Read the relay now.
fn sample(http: &str, token: Option<&str>, clock: Instant) -> Result<Sample, String> {
    let stats = get(http, token, "/stats")?;
    let calls = get(http, token, "/calls")?;
    Ok(Sample::from_json(clock.elapsed().as_millis() as u64, &stats, &calls))
}

pub fn run(http: &str, token: Option<&str>, a: &TopArgs) -> Result<(), String> {
    let clock = Instant::now();
    if a.once {
        let tty = unsafe { libc::isatty(1) == 1 };
        let (w, h) = if tty { Screen::size() } else { (120, 60) };
        let first = sample(http, token, clock)?;
        std::thread::sleep(a.interval);
        let second = sample(http, token, clock)?;
        println!("{}", render(Some(&first), &second, a.width.unwrap_or(w), a.height.unwrap_or(h)));
        return Ok(());
    }
    let screen = Screen::enter()?;
    let (mut prev, mut cur): (Option<Sample>, Result<Sample, String>) = (None, Err("reading relayd".into()));
    loop {
        match sample(http, token, clock) {
            Ok(s) => {
                if let Ok(old) = std::mem::replace(&mut cur, Ok(s)) {
                    prev = Some(old);
                }
            }
            Err(e) => {
                // relayd restarting: say so and keep trying; rates start afresh after
                prev = None;
                cur = Err(e);
            }
        }
        let next = Instant::now() + a.interval;
        loop {
            let (w, h) = Screen::size();
            let frame = match &cur {
                Ok(s) => render(prev.as_ref(), s, w, h),
                Err(e) => render_error(e, w, h),
            };
            screen.draw(&frame);
            match screen.wait(next.saturating_duration_since(Instant::now())) {
                Wake::Quit => return Ok(()),
                Wake::Resized => continue,
                Wake::Timeout => break,
            }
        }
    }
}
