//! The keys and flags of an ng offer/answer/delete request, as Kamailio's and OpenSIPS's
//! rtpengine modules send them.

use std::net::IpAddr;

use crate::bencode::Value;

#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub trust_address: bool,
    pub asymmetric: bool,
    pub strict_source: bool,
    pub ice: Option<String>,
    /// `ICE-lite` (forward, backward, both, off): see `ice_sdp::IceFlags`.
    pub ice_lite: Option<String>,
    /// `trickle-ICE`: offer trickle ICE to the recipient.
    pub trickle_ice: bool,
    /// `ICE-reject`: the sender's ICE is not answered.
    pub ice_reject: bool,
    /// `no port latching`: a re-offer from a new endpoint gets the recipient new ports.
    pub no_port_latching: bool,
    pub replace_origin: bool,
    pub replace_session_connection: bool,
    pub replace_username: bool,
    pub replace_session_name: bool,
    pub replace_sdp_version: bool,
    pub replace_zero_address: bool,
    /// `direction`: interface towards the offerer, then towards the answerer.
    pub direction: Vec<String>,
    pub from_interface: Option<String>,
    pub to_interface: Option<String>,
    pub address_family: Option<String>,
    pub media_address: Option<IpAddr>,
    pub transport_protocol: Option<String>,
    pub rtcp_mux: Vec<String>,
    pub codec_strip: Vec<String>,
    pub codec_mask: Vec<String>,
    pub codec_except: Vec<String>,
    pub label: Option<String>,
    pub delete_delay: Option<u64>,
    pub received_from: Option<IpAddr>,
    pub via_branch: Option<String>,
    pub sdes_off: bool,
    /// `SDES-no-<suite>`: suites not to offer (normalized names).
    pub sdes_no: Vec<String>,
    /// `SDES-only-<suite>`: the only suites to offer.
    pub sdes_only: Vec<String>,
    /// SDES-nonew: on SAVP -> SAVP, offer only the suites the offerer offered.
    pub sdes_nonew: bool,
    /// SDES-pad: keep base64 padding in inline keys.
    pub sdes_pad: bool,
    /// SDES-lifetime: add the |2^31 lifetime to generated keys.
    pub sdes_lifetime: bool,
    pub dtls_off: bool,
    /// `DTLS=passive` / `DTLS-reverse=passive` (Some(true)) or `DTLS=active` (Some(false)):
    /// the relay's role when it answers an `a=setup:actpass` (crate::dtls_sdp).
    pub dtls_passive: Option<bool>,
    /// `DTLS-fingerprint`: the hash of the fingerprint the relay offers.
    pub dtls_fingerprint: Option<rules::webrtc::HashFunction>,
    /// `SDES-prefer`: an offerer offering both SDES and DTLS gets SDES.
    pub sdes_prefer: bool,
    /// `no-tls-id`: never write a=tls-id.
    pub no_tls_id: bool,
    /// `transport-protocol=accept`: the answer passes the answerer's protocol through.
    pub protocol_accept: bool,
    /// `generate-mid`: a section without a=mid gets `a=mid:<n>` (1-based, as rtpengine).
    pub generate_mid: bool,
    /// `no-rtcp-attribute` / `full-rtcp-attribute`: how a=rtcp is written.
    pub no_rtcp_attr: bool,
    pub full_rtcp_attr: bool,
    /// `loop-protect`: mark the SDP, answer a marked one unchanged (crate::loop_protect).
    pub loop_protect: bool,
    /// `fatal`: a delete that finds nothing is an error (rtpengine: a warning).
    pub fatal: bool,
    /// `passthrough` / `no-passthrough`: SDES and DTLS end to end, or terminated.
    pub passthrough_on: bool,
    pub passthrough_off: bool,
    /// `record-call` / `record call` (yes, on, no, off, discard), the `record-call` and
    /// `discard-recording` flags (crate::recording).
    pub record_call: Option<crate::recording::RecordCall>,
    /// Flags we accept and ignore (logged at debug level).
    pub ignored: Vec<String>,
}

