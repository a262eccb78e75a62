//! ICE in the SDP, with rtpengine's semantics (daemon/call.c `__ice_offer`, daemon/ice.c,
//! daemon/sdp.c `insert_candidates`): which side of a media section the relay speaks ICE
//! to, the relay's credentials and host candidates, ICE restarts, ICE-lite and trickle
//! ICE, and the `ICE=` / `ICE-lite=` / `trickle-ICE` / `ICE-reject` flags.
//!
//! The relay is an ICE-lite agent on every socket it advertises as a candidate (the data
//! plane answers the checks, `rules::webrtc::IceRule`); this module only decides what the
//! SDP says and what the rules carry. State per leg is [`LegIce`], rtpengine's per-media
//! ICE flags: `enabled` is its MEDIA_FLAG_ICE ("the relay speaks ICE to this party"), which
//! follows the party's own SDP whenever that party sends one and the flags otherwise.
//!
//! Passthrough: with `ICE=optional` (or `force-relay`) and ICE on both sides, rtpengine
//! does not terminate ICE; the peers' ICE attributes go through and the relay adds its
//! own candidates below the lowest-priority host candidate of the sender. The same here.

use std::fmt;
use std::net::IpAddr;

use rules::webrtc::IceRule;

use crate::call::{Call, Leg};
use crate::error::NgError;
use crate::interface::Interface;
use crate::ng::flags::{normalize, Flags};
use crate::offer_answer::Ports;
use crate::sdp::{attr_in, attr_name, Sdp};

/// Relay ufrag length (rtpengine: 8 characters).
pub const UFRAG_LEN: usize = 8;
/// Relay pwd length (rtpengine: 26 characters, above RFC 8445's 22).
pub const PWD_LEN: usize = 26;
/// Candidate foundation length (rtpengine: 16 characters per local interface).
pub const FOUNDATION_LEN: usize = 16;
/// Longest peer ufrag/pwd accepted (RFC 8839 §5.4: at most 256 characters).
pub const MAX_CREDENTIAL_LEN: usize = 256;
/// Peer candidates looked at per media section (rtpengine's MAX_ICE_CANDIDATES); the
/// rest are ignored, as rtpengine ignores them.
pub const MAX_CANDIDATES: usize = 100;

/// rtpengine's `ice_chars`: what the relay's credentials and foundations are made of.
const ICE_CHARS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The ICE attributes of a media section (and the session): the relay owns them.
pub const ICE_ATTRS: [&str; 8] = [
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "candidate",
    "remote-candidates",
    "end-of-candidates",
];

/// Whether an SDP line is an ICE attribute.
pub fn is_ice_line(line: &str) -> bool {
    attr_name(line).is_some_and(|n| ICE_ATTRS.contains(&n))
}

/// The ng `ICE` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IceOption {
    /// No key, or `default`: ICE towards the recipient if the sender used ICE.
    #[default]
    Default,
    /// `remove`: no ICE towards the recipient.
    Remove,
    /// `force`: ICE towards the recipient, terminated by the relay.
    Force,
    /// `optional`: ICE towards the recipient; passthrough when both sides use ICE.
    Optional,
    /// `force-relay`: as optional, the relay's candidates of type relay.
    ForceRelay,
}

/// The ng `ICE-lite` key: on which side the relay writes `a=ice-lite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceLite {
    Off,
    /// Towards the recipient of the offer.
    Forward,
    /// Towards the offerer.
    Backward,
    Both,
}

/// The ICE part of a request's flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IceFlags {
    pub option: IceOption,
    pub lite: Option<IceLite>,
    /// `trickle-ICE` (or `ICE=trickle`): offer trickle ICE to the recipient.
    pub trickle: bool,
    /// `ICE-reject`: the sender's ICE is not answered.
    pub reject: bool,
}

impl IceFlags {
    /// From the request's flags. Unknown values are ignored, as rtpengine ignores them
    /// (it logs a warning).
    pub fn from_flags(f: &Flags) -> IceFlags {
        let mut out = IceFlags { trickle: f.trickle_ice, reject: f.ice_reject, ..Default::default() };
        if let Some(v) = f.ice.as_deref() {
            match normalize(v).as_str() {
                "remove" => out.option = IceOption::Remove,
                "force" => out.option = IceOption::Force,
                "default" => out.option = IceOption::Default,
                "optional" => out.option = IceOption::Optional,
                "force-relay" => out.option = IceOption::ForceRelay,
                "trickle" => out.trickle = true,
                "lite-no" | "lite-off" | "lite-none" | "no-lite" => out.lite = Some(IceLite::Off),
                "lite" | "lite-fw" | "lite-fwd" | "lite-forward" | "lite-offer" => out.lite = Some(IceLite::Forward),
                "lite-backward" | "lite-backwards" | "lite-reverse" | "lite-answer" | "lite-back" | "lite-bkw"
                | "lite-bk" => out.lite = Some(IceLite::Backward),
                "lite-both" => out.lite = Some(IceLite::Both),
                other => log::debug!("unknown ICE value {other:?} ignored"),
            }
        }
        if let Some(v) = f.ice_lite.as_deref() {
            out.lite = match normalize(v).as_str() {
                "off" | "none" | "no" => Some(IceLite::Off),
                "forward" | "offer" | "fwd" | "fw" => Some(IceLite::Forward),
                "backward" | "backwards" | "reverse" | "answer" | "back" | "bkw" | "bk" => Some(IceLite::Backward),
                "both" => Some(IceLite::Both),
                other => {
                    log::debug!("unknown ICE-lite value {other:?} ignored");
                    out.lite
                }
            };
        }
        out
    }
}

