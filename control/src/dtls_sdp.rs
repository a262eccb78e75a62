//! DTLS-SRTP in the SDP (RFC 5763/5764, a=setup of RFC 4145, a=tls-id of RFC 8842) for
//! one media section, with rtpengine's semantics (daemon/call.c `__dtls_logic` and
//! `__generate_crypto`, sdp.c `insert_dtls`):
//!
//! - the relay terminates DTLS on every leg that speaks it: the sender's a=setup,
//!   a=fingerprint and a=tls-id never reach the other party; the recipient gets the
//!   relay's own (its certificate's fingerprint);
//! - offers to an SRTP recipient carry `a=setup:actpass` and, unless `DTLS=off`, DTLS
//!   beside SDES (unless `SDES-off`): a re-offer keeps what the party chose;
//! - answering an `actpass` offer, the relay is active unless `DTLS=passive` (or
//!   `DTLS-reverse=passive`) was given with the offer or the answer, or it was passive
//!   before; an offerer that offers both SDES and DTLS is answered with DTLS (SDES with
//!   `DTLS=off`, or `SDES-prefer` on the offer).
//!
//! The DTLS role the data plane gets is decided when the SDP that announces it is
//! produced, never before (rtpengine issue #2145: 10.5 started a ClientHello on the
//! offer and then answered `a=setup:passive`): a leg's rule carries [`LegDtls::rule`],
//! which follows [`LegDtls::announced`], the a=setup the relay last sent that party.

use std::fmt;
use std::sync::Arc;

use rules::webrtc::{DtlsIdentity, DtlsRole, DtlsRule, Fingerprint, HashFunction};

use crate::call::Call;
use crate::ng::flags::Flags;
use crate::sdes_negotiation::Section;
use crate::sdp::{attr_in, attr_name};

/// An a=setup value (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
    HoldConn,
}

impl Setup {
    pub fn parse(s: &str) -> Option<Setup> {
        use Setup::*;
        [Active, Passive, ActPass, HoldConn].into_iter().find(|x| x.name().eq_ignore_ascii_case(s.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

/// Why a section's DTLS attributes cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsSdpError {
    /// An a=setup value RFC 4145 does not define.
    UnknownSetup(String),
    /// An a=fingerprint that is not `<hash> <hex>:<hex>..` of a hash relayd knows.
    BadFingerprint(String),
    /// An a=tls-id that is not 20 to 255 characters of RFC 8842's alphabet.
    BadTlsId(String),
    /// A DTLS-only section (setup and fingerprint, no a=crypto) while the relay has no
    /// certificate.
    NoIdentity { proto: String },
}

impl fmt::Display for DtlsSdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |s: &str| crate::ng::log_text(s.as_bytes(), 60);
        match self {
            DtlsSdpError::UnknownSetup(s) => {
                write!(f, "unknown a=setup value {:?} (expected active, passive, actpass or holdconn)", t(s))
            }
            DtlsSdpError::BadFingerprint(s) => write!(f, "invalid a=fingerprint {:?}", t(s)),
            DtlsSdpError::BadTlsId(s) => write!(f, "invalid a=tls-id {:?}", t(s)),
            DtlsSdpError::NoIdentity { proto } => {
                write!(f, "{proto} media with DTLS only, and the relay has no DTLS certificate")
            }
        }
    }
}

impl std::error::Error for DtlsSdpError {}

/// DTLS and SDES state of one leg (the relay's side facing one party), rtpengine's
/// per-media DTLS / SDES / SETUP_ACTIVE / SETUP_PASSIVE flags.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LegDtls {
    /// DTLS-SRTP is spoken with this party.
    pub enabled: bool,
    /// SDES is spoken with (offered to, or by) this party.
    pub sdes: bool,
    /// The roles the relay may take towards this party (both: actpass, not resolved yet).
    pub can_active: bool,
    pub can_passive: bool,
    /// The party offered actpass and the relay should answer passive (`DTLS=passive` with
    /// the offer, or passive before): kept until the answer is produced.
    pub prefer_passive: bool,
    /// The a=setup the relay last wrote in an SDP to this party: the data plane's role
    /// follows it and nothing else.
    pub announced: Option<Setup>,
    /// The role the last completed exchange with this party settled on: a re-offer's
    /// actpass keeps it (the running association) until the party answers otherwise.
    pub settled: Option<DtlsRole>,
    /// The party's certificate must match this (its a=fingerprint).
    pub remote_fingerprint: Option<Fingerprint>,
    /// The party's a=tls-id (it speaks RFC 8842: the relay's SDP to it carries one too).
    pub remote_tls_id: Option<String>,
    /// The relay's a=tls-id towards this party (new with each DTLS restart).
    pub local_tls_id: Option<String>,
    /// Bumped when the party's fingerprint or tls-id changes, or it restarts ICE without
    /// tls-ids on either side (rtpengine's rule, unless `no-tls-id`): a new association.
    pub generation: u32,
    /// The party's ICE credentials (`ufrag:pwd`) as last seen, to notice an ICE restart.
    pub remote_ice: Option<String>,
    /// Hash of the relay's a=fingerprint towards this party (kept once chosen).
    pub hash: Option<HashFunction>,
    /// The certificate the relay advertised to this party: kept for the call's lifetime
    /// (the state store keeps it apart, once per call: crate::persist).
    #[serde(skip)]
    pub identity: Option<Arc<DtlsIdentity>>,
    /// rtpengine's passthrough: both parties do ICE and the relay is not forced into the
    /// path (`ICE=force-relay` / `ICE=optional`, or the `passthrough` flag): SDES and
    /// DTLS go end to end, the parties' own attributes pass through untouched.
    pub passthrough: bool,
}