/// A flag or key whose value cannot be used (the text is the ng error reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagsError {
    /// `address-family` other than IP4 or IP6 (upper-cased as given).
    AddressFamily(String),
    /// `media-address` that is not an IP address.
    MediaAddress(String),
    DeleteDelayNotANumber,
    /// `delete-delay` above [`MAX_DELETE_DELAY`].
    DeleteDelayTooLong(i64),
    /// `DTLS-fingerprint` naming no hash function relayd knows.
    DtlsFingerprint(String),
    /// `transport-protocol` naming no RTP transport.
    TransportProtocol(String),
    /// `rtpp-flags` with more items than [`crate::ng::rtpp_flags::MAX_ITEMS`].
    RtppFlagsTooMany(usize),
    /// `record-call` other than yes, on, no, off or discard.
    RecordCall(String),
}

impl std::fmt::Display for FlagsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagsError::AddressFamily(af) => write!(f, "invalid address-family {af:?} (expected IP4 or IP6)"),
            FlagsError::MediaAddress(ma) => write!(f, "invalid media-address {ma:?}"),
            FlagsError::DeleteDelayNotANumber => f.write_str("delete-delay is not a number"),
            FlagsError::DeleteDelayTooLong(d) => {
                write!(f, "delete-delay {d} is more than a day ({MAX_DELETE_DELAY} s)")
            }
            FlagsError::DtlsFingerprint(h) => write!(
                f,
                "unknown DTLS-fingerprint hash {:?} (expected sha-1, sha-224, sha-256, sha-384 or sha-512)",
                crate::ng::log_text(h.as_bytes(), 40)
            ),
            FlagsError::TransportProtocol(p) => write!(
                f,
                "unknown transport-protocol {:?} (expected RTP/AVP, RTP/AVPF, RTP/SAVP, RTP/SAVPF, \
                 UDP/TLS/RTP/SAVP, UDP/TLS/RTP/SAVPF or accept)",
                crate::ng::log_text(p.as_bytes(), 40)
            ),
            FlagsError::RecordCall(v) => write!(
                f,
                "invalid record-call {:?} (expected yes, on, no, off or discard)",
                crate::ng::log_text(v.as_bytes(), 40)
            ),
            FlagsError::RtppFlagsTooMany(n) => {
                write!(f, "rtpp-flags has {n} items, more than {}", crate::ng::rtpp_flags::MAX_ITEMS)
            }
        }
    }
}

impl std::error::Error for FlagsError {}

/// Longest `delete-delay` a request may ask for (seconds).
pub const MAX_DELETE_DELAY: u64 = 86_400;

/// rtpengine matches flags case-insensitively and treats `_` and ` ` like `-`.
pub fn normalize(flag: &str) -> String {
    flag.trim().to_ascii_lowercase().replace(['_', ' '], "-")
}