/// A peer's ICE credential that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IceSdpError {
    /// Longer than [`MAX_CREDENTIAL_LEN`] (the attribute and its length).
    TooLong { attr: &'static str, len: usize },
    /// A character that cannot appear in a STUN USERNAME built from it (space, control
    /// character, ':' or non-ASCII).
    BadCharacter { attr: &'static str },
}

impl fmt::Display for IceSdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IceSdpError::TooLong { attr, len } => {
                write!(f, "a={attr} of {len} characters (at most {MAX_CREDENTIAL_LEN})")
            }
            IceSdpError::BadCharacter { attr } => write!(f, "a={attr} with a character not allowed in ICE credentials"),
        }
    }
}

impl std::error::Error for IceSdpError {}

/// Candidate types (RFC 8445 §5.1.1), with rtpengine's type preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateType {
    Host,
    Srflx,
    Prflx,
    Relay,
    Unknown,
}

impl CandidateType {
    fn parse(s: &str) -> CandidateType {
        match s {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::Srflx,
            "prflx" => CandidateType::Prflx,
            "relay" => CandidateType::Relay,
            _ => CandidateType::Unknown,
        }
    }

    /// rtpengine's `ice_type_preferences`.
    pub fn preference(self) -> u32 {
        match self {
            CandidateType::Host => 126,
            CandidateType::Srflx => 100,
            CandidateType::Prflx => 110,
            CandidateType::Relay | CandidateType::Unknown => 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
            CandidateType::Unknown => "unknown",
        }
    }
}

/// What of a peer's `a=candidate` the relay uses (the priorities it places its own
/// candidates below in passthrough).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub component: u32,
    pub priority: u32,
    pub typ: CandidateType,
}

impl Candidate {
    /// `foundation component transport priority address port typ type ...`; None when
    /// malformed (ignored, as rtpengine ignores a candidate it cannot parse).
    pub fn parse(value: &str) -> Option<Candidate> {
        let mut f = value.split_ascii_whitespace();
        let _foundation = f.next().filter(|s| s.len() <= 32)?;
        let component: u32 = f.next()?.parse().ok().filter(|c| (1..=256).contains(c))?;
        let _transport = f.next()?;
        let priority: u32 = f.next()?.parse().ok()?;
        let _addr = f.next()?;
        let _port: u16 = f.next()?.parse().ok()?;
        if f.next()? != "typ" {
            return None;
        }
        let typ = CandidateType::parse(f.next()?);
        Some(Candidate { component, priority, typ })
    }
}

/// The ICE a party's SDP shows for one media section (media-level attributes, else
/// session-level ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIce {
    /// `a=ice-ufrag`: the party speaks ICE (rtpengine's test).
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    /// `a=ice-options:trickle`, or no options and the trickle placeholder address (port 9,
    /// unspecified address).
    pub trickle: bool,
    pub lite: bool,
    pub end_of_candidates: bool,
    /// At most [`MAX_CANDIDATES`], malformed ones left out.
    pub candidates: Vec<Candidate>,
}

impl PeerIce {
    pub fn uses_ice(&self) -> bool {
        self.ufrag.is_some()
    }
}

/// An ICE credential of the peer's SDP, checked: it ends up in STUN USERNAME and as a
/// MESSAGE-INTEGRITY key, so it must be bounded and must not contain the ':' separator.
fn credential(attr: &'static str, v: &str) -> Result<String, IceSdpError> {
    let v = v.trim();
    if v.len() > MAX_CREDENTIAL_LEN {
        return Err(IceSdpError::TooLong { attr, len: v.len() });
    }
    if !v.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(IceSdpError::BadCharacter { attr });
    }
    Ok(v.to_string())
}

