#!/usr/bin/env bash
# Calls survive a restart of relayd (the state store, docs/operations.md). The namespaces
# of scripts/netns.sh: CALLS calls (default 20; half SDES-SRTP, half plain RTP) from the
# caller's host through the relay to the callee's, rtpgen sending both ways; relayd is
# stopped with SIGTERM and started again, later killed with kill -9 and started again.
# Per restart: the calls that went on both ways (the relay's view a few seconds after the
# restart), the packets lost and the gap that makes, the time no relayd listened, and
# SRTP authentication failures after the restart (must be 0: the SRTP streams cross a
# sequence number wrap before the restart, so the rollover counter must survive it).
#
#   flock /tmp/relay-netns.lock scripts/restart-test.sh
#   BACKEND=xdp CALLS=40 flock /tmp/relay-netns.lock scripts/restart-test.sh
#
# Needs root and release binaries (cargo build --release -p relayd -p relayctl -p bench).
source "$(dirname "$0")/lib.sh"
t_begin restart root netns
BACKEND=${BACKEND:-uring}
CALLS=${CALLS:-20}
SECS=${SECS:-9}
[[ -x target/release/relayd && -x target/release/rtpgen && -x target/release/relayctl ]] \
  || fail "build first: cargo build --release -p relayd -p relayctl -p bench"
scripts/netns.sh up
NG=10.203.1.1:2273
HTTP=10.203.1.1:9973
state="$work/state"

start_relayd() { # start_relayd LOG
  ip netns exec xR ./target/release/relayd --backend="$BACKEND" --interface=pub/10.203.1.1 \
    --interface=priv/10.203.2.1 --listen-ng=$NG --listen-http=$HTTP --port-min=31000 --port-max=32999 \
    --state-dir="$state" --log-level=info >>"$work/$1" 2>&1 &
  relayd_pid=$!
  pids+=("$relayd_pid")
  ip netns exec xC python3 ../shared/conformance/ngclient.py --wait-ping $NG 10 >/dev/null \
    || fail "relayd did not come up ($1)"
}

now_ms() { date +%s%3N; }

# one restart: traffic on, the signal at 4 s, relayd started again at once
restart_round() { # restart_round NAME SIGNAL
  local name=$1 sig=$2 half=$((CALLS / 2))
  local common=(--ng $NG --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --callee-netns xE --direction pub,priv
    --duration "$SECS" --max-loss 100 --quiet --json)
  ip netns exec xC ./target/release/rtpgen "${common[@]}" --calls "$half" >"$work/$name-plain.json" \
    2>"$work/$name-plain.log" &
  local g1=$!
  # SRTP streams start just below a sequence number wrap: it comes about 2.5 s in, before the restart
  ip netns exec xC ./target/release/rtpgen "${common[@]}" --calls $((CALLS - half)) \
    --srtp AES_CM_128_HMAC_SHA1_80 --first-seq 65410 >"$work/$name-srtp.json" 2>"$work/$name-srtp.log" &
  local g2=$!
  sleep 4
  local t0 t1
  t0=$(now_ms)
  kill "-$sig" "$relayd_pid"
  wait "$relayd_pid" 2>/dev/null || true
  start_relayd "relayd-$name.log"
  t1=$(now_ms)
  sleep 2.5
  ip netns exec xC ./target/release/relayctl --http $HTTP --json flows >"$work/$name-flows.json" \
    || fail "relayctl flows after $name"
  ip netns exec xC ./target/release/relayctl --http $HTTP --json status >"$work/$name-status.json" \
    || fail "relayctl status after $name"
  wait "$g1" || fail "rtpgen (plain) in $name"
  wait "$g2" || fail "rtpgen (srtp) in $name"
  python3 - "$name" "$work" "$((t1 - t0))" "$CALLS" >>"$work/results.jsonl" <<'PY'
import json, sys
name, work, down_ms, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
flows = json.load(open(f"{work}/{name}-flows.json"))
status = json.load(open(f"{work}/{name}-status.json"))
# the relay's view: a call went on both ways when both parties' RTP sockets had media
# in the last second, 2.5 s after the restart
by_call = {}
for f in flows:
    if f["kind"] in ("rtp", "rtp-mux"):
        by_call.setdefault(f["call_id"], []).append(f)
both = [c for c, fs in by_call.items() if len(fs) == 2 and all((f["idle_ms"] is not None and f["idle_ms"] < 1000) for f in fs)]
auth = sum(f["counters"]["drop_srtp_auth"] for f in flows)
res = {"restart": name, "down_ms": down_ms, "calls": calls, "restored_calls": len(by_call),
       "continued_both_ways": len(both), "relay_srtp_auth_drops": auth,
       "restored_at_start": (status.get("state_store") or {}).get("restored")}
for kind in ("plain", "srtp"):
    r = json.load(open(f"{work}/{name}-{kind}.json"))
    streams = 2 * r["calls"]
    pps = streams * 50.0
    res[kind] = {"calls": r["calls"], "sent": r["sent"], "lost": r["lost"],
                 "gap_ms": round(1000.0 * max(r["lost"], 0) / pps) if pps else 0,
                 "srtp_auth_failures": r["srtp_auth_failures"]}
print(json.dumps(res))
PY
}

start_relayd relayd-first.log
# not in a subshell: the relayd it starts must stay this shell's child (wait, kill)
restart_round sigterm TERM
restart_round kill9 KILL
sed 's/^/restart: /' "$work/results.jsonl"
[[ -n ${RESULTS:-} ]] && cp "$work/results.jsonl" "$RESULTS"
msg=$(python3 - "$work/results.jsonl" <<'PY'
import json, sys
bad = []
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["continued_both_ways"] != r["calls"]:
        bad.append(f'{r["restart"]}: {r["continued_both_ways"]} of {r["calls"]} calls went on both ways')
    if r["srtp"]["srtp_auth_failures"] or r["relay_srtp_auth_drops"]:
        bad.append(f'{r["restart"]}: SRTP authentication failures after the restart '
                   f'(rtpgen {r["srtp"]["srtp_auth_failures"]}, relay {r["relay_srtp_auth_drops"]})')
    print(f'{r["restart"]}: down {r["down_ms"]} ms, {r["continued_both_ways"]}/{r["calls"]} calls both ways, '
          f'lost plain {r["plain"]["lost"]} ({r["plain"]["gap_ms"]} ms gap), srtp {r["srtp"]["lost"]} '
          f'({r["srtp"]["gap_ms"]} ms gap), srtp auth failures {r["srtp"]["srtp_auth_failures"]}')
for b in bad:
    print("FAIL " + b)
sys.exit(1 if bad else 0)
PY
) || fail "$msg"
ok "$msg"
t_end
