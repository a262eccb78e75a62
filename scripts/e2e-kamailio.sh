#!/usr/bin/env bash
# End to end with real parts: Debian's kamailio (rtpengine module pointed at relayd's ng
# port) proxies sipp calls; the sipp UAC plays a G.711 pcap, the sipp UAS echoes it.
# Checks: every call completes, the SDP each side saw points at the relay, and RTP
# crossed relayd in both directions for every call.
source "$(dirname "$0")/lib.sh"
t_begin e2e
CALLS=${E2E_CALLS:-20}
RELAY_IP=127.0.0.3

./target/release/relayd --no-state --interface=$RELAY_IP --listen-ng=127.0.0.1:2233 --listen-http=127.0.0.1:9933 \
  --port-min=35000 --port-max=35999 --delete-delay=60 --log-level=info >"$work/relayd.log" 2>&1 &
pids+=($!)
python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2233 10 >/dev/null || fail "relayd not answering"

kamailio -f scripts/e2e/kamailio.cfg -DD -E -w "$work" >"$work/kamailio.log" 2>&1 &
pids+=($!)
sleep 1.5
kill -0 "${pids[1]}" 2>/dev/null || fail "kamailio did not start"

(cd "$work" && exec sipp -sn uas -i 127.0.0.1 -p 5080 -mi 127.0.0.1 -mp 16000 -rtp_echo -trace_msg \
  -message_file uas_msgs.log -nostdin >"$work/uas.log" 2>&1) &
pids+=($!)
sleep 0.5
kill -0 "${pids[2]}" 2>/dev/null || fail "sipp uas did not start"
(cd "$work" && timeout 120 sipp -sf "$OLDPWD/scripts/e2e/uac_pcma.xml" 127.0.0.1:5062 -s echo -i 127.0.0.1 -p 5070 -mi 127.0.0.1 -mp 18000 \
  -m "$CALLS" -r 10 -l "$CALLS" -trace_msg -message_file uac_msgs.log -trace_stat -nostdin >"$work/uac.log" 2>&1) \
  || fail "sipp uac: not all $CALLS calls succeeded"

# SDP seen by both sides points at the relay
grep -q "c=IN IP4 $RELAY_IP" "$work/uas_msgs.log" || fail "the callee's INVITE SDP does not point at the relay"
grep -q "c=IN IP4 $RELAY_IP" "$work/uac_msgs.log" || fail "the caller's 200 OK SDP does not point at the relay"
# (captured, not `| grep -q`: under pipefail an early grep exit could hide a match)
outside=$(grep -E '^m=audio' "$work/uas_msgs.log" | grep -v -E 'm=audio 35[0-9]{3} ' | grep -v 'm=audio 16000 ' || true)
[[ -z $outside ]] || fail "an INVITE reached the callee with a media port outside the relay's range: $outside"

# RTP crossed the relay both ways in every call (calls linger 60 s after BYE: delete-delay)
python3 - "$CALLS" <<'PY' || fail "RTP did not cross the relay in both directions for every call"
import json, sys, urllib.request
calls = json.load(urllib.request.urlopen("http://127.0.0.1:9933/calls"))
want = int(sys.argv[1])
assert len(calls) == want, "relay saw %d calls, expected %d" % (len(calls), want)
bad = 0
for c in calls:
    d = json.load(urllib.request.urlopen("http://127.0.0.1:9933/calls/" + urllib.request.quote(c["call_id"], safe="")))
    fwd = {}
    for f in d["flows"]:
        if f["kind"] == "rtp":
            fwd[f["tag"]] = fwd.get(f["tag"], 0) + f["counters"]["forwarded"]
    if len(fwd) != 2 or min(fwd.values()) == 0:
        bad += 1
        print("call %s: forwarded per side %s" % (c["call_id"], fwd))
tot = sum(c["packets"] for c in calls)
print("e2e: %d calls through kamailio + relayd, %d packets relayed, %d calls without media both ways" % (len(calls), tot, bad))
sys.exit(1 if bad else 0)
PY
echo "e2e: $CALLS passed, 0 failed"
