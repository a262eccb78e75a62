#!/usr/bin/env bash
# relayctl capture against a real relayd carrying real calls (rtpgen): the errors an
# operator meets (no token, unknown call, unknown leg, no relayd), a capture to a file
# read back by tshark with packets in both directions, a capture piped into tshark
# (`-w -`), and --decrypted on an SDES-SRTP call showing the decrypted copy beside the
# wire packets. About 25 s. BIN=./target/debug to run it on debug builds.
source "$(dirname "$0")/lib.sh"
t_begin capture
bin=${BIN:-./target/release}
command -v tshark >/dev/null || fail "tshark is not installed (apt-get install -y tshark)"
ng=127.0.0.1:2263
export RELAYCTL_HTTP=127.0.0.1:9963

token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$token" >"$work/http-token"
$bin/relayd --no-state --interface=127.0.0.1 --listen-ng=$ng --listen-http=$RELAYCTL_HTTP --port-min=38000 --port-max=38199 \
  --http-token-file="$work/http-token" --log-level=info >"$work/relayd.log" 2>&1 &
pids+=($!)
python3 ../shared/conformance/ngclient.py --wait-ping $ng 10 >/dev/null || fail "relayd not up"

calls() { $bin/relayctl --json calls 2>/dev/null | python3 -c 'import json,sys; print(" ".join(sorted(c["call_id"] for c in json.load(sys.stdin))))'; }
# a new call of rtpgen ARGS... (20 s of media, kept after), its call-id
new_call() {
  local before after
  before=$(calls)
  $bin/rtpgen --ng $ng --calls 1 --duration 20 --max-loss 100 --quiet --keep "$@" >>"$work/rtpgen.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    after=$(calls)
    [[ $after != "$before" ]] && break
    sleep 0.1
  done
  comm -13 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort) | head -1
}
# one plain call and one SDES-SRTP call (caller SRTP, callee RTP: the relay decrypts)
plain=$(new_call)
srtp=$(new_call --srtp AES_CM_128_HMAC_SHA1_80 --srtp-callee plain)
[[ -n $plain && -n $srtp ]] || fail "rtpgen's calls did not appear: $(calls)"

# the errors name the problem, and leave no file behind
expect_err() { # WHAT PATTERN CMD...
  if "${@:3}" 2>"$work/err"; then fail "$1 succeeded"; fi
  grep -q -- "$2" "$work/err" || fail "$1: $(cat "$work/err")"
  [[ ! -e $work/none.pcap ]] || fail "$1 left $work/none.pcap"
}
expect_err "capture without the token" "http-token" $bin/relayctl capture "$plain" -w "$work/none.pcap"
export RELAYCTL_TOKEN=$token
expect_err "capture of an unknown call" 'no call "nope"' $bin/relayctl capture nope -w "$work/none.pcap"
expect_err "capture of an unknown leg" 'no leg tagged "nobody"' $bin/relayctl capture "$plain" --leg nobody -w "$work/none.pcap"
expect_err "capture without relayd" "relayd is not running" $bin/relayctl --http 127.0.0.1:1 capture x -w "$work/none.pcap"
ok "capture errors name the problem (token, call, leg, relayd)"

# pairs SRC DST with their packet counts, of the RTP in a capture
pairs() { tshark -r "$1" -o rtp.heuristic_rtp:TRUE -Y "rtp && !rtcp" -T fields -e udp.srcport -e udp.dstport -e udp.length 2>/dev/null | sort | uniq -c; }

$bin/relayctl capture "$plain" --duration 3 -w "$work/plain.pcap" 2>"$work/relayctl.log" || fail "relayctl capture: $(cat "$work/relayctl.log")"
grep -q "packets" "$work/relayctl.log" || fail "relayctl said nothing: $(cat "$work/relayctl.log")"
pairs "$work/plain.pcap" >"$work/plain.pairs"
# both directions, each seen as it arrived and as it left: 4 (src, dst) port pairs
[[ $(awk '$1 >= 50' "$work/plain.pairs" | wc -l) -ge 4 ]] || fail "plain call: want 4 busy port pairs, got: $(cat "$work/plain.pairs")"
ok "capture of a plain call, both directions in and out: $(cat "$work/relayctl.log" | sed 's/^relayctl: //')"

# one party (rtpgen's caller): both directions of its media
$bin/relayctl capture "$plain" --leg caller --duration 2 -w "$work/leg.pcap" 2>/dev/null || fail "capture --leg caller"
[[ $(pairs "$work/leg.pcap" | awk '$1 >= 30' | wc -l) -ge 4 ]] || fail "--leg caller: want 4 busy port pairs, got: $(pairs "$work/leg.pcap")"
ok "capture --leg: the party's media both ways"

# -w - into tshark, as `wireshark -k -i -` takes it
$bin/relayctl capture "$plain" --duration 2 -w - 2>/dev/null | tshark -i - -o rtp.heuristic_rtp:TRUE -Y rtp -T fields -e rtp.seq >"$work/pipe.txt" 2>/dev/null \
  || fail "relayctl capture -w - | tshark -i -"
[[ $(wc -l <"$work/pipe.txt") -ge 100 ]] || fail "tshark read $(wc -l <"$work/pipe.txt") RTP packets from the pipe"
ok "relayctl capture -w - | tshark -i -: $(wc -l <"$work/pipe.txt") RTP packets"

# SRTP call: the wire view shows each packet the caller sent once, as SRTP; --decrypted
# adds its decrypted copy between the same addresses, 10 bytes shorter (no auth tag)
$bin/relayctl capture "$srtp" --duration 2 -w "$work/wire.pcap" 2>/dev/null || fail "capture of the SRTP call"
$bin/relayctl capture "$srtp" --decrypted --duration 2 -w "$work/dec.pcap" 2>/dev/null || fail "capture --decrypted"
two_lengths() { tshark -r "$1" -T fields -e udp.srcport -e udp.dstport -e udp.length 2>/dev/null | sort -u | awk '{print $1, $2}' | uniq -d; }
[[ -z $(two_lengths "$work/wire.pcap") ]] || fail "the wire view of the SRTP call has two sizes between the same ports"
dup=$(two_lengths "$work/dec.pcap")
[[ -n $dup ]] || fail "--decrypted shows no decrypted copies: $(pairs "$work/dec.pcap")"
ok "--decrypted adds the decrypted copies (ports $dup: SRTP as received and RTP decrypted)"

# the call ends: a running capture ends with it and relayctl exits 0
$bin/relayctl capture "$plain" --duration 60 -w "$work/end.pcap" 2>"$work/end.log" &
cap=$!
sleep 1
$bin/relayctl terminate "$plain" >/dev/null || fail "terminate"
for _ in $(seq 50); do kill -0 $cap 2>/dev/null || break; sleep 0.1; done
kill -0 $cap 2>/dev/null && fail "the capture outlived its call"
wait $cap || fail "relayctl capture did not exit 0 when the call ended: $(cat "$work/end.log")"
ok "the call ends, the capture ends: $(sed 's/^relayctl: //' "$work/end.log")"
grep -q "capture of call.*ended" "$work/relayd.log" || fail "relayd did not log the capture's end"
ok "relayd logs each capture (who, how much, drops)"
t_end
