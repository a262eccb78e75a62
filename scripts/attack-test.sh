#!/usr/bin/env bash
# The independent attack suite of issue 9 (docs/security.md), run against relayd on both
# backends (root). Builds nothing: run `cargo build --release --workspace` first.
#
# Topology (namespaces of its own, torn down at exit):
#
#   aC caller   cpub 10.203.1.2  --+
#   aA attacker apub 10.203.1.66 --+-- bridge (namespace aS) -- rpub 10.203.1.1  aR relay
#                                                               rpriv 10.203.2.1 -- epriv 10.203.2.2  aE callee
#
# The attacker is an off-path host on the relay's public network with no SIP account; the
# proxy (ng over 127.0.0.1:2280, HTTP API on 127.0.0.1:9980) sits in the relay namespace.
# relayd runs once with --backend uring and once with --backend xdp (native XDP on the
# veths rpub/rpriv); a second, lab-mode relayd (media interface on loopback) is attacked
# on the io_uring pass. Each attack is one scripts/attacks/attacks.py check, run from the
# namespace it belongs to; one failing does not stop the others (relayd is restarted if
# an attack ended it). Checks (issue 9 items in brackets):
#   a  SDP attribute lines without a colon                                    [1]
#   b  HTTP: multi-byte percent-decoding, slow-loris, huge header, token,
#      Host check                                                             [1, 6]
#   c  media address policy: loopback / ng / HTTP / own media address         [2]
#   d  a=rtcp naming the relay's own port: refused, never a loop              [2]
#   e  spoofed sources (127.0.0.1, the relay's own addresses) from the wire   [2, 4]
#   f  SRTP: forged SSRCs after a ROC wrap, replays, sniffed copies first     [3]
#   g  set-up race (RTP Bleed at set-up) and relatch after silence            [5]
#   h  bounds: 2500 m= lines, id lengths, reply cache by source and bytes,
#      list cap                                                               [6]
#   i  port prediction                                                        [5]
#   j  RLIMIT_NOFILE raised, CPU set honoured (once)                          [7]
#   k  WebRTC sockets (issue 11): forged/replayed STUN checks, STUN at a plain
#      socket, ClientHellos from unchecked sources and floods, a wrong
#      certificate, SRTP before keys, garbage of every first-byte range
#   l  hostile WebRTC SDP and flags over ng: candidates, ufrag/pwd,
#      fingerprint, setup, rtpp-flags; the running call unaffected
# Prints `attacks: N passed, M failed` and exits non-zero on any failure.
source "$(dirname "$0")/lib.sh"
t_begin attacks root
T_FAILED=0
NSS="aC aR aE aA aS"
NG=127.0.0.1:2280
HTTP=127.0.0.1:9980
LAB_NG=127.0.0.1:2290
LAB_HTTP=127.0.0.1:9990
TOKEN=attack-test-token-$RANDOM$RANDOM
ATTACKS=${ATTACKS:-a b c d e f g h i j k l m}
BACKENDS=${BACKENDS:-uring xdp}

topo_down() {
  local ns
  for ns in $NSS; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
attack_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  topo_down
}
trap 'attack_cleanup; t_cleanup' EXIT

soft_fail() { # a failed check: counted, printed, the script goes on
  T_FAILED=$((T_FAILED + 1))
  echo "$T_NAME: FAIL: $*"
}

veth() { # veth NS_A IF_A NS_B IF_B
  ip link add "atk$$a" type veth peer name "atk$$b"
  ip link set "atk$$a" netns "$1"
  ip link set "atk$$b" netns "$3"
  ip -n "$1" link set "atk$$a" name "$2"
  ip -n "$3" link set "atk$$b" name "$4"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}
topo_up() {
  topo_down
  local ns
  for ns in $NSS; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip -n aS link add br0 type bridge
  ip -n aS link set br0 up
  veth aR rpub aS sR
  veth aC cpub aS sC
  veth aA apub aS sA
  for p in sR sC sA; do ip -n aS link set "$p" master br0; done
  veth aR rpriv aE epriv
  ip -n aR addr add 10.203.1.1/24 dev rpub
  ip -n aR addr add 10.203.2.1/24 dev rpriv
  ip -n aC addr add 10.203.1.2/24 dev cpub
  ip -n aA addr add 10.203.1.66/24 dev apub
  ip -n aE addr add 10.203.2.2/24 dev epriv
  ip netns exec aR sysctl -qw net.ipv4.ip_forward=1
  ip -n aC route add default via 10.203.1.1
  ip -n aA route add default via 10.203.1.1
  ip -n aE route add default via 10.203.2.1
  # ARP entries up front: no resolution delay inside a timed attack
  ip netns exec aC ping -c1 -W2 10.203.2.2 >/dev/null || fail "topology: caller cannot reach callee"
  ip netns exec aA ping -c1 -W2 10.203.2.2 >/dev/null || fail "topology: attacker cannot reach callee"
}

[[ -x target/release/relayd && -x target/release/rtpgen ]] || fail "build first: cargo build --release --workspace"
HELP=$(./target/release/relayd --help 2>&1 || true)
has_opt() { grep -q -- "$1" <<<"$HELP"; }

