//! The flag vocabulary as operators' configs write it, turned into the ng dictionary keys
//! it stands for.
//!
//! Kamailio's two-argument `rtpengine_offer(flags, via-branch)` (its `rtpp-flags` mode)
//! sends the configured string unparsed under `rtpp-flags`; rtpengine splits it itself
//! (daemon/control_ng_flags_parser.c). The same words also reach us as items of the
//! `flags` list from clients that pass them through. Either way: space-separated items;
//! `key=value` stands for the dictionary key `key` (a `[a b]` value for a list); the
//! transport words `RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, ... and the combinable
//! `RTP`, `AVP`, `SRTP`, `AVPF`, `DTLS` make one `transport-protocol`; the rest are flags.
//! Keys the request already has win over the same key in `rtpp-flags`.

use crate::bencode::Value;
use crate::ng::flags::{Flags, FlagsError};

/// Most items one request's `rtpp-flags` string may hold (a real config has ~20).
pub const MAX_ITEMS: usize = 512;

/// The RTP transports rtpengine knows, by the bits its parser combines: 1 SRTP, 2 AVPF,
/// 4 DTLS (UDP/TLS/RTP/SAVP without AVPF is 4|1; DTLS implies SRTP).
const TRANSPORTS: [(u8, &str); 6] = [
    (0, "RTP/AVP"),
    (1, "RTP/SAVP"),
    (2, "RTP/AVPF"),
    (3, "RTP/SAVPF"),
    (5, "UDP/TLS/RTP/SAVP"),
    (7, "UDP/TLS/RTP/SAVPF"),
];

/// The canonical spelling of a `transport-protocol` value (any letter case), or "accept";
/// None for anything else (such a value must never reach an m= line).
pub fn transport(p: &str) -> Option<&'static str> {
    if p.trim().eq_ignore_ascii_case("accept") {
        return Some("accept");
    }
    TRANSPORTS.iter().map(|(_, t)| *t).find(|t| t.eq_ignore_ascii_case(p.trim()))
}

/// rtpengine's `WebRTC` alias: what a browser leg needs.
pub fn webrtc(f: &mut Flags) {
    f.transport_protocol = Some("UDP/TLS/RTP/SAVPF".into());
    f.ice = Some("force".into());
    f.trickle_ice = true;
    f.rtcp_mux.extend(["offer".to_string(), "require".to_string()]);
    f.no_rtcp_attr = true;
    f.sdes_off = true;
    f.generate_mid = true;
}

/// Kamailio's `via-branch=` values name which Via the proxy takes the branch from; only
/// the proxy can resolve them (it sends the result as the `via-branch` key).
const VIA_BRANCH_DIRECTIVES: [&str; 7] = ["1", "2", "auto", "extra", "next", "auto-next", "auto-extra"];

/// One item: a word, or `key=value` with the value a string or a `[..]` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Word(String),
    Pair(String, Value),
}

/// Splits the string into items; a `[` value runs to its matching `]`.
fn items(raw: &str, out: &mut Vec<Item>) -> Result<(), FlagsError> {
    let mut words = raw.split([' ', '\t', '\r', '\n']).filter(|w| !w.is_empty());
    while let Some(w) = words.next() {
        if out.len() >= MAX_ITEMS {
            return Err(FlagsError::RtppFlagsTooMany(out.len() + 1 + words.count()));
        }
        let Some((k, v)) = w.split_once('=') else {
            out.push(Item::Word(w.to_string()));
            continue;
        };
        if let Some(first) = v.strip_prefix('[') {
            // a list: up to the closing bracket (nested lists are not used by any flag we know)
            let mut list = Vec::new();
            let mut cur = Some(first);
            while let Some(x) = cur {
                let (x, end) = match x.strip_suffix(']') {
                    Some(x) => (x, true),
                    None => (x, false),
                };
                if !x.is_empty() {
                    if list.len() >= MAX_ITEMS {
                        return Err(FlagsError::RtppFlagsTooMany(list.len() + 1));
                    }
                    list.push(Value::str(x));
                }
                cur = if end { None } else { words.next() };
            }
            out.push(Item::Pair(k.to_string(), Value::List(list)));
        } else {
            out.push(Item::Pair(k.to_string(), Value::str(v)));
        }
    }
    Ok(())
}

/// The key a `key=value` item stands for, as rtpengine spells it in the dictionary.
fn dict_key(k: &str) -> String {
    let n = crate::ng::flags::normalize(k);
    match n.as_str() {
        "ice" => "ICE".into(),
        "dtls" => "DTLS".into(),
        "dtls-reverse" => "DTLS-reverse".into(),
        "dtls-fingerprint" => "DTLS-fingerprint".into(),
        "sdes" => "SDES".into(),
        "osrtp" => "OSRTP".into(),
        "address-family" => "address-family".into(),
        _ => n,
    }
}

