//! Calls as the state store keeps them, so a restarted relay resumes its calls (and
//! drain, which takes a relay out of service without dropping its calls).
//!
//! A [`CallRecord`] is one call as signalling left it (monologues, legs, ports, peers,
//! SDES keys, ICE credentials, DTLS role and fingerprints, the DTLS certificate its SDP
//! advertised), its timers, and per relay socket what the data plane learned
//! ([`FlowState`]: latch, SRTP indices, DTLS keys, counters). The daemon's store
//! (relayd's `store`) exports records off the packet path and writes them to disk;
//! [`Engine::restore_call`] brings one back after a restart: the same ports reserved in
//! the pools, the sockets opened, the rules derived again from the call and handed to
//! the data plane with their state.
//!
//! A record is read from disk, so it is input like any other: it is versioned (an
//! unknown version is refused with a reason, never guessed at), bounded in size, checked
//! against this relay's configuration before anything is bound, and a record that does
//! not fit is refused without a panic and without leaving a port held.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use rules::state::FlowState;
use rules::webrtc::{DtlsIdentity, Fingerprint, HashFunction};

use crate::bencode::Value;
use crate::call::Call;
use crate::engine::Engine;
use crate::error::NgError;

/// The record format this build writes and reads. A change to the call model that an old
/// record would not deserialise into bumps it (or gives the new field `#[serde(default)]`).
pub const RECORD_VERSION: u32 = 1;
/// Largest record accepted (bytes): a call of the largest shape the limits allow is far
/// below it; anything larger is corrupt.
pub const MAX_RECORD_BYTES: usize = 4 << 20;
/// SRTP streams per direction a restored socket takes from a record.
pub const MAX_STREAMS: usize = 64;

/// One call and what its relay sockets learned, as the state store keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub struct CallRecord {
    pub version: u32,
    pub call: Call,
    /// The DTLS certificates the call's legs advertised (each once), with their keys: the
    /// fingerprint a browser pinned must still match after a restart.
    pub identities: Vec<IdentityRecord>,
    /// (monologue, leg, index into `identities`) of every leg that advertised one.
    pub leg_identities: Vec<(usize, usize, usize)>,
    /// Per relay socket, what the data plane had learned (sockets it had nothing for are
    /// absent: their rules are applied afresh).
    pub flows: Vec<(SocketAddr, FlowState)>,
    /// The data plane's clock and the wall clock (ms since the epoch) when it was taken:
    /// the call's timers are on the old process's clock, the downtime on the wall clock.
    pub taken_ms: u64,
    pub taken_unix_ms: u64,
}

impl std::fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the call's Debug hides keys; the identities are not printed at all
        f.debug_struct("CallRecord")
            .field("version", &self.version)
            .field("call", &self.call.id)
            .field("identities", &self.identities.len())
            .field("flows", &self.flows.len())
            .finish()
    }
}

/// A DTLS certificate and its private key (DER), as stored. The key is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub not_after_unix: u64,
}

impl Drop for IdentityRecord {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_der);
    }
}

impl IdentityRecord {
    pub fn of(id: &DtlsIdentity) -> IdentityRecord {
        IdentityRecord { cert_der: id.cert_der.clone(), key_der: id.key_der.clone(), not_after_unix: id.not_after_unix }
    }

    /// The identity, its fingerprint computed from the certificate (never taken from the
    /// record: what the SDP advertised is what the certificate hashes to).
    pub fn identity(&self) -> Result<DtlsIdentity, String> {
        if self.cert_der.is_empty() || self.key_der.is_empty() || self.cert_der.len() > 64 << 10 {
            return Err("a DTLS identity without certificate or key".into());
        }
        use sha2::Digest;
        let value = sha2::Sha256::digest(&self.cert_der).to_vec();
        Ok(DtlsIdentity {
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone(),
            fingerprint: Fingerprint { hash: HashFunction::Sha256, value },
            not_after_unix: self.not_after_unix,
        })
    }

