//! The control plane's state machine: calls, offer/answer, delete, query, timeouts.
//! Pure logic over requests and explicit time; the data plane is behind a trait.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use crate::bencode::Value;
use crate::call::{Call, Leg, Monologue, OriginState};
use rules::dataplane::{DataPlane, FlowCounters, FlowKind, LatchPolicy, Suite};
use crate::interface::{Interface, PortPool};
use crate::ng::flags::{self, Flags};
use crate::rewrite::{is_zero_hold, rewrite, MediaOut, SessionOut};
use crate::sdes::{self, Crypto};
use crate::sdp::{family_of, Sdp};

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
}

pub struct Engine {
    pub cfg: EngineConfig,
    dp: Arc<dyn DataPlane>,
    pools: Vec<PortPool>,
    pub calls: HashMap<String, Call>,
    pub stats: EngineStats,
    next_affinity: u64,
    error_log: crate::ng::LogLimiter,
}

/// Most call-ids one `list` reply carries (the HTTP API's /calls lists them all).
pub const LIST_MAX: usize = 100;
/// Largest `list` reply (bytes, roughly): a `list` from a spoofed source must amplify
/// little (a ~40-byte request gets at most ~4 KB; --ng-allow stops spoofed sources).
pub const LIST_MAX_BYTES: usize = 4_000;

/// An ng error reply's reason.
pub type NgResult = Result<Value, String>;

