//! What a relay socket learned at run time, read back for the state store
//! ([`FlowTable::state`]) and put back after a restart ([`FlowTable::restore`]), as
//! rules::state::FlowState defines it (docs/operations.md).
//!
//! Restoring is applying the rule, then: the latch (and whether it was weak), the time of
//! the peer's last packet rebased on the new clock (so relatching and timeouts continue),
//! the SRTP stream state of both directions (srtp/resume.rs: conservative), the counters,
//! and on WebRTC sockets the DTLS keys and the ICE peer (webrtc/restore.rs).
//!
//! The state is treated as input: an address the media address policy denies is not
//! latched or sent to, out-of-range SRTP indices are clamped upwards, keys that build no
//! context are left out; nothing in it can make restore panic or take more memory than
//! a socket's contexts hold.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rules::dataplane::{ApplyError, FlowCounters, FlowRule};
use rules::state::FlowState;

use super::counters::SharedCounters;
use super::FlowTable;

impl FlowTable {
    /// What the open socket at `local` has learned, at `now_us` on this table's clock
    /// (the idle time is measured against it). None: no socket there.
    pub fn state(&self, local: SocketAddr, now_us: u64) -> Option<FlowState> {
        let f = self.get(self.lookup(local)?)?;
        let now_ms = now_us / 1000;
        let counters = f.counters.snapshot();
        let heard = f.last_from_peer_ms != 0 || counters.last_packet_ms != 0;
        let last = f.last_from_peer_ms.max(counters.last_packet_ms);
        let (ice_peer, dtls_keys) = f.webrtc_state(now_us);
        Some(FlowState {
            latched_peer: f.latched,
            weak_latch: f.weak_latch,
            idle_ms: heard.then(|| now_ms.saturating_sub(last)),
            srtp_in: f.srtp_in.as_ref().map(|(_, c)| c.stream_states()).unwrap_or_default(),
            srtp_out: f.srtp_out.as_ref().map(|(_, c)| c.stream_states()).unwrap_or_default(),
            dtls_keys,
            ice_peer,
            counters,
        })
    }

    /// After a restart: apply `rule` to the open socket and resume it from `state` at
    /// `now_us` on this table's clock. Errors are the rule's ([`FlowTable::apply`]); parts
    /// of the state that cannot be used are left out (logged), never an error.
    pub fn restore(&mut self, rule: &FlowRule, state: FlowState, now_us: u64) -> Result<(), ApplyError> {
        self.apply(rule)?;
        let window = self.replay_window;
        let allowed = |a: &Option<SocketAddr>| a.filter(|p| self.policy.check(*p).is_ok());
        let (latched, ice_peer) = (allowed(&state.latched_peer), allowed(&state.ice_peer));
        let Some(id) = self.lookup(rule.local) else { return Err(ApplyError::NotOpen(rule.local)) };
        let Some(f) = self.slots[id].as_mut() else { return Err(ApplyError::NotOpen(rule.local)) };
        let now_ms = now_us / 1000;
        restore_counters(&f.counters, &state.counters, state.idle_ms.map(|i| now_ms.saturating_sub(i).max(1)));
        if let Some(idle) = state.idle_ms {
            f.last_from_peer_ms = now_ms.saturating_sub(idle);
        }
        if latched.is_some() && !f.policy.asymmetric && f.webrtc.as_deref().is_none_or(|w| w.ice.is_none()) {
            f.latched = latched;
            f.weak_latch = state.weak_latch;
            f.grace = None;
            *f.counters.latched.lock().unwrap_or_else(|e| e.into_inner()) = latched;
        }
        if rule.dtls.is_some() || rule.ice.is_some() {
            let keys = state.dtls_keys.as_ref().filter(|_| rule.dtls.is_some());
            f.webrtc_resume(ice_peer, keys, window, now_us);
        }
        if let Some((_, c)) = f.srtp_in.as_mut() {
            c.resume(&state.srtp_in);
        }
        if let Some((_, c)) = f.srtp_out.as_mut() {
            c.resume(&state.srtp_out);
        }
        Ok(())
    }
}

/// The counters so far, so statistics and call records continue; the last packet's time
/// is `last_ms` on the new clock (rebased), the latch is the flow's to set.
fn restore_counters(c: &SharedCounters, k: &FlowCounters, last_ms: Option<u64>) {
    let set = |a: &AtomicU64, v: u64| a.store(v, Relaxed);
    set(&c.packets, k.packets);
    set(&c.bytes, k.bytes);
    set(&c.forwarded, k.forwarded);
    set(&c.drop_malformed, k.drop_malformed);
    set(&c.drop_strict_source, k.drop_strict_source);
    set(&c.drop_foreign_source, k.drop_foreign_source);
    set(&c.drop_no_destination, k.drop_no_destination);
    set(&c.drop_send_error, k.drop_send_error);
    set(&c.drop_srtp_auth, k.drop_srtp_auth);
    set(&c.drop_srtp_replay, k.drop_srtp_replay);
    set(&c.drop_srtp_index, k.drop_srtp_index);
    set(&c.drop_denied_source, k.drop_denied_source);
    set(&c.drop_denied_destination, k.drop_denied_destination);
    set(&c.drop_dtls_pending, k.drop_dtls_pending);
    set(&c.drop_ice_unchecked, k.drop_ice_unchecked);
    set(&c.drop_no_consent, k.drop_no_consent);
    set(&c.drop_stun, k.drop_stun);
    set(&c.drop_dtls, k.drop_dtls);
    set(&c.drop_transmit_full, k.drop_transmit_full);
    set(&c.stun_answered, k.stun_answered);
    set(&c.dtls_handshakes, k.dtls_handshakes);
    set(&c.dtls_failed, k.dtls_failed);
    set(&c.rtcp_packets, k.rtcp_packets);
    set(&c.rtcp_bytes, k.rtcp_bytes);
    set(&c.relatched, k.relatched);
    set(&c.ssrc, k.ssrc as u64);
    set(&c.lost, k.lost as u64);
    set(&c.jitter_us, k.jitter_us);
    set(&c.last_packet_ms, if k.last_packet_ms != 0 { last_ms.unwrap_or(0) } else { 0 });
    c.restore_quality(k);
}

#[cfg(test)]
mod tests;