impl Flags {
    pub fn from_request(req: &Value) -> Result<Flags, FlagsError> {
        // `rtpp-flags` (Kamailio's raw string) and `key=value` / transport items of the
        // flags list become the dictionary keys they stand for
        let merged = crate::ng::rtpp_flags::merge(req)?;
        let req: &Value = &merged;
        let mut f = Flags::default();
        let get_str = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(flags) = req.get("flags") {
            for raw in flags.strings() {
                f.apply_flag(&raw);
            }
        }
        if let Some(r) = req.get("replace") {
            for x in r.strings() {
                match normalize(&x).as_str() {
                    "origin" => f.replace_origin = true,
                    "origin-full" | "full-origin" => {
                        f.replace_origin = true;
                        f.replace_username = true;
                        f.replace_sdp_version = true;
                    }
                    "session-connection" | "session-c-line" => f.replace_session_connection = true,
                    "username" => f.replace_username = true,
                    "session-name" => f.replace_session_name = true,
                    "sdp-version" | "force-increment-sdp-version" => f.replace_sdp_version = true,
                    "zero-address" => f.replace_zero_address = true,
                    other => f.ignored.push(format!("replace:{other}")),
                }
            }
        }
        if let Some(ice) = get_str("ICE") {
            f.ice = Some(normalize(&ice));
        }
        if let Some(lite) = get_str("ICE-lite") {
            f.ice_lite = Some(normalize(&lite));
        }
        if let Some(d) = req.get("direction") {
            f.direction = d.strings();
        }
        f.from_interface = get_str("from-interface");
        f.to_interface = get_str("to-interface");
        if let Some(af) = get_str("address-family").or_else(|| get_str("address family")) {
            let af = af.to_ascii_uppercase();
            if af != "IP4" && af != "IP6" {
                return Err(FlagsError::AddressFamily(af));
            }
            f.address_family = Some(af);
        }
        if let Some(ma) = get_str("media-address") {
            f.media_address = Some(ma.parse().map_err(|_| FlagsError::MediaAddress(ma))?);
        }
        if let Some(p) = get_str("transport-protocol").or_else(|| get_str("transport protocol")) {
            match crate::ng::rtpp_flags::transport(&p) {
                Some("accept") => f.protocol_accept = true,
                Some(t) => f.transport_protocol = Some(t.to_string()),
                None => return Err(FlagsError::TransportProtocol(p)),
            }
        }
        if let Some(r) = req.get("rtcp-mux") {
            f.rtcp_mux.extend(r.strings().iter().map(|s| normalize(s)));
        }
        if let Some(c) = req.get("codec") {
            let list = |k: &str| c.get(k).map(Value::strings).unwrap_or_default();
            f.codec_strip.extend(list("strip"));
            f.codec_mask.extend(list("mask"));
            f.codec_except.extend(list("except"));
            f.codec_except.extend(list("consume"));
        }
        f.label = get_str("label");
        if let Some(v) = req.get("delete-delay") {
            let d = v.as_int().ok_or(FlagsError::DeleteDelayNotANumber)?;
            if d > MAX_DELETE_DELAY as i64 {
                return Err(FlagsError::DeleteDelayTooLong(d));
            }
            f.delete_delay = Some(d.max(0) as u64);
        }
        if let Some(rf) = req.get("received-from") {
            let parts = rf.strings();
            if let Some(addr) = parts.last() {
                f.received_from = addr.parse().ok();
            }
        }
        f.via_branch = get_str("via-branch");
        // a list, as rtpengine 10.5 reads it: a plain string value is ignored (the
        // conformance cases send `SDES: "off"` and expect SDES; rtpp-flags' `SDES=off`
        // arrives here as a list)
        if let Some(s @ Value::List(_)) = req.get("SDES") {
            for x in s.strings() {
                f.apply_flag(&format!("SDES-{x}"));
            }
        }
        for key in ["DTLS", "DTLS-reverse"] {
            for d in req.get(key).map(Value::strings).unwrap_or_default() {
                match normalize(&d).as_str() {
                    "off" | "no" | "disable" | "disabled" => f.dtls_off = true,
                    "passive" => f.dtls_passive = Some(true),
                    "active" => f.dtls_passive = Some(false),
                    other => f.ignored.push(format!("{key}={other}")),
                }
            }
        }
        if let Some(h) = get_str("DTLS-fingerprint").or_else(|| get_str("DTLS fingerprint")) {
            let hash = rules::webrtc::HashFunction::from_name(&h).ok_or(FlagsError::DtlsFingerprint(h))?;
            f.dtls_fingerprint = Some(hash);
        }
        if let Some(v) = get_str("record-call").or_else(|| get_str("record call")) {
            f.record_call = Some(crate::recording::RecordCall::parse(&v).ok_or(FlagsError::RecordCall(v))?);
        }
        for k in ["trust-address", "asymmetric", "strict-source", "symmetric"] {
            if req.get(k).is_some() {
                f.apply_flag(k);
            }
        }
        Ok(f)
    }

