//! The ng conformance suite (../shared/conformance, rtpengine's own cases) run in-process
//! against the in-memory relay: the same cases, skips and comparison as
//! scripts/conformance.sh with ng_conformance.py against the daemon, without a release
//! build, sockets or a daemon.
//!
//! The skips are read from scripts/conformance.sh (its `exclude=` regex and `--skip-tag`
//! options), so the daemon run and this one skip the same cases for the reasons written
//! there. The comparison is ng_conformance.py's default (semantic) one, ported:
//! m= sections in order, each section's lines as a multiset of template matches, the
//! effective c= per section, allocated ports in range and distinct, `sdp_checks`, the
//! port and ICE/DTLS-identity bookkeeping across steps, the reply checks (`expect`) and
//! cookie-cache retransmissions.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use control::bencode::Value;
use control::engine::EngineConfig;
use control::interface::Interface;
use regex::Regex;
use rules::addrpolicy::AddressPolicy;
use serde_json::Value as Json;
use sim::Relay;

const PORT_MIN: u16 = 30000;
const PORT_MAX: u16 = 40000;
/// The daemon's ng address in scripts/conformance.sh.
const NG_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2223);
/// The runner's source address (any port outside the relay's own).
const RUNNER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 45678);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Where the suite is: $CONFORMANCE_DIR, else ../shared/conformance (as the script).
fn suite_dir() -> PathBuf {
    std::env::var_os("CONFORMANCE_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/conformance"))
}

/// The skips of scripts/conformance.sh: the `exclude=` regex on case ids and the tags.
struct Skips {
    exclude: Regex,
    tags: Vec<String>,
}

fn skips() -> Skips {
    let script = std::fs::read_to_string(repo_root().join("scripts/conformance.sh")).expect("scripts/conformance.sh");
    let exclude = Regex::new(r"(?m)^exclude='([^']*)'").unwrap().captures(&script).expect("exclude= in the script")[1]
        .to_string();
    let tags = Regex::new(r"--skip-tag\s+(\S+)").unwrap().captures_iter(&script).map(|c| c[1].to_string()).collect();
    Skips { exclude: Regex::new(&exclude).expect("the exclude regex"), tags }
}

/// A daemon profile: its interfaces (as the script's relayd options) and the relay
/// addresses the templates name.
struct Profile {
    name: &'static str,
    interfaces: &'static [&'static str],
    relay: [(&'static str, &'static str); 4],
}

const PROFILES: [Profile; 2] = [
    Profile {
        name: "main",
        interfaces: &["127.0.0.1", "::1"],
        relay: [("RELAY4B", "127.0.0.2"), ("RELAY6B", "::1"), ("RELAY4", "127.0.0.1"), ("RELAY6", "::1")],
    },
    Profile {
        name: "intfs",
        interfaces: &["foo/127.0.0.1", "bar/127.0.0.2"],
        relay: [("RELAY4B", "127.0.0.2"), ("RELAY6B", "::1"), ("RELAY4", "127.0.0.1"), ("RELAY6", "::1")],
    },
];

/// The engine configuration relayd builds from the script's options (relayd's
/// `Config::address_policy`: own addresses and ports, loopback lab mode).
fn engine_config(p: &Profile) -> EngineConfig {
    let interfaces: Vec<Interface> = p.interfaces.iter().map(|s| Interface::parse(s).unwrap()).collect();
    let addrs: Vec<_> = interfaces.iter().map(|i| (i.local, i.advertised)).collect();
    // as relayd builds it (relayd::config::Config::address_policy)
    let media_policy = AddressPolicy::for_relay(&addrs, &[NG_LISTEN], (PORT_MIN, PORT_MAX), Vec::new(), Vec::new());
    EngineConfig { interfaces, port_min: PORT_MIN, port_max: PORT_MAX, media_policy, ..EngineConfig::default() }
}

// ------------------------------------------------------------------ templates