    /// Serialised, for the store (it keeps the process's identity under its own key).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Result<IdentityRecord, String> {
        if b.len() > MAX_RECORD_BYTES {
            return Err(format!("identity record of {} bytes", b.len()));
        }
        serde_json::from_slice(b).map_err(|e| format!("identity record: {e}"))
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl CallRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        // serialising plain data into memory fails only on a map with non-string keys,
        // which a record has none of
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record read back: its version first (an unknown one is refused, named), then the
    /// rest. Never panics, whatever the bytes.
    pub fn from_bytes(b: &[u8]) -> Result<CallRecord, String> {
        if b.len() > MAX_RECORD_BYTES {
            return Err(format!("record of {} bytes, more than {MAX_RECORD_BYTES}", b.len()));
        }
        let v: VersionOnly = serde_json::from_slice(b).map_err(|e| format!("unreadable record: {e}"))?;
        if v.version != RECORD_VERSION {
            return Err(format!(
                "record version {} is not the version this relayd reads ({RECORD_VERSION})",
                v.version
            ));
        }
        serde_json::from_slice(b).map_err(|e| format!("unreadable record (version {}): {e}", v.version))
    }

    /// The same record with what changes with every packet left out (counters, idle
    /// time) and the SRTP indices coarsened: the store rewrites a record when this
    /// changes (signalling, a latch, a DTLS handshake, 256 packets of a stream — about
    /// 5 s of audio), not at every packet. The last pass of a stopping relay writes every
    /// record exactly (relayd/src/store.rs); after a crash a restored index can be behind
    /// by up to 255 packets plus one interval's (docs/security.md: what that allows).
    pub fn fingerprint_bytes(&self) -> Vec<u8> {
        let mut r = self.clone();
        r.taken_ms = 0;
        r.taken_unix_ms = 0;
        for (_, f) in &mut r.flows {
            f.idle_ms = f.idle_ms.map(|_| 0);
            f.counters = Default::default();
            for s in f.srtp_in.iter_mut().chain(f.srtp_out.iter_mut()) {
                s.rtp_highest = s.rtp_highest.map(|i| i >> 8);
                s.rtcp_next >>= 8;
                s.rtcp_highest = s.rtcp_highest.map(|i| i >> 8);
            }
        }
        r.to_bytes()
    }
}

/// What the daemon's state store did last, for `GET /status` and `relayctl status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreInfo {
    pub dir: String,
    /// Calls in the store after its last write.
    pub records: usize,
    /// Wall clock (seconds since the epoch) of the last write that succeeded.
    pub last_write_unix: Option<u64>,
    pub last_error: Option<String>,
    /// At start: calls restored, and records refused (each logged with its reason).
    pub restored: usize,
    pub restore_failed: usize,
}