    fn apply_flag(&mut self, raw: &str) {
        let n = normalize(raw);
        // codec flags keep the codec name's case
        let tail = |prefix: &str| raw.trim().get(prefix.len()..).map(str::to_string);
        match n.as_str() {
            "trust-address" => self.trust_address = true,
            "asymmetric" => self.asymmetric = true,
            "symmetric" => self.asymmetric = false,
            "strict-source" => self.strict_source = true,
            "sdes-off" | "sdes-no" | "sdes-disable" => self.sdes_off = true,
            "trickle-ice" => self.trickle_ice = true,
            "ice-reject" | "reject-ice" => self.ice_reject = true,
            "no-port-latching" => self.no_port_latching = true,
            "port-latching" => self.no_port_latching = false,
            // rtpp-flags style `ICE=force` / `ICE-lite=backward` in the flags list
            _ if n.starts_with("ice=") => self.ice = n.strip_prefix("ice=").map(str::to_string),
            _ if n.starts_with("ice-lite=") => self.ice_lite = n.strip_prefix("ice-lite=").map(str::to_string),
            "sdes-prefer" => self.sdes_prefer = true,
            "no-tls-id" => self.no_tls_id = true,
            "generate-mid" => self.generate_mid = true,
            "no-rtcp-attribute" => self.no_rtcp_attr = true,
            "full-rtcp-attribute" => self.full_rtcp_attr = true,
            "loop-protect" => self.loop_protect = true,
            "fatal" => self.fatal = true,
            "passthrough" => self.passthrough_on = true,
            "no-passthrough" => self.passthrough_off = true,
            "webrtc" => crate::ng::rtpp_flags::webrtc(self),
            "record-call" => self.record_call = Some(crate::recording::RecordCall::On),
            "discard-recording" => self.record_call = Some(crate::recording::RecordCall::Discard),
            _ if n.starts_with("rtcp-mux-") => self.rtcp_mux.extend(n.strip_prefix("rtcp-mux-").map(str::to_string)),
            "sdes-nonew" => self.sdes_nonew = true,
            "sdes-pad" => self.sdes_pad = true,
            "sdes-lifetime" => self.sdes_lifetime = true,
            _ if n.starts_with("sdes-no-") => self.sdes_no.extend(n.strip_prefix("sdes-no-").map(str::to_string)),
            _ if n.starts_with("sdes-only-") => self.sdes_only.extend(n.strip_prefix("sdes-only-").map(str::to_string)),
            _ if n.starts_with("codec-strip-") => self.codec_strip.extend(tail("codec-strip-")),
            _ if n.starts_with("codec-mask-") => self.codec_mask.extend(tail("codec-mask-")),
            _ if n.starts_with("codec-except-") => self.codec_except.extend(tail("codec-except-")),
            _ if n.starts_with("replace-") => {
                let what = n.strip_prefix("replace-").unwrap_or_default();
                match what {
                    "origin" => self.replace_origin = true,
                    "session-connection" => self.replace_session_connection = true,
                    "username" => self.replace_username = true,
                    "session-name" => self.replace_session_name = true,
                    "sdp-version" => self.replace_sdp_version = true,
                    "zero-address" => self.replace_zero_address = true,
                    _ => self.ignored.push(n.clone()),
                }
            }
            _ => self.ignored.push(n),
        }
    }

    pub fn rtcp_mux_has(&self, what: &str) -> bool {
        self.rtcp_mux.iter().any(|x| x == what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamailio_style_request() {
        let mut req = Value::dict();
        req.insert(
            "flags",
            Value::List(vec!["trust-address".into(), "codec-mask-opus".into(), "Strict Source".into()]),
        );
        req.insert("replace", Value::List(vec!["origin".into(), "session-connection".into()]));
        req.insert("ICE", "remove".into());
        req.insert("direction", Value::List(vec!["pub".into(), "priv".into()]));
        req.insert("received-from", Value::List(vec!["IP4".into(), "192.0.2.7".into()]));
        req.insert("delete-delay", "5".into());
        let f = Flags::from_request(&req).unwrap();
        assert!(f.trust_address && f.strict_source && f.replace_origin && f.replace_session_connection);
        assert_eq!(f.codec_mask, vec!["opus"]);
        assert_eq!(f.ice.as_deref(), Some("remove"));
        assert_eq!(f.direction, vec!["pub", "priv"]);
        assert_eq!(f.received_from, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(f.delete_delay, Some(5));
    }

    #[test]
    fn bad_values_are_errors() {
        let mut req = Value::dict();
        req.insert("address-family", "IPX".into());
        let e = Flags::from_request(&req).unwrap_err();
        assert_eq!(e, FlagsError::AddressFamily("IPX".into()));
        assert_eq!(e.to_string(), "invalid address-family \"IPX\" (expected IP4 or IP6)");
        let mut req = Value::dict();
        req.insert("media-address", "nope".into());
        assert!(Flags::from_request(&req).is_err());
        for (d, ok) in [("86400", true), ("86401", false), ("9223372036854775807", false), ("-5", true)] {
            let mut req = Value::dict();
            req.insert("delete-delay", d.into());
            assert_eq!(Flags::from_request(&req).is_ok(), ok, "{d}");
        }
    }
}
