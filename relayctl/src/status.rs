//! `relayctl status` and `relayctl drain`: what `GET /status` says, for the person on call.

use serde_json::Value;

/// Lines of `GET /status` (as `POST /drain` answers it too).
pub fn lines(v: &Value) -> Vec<String> {
    let n = |x: &Value| x.as_u64().map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    let mut out = vec![format!(
        "calls {}  {}",
        n(&v["calls"]),
        if v["draining"].as_bool() == Some(true) {
            "DRAINING: new calls are refused, running calls go on"
        } else {
            "accepting new calls"
        }
    )];
    let st = &v["state_store"];
    if st.is_null() {
        out.push("state store: off (calls do not survive a restart)".into());
        return out;
    }
    let when = match st["last_write_unix"].as_u64() {
        Some(t) => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(t);
            format!("{}s ago", now.saturating_sub(t))
        }
        None => "never".into(),
    };
    out.push(format!(
        "state store: {}  records {}  last write {when}  restored at start {} (refused {})",
        st["dir"].as_str().unwrap_or("-"),
        n(&st["records"]),
        n(&st["restored"]),
        n(&st["restore_failed"]),
    ));
    if let Some(e) = st["last_error"].as_str() {
        out.push(format!("state store error: {e}"));
    }
    out
}

pub fn print(v: &Value) {
    for l in lines(v) {
        println!("{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_the_drain_and_the_store() {
        let v = serde_json::json!({"calls": 3, "draining": true, "state_store": {"dir": "/var/lib/relayd",
            "records": 3, "last_write_unix": null, "last_error": "disk full", "restored": 2, "restore_failed": 1}});
        let l = lines(&v);
        assert!(l[0].starts_with("calls 3  DRAINING"), "{l:?}");
        assert!(
            l[1].contains("/var/lib/relayd  records 3  last write never  restored at start 2 (refused 1)"),
            "{l:?}"
        );
        assert_eq!(l[2], "state store error: disk full");
        let off = lines(&serde_json::json!({"calls": 0, "draining": false, "state_store": null}));
        assert_eq!(off, ["calls 0  accepting new calls", "state store: off (calls do not survive a restart)"]);
    }
}
