//! SDES negotiation (RFC 4568) for one media section of an offer or answer: which suites
//! the relay offers each side, which keys each leg decrypts and encrypts with, and the
//! a=crypto lines of the rewritten SDP. Every leg gets keys of its own (a leg's key never
//! protects another leg); a re-offer keeps the keys already offered for the same tag and
//! suite, so a re-INVITE does not re-key.
//!
//! MKIs (RFC 4568 §6.1): a party's key keeps the MKI its line gave (the data plane checks
//! it on every packet). rtpengine never makes an MKI of its own but passes the offerer's
//! keys on, MKI included, so the lines it writes for an MKI-carrying party carry that MKI;
//! relayd writes the same lines with keys of its own: the relay's key under a tag the
//! offerer gave an MKI carries the same MKI (value and length), towards the answerer and
//! in the answer back to the offerer. Suites the relay adds get none, as rtpengine's.

use std::fmt;

use crate::call::Call;
use crate::ng::flags::{self, Flags};
use crate::sdes::{self, Crypto, CryptoError};
use crate::sdp::Media;
use rules::dataplane::{Mki, Suite};

/// Why SDES could not be negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdesError {
    /// An SAVP section whose a=crypto lines are all unusable (the last one's error).
    NoUsableCrypto { proto: String, err: CryptoError },
    /// An SAVP section without a=crypto lines (the protocol named).
    NoCrypto { proto: String },
    /// SDES-no / SDES-only flags removed every suite.
    NoSuiteLeft,
    /// The answer picked a tag and suite the relay did not offer.
    NotOffered { tag: u32, suite: String },
    /// The offerer's SAVP section had no usable a=crypto line to answer with.
    OfferHadNoCrypto,
}

impl fmt::Display for SdesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdesError::NoUsableCrypto { proto, err } => write!(f, "no usable a=crypto line in {proto} media: {err}"),
            SdesError::NoCrypto { proto } => {
                write!(f, "{proto} media without a=crypto line or DTLS (a=setup and a=fingerprint)")
            }
            SdesError::NoSuiteLeft => f.write_str("SDES flags leave no SRTP suite to offer"),
            SdesError::NotOffered { tag, suite } => {
                write!(f, "the answer picks a=crypto tag {tag} ({suite}), which was not offered")
            }
            SdesError::OfferHadNoCrypto => f.write_str("the offer had no usable a=crypto line"),
        }
    }
}

impl std::error::Error for SdesError {}

/// One media section of an SDP on its way from monologue `sender` to `recipient`.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    pub media: &'a Media,
    /// The section's index (the legs' index in both monologues).
    pub index: usize,
    pub sender: usize,
    pub recipient: usize,
    pub is_answer: bool,
}

/// What the recipient's SDP gets: its protocol when it differs from the sender's, and
/// the a=crypto lines that replace the sender's (`Some(empty)`: none).
pub type SdesOut = (Option<String>, Option<Vec<String>>);

fn savp(p: &str) -> bool {
    p.to_ascii_uppercase().contains("SAVP")
}

/// Every usable a=crypto line of the section; an error if there is none.
fn parse_all(m: &Media) -> Result<Vec<Crypto>, SdesError> {
    let mut ok = Vec::new();
    let mut last_err = None;
    for l in m.lines.iter().filter(|l| l.starts_with("a=crypto:")) {
        match sdes::parse(l) {
            Ok(c) => ok.push(c),
            Err(e) => last_err = Some(e),
        }
    }
    if ok.is_empty() {
        let proto = m.m.proto.clone();
        return Err(match last_err {
            Some(err) => SdesError::NoUsableCrypto { proto, err },
            None => SdesError::NoCrypto { proto },
        });
    }
    Ok(ok)
}

