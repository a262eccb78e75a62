//! The control plane's state machine: calls, port allocation and timers, and the ng
//! commands over them. Requests arrive decoded ([`Request`]), offer/answer itself is
//! [`offer_answer`], the views of the calls are [`views`](crate::views). Pure logic
//! over explicit time; the data plane is behind a trait.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use rules::dataplane::DataPlane;

use crate::bencode::Value;
use crate::call::Call;
use crate::error::NgError;
use crate::interface::{Interface, PortPool};
use crate::ng::reply::{CallList, CallQuery, Reply, Statistics, Totals};
use crate::ng::request::{Command, Delete, Limits, OfferAnswer, Request};
use crate::offer_answer::{self, Exchange, Outcome, Ports, Relay};
use crate::views::Snapshot;
pub use crate::views::{CallSummary, FlowView};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub interfaces: Vec<Interface>,
    pub port_min: u16,
    pub port_max: u16,
    /// Seconds without media before a call is torn down (0 = never).
    pub timeout: u64,
    /// Same, for calls whose media is all on hold.
    pub silent_timeout: u64,
    /// Maximum call duration (0 = unlimited).
    pub final_timeout: u64,
    /// Seconds a deleted call lingers (late packets still flow).
    pub delete_delay: u64,
    /// Which signalled media addresses are acceptable (the data plane applies the same
    /// policy to packets).
    pub media_policy: rules::addrpolicy::AddressPolicy,
    /// Media sections (m= lines) one SDP may have.
    pub max_media_per_sdp: usize,
    /// Monologues (tags) one call may have.
    pub max_monologues_per_call: usize,
    /// Calls the relay keeps at once.
    pub max_calls: usize,
    /// Longest call-id, from-tag, to-tag, via-branch, label and ng cookie (bytes).
    pub max_id_length: usize,
    /// Error log lines a second (then one "suppressed" line).
    pub error_logs_per_second: u32,
    /// Call quality limits a leg is judged against (quality.rs).
    pub quality: crate::quality::Thresholds,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            interfaces: vec![Interface::parse("127.0.0.1").unwrap()],
            port_min: 30000,
            port_max: 40000,
            timeout: 60,
            silent_timeout: 3600,
            final_timeout: 14400,
            delete_delay: 30,
            media_policy: rules::addrpolicy::AddressPolicy::permissive(),
            max_media_per_sdp: 32,
            max_monologues_per_call: 16,
            max_calls: 20000,
            max_id_length: 256,
            error_logs_per_second: 20,
            quality: Default::default(),
        }
    }
}

/// Why a call ended (counted in /metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    Deleted,
    Timeout,
    SilentTimeout,
    FinalTimeout,
    Terminated,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Deleted => "deleted",
            EndReason::Timeout => "timeout",
            EndReason::SilentTimeout => "silent-timeout",
            EndReason::FinalTimeout => "final-timeout",
            EndReason::Terminated => "terminated",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStats {
    pub commands: HashMap<String, u64>,
    pub errors: u64,
    /// Requests whose handling panicked (contained: they got an error reply).
    pub panics: u64,
    /// ng datagrams ignored (no cookie, cookie too long, source not allowed or one of
    /// the relay's own media sockets).
    pub ng_ignored: u64,
    pub calls_created: u64,
    pub ended: HashMap<String, u64>,
    /// Quality of the calls that ended (cdr.rs).
    pub quality: crate::quality::EndedQuality,
}

pub struct Engine {
    pub cfg: EngineConfig,
    dp: Arc<dyn DataPlane>,
    pub(crate) pools: Vec<PortPool>,
    pub calls: HashMap<String, Call>,
    pub stats: EngineStats,
    pub(crate) next_affinity: u64,
    error_log: crate::ng::LogLimiter,
    /// The certificate new DTLS legs advertise (calls keep the one they advertised).
    dtls_identity: Option<Arc<rules::webrtc::DtlsIdentity>>,
    /// Recordings and live captures on calls (crate::taps).
    pub(crate) taps: crate::taps::TapState,
    /// Offers that would create a call are refused (crate::persist: `relayctl drain`).
    pub(crate) draining: bool,
    /// What the daemon's state store last did, for `GET /status` (None: no store).
    pub store: Option<crate::persist::StoreInfo>,
}