/// Keys whose value is a list (a single `key=value` adds one item).
const LIST_KEYS: [&str; 6] = ["SDES", "rtcp-mux", "replace", "direction", "DTLS", "OSRTP"];

/// The request with `rtpp-flags` and the `key=value` / transport items of `flags` turned
/// into dictionary keys; plain flags stay in `flags`.
pub fn merge(req: &Value) -> Result<std::borrow::Cow<'_, Value>, FlagsError> {
    let mut list = Vec::new();
    if let Some(raw) = req.get("rtpp-flags").and_then(Value::as_str) {
        items(raw, &mut list)?;
    }
    let from_rtpp = list.len();
    // (the flags list is bounded by the datagram, as before: only rtpp-flags is counted)
    for f in req.get("flags").map(Value::strings).unwrap_or_default() {
        match f.split_once('=') {
            // a flags-list item is one item even with spaces in it ("SDES-no-F8 128")
            Some((k, v)) => list.push(Item::Pair(k.to_string(), Value::str(v))),
            None => list.push(Item::Word(f)),
        }
    }
    let plain = |i: &Item| matches!(i, Item::Word(w) if transport_word(w, None).is_none() && w != "internal" && w != "external");
    if from_rtpp == 0 && list.iter().all(plain) {
        // nothing to turn into keys: the request as it is (no copy of its SDP)
        return Ok(std::borrow::Cow::Borrowed(req));
    }
    let mut out = req.clone();
    let mut flags = Vec::new();
    let mut transport_bits: Option<u8> = None;
    let mut directions = Vec::new();
    for (n, item) in list.into_iter().enumerate() {
        let explicit = n >= from_rtpp; // from the request's own flags list
        match item {
            Item::Word(w) => match transport_word(&w, transport_bits) {
                Some(bits) => transport_bits = Some(bits),
                None if matches!(w.as_str(), "internal" | "external") => directions.push(Value::str(&w)),
                None => flags.push(Value::str(&w)),
            },
            Item::Pair(k, v) => {
                let key = dict_key(&k);
                match key.as_str() {
                    "via-branch" if v.as_str().is_some_and(|b| VIA_BRANCH_DIRECTIVES.contains(&b)) => {}
                    "direction" => directions.extend(v.strings().iter().map(|s| Value::str(s))),
                    _ if key.starts_with("codec-") => {
                        // codec-strip=PCMA,G729 is the flag codec-strip-PCMA ...
                        for c in v.strings().iter().flat_map(|s| s.split(',').map(str::to_string).collect::<Vec<_>>()) {
                            flags.push(Value::str(&format!("{key}-{c}")));
                        }
                    }
                    _ if LIST_KEYS.contains(&key.as_str()) => {
                        if !explicit && is_from_request(req, &key) {
                            continue; // the request's own key wins over rtpp-flags
                        }
                        let mut all = out.get(&key).map(Value::strings).unwrap_or_default();
                        all.extend(v.strings());
                        out.insert(&key, Value::List(all.iter().map(|s| Value::str(s)).collect()));
                    }
                    _ if !explicit && is_from_request(req, &key) => {}
                    _ => out.insert(&key, v),
                }
            }
        }
    }
    if let Some(bits) = transport_bits {
        if req.get("transport-protocol").is_none() && req.get("transport protocol").is_none() {
            let t = TRANSPORTS.iter().find(|(b, _)| *b == bits).map(|(_, t)| *t).unwrap_or("RTP/AVP");
            out.insert("transport-protocol", Value::str(t));
        }
    }
    if !directions.is_empty() && req.get("direction").is_none() {
        out.insert("direction", Value::List(directions));
    }
    out.insert("flags", Value::List(flags));
    Ok(std::borrow::Cow::Owned(out))
}

fn is_from_request(req: &Value, key: &str) -> bool {
    req.get(key).is_some()
}