/// The peer's ICE in media section `i` of `sdp`.
pub fn peer_ice(sdp: &Sdp, i: usize) -> Result<PeerIce, IceSdpError> {
    let Some(m) = sdp.media.get(i) else {
        return Ok(PeerIce::default());
    };
    let get = |name: &str| attr_in(&m.lines, name).or_else(|| attr_in(&sdp.session, name));
    let Some(ufrag) = get("ice-ufrag") else {
        return Ok(PeerIce::default());
    };
    let ufrag = credential("ice-ufrag", ufrag)?;
    let pwd = get("ice-pwd").map(|p| credential("ice-pwd", p)).transpose()?;
    let trickle_addr = m.m.port == 9 && sdp.effective_connection(i).is_some_and(|c| c.is_zero());
    let trickle = match get("ice-options") {
        Some(o) => o.split_ascii_whitespace().any(|t| t == "trickle"),
        None => trickle_addr,
    };
    let candidates = m
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .take(MAX_CANDIDATES)
        .filter_map(Candidate::parse)
        .collect();
    Ok(PeerIce {
        ufrag: Some(ufrag),
        pwd,
        trickle,
        lite: get("ice-lite").is_some(),
        end_of_candidates: get("end-of-candidates").is_some(),
        candidates,
    })
}

/// ICE short-term credentials. The password is a key: never in Debug output.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub ufrag: String,
    pub pwd: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({})", self.ufrag)
    }
}

fn random_ice_string(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..len).map(|_| ICE_CHARS[rng.gen_range(0..ICE_CHARS.len())] as char).collect()
}

impl Credentials {
    /// Fresh relay credentials (rtpengine's lengths and alphabet).
    pub fn generate() -> Credentials {
        Credentials { ufrag: random_ice_string(UFRAG_LEN), pwd: random_ice_string(PWD_LEN) }
    }
}

/// A relay socket pair (RTP port, RTCP = port + 1) a leg advertises as a candidate
/// besides its own: one per other address of the leg's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelaySocket {
    pub local: IpAddr,
    pub advertised: IpAddr,
    pub port: u16,
}

/// rtpengine's per-media ICE state, for one leg (the relay side facing one party).
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LegIce {
    /// The relay speaks ICE to this party (rtpengine's MEDIA_FLAG_ICE).
    pub enabled: bool,
    /// Both parties do ICE end to end; the relay only adds low-priority candidates.
    pub passthrough: bool,
    /// The relay writes `a=ice-lite` towards this party.
    pub lite_self: bool,
    /// The party said `a=ice-lite`.
    pub peer_lite: bool,
    /// Trickle ICE towards this party (its SDP offered it, or the `trickle-ICE` flag).
    pub trickle: bool,
    /// This party has sent an SDP (rtpengine's MEDIA_FLAG_INITIALIZED).
    pub initialized: bool,
    /// The relay's agent on this leg: its credentials (rtpengine's ice_agent). Kept
    /// across re-offers, replaced on an ICE restart.
    pub local: Option<Credentials>,
    /// The party's credentials from its latest SDP that had them.
    pub remote_ufrag: Option<String>,
    pub remote_pwd: Option<String>,
    /// Relay sockets on the interface's other addresses, advertised as candidates.
    pub extra: Vec<RelaySocket>,
}

impl fmt::Debug for LegIce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the peer's password is a key: never in Debug output
        f.debug_struct("LegIce")
            .field("enabled", &self.enabled)
            .field("passthrough", &self.passthrough)
            .field("lite_self", &self.lite_self)
            .field("trickle", &self.trickle)
            .field("initialized", &self.initialized)
            .field("local", &self.local)
            .field("remote_ufrag", &self.remote_ufrag)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl LegIce {
    /// The party changed its credentials (rtpengine's `ice_is_restart`).
    pub fn is_restart(&self, peer: &PeerIce) -> bool {
        let differs = |old: &Option<String>, new: &Option<String>| matches!((old, new), (Some(o), Some(n)) if o != n);
        differs(&self.remote_ufrag, &peer.ufrag) || differs(&self.remote_pwd, &peer.pwd)
    }

    /// The data plane's ICE rule for this leg's sockets: where the relay terminates ICE.
    pub fn rule(&self) -> Option<IceRule> {
        if !self.enabled || self.passthrough {
            return None;
        }
        let local = self.local.as_ref()?;
        Some(IceRule {
            local_ufrag: local.ufrag.clone(),
            local_pwd: local.pwd.clone(),
            remote_ufrag: self.remote_ufrag.clone(),
            remote_pwd: self.remote_pwd.clone(),
        })
    }

    /// The relay advertises candidates towards this party.
    pub fn writes_candidates(&self) -> bool {
        self.enabled && (self.passthrough || self.local.is_some())
    }

    /// The same state for new sockets under the same party: a new agent (rtpengine
    /// restarts ICE when a leg's sockets change), no candidate sockets yet.
    pub fn restarted(&self) -> LegIce {
        LegIce { local: self.local.as_ref().map(|_| Credentials::generate()), extra: Vec::new(), ..self.clone() }
    }

    /// rtpengine's `__ice_init`: an agent for a leg that speaks ICE, none in passthrough.
    fn init_agent(&mut self) {
        if self.passthrough {
            self.local = None;
        } else if self.enabled && self.local.is_none() {
            self.local = Some(Credentials::generate());
        }
    }
}

