#!/usr/bin/env bash
# The kernel-bypass path end to end (root): relayd --backend xdp in the relay namespace of
# scripts/netns.sh, rtpgen's caller in the caller namespace and its callee in the
# callee namespace. Checks:
#   1. an rtpgen load both ways, IPv4, nothing lost, and the counters show it went
#      through AF_XDP (not the socket path); rtpgen's own AF_XDP mode; DSCP on the wire
#   2. IPv6, IPv4 -> IPv6 bridging, and SRTP re-keyed on the way, nothing lost
#   3. ping and a TCP connection from caller to callee still cross the relay namespace
#   4. malformed frames in the middle of a call: passed or dropped and counted, the call
#      loses nothing
#   5. a neighbour's new MAC is followed (live, mid-call)
#   6. deleting a call removes its BPF steering entries
#   7. SIGTERM detaches the program; `auto` falls back to io_uring on loopback, and
#      SIGINT leaves nothing attached
#   8. without native XDP (a bridge device): xdp uses generic mode with a warning, auto
#      uses io_uring
#   9. two RX queues, a call's directions on different queues, endpoints behind "NAT":
#      the workers share what they latch
source "$(dirname "$0")/lib.sh"
t_begin xdp root netns
R="ip netns exec xR"
C="ip netns exec xC"
E="ip netns exec xE"
NG=10.203.1.1:2280
HTTP=10.203.1.1:9980
scripts/netns.sh up
# Left as veth comes: the hosts' UDP checksums are offloaded (only the pseudo-header sum
# is in the frame), which the workers must complete, not just update.