/// Longer tokens first, as the runner's table.
const PLACEHOLDERS: [(&str, &str); 14] = [
    ("CRYPTO128S", r"[0-9a-zA-Z/+]{38}"),
    ("CRYPTO128", r"[0-9a-zA-Z/+]{40}"),
    ("CRYPTO192", r"[0-9a-zA-Z/+]{51}"),
    ("CRYPTO256S", r"[0-9a-zA-Z/+]{59}"),
    ("CRYPTO256", r"[0-9a-zA-Z/+]{62}"),
    ("FINGERPRINT256", r"[0-9a-fA-F:]{95}"),
    ("FINGERPRINT", r"[0-9a-fA-F:]{59}"),
    ("ICEBASE", r"[0-9a-zA-Z]{16}"),
    ("ICEUFRAG", r"[0-9a-zA-Z]{8}"),
    ("ICEPWD", r"[0-9a-zA-Z]{26}"),
    ("LOOPER", r"[0-9a-f]{12}"),
    ("SDP_VERSION", r"\d+ \d+"),
    ("RTPE_VERSION", r"rtpengine-\S+"),
    ("PORT", r"(\d{1,5})"),
];

struct Ctx {
    relay: HashMap<&'static str, &'static str>,
    token: Regex,
    cache: HashMap<String, Regex>,
}

impl Ctx {
    fn new(p: &Profile) -> Ctx {
        let mut toks: Vec<&str> = PLACEHOLDERS.iter().map(|(t, _)| *t).chain(p.relay.iter().map(|(t, _)| *t)).collect();
        toks.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let alt = toks.iter().map(|t| regex::escape(t)).collect::<Vec<_>>().join("|");
        Ctx { relay: p.relay.iter().copied().collect(), token: Regex::new(&alt).unwrap(), cache: HashMap::new() }
    }

    /// Relay placeholders in input data (SDP sent, params).
    fn subst(&self, s: &str) -> String {
        let mut s = s.to_string();
        for t in ["RELAY4B", "RELAY6B", "RELAY4", "RELAY6"] {
            s = s.replace(t, self.relay[t]);
        }
        s
    }

    /// One template line as an anchored regex; a literal '?' matches any one character.
    fn line_regex(&mut self, tline: &str) -> &Regex {
        if !self.cache.contains_key(tline) {
            let lit = |t: &str| t.split('?').map(regex::escape).collect::<Vec<_>>().join(".");
            let mut out = String::new();
            let mut pos = 0;
            for m in self.token.find_iter(tline) {
                out.push_str(&lit(&tline[pos..m.start()]));
                let tok = m.as_str();
                match self.relay.get(tok) {
                    Some(a) => out.push_str(&regex::escape(a)),
                    None => out.push_str(PLACEHOLDERS.iter().find(|(t, _)| *t == tok).unwrap().1),
                }
                pos = m.end();
            }
            out.push_str(&lit(&tline[pos..]));
            let re = Regex::new(&format!("^(?:{out})$")).expect("template regex");
            self.cache.insert(tline.to_string(), re);
        }
        &self.cache[tline]
    }

    fn matches(&mut self, tline: &str, line: &str) -> bool {
        self.line_regex(tline).is_match(line)
    }
}