/// One offer or answer's ICE for a media section: `sender` is the leg facing the party
/// whose SDP this is, `recipient` the leg facing the party that receives the rewrite.
/// rtpengine's `media_update_flags` + `__ice_offer` + `__ice_init` + `ice_update`.
pub fn exchange(
    flags: &IceFlags,
    sender: &mut LegIce,
    recipient: &mut LegIce,
    peer: &PeerIce,
    port_nonzero: bool,
    is_answer: bool,
) {
    // what the sender advertises (not for a rejected stream)
    if port_nonzero {
        sender.enabled = peer.uses_ice();
        sender.trickle = peer.trickle;
        sender.peer_lite = peer.lite;
    }
    let restart = sender.local.is_some() && sender.is_restart(peer);
    ice_offer(flags, recipient, sender, is_answer);
    sender.initialized = true;
    sender.init_agent();
    recipient.init_agent();
    if restart {
        if is_answer {
            log::debug!("ICE restart in an answer: not allowed at this point, ignored");
        } else {
            sender.local = Some(Credentials::generate());
        }
    }
    if peer.ufrag.is_some() {
        sender.remote_ufrag = peer.ufrag.clone();
    }
    if peer.pwd.is_some() {
        sender.remote_pwd = peer.pwd.clone();
    }
}

/// rtpengine's `__ice_offer` (this = the recipient's leg, other = the sender's).
fn ice_offer(flags: &IceFlags, this: &mut LegIce, other: &mut LegIce, is_answer: bool) {
    // the default is to pass through the offering client's choice
    if !this.initialized {
        this.enabled = other.enabled;
    }
    match flags.option {
        IceOption::Remove => this.enabled = false,
        IceOption::Default => {}
        _ if !is_answer => this.enabled = true,
        _ => {}
    }
    if flags.reject {
        other.enabled = false;
    }
    if !matches!(flags.option, IceOption::Force | IceOption::Default) {
        // ICE on both sides and not forced: media may not pass through the relay at all
        if this.enabled && other.enabled {
            this.passthrough = true;
            other.passthrough = true;
            return;
        }
        // an answer rejecting ICE the relay only passed through: none towards the offerer
        if is_answer && !other.enabled && this.local.is_none() {
            this.enabled = false;
            return;
        }
    }
    if !is_answer {
        match flags.lite {
            Some(IceLite::Off) => (this.lite_self, other.lite_self) = (false, false),
            Some(IceLite::Forward) => (this.lite_self, other.lite_self) = (true, false),
            Some(IceLite::Backward) => (this.lite_self, other.lite_self) = (false, true),
            Some(IceLite::Both) => (this.lite_self, other.lite_self) = (true, true),
            None => {}
        }
        if flags.trickle {
            this.trickle = true;
        }
    }
}

/// The addresses of the interface named `name`, the leg's own first, then the others of
/// its family, then the rest (rtpengine's order: the local preference of a candidate is
/// its place in this list).
pub fn interface_addresses<'a>(interfaces: &'a [Interface], name: Option<&str>, leg: &Leg) -> Vec<&'a Interface> {
    let mut out: Vec<&Interface> =
        interfaces.iter().filter(|i| Some(i.name.as_str()) == name && i.local != leg.local).collect();
    out.sort_by_key(|i| i.local.is_ipv4() != leg.local.is_ipv4());
    out.dedup_by_key(|i| i.local);
    out
}

/// Bind (or release) the leg's sockets on the interface's other addresses: one pair per
/// address while the relay advertises candidates towards the party, none otherwise.
pub fn ensure_sockets(
    leg: &mut Leg,
    others: &[&Interface],
    ports: &mut dyn Ports,
    affinity: u64,
) -> Result<(), NgError> {
    let want = leg.relayed() && !leg.rejected && leg.ice.writes_candidates();
    let mut keep = Vec::new();
    for s in std::mem::take(&mut leg.ice.extra) {
        if want && others.iter().any(|i| i.local == s.local) {
            keep.push(s);
        } else {
            ports.release(s.local, s.port);
        }
    }
    leg.ice.extra = keep;
    if !want {
        return Ok(());
    }
    for i in others {
        if leg.ice.extra.iter().any(|s| s.local == i.local) {
            continue;
        }
        let port = ports.allocate(i.local, affinity)?;
        leg.ice.extra.push(RelaySocket { local: i.local, advertised: i.advertised, port });
    }
    // the interface's order, which is the candidates' local preference
    leg.ice.extra.sort_by_key(|s| others.iter().position(|i| i.local == s.local));
    Ok(())
}

/// The ICE lines of one media section towards the recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceOut {
    /// Passthrough: the sender's ICE attributes stay.
    pub keep_sender: bool,
    /// Lines the relay adds to the section.
    pub lines: Vec<String>,
    /// The relay writes `a=ice-lite` at session level.
    pub session_lite: bool,
}