fn ok() -> Value {
    let mut v = Value::dict();
    v.insert("result", "ok".into());
    v
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
        Engine { cfg, dp, pools, calls: HashMap::new(), stats: EngineStats::default(), next_affinity: 0, error_log }
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

    /// Handle one decoded ng request. `now_ms` is the data plane's clock, `unix` wall seconds.
    pub fn command(&mut self, req: &Value, now_ms: u64, unix: u64) -> Value {
        let cmd = req.get("command").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
        // counted by name for the commands we know only: a peer must not grow this map
        const KNOWN: [&str; 8] = ["ping", "offer", "answer", "delete", "query", "list", "statistics", "test-panic"];
        let counted =
            if cmd.is_empty() { "invalid" } else { KNOWN.iter().copied().find(|k| *k == cmd).unwrap_or("unknown") };
        *self.stats.commands.entry(counted.to_string()).or_default() += 1;
        let r = match self.check_ids(req) {
            Err(e) => Err(e),
            Ok(()) => match cmd.as_str() {
                "ping" => {
                    let mut v = Value::dict();
                    v.insert("result", "pong".into());
                    Ok(v)
                }
                "offer" => self.offer_answer(req, false, now_ms, unix),
                "answer" => self.offer_answer(req, true, now_ms, unix),
                "delete" => self.delete(req, now_ms),
                "query" => self.query(req, now_ms),
                "list" => Ok(self.list(req)),
                "statistics" => Ok(self.statistics()),
                #[cfg(test)]
                "test-panic" => panic!("test-panic requested"),
                "" => Err("no 'command' key in request".to_string()),
                other => Err(format!("unknown command {:?}", crate::ng::log_text(other.as_bytes(), 40))),
            },
        };
        match r {
            Ok(v) => v,
            Err(reason) => {
                self.stats.errors += 1;
                if self.error_log.allow(now_ms) {
                    log::info!(
                        "ng {}: error: {}",
                        crate::ng::log_text(cmd.as_bytes(), 40),
                        crate::ng::log_text(reason.as_bytes(), 200)
                    );
                }
                let mut v = Value::dict();
                v.insert("result", "error".into());
                v.insert("error-reason", reason.into());
                v
            }
        }
    }

    /// Identifiers a peer makes us store are bounded (`max-id-length`).
    fn check_ids(&self, req: &Value) -> Result<(), String> {
        for k in ["call-id", "from-tag", "to-tag", "via-branch", "label"] {
            if let Some(Value::Bytes(b)) = req.get(k) {
                if b.len() > self.cfg.max_id_length {
                    return Err(format!(
                        "{k} is {} bytes long, more than max-id-length ({})",
                        b.len(),
                        self.cfg.max_id_length
                    ));
                }
            }
        }
        Ok(())
    }

    /// Is `a` one of the media sockets the relay has open now (by its local or its
    /// advertised address)? The ng server ignores datagrams from them.
    pub fn owns_socket(&self, a: SocketAddr) -> bool {
        let unmap = |ip: IpAddr| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            ip => ip,
        };
        let ip = unmap(a.ip());
        self.calls.values().flat_map(|c| c.monologues.iter()).flat_map(|m| m.legs.iter()).any(|l| {
            l.relayed()
                && (l.port == a.port() || l.port.wrapping_add(1) == a.port())
                && (unmap(l.local) == ip || unmap(l.advertised) == ip || (l.local.is_unspecified() && ip.is_loopback()))
        })
    }

    fn interface(&self, name: Option<&str>, family: Option<&str>) -> Result<&Interface, String> {
        let first = self.cfg.interfaces.first().ok_or("no interface configured")?;
        let name = name.unwrap_or(first.name.as_str());
        let named: Vec<&Interface> = self.cfg.interfaces.iter().filter(|i| i.name == name).collect();
        if named.is_empty() {
            return Err(format!("unknown interface {name:?}"));
        }
        if let Some(f) = family {
            if let Some(i) = named.iter().find(|i| family_of(i.local) == f) {
                return Ok(i);
            }
        }
        Ok(named[0])
    }

    fn allocate(&mut self, local: IpAddr, affinity: u64) -> Result<u16, String> {
        let dp = self.dp.clone();
        let pool = self.pools.iter_mut().find(|p| p.addr == local).ok_or("no port pool for interface")?;
        pool.allocate(dp.as_ref(), affinity)
    }

    fn release(&mut self, local: IpAddr, port: u16) {
        let dp = self.dp.clone();
        if let Some(pool) = self.pools.iter_mut().find(|p| p.addr == local) {
            pool.release(dp.as_ref(), port);
        }
    }

    fn offer_answer(&mut self, req: &Value, is_answer: bool, now_ms: u64, unix: u64) -> NgResult {
        let call_id = req.get("call-id").and_then(Value::as_str).ok_or("no call-id in request")?.to_string();
        let from_tag = req.get("from-tag").and_then(Value::as_str).ok_or("no from-tag in request")?.to_string();
        let to_tag = req.get("to-tag").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string);
        if to_tag.as_deref() == Some(from_tag.as_str()) {
            return Err(format!("to-tag equals from-tag ({:?})", crate::ng::log_text(from_tag.as_bytes(), 64)));
        }
        if self.cfg.interfaces.is_empty() {
            return Err("no interface configured".into());
        }
        let sdp_text = req.get("sdp").and_then(Value::as_str).ok_or("no SDP in request")?;
        let sdp = Sdp::parse(sdp_text).map_err(|e| format!("failed to parse SDP: {e}"))?;
        // bounds before anything is allocated
        if sdp.media.len() > self.cfg.max_media_per_sdp {
            return Err(format!(
                "SDP has {} media sections, more than max-media-per-sdp ({})",
                sdp.media.len(),
                self.cfg.max_media_per_sdp
            ));
        }
        if !self.calls.contains_key(&call_id) && self.calls.len() >= self.cfg.max_calls {
            return Err(format!("too many calls ({}, max-calls)", self.cfg.max_calls));
        }
        if let Some(c) = self.calls.get(&call_id) {
            // a new from-tag adds a monologue for sure (the check after the offer counts
            // the recipient's too)
            let n = c.monologues.len() + c.find(&from_tag).is_none() as usize;
            if n > self.cfg.max_monologues_per_call {
                return Err(format!(
                    "call would have {n} monologues, more than max-monologues-per-call ({})",
                    self.cfg.max_monologues_per_call
                ));
            }
        }
        let flags = Flags::from_request(req)?;
        if !flags.ignored.is_empty() {
            log::debug!("call {call_id}: ignoring flags {:?}", flags.ignored);
        }
        for m in &sdp.media {
            if m.m.port != 0 && m.m.proto.to_ascii_uppercase().contains("TLS") {
                return Err(format!("DTLS-SRTP ({}) is not supported yet", m.m.proto));
            }
        }
        if is_answer && !self.calls.contains_key(&call_id) {
            return Err(format!("Unknown call-id {call_id:?}"));
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
        // a panic in here (a bug) must not leak the ports this request allocated: it
        // becomes an error, and the release below runs
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.offer_answer_on(&mut call, &sdp, &flags, &from_tag, to_tag.as_deref(), is_answer, unix)
        }))
        .unwrap_or_else(|_| {
            self.stats.panics += 1;
            Err(format!("internal error handling {}", if is_answer { "answer" } else { "offer" }))
        })
        .and_then(|r| {
            if call.monologues.len() > self.cfg.max_monologues_per_call {
                return Err(format!(
                    "call would have {} monologues, more than max-monologues-per-call ({})",
                    call.monologues.len(),
                    self.cfg.max_monologues_per_call
                ));
            }
            Ok(r)
        });
        // every rule must apply before the call changes: one the data plane refuses (an
        // SRTP key it cannot use, ...) refuses the request
        let mut refused = false;
        let res = res.and_then(|(sdp_out, x)| {
            let y = call.monologues[x].counterpart.unwrap();
            let mut rules = call.rules_for(x);
            rules.extend(call.rules_for(y));
            for r in rules {
                let local = r.local;
                if let Err(e) = self.dp.apply(r) {
                    refused = true;
                    return Err(format!("cannot apply forwarding rule for {local}: {e}"));
                }
            }
            Ok((sdp_out, x))
        });
        match res {
            Ok((sdp_out, _)) => {
                call.last_signal_ms = now_ms;
                call.last_signal_unix = unix;
                call.delete_at_ms = None;
                self.calls.insert(call_id, call);
                let mut v = ok();
                v.insert("sdp", sdp_out.into());
                Ok(v)
            }
            Err(e) => {
                // release what this request allocated
                let before: Vec<SocketAddr> = self.calls.get(&call_id).map(|c| c.sockets()).unwrap_or_default();
                for l in call.monologues.iter().flat_map(|m| m.legs.iter()).filter(|l| l.relayed()) {
                    if !before.contains(&l.rtp()) {
                        self.release(l.local, l.port);
                    }
                }
                if created {
                    self.calls.remove(&call_id);
                }
                // rules applied before the refusal: back to the committed call's (they
                // applied when it was committed)
                if let Some(mut was) = self.calls.get(&call_id).cloned().filter(|_| refused) {
                    for x in 0..was.monologues.len() {
                        for r in was.rules_for(x) {
                            if let Err(e) = self.dp.apply(r) {
                                log::warn!("call {call_id}: restoring a forwarding rule: {e}");
                            }
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// Returns the rewritten SDP and the index of the monologue that sent it.
    #[allow(clippy::too_many_arguments)]
    fn offer_answer_on(
        &mut self,
        call: &mut Call,
        sdp: &Sdp,
        flags: &Flags,
        from_tag: &str,
        to_tag: Option<&str>,
        is_answer: bool,
        unix: u64,
    ) -> Result<(String, usize), String> {
        // who sent this SDP (x) and who receives the rewritten one (y)
        let (x, y) = if !is_answer {
            let a = match call.find(from_tag) {
                Some(a) => a,
                None => {
                    call.monologues.push(Monologue::new(from_tag, unix));
                    call.monologues.len() - 1
                }
            };
            let b = match to_tag.and_then(|t| call.find(t)) {
                Some(b) => b,
                None => match call.monologues[a].counterpart {
                    Some(b) => b,
                    None => {
                        call.monologues.push(Monologue::new(to_tag.unwrap_or(""), unix));
                        call.monologues.len() - 1
                    }
                },
            };
            if a == b {
                return Err("from-tag and to-tag are the same".into());
            }
            (a, b)
        } else {
            let a = call.find(from_tag).ok_or_else(|| format!("Unknown from-tag {from_tag:?}"))?;
            let to = to_tag.ok_or("no to-tag in answer")?;
            let b = match call.find(to) {
                Some(b) => b,
                None => {
                    let b = call.monologues[a].counterpart.ok_or("answer without a preceding offer")?;
                    call.monologues[b].tag = to.to_string();
                    b
                }
            };
            if call.monologues[a].counterpart != Some(b) && call.monologues[b].counterpart != Some(a) {
                // answer from another branch: it becomes the counterpart
                call.monologues[a].counterpart = Some(b);
            }
            (b, a)
        };
        call.monologues[x].counterpart = Some(y);
        call.monologues[y].counterpart = Some(x);
        if flags.label.is_some() {
            call.monologues[x].label = flags.label.clone();
        }
        // the SIP source of this party's signalling (ng received-from): a latching hint,
        // dropped when it is an address media may not come from anyway
        if let Some(ip) = flags.received_from {
            call.monologues[x].sip_source = self.cfg.media_policy.check_ip(ip).is_ok().then_some(ip);
        }
        call.monologues[x].latch = LatchPolicy {
            asymmetric: flags.asymmetric,
            trust_address: flags.trust_address,
            strict_source: flags.strict_source,
        };

        // interfaces: the first offer decides, re-offers keep them
        let (if_x, if_y) = if let (Some(a), Some(b)) = (&flags.from_interface, &flags.to_interface) {
            (Some(a.clone()), Some(b.clone()))
        } else if flags.direction.len() >= 2 {
            (Some(flags.direction[0].clone()), Some(flags.direction[1].clone()))
        } else {
            (None, None)
        };
        for (m, i) in [(x, if_x), (y, if_y)] {
            if i.is_some() || call.monologues[m].interface.is_none() {
                let name = i.unwrap_or_else(|| self.cfg.interfaces[0].name.clone());
                self.interface(Some(&name), None)?;
                call.monologues[m].interface = Some(name);
            }
        }

        let mut outs = Vec::with_capacity(sdp.media.len());
        for (i, m) in sdp.media.iter().enumerate() {
            let conn = sdp.effective_connection(i);
            let x_family = conn.as_ref().map(|c| c.family.clone());
            let y_family = flags.address_family.clone().or_else(|| x_family.clone());
            let relay_it = m.m.is_relayable() && m.m.port != 0;
            let clock_rate = m.m.fmts.first().and_then(|f| m.rtpmap(f)).map(|(_, r)| r).unwrap_or(8000);
            let hold = is_zero_hold(sdp, i);
            // the sender's leg: where it is, what it offers
            let (peer, peer_rtcp) = self.signalled_peers(m, conn.as_ref(), is_answer, relay_it)?;
            let sender_mux = m.has_attr("rtcp-mux");
            // the sender's leg follows its SDP's family; the recipient's keeps the family it
            // has unless address-family asks for another
            let y_family = match (&flags.address_family, call.monologues[y].legs.get(i)) {
                (None, Some(l)) if l.relayed() => Some(family_of(l.local).to_string()),
                _ => y_family,
            };
            for (mono, fam) in [(x, x_family.clone()), (y, y_family)] {
                let iface = self.interface(call.monologues[mono].interface.as_deref(), fam.as_deref())?.clone();
                let legs = &call.monologues[mono].legs;
                let existing = legs.get(i).cloned();
                let keep = existing
                    .as_ref()
                    .is_some_and(|l| l.local == iface.local && l.relayed() == relay_it && l.media_type == m.m.media);
                let leg = if keep {
                    existing.unwrap()
                } else {
                    if let Some(old) = existing.filter(|l| l.relayed()) {
                        self.release(old.local, old.port);
                    }
                    let port = if relay_it { self.allocate(iface.local, call.affinity)? } else { 0 };
                    Leg {
                        media_type: m.m.media.clone(),
                        local: iface.local,
                        advertised: iface.advertised,
                        port,
                        peer: None,
                        peer_rtcp: None,
                        mux: false,
                        mux_forced: Vec::new(),
                        plain_udp: !m.m.is_rtp(),
                        clock_rate,
                        reset_latch: false,
                        rejected: false,
                        srtp_in: None,
                        srtp_out: None,
                        proto: m.m.proto.clone(),
                        sdes_offered: Vec::new(),
                        sdes_relay_offer: Vec::new(),
                    }
                };
                let legs = &mut call.monologues[mono].legs;
                if legs.len() <= i {
                    legs.push(leg);
                } else {
                    legs[i] = leg;
                }
            }
            {
                let latched = self.dp.counters(call.monologues[x].legs[i].rtp()).and_then(|c| c.latched_peer);
                let leg = &mut call.monologues[x].legs[i];
                let new_peer = if hold { None } else { peer };
                // only a new address resets the latch: an answer or re-offer that repeats
                // the address, or names the one already latched, keeps it
                if leg.peer != new_peer && (new_peer.is_none() || new_peer != latched) {
                    leg.reset_latch = true;
                }
                leg.peer = new_peer;
                leg.peer_rtcp = if hold { None } else { peer_rtcp };
                leg.clock_rate = clock_rate;
                leg.rejected = m.m.port == 0;
                if is_answer {
                    // the answerer accepted mux only if we offered it
                    leg.mux = sender_mux;
                } else {
                    leg.mux = sender_mux && !flags.rtcp_mux_has("reject");
                    let forced = ["accept", "require", "demux"].iter().any(|f| flags.rtcp_mux_has(f));
                    let branch = flags.via_branch.clone().unwrap_or_default();
                    leg.mux_forced.retain(|(b, _)| *b != branch);
                    if leg.mux_forced.len() >= 8 {
                        leg.mux_forced.remove(0);
                    }
                    leg.mux_forced.push((branch, forced));
                }
            }
            if is_answer {
                call.monologues[y].legs[i].rejected |= m.m.port == 0;
            } else {
                call.monologues[y].legs[i].rejected = false;
            }
            // payload types for the recipient
            let mut fmts = m.m.fmts.clone();
            if m.m.is_rtp() {
                if !is_answer {
                    let offered = strip_codecs(m, &fmts, flags);
                    let store = &mut call.monologues[x].offered_fmts;
                    if store.len() <= i {
                        store.resize(i + 1, Vec::new());
                    }
                    store[i] = fmts.clone();
                    fmts = offered;
                } else {
                    let offered = call.monologues[y].offered_fmts.get(i).cloned().unwrap_or_default();
                    if !offered.is_empty() {
                        let filtered: Vec<String> = fmts.iter().filter(|f| offered.contains(f)).cloned().collect();
                        fmts = if filtered.is_empty() { vec![offered[0].clone()] } else { filtered };
                    }
                }
            }
            let mux_out = if is_answer {
                // rtpengine: the answer goes with the answerer's choice unless the offer
                // asked to accept (or require) the offerer's mux
                let offerer = &mut call.monologues[y].legs[i];
                let branch = flags.via_branch.as_deref().unwrap_or("");
                let forced = offerer
                    .mux_forced
                    .iter()
                    .rev()
                    .find(|(b, _)| b == branch)
                    .or(offerer.mux_forced.last())
                    .is_some_and(|(_, f)| *f);
                offerer.mux = offerer.mux && (forced || sender_mux);
                offerer.mux
            } else {
                (sender_mux && !flags.rtcp_mux_has("demux"))
                    || flags.rtcp_mux_has("offer")
                    || flags.rtcp_mux_has("require")
            };
            let (proto, crypto) = if m.m.is_rtp() && m.m.port != 0 {
                self.negotiate_sdes(call, m, flags, x, y, i, is_answer)?
            } else {
                (None, None)
            };
            outs.push(MediaOut { leg: Some(call.monologues[y].legs[i].clone()), fmts, proto, mux: mux_out, crypto });
        }
        // media sections dropped by a re-offer
        let n = sdp.media.len();
        for mono in [x, y] {
            while call.monologues[mono].legs.len() > n {
                let l = call.monologues[mono].legs.pop().unwrap();
                if l.relayed() {
                    self.release(l.local, l.port);
                }
            }
        }

        // o= and s= (replace flags)
        let first_adv = outs.iter().filter_map(|o| o.leg.as_ref()).find(|l| l.relayed()).map(|l| l.advertised);
        let session = self.session_out(&mut call.monologues[x], sdp, flags, first_adv);
        Ok((rewrite(sdp, &session, &outs), x))
    }

    /// Where the sender of media section `m` receives RTP and RTCP according to its SDP,
    /// checked against the media address policy: an address media may not go to is
    /// refused with an error naming it. Ignored as rtpengine ignores them (no address:
    /// the relay latches from packets): c=0.0.0.0 / :: (hold), port 0 (a rejected
    /// stream), a c= that is not an IP address, and an a=rtcp whose port is 0 or whose
    /// address is unspecified or not an IP address (the RTP address and port + 1 are
    /// used). Sections the relay does not relay are not checked: nothing is sent there.
    fn signalled_peers(
        &self,
        m: &crate::sdp::Media,
        conn: Option<&crate::sdp::Connection>,
        is_answer: bool,
        relay_it: bool,
    ) -> Result<(Option<SocketAddr>, Option<SocketAddr>), String> {
        let Some(ip) = conn.and_then(|c| c.ip()).filter(|ip| !ip.is_unspecified()) else {
            return Ok((None, None));
        };
        if m.m.port == 0 {
            return Ok((None, None));
        }
        let peer = SocketAddr::new(ip, m.m.port);
        // a=rtcp:<port> [IN IP4 <addr>]
        let mut rtcp_attr = m.attr("rtcp").unwrap_or("").split_whitespace();
        let rtcp_port = rtcp_attr.next().and_then(|p| p.parse::<u16>().ok()).filter(|&p| p != 0);
        let rtcp_ip = match (rtcp_attr.next(), rtcp_attr.next(), rtcp_attr.next()) {
            (Some(net), Some(_), Some(a)) if net.eq_ignore_ascii_case("IN") => {
                a.parse::<IpAddr>().ok().filter(|a| !a.is_unspecified())
            }
            _ => None,
        };
        let peer_rtcp = if m.has_attr("rtcp-mux") && is_answer {
            Some(peer)
        } else {
            match rtcp_port {
                Some(p) => Some(SocketAddr::new(rtcp_ip.unwrap_or(ip), p)),
                // RTP port + 1; none past 65535
                None => m.m.port.checked_add(1).map(|p| SocketAddr::new(ip, p)),
            }
        };
        if relay_it {
            let policy = &self.cfg.media_policy;
            policy.check(peer).map_err(|d| format!("media address {peer} refused: {d}"))?;
            if let Some(r) = peer_rtcp {
                policy.check(r).map_err(|d| format!("media address {r} refused: {d} (a=rtcp)"))?;
            }
        }
        Ok((Some(peer), peer_rtcp))
    }

    /// SDES for media section `i` of an SDP from `x` to `y`: updates the legs' keys and
    /// returns the recipient's protocol (if it differs) and a=crypto lines.
    #[allow(clippy::too_many_arguments)]
    fn negotiate_sdes(
        &self,
        call: &mut Call,
        m: &crate::sdp::Media,
        flags: &Flags,
        x: usize,
        y: usize,
        i: usize,
        is_answer: bool,
    ) -> Result<(Option<String>, Option<Vec<String>>), String> {
        let savp = |p: &str| p.to_ascii_uppercase().contains("SAVP");
        let fmt = |c: &Crypto| sdes::format(c, flags.sdes_pad, flags.sdes_lifetime);
        let parse_all = || -> Result<Vec<Crypto>, String> {
            let mut ok = Vec::new();
            let mut last_err = None;
            for l in m.lines.iter().filter(|l| l.starts_with("a=crypto:")) {
                match sdes::parse(l) {
                    Ok(c) => ok.push(c),
                    Err(e) => last_err = Some(e),
                }
            }
            if ok.is_empty() {
                return Err(match last_err {
                    Some(e) => format!("no usable a=crypto line in {} media: {e}", m.m.proto),
                    None => format!("{} media without a=crypto line (DTLS-SRTP is not supported yet)", m.m.proto),
                });
            }
            Ok(ok)
        };
        let x_proto = m.m.proto.clone();
        call.monologues[x].legs[i].proto = x_proto.clone();
        if !is_answer {
            let y_proto = flags.transport_protocol.clone().unwrap_or_else(|| x_proto.clone());
            let offered = if savp(&x_proto) { parse_all()? } else { Vec::new() };
            call.monologues[x].legs[i].sdes_offered = offered.clone();
            let yl = &mut call.monologues[y].legs[i];
            yl.proto = y_proto.clone();
            if !savp(&y_proto) || flags.sdes_off {
                yl.sdes_relay_offer.clear();
                return Ok((flags.transport_protocol.clone(), Some(Vec::new())));
            }
            // the suites to offer: the offerer's first (same tags), then the others
            let allowed = |name: &str| {
                let n = flags::normalize(name);
                !flags.sdes_no.contains(&n) && (flags.sdes_only.is_empty() || flags.sdes_only.contains(&n))
            };
            let mut list: Vec<(u32, Suite)> = Vec::new();
            for c in &offered {
                if allowed(c.key.suite.name()) && !list.iter().any(|(_, s)| *s == c.key.suite) {
                    list.push((c.tag, c.key.suite));
                }
            }
            if !flags.sdes_nonew || offered.is_empty() {
                let mut tag = offered.iter().map(|c| c.tag).max().unwrap_or(0);
                for name in sdes::RTPENGINE_ORDER {
                    if !allowed(name) || offered.iter().any(|c| c.key.suite.name() == name) {
                        continue;
                    }
                    tag += 1;
                    if let Some(suite) = Suite::from_name(name) {
                        list.push((tag, suite));
                    }
                }
            }
            if list.is_empty() {
                return Err("SDES flags leave no SRTP suite to offer".into());
            }
            // a re-offer keeps the keys already offered for the same tag and suite
            let previous = std::mem::take(&mut yl.sdes_relay_offer);
            yl.sdes_relay_offer = list
                .into_iter()
                .map(|(tag, suite)| {
                    previous
                        .iter()
                        .find(|c| c.tag == tag && c.key.suite == suite)
                        .cloned()
                        .unwrap_or_else(|| Crypto { tag, key: sdes::generate(suite) })
                })
                .collect();
            let lines = yl.sdes_relay_offer.iter().map(fmt).collect();
            return Ok((flags.transport_protocol.clone(), Some(lines)));
        }
        // answer from x (answerer) back to y (offerer)
        let chosen = if savp(&x_proto) {
            let c = parse_all()?.remove(0);
            let xl = &mut call.monologues[x].legs[i];
            let ours =
                xl.sdes_relay_offer.iter().find(|o| o.tag == c.tag && o.key.suite == c.key.suite).cloned().ok_or_else(
                    || format!("the answer picks a=crypto tag {} ({}), which was not offered", c.tag, c.key.suite),
                )?;
            xl.srtp_in = Some(c.key.clone());
            xl.srtp_out = Some(ours.key);
            Some(c.key.suite)
        } else {
            let xl = &mut call.monologues[x].legs[i];
            xl.srtp_in = None;
            xl.srtp_out = None;
            None
        };
        let yl = &mut call.monologues[y].legs[i];
        let y_proto = yl.proto.clone();
        let proto = (y_proto != x_proto).then(|| y_proto.clone());
        if !savp(&y_proto) {
            yl.srtp_in = None;
            yl.srtp_out = None;
            return Ok((proto, Some(Vec::new())));
        }
        let pick = yl
            .sdes_offered
            .iter()
            .find(|o| Some(&o.key.suite) == chosen.as_ref())
            .or_else(|| yl.sdes_offered.first())
            .cloned()
            .ok_or("the offer had no usable a=crypto line")?;
        let out_key = match &yl.srtp_out {
            Some(k) if k.suite == pick.key.suite => k.clone(),
            _ => sdes::generate(pick.key.suite),
        };
        yl.srtp_in = Some(pick.key.clone());
        yl.srtp_out = Some(out_key.clone());
        Ok((proto, Some(vec![fmt(&Crypto { tag: pick.tag, key: out_key })])))
    }

    fn session_out(&self, mono: &mut Monologue, sdp: &Sdp, flags: &Flags, relay_addr: Option<IpAddr>) -> SessionOut {
        let mut out = SessionOut {
            replace_zero_address: flags.replace_zero_address,
            media_address: flags.media_address,
            ..Default::default()
        };
        let o_line = sdp.session.iter().find(|l| l.starts_with("o=")).cloned().unwrap_or_default();
        let parts: Vec<&str> = o_line.strip_prefix("o=").unwrap_or_default().split(' ').collect();
        let any_replace =
            flags.replace_origin || flags.replace_username || flags.replace_sdp_version || flags.replace_session_name;
        let body = sdp.body_without_origin();
        let s_line = sdp.session.iter().find(|l| l.starts_with("s=")).cloned();
        if mono.origin.is_none() && parts.len() >= 6 {
            mono.origin = Some(OriginState {
                username: parts[0].to_string(),
                session_id: parts[1].to_string(),
                version: parts[2].parse().unwrap_or(0),
                session_name: s_line.clone(),
                last_body: body.clone(),
            });
        }
        let Some(st) = mono.origin.as_mut() else {
            return out;
        };
        if flags.replace_sdp_version && st.last_body != body {
            st.version = st.version.wrapping_add(1);
        }
        st.last_body = body;
        if !any_replace || parts.len() < 6 {
            return out;
        }
        let user = if flags.replace_username { st.username.clone() } else { parts[0].to_string() };
        let version = if flags.replace_sdp_version { st.version.to_string() } else { parts[2].to_string() };
        let (fam, addr) = match (flags.replace_origin, flags.media_address.or(relay_addr)) {
            (true, Some(a)) => (family_of(a).to_string(), a.to_string()),
            _ => (parts[4].to_string(), parts[5].to_string()),
        };
        out.origin_line = Some(format!("o={} {} {} {} {} {}", user, parts[1], version, parts[3], fam, addr));
        if flags.replace_session_name {
            out.session_name_line = st.session_name.clone();
        }
        out
    }

    fn delete(&mut self, req: &Value, now_ms: u64) -> NgResult {
        let call_id = req.get("call-id").and_then(Value::as_str).ok_or("no call-id in request")?.to_string();
        let flags = Flags::from_request(req)?;
        let call = self.calls.get_mut(&call_id).ok_or_else(|| format!("Unknown call-id {call_id:?}"))?;
        let from_tag = req.get("from-tag").and_then(Value::as_str).filter(|t| !t.is_empty());
        if let Some(ft) = from_tag {
            if call.find(ft).is_none() {
                return Err(format!("Unknown from-tag {ft:?}"));
            }
        }
        let totals = self.totals_of(&call_id);
        let delay = flags.delete_delay.unwrap_or(self.cfg.delete_delay);
        if delay == 0 {
            self.destroy(&call_id, EndReason::Deleted);
        } else if let Some(call) = self.calls.get_mut(&call_id) {
            call.delete_at_ms = Some(now_ms.saturating_add(delay.saturating_mul(1000)));
        }
        let mut v = ok();
        v.insert("totals", totals);
        Ok(v)
    }

    /// Tear a call down now (operator request through the API).
    pub fn terminate(&mut self, call_id: &str) -> bool {
        self.destroy(call_id, EndReason::Terminated)
    }

    fn destroy(&mut self, call_id: &str, reason: EndReason) -> bool {
        let Some(call) = self.calls.remove(call_id) else {
            return false;
        };
        for l in call.monologues.iter().flat_map(|m| m.legs.iter()).filter(|l| l.relayed()) {
            self.release(l.local, l.port);
        }
        *self.stats.ended.entry(reason.as_str().to_string()).or_default() += 1;
        log::info!("call {call_id} ended: {}", reason.as_str());
        true
    }

    /// Timers: delete-delay expiry and media timeouts. Returns the calls ended.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(String, EndReason)> {
        let mut ended = Vec::new();
        for (id, call) in &self.calls {
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

    fn counters_of(&self, l: &Leg) -> (FlowCounters, FlowCounters) {
        (self.dp.counters(l.rtp()).unwrap_or_default(), self.dp.counters(l.rtcp()).unwrap_or_default())
    }

    fn totals_of(&self, call_id: &str) -> Value {
        let mut rtp = [0u64; 3];
        let mut rtcp = [0u64; 3];
        if let Some(call) = self.calls.get(call_id) {
            for l in call.monologues.iter().flat_map(|m| m.legs.iter()).filter(|l| l.relayed()) {
                let (a, b) = self.counters_of(l);
                rtp[0] += a.packets - a.rtcp_packets;
                rtp[1] += a.bytes - a.rtcp_bytes;
                rtp[2] += a.dropped;
                rtcp[0] += b.packets + a.rtcp_packets;
                rtcp[1] += b.bytes + a.rtcp_bytes;
                rtcp[2] += b.dropped;
            }
        }
        let block = |x: [u64; 3]| {
            let mut d = Value::dict();
            d.insert("packets", x[0].into());
            d.insert("bytes", x[1].into());
            d.insert("errors", x[2].into());
            d
        };
        let mut t = Value::dict();
        t.insert("RTP", block(rtp));
        t.insert("RTCP", block(rtcp));
        t
    }

    fn query(&mut self, req: &Value, now_ms: u64) -> NgResult {
        let call_id = req.get("call-id").and_then(Value::as_str).ok_or("no call-id in request")?.to_string();
        let call = self.calls.get(&call_id).ok_or_else(|| format!("Unknown call-id {call_id:?}"))?;
        let mut v = ok();
        v.insert("created", call.created_unix.into());
        v.insert("last signal", call.last_signal_unix.into());
        let mut tags = Value::dict();
        for m in &call.monologues {
            if m.tag.is_empty() {
                continue;
            }
            let mut t = Value::dict();
            t.insert("tag", m.tag.as_str().into());
            if let Some(l) = &m.label {
                t.insert("label", l.as_str().into());
            }
            t.insert("created", m.created_unix.into());
            if let Some(c) = m.counterpart {
                t.insert("in dialogue with", call.monologues[c].tag.as_str().into());
            }
            let mut medias = Vec::new();
            for (i, l) in m.legs.iter().enumerate() {
                let mut md = Value::dict();
                md.insert("index", (i as u64 + 1).into());
                md.insert("type", l.media_type.as_str().into());
                let mut streams = Vec::new();
                if l.relayed() {
                    let (a, b) = self.counters_of(l);
                    for (sock, c, peer) in [(l.rtp(), a, l.peer), (l.rtcp(), b, l.peer_rtcp)] {
                        let mut s = Value::dict();
                        s.insert("local port", (sock.port() as u64).into());
                        s.insert("local address", sock.ip().to_string().into());
                        let ep = c.latched_peer.or(peer);
                        let mut e = Value::dict();
                        if let Some(ep) = ep {
                            e.insert("family", if ep.is_ipv4() { "IPv4" } else { "IPv6" }.into());
                            e.insert("address", ep.ip().to_string().into());
                            e.insert("port", (ep.port() as u64).into());
                        }
                        s.insert("endpoint", e);
                        let age =
                            if c.last_packet_ms == 0 { 0 } else { now_ms.saturating_sub(c.last_packet_ms) / 1000 };
                        s.insert("last packet", age.into());
                        let mut st = Value::dict();
                        st.insert("packets", c.packets.into());
                        st.insert("bytes", c.bytes.into());
                        st.insert("errors", c.dropped.into());
                        s.insert("stats", st);
                        s.insert("SSRC", (c.ssrc as u64).into());
                        streams.push(s);
                    }
                }
                md.insert("streams", Value::List(streams));
                medias.push(md);
            }
            t.insert("medias", Value::List(medias));
            tags.insert(&m.tag, t);
        }
        v.insert("tags", tags);
        v.insert("totals", self.totals_of(&call_id));
        Ok(v)
    }

    /// Call-ids, sorted: at most `limit` (default 32, at most [`LIST_MAX`]) and never a
    /// reply larger than [`LIST_MAX_BYTES`] (a `warning` says it was cut).
    fn list(&self, req: &Value) -> Value {
        let asked = req.get("limit").and_then(Value::as_int).unwrap_or(32).clamp(0, LIST_MAX as i64) as usize;
        let mut ids: Vec<&String> = self.calls.keys().collect();
        ids.sort();
        let mut out = Vec::new();
        let mut bytes = 64;
        for id in ids.iter().take(asked) {
            let cost = id.len() + 8;
            if bytes + cost > LIST_MAX_BYTES {
                break;
            }
            bytes += cost;
            out.push(id.as_str().into());
        }
        let mut v = ok();
        if out.len() < ids.len().min(asked) || (asked == LIST_MAX && ids.len() > LIST_MAX) {
            v.insert("warning", format!("list truncated to {} of {} calls", out.len(), ids.len()).into());
        }
        v.insert("calls", Value::List(out));
        v
    }

    fn statistics(&self) -> Value {
        let mut cur = Value::dict();
        cur.insert("sessionsown", (self.calls.len() as u64).into());
        cur.insert("sessionsforeign", 0u64.into());
        cur.insert("sessionstotal", (self.calls.len() as u64).into());
        cur.insert("portsused", (self.ports_in_use() as u64).into());
        let mut tot = Value::dict();
        tot.insert("managedsessions", self.stats.calls_created.into());
        for (k, n) in &self.stats.ended {
            tot.insert(&format!("ended-{k}"), (*n).into());
        }
        let mut s = Value::dict();
        s.insert("currentstatistics", cur);
        s.insert("totalstatistics", tot);
        let mut v = ok();
        v.insert("statistics", s);
        v
    }

    /// Per-flow view for the HTTP API and relayctl (one traversal: `http::Snapshot`).
    pub fn flows(&self, call_filter: Option<&str>, now_ms: u64) -> Vec<FlowView> {
        crate::http::Snapshot::take(self, call_filter, now_ms).flows(self.dp.as_ref())
    }

    pub fn call_summaries(&self, now_ms: u64) -> Vec<CallSummary> {
        crate::http::Snapshot::take(self, None, now_ms).calls(self.dp.as_ref())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    pub call_id: String,
    pub tag: String,
    pub media: usize,
    pub kind: FlowKind,
    pub local: SocketAddr,
    pub advertised: SocketAddr,
    pub signalled_peer: Option<SocketAddr>,
    pub state: &'static str,
    pub age_s: u64,
    pub idle_ms: Option<u64>,
    pub counters: FlowCounters,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub call_id: String,
    pub tags: Vec<String>,
    pub labels: Vec<String>,
    pub created_unix: u64,
    pub age_s: u64,
    pub media: usize,
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub deleting: bool,
}

/// Payload types left after `codec-strip` / `codec-mask` / `except`. Masking without
/// transcoding is the same as stripping towards the recipient. Stripping every codec
/// keeps the section as it was (rtpengine's behaviour without allow-no-codec-media).
fn strip_codecs(m: &crate::sdp::Media, fmts: &[String], flags: &Flags) -> Vec<String> {
    if flags.codec_strip.is_empty() && flags.codec_mask.is_empty() {
        return fmts.to_vec();
    }
    let name_of = |pt: &str| m.rtpmap(pt).map(|(n, _)| n.to_ascii_lowercase()).unwrap_or_default();
    let matches = |list: &[String], pt: &str| {
        let n = name_of(pt);
        list.iter().any(|c| {
            let c = c.to_ascii_lowercase();
            c == "all" || c == n || c == pt
        })
    };
    let kept: Vec<String> = fmts
        .iter()
        .filter(|pt| {
            let remove = matches(&flags.codec_strip, pt) || matches(&flags.codec_mask, pt);
            !remove
                || (matches(&flags.codec_except, pt)
                    && !flags.codec_except.iter().any(|c| c.eq_ignore_ascii_case("all")))
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        fmts.to_vec()
    } else {
        kept
    }
}