fn sdp_lines(s: &str) -> Vec<String> {
    s.replace("\r\n", "\n").split('\n').filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn split_sections(lines: Vec<String>) -> (Vec<String>, Vec<Vec<String>>) {
    let (mut sess, mut medias) = (Vec::new(), Vec::<Vec<String>>::new());
    for l in lines {
        if l.starts_with("m=") {
            medias.push(vec![l]);
        } else if let Some(m) = medias.last_mut() {
            m.push(l);
        } else {
            sess.push(l);
        }
    }
    (sess, medias)
}

fn conn_of(lines: &[String]) -> Option<&String> {
    lines.iter().find(|l| l.starts_with("c="))
}

/// Maximum matching of template lines to actual lines: the unmatched of each side.
fn bipartite(ctx: &mut Ctx, exp: &[String], act: &[String]) -> (Vec<usize>, Vec<usize>) {
    let adj: Vec<Vec<usize>> =
        exp.iter().map(|e| (0..act.len()).filter(|&j| ctx.matches(e, &act[j])).collect()).collect();
    let mut match_a: HashMap<usize, usize> = HashMap::new();
    fn try_e(i: usize, adj: &[Vec<usize>], seen: &mut Vec<bool>, match_a: &mut HashMap<usize, usize>) -> bool {
        for &j in &adj[i] {
            if seen[j] {
                continue;
            }
            seen[j] = true;
            let free = match match_a.get(&j) {
                None => true,
                Some(&k) => try_e(k, adj, seen, match_a),
            };
            if free {
                match_a.insert(j, i);
                return true;
            }
        }
        false
    }
    for i in 0..exp.len() {
        try_e(i, &adj, &mut vec![false; act.len()], &mut match_a);
    }
    let assigned: Vec<usize> = match_a.values().copied().collect();
    let um_e = (0..exp.len()).filter(|i| !assigned.contains(i)).collect();
    let um_a = (0..act.len()).filter(|j| !match_a.contains_key(j)).collect();
    (um_e, um_a)
}

fn static_rtpmap(l: &str) -> Option<u32> {
    let rest = l.strip_prefix("a=rtpmap:")?;
    let (pt, _) = rest.split_once(' ')?;
    pt.parse().ok().filter(|_| pt.bytes().all(|b| b.is_ascii_digit()))
}

fn m_port(m: &str) -> Option<u16> {
    m.split(' ').nth(1)?.split('/').next()?.parse().ok()
}

fn rtcp_port(l: &str) -> Option<u32> {
    let d: String = l.strip_prefix("a=rtcp:")?.chars().take_while(char::is_ascii_digit).collect();
    d.parse().ok()
}

/// ng_conformance.py's `semantic_match` (not --lenient): the errors and the RTP ports.
fn semantic_match(ctx: &mut Ctx, exp_sdp: &str, act_sdp: &str, in_sdp: &str) -> (Vec<String>, Vec<u16>) {
    let mut errors = Vec::new();
    let (e_sess, e_med) = split_sections(sdp_lines(exp_sdp));
    let (a_sess, a_med) = split_sections(sdp_lines(act_sdp));
    let (_, i_med) = split_sections(sdp_lines(in_sdp));
    if e_med.len() != a_med.len() {
        errors.push(format!("expected {} m= sections, got {}", e_med.len(), a_med.len()));
        return (errors, Vec::new());
    }
    let mut cmp_block = |ctx: &mut Ctx, label: &str, e: &[String], a: &[String], input: &[String]| {
        let e_nc: Vec<String> = e.iter().filter(|x| !x.starts_with("c=")).cloned().collect();
        let a_nc: Vec<String> = a.iter().filter(|x| !x.starts_with("c=")).cloned().collect();
        let (um_e, um_a) = bipartite(ctx, &e_nc, &a_nc);
        let in_pts: Vec<u32> = input.iter().filter_map(|x| static_rtpmap(x)).collect();
        for i in um_e {
            // a static payload type's a=rtpmap the relay did not add is only a warning
            let optional = static_rtpmap(&e_nc[i]).is_some_and(|pt| pt < 35 && !in_pts.contains(&pt));
            if !optional {
                errors.push(format!("{label}: missing line matching {:?}", e_nc[i]));
            }
        }
        for j in um_a {
            errors.push(format!("{label}: unexpected line {:?}", a_nc[j]));
        }
    };
    cmp_block(ctx, "session", &e_sess, &a_sess, &[]);
    let mut errors2 = Vec::new();
    let mut ports = Vec::new();
    for (k, (em, am)) in e_med.iter().zip(&a_med).enumerate() {
        let label = format!("media#{k}({})", am[0][2..].split(' ').next().unwrap_or(""));
        let im = i_med.get(k).cloned().unwrap_or_default();
        cmp_block(ctx, &label, em, am, &im);
        if let Some(ec) = conn_of(em).or(conn_of(&e_sess)) {
            match conn_of(am).or(conn_of(&a_sess)) {
                None => errors2.push(format!("{label}: no effective c= line (expected {ec:?})")),
                Some(ac) if !ctx.matches(ec, ac) => {
                    errors2.push(format!("{label}: effective c= is {ac:?}, expected {ec:?}"))
                }
                Some(_) => {}
            }
        }
        let Some(port) = m_port(&am[0]) else {
            errors2.push(format!("{label}: malformed m= line {:?}", am[0]));
            continue;
        };
        let range = PORT_MIN..=PORT_MAX;
        if em[0].split(' ').nth(1).unwrap_or("").contains("PORT") && port != 0 {
            if !range.contains(&port) {
                errors2.push(format!("{label}: allocated port {port} outside {PORT_MIN}..{PORT_MAX}"));
            }
            ports.push(port);
        }
        let literal: Vec<&String> = em.iter().filter(|x| !x.contains("PORT") && !x.contains('?')).collect();
        let tpl_has_port = em.concat().contains("PORT");
        for ln in am {
            let Some(rp) = rtcp_port(ln) else { continue };
            if literal.contains(&ln) || !tpl_has_port {
                continue;
            }
            let in_range = (PORT_MIN as u32..=PORT_MAX as u32).contains(&rp);
            if !in_range && port != 0 && em.iter().any(|x| x.starts_with("a=rtcp:PORT")) {
                errors2.push(format!("{label}: rtcp port {rp} outside range"));
            }
        }
    }
    errors.extend(errors2);
    let bundle = a_sess.iter().any(|x| x.starts_with("a=group:BUNDLE"));
    let mut uniq = ports.clone();
    uniq.sort();
    uniq.dedup();
    if !bundle && uniq.len() != ports.len() {
        errors.push(format!("same RTP port allocated to several media sections: {ports:?}"));
    }
    (errors, a_med.iter().map(|m| m_port(&m[0]).unwrap_or(0)).collect())
}

/// ng_conformance.py's `sdp_checks`.
fn sdp_checks(names: &[String], act_sdp: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (_, medias) = split_sections(sdp_lines(act_sdp));
    for (k, m) in medias.iter().enumerate() {
        let port = m_port(&m[0]).unwrap_or(0) as u32;
        if port == 0 {
            continue;
        }
        let rtcp: Vec<u32> = m.iter().filter_map(|x| rtcp_port(x)).collect();
        let mux = m.iter().any(|x| x == "a=rtcp-mux");
        for n in names {
            match n.as_str() {
                "rtcp_adjacent" => {
                    for r in &rtcp {
                        if *r != port + 1 && !(mux && *r == port) {
                            errs.push(format!("media#{k}: a=rtcp:{r} is not RTP port {port} + 1"));
                        }
                    }
                }
                "rtcp_muxed" => {
                    if !mux {
                        errs.push(format!("media#{k}: a=rtcp-mux missing"));
                    }
                    for r in &rtcp {
                        if *r != port {
                            errs.push(format!("media#{k}: muxed a=rtcp:{r} differs from RTP port {port}"));
                        }
                    }
                }
                "no_rtcp_attr" if !rtcp.is_empty() => errs.push(format!("media#{k}: a=rtcp present")),
                "no_crypto" if m.iter().any(|x| x.starts_with("a=crypto:")) => {
                    errs.push(format!("media#{k}: a=crypto present"))
                }
                "crypto_present" if !m.iter().any(|x| x.starts_with("a=crypto:")) => {
                    errs.push(format!("media#{k}: no a=crypto line"))
                }
                "no_ice"
                    if m.iter()
                        .any(|x| ["a=candidate:", "a=ice-ufrag:", "a=ice-pwd:"].iter().any(|p| x.starts_with(p))) =>
                {
                    errs.push(format!("media#{k}: ICE attributes present"))
                }
                "no_rtcp_attr" | "no_crypto" | "crypto_present" | "no_ice" => {}
                other => errs.push(format!("unknown sdp check {other:?}")),
            }
        }
    }
    errs
}

const IDENTITY_ATTRS: [&str; 5] = ["ice-ufrag", "ice-pwd", "fingerprint", "setup", "tls-id"];

/// Per media section, the ICE/DTLS identity attributes (session-level ones inherited).
fn media_attrs(act_sdp: &str) -> Vec<BTreeMap<String, String>> {
    let (sess, medias) = split_sections(sdp_lines(act_sdp));
    let grab = |lines: &[String]| {
        let mut d = BTreeMap::new();
        for ln in lines {
            for a in IDENTITY_ATTRS {
                if let Some(v) = ln.strip_prefix(&format!("a={a}:")) {
                    d.entry(a.to_string()).or_insert_with(|| v.trim().to_string());
                }
            }
        }
        d
    };
    let base = grab(&sess);
    medias
        .iter()
        .map(|m| {
            let mut d = base.clone();
            d.extend(grab(m));
            d
        })
        .collect()
}

fn compare_attrs(
    spec: &Json,
    cur: &[BTreeMap<String, String>],
    captured: &HashMap<String, Vec<BTreeMap<String, String>>>,
    same: bool,
) -> Vec<String> {
    let default = ["ice-ufrag", "ice-pwd", "fingerprint"].map(String::from).to_vec();
    let (name, attrs) = match spec {
        Json::Object(o) => (
            o["step"].as_str().unwrap_or("").to_string(),
            o.get("attrs")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or(default),
        ),
        other => (other.as_str().unwrap_or("").to_string(), default),
    };
    let Some(prev) = captured.get(&name) else {
        return vec![format!("no attributes captured as {name:?}")];
    };
    let mut errs = Vec::new();
    for (k, (p, c)) in prev.iter().zip(cur).enumerate() {
        for a in &attrs {
            let (pv, cv) = (p.get(a), c.get(a));
            if same && pv != cv {
                errs.push(format!("media#{k}: a={a} {cv:?} differs from {pv:?} ({name})"));
            } else if !same && (pv.is_none() || cv.is_none() || pv == cv) {
                errs.push(format!("media#{k}: a={a} {cv:?} should differ from {pv:?} ({name})"));
            }
        }
    }
    if prev.len() != cur.len() {
        errs.push(format!("{} media sections now, {} in {name}", cur.len(), prev.len()));
    }
    errs
}

// ------------------------------------------------------------------ response checks

fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |d, k| d.get(k))
}