/// rtpengine's `ice_priority_pref`, with its unsigned wrap-around (a local preference
/// above 65535 in passthrough gives the 4294967295 rtpengine writes).
pub fn priority(type_pref: u32, local_pref: u32, component: u32) -> u32 {
    (type_pref << 24) | (65535u32.wrapping_sub(local_pref) << 8) | 256u32.wrapping_sub(component)
}

/// rtpengine's `new_priority`: type and local preference just below the sender's
/// lowest-priority candidate of `typ` (component 1).
fn passthrough_preferences(source: &[Candidate], typ: CandidateType) -> (u32, u32) {
    let mut tpref = typ.preference();
    let mut lpref = 0u32;
    let mut prio = priority(tpref, lpref, 1);
    for c in source {
        if c.priority <= prio && c.typ == typ && c.component == 1 {
            tpref = (c.priority & 0xff00_0000) >> 24;
            lpref = 65535 - ((c.priority & 0x00ff_ff00) >> 8);
            if lpref > 0 {
                lpref -= 1;
            } else {
                tpref = tpref.saturating_sub(1);
                lpref = 65535;
            }
            prio = priority(tpref, lpref, 1);
        }
    }
    (tpref, lpref)
}

/// Deterministic per local address: rtpengine draws one foundation per local interface
/// at start-up; the same address keeps the same foundation here across calls.
pub fn foundation(local: IpAddr) -> String {
    let bytes = match local {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    // FNV-1a, then a 64-bit mix per character
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (0..FOUNDATION_LEN)
        .map(|_| {
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 29;
            ICE_CHARS[(h % ICE_CHARS.len() as u64) as usize] as char
        })
        .collect()
}

/// What the relay writes for `leg` (the recipient's): credentials, options, candidates
/// (the leg's own socket first, then the interface's other addresses; RTCP as component 2
/// unless muxed), as rtpengine writes them.
pub fn ice_out(leg: &Leg, mux: bool, media_address: Option<IpAddr>, source: &PeerIce, option: IceOption) -> IceOut {
    let ice = &leg.ice;
    if !leg.relayed() || !ice.writes_candidates() {
        return IceOut::default();
    }
    let mut lines = Vec::new();
    if !ice.passthrough {
        let Some(local) = &ice.local else {
            return IceOut::default();
        };
        lines.push(format!("a=ice-ufrag:{}", local.ufrag));
        lines.push(format!("a=ice-pwd:{}", local.pwd));
        if ice.trickle {
            lines.push("a=ice-options:trickle".into());
        }
    }
    let typ = if option == IceOption::ForceRelay { CandidateType::Relay } else { CandidateType::Host };
    let (tpref, first_lpref) =
        if ice.passthrough { passthrough_preferences(&source.candidates, typ) } else { (typ.preference(), 0) };
    let sockets: Vec<RelaySocket> =
        std::iter::once(RelaySocket { local: leg.local, advertised: leg.advertised, port: leg.port })
            .chain(ice.extra.iter().copied())
            .collect();
    let components: &[u32] = if mux { &[1] } else { &[1, 2] };
    for &component in components {
        for (k, s) in sockets.iter().enumerate() {
            let port = s.port.wrapping_add(component as u16 - 1);
            let addr = media_address.unwrap_or(s.advertised);
            let prio = priority(tpref, first_lpref.wrapping_add(k as u32), component);
            let mut l =
                format!("a=candidate:{} {component} UDP {prio} {addr} {port} typ {}", foundation(s.local), typ.name());
            if typ != CandidateType::Host {
                l += &format!(" raddr {} rport {port}", s.local);
            }
            lines.push(l);
        }
    }
    if ice.trickle && !ice.passthrough {
        lines.push("a=end-of-candidates".into());
    }
    IceOut { keep_sender: ice.passthrough, lines, session_lite: ice.lite_self }
}

/// One media section of an offer or answer, as offer/answer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    pub sdp: &'a Sdp,
    pub index: usize,
    /// Monologue whose SDP this is.
    pub sender: usize,
    /// Monologue that receives the rewritten SDP.
    pub recipient: usize,
    pub is_answer: bool,
    /// The rewrite offers or accepts rtcp-mux towards the recipient.
    pub mux: bool,
}

