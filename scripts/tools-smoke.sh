#!/usr/bin/env bash
# rtpgen against relayd and against rtpengine; relayctl's commands against relayd.
source "$(dirname "$0")/lib.sh"
t_begin tools
bin=./target/release
# match on captured output: `cmd | grep -q` under pipefail fails when grep exits first
has() { local out; out=$("${@:2}") && grep -q -- "$1" <<<"$out"; }

token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$token" >"$work/http-token"
$bin/relayd --no-state --interface=127.0.0.1 --listen-ng=127.0.0.1:2253 --listen-http=127.0.0.1:9953 --port-min=36000 --port-max=36999 \
  --http-token-file="$work/http-token" --log-level=warn >"$work/relayd.log" 2>&1 &
pids+=($!)
python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2253 10 >/dev/null || fail "relayd not up"
rtpengine --config-file=none --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:2254 --foreground --log-stderr \
  --log-level=3 --port-min=37000 --port-max=37999 >"$work/rtpengine.log" 2>&1 &
pids+=($!)
python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2254 10 >/dev/null || fail "rtpengine not up"

$bin/rtpgen --ng 127.0.0.1:2253 --calls 50 --duration 2 --max-loss 0.5 --quiet --json --keep >"$work/r1.json" || fail "rtpgen vs relayd"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["calls"]==50 and d["received"]>=0.995*d["sent"]>0, d' "$work/r1.json"
ok "rtpgen -> relayd: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%d sent, %d received, p99 %d us" % (d["sent"], d["received"], d["latency_us_p99"]))' "$work/r1.json")"
$bin/rtpgen --ng 127.0.0.1:2254 --calls 50 --duration 2 --max-loss 0.5 --quiet >"$work/r2.txt" || fail "rtpgen vs rtpengine"
ok "rtpgen -> rtpengine: $(grep 'sent / received' "$work/r2.txt")"

for ng in 2253 2254; do
  for mode in "--srtp AES_CM_128_HMAC_SHA1_80 --srtp-callee plain" "--srtp AEAD_AES_128_GCM --srtp-callee AES_CM_128_HMAC_SHA1_32"; do
    # shellcheck disable=SC2086
    $bin/rtpgen --ng 127.0.0.1:$ng --calls 20 --duration 1 --max-loss 0.5 --quiet --json $mode >"$work/s.json" \
      || fail "rtpgen $mode vs port $ng"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["srtp_auth_failures"]==0 and d["received"]>=0.995*d["sent"]>0, d' "$work/s.json" \
      || fail "SRTP through port $ng ($mode)"
  done
done
ok "rtpgen SRTP->RTP and SRTP->SRTP (GCM -> CM) through relayd and rtpengine, no auth failures"

export RELAYCTL_HTTP=127.0.0.1:9953
has "50 call(s)" $bin/relayctl calls || fail "relayctl calls"
ok "relayctl calls"
id=$($bin/relayctl --json calls | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["call_id"])')
has "latched" $bin/relayctl call "$id" || fail "relayctl call shows no latched flow"
ok "relayctl call"
[[ $($bin/relayctl flows | wc -l) -eq 201 ]] || fail "relayctl flows: expected 200 flows"
$bin/relayctl --json flows --call "$id" | python3 -c 'import json,sys; assert len(json.load(sys.stdin)["flows"])==4'
ok "relayctl flows"
has "relay_rx_packets_total" $bin/relayctl stats || fail "relayctl stats"
ok "relayctl stats"
# top --once: one plain frame within the size asked, no terminal control codes; rates while media flows
$bin/relayctl top --once --interval 0.5 --width 100 --height 40 >"$work/top.txt" || fail "relayctl top --once"
grep -q "^calls 50 " "$work/top.txt" && grep -q "BUSIEST CALLS" "$work/top.txt" && grep -q "WORST QUALITY" "$work/top.txt" \
  || fail "relayctl top --once: $(head -c 2000 "$work/top.txt")"
python3 -c 'import sys; t=open(sys.argv[1], encoding="utf-8").read().split("\n")
assert len(t) <= 41 and all(len(l) <= 100 for l in t), "frame larger than 100x40"
assert not any(c < " " and c != "\n" for c in "\n".join(t)), "control characters"' "$work/top.txt" || fail "relayctl top --once frame"
$bin/rtpgen --ng 127.0.0.1:2253 --calls 5 --duration 3 --max-loss 0.5 --quiet >/dev/null 2>&1 &
gen=$!
sleep 1
$bin/relayctl top --once --interval 1 --width 120 --height 60 >"$work/top2.txt" || fail "relayctl top --once under load"
wait $gen || fail "rtpgen under relayctl top"
grep -Eq "^packets/s  in [1-9][0-9.]*k?  out [1-9]" "$work/top2.txt" || fail "relayctl top shows no packet rate: $(head -3 "$work/top2.txt")"
ok "relayctl top --once: $(sed -n 2p "$work/top2.txt")"
if $bin/relayctl terminate "$id" 2>"$work/err"; then fail "relayctl terminate without the token succeeded"; fi
grep -q "http-token" "$work/err" || fail "relayctl's message without the token: $(cat "$work/err")"
has "50 call(s)" $bin/relayctl calls || fail "terminate without the token ended the call"
has terminated env RELAYCTL_TOKEN="$token" $bin/relayctl terminate "$id" || fail "relayctl terminate"
has "49 call(s)" $bin/relayctl calls || fail "terminate did not end the call"
ok "relayctl terminate (refused without the token, done with RELAYCTL_TOKEN)"
if $bin/relayctl --http 127.0.0.1:1 calls 2>"$work/err"; then fail "relayctl against nothing succeeded"; fi
grep -q "relayd is not running" "$work/err" || fail "relayctl's message without relayd: $(cat "$work/err")"
ok "relayctl without relayd: $(cat "$work/err")"
t_end