/// The ng reply to a refused request. A relay draining (`relayctl drain`) answers an
/// offer for a new call `"result": "load limit"` to a client that said it supports that
/// (`supports: ["load limit"]`, as Kamailio's rtpengine module does: it then tries the
/// next relay of its set), else an ordinary error naming the drain.
pub fn error_reply(e: &NgError, req: &Value) -> Value {
    let load_limit = req
        .get("supports")
        .and_then(|s| s.as_list())
        .is_some_and(|l| l.iter().any(|v| v.as_str() == Some("load limit")));
    if matches!(e, NgError::Draining) && load_limit {
        let mut v = Value::dict();
        v.insert("result", "load limit".into());
        v.insert("message", e.to_string().as_str().into());
        return v;
    }
    e.encode()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Engine {
    /// The call as the state store keeps it (None: no such call). Reads each relay
    /// socket's state from the data plane (which may wait for its worker).
    pub fn export_call(&self, id: &str) -> Option<CallRecord> {
        let call = self.calls.get(id)?.clone();
        let mut identities: Vec<IdentityRecord> = Vec::new();
        let mut leg_identities = Vec::new();
        for (mi, m) in call.monologues.iter().enumerate() {
            for (li, l) in m.legs.iter().enumerate() {
                if let Some(idt) = &l.dtls.identity {
                    let i = match identities.iter().position(|r| r.cert_der == idt.cert_der) {
                        Some(i) => i,
                        None => {
                            identities.push(IdentityRecord::of(idt));
                            identities.len() - 1
                        }
                    };
                    leg_identities.push((mi, li, i));
                }
            }
        }
        let dp = self.dataplane();
        let flows = call.sockets().into_iter().filter_map(|s| dp.flow_state(s).map(|f| (s, f))).collect();
        Some(CallRecord {
            version: RECORD_VERSION,
            call,
            identities,
            leg_identities,
            flows,
            taken_ms: dp.now_ms(),
            taken_unix_ms: unix_ms(),
        })
    }

    /// The ids of the calls the engine holds, sorted.
    pub fn call_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.calls.keys().cloned().collect();
        v.sort();
        v
    }

    /// Bring a call back after a restart (`now_ms`: the data plane's clock; the downtime
    /// is measured on the wall clock). See [`Engine::restore_call_at`].
    pub fn restore_call(&mut self, r: CallRecord, now_ms: u64) -> Result<(), String> {
        self.restore_call_at(r, now_ms, unix_ms())
    }

    /// Bring a call back: checked against this relay's limits and interfaces, its ports
    /// reserved exactly as they were, its sockets opened, its rules derived again and
    /// handed to the data plane with what each socket had learned. Its timers continue
    /// (the downtime counts; a call that ended meanwhile is refused). On an error nothing
    /// of the call stays: no port held, no socket open.
    pub fn restore_call_at(&mut self, r: CallRecord, now_ms: u64, unix_ms: u64) -> Result<(), String> {
        if r.version != RECORD_VERSION {
            return Err(format!("record version {} is not {RECORD_VERSION}", r.version));
        }
        let CallRecord { mut call, identities, leg_identities, mut flows, taken_ms, taken_unix_ms, .. } = r;
        self.check_record(&call, &identities, &leg_identities, &flows)?;
        let id = call.id.clone();
        // the old process's clock to this one's: an age on the old clock plus the downtime
        let down = unix_ms.saturating_sub(taken_unix_ms);
        let age = |t: u64| taken_ms.saturating_sub(t).saturating_add(down);
        let past = |t: u64| now_ms.saturating_sub(age(t));
        let future = |t: u64| now_ms.saturating_add(t.saturating_sub(taken_ms).saturating_sub(down));
        if call.delete_at_ms.is_some_and(|t| t.saturating_sub(taken_ms) <= down) {
            return Err("it was deleted (delete-delay ran out) while relayd was down".into());
        }
        if let Some(why) = self.ended_while_down(&call, &flows, age(call.created_ms), age(call.last_signal_ms), down) {
            return Err(why);
        }
        call.created_ms = past(call.created_ms);
        call.last_signal_ms = past(call.last_signal_ms);
        call.delete_at_ms = call.delete_at_ms.map(future);
        call.branches.map_times(future);
        for (_, f) in &mut flows {
            f.idle_ms = f.idle_ms.map(|i| i.saturating_add(down));
            f.srtp_in.truncate(MAX_STREAMS);
            f.srtp_out.truncate(MAX_STREAMS);
        }
        // the certificates the legs advertised, shared by the legs that had the same one
        let ids: Vec<Arc<DtlsIdentity>> =
            identities.iter().map(|i| i.identity().map(Arc::new)).collect::<Result<_, _>>()?;
        for &(m, l, i) in &leg_identities {
            call.monologues[m].legs[l].dtls.identity = Some(ids[i].clone());
        }
        // the same ports, or nothing
        let pairs: Vec<(std::net::IpAddr, u16)> =
            call.monologues.iter().flat_map(|m| m.legs.iter()).flat_map(|l| l.pairs()).collect();
        let mut held = Vec::new();
        let dp = self.dataplane().clone();
        for &(ip, port) in &pairs {
            let res = match self.pools.iter_mut().find(|p| p.addr == ip) {
                Some(pool) => pool.reserve(dp.as_ref(), port, call.affinity),
                None => Err(format!("no interface of this relay has the address {ip}")),
            };
            if let Err(why) = res {
                self.release_pairs(&held);
                return Err(why);
            }
            held.push((ip, port));
        }
        self.next_affinity = self.next_affinity.max(call.affinity);
        let mut rules = Vec::new();
        for x in 0..call.monologues.len() {
            rules.extend(call.rules_for(x));
        }
        self.calls.insert(id.clone(), call);
        for rule in rules {
            let local = rule.local;
            let res = match flows.iter().position(|(s, _)| *s == local) {
                Some(i) => dp.restore(rule, flows.swap_remove(i).1),
                None => dp.apply(rule),
            };
            if let Err(why) = res {
                self.calls.remove(&id);
                self.release_pairs(&held);
                return Err(format!("the data plane refused the rule of {local}: {why}"));
            }
        }
        Ok(())
    }

    fn release_pairs(&mut self, pairs: &[(std::net::IpAddr, u16)]) {
        let dp = self.dataplane().clone();
        for &(ip, port) in pairs {
            if let Some(pool) = self.pools.iter_mut().find(|p| p.addr == ip) {
                pool.release(dp.as_ref(), port);
            }
        }
    }

    /// Does the record fit this relay (its limits, and a call it does not have yet)?
    fn check_record(
        &self,
        call: &Call,
        identities: &[IdentityRecord],
        leg_identities: &[(usize, usize, usize)],
        flows: &[(SocketAddr, FlowState)],
    ) -> Result<(), String> {
        let cfg = &self.cfg;
        if call.id.is_empty() || call.id.len() > cfg.max_id_length {
            return Err(format!("call-id of {} bytes (max-id-length {})", call.id.len(), cfg.max_id_length));
        }
        if self.calls.contains_key(&call.id) {
            return Err("the relay already has this call".into());
        }
        if self.calls.len() >= cfg.max_calls {
            return Err(format!("max-calls ({}) reached", cfg.max_calls));
        }
        if call.affinity > 1 << 48 {
            return Err(format!("worker affinity {} out of range", call.affinity));
        }
        let n = call.monologues.len();
        if n > cfg.max_monologues_per_call {
            return Err(format!("{n} monologues, more than max-monologues-per-call ({})", cfg.max_monologues_per_call));
        }
        for (i, m) in call.monologues.iter().enumerate() {
            if m.counterpart.is_some_and(|c| c >= n || c == i) {
                return Err(format!("monologue {i} names a counterpart the call does not have"));
            }
            if m.legs.len() > cfg.max_media_per_sdp || m.offered_fmts.len() > cfg.max_media_per_sdp {
                return Err(format!("monologue {i} has more media than max-media-per-sdp ({})", cfg.max_media_per_sdp));
            }
            if m.legs.iter().any(|l| l.ice.extra.len() > 16) {
                return Err(format!("monologue {i}: a leg with more than 16 sockets"));
            }
        }
        for &(m, l, i) in leg_identities {
            if call.monologues.get(m).and_then(|mo| mo.legs.get(l)).is_none() || i >= identities.len() {
                return Err("a DTLS identity for a leg the call does not have".into());
            }
        }
        let sockets = call.sockets();
        if let Some((s, _)) = flows.iter().find(|(s, _)| !sockets.contains(s)) {
            return Err(format!("state for {s}, not a socket of the call"));
        }
        Ok(())
    }

    /// Why the call would have ended while the relay was down (None: it goes on). `age_*`
    /// are ages on the new clock's terms (the downtime included).
    fn ended_while_down(
        &self,
        call: &Call,
        flows: &[(SocketAddr, FlowState)],
        created_age: u64,
        signal_age: u64,
        down: u64,
    ) -> Option<String> {
        let cfg = &self.cfg;
        let secs = |s: u64| s.saturating_mul(1000);
        if cfg.final_timeout > 0 && created_age >= secs(cfg.final_timeout) {
            return Some("its final-timeout passed while relayd was down".into());
        }
        let media_age = flows.iter().filter_map(|(_, f)| f.idle_ms).map(|i| i.saturating_add(down)).min();
        let last = media_age.map_or(signal_age, |m| m.min(signal_age));
        let on_hold = call
            .monologues
            .iter()
            .flat_map(|m| m.legs.iter())
            .filter(|l| l.relayed() && !l.rejected)
            .all(|l| l.peer.is_none());
        let (limit, what) = if on_hold { (cfg.silent_timeout, "silent-timeout") } else { (cfg.timeout, "timeout") };
        (limit > 0 && last >= secs(limit)).then(|| format!("its {what} passed while relayd was down"))
    }

    /// Refuse offers that would create a call (`relayctl drain`) or take them again.
    /// Everything else goes on: answers, re-offers, deletes, queries of running calls.
    pub fn set_draining(&mut self, on: bool) {
        if on != self.draining {
            log::info!("{}", if on { "draining: new calls are refused" } else { "drain off: new calls accepted" });
        }
        self.draining = on;
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    /// `GET /status`: calls, drain, and the state store.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "calls": self.calls.len(),
            "draining": self.draining,
            "state_store": self.store,
        })
    }
}