/// offer/answer's hook: the section's ICE state on both legs, their candidate sockets,
/// and the lines the recipient gets.
pub fn negotiate(
    call: &mut Call,
    interfaces: &[Interface],
    ports: &mut dyn Ports,
    flags: &Flags,
    s: Section<'_>,
) -> Result<IceOut, NgError> {
    let Section { sdp, index: i, sender: x, recipient: y, is_answer, mux } = s;
    let peer = peer_ice(sdp, i).map_err(|e| NgError::Ice(i, e))?;
    let ice_flags = IceFlags::from_flags(flags);
    let port_nonzero = sdp.media.get(i).is_some_and(|m| m.m.port != 0);
    let mut recipient = std::mem::take(&mut call.monologues[y].legs[i].ice);
    exchange(&ice_flags, &mut call.monologues[x].legs[i].ice, &mut recipient, &peer, port_nonzero, is_answer);
    call.monologues[y].legs[i].ice = recipient;
    for mono in [x, y] {
        let m = &mut call.monologues[mono];
        let others = interface_addresses(interfaces, m.interface.as_deref(), &m.legs[i]);
        ensure_sockets(&mut m.legs[i], &others, ports, call.affinity)?;
    }
    // no RTCP candidates where RTCP is surely muxed: an answer accepting it, an offer
    // requiring it or repeating what the recipient accepted before (an offer of mux may
    // still be refused: its RTCP port stays a candidate, as in rtpengine)
    let leg = &call.monologues[y].legs[i];
    let muxed = mux && (is_answer || flags.rtcp_mux_has("require") || leg.mux);
    Ok(ice_out(leg, muxed, flags.media_address, &peer, ice_flags.option))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::tests::leg as leg_at;

    fn sdp(extra_session: &str, extra_media: &str) -> Sdp {
        Sdp::parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{extra_session}\
             m=audio 2000 RTP/AVP 0\r\n{extra_media}"
        ))
        .unwrap()
    }

    const PEER: &str = "a=ice-ufrag:asbsdfds\r\na=ice-pwd:sfhwsrgyergws45ujhsrthsrhH\r\n\
        a=candidate:sfthqw45hdfgdfsb 1 UDP 2130706431 192.0.2.3 2002 typ host\r\n\
        a=candidate:ujksdfghfdfgdfsb 1 UDP 2130706175 ::1 2002 typ host\r\n\
        a=candidate:sfthqw45hdfgdfsb 2 UDP 2130706430 192.0.2.3 2003 typ host\r\n";

    #[test]
    fn flags_as_rtpengine_spells_them() {
        let f = Flags { ice: Some("force".into()), ice_lite: Some("backward".into()), ..Default::default() };
        let i = IceFlags::from_flags(&f);
        assert_eq!((i.option, i.lite, i.trickle), (IceOption::Force, Some(IceLite::Backward), false));
        let f = Flags { ice: Some("force_relay".into()), ..Default::default() };
        assert_eq!(IceFlags::from_flags(&f).option, IceOption::ForceRelay);
        let f = Flags { ice: Some("lite-fwd".into()), trickle_ice: true, ..Default::default() };
        let i = IceFlags::from_flags(&f);
        assert_eq!((i.option, i.lite, i.trickle), (IceOption::Default, Some(IceLite::Forward), true));
        // unknown values are ignored
        let f = Flags { ice: Some("sometimes".into()), ice_lite: Some("maybe".into()), ..Default::default() };
        assert_eq!(IceFlags::from_flags(&f), IceFlags::default());
    }

    #[test]
    fn peer_ice_media_then_session_level() {
        let p = peer_ice(&sdp("", PEER), 0).unwrap();
        assert_eq!(p.ufrag.as_deref(), Some("asbsdfds"));
        assert_eq!(p.pwd.as_deref(), Some("sfhwsrgyergws45ujhsrthsrhH"));
        assert_eq!(p.candidates.len(), 3);
        assert_eq!(p.candidates[1], Candidate { component: 1, priority: 2130706175, typ: CandidateType::Host });
        assert!(!p.trickle && !p.lite && !p.end_of_candidates);
        let p = peer_ice(&sdp("a=ice-lite\r\na=ice-ufrag:sess\r\na=ice-pwd:x\r\n", ""), 0).unwrap();
        assert_eq!((p.ufrag.as_deref(), p.lite), (Some("sess"), true));
        // no ufrag: no ICE
        assert!(!peer_ice(&sdp("", "a=ice-pwd:x\r\na=candidate:1 1 UDP 1 1.2.3.4 5 typ host\r\n"), 0)
            .unwrap()
            .uses_ice());
        // trickle: options, or the placeholder address without options
        let t = peer_ice(&sdp("", "a=ice-ufrag:Ci7n\r\na=ice-options:trickle\r\na=end-of-candidates\r\n"), 0).unwrap();
        assert!(t.trickle && t.end_of_candidates);
        let placeholder = Sdp::parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 RTP/AVP 8\r\na=ice-ufrag:Ci7n\r\n",
        )
        .unwrap();
        assert!(peer_ice(&placeholder, 0).unwrap().trickle);
    }

    #[test]
    fn hostile_credentials_and_candidates() {
        let long = "x".repeat(MAX_CREDENTIAL_LEN + 1);
        let e = peer_ice(&sdp("", &format!("a=ice-ufrag:{long}\r\n")), 0).unwrap_err();
        assert_eq!(e.to_string(), "a=ice-ufrag of 257 characters (at most 256)");
        let e = peer_ice(&sdp("", &format!("a=ice-ufrag:ok\r\na=ice-pwd:{long}\r\n")), 0).unwrap_err();
        assert_eq!(e, IceSdpError::TooLong { attr: "ice-pwd", len: 257 });
        let e = peer_ice(&sdp("", "a=ice-ufrag:a:b\r\n"), 0).unwrap_err();
        assert_eq!(e.to_string(), "a=ice-ufrag with a character not allowed in ICE credentials");
        // exactly the bound is fine; short ones (4-char browser ufrags, 17-char pwds) too
        assert!(peer_ice(&sdp("", &format!("a=ice-ufrag:{}\r\na=ice-pwd:short\r\n", "y".repeat(256))), 0).is_ok());
        // malformed candidates are left out; at most MAX_CANDIDATES are looked at
        for bad in [
            "",
            "1",
            "1 0 UDP 1 1.2.3.4 5 typ host",
            "1 1 UDP x 1.2.3.4 5 typ host",
            "1 1 UDP 1 1.2.3.4 99999 typ host",
            "1 1 UDP 1 1.2.3.4 5 host",
        ] {
            assert_eq!(Candidate::parse(bad), None, "{bad:?}");
        }
        let many: String = (0..1000).map(|k| format!("a=candidate:{k} 1 UDP {k} 192.0.2.1 {k} typ host\r\n")).collect();
        let p = peer_ice(&sdp("", &format!("a=ice-ufrag:u\r\n{many}")), 0).unwrap();
        assert_eq!(p.candidates.len(), MAX_CANDIDATES);
    }

    #[test]
    fn priorities_as_rtpengine_writes_them() {
        assert_eq!(priority(126, 0, 1), 2130706431);
        assert_eq!(priority(126, 1, 1), 2130706175);
        assert_eq!(priority(126, 0, 2), 2130706430);
        // passthrough: below the sender's lowest host candidate, with rtpengine's wrap
        let src = peer_ice(&sdp("", PEER), 0).unwrap().candidates;
        let (t, l) = passthrough_preferences(&src, CandidateType::Host);
        assert_eq!((t, l), (125, 65535));
        assert_eq!(priority(t, l, 1), 2097152255);
        assert_eq!(priority(t, l + 1, 1), 4294967295);
        assert_eq!(priority(t, l + 1, 2), 4294967294);
    }

    #[test]
    fn credentials_are_random_with_rtpengines_lengths() {
        let a = Credentials::generate();
        let b = Credentials::generate();
        assert_eq!((a.ufrag.len(), a.pwd.len()), (UFRAG_LEN, PWD_LEN));
        assert!(a.ufrag.bytes().chain(a.pwd.bytes()).all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(&a.pwd), "the password is not logged");
        let l = LegIce { local: Some(a.clone()), remote_pwd: Some("peersecret".into()), ..Default::default() };
        let d = format!("{l:?}");
        assert!(!d.contains(&a.pwd) && !d.contains("peersecret"), "{d}");
        let f = foundation("192.0.2.1".parse().unwrap());
        assert_eq!(f.len(), FOUNDATION_LEN);
        assert_eq!(f, foundation("192.0.2.1".parse().unwrap()));
        assert_ne!(f, foundation("::1".parse().unwrap()));
    }

    fn offer(flags: IceFlags, peer: &PeerIce, a: &mut LegIce, b: &mut LegIce) {
        exchange(&flags, a, b, peer, true, false);
    }
    fn answer(flags: IceFlags, peer: &PeerIce, a: &mut LegIce, b: &mut LegIce) {
        exchange(&flags, b, a, peer, true, true);
    }
    fn with(option: IceOption) -> IceFlags {
        IceFlags { option, ..Default::default() }
    }

    #[test]
    fn default_follows_the_offerer_and_force_adds_ice() {
        let ice = peer_ice(&sdp("", PEER), 0).unwrap();
        let plain = PeerIce::default();
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        offer(IceFlags::default(), &plain, &mut a, &mut b);
        assert!(!b.writes_candidates() && !a.enabled);
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        offer(IceFlags::default(), &ice, &mut a, &mut b);
        assert!(b.writes_candidates() && a.enabled && !a.passthrough);
        assert_eq!(a.rule().unwrap().remote_ufrag.as_deref(), Some("asbsdfds"));
        assert_eq!(b.rule().unwrap().remote_ufrag, None, "not known before the answer");
        // force on a plain offer: ICE towards the callee only; a plain answer rejects it
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        offer(with(IceOption::Force), &plain, &mut a, &mut b);
        assert!(b.writes_candidates() && !a.enabled);
        let creds = b.local.clone();
        answer(IceFlags::default(), &plain, &mut a, &mut b);
        assert!(!b.enabled && !a.enabled && b.rule().is_none());
        offer(IceFlags::default(), &plain, &mut a, &mut b);
        assert!(!b.writes_candidates(), "rejected ICE stays off in the re-offer");
        assert_eq!(b.local, creds, "the agent stays");
    }

    #[test]
    fn optional_passes_ice_through_when_both_sides_have_it() {
        let ice = peer_ice(&sdp("", PEER), 0).unwrap();
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        offer(with(IceOption::Optional), &ice, &mut a, &mut b);
        assert!(a.passthrough && b.passthrough && b.writes_candidates());
        assert!(a.rule().is_none() && b.rule().is_none(), "the relay does not terminate passed-through ICE");
        // a plain answer: no ICE towards the offerer either
        answer(with(IceOption::Optional), &PeerIce::default(), &mut a, &mut b);
        assert!(!a.writes_candidates());
    }

    #[test]
    fn restart_gives_new_local_credentials_on_that_leg() {
        let ice = peer_ice(&sdp("", PEER), 0).unwrap();
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        offer(IceFlags::default(), &ice, &mut a, &mut b);
        let (a1, b1) = (a.local.clone(), b.local.clone());
        offer(IceFlags::default(), &ice, &mut a, &mut b);
        assert_eq!((&a.local, &b.local), (&a1, &b1), "kept across a re-offer");
        let mut restarted = ice.clone();
        restarted.ufrag = Some("newufrag".into());
        offer(IceFlags::default(), &restarted, &mut a, &mut b);
        assert_ne!(a.local, a1, "new credentials towards the restarting party");
        assert_eq!(b.local, b1, "the other leg keeps its own");
        assert_eq!(a.rule().unwrap().remote_ufrag.as_deref(), Some("newufrag"));
    }

    #[test]
    fn ice_lite_sides_and_trickle() {
        let ice = peer_ice(&sdp("", PEER), 0).unwrap();
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        let f = IceFlags { option: IceOption::Remove, lite: Some(IceLite::Backward), ..Default::default() };
        offer(f, &ice, &mut a, &mut b);
        assert!(a.lite_self && !b.lite_self && !b.enabled && a.enabled);
        let (mut a, mut b) = (LegIce::default(), LegIce::default());
        let f = IceFlags { option: IceOption::Force, trickle: true, ..Default::default() };
        offer(f, &PeerIce::default(), &mut a, &mut b);
        assert!(b.trickle && !a.trickle);
    }

    #[test]
    fn candidate_lines() {
        let mut l = leg_at("audio", "192.0.2.10", 30000, None);
        l.ice.enabled = true;
        l.ice.local = Some(Credentials { ufrag: "uuuuuuuu".into(), pwd: "p".repeat(26) });
        l.ice.extra.push(RelaySocket {
            local: "::1".parse().unwrap(),
            advertised: "2001:db8::1".parse().unwrap(),
            port: 31000,
        });
        let out = ice_out(&l, false, None, &PeerIce::default(), IceOption::Force);
        let f4 = foundation("192.0.2.10".parse().unwrap());
        let f6 = foundation("::1".parse().unwrap());
        assert_eq!(
            out.lines,
            vec![
                "a=ice-ufrag:uuuuuuuu".to_string(),
                format!("a=ice-pwd:{}", "p".repeat(26)),
                format!("a=candidate:{f4} 1 UDP 2130706431 192.0.2.10 30000 typ host"),
                format!("a=candidate:{f6} 1 UDP 2130706175 2001:db8::1 31000 typ host"),
                format!("a=candidate:{f4} 2 UDP 2130706430 192.0.2.10 30001 typ host"),
                format!("a=candidate:{f6} 2 UDP 2130706174 2001:db8::1 31001 typ host"),
            ]
        );
        assert!(!out.keep_sender && !out.session_lite);
        // muxed: component 1 only; trickle: options and end-of-candidates; media-address
        l.ice.trickle = true;
        let out = ice_out(&l, true, Some("192.0.2.99".parse().unwrap()), &PeerIce::default(), IceOption::Force);
        assert_eq!(out.lines.len(), 6);
        assert_eq!(out.lines[2], "a=ice-options:trickle");
        assert!(out.lines[3].contains(" 192.0.2.99 30000 ") && out.lines[4].contains(" 192.0.2.99 31000 "));
        assert_eq!(out.lines[5], "a=end-of-candidates");
        // force-relay: relay candidates with raddr/rport
        let out = ice_out(&l, true, None, &PeerIce::default(), IceOption::ForceRelay);
        assert_eq!(
            out.lines[3],
            format!("a=candidate:{f4} 1 UDP 16777215 192.0.2.10 30000 typ relay raddr 192.0.2.10 rport 30000")
        );
        // no ICE towards the party: nothing
        l.ice.enabled = false;
        assert_eq!(ice_out(&l, false, None, &PeerIce::default(), IceOption::Default), IceOut::default());
    }
}