impl LegDtls {
    /// The data plane's DTLS rule for this leg's sockets: None when the leg does not do
    /// DTLS or the relay has announced no role to this party yet.
    pub fn rule(&self) -> Option<DtlsRule> {
        if !self.enabled {
            return None;
        }
        let role = match self.announced? {
            Setup::Active => DtlsRole::Active,
            Setup::Passive => DtlsRole::Passive,
            // the relay offered actpass: the answerer's choice; until it chose, the role
            // settled before (a re-offer), else passive (wait for its ClientHello)
            Setup::ActPass if self.can_active && !self.can_passive => DtlsRole::Active,
            Setup::ActPass if self.can_passive && !self.can_active => DtlsRole::Passive,
            Setup::ActPass => self.settled.unwrap_or(DtlsRole::Passive),
            Setup::HoldConn => return None,
        };
        Some(DtlsRule {
            role,
            identity: self.identity.clone()?,
            remote_fingerprint: self.remote_fingerprint.clone(),
            generation: self.generation,
        })
    }

    fn disable(&mut self) {
        self.enabled = false;
        self.sdes = false;
        self.can_active = false;
        self.can_passive = false;
        self.announced = None;
    }
}

/// The section's DTLS attributes (media level first, then session level).
#[derive(Debug, Default)]
struct Attrs {
    setup: Option<Setup>,
    fingerprint: Option<Fingerprint>,
    tls_id: Option<String>,
    has_crypto: bool,
    /// `ufrag:pwd`
    ice: Option<String>,
}

fn find<'a>(media: &'a [String], session: &'a [String], name: &str) -> Option<&'a str> {
    attr_in(media, name).or_else(|| attr_in(session, name))
}