# Options of the issue-9 fixes, passed when this relayd has them (an older relayd would
# refuse to start with an unknown option; its checks then fail on behaviour instead).
EXTRA=()
HTTP_TOKEN=
if has_opt --ng-allow; then EXTRA+=(--ng-allow=127.0.0.1/32); fi
if has_opt --http-token; then
  EXTRA+=(--http-token="$TOKEN")
  HTTP_TOKEN=$TOKEN
fi
RECORDING_DIR=
if has_opt --recording-dir; then
  RECORDING_DIR=$work/recordings
  EXTRA+=(--recording-dir="$RECORDING_DIR")
fi
[[ ${#EXTRA[@]} -gt 0 ]] && echo "attacks: relayd options of the fixes in use: ${EXTRA[*]}"

relayd_pid=
start_relayd() { # start_relayd BACKEND LOG
  ip netns exec aR ./target/release/relayd --no-state --backend "$1" --interface=pub/10.203.1.1 --interface=priv/10.203.2.1 \
    --listen-ng=$NG --listen-http=$HTTP --port-min=20000 --port-max=29999 --delete-delay=0 --log-level=info \
    "${EXTRA[@]}" >>"$work/$2" 2>&1 &
  relayd_pid=$!
  pids+=("$relayd_pid")
  ip netns exec aR python3 ../shared/conformance/ngclient.py --wait-ping $NG 15 >/dev/null
}
lab_pid=
start_lab() {
  local extra=()
  [[ -n $HTTP_TOKEN ]] && extra+=(--http-token="$TOKEN")
  ip netns exec aR ./target/release/relayd --no-state --backend uring --interface=127.0.0.1 --listen-ng=$LAB_NG \
    --listen-http=$LAB_HTTP --port-min=30000 --port-max=30999 --delete-delay=0 --log-level=info "${extra[@]}" \
    >>"$work/lab.log" 2>&1 &
  lab_pid=$!
  pids+=("$lab_pid")
  ip netns exec aR python3 ../shared/conformance/ngclient.py --wait-ping $LAB_NG 15 >/dev/null
}
running() { [[ -n $1 && -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

run_check() { # run_check BACKEND LETTER
  local backend=$1 c=$2 out rc line
  if ! running "$relayd_pid"; then
    echo "attacks: relayd ($backend) not running before check $c: restarting it"
    start_relayd "$backend" "relayd-$backend.log" || soft_fail "[$backend] $c: relayd does not restart"
  fi
  if [[ $backend == uring ]] && ! running "$lab_pid"; then
    start_lab || true
  fi
  out=$work/check-$backend-$c.out
  set +e
  HTTP_TOKEN=$HTTP_TOKEN RECORDING_DIR=$RECORDING_DIR timeout 150 ip netns exec aR python3 scripts/attacks/attacks.py --check "$c" \
    --backend "$backend" --relayd-pid "$relayd_pid" --lab-pid "${lab_pid:-0}" --relayd ./target/release/relayd \
    --ng $NG --http $HTTP --lab-ng $LAB_NG --lab-http $LAB_HTTP >"$out" 2>"$work/check-$backend-$c.log"
  rc=$?
  set -e
  local seen=0
  while IFS= read -r line; do
    case $line in
      "ok "*) ok "[$backend] ${line#ok }"; seen=1 ;;
      "fail "*) soft_fail "[$backend] ${line#fail }"; seen=1 ;;
      *) echo "attacks:   $line" ;;
    esac
  done <"$out"
  if [[ $rc -ne 0 && $seen -eq 0 ]]; then
    soft_fail "[$backend] $c: attacks.py exited $rc: $(tail -n 3 "$work/check-$backend-$c.log" | tr '\n' ' ')"
  elif [[ $rc -ne 0 && $rc -ne 1 ]]; then
    soft_fail "[$backend] $c: attacks.py exited $rc (timeout or crash): $(tail -n 3 "$work/check-$backend-$c.log" | tr '\n' ' ')"
  fi
  if ! running "$relayd_pid"; then
    soft_fail "[$backend] $c: relayd exited during the attack: $(tail -n 3 "$work/relayd-$backend.log" | tr '\n' ' ')"
  fi
}

for backend in $BACKENDS; do
  topo_up
  if ! start_relayd "$backend" "relayd-$backend.log"; then
    soft_fail "[$backend] relayd does not start: $(tail -n 5 "$work/relayd-$backend.log" | tr '\n' ' ')"
    continue
  fi
  if [[ $backend == xdp ]] && ! grep -q "XDP on rpub (ifindex [0-9]*, native mode" "$work/relayd-$backend.log"; then
    soft_fail "[xdp] XDP not attached in native mode on rpub"
  fi
  [[ $backend == uring ]] && { start_lab || soft_fail "[uring] lab relayd (loopback) does not start"; }
  for c in $ATTACKS; do
    # j is about the process, not the data path: once
    [[ $c == j && $backend != "${BACKENDS%% *}" ]] && continue
    run_check "$backend" "$c"
  done
  kill "$relayd_pid" 2>/dev/null || true
  [[ -n $lab_pid ]] && kill "$lab_pid" 2>/dev/null || true
  wait "$relayd_pid" 2>/dev/null || true
  [[ -n $lab_pid ]] && { wait "$lab_pid" 2>/dev/null || true; }
  lab_pid=
  topo_down
done

if [[ $T_FAILED -gt 0 ]]; then
  echo "$T_NAME: $T_PASSED passed, $T_FAILED failed (logs: KEEP_WORK=1 keeps $work)"
  exit 1
fi
t_end
