//! The quality columns of `relayctl calls` and the legs table of `relayctl call`, from the
//! `verdict`, `dtmf_events` and `legs[].quality` fields of /calls (absent from an older
//! relayd: shown as "-").

use serde_json::Value;

/// "ok", "poor", "no-data", or "-" when relayd does not say.
pub fn verdict(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

fn ms(v: &Value) -> String {
    v.as_f64().map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn pct(v: &Value) -> String {
    v.as_f64().map(|x| format!("{x:.2}%")).unwrap_or_else(|| "-".into())
}

pub const LEG_HEADERS: [&str; 12] =
    ["TAG", "MEDIA", "PEER", "PACKETS", "LOSS", "JITTER_MS", "RTT_MS", "R_LOSS", "R_JITTER", "MOS", "DTMF", "VERDICT"];

/// One row per leg of a call (`call["legs"]`), then why each poor leg is poor.
pub fn leg_rows(call: &Value) -> (Vec<Vec<String>>, Vec<String>) {
    let mut rows = Vec::new();
    let mut why = Vec::new();
    for l in call["legs"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let q = &l["quality"];
        let tag = super::s(&l["tag"]);
        rows.push(vec![
            tag.clone(),
            format!("{}/{}", super::s(&l["media"]), super::s(&l["media_type"])),
            super::s(&l["peer"]),
            super::s(&l["packets"]),
            pct(&q["loss_percent"]),
            ms(&q["jitter_ms"]),
            ms(&q["rtt_ms"]),
            pct(&q["remote_loss_percent"]),
            ms(&q["remote_jitter_ms"]),
            q["mos"].as_f64().map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into()),
            super::s(&l["dtmf_events"]),
            verdict(&q["verdict"]),
        ]);
        for w in q["why"].as_array().map(Vec::as_slice).unwrap_or_default() {
            why.push(format!("{tag}: {}", super::s(w)));
        }
    }
    (rows, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_show_the_verdict_and_why() {
        let call = serde_json::json!({"legs": [
            {"tag": "a", "media": 1, "media_type": "audio", "peer": "192.0.2.1:4000", "packets": 10, "dtmf_events": 2,
             "quality": {"loss_percent": 4.0, "jitter_ms": 1.25, "rtt_ms": null, "remote_loss_percent": null,
                         "remote_jitter_ms": null, "mos": 4.1, "verdict": "poor", "why": ["loss 4.00% > 3%"]}},
            {"tag": "b", "media": 1, "media_type": "audio", "peer": null, "packets": 0}
        ]});
        let (rows, why) = leg_rows(&call);
        assert_eq!(
            rows[0],
            ["a", "1/audio", "192.0.2.1:4000", "10", "4.00%", "1.2", "-", "-", "-", "4.1", "2", "poor"]
        );
        assert_eq!(rows[1][11], "-", "an older relayd without quality");
        assert_eq!(why, ["a: loss 4.00% > 3%"]);
        assert_eq!(verdict(&Value::Null), "-");
    }
}