impl Attrs {
    fn parse(media: &[String], session: &[String]) -> Result<Attrs, DtlsSdpError> {
        let setup = match find(media, session, "setup") {
            Some(s) => Some(Setup::parse(s).ok_or_else(|| DtlsSdpError::UnknownSetup(s.to_string()))?),
            None => None,
        };
        // RFC 8122 allows several (one per hash): the first one relayd can check; an error
        // only when there are some and none is usable
        let all = |lines: &'_ [String]| -> Vec<String> {
            lines.iter().filter_map(|l| l.strip_prefix("a=fingerprint:")).map(str::to_string).collect()
        };
        let mut given = all(media);
        if given.is_empty() {
            given = all(session);
        }
        let fingerprint = match given.iter().find_map(|s| Fingerprint::parse(s)) {
            Some(f) => Some(f),
            None if given.is_empty() => None,
            None => return Err(DtlsSdpError::BadFingerprint(given[0].clone())),
        };
        let tls_id = match find(media, session, "tls-id") {
            Some(s) => {
                let ok = (20..=255).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
                if !ok {
                    return Err(DtlsSdpError::BadTlsId(s.to_string()));
                }
                Some(s.to_string())
            }
            None => None,
        };
        let has_crypto = media.iter().any(|l| l.starts_with("a=crypto:"));
        let ice = match (find(media, session, "ice-ufrag"), find(media, session, "ice-pwd")) {
            (Some(u), Some(p)) => Some(format!("{u}:{p}")),
            _ => None,
        };
        Ok(Attrs { setup, fingerprint, tls_id, has_crypto, ice })
    }
}

/// The attributes this module owns: the sender's are dropped, the relay writes its own.
pub fn is_dtls_attr(line: &str) -> bool {
    matches!(attr_name(line), Some("setup" | "fingerprint" | "tls-id"))
}

fn srtp(proto: &str) -> bool {
    proto.to_ascii_uppercase().contains("SAVP")
}

fn rtp(proto: &str) -> bool {
    proto.to_ascii_uppercase().contains("RTP/")
}

/// The relay's certificate fingerprint with `hash` (the identity's own SHA-256 one, the
/// others computed from the certificate).
pub fn fingerprint_of(identity: &DtlsIdentity, hash: HashFunction) -> Fingerprint {
    use sha2::Digest;
    if hash == identity.fingerprint.hash {
        return identity.fingerprint.clone();
    }
    let d = &identity.cert_der;
    let value = match hash {
        HashFunction::Sha1 => sha1::Sha1::digest(d).to_vec(),
        HashFunction::Sha224 => sha2::Sha224::digest(d).to_vec(),
        HashFunction::Sha256 => sha2::Sha256::digest(d).to_vec(),
        HashFunction::Sha384 => sha2::Sha384::digest(d).to_vec(),
        HashFunction::Sha512 => sha2::Sha512::digest(d).to_vec(),
    };
    Fingerprint { hash, value }
}

/// rtpengine's passthrough decision (call.c `__ice_offer`): decided by an offer, kept by
/// the answer unless flags decide again.
fn passthrough(call: &mut Call, flags: &Flags, s: &Section<'_>, session: &[String]) -> bool {
    let (x, y, i) = (s.sender, s.recipient, s.index);
    if flags.passthrough_on || flags.passthrough_off {
        return flags.passthrough_on;
    }
    let relay_optional = matches!(flags.ice.as_deref(), Some("force-relay" | "optional"));
    let was = call.monologues[x].legs[i].dtls.passthrough || call.monologues[y].legs[i].dtls.passthrough;
    let sender_ice = find(&s.media.lines, session, "ice-ufrag").is_some();
    let now = if s.is_answer { was } else { relay_optional && sender_ice };
    if !now {
        for l in [x, y] {
            call.monologues[l].legs[i].dtls.passthrough = false;
        }
    }
    now
}