start_relayd() { # start_relayd LOG ARGS...
  local log=$1
  shift
  $R ./target/release/relayd --listen-ng=$NG --listen-http=$HTTP --port-min=31000 --port-max=32999 \
    --delete-delay=0 --log-level=info --http-token=xdp-test-token "$@" >"$work/$log" 2>&1 &
  relayd_pid=$!
  $C python3 ../shared/conformance/ngclient.py --wait-ping $NG 10 >/dev/null || fail "relayd not answering ng ($log)"
}
metric() { # metric NAME_AND_LABEL_REGEX -> sum of matching series
  $C curl -s "http://$HTTP/metrics" | python3 -c '
import re, sys
pat = re.compile(sys.argv[1])
print(sum(int(float(l.rsplit(" ", 1)[1])) for l in sys.stdin if not l.startswith("#") and pat.match(l)))' "$1"
}
rtpgen() { # rtpgen OUT ARGS...
  local out=$1
  shift
  $C ./target/release/rtpgen --ng $NG --callee-netns xE --quiet --json --max-loss "${MAX_LOSS:-0}" "$@" >"$work/$out" \
    || fail "rtpgen $* (see $work/$out: $(cat "$work/$out"))"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/$1" "$2"; }

V4="--interface=pub/10.203.1.1 --interface=priv/10.203.2.1"
V6="--interface=pub6/fd03:1::1 --interface=priv6/fd03:2::1"
# shellcheck disable=SC2086
start_relayd relayd.log --backend xdp $V4 $V6
grep -q "XDP on rpub (ifindex [0-9]*, native mode" "$work/relayd.log" || fail "XDP not attached in native mode"
$R ip link show rpub | grep -q "prog/xdp" || fail "no XDP program on rpub"

# 1. IPv4 both ways, nothing lost, through AF_XDP
rtpgen v4.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 200 --duration 3
sent=$(field v4.json sent)
recv=$(field v4.json received)
xsk_tx=$(metric 'relay_xsk_tx_packets_total')
sock_rx=$(metric 'relay_rx_packets_total')
steered=$(metric 'relay_xdp_packets_total\{.*action="steered"')
python3 -c "
s, r, x, k, st = $sent, $recv, $xsk_tx, $sock_rx, $steered
assert r == s > 0, ('lost', s, r)
assert x >= 0.99 * r, ('not through AF_XDP', x, r)
assert st >= r, ('not steered by the program', st, r)
assert k <= 0.01 * r, ('socket path carried media', k, r)
" || fail "IPv4 load: sent $sent received $recv, AF_XDP tx $xsk_tx, steered $steered, socket rx $sock_rx"
ok "IPv4 200 calls both ways: $sent sent, $recv received, $xsk_tx via AF_XDP, $sock_rx via sockets, p99 $(field v4.json latency_us_p99) us"

# the generator's own AF_XDP mode (what bench/xdp_bench.py drives)
rtpgen gen.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 100 --duration 2 --xdp
ok "rtpgen --xdp (AF_XDP generator) through the AF_XDP relay: $(field gen.json received)/$(field gen.json sent)"

# DSCP (--tos, default 184 = EF) on what the AF_XDP worker sends
$E timeout 15 tshark -i epriv -c 20 -f "udp and src host 10.203.2.1" -T fields -e ip.dsfield >"$work/dscp.txt" 2>/dev/null &
cap=$!
sleep 2
rtpgen dscp.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 5 --duration 1
wait $cap || true
python3 -c "
v = [int(x, 16) for x in open('$work/dscp.txt').read().split()]
assert len(v) == 20 and set(v) == {184}, v
" || fail "DSCP of AF_XDP-sent packets: $(tr '\n' ' ' <"$work/dscp.txt")"
ok "DSCP EF (TOS 184) on every AF_XDP-sent packet captured"

# 2. IPv6, and bridging IPv4 (caller) to IPv6 (callee)
tx0=$(metric 'relay_xsk_tx_packets_total')
rtpgen v6.json --caller-ip fd03:1::2 --callee-ip fd03:2::2 --direction pub6,priv6 --calls 50 --duration 2
tx6=$(($(metric 'relay_xsk_tx_packets_total') - tx0))
[[ $tx6 -ge $(($(field v6.json received) * 9 / 10)) ]] || fail "IPv6 not through AF_XDP: $tx6 of $(field v6.json received)"
rtpgen v46.json --caller-ip 10.203.1.2 --callee-ip fd03:2::2 --direction pub,priv6 --calls 50 --duration 2
rtpgen srtp.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 50 --duration 2 \
  --srtp AES_CM_128_HMAC_SHA1_80 --srtp-callee AES_CM_128_HMAC_SHA1_32
[[ $(field srtp.json srtp_auth_failures) -eq 0 ]] || fail "SRTP re-keyed through AF_XDP: authentication failures"
ok "IPv6 ($(field v6.json received)/$(field v6.json sent), $tx6 via AF_XDP), IPv4->IPv6 ($(field v46.json received)/$(field v46.json sent)) and SRTP re-keyed _80 -> _32 ($(field srtp.json received)/$(field srtp.json sent), 0 auth failures) lose nothing"

# 3. the kernel path for everything else: ping and TCP through the relay namespace
$C ping -c 2 -W 2 10.203.2.2 >/dev/null || fail "ping caller -> callee across the relay"
$C ping -c 2 -W 2 fd03:2::2 >/dev/null || fail "ping6 caller -> callee across the relay"
$E python3 -m http.server --bind 10.203.2.2 8088 >"$work/http.log" 2>&1 &
for _ in $(seq 50); do $C curl -s -o /dev/null http://10.203.2.2:8088/ && break || sleep 0.1; done
$C curl -sf -o /dev/null http://10.203.2.2:8088/ || fail "TCP caller -> callee across the relay"
ok "ping (v4, v6) and TCP cross the relay namespace (XDP_PASS)"

# 4. malformed frames to a steered port in the middle of a call
before_flow=$(metric 'relay_xsk_drops_total\{.*reason="flow"')
before_len=$(metric 'relay_xsk_drops_total\{.*reason="frame-bad-length"')
before_unparsed=$(metric 'relay_xdp_packets_total\{interface="rpub",action="pass-unparsed"')
rtpgen bad.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 20 --duration 3 --keep &
gen=$!
sleep 1
port=$($C ./target/release/relayctl --http $HTTP --json flows | python3 -c '
import json, sys
print(next(f["local"] for f in json.load(sys.stdin) if f["tag"] == "caller" and f["kind"] == "rtp").rsplit(":", 1)[1])')
dst_mac=$($R cat /sys/class/net/rpub/address)
$C python3 - "$dst_mac" "$port" <<'PY' || fail "sending malformed frames"
import socket, struct, sys
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
port = int(sys.argv[2])
src = bytes.fromhex(open("/sys/class/net/cpub/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("cpub", 0))
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def ip4(payload, opts=b"", frag=0x4000, tot=None):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot or 4 * ihl + len(payload), 1, frag, 64, 17, 0,
                    socket.inet_aton("10.203.1.2"), socket.inet_aton("10.203.1.1")) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload
def udp(data, ulen=None):
    return struct.pack("!HHHH", 40000, port, ulen or 8 + len(data), 0) + data
eth = dst + src + b"\x08\x00"
frames = {
    "udp length past the datagram": eth + ip4(udp(b"\x80" * 20, ulen=500)),
    "not RTP": eth + ip4(udp(b"\x00garbage-not-rtp")),
    "IPv4 options": eth + ip4(udp(b"\x80" * 20), opts=b"\x01\x01\x01\x00"),
    "fragment": eth + ip4(udp(b"\x80" * 20), frag=0x2000),
    "truncated IP header": eth + ip4(udp(b""))[:12],
    "ethernet only": eth,
}
for _ in range(50):
    for f in frames.values():
        s.send(f.ljust(60, b"\0") if len(f) < 14 else f)
PY
wait $gen || fail "the call lost packets while malformed frames arrived"
d_flow=$(($(metric 'relay_xsk_drops_total\{.*reason="flow"') - before_flow))
d_len=$(($(metric 'relay_xsk_drops_total\{.*reason="frame-bad-length"') - before_len))
d_unparsed=$(($(metric 'relay_xdp_packets_total\{interface="rpub",action="pass-unparsed"') - before_unparsed))
[[ $d_flow -ge 50 && $d_len -ge 50 && $d_unparsed -ge 150 ]] \
  || fail "malformed frames not counted: flow $d_flow, bad length $d_len, passed unparsed $d_unparsed"
ok "malformed frames: $d_len bad UDP length and $d_flow not-RTP dropped by the worker, $d_unparsed passed to the kernel; the call lost nothing ($(field bad.json received)/$(field bad.json sent))"

# 5. the callee's MAC changes mid-call: the relay follows the neighbour table
MAX_LOSS=2 rtpgen mac.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 20 --duration 4 &
gen=$!
sleep 1.5
$E ip link set epriv address 02:00:00:00:be:ef
$R ip neigh replace 10.203.2.2 lladdr 02:00:00:00:be:ef dev rpriv nud reachable
wait $gen || fail "traffic did not follow the callee's new MAC"
rtpgen mac2.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 20 --duration 1
ok "neighbour change followed: mid-call $(field mac.json received)/$(field mac.json sent), after $(field mac2.json received)/$(field mac2.json sent)"

# 6. deleting calls removes their steering entries (read back from the kernel's map)
rtpgen keep.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 10 --duration 1 --keep
# per-flow counters merged from the AF_XDP workers and the socket path
$C ./target/release/relayctl --http $HTTP --json flows | python3 -c '
import json, sys
flows = [f for f in json.load(sys.stdin) if f["kind"] == "rtp"]
bad = [f for f in flows if f["counters"]["packets"] < 45 or f["counters"]["forwarded"] < 45]
assert flows and not bad, (len(flows), len(bad), bad[:2])
assert all(f["counters"]["latched_peer"] for f in flows), flows[:2]
' || fail "per-flow counters of AF_XDP-relayed flows"
# the steering entries as the kernel has them (every map named "flows": one per interface)
in_kernel() {
  bpftool -j map show | python3 -c '
import json, subprocess, sys
n = 0
for m in json.load(sys.stdin):
    if m.get("name") == "flows" and m.get("type") == "hash":
        out = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(m["id"])], capture_output=True, text=True).stdout
        n += len(json.loads(out or "[]"))
print(n)'
}
all=$(in_kernel)
[[ $all -eq $(metric 'relay_xdp_steered_flows') ]] || fail "relayd reports $(metric 'relay_xdp_steered_flows') steered flows, the kernel has $all"
one=$($C ./target/release/relayctl --http $HTTP --json calls | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["call_id"])')
$C env RELAYCTL_TOKEN=xdp-test-token ./target/release/relayctl --http $HTTP terminate "$one" >/dev/null || fail "terminate $one"
sleep 0.2
after_one=$(in_kernel)
for id in $($C ./target/release/relayctl --http $HTTP --json calls | python3 -c 'import json,sys; print(" ".join(c["call_id"] for c in json.load(sys.stdin)))'); do
  $C python3 ../shared/conformance/ngclient.py $NG "{\"command\": \"delete\", \"call-id\": \"$id\"}" >/dev/null
done
sleep 0.2
none=$(in_kernel)
[[ $((all - after_one)) -eq 4 && $none -eq 0 ]] || fail "steering entries: $all with 30 calls, $after_one after one delete, $none after all"
ok "per-flow counters (merged from the AF_XDP workers and the socket path) and latches visible; steering entries in the kernel's maps (bpftool): $all for 30 calls kept, $after_one after deleting one (4 sockets), $none after deleting all"

# 7. SIGTERM detaches; auto on loopback falls back to io_uring
kill -TERM "$relayd_pid"
wait "$relayd_pid" || true
$R ip link show rpub | grep -q "prog/xdp" && fail "XDP program still attached after SIGTERM"
$R ip link show rpriv | grep -q "prog/xdp" && fail "XDP program still attached to rpriv after SIGTERM"
grep -q "XDP program detached" "$work/relayd.log" || fail "no clean shutdown after SIGTERM"
$R ./target/release/relayd --listen-ng=127.0.0.1:2281 --listen-http=none --interface=127.0.0.1 --backend auto \
  --log-level=info >"$work/auto.log" 2>&1 &
pid=$!
$R python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2281 10 >/dev/null || fail "auto relayd on loopback"
grep -q "backend io_uring" "$work/auto.log" || fail "auto did not fall back to io_uring on loopback"
$R ip link show lo | grep -q "prog/xdp" && fail "auto left a program on loopback"
kill -INT $pid
wait $pid || true
# shellcheck disable=SC2086
start_relayd auto2.log --backend auto $V4
grep -q "backend xdp on rpub,rpriv" "$work/auto2.log" || fail "auto did not pick XDP on veth"
kill -INT "$relayd_pid"
wait "$relayd_pid" || true
$R ip link show rpub | grep -q "prog/xdp" && fail "XDP program still attached after SIGINT"
ok "SIGTERM and SIGINT detach; auto uses XDP on veth and io_uring on loopback"

# 8. a device without native XDP (a bridge): xdp falls back to generic mode with a warning,
#    auto to io_uring
$R ip link add xdum0 type bridge
$R ip addr add 10.203.9.1/24 dev xdum0
$R ip link set xdum0 up
$R ./target/release/relayd --listen-ng=127.0.0.1:2282 --listen-http=none --interface=10.203.9.1 --backend xdp \
  --log-level=info >"$work/generic.log" 2>&1 &
pid=$!
$R python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2282 10 >/dev/null || fail "xdp relayd on a bridge device"
grep -q "xdum0: XDP native mode not available" "$work/generic.log" || fail "no warning about generic mode"
grep -q "XDP on xdum0 (ifindex [0-9]*, generic mode" "$work/generic.log" || fail "not attached in generic mode"
kill -TERM $pid
wait $pid || true
$R ip link show xdum0 | grep -q "xdp" && fail "generic-mode program still attached after SIGTERM"
$R ./target/release/relayd --listen-ng=127.0.0.1:2283 --listen-http=none --interface=10.203.9.1 --backend auto \
  --log-level=info >"$work/auto3.log" 2>&1 &
pid=$!
$R python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2283 10 >/dev/null || fail "auto relayd on a bridge device"
grep -q "backend io_uring" "$work/auto3.log" || fail "auto did not fall back to io_uring without native XDP"
kill -TERM $pid
wait $pid || true
ok "no native XDP (a bridge device): xdp attaches in generic mode with a warning, auto falls back to io_uring"
# 9. a multi-queue interface: the caller's packets arrive on queue 1, the callee's on
#    queue 0 (XPS on the hosts' 2-queue veths), so two workers each see one direction.
#    Both endpoints signal a wrong address (as behind NAT): only latching finds them, and
#    each worker must learn the other direction's latch from the other worker.
scripts/netns.sh down
QUEUES=2 scripts/netns.sh up
$C sh -c 'echo 1 > /sys/class/net/cpub/queues/tx-0/xps_cpus; echo 2 > /sys/class/net/cpub/queues/tx-1/xps_cpus'
$E sh -c 'echo 2 > /sys/class/net/epriv/queues/tx-0/xps_cpus; echo 1 > /sys/class/net/epriv/queues/tx-1/xps_cpus'
# shellcheck disable=SC2086
start_relayd multiq.log --backend xdp $V4
grep -q "XDP on rpub (ifindex [0-9]*, native mode, 2 queue(s)" "$work/multiq.log" || fail "not 2 queues"
C="ip netns exec xC taskset -c 1" MAX_LOSS=100 \
  rtpgen nat.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 50 --duration 2 \
  --cpu 1 --sdp-ip 10.203.9.9
q0=$(metric 'relay_xsk_rx_packets_total\{queue="0"')
q1=$(metric 'relay_xsk_rx_packets_total\{queue="1"')
a0=$(metric 'relay_xsk_latches_adopted_total\{queue="0"')
a1=$(metric 'relay_xsk_latches_adopted_total\{queue="1"')
lost=$(field nat.json lost)
[[ $q0 -gt 1000 && $q1 -gt 1000 && $a0 -ge 50 && $a1 -ge 50 && $lost -le 100 ]] \
  || fail "multi-queue latching: rx q0 $q0 q1 $q1, latches adopted $a0/$a1, lost $lost"
ok "2 queues, one direction each: $a0 + $a1 latches shared between the workers; lost $lost of $(field nat.json sent) (the first packet per call and direction, sent to the signalled address before anything latched)"
t_end
