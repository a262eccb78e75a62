//! A context's per-SSRC state read back for the state store, and a context resumed from
//! it after a restart (rules::state::SrtpStreamState; docs/operations.md).
//!
//! Resuming is the restoring of an evicted stream (its tombstone, [`Stream::restore`]):
//! every index up to the highest kept is taken, the rollover counter is where it was. Two
//! things more, because the state kept may lag behind what the process really did before
//! it died (a crash between two writes of the store):
//! - each resumed stream, and each new stream of a resumed context, takes a *floor*: the
//!   first new index it takes marks every index below it as taken (replay.rs
//!   `resume_floor`), so an index between the kept highest and the live stream's position
//!   can neither be protected again nor accepted again once the stream moved on;
//! - SRTCP indices are the relay's own counter, not the sender's: a resumed stream skips
//!   [`RTCP_RESUME_MARGIN`] of them (the receiver reads the index from the packet and
//!   estimates nothing, so a jump forward costs nothing).
//!
//! The state is input like any other: any values are taken without panicking, out of
//! range indices are clamped upwards (more taken, never less), duplicate SSRCs merged
//! conservatively, and at most what a context holds is kept (streams that sent first).

use rules::state::SrtpStreamState;

use super::{Context, Stream, Streams, Tomb, NONE32, NONE64, SLOTS, TOMBS};

/// SRTCP indices a resumed stream skips: more than a relay sends between two writes of
/// the state store (RTCP feedback of a video call is a few hundred packets a second at
/// most), and 1/32768 of the 2^31 index space, so a key outlives that many restarts.
pub const RTCP_RESUME_MARGIN: u32 = 1 << 16;

/// The largest SRTP packet index (48 bits) and SRTCP index (31 bits).
const RTP_INDEX_MAX: u64 = (1 << 48) - 1;
const RTCP_INDEX_MAX: u32 = 0x7fff_ffff;

/// A stream that is new to a resumed context: it may have started after the state was
/// kept, so it takes a floor and skips the SRTCP margin too.
pub(super) fn fresh_stream(window: u32) -> Stream {
    let mut s = Stream::new(window);
    s.rtp_replay.resume_floor();
    s.rtcp_replay.resume_floor();
    s.rtcp_index = RTCP_RESUME_MARGIN;
    s
}

fn to_state(t: &Tomb) -> SrtpStreamState {
    SrtpStreamState {
        ssrc: t.ssrc,
        sent: t.sent,
        rtp_highest: (t.rtp_hi != NONE64).then_some(t.rtp_hi),
        rtcp_next: t.rtcp_next,
        rtcp_highest: (t.rtcp_recv != NONE32).then_some(t.rtcp_recv),
    }
}

/// The tombstone of a kept stream, clamped into range, with the SRTCP margin skipped.
fn from_state(s: &SrtpStreamState) -> Tomb {
    Tomb {
        ssrc: s.ssrc,
        sent: s.sent,
        rtcp_next: s.rtcp_next.min(RTCP_INDEX_MAX).saturating_add(RTCP_RESUME_MARGIN).min(RTCP_INDEX_MAX),
        rtcp_recv: s.rtcp_highest.map_or(NONE32, |h| h.min(RTCP_INDEX_MAX)),
        rtp_hi: s.rtp_highest.map_or(NONE64, |h| h.min(RTP_INDEX_MAX)),
        resumed: true,
    }
}

/// Two records of one SSRC: whatever either says was taken stays taken.
fn merge(into: &mut Tomb, t: &Tomb) {
    into.sent |= t.sent;
    into.rtcp_next = into.rtcp_next.max(t.rtcp_next);
    into.rtcp_recv = max_known(into.rtcp_recv, t.rtcp_recv, NONE32);
    into.rtp_hi = max_known(into.rtp_hi, t.rtp_hi, NONE64);
}

/// The larger of two values where `none` (the largest value of the type) means unknown.
fn max_known<T: Ord + Copy>(a: T, b: T, none: T) -> T {
    match (a == none, b == none) {
        (true, _) => b,
        (_, true) => a,
        _ => a.max(b),
    }
}

impl Context {
    /// The state of every stream this context knows, live ones (most recently used first)
    /// and evicted ones, for the state store. Streams that never took an index are left
    /// out.
    pub fn stream_states(&self) -> Vec<SrtpStreamState> {
        let st = &self.streams;
        let mut live: Vec<usize> = (0..SLOTS).filter(|&i| st.used[i] != 0).collect();
        live.sort_by_key(|&i| std::cmp::Reverse(st.used[i]));
        live.iter()
            .map(|&i| st.slot[i].tomb(st.ssrc[i]))
            .chain(st.tombs[..st.n_tombs].iter().rev().copied())
            .filter(|t| t.sent || t.rtp_hi != NONE64 || t.rtcp_recv != NONE32 || t.rtcp_next != 0)
            .map(|t| to_state(&t))
            .collect()
    }

    /// Replace this context's streams with the ones kept in `states` (a restart), resumed
    /// conservatively (see the module's doc). New streams of this context take a floor too.
    pub fn resume(&mut self, states: &[SrtpStreamState]) {
        let mut kept: Vec<Tomb> = states.iter().map(from_state).collect();
        kept.sort_by_key(|t| t.ssrc);
        kept.dedup_by(|t, into| {
            let same = t.ssrc == into.ssrc;
            if same {
                merge(into, t);
            }
            same
        });
        // if more than fit (only a corrupt state has that many): streams that sent first,
        // their indices must never be forgotten
        kept.sort_by_key(|t| !t.sent);
        kept.truncate(SLOTS + TOMBS);
        let window = self.window;
        let mut streams = Streams::new(window);
        streams.resumed = true;
        for (k, t) in kept.iter().enumerate() {
            if k < SLOTS {
                streams.ssrc[k] = t.ssrc;
                streams.slot[k] = Stream::restore(window, t);
                streams.touch(k);
            } else {
                streams.tombs[streams.n_tombs] = *t;
                streams.n_tombs += 1;
            }
        }
        self.streams = streams;
    }
}

#[cfg(test)]
mod tests;