/// SDES for one section: updates the legs' keys in `call` and returns what the
/// recipient's SDP carries.
pub fn negotiate(call: &mut Call, flags: &Flags, s: Section<'_>) -> Result<SdesOut, SdesError> {
    let (m, x, y, i) = (s.media, s.sender, s.recipient, s.index);
    let fmt = |c: &Crypto| sdes::format(c, flags.sdes_pad, flags.sdes_lifetime);
    let x_proto = m.m.proto.clone();
    call.monologues[x].legs[i].proto = x_proto.clone();
    if call.monologues[x].legs[i].dtls.passthrough {
        // SRTP end to end (crate::dtls_sdp): the a=crypto lines go through, no keys here
        for l in [x, y] {
            let leg = &mut call.monologues[l].legs[i];
            (leg.srtp_in, leg.srtp_out) = (None, None);
            leg.sdes_relay_offer.clear();
        }
        let y_proto = &call.monologues[y].legs[i].proto;
        let proto = (!s.is_answer && *y_proto != x_proto).then(|| y_proto.clone());
        return Ok((proto, None));
    }
    if !s.is_answer {
        // the recipient's protocol and whether it is offered SDES: crate::dtls_sdp decided
        let y_proto = call.monologues[y].legs[i].proto.clone();
        let proto_out = (y_proto != x_proto).then(|| y_proto.clone());
        let offered = match (savp(&x_proto), call.monologues[x].legs[i].dtls.enabled) {
            (false, _) => Vec::new(),
            // DTLS with the offerer: its a=crypto lines are optional
            (true, true) => parse_all(m).unwrap_or_default(),
            (true, false) => parse_all(m)?,
        };
        call.monologues[x].legs[i].sdes_offered = offered.clone();
        let yl = &mut call.monologues[y].legs[i];
        if !savp(&y_proto) || !yl.dtls.sdes {
            yl.sdes_relay_offer.clear();
            return Ok((proto_out, Some(Vec::new())));
        }
        // the suites to offer: the offerer's first (same tags), then the others
        let allowed = |name: &str| {
            let n = flags::normalize(name);
            !flags.sdes_no.contains(&n) && (flags.sdes_only.is_empty() || flags.sdes_only.contains(&n))
        };
        let mut list: Vec<(u32, Suite, Option<Mki>)> = Vec::new();
        for c in &offered {
            if allowed(c.key.suite.name()) && !list.iter().any(|(_, s, _)| *s == c.key.suite) {
                list.push((c.tag, c.key.suite, c.key.mki.clone()));
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
                    list.push((tag, suite, None));
                }
            }
        }
        if list.is_empty() {
            return Err(SdesError::NoSuiteLeft);
        }
        // a re-offer keeps the keys already offered for the same tag, suite and MKI
        let previous = std::mem::take(&mut yl.sdes_relay_offer);
        yl.sdes_relay_offer = list
            .into_iter()
            .map(|(tag, suite, mki)| {
                previous
                    .iter()
                    .find(|c| c.tag == tag && c.key.suite == suite && c.key.mki == mki)
                    .cloned()
                    .unwrap_or_else(|| Crypto { tag, key: sdes::generate(suite).with_mki(mki) })
            })
            .collect();
        let lines = yl.sdes_relay_offer.iter().map(fmt).collect();
        return Ok((proto_out, Some(lines)));
    }
    // answer from x (answerer) back to y (offerer)
    let chosen = if savp(&x_proto) && !call.monologues[x].legs[i].dtls.enabled {
        let c = parse_all(m)?.remove(0);
        let xl = &mut call.monologues[x].legs[i];
        let ours = xl
            .sdes_relay_offer
            .iter()
            .find(|o| o.tag == c.tag && o.key.suite == c.key.suite)
            .cloned()
            .ok_or_else(|| SdesError::NotOffered { tag: c.tag, suite: c.key.suite.name().to_string() })?;
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
    // `transport-protocol=accept`: the answerer's protocol goes through
    let proto = (y_proto != x_proto && !flags.protocol_accept).then(|| y_proto.clone());
    // a DTLS leg's keys come from the handshake; a leg that offered no SDES gets none
    if !savp(&y_proto) || yl.dtls.enabled || !yl.dtls.sdes {
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
        .ok_or(SdesError::OfferHadNoCrypto)?;
    let out_key = match &yl.srtp_out {
        Some(k) if k.suite == pick.key.suite && k.mki == pick.key.mki => k.clone(),
        _ => sdes::generate(pick.key.suite).with_mki(pick.key.mki.clone()),
    };
    yl.srtp_in = Some(pick.key.clone());
    yl.srtp_out = Some(out_key.clone());
    Ok((proto, Some(vec![fmt(&Crypto { tag: pick.tag, key: out_key })])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Sdp;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn call() -> Call {
        crate::call::tests::two_party_call()
    }

    fn media(proto: &str, crypto: &[&str]) -> Sdp {
        crate::call::tests::audio_sdp(proto, crypto.iter().map(|c| format!("crypto:{c}")))
    }

    fn section(sdp: &Sdp, sender: usize, is_answer: bool) -> Section<'_> {
        Section { media: &sdp.media[0], index: 0, sender, recipient: 1 - sender, is_answer }
    }

    /// crate::dtls_sdp's part first (no DTLS certificate: SDES only), as offer_answer does.
    fn negotiate(c: &mut Call, flags: &Flags, s: Section<'_>) -> Result<SdesOut, SdesError> {
        crate::dtls_sdp::negotiate(c, flags, &s, &[], None).unwrap();
        super::negotiate(c, flags, s)
    }

    #[test]
    fn savp_to_savp_offer_and_answer() {
        let mut c = call();
        let flags = Flags::default();
        let offer = media("RTP/SAVP", &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")]);
        let (proto, lines) = negotiate(&mut c, &flags, section(&offer, 0, false)).unwrap();
        assert_eq!(proto, None);
        let lines = lines.unwrap();
        // the offerer's suite first with its tag, then the others
        assert!(lines[0].starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), "{lines:?}");
        assert!(lines.len() > 1);
        assert!(!lines.iter().any(|l| l.contains(KEY)), "every leg gets keys of its own");
        // the answer picks what the relay offered
        let picked = lines[0].strip_prefix("a=crypto:").unwrap();
        let answer = media("RTP/SAVP", &[picked]);
        let (_, lines) = negotiate(&mut c, &flags, section(&answer, 1, true)).unwrap();
        assert_eq!(lines.unwrap().len(), 1);
        let (a, b) = (&c.monologues[0].legs[0], &c.monologues[1].legs[0]);
        assert!(a.srtp_in.is_some() && a.srtp_out.is_some() && b.srtp_in.is_some() && b.srtp_out.is_some());
    }

    /// An offer whose keys carry MKIs (Lync, gh-1474): accepted; the relay's keys under
    /// those tags carry the same MKIs, its own suites none; a re-offer keeps every key;
    /// each party's key keeps its MKI for the data plane.
    #[test]
    fn mki_offer_answer_and_re_offer() {
        let mut c = call();
        let flags = Flags::default();
        let k2 = "l+ZCWtSLM0RvUvGhovOXXNxnJve4FOfL9ervJeYb";
        let offer = media(
            "RTP/SAVP",
            &[
                &format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:32"),
                &format!("2 AES_CM_128_HMAC_SHA1_32 inline:{k2}|2:32"),
            ],
        );
        let lines = negotiate(&mut c, &flags, section(&offer, 0, false)).unwrap().1.unwrap();
        assert_eq!(lines.len(), 12, "{lines:?}");
        assert!(lines[0].starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") && lines[0].ends_with("|1:32"));
        assert!(lines[1].starts_with("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:") && lines[1].ends_with("|2:32"));
        assert!(!lines[0].contains(KEY) && !lines[1].contains(k2), "fresh keys");
        assert_eq!(lines[2].split(' ').nth(1), Some("AEAD_AES_256_GCM"));
        assert!(lines[2..].iter().all(|l| !l.contains('|')), "{lines:?}");
        assert_eq!(lines[11].split(' ').next(), Some("a=crypto:12"));
        // the same offer again: the same lines
        let again = negotiate(&mut c, &flags, section(&offer, 0, false)).unwrap().1.unwrap();
        assert_eq!(again, lines);
        // the answerer picks tag 2 with an MKI of its own
        let theirs = "8AbZePWwsKhLGX3GlXA+yHYPQ3cgraer/9Dk";
        let answer = media("RTP/SAVP", &[&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{theirs}AAAA|7:1")]);
        let back = negotiate(&mut c, &flags, section(&answer, 1, true)).unwrap().1.unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0].starts_with("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:") && back[0].ends_with("|2:32"));
        let (a, b) = (&c.monologues[0].legs[0], &c.monologues[1].legs[0]);
        let mki = |k: &Option<rules::dataplane::SrtpKey>| k.as_ref().and_then(|k| k.mki.as_ref()).map(|m| m.value());
        assert_eq!((mki(&a.srtp_in), mki(&a.srtp_out)), (Some(2), Some(2)));
        assert_eq!((mki(&b.srtp_in), mki(&b.srtp_out)), (Some(7), Some(2)));
        assert_eq!(b.srtp_out.as_ref().unwrap().mki.as_ref().unwrap().len(), 32);
    }

    #[test]
    fn refusals() {
        let flags = Flags::default();
        let e = negotiate(&mut call(), &flags, section(&media("RTP/SAVP", &[]), 0, false)).unwrap_err();
        assert_eq!(e.to_string(), "RTP/SAVP media without a=crypto line or DTLS (a=setup and a=fingerprint)");
        let bad = media("RTP/SAVP", &["1 SEED_CTR_128_HMAC_SHA1_80 inline:AAAA"]);
        let e = negotiate(&mut call(), &flags, section(&bad, 0, false)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no usable a=crypto line in RTP/SAVP media: unsupported SRTP suite SEED_CTR_128_HMAC_SHA1_80"
        );
        let only = Flags { sdes_only: vec!["nothing".into()], ..Default::default() };
        let avp_to_savp = Flags { transport_protocol: Some("RTP/SAVP".into()), ..only };
        let e = negotiate(&mut call(), &avp_to_savp, section(&media("RTP/AVP", &[]), 0, false)).unwrap_err();
        assert_eq!(e, SdesError::NoSuiteLeft);
        // an answer picking a tag the relay did not offer
        let mut c = call();
        c.monologues[1].legs[0].proto = "RTP/SAVP".into();
        let answer = media("RTP/SAVP", &[&format!("9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")]);
        let e = negotiate(&mut c, &flags, section(&answer, 1, true)).unwrap_err();
        assert_eq!(e.to_string(), "the answer picks a=crypto tag 9 (AES_CM_128_HMAC_SHA1_80), which was not offered");
    }
}