/// ng_conformance.py's `named_check`.
fn named_check(name: &str, resp: &Value, st: &State) -> Vec<String> {
    let mut errs = Vec::new();
    let calls =
        || resp.get("calls").and_then(Value::as_list).map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    match name {
        "query_totals" => {
            for proto in ["RTP", "RTCP"] {
                for k in ["packets", "bytes", "errors"] {
                    let p = format!("totals.{proto}.{k}");
                    if get_path(resp, &p).and_then(Value::as_int).is_none() {
                        errs.push(format!("{p} missing or not an integer"));
                    }
                }
            }
        }
        "query_tags" => match resp.get("tags") {
            Some(tags @ Value::Dict(_)) => {
                for t in [&st.ft, &st.tt] {
                    if st.answered || *t == st.ft {
                        match tags.get(t) {
                            None => errs.push(format!("tag {t:?} not in reply tags")),
                            Some(x) if x.get("medias").and_then(Value::as_list).is_none() => {
                                errs.push(format!("tags[{t:?}].medias missing"))
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            _ => errs.push("no 'tags' dictionary in reply".into()),
        },
        "query_created" if resp.get("created").and_then(Value::as_int).is_none() => {
            errs.push("'created' missing or not integer".into())
        }
        "list_contains_call" if !calls().is_some_and(|c| c.contains(&st.cid.as_str())) => {
            errs.push("call-id not listed in 'calls'".into())
        }
        "list_lacks_call" => match calls() {
            None => errs.push("'calls' list missing".into()),
            Some(c) if c.contains(&st.cid.as_str()) => errs.push("call-id still listed after delete".into()),
            Some(_) => {}
        },
        "no_sdp" if resp.get("sdp").is_some() => errs.push("unexpected 'sdp' key".into()),
        "query_created" | "list_contains_call" | "no_sdp" => {}
        other => errs.push(format!("unknown check {other:?}")),
    }
    errs
}

/// ng_conformance.py's `check_expect`: result, error-reason~, has_keys, checks.
fn check_expect(exp: &Json, resp: &Value, st: &State) -> Vec<String> {
    let mut errs = Vec::new();
    let want = exp.get("result").and_then(Json::as_str).unwrap_or("ok");
    let result = resp.get("result").and_then(Value::as_str);
    let reason = resp.get("error-reason").and_then(Value::as_str);
    if result != Some(want) {
        errs.push(format!("result {result:?} (expected {want:?}) error-reason={reason:?}"));
    }
    if let Some(re) = exp.get("error-reason~").and_then(Json::as_str) {
        let re = Regex::new(&format!("(?i){re}")).expect("error-reason~ regex");
        if !re.is_match(reason.unwrap_or("")) {
            errs.push(format!("error-reason {reason:?} does not match /{re}/"));
        }
    }
    for k in exp.get("has_keys").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
        if get_path(resp, k).is_none() {
            errs.push(format!("reply lacks key {k:?}"));
        }
    }
    for c in exp.get("checks").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
        errs.extend(named_check(c, resp, st));
    }
    errs
}

// ------------------------------------------------------------------ runner

/// A JSON request value as bencode (the runner's `bencode`: ints, strings, lists, dicts).
fn to_bencode(ctx: &Ctx, state: &State, v: &Json) -> Value {
    match v {
        Json::Number(n) => Value::Int(n.as_i64().unwrap_or(0)),
        Json::Bool(b) => Value::Int(*b as i64),
        Json::String(s) => Value::str(&state.fill(&ctx.subst(s))),
        Json::Array(a) => Value::List(a.iter().map(|x| to_bencode(ctx, state, x)).collect()),
        Json::Object(o) => {
            let mut d = Value::dict();
            for (k, x) in o {
                d.insert(k, to_bencode(ctx, state, x));
            }
            d
        }
        Json::Null => Value::str(""),
    }
}

struct State {
    cid: String,
    ft: String,
    tt: String,
    n: u32,
    base: String,
    ports: HashMap<String, Vec<u16>>,
    attrs: HashMap<String, Vec<BTreeMap<String, String>>>,
    /// An answer succeeded (the callee's tag then belongs in a query).
    answered: bool,
}

impl State {
    fn fill(&self, s: &str) -> String {
        s.replace("$FT", &self.ft).replace("$TT", &self.tt).replace("$CID", &self.cid)
    }
}

struct Runner {
    relay: Relay,
    cookie: u64,
}

impl Runner {
    /// One request as the runner sends it: a fresh cookie, the reply decoded.
    fn request(&mut self, req: &Value) -> Result<Value, String> {
        self.cookie += 1;
        self.request_with(req, &format!("conf{}", self.cookie))
    }

    /// A request under a given cookie (the same one again: a retransmission).
    fn request_with(&mut self, req: &Value, cookie: &str) -> Result<Value, String> {
        let mut dg = format!("{cookie} ").into_bytes();
        req.encode_into(&mut dg);
        let reply = self.relay.ng_datagram(RUNNER, &dg).ok_or("no ng reply")?;
        let body = reply.strip_prefix(format!("{cookie} ").as_bytes()).ok_or("reply with another cookie")?;
        let v = Value::decode(body).map_err(|e| format!("undecodable reply: {e}"))?;
        // time passes between requests, as it does for the daemon
        self.relay.run_for(1);
        Ok(v)
    }
}

fn run_case(r: &mut Runner, ctx: &mut Ctx, case: &Json) -> Vec<String> {
    let id = case["id"].as_str().unwrap();
    let base = format!("sim-{id}");
    let mut st = State {
        cid: format!("callid-{base}"),
        ft: format!("fromtag-{base}"),
        tt: format!("totag-{base}"),
        n: 0,
        base,
        ports: HashMap::new(),
        attrs: HashMap::new(),
        answered: false,
    };
    let mut errors = Vec::new();
    let mut need_cleanup = true;
    for (si, step) in case["steps"].as_array().unwrap().iter().enumerate() {
        let cmd = step["cmd"].as_str().unwrap();
        let name = step.get("name").and_then(Json::as_str).map(|n| format!(" '{n}'")).unwrap_or_default();
        let label = format!("step {} ({cmd}{name})", si + 1);
        match cmd {
            "@reverse_tags" => {
                std::mem::swap(&mut st.ft, &mut st.tt);
                continue;
            }
            "@new_ft" | "@new_tt" => {
                st.n += 1;
                let which = if cmd == "@new_ft" { "fromtag" } else { "totag" };
                let t = format!("{which}{}-{}", st.n, st.base);
                *(if cmd == "@new_ft" { &mut st.ft } else { &mut st.tt }) = t;
                continue;
            }
            "@sleep" => {
                let s = step.get("seconds").and_then(Json::as_f64).unwrap_or(0.2);
                r.relay.run_for((s * 1000.0) as u64);
                continue;
            }
            _ => {}
        }
        let mut req = to_bencode(ctx, &st, step.get("params").unwrap_or(&Json::Object(Default::default())));
        req.insert("command", Value::str(cmd));
        let no_call_id = step.get("no_call_id").and_then(Json::as_bool).unwrap_or(false);
        let has = |req: &Value, k: &str| req.get(k).is_some();
        if cmd != "ping" && cmd != "list" && !no_call_id && !has(&req, "call-id") {
            req.insert("call-id", Value::str(&st.cid));
        }
        if (cmd == "offer" || cmd == "answer") && !has(&req, "from-tag") {
            req.insert("from-tag", Value::str(&st.ft));
        }
        if cmd == "answer" && !has(&req, "to-tag") {
            req.insert("to-tag", Value::str(&st.tt));
        }
        let in_sdp = step.get("sdp").and_then(Json::as_str).map(|s| ctx.subst(s));
        if let Some(s) = &in_sdp {
            req.insert("sdp", Value::str(s));
        }
        let resp = match r.request(&req) {
            Ok(v @ Value::Dict(_)) => v,
            Ok(_) => {
                errors.push(format!("{label}: reply is not a dictionary"));
                break;
            }
            Err(e) => {
                errors.push(format!("{label}: {e}"));
                break;
            }
        };
        let result = resp.get("result").and_then(Value::as_str).unwrap_or("").to_string();
        if step.get("retransmit").and_then(Json::as_bool).unwrap_or(false) {
            // the same cookie again: answered from the cookie cache, not processed twice
            let cookie = format!("conf{}", r.cookie);
            match r.request_with(&req, &cookie) {
                Ok(again) if again == resp => {}
                Ok(_) => errors.push(format!("{label}: retransmission with same cookie got a different reply")),
                Err(e) => errors.push(format!("{label}: retransmission: {e}")),
            }
        }
        if let Some(e) = step.get("expect") {
            errors.extend(check_expect(e, &resp, &st).iter().map(|e| format!("{label}: {e}")));
        }
        if cmd == "answer" && result == "ok" {
            st.answered = true;
        }
        if cmd == "delete" && result == "ok" && !has(&req, "from-tag") {
            need_cleanup = false;
        }
        if let Some(exp) = step.get("expect_sdp").and_then(Json::as_str) {
            let Some(act) = resp.get("sdp").and_then(Value::as_str) else {
                errors.push(format!("{label}: no SDP in reply"));
                continue;
            };
            let (e2, ports) = semantic_match(ctx, exp, act, in_sdp.as_deref().unwrap_or(""));
            errors.extend(e2.iter().map(|e| format!("{label}: {e}")));
            let checks: Vec<String> = step
                .get("sdp_checks")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default();
            errors.extend(sdp_checks(&checks, act).iter().map(|e| format!("{label}: {e}")));
            if let Some(n) = step.get("capture_ports").and_then(Json::as_str) {
                st.ports.insert(n.to_string(), ports.clone());
            }
            if let Some(n) = step.get("same_ports_as").and_then(Json::as_str) {
                if st.ports.get(n) != Some(&ports) {
                    errors.push(format!("{label}: ports {ports:?} differ from {:?} ({n})", st.ports.get(n)));
                }
            }
            if let Some(n) = step.get("other_ports_than").and_then(Json::as_str) {
                let prev = st.ports.get(n).cloned().unwrap_or_default();
                if ports.iter().any(|p| *p != 0 && prev.contains(p)) {
                    errors.push(format!("{label}: ports {ports:?} overlap with {prev:?}"));
                }
            }
            let attrs = media_attrs(act);
            if let Some(n) = step.get("capture_attrs").and_then(Json::as_str) {
                st.attrs.insert(n.to_string(), attrs.clone());
            }
            for (key, same) in [("same_attrs_as", true), ("other_attrs_than", false)] {
                if let Some(spec) = step.get(key) {
                    errors.extend(compare_attrs(spec, &attrs, &st.attrs, same).iter().map(|e| format!("{label}: {e}")));
                }
            }
        } else if step.get("expect_no_sdp").and_then(Json::as_bool).unwrap_or(false) && resp.get("sdp").is_some() {
            errors.push(format!("{label}: unexpected SDP in reply"));
        }
    }
    if need_cleanup && case.get("cleanup").and_then(Json::as_bool).unwrap_or(true) {
        let mut del = Value::dict();
        del.insert("command", Value::str("delete"));
        del.insert("call-id", Value::str(&st.cid));
        del.insert("delete-delay", Value::Int(0));
        let _ = r.request(&del);
    }
    errors
}

#[test]
fn ng_conformance_in_process() {
    let dir = suite_dir();
    let Ok(text) = std::fs::read_to_string(dir.join("cases.json")) else {
        eprintln!("conformance suite not found at {} (set CONFORMANCE_DIR): skipped", dir.display());
        return;
    };
    let data: Json = serde_json::from_str(&text).expect("cases.json");
    let skips = skips();
    let cases = data["cases"].as_array().unwrap();
    let (mut run, mut failed) = (0, Vec::new());
    for p in &PROFILES {
        let mut r = Runner { relay: Relay::new(engine_config(p), 1), cookie: 0 };
        // as relayd: one process-wide DTLS certificate (a fixed dummy: no handshake here)
        r.relay.set_dtls_identity(std::sync::Arc::new(
            relay_core::dtls::generate_identity(1_800_000_000, 86_400).unwrap(),
        ));
        let mut ctx = Ctx::new(p);
        let ping = r.request(&{
            let mut v = Value::dict();
            v.insert("command", Value::str("ping"));
            v
        });
        assert_eq!(ping.unwrap().get("result").and_then(Value::as_str), Some("pong"));
        for c in cases {
            let id = c["id"].as_str().unwrap();
            let tags: Vec<&str> = c["tags"].as_array().unwrap().iter().filter_map(Json::as_str).collect();
            if c.get("profile").and_then(Json::as_str).unwrap_or("main") != p.name
                || skips.exclude.is_match(id)
                || tags.iter().any(|t| skips.tags.iter().any(|s| s == t))
            {
                continue;
            }
            run += 1;
            let errs = run_case(&mut r, &mut ctx, c);
            if !errs.is_empty() {
                failed.push(format!("FAIL {id} ({})\n      - {}", p.name, errs.join("\n      - ")));
            }
        }
    }
    eprintln!("ng conformance in-process: {run} cases run, {} failed", failed.len());
    assert!(run > 0, "no case selected");
    assert!(failed.is_empty(), "{} of {run} cases failed:\n{}", failed.len(), failed.join("\n"));
}