/// Most call-ids one `list` reply carries (the HTTP API's /calls lists them all).
pub const LIST_MAX: usize = 100;
/// Largest `list` reply (bytes, roughly): a `list` from a spoofed source must amplify
/// little (a ~40-byte request gets at most ~4 KB; --ng-allow stops spoofed sources).
pub const LIST_MAX_BYTES: usize = 4_000;

/// The engine's port pools and data plane, as offer/answer asks for ports.
struct PoolPorts<'a> {
    pools: &'a mut [PortPool],
    dp: &'a dyn DataPlane,
    /// Some: releases wait here until the request commits (a request that fails leaves
    /// the committed call's sockets bound); None: at once.
    deferred: Option<Vec<(IpAddr, u16)>>,
}

impl PoolPorts<'_> {
    fn release_now(&mut self, local: IpAddr, port: u16) {
        if let Some(pool) = self.pools.iter_mut().find(|p| p.addr == local) {
            pool.release(self.dp, port);
        }
    }
}

impl Ports for PoolPorts<'_> {
    fn allocate(&mut self, local: IpAddr, affinity: u64) -> Result<u16, NgError> {
        let pool = self.pools.iter_mut().find(|p| p.addr == local).ok_or(NgError::NoPortPool)?;
        Ok(pool.allocate(self.dp, affinity)?)
    }

    fn release(&mut self, local: IpAddr, port: u16) {
        match &mut self.deferred {
            Some(later) => later.push((local, port)),
            None => self.release_now(local, port),
        }
    }

    fn latched_peer(&self, rtp: SocketAddr) -> Option<SocketAddr> {
        self.dp.counters(rtp).and_then(|c| c.latched_peer)
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig, dp: Arc<dyn DataPlane>) -> Engine {
        let mut pools: Vec<PortPool> = Vec::new();
        for i in &cfg.interfaces {
            if !pools.iter().any(|p| p.addr == i.local) {
                pools.push(PortPool::new(i.local, cfg.port_min, cfg.port_max));
            }
        }
        let error_log = crate::ng::LogLimiter::new(cfg.error_logs_per_second);
        Engine {
            cfg,
            dp,
            pools,
            calls: HashMap::new(),
            stats: EngineStats::default(),
            next_affinity: 0,
            error_log,
            dtls_identity: None,
            taps: Default::default(),
            draining: false,
            store: None,
        }
    }

    /// The process's DTLS certificate (relayd renews it before it expires): new DTLS legs
    /// advertise this one; a call keeps the one its SDP advertised. Without one the relay
    /// offers no DTLS and refuses DTLS-only media.
    pub fn set_dtls_identity(&mut self, identity: Arc<rules::webrtc::DtlsIdentity>) {
        self.dtls_identity = Some(identity);
    }

    /// The certificate new offers advertise (None: the relay offers no DTLS).
    pub fn dtls_identity(&self) -> Option<&Arc<rules::webrtc::DtlsIdentity>> {
        self.dtls_identity.as_ref()
    }

    pub fn dataplane(&self) -> &Arc<dyn DataPlane> {
        &self.dp
    }

    pub fn ports_in_use(&self) -> usize {
        self.pools.iter().map(|p| p.in_use * 2).sum()
    }

    pub fn ports_total(&self) -> usize {
        self.pools.iter().map(|p| p.capacity() * 2).sum()
    }

    /// What a request is checked against when it is decoded.
    pub fn limits(&self) -> Limits {
        Limits {
            max_id_length: self.cfg.max_id_length,
            max_media_per_sdp: self.cfg.max_media_per_sdp,
            interfaces: self.cfg.interfaces.len(),
        }
    }

    /// Bounds on what an offer or answer may add: a call (`max-calls`), a monologue
    /// (`max-monologues-per-call`; the check after the request counts the recipient's too).
    pub fn admit(&self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        match self.calls.get(call_id) {
            None if self.draining => Err(NgError::Draining),
            None if self.calls.len() >= self.cfg.max_calls => Err(NgError::TooManyCalls { max: self.cfg.max_calls }),
            None => Ok(()),
            Some(c) => {
                let n = c.monologues.len() + c.find(from_tag).is_none() as usize;
                if n > self.cfg.max_monologues_per_call {
                    return Err(NgError::TooManyMonologues { n, max: self.cfg.max_monologues_per_call });
                }
                Ok(())
            }
        }
    }

    /// Decode a request dictionary against this engine's limits and calls.
    pub fn decode(&self, req: &Value) -> Result<Request, NgError> {
        Request::decode(req, &self.limits(), &|call_id, from_tag| self.admit(call_id, from_tag))
    }

    /// Handle one ng request dictionary, answer with the reply dictionary: decoded,
    /// counted by command, handled, errors counted and logged (rate-limited). `now_ms` is
    /// the data plane's clock, `unix` wall seconds.
    pub fn command(&mut self, req: &Value, now_ms: u64, unix: u64) -> Value {
        let name = Command::name_in(req);
        *self.stats.commands.entry(Command::counted(&name).to_string()).or_default() += 1;
        match self.decode(req).and_then(|r| self.request(r, now_ms, unix)) {
            Ok(reply) => reply.encode(),
            Err(e) => {
                self.stats.errors += 1;
                if self.error_log.allow(now_ms) {
                    log::info!(
                        "ng {}: error: {}",
                        crate::ng::log_text(name.as_bytes(), 40),
                        crate::ng::log_text(e.to_string().as_bytes(), 200)
                    );
                }
                crate::persist::error_reply(&e, req)
            }
        }
    }

    /// Handle one request [`decode`](Self::decode)d by this engine (counting and logging
    /// are [`command`](Self::command)'s).
    pub fn request(&mut self, req: Request, now_ms: u64, unix: u64) -> Result<Reply, NgError> {
        let req_kind = req.command();
        match req {
            Request::Ping => Ok(Reply::Pong),
            Request::Offer(o) | Request::Answer(o)
                if o.flags.record_call.is_some() || self.recording_of(&o.call_id).is_some() =>
            {
                let is_answer = matches!(req_kind, Command::Answer);
                let s = crate::recording::Signal::of(&o, is_answer);
                self.offer_answer(o, is_answer, now_ms, unix).map(|sdp| self.recorded(s, sdp, unix))
            }
            Request::Offer(o) => self.offer_answer(o, false, now_ms, unix).map(Reply::Sdp),
            Request::Answer(o) => self.offer_answer(o, true, now_ms, unix).map(Reply::Sdp),
            Request::Recording(r) => self.recording_command(r, unix),
            Request::Delete(d) => {
                let fatal = d.flags.fatal;
                match self.delete(d, now_ms) {
                    Ok(t) => Ok(Reply::Deleted(t)),
                    Err(NgError::UnknownCallId(_) | NgError::UnknownFromTag(_)) if !fatal => Ok(Reply::NotDeleted),
                    Err(e) => Err(e),
                }
            }
            Request::Query { call_id } => Snapshot::take(self, Some(&call_id), now_ms)
                .query(self.dp.as_ref())
                .map(|q| Reply::Query(CallQuery { recording: self.recording_of(&call_id).map(|paused| !paused), ..q }))
                .ok_or(NgError::UnknownCallId(call_id)),
            Request::List { limit } => Ok(Reply::List(self.list(limit))),
            Request::Statistics => Ok(Reply::Statistics(self.statistics())),
            #[cfg(test)]
            Request::TestPanic => panic!("test-panic requested"),
        }
    }

    /// Is `a` one of the media sockets the relay has open now (by its local or its
    /// advertised address)? The ng server ignores datagrams from them.
    pub fn owns_socket(&self, a: SocketAddr) -> bool {
        let unmap = |ip: IpAddr| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            ip => ip,
        };
        let ip = unmap(a.ip());
        let ours = |port: u16, local: IpAddr, advertised: IpAddr| {
            (port == a.port() || port.wrapping_add(1) == a.port())
                && (unmap(local) == ip || unmap(advertised) == ip || (local.is_unspecified() && ip.is_loopback()))
        };
        self.calls.values().flat_map(|c| c.monologues.iter()).flat_map(|m| m.legs.iter()).any(|l| {
            (l.relayed() && ours(l.port, l.local, l.advertised))
                || l.ice.extra.iter().any(|s| ours(s.port, s.local, s.advertised))
        })
    }

    fn release(&mut self, local: IpAddr, port: u16) {
        PoolPorts { pools: &mut self.pools, dp: self.dp.as_ref(), deferred: None }.release_now(local, port);
    }

    /// Run an offer or answer (decoded and admitted) on a copy of its call, and commit
    /// it (rules to the data plane) or roll it back (ports released).
    fn offer_answer(&mut self, o: OfferAnswer, is_answer: bool, now_ms: u64, unix: u64) -> Result<String, NgError> {
        let OfferAnswer { call_id, from_tag, to_tag, sdp, flags } = o;
        if !flags.ignored.is_empty() {
            log::debug!("call {call_id:?}: ignoring flags {:?}", flags.ignored);
        }
        if flags.loop_protect && crate::loop_protect::is_duplicate(&sdp) {
            // this relay already handled this SDP (a routing loop): unchanged, nothing done
            return Ok(crate::loop_protect::unchanged(&sdp));
        }
        if is_answer && !self.calls.contains_key(&call_id) {
            return Err(NgError::UnknownCallId(call_id));
        }
        let mut created = false;
        if !self.calls.contains_key(&call_id) {
            self.next_affinity += 1;
            self.calls.insert(call_id.clone(), Call::new(&call_id, now_ms, unix, self.next_affinity));
            self.stats.calls_created += 1;
            created = true;
        }
        // work on a copy so that a failing request leaves the call as it was
        let mut call = self.calls.get(&call_id).unwrap().clone();
        let ex = Exchange { sdp: &sdp, flags: &flags, from_tag: &from_tag, to_tag: to_tag.as_deref(), is_answer, unix };
        let relay = Relay {
            interfaces: &self.cfg.interfaces,
            policy: &self.cfg.media_policy,
            dtls_identity: self.dtls_identity.as_ref(),
        };
        let mut ports = PoolPorts { pools: &mut self.pools, dp: self.dp.as_ref(), deferred: Some(Vec::new()) };
        // a panic in here (a bug) must not leak the ports this request allocated: it
        // becomes an error, and the release below runs
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            offer_answer::offer_answer(&mut call, &ex, &relay, &mut ports)
        }))
        .unwrap_or_else(|_| {
            self.stats.panics += 1;
            Err(NgError::Internal(if is_answer { Command::Answer } else { Command::Offer }.name().to_string()))
        })
        .and_then(|r| {
            if call.monologues.len() > self.cfg.max_monologues_per_call {
                return Err(NgError::TooManyMonologues {
                    n: call.monologues.len(),
                    max: self.cfg.max_monologues_per_call,
                });
            }
            Ok(r)
        });
        // pairs the request gave back: released only once it commits
        let released = ports.deferred.take().unwrap_or_default();
        // every rule must apply before the call changes: one the data plane refuses (an
        // SRTP key it cannot use, ...) refuses the request
        let mut refused = false;
        let res = res.and_then(|out| {
            let x = out.sender;
            let y = call.monologues[x].counterpart.unwrap();
            let mut rules = call.rules_for(x);
            rules.extend(call.rules_for(y));
            for mut r in rules {
                self.taps.attach(&call, &mut r);
                let local = r.local;
                if let Err(why) = self.dp.apply(r) {
                    refused = true;
                    return Err(NgError::RuleRefused { local, why });
                }
            }
            Ok(out)
        });
        match res {
            Ok(Outcome { sdp: sdp_out, .. }) => {
                call.last_signal_ms = now_ms;
                call.last_signal_unix = unix;
                call.delete_at_ms = None;
                self.calls.insert(call_id, call);
                for (ip, port) in released {
                    self.release(ip, port);
                }
                Ok(sdp_out)
            }
            Err(e) => {
                // release what this request allocated
                let before: Vec<SocketAddr> = self.calls.get(&call_id).map(|c| c.sockets()).unwrap_or_default();
                // (pairs it allocated and gave back again; the committed call's stay)
                for (ip, port) in released {
                    if !before.contains(&SocketAddr::new(ip, port)) {
                        self.release(ip, port);
                    }
                }
                for (ip, port) in call.monologues.iter().flat_map(|m| m.legs.iter()).flat_map(|l| l.pairs()) {
                    if !before.contains(&SocketAddr::new(ip, port)) {
                        self.release(ip, port);
                    }
                }
                if created {
                    self.calls.remove(&call_id);
                }
                // rules applied before the refusal: back to the committed call's (they
                // applied when it was committed)
                if let Some(mut was) = self.calls.get(&call_id).cloned().filter(|_| refused) {
                    for x in 0..was.monologues.len() {
                        for mut r in was.rules_for(x) {
                            self.taps.attach(&was, &mut r);
                            if let Err(e) = self.dp.apply(r) {
                                log::warn!("call {call_id:?}: restoring a forwarding rule: {e}");
                            }
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// Delete a call (or one via-branch of it) now or after its delete-delay; the reply
    /// carries the call's totals.
    fn delete(&mut self, d: Delete, now_ms: u64) -> Result<Totals, NgError> {
        let Delete { call_id, from_tag, to_tag, flags } = d;
        let Some(call) = self.calls.get(&call_id) else {
            return Err(NgError::UnknownCallId(call_id));
        };
        let delay = flags.delete_delay.unwrap_or(self.cfg.delete_delay);
        // rtpengine's call_delete_branch: with a from-tag and no to-tag, a via-branch the
        // call knows is what goes (before the from-tag is looked at); one it does not know
        // leaves the from-tag to name the call
        let branch = flags.via_branch.as_deref().filter(|_| from_tag.is_some() && to_tag.is_none());
        if let Some(b) = branch.filter(|b| call.branches.contains(b) && !call.branches.is_answered(b)) {
            let totals = Snapshot::take(self, Some(&call_id), now_ms).totals(self.dp.as_ref());
            self.delete_branch(&call_id, b, delay, now_ms);
            return Ok(totals);
        }
        if let Some(ft) = from_tag {
            if call.find(&ft).is_none() {
                return Err(NgError::UnknownFromTag(ft));
            }
        }
        let totals = Snapshot::take(self, Some(&call_id), now_ms).totals(self.dp.as_ref());
        if delay == 0 {
            self.destroy(&call_id, EndReason::Deleted);
        } else if let Some(call) = self.calls.get_mut(&call_id) {
            call.delete_at_ms = Some(now_ms.saturating_add(delay.saturating_mul(1000)));
        }
        Ok(totals)
    }

    /// One unanswered branch of a call goes, now or after `delay_s`; the call goes with
    /// it when that leaves no branch and fewer than two tagged parties (rtpengine's
    /// `monologue_destroy`). The answered branch is the dialogue: deleting it deletes the
    /// call (rtpengine keeps the call while other branches ring; relayd's branches share
    /// the answerer's legs).
    fn delete_branch(&mut self, call_id: &str, branch: &str, delay_s: u64, now_ms: u64) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if delay_s > 0 {
            call.branches.schedule(branch, now_ms.saturating_add(delay_s.saturating_mul(1000)));
            return;
        }
        call.forget_branch(branch);
        if call.branches.is_empty() && call.tagged() < 2 {
            self.destroy(call_id, EndReason::Deleted);
        }
    }

    /// Tear a call down now (operator request through the API).
    pub fn terminate(&mut self, call_id: &str) -> bool {
        self.destroy(call_id, EndReason::Terminated)
    }

    fn destroy(&mut self, call_id: &str, reason: EndReason) -> bool {
        let Some(call) = self.calls.remove(call_id) else {
            return false;
        };
        self.end_taps(&call);
        // the call detail record, while the data plane still has its sockets' counters
        crate::cdr::call_ended(self, &call, reason);
        for (ip, port) in call.monologues.iter().flat_map(|m| m.legs.iter()).flat_map(|l| l.pairs()) {
            self.release(ip, port);
        }
        *self.stats.ended.entry(reason.as_str().to_string()).or_default() += 1;
        log::info!("call {call_id:?} ended: {}", reason.as_str());
        true
    }

    /// Timers: delete-delay expiry and media timeouts. Returns the calls ended.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(String, EndReason)> {
        let mut ended = Vec::new();
        // branches deleted with a delay whose time has come
        for (id, call) in self.calls.iter_mut() {
            let due = call.branches.expire(now_ms);
            for b in &due {
                call.forget_branch(b);
            }
            if !due.is_empty() && call.branches.is_empty() && call.tagged() < 2 {
                ended.push((id.clone(), EndReason::Deleted));
            }
        }
        for (id, call) in &self.calls {
            if ended.iter().any(|(e, _)| e == id) {
                continue;
            }
            if call.delete_at_ms.is_some_and(|t| now_ms >= t) {
                ended.push((id.clone(), EndReason::Deleted));
                continue;
            }
            if self.cfg.final_timeout > 0
                && now_ms.saturating_sub(call.created_ms) >= self.cfg.final_timeout.saturating_mul(1000)
            {
                ended.push((id.clone(), EndReason::FinalTimeout));
                continue;
            }
            let mut last = call.last_signal_ms;
            for s in call.sockets() {
                if let Some(c) = self.dp.counters(s) {
                    last = last.max(c.last_packet_ms);
                }
            }
            let on_hold = call
                .monologues
                .iter()
                .flat_map(|m| m.legs.iter())
                .filter(|l| l.relayed() && !l.rejected)
                .all(|l| l.peer.is_none());
            let (limit, reason) = if on_hold {
                (self.cfg.silent_timeout, EndReason::SilentTimeout)
            } else {
                (self.cfg.timeout, EndReason::Timeout)
            };
            if limit > 0 && now_ms.saturating_sub(last) >= limit.saturating_mul(1000) {
                ended.push((id.clone(), reason));
            }
        }
        for (id, r) in &ended {
            self.destroy(id, *r);
        }
        ended
    }

    /// Call-ids, sorted: at most `limit` (at most [`LIST_MAX`]) and never a reply larger
    /// than [`LIST_MAX_BYTES`] (a `warning` says it was cut).
    fn list(&self, asked: usize) -> CallList {
        let mut ids: Vec<&String> = self.calls.keys().collect();
        ids.sort();
        let mut calls = Vec::new();
        let mut bytes = 64;
        for id in ids.iter().take(asked) {
            let cost = id.len() + 8;
            if bytes + cost > LIST_MAX_BYTES {
                break;
            }
            bytes += cost;
            calls.push(id.to_string());
        }
        let cut = calls.len() < ids.len().min(asked) || (asked == LIST_MAX && ids.len() > LIST_MAX);
        let warning = cut.then(|| format!("list truncated to {} of {} calls", calls.len(), ids.len()));
        CallList { calls, warning }
    }

    fn statistics(&self) -> Statistics {
        Statistics {
            sessions: self.calls.len() as u64,
            ports_used: self.ports_in_use() as u64,
            managed_sessions: self.stats.calls_created,
            ended: self.stats.ended.iter().map(|(k, n)| (k.clone(), *n)).collect(),
        }
    }

    /// Per-flow view for the HTTP API and relayctl (one traversal: [`Snapshot`]).
    pub fn flows(&self, call_filter: Option<&str>, now_ms: u64) -> Vec<FlowView> {
        Snapshot::take(self, call_filter, now_ms).flows(self.dp.as_ref())
    }

    pub fn call_summaries(&self, now_ms: u64) -> Vec<CallSummary> {
        Snapshot::take(self, None, now_ms).calls(self.dp.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::tests::leg;
    use crate::call::Monologue;
    use crate::ng::flags::Flags;
    use rules::dataplane::MemoryDataPlane;

    const NOW: u64 = 1_000;

    fn engine(cfg: EngineConfig) -> (Engine, Arc<MemoryDataPlane>) {
        let dp = Arc::new(MemoryDataPlane::default());
        (Engine::new(cfg, dp.clone()), dp)
    }

    fn cfg() -> EngineConfig {
        EngineConfig {
            port_min: 30000,
            port_max: 30099,
            timeout: 60,
            silent_timeout: 600,
            final_timeout: 0,
            delete_delay: 30,
            ..Default::default()
        }
    }

    /// A two-party call signalled at `NOW`, each leg on ports the engine's pool allocated
    /// (so the data plane has them open); `peer: None` puts that party on hold.
    fn add_call(e: &mut Engine, id: &str, peers: [Option<&str>; 2]) -> Vec<SocketAddr> {
        let mut call = Call::new(id, NOW, 0, 1);
        for (i, (tag, peer)) in ["a", "b"].into_iter().zip(peers).enumerate() {
            let port = e.pools[0].allocate(e.dp.as_ref(), 1).unwrap();
            let mut m = Monologue::new(tag, 0);
            m.legs.push(leg("audio", "127.0.0.1", port, peer));
            m.counterpart = Some(1 - i);
            call.monologues.push(m);
        }
        let sockets = call.sockets();
        e.calls.insert(id.into(), call);
        sockets
    }

    fn live(e: &mut Engine, id: &str) -> Vec<SocketAddr> {
        add_call(e, id, [Some("198.51.100.7:4000"), Some("198.51.100.8:5000")])
    }

    fn packet_at(dp: &MemoryDataPlane, s: SocketAddr, t: u64) {
        dp.state.lock().unwrap().counters.entry(s).or_default().last_packet_ms = t;
    }

    fn delete(
        e: &mut Engine,
        id: &str,
        from_tag: Option<&str>,
        delay: Option<u64>,
        now: u64,
    ) -> Result<Totals, NgError> {
        let flags = Flags { delete_delay: delay, ..Default::default() };
        e.delete(Delete { call_id: id.into(), from_tag: from_tag.map(Into::into), to_tag: None, flags }, now)
    }

    #[test]
    fn silence_times_out_from_the_last_signal() {
        let (mut e, dp) = engine(cfg());
        live(&mut e, "c");
        assert!(e.tick(NOW + 59_999).is_empty());
        assert_eq!(e.tick(NOW + 60_000), vec![("c".to_string(), EndReason::Timeout)]);
        assert!(e.calls.is_empty());
        assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (0, 0), "ports released");
        assert_eq!(e.stats.ended["timeout"], 1);
    }

    #[test]
    fn media_on_any_socket_keeps_the_call() {
        let (mut e, dp) = engine(cfg());
        let socks = live(&mut e, "c");
        // the last packet of the call counts, whichever socket (here b's RTCP) it came on
        packet_at(&dp, socks[0], NOW + 10_000);
        packet_at(&dp, socks[3], NOW + 50_000);
        assert!(e.tick(NOW + 109_999).is_empty());
        assert_eq!(e.tick(NOW + 110_000), vec![("c".to_string(), EndReason::Timeout)]);
    }

    #[test]
    fn held_calls_use_the_silent_timeout() {
        let (mut e, _dp) = engine(cfg());
        add_call(&mut e, "held", [None, None]);
        add_call(&mut e, "half", [Some("198.51.100.7:4000"), None]);
        assert_eq!(e.tick(NOW + 60_000), vec![("half".to_string(), EndReason::Timeout)], "one party sends");
        assert!(e.tick(NOW + 599_999).is_empty());
        assert_eq!(e.tick(NOW + 600_000), vec![("held".to_string(), EndReason::SilentTimeout)]);
    }

    #[test]
    fn rejected_legs_do_not_count_for_hold() {
        let (mut e, _dp) = engine(cfg());
        add_call(&mut e, "c", [None, None]);
        // a rejected leg with a peer, the only one: the call is still on hold
        e.calls.get_mut("c").unwrap().monologues[0].legs[0].peer = Some("198.51.100.7:4000".parse().unwrap());
        e.calls.get_mut("c").unwrap().monologues[0].legs[0].rejected = true;
        assert!(e.tick(NOW + 60_000).is_empty());
        assert_eq!(e.tick(NOW + 600_000), vec![("c".to_string(), EndReason::SilentTimeout)]);
    }

    #[test]
    fn zero_timeouts_never_end_a_call() {
        let (mut e, _dp) = engine(EngineConfig { timeout: 0, silent_timeout: 0, final_timeout: 0, ..cfg() });
        live(&mut e, "c");
        add_call(&mut e, "held", [None, None]);
        assert!(e.tick(u64::MAX).is_empty());
        assert_eq!(e.calls.len(), 2);
    }

    #[test]
    fn final_timeout_ends_a_call_that_still_has_media() {
        let (mut e, dp) = engine(EngineConfig { final_timeout: 100, ..cfg() });
        let socks = live(&mut e, "c");
        packet_at(&dp, socks[0], NOW + 99_999);
        assert!(e.tick(NOW + 99_999).is_empty());
        assert_eq!(e.tick(NOW + 100_000), vec![("c".to_string(), EndReason::FinalTimeout)]);
        assert_eq!(e.ports_in_use(), 0);
        assert_eq!(e.stats.ended["final-timeout"], 1);
    }

    #[test]
    fn delete_with_a_delay_ends_the_call_at_its_time() {
        let (mut e, dp) = engine(cfg());
        let socks = live(&mut e, "c");
        delete(&mut e, "c", Some("a"), None, NOW + 5_000).unwrap();
        assert_eq!(e.calls["c"].delete_at_ms, Some(NOW + 35_000), "--delete-delay 30");
        // media meanwhile does not keep it
        packet_at(&dp, socks[0], NOW + 34_999);
        assert!(e.tick(NOW + 34_999).is_empty());
        assert_eq!(e.ports_in_use(), 4, "late packets still flow");
        assert_eq!(e.tick(NOW + 35_000), vec![("c".to_string(), EndReason::Deleted)]);
        assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (0, 0));
        // the flag overrides the configured delay; a deleted call past its final timeout
        // ends as deleted
        let (mut e, _dp) = engine(EngineConfig { final_timeout: 10, ..cfg() });
        live(&mut e, "c");
        delete(&mut e, "c", None, Some(2), NOW).unwrap();
        assert_eq!(e.tick(NOW + 20_000), vec![("c".to_string(), EndReason::Deleted)]);
    }

    #[test]
    fn delete_without_delay_releases_at_once() {
        let (mut e, dp) = engine(cfg());
        live(&mut e, "c");
        live(&mut e, "other");
        delete(&mut e, "c", None, Some(0), NOW).unwrap();
        assert!(!e.calls.contains_key("c"));
        assert_eq!(e.ports_in_use(), 4, "only the other call's");
        assert_eq!(dp.state.lock().unwrap().open.len(), 4);
        assert_eq!(e.stats.ended["deleted"], 1);
        // a released pair can be allocated again
        assert_eq!(e.pools[0].in_use, 2);
    }

    #[test]
    fn delete_of_unknown_call_or_tag_is_refused() {
        let (mut e, _dp) = engine(cfg());
        live(&mut e, "c");
        assert!(matches!(delete(&mut e, "x", None, None, NOW), Err(NgError::UnknownCallId(_))));
        assert!(matches!(delete(&mut e, "c", Some("z"), None, NOW), Err(NgError::UnknownFromTag(_))));
        assert_eq!(e.calls["c"].delete_at_ms, None, "left alone");
    }

    #[test]
    fn terminate_releases_and_counts() {
        let (mut e, dp) = engine(cfg());
        live(&mut e, "c");
        assert!(e.terminate("c"));
        assert!(!e.terminate("c"));
        assert_eq!((e.ports_in_use(), dp.state.lock().unwrap().open.len()), (0, 0));
        assert_eq!(e.stats.ended["terminated"], 1);
    }

    #[test]
    fn max_calls_refuses_new_calls_only() {
        let (mut e, _dp) = engine(EngineConfig { max_calls: 1, max_monologues_per_call: 2, ..cfg() });
        assert!(e.admit("c", "a").is_ok());
        live(&mut e, "c");
        assert!(matches!(e.admit("d", "a"), Err(NgError::TooManyCalls { max: 1 })));
        assert!(e.admit("c", "a").is_ok(), "an existing call goes on");
        assert!(e.admit("c", "b").is_ok());
        assert!(matches!(e.admit("c", "x"), Err(NgError::TooManyMonologues { n: 3, max: 2 })));
    }

    #[test]
    fn port_exhaustion_is_an_error_and_leaks_nothing() {
        let (mut e, dp) = engine(EngineConfig { port_min: 30000, port_max: 30003, ..cfg() });
        assert_eq!(e.ports_total(), 4);
        live(&mut e, "c");
        let mut ports = PoolPorts { pools: &mut e.pools, dp: e.dp.as_ref(), deferred: None };
        assert!(ports.allocate("127.0.0.1".parse().unwrap(), 1).is_err(), "both pairs taken");
        assert!(matches!(ports.allocate("10.9.9.9".parse().unwrap(), 1), Err(NgError::NoPortPool)));
        e.terminate("c");
        assert_eq!(dp.state.lock().unwrap().open.len(), 0);
        let mut ports = PoolPorts { pools: &mut e.pools, dp: e.dp.as_ref(), deferred: None };
        assert!(ports.allocate("127.0.0.1".parse().unwrap(), 1).is_ok(), "free again");
    }

    #[test]
    fn owns_socket_by_rtp_and_rtcp_port_and_mapped_address() {
        let (mut e, _dp) = engine(cfg());
        let socks = live(&mut e, "c");
        for s in &socks {
            assert!(e.owns_socket(*s), "{s}");
            let mapped = match s.ip() {
                IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), s.port()),
                _ => unreachable!(),
            };
            assert!(e.owns_socket(mapped), "{mapped}");
        }
        let below = socks.iter().map(|s| s.port()).min().unwrap() - 1;
        assert!(!e.owns_socket(SocketAddr::new(socks[0].ip(), below)));
        assert!(!e.owns_socket(SocketAddr::new("127.0.0.2".parse().unwrap(), socks[0].port())));
        e.terminate("c");
        assert!(!e.owns_socket(socks[0]));
    }
}