fn new_tls_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// DTLS for one RTP section on its way from `s.sender` to `s.recipient`: the legs' DTLS
/// state in `call` updated, the recipient's protocol decided (offers), and the lines the
/// recipient's SDP gets (a=setup, a=fingerprint, a=tls-id; empty: none).
pub fn negotiate(
    call: &mut Call,
    flags: &Flags,
    s: &Section<'_>,
    session: &[String],
    identity: Option<&Arc<DtlsIdentity>>,
) -> Result<Vec<String>, DtlsSdpError> {
    let (m, x, y, i) = (s.media, s.sender, s.recipient, s.index);
    let attrs = Attrs::parse(&m.lines, session)?;
    if passthrough(call, flags, s, session) {
        for l in [x, y] {
            let d = &mut call.monologues[l].legs[i].dtls;
            d.disable();
            d.passthrough = true;
        }
        call.monologues[x].legs[i].proto = m.m.proto.clone();
        if !s.is_answer {
            let p = flags.transport_protocol.clone().filter(|_| rtp(&m.m.proto)).unwrap_or(m.m.proto.clone());
            call.monologues[y].legs[i].proto = p;
        }
        return Ok(Vec::new());
    }
    let x_proto = m.m.proto.clone();
    let x_proto_before = call.monologues[x].legs[i].proto.clone();

    // the sender's side: what its SDP says about DTLS (rtpengine's __dtls_logic)
    {
        let xd = &mut call.monologues[x].legs[i].dtls;
        let passive_before = xd.can_passive && !xd.can_active;
        // active and passive from the relay's point of view
        let (mut act, mut pas) = match attrs.setup {
            Some(Setup::Active) => (false, true),
            Some(Setup::Passive) => (true, false),
            Some(Setup::ActPass) => (true, true),
            Some(Setup::HoldConn) | None => (false, false),
        };
        if !s.is_answer && flags.sdes_prefer && attrs.has_crypto {
            (act, pas) = (false, false);
        }
        if !s.is_answer && act && pas {
            // resolved when the answer is produced
            xd.prefer_passive = flags.dtls_passive.unwrap_or(passive_before);
        }
        (xd.can_active, xd.can_passive) = (act, pas);
        if attrs.fingerprint != xd.remote_fingerprint {
            if xd.remote_fingerprint.is_some() {
                xd.generation = xd.generation.wrapping_add(1);
                xd.local_tls_id = None;
            }
            xd.remote_fingerprint = attrs.fingerprint.clone();
        } else if xd.remote_tls_id.is_some() && attrs.tls_id != xd.remote_tls_id {
            xd.generation = xd.generation.wrapping_add(1);
            xd.local_tls_id = None;
        } else if xd.remote_ice.is_some()
            && attrs.ice.is_some()
            && attrs.ice != xd.remote_ice
            && xd.remote_tls_id.is_none()
            && attrs.tls_id.is_none()
            && !flags.no_tls_id
        {
            // ICE restart without tls-id: DTLS restarts too
            xd.generation = xd.generation.wrapping_add(1);
        }
        xd.remote_tls_id = attrs.tls_id.clone();
        if attrs.ice.is_some() {
            xd.remote_ice = attrs.ice.clone();
        }
        let wants_dtls = (act || pas) && xd.remote_fingerprint.is_some() && srtp(&x_proto);
        if wants_dtls && identity.is_none() && xd.identity.is_none() && !attrs.has_crypto {
            return Err(DtlsSdpError::NoIdentity { proto: x_proto });
        }
        xd.enabled = wants_dtls && (identity.is_some() || xd.identity.is_some());
        xd.sdes = attrs.has_crypto && srtp(&x_proto);
        if s.is_answer && xd.announced == Some(Setup::ActPass) {
            // the answer to the relay's actpass settles the role
            xd.settled = xd.rule().map(|r| r.role);
        }
        call.monologues[x].legs[i].proto = x_proto.clone();
    }

    // the recipient's side
    let yl = &mut call.monologues[y].legs[i];
    let y_proto = if !s.is_answer {
        // rtpengine's media_set_protocol: the sender's protocol unless the flag overrides
        // it; a re-offer in the same protocol keeps what the recipient was given
        let p = match &flags.transport_protocol {
            Some(t) if rtp(&x_proto) => t.clone(),
            _ if x_proto_before == x_proto && !yl.proto.is_empty() => yl.proto.clone(),
            _ => x_proto.clone(),
        };
        yl.proto = p.clone();
        p
    } else if flags.protocol_accept {
        x_proto.clone()
    } else if let Some(t) = flags.transport_protocol.as_ref().filter(|_| rtp(&x_proto)) {
        // transport-protocol with the answer overrides what the offerer gets
        yl.proto = t.clone();
        t.clone()
    } else {
        yl.proto.clone()
    };
    let yd = &mut yl.dtls;
    if !srtp(&y_proto) {
        yd.disable();
        return Ok(Vec::new());
    }
    let setup = if !s.is_answer {
        (yd.can_active, yd.can_passive) = (true, true);
        if !yd.enabled && !yd.sdes {
            yd.enabled = !flags.dtls_off && (identity.is_some() || yd.identity.is_some());
            yd.sdes = !flags.sdes_off;
        }
        if yd.enabled && yd.hash.is_none() {
            yd.hash = flags.dtls_fingerprint;
        }
        Setup::ActPass
    } else {
        if yd.enabled && yd.sdes && flags.dtls_off {
            yd.enabled = false;
        }
        if !yd.enabled {
            yd.announced = None;
            return Ok(Vec::new());
        }
        yd.sdes = false;
        let passive = match (yd.can_active, yd.can_passive) {
            (true, true) => flags.dtls_passive.unwrap_or(yd.prefer_passive),
            (false, true) => true,
            _ => false,
        };
        (yd.can_active, yd.can_passive) = (!passive, passive);
        yd.settled = Some(if passive { DtlsRole::Passive } else { DtlsRole::Active });
        if passive {
            Setup::Passive
        } else {
            Setup::Active
        }
    };
    if !yd.enabled {
        yd.announced = None;
        return Ok(Vec::new());
    }
    // a call keeps the certificate it advertised
    let Some(id) = yd.identity.clone().or_else(|| identity.cloned()) else {
        yd.enabled = false;
        return Ok(Vec::new());
    };
    yd.identity = Some(id.clone());
    let hash = yd.hash.or(yd.remote_fingerprint.as_ref().map(|f| f.hash)).unwrap_or(HashFunction::Sha256);
    yd.hash = Some(hash);
    yd.announced = Some(setup);
    let mut lines = vec![format!("a=setup:{}", setup.name()), format!("a=fingerprint:{}", fingerprint_of(&id, hash))];
    if yd.remote_tls_id.is_some() && !flags.no_tls_id {
        let t = yd.local_tls_id.get_or_insert_with(new_tls_id);
        lines.push(format!("a=tls-id:{t}"));
    }
    Ok(lines)
}