/// The transport bits after `w`, if `w` is a transport word: a full protocol replaces,
/// the combinable words add (`SRTP`, `AVPF`, `DTLS`) or remove (`RTP`, `AVP`) a bit.
fn transport_word(w: &str, bits: Option<u8>) -> Option<u8> {
    let cur = bits.unwrap_or(0);
    if let Some((b, _)) = TRANSPORTS.iter().find(|(_, t)| *t == w) {
        return Some(*b);
    }
    Some(match w {
        "RTP" => cur & !1 & !4,
        "AVP" => cur & !2,
        "SRTP" => cur | 1,
        "AVPF" => cur | 2,
        "DTLS" => cur | 4 | 1,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(rtpp: &str) -> Result<Flags, FlagsError> {
        let mut req = Value::dict();
        req.insert("rtpp-flags", Value::str(rtpp));
        Flags::from_request(&req)
    }

    #[test]
    fn a_kamailio_webrtc_to_sip_string() {
        let f = flags(
            "replace-origin replace-session-connection via-branch=extra ICE=remove DTLS=off RTP/AVP \
             rtcp-mux-demux address-family=IP4 trust-address loop-protect SDES-off",
        )
        .unwrap();
        assert!(f.replace_origin && f.replace_session_connection && f.trust_address && f.loop_protect);
        assert!(f.dtls_off && f.sdes_off);
        assert_eq!(f.ice.as_deref(), Some("remove"));
        assert_eq!(f.transport_protocol.as_deref(), Some("RTP/AVP"));
        assert_eq!(f.address_family.as_deref(), Some("IP4"));
        assert!(f.rtcp_mux_has("demux"));
        assert_eq!(f.via_branch, None, "Kamailio's directive, not a branch");
        assert!(f.ignored.is_empty(), "{:?}", f.ignored);
        let f = flags(
            "ICE=force DTLS=passive UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require generate-mid \
             no-rtcp-attribute full-rtcp-attribute",
        )
        .unwrap();
        assert_eq!((f.ice.as_deref(), f.dtls_passive), (Some("force"), Some(true)));
        assert_eq!(f.transport_protocol.as_deref(), Some("UDP/TLS/RTP/SAVPF"));
        assert!(f.rtcp_mux_has("offer") && f.rtcp_mux_has("require") && f.generate_mid);
        assert!(f.no_rtcp_attr && f.full_rtcp_attr);
    }

    #[test]
    fn transport_words_combine_as_rtpengine_does() {
        for (s, want) in [
            ("SRTP AVPF", "RTP/SAVPF"),
            ("SRTP", "RTP/SAVP"),
            ("AVPF", "RTP/AVPF"),
            ("RTP/SAVPF AVP", "RTP/SAVP"),
            ("DTLS AVPF", "UDP/TLS/RTP/SAVPF"),
            ("RTP/SAVP RTP", "RTP/AVP"),
            ("transport-protocol=RTP/SAVPF", "RTP/SAVPF"),
        ] {
            assert_eq!(flags(s).unwrap().transport_protocol.as_deref(), Some(want), "{s}");
        }
    }

    #[test]
    fn webrtc_alias_and_lists() {
        let f = flags("WebRTC").unwrap();
        assert_eq!(f.transport_protocol.as_deref(), Some("UDP/TLS/RTP/SAVPF"));
        assert_eq!(f.ice.as_deref(), Some("force"));
        assert!(f.sdes_off && f.no_rtcp_attr && f.generate_mid && f.rtcp_mux_has("require"));
        let f = flags("rtcp-mux=[offer require] replace=[origin] SDES=[no-NULL_HMAC_SHA1_32 pad]").unwrap();
        assert!(f.rtcp_mux_has("offer") && f.rtcp_mux_has("require") && f.replace_origin && f.sdes_pad);
        assert_eq!(f.sdes_no, vec!["null-hmac-sha1-32"]);
        let f = flags("codec-strip=PCMA,G729 direction=pub direction=priv DTLS-fingerprint=sha-1").unwrap();
        assert_eq!(f.codec_strip, vec!["PCMA", "G729"]);
        assert_eq!(f.direction, vec!["pub", "priv"]);
        assert_eq!(f.dtls_fingerprint, Some(rules::webrtc::HashFunction::Sha1));
    }

    #[test]
    fn the_requests_own_keys_win_and_flags_list_items_count_too() {
        let mut req = Value::dict();
        req.insert("rtpp-flags", Value::str("ICE=force transport-protocol=RTP/SAVP"));
        req.insert("ICE", Value::str("remove"));
        req.insert("flags", Value::List(vec![Value::str("DTLS=passive"), Value::str("RTP/SAVPF")]));
        let f = Flags::from_request(&req).unwrap();
        assert_eq!(f.ice.as_deref(), Some("remove"));
        assert_eq!(f.dtls_passive, Some(true));
        // the request's own flags list comes after rtpp-flags
        assert_eq!(f.transport_protocol.as_deref(), Some("RTP/SAVPF"));
    }

    #[test]
    fn hostile_strings_are_refused_by_name() {
        let huge = "x ".repeat(100_000);
        assert_eq!(flags(&huge).unwrap_err().to_string(), "rtpp-flags has 100000 items, more than 512");
        let e = flags("transport-protocol=RTP/AVP/x").unwrap_err();
        assert!(e.to_string().starts_with("unknown transport-protocol"), "{e}");
        let e = flags("DTLS-fingerprint=md5").unwrap_err();
        assert!(e.to_string().starts_with("unknown DTLS-fingerprint hash \"md5\""), "{e}");
        // an unclosed list, empty values, lone brackets: no panic
        for s in ["rtcp-mux=[offer", "ICE=", "=", "[", "]", "a=[]", "a=[ ] b", "===", "SDES=[]]"] {
            let _ = flags(s);
        }
    }
}