/// A fixed identity for tests (not a real certificate: the handshake needs one from
/// relay_core::dtls::generate_identity).
#[doc(hidden)]
pub fn test_identity() -> Arc<DtlsIdentity> {
    let cert_der = b"relayd test certificate (not DER)".to_vec();
    let mut id = DtlsIdentity {
        fingerprint: Fingerprint { hash: HashFunction::Sha1, value: Vec::new() },
        cert_der,
        key_der: vec![1; 32],
        not_after_unix: u64::MAX,
    };
    id.fingerprint = fingerprint_of(&id, HashFunction::Sha256);
    Arc::new(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Sdp;

    const FP: &str =
        "sha-256 DA:89:F7:04:38:D9:04:E1:9E:25:1A:43:87:8D:F5:BD:6E:4C:BB:88:12:A6:D5:FA:B1:4A:34:BC:32:C0:05:FE";

    fn call() -> Call {
        crate::call::tests::two_party_call()
    }

    fn sdp(proto: &str, attrs: &[&str]) -> Sdp {
        crate::call::tests::audio_sdp(proto, attrs.iter().map(|a| a.to_string()))
    }

    fn run(c: &mut Call, f: &Flags, sdp: &Sdp, sender: usize, is_answer: bool) -> Result<Vec<String>, DtlsSdpError> {
        let s = Section { media: &sdp.media[0], index: 0, sender, recipient: 1 - sender, is_answer };
        negotiate(c, f, &s, &sdp.session, Some(&test_identity()))
    }

    fn setup_of(lines: &[String]) -> &str {
        lines[0].strip_prefix("a=setup:").unwrap()
    }

    #[test]
    fn browser_to_phone_the_role_is_decided_by_the_answer() {
        // offer DTLS=off RTP/AVP towards the phone, answer DTLS=passive towards the browser
        let mut c = call();
        let offer = sdp("UDP/TLS/RTP/SAVPF", &["setup:actpass", &format!("fingerprint:{FP}")]);
        let f = Flags { dtls_off: true, transport_protocol: Some("RTP/AVP".into()), ..Default::default() };
        assert!(run(&mut c, &f, &offer, 0, false).unwrap().is_empty(), "no DTLS towards the phone");
        assert_eq!(c.monologues[0].legs[0].dtls.rule(), None, "no role before the browser is answered");
        assert_eq!(c.monologues[1].legs[0].proto, "RTP/AVP");
        let answer = sdp("RTP/AVP", &[]);
        let f = Flags { dtls_passive: Some(true), ..Default::default() };
        let lines = run(&mut c, &f, &answer, 1, true).unwrap();
        assert_eq!(setup_of(&lines), "passive");
        let rule = c.monologues[0].legs[0].dtls.rule().unwrap();
        assert_eq!(rule.role, DtlsRole::Passive, "what the browser was told");
        assert_eq!(rule.remote_fingerprint, Fingerprint::parse(FP));
        // without DTLS=passive the relay answers active, and is active
        let mut c = call();
        run(&mut c, &Flags::default(), &offer, 0, false).unwrap();
        let lines = run(&mut c, &Flags::default(), &sdp("RTP/SAVPF", &[]), 1, true).unwrap();
        assert_eq!(setup_of(&lines), "active");
        assert_eq!(c.monologues[0].legs[0].dtls.rule().unwrap().role, DtlsRole::Active);
        // DTLS=passive with the offer counts too (DTLS-reverse=passive is the same)
        let mut c = call();
        run(&mut c, &Flags { dtls_passive: Some(true), ..Default::default() }, &offer, 0, false).unwrap();
        let lines = run(&mut c, &Flags::default(), &sdp("RTP/SAVPF", &[]), 1, true).unwrap();
        assert_eq!(setup_of(&lines), "passive");
    }

    #[test]
    fn phone_to_browser_actpass_then_the_answerers_choice() {
        let mut c = call();
        let f = Flags { transport_protocol: Some("UDP/TLS/RTP/SAVPF".into()), sdes_off: true, ..Default::default() };
        let lines = run(&mut c, &f, &sdp("RTP/AVP", &[]), 0, false).unwrap();
        assert_eq!(lines[0], "a=setup:actpass");
        assert!(lines[1].starts_with("a=fingerprint:sha-256 "), "{lines:?}");
        assert_eq!(lines.len(), 2, "no a=tls-id to a party that never sent one");
        assert_eq!(c.monologues[1].legs[0].dtls.rule().unwrap().role, DtlsRole::Passive, "actpass: wait");
        assert!(!c.monologues[1].legs[0].dtls.sdes);
        // the browser answers passive: the relay becomes the client
        let answer = sdp("UDP/TLS/RTP/SAVPF", &["setup:passive", &format!("fingerprint:{FP}")]);
        run(&mut c, &Flags::default(), &answer, 1, true).unwrap();
        let r = c.monologues[1].legs[0].dtls.rule().unwrap();
        assert_eq!((r.role, r.generation), (DtlsRole::Active, 0));
        assert_eq!(c.monologues[0].legs[0].dtls.rule(), None, "the phone's leg is plain");
        // the phone re-INVITEs: actpass again, the running association keeps its role
        let lines = run(&mut c, &f, &sdp("RTP/AVP", &[]), 0, false).unwrap();
        assert_eq!(lines[0], "a=setup:actpass");
        assert_eq!(c.monologues[1].legs[0].dtls.rule().unwrap(), r, "no restart on a re-offer");
        run(&mut c, &Flags::default(), &answer, 1, true).unwrap();
        assert_eq!(c.monologues[1].legs[0].dtls.rule().unwrap(), r);
    }

    #[test]
    fn restart_on_a_new_fingerprint_or_tls_id_and_tls_id_only_to_who_sends_one() {
        let mut c = call();
        let tls = "a=tls-id:abcdefghijklmnopqrstuvwxyz012345";
        let offer = sdp("UDP/TLS/RTP/SAVPF", &["setup:actpass", &format!("fingerprint:{FP}"), &tls[2..]]);
        run(&mut c, &Flags::default(), &offer, 0, false).unwrap();
        let lines = run(&mut c, &Flags::default(), &sdp("RTP/AVP", &[]), 1, true).unwrap();
        assert!(lines[2].starts_with("a=tls-id:") && lines[2].len() == 9 + 32, "{lines:?}");
        let mut again = run(&mut c, &Flags::default(), &offer, 0, false);
        assert!(again.is_ok());
        assert_eq!(c.monologues[0].legs[0].dtls.generation, 0, "same fingerprint and tls-id");
        let new_tls = sdp(
            "UDP/TLS/RTP/SAVPF",
            &["setup:actpass", &format!("fingerprint:{FP}"), "tls-id:ABCDEFGHIJKLMNOPQRSTUVWXYZ"],
        );
        again = run(&mut c, &Flags::default(), &new_tls, 0, false);
        assert!(again.is_ok());
        assert_eq!(c.monologues[0].legs[0].dtls.generation, 1);
        // an ICE restart restarts DTLS only without tls-ids
        let ice = |u: &str| {
            sdp(
                "UDP/TLS/RTP/SAVPF",
                &["setup:actpass", &format!("fingerprint:{FP}"), u, "ice-pwd:0123456789abcdefghijkl"],
            )
        };
        let mut c2 = call();
        run(&mut c2, &Flags::default(), &ice("ice-ufrag:aaaa"), 0, false).unwrap();
        run(&mut c2, &Flags::default(), &ice("ice-ufrag:aaaa"), 0, false).unwrap();
        assert_eq!(c2.monologues[0].legs[0].dtls.generation, 0);
        run(&mut c2, &Flags::default(), &ice("ice-ufrag:bbbb"), 0, false).unwrap();
        assert_eq!(c2.monologues[0].legs[0].dtls.generation, 1, "ICE restart");
        run(&mut c2, &Flags { no_tls_id: true, ..Default::default() }, &ice("ice-ufrag:cccc"), 0, false).unwrap();
        assert_eq!(c2.monologues[0].legs[0].dtls.generation, 1, "not with no-tls-id");
        let new_fp = FP.replace("DA:89", "DA:88");
        run(
            &mut c,
            &Flags::default(),
            &sdp("UDP/TLS/RTP/SAVPF", &["setup:actpass", &format!("fingerprint:{new_fp}")]),
            0,
            false,
        )
        .unwrap();
        assert_eq!(c.monologues[0].legs[0].dtls.generation, 2);
    }

    #[test]
    fn sdes_and_dtls_together_and_fingerprint_hashes() {
        // default offer to an SRTP recipient: both
        let mut c = call();
        let f = Flags { transport_protocol: Some("RTP/SAVP".into()), ..Default::default() };
        run(&mut c, &f, &sdp("RTP/AVP", &[]), 0, false).unwrap();
        let d = &c.monologues[1].legs[0].dtls;
        assert!(d.enabled && d.sdes);
        // DTLS=off: SDES only; DTLS-fingerprint: that hash, kept on re-offers
        let mut c = call();
        let off = Flags { dtls_off: true, ..f.clone() };
        assert!(run(&mut c, &off, &sdp("RTP/AVP", &[]), 0, false).unwrap().is_empty());
        let mut c = call();
        let sha1 = Flags { dtls_fingerprint: Some(HashFunction::Sha1), sdes_off: true, ..f.clone() };
        let lines = run(&mut c, &sha1, &sdp("RTP/AVP", &[]), 0, false).unwrap();
        assert!(lines[1].starts_with("a=fingerprint:sha-1 ") && lines[1].len() == 20 + 59, "{lines:?}");
        let lines = run(&mut c, &Flags::default(), &sdp("RTP/AVP", &[]), 0, false).unwrap();
        assert!(lines[1].starts_with("a=fingerprint:sha-1 "), "a re-offer keeps the hash and the protocol");
        assert_eq!(c.monologues[1].legs[0].proto, "RTP/SAVP");
        // an offerer offering both is answered with DTLS, or SDES with DTLS=off
        let both = sdp(
            "RTP/SAVP",
            &["setup:actpass", &format!("fingerprint:{FP}"), "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x"],
        );
        let mut c = call();
        run(&mut c, &Flags::default(), &both, 0, false).unwrap();
        assert!(!run(&mut c, &Flags::default(), &sdp("RTP/SAVP", &[]), 1, true).unwrap().is_empty());
        assert!(c.monologues[0].legs[0].dtls.enabled && !c.monologues[0].legs[0].dtls.sdes);
        let mut c = call();
        run(&mut c, &Flags::default(), &both, 0, false).unwrap();
        let dtls_off = Flags { dtls_off: true, ..Default::default() };
        assert!(run(&mut c, &dtls_off, &sdp("RTP/SAVP", &[]), 1, true).unwrap().is_empty());
        assert!(c.monologues[0].legs[0].dtls.rule().is_none() && c.monologues[0].legs[0].dtls.sdes);
        // SDES-prefer on the offer: SDES
        let mut c = call();
        run(&mut c, &Flags { sdes_prefer: true, ..Default::default() }, &both, 0, false).unwrap();
        assert!(!c.monologues[0].legs[0].dtls.enabled);
    }

    #[test]
    fn hostile_attributes_are_named() {
        for (a, want) in [
            ("setup:sideways", "unknown a=setup value \"sideways\" (expected active, passive, actpass or holdconn)"),
            ("fingerprint:sha-256 ZZ", "invalid a=fingerprint \"sha-256 ZZ\""),
            ("fingerprint:md5 00:11", "invalid a=fingerprint \"md5 00:11\""),
            ("tls-id:short", "invalid a=tls-id \"short\""),
        ] {
            let e = run(&mut call(), &Flags::default(), &sdp("UDP/TLS/RTP/SAVPF", &[a]), 0, false).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        // several fingerprints: the first usable one
        let several =
            sdp("UDP/TLS/RTP/SAVPF", &["setup:actpass", "fingerprint:sha-3-256 00:11", &format!("fingerprint:{FP}")]);
        let mut c = call();
        run(&mut c, &Flags::default(), &several, 0, false).unwrap();
        assert_eq!(c.monologues[0].legs[0].dtls.remote_fingerprint, Fingerprint::parse(FP));
        // DTLS only while the relay has no certificate
        let offer = sdp("UDP/TLS/RTP/SAVPF", &["setup:actpass", &format!("fingerprint:{FP}")]);
        let s = Section { media: &offer.media[0], index: 0, sender: 0, recipient: 1, is_answer: false };
        let e = negotiate(&mut call(), &Flags::default(), &s, &offer.session, None).unwrap_err();
        assert_eq!(e.to_string(), "UDP/TLS/RTP/SAVPF media with DTLS only, and the relay has no DTLS certificate");
    }

    #[test]
    fn passthrough_with_ice_on_both_sides_and_the_relay_not_forced() {
        let offer = sdp(
            "UDP/TLS/RTP/SAVPF",
            &["ice-ufrag:abcd", "ice-pwd:0123456789012345678901", "setup:actpass", &format!("fingerprint:{FP}")],
        );
        let mut c = call();
        let relay = Flags { ice: Some("force-relay".into()), ..Default::default() };
        assert!(run(&mut c, &relay, &offer, 0, false).unwrap().is_empty());
        assert!(c.monologues[1].legs[0].dtls.passthrough && c.monologues[0].legs[0].dtls.rule().is_none());
        run(&mut c, &Flags::default(), &offer, 1, true).unwrap();
        assert!(c.monologues[0].legs[0].dtls.passthrough, "the answer keeps it");
        assert!(c.monologues.iter().all(|m| m.legs[0].dtls.rule().is_none()));
        // ICE=force puts the relay in the path: DTLS is terminated
        let mut c = call();
        let force = Flags { ice: Some("force".into()), ..Default::default() };
        assert!(!run(&mut c, &force, &offer, 0, false).unwrap().is_empty());
        assert!(!c.monologues[1].legs[0].dtls.passthrough);
    }

    #[test]
    fn test_identity_fingerprints() {
        let id = test_identity();
        assert_eq!(fingerprint_of(&id, HashFunction::Sha256), id.fingerprint);
        for h in [HashFunction::Sha1, HashFunction::Sha224, HashFunction::Sha384, HashFunction::Sha512] {
            assert_eq!(fingerprint_of(&id, h).value.len(), h.len());
        }
    }
}
