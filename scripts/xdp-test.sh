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
#   7. one truth per socket: mid-call, foreign RTP in frames the program passes to the
#      kernel (IPv4 options, fragments; IPv6 extension headers and fragments) is dropped
#      by the latch the AF_XDP path made, never reaches the callee
#   8. SRTP captured from the caller and replayed through the kernel path (with IPv4
#      options, as fragments) is rejected as a replay
#   9. spoofed sources (127.0.0.1, the relay's own addresses) at a live flow are dropped
#      by the program (drop-martian), at the ng port by the kernel; the call loses nothing
#  10. SIGTERM detaches the program; `auto` falls back to io_uring on loopback, and
#      SIGINT leaves nothing attached
#  11. without native XDP (a bridge device): xdp uses generic mode with a warning, auto
#      uses io_uring
#  12. two RX queues, a call's directions on different queues, endpoints behind "NAT":
#      one latch per socket whichever queue a packet arrives on
#  13. two RX queues, the caller's packets move from one queue to the other mid-call,
#      after an SRTP rollover: decryption goes on (one SRTP state per socket)
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
  $R ./target/release/relayd --no-state --listen-ng=$NG --listen-http=$HTTP --port-min=31000 --port-max=32999 \
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
flow() { # flow TAG KIND FIELD: a counter (or "local") of the first flow of that tag and kind
  $C ./target/release/relayctl --http $HTTP --json flows | python3 -c '
import json, sys
f = next(f for f in json.load(sys.stdin) if f["tag"] == sys.argv[1] and f["kind"] == sys.argv[2])
print(f["local"] if sys.argv[3] == "local" else f["counters"][sys.argv[3]])' "$1" "$2" "$3"
}
# Frames the kernel path gets (and what an attacker can send): sniff, inject, capture and
# replay over AF_PACKET. Marked frames carry SSRC 0xdeadbeef and "XDPTESTMARK".
cat >"$work/frames.py" <<'PY'
import socket, struct, sys, time
MARK = b"XDPTESTMARK"
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def mac(ifname): return bytes.fromhex(open("/sys/class/net/%s/address" % ifname).read().strip().replace(":", ""))
def ip4(src, dst, payload, opts=b"", off=0, mf=False, ident=1):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), ident, (0x2000 if mf else 0) | (off >> 3),
                    64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst)) + opts
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
def udp4(sport, dport, data): return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data  # no checksum
def udp6(src, dst, sport, dport, data):
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    ph = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!I3xB", len(u), 17)
    return u[:6] + struct.pack("!H", csum(ph + u) or 0xffff) + u[8:]
def ip6(src, dst, nh, payload):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, 64) + socket.inet_pton(socket.AF_INET6, src) \
        + socket.inet_pton(socket.AF_INET6, dst) + payload
def rtp(seq): return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xdeadbeef) + MARK + bytes(29)
def frags4(src, dst, u, ident):  # two fragments of a UDP datagram
    return [ip4(src, dst, u[:16], mf=True, ident=ident), ip4(src, dst, u[16:], off=16, ident=ident)]
def sock(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 0))
    return s
def send(s, ifname, dst_mac, ethertype, packets):
    for p in packets:
        s.send(dst_mac + mac(ifname) + struct.pack("!H", ethertype) + p)
        time.sleep(0.0005)
cmd, ifname = sys.argv[1], sys.argv[2]
if cmd == "sniff":  # sniff IF SECONDS: marked frames seen
    s, n, end = sock(ifname), 0, time.time() + float(sys.argv[3])
    s.settimeout(0.2)
    while time.time() < end:
        try:
            n += MARK in s.recv(65535)
        except socket.timeout:
            pass
    print(n)
elif cmd == "foreign4":  # foreign4 IF DST_MAC SRC DST DPORT N: marked RTP with IPv4 options, and as fragments
    dmac, src, dst, dport, n = bytes.fromhex(sys.argv[3].replace(":", "")), sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
    s, pk = sock(ifname), []
    for i in range(n):
        pk.append(ip4(src, dst, udp4(40000, dport, rtp(i)), opts=b"\x01\x01\x01\x00"))
        pk += frags4(src, dst, udp4(40000, dport, rtp(i)), 0x4000 + i)
    send(s, ifname, dmac, 0x0800, pk)
elif cmd == "foreign6":  # foreign6 IF DST_MAC SRC DST DPORT N: behind a destination-options header, and as fragments
    dmac, src, dst, dport, n = bytes.fromhex(sys.argv[3].replace(":", "")), sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
    s, pk = sock(ifname), []
    for i in range(n):
        u = udp6(src, dst, 40000, dport, rtp(i))
        pk.append(ip6(src, dst, 60, bytes([17, 0, 1, 4, 0, 0, 0, 0]) + u))
        fh = lambda off, m: struct.pack("!BBHI", 17, 0, off | m, 0x6000 + i)
        pk += [ip6(src, dst, 44, fh(0, 1) + u[:16]), ip6(src, dst, 44, fh(16, 0) + u[16:])]
    send(s, ifname, dmac, 0x86DD, pk)
elif cmd == "capture":  # capture IF DPORT N FILE: N outgoing IPv4 UDP datagrams to DPORT
    dport, n, out = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    s, got, end = sock(ifname), [], time.time() + 5
    s.settimeout(0.2)
    while len(got) < n and time.time() < end:
        try:
            f, a = s.recvfrom(65535)
        except socket.timeout:
            continue
        if a[2] == socket.PACKET_OUTGOING and f[12:14] == b"\x08\x00" and f[23] == 17:
            ihl = (f[14] & 15) * 4
            if struct.unpack("!H", f[14 + ihl + 2:14 + ihl + 4])[0] == dport:
                got.append(f[14:].hex())
    open(out, "w").write("\n".join(got))
    print(len(got))
elif cmd == "replay4":  # replay4 IF DST_MAC FILE: each captured datagram again, with IPv4 options and as fragments
    dmac, pk = bytes.fromhex(sys.argv[3].replace(":", "")), []
    for k, line in enumerate(open(sys.argv[4]).read().split()):
        p = bytes.fromhex(line)
        ihl = (p[0] & 15) * 4
        src, dst = socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20])
        u = p[ihl:ihl + 6] + b"\0\0" + p[ihl + 8:]  # the checksum was offloaded: none
        pk.append(ip4(src, dst, u, opts=b"\x01\x01\x01\x00"))
        pk += frags4(src, dst, u, 0x5000 + k)
    send(sock(ifname), ifname, dmac, 0x0800, pk)
    print(len(pk))
elif cmd == "spoof4":  # spoof4 IF DST_MAC SRC DST DPORT N [PAYLOAD]: N datagrams from a spoofed source
    dmac, src, dst, dport, n = bytes.fromhex(sys.argv[3].replace(":", "")), sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
    data = sys.argv[8].encode() if len(sys.argv) > 8 else None
    send(sock(ifname), ifname, dmac, 0x0800, [ip4(src, dst, udp4(2000, dport, data or rtp(i))) for i in range(n)])
PY
delete_all() {
  local id
  for id in $($C ./target/release/relayctl --http $HTTP --json calls | python3 -c 'import json,sys; print(" ".join(c["call_id"] for c in json.load(sys.stdin)))'); do
    $C python3 ../shared/conformance/ngclient.py $NG "{\"command\": \"delete\", \"call-id\": \"$id\"}" >/dev/null
  done
}

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
xsk_tx=$(metric 'relay_tx_packets_total\{path="xsk"')
sock_rx=$(metric 'relay_rx_packets_total\{path="socket"')
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
tx0=$(metric 'relay_tx_packets_total\{path="xsk"')
rtpgen v6.json --caller-ip fd03:1::2 --callee-ip fd03:2::2 --direction pub6,priv6 --calls 50 --duration 2
tx6=$(($(metric 'relay_tx_packets_total\{path="xsk"') - tx0))
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
before_verdict=$(metric 'relay_drops_total\{.*reason="(malformed|source)"')
before_notmedia=$(metric 'relay_xdp_packets_total\{interface="rpub",action="pass-not-media"')
before_len=$(metric 'relay_drops_total\{path="xsk".*reason="frame-bad-length"')
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
    "not RTP (STUN's first byte)": eth + ip4(udp(b"\x00garbage-not-rtp")),
    "not RTP (DTLS's first byte)": eth + ip4(udp(b"\x16\xfe\xfdgarbage-not-rtp")),
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
d_verdict=$(($(metric 'relay_drops_total\{.*reason="(malformed|source)"') - before_verdict))
d_notmedia=$(($(metric 'relay_xdp_packets_total\{interface="rpub",action="pass-not-media"') - before_notmedia))
d_len=$(($(metric 'relay_drops_total\{path="xsk".*reason="frame-bad-length"') - before_len))
d_unparsed=$(($(metric 'relay_xdp_packets_total\{interface="rpub",action="pass-unparsed"') - before_unparsed))
# not RTP by the first byte (STUN, DTLS: RFC 7983) leaves the fast path for the socket
# path, where the flow table drops it (a foreign source on a plain flow)
[[ $d_verdict -ge 100 && $d_len -ge 50 && $d_unparsed -ge 150 && $d_notmedia -ge 100 ]] \
  || fail "malformed frames not counted: flow table $d_verdict, bad length $d_len, passed unparsed $d_unparsed, passed not media $d_notmedia"
ok "malformed frames: $d_len bad UDP length dropped, $d_notmedia not-RTP (STUN/DTLS first bytes) passed to the socket path and $d_verdict dropped there by the flow table (reason source or malformed), $d_unparsed passed to the kernel; the call lost nothing ($(field bad.json received)/$(field bad.json sent))"

# 5. the callee's MAC changes mid-call: the relay follows the neighbour table
MAX_LOSS=2 rtpgen mac.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 20 --duration 4 &
gen=$!
sleep 1.5
$E ip link set epriv address 02:00:00:00:be:ef
$R ip neigh replace 10.203.2.2 lladdr 02:00:00:00:be:ef dev rpriv nud reachable
# (and for IPv6, so that later IPv6 calls do not wait for the stale entry to be probed)
$R ip -6 neigh replace fd03:2::2 lladdr 02:00:00:00:be:ef dev rpriv nud reachable
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
ok "per-flow counters (one set per flow, whichever worker or path counted) and latches visible; steering entries in the kernel's maps (bpftool): $all for 30 calls kept, $after_one after deleting one (4 sockets), $none after deleting all"

# 7. one truth per socket: foreign RTP through the kernel path (frames the program passes)
#    to the caller's port of a latched call, from the caller's host but another port
rpub_mac=$($R cat /sys/class/net/rpub/address)
src0=$(metric 'relay_drops_total\{path="socket".*reason="source"')
rtpgen opt.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 1 --duration 4 --keep &
gen=$!
sleep 1.5
port=$(flow caller rtp local)
port=${port##*:}
$E python3 "$work/frames.py" sniff epriv 2.5 >"$work/sniff.txt" &
sn=$!
sleep 0.3
$C python3 "$work/frames.py" foreign4 cpub "$rpub_mac" 10.203.1.2 10.203.1.1 "$port" 50
wait $sn
wait $gen || fail "the call lost packets while foreign RTP came through the kernel path"
d_src=$(($(metric 'relay_drops_total\{path="socket".*reason="source"') - src0))
[[ $(cat "$work/sniff.txt") -eq 0 && $d_src -ge 100 ]] \
  || fail "IPv4 kernel path: $(cat "$work/sniff.txt") foreign packets reached the callee, $d_src dropped by source"
v4drops=$d_src
delete_all
src0=$(metric 'relay_drops_total\{path="socket".*reason="source"')
rtpgen opt6.json --caller-ip fd03:1::2 --callee-ip fd03:2::2 --direction pub6,priv6 --calls 1 --duration 4 --keep &
gen=$!
sleep 1.5
port=$(flow caller rtp local)
port=${port##*:}
$E python3 "$work/frames.py" sniff epriv 2.5 >"$work/sniff.txt" &
sn=$!
sleep 0.3
$C python3 "$work/frames.py" foreign6 cpub "$rpub_mac" fd03:1::2 fd03:1::1 "$port" 50
wait $sn
wait $gen || fail "the IPv6 call lost packets while foreign RTP came through the kernel path"
d_src=$(($(metric 'relay_drops_total\{path="socket".*reason="source"') - src0))
[[ $(cat "$work/sniff.txt") -eq 0 && $d_src -ge 100 ]] \
  || fail "IPv6 kernel path: $(cat "$work/sniff.txt") foreign packets reached the callee, $d_src dropped by source"
ok "foreign RTP mid-call through the kernel path (the AF_XDP path's latch decides): IPv4 options + fragments $v4drops dropped, IPv6 destination options + fragments $d_src dropped, 0 reached the callee, the calls lost nothing"
delete_all

# 8. SRTP replayed through the kernel path: captured from the caller, sent again (same
#    source) with IPv4 options and as fragments
rtpgen replay.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 1 --duration 4 --keep \
  --srtp AES_CM_128_HMAC_SHA1_80 &
gen=$!
sleep 1
port=$(flow caller rtp local)
port=${port##*:}
n=$($C python3 "$work/frames.py" capture cpub "$port" 20 "$work/srtp.hex")
[[ $n -eq 20 ]] || fail "captured $n SRTP packets of the caller"
rp0=$(flow caller rtp drop_srtp_replay)
fw0=$(flow caller rtp forwarded)
sent=$($C python3 "$work/frames.py" replay4 cpub "$rpub_mac" "$work/srtp.hex")
wait $gen || fail "the SRTP call lost packets while replays came through the kernel path"
rp=$(($(flow caller rtp drop_srtp_replay) - rp0))
auth=$(flow caller rtp drop_srtp_auth)
[[ $rp -ge 40 && $auth -eq 0 && $(field replay.json srtp_auth_failures) -eq 0 ]] \
  || fail "SRTP replays through the kernel path: $rp of 40 rejected as replays, $auth auth failures"
ok "SRTP replayed through the kernel path ($sent frames: 20 datagrams with IPv4 options, 20 as two fragments each): $rp rejected as replays by the one SRTP context; the call lost nothing ($(field replay.json received)/$(field replay.json sent))"
delete_all

# 9. spoofed sources the kernel would call martian: 127.0.0.1 and the relay's own
#    addresses, at a live (steered) flow and at the ng port
mart() { # the kernel's in_martian_src count (all CPUs)
  python3 -c 'l = open("/proc/net/stat/rt_cache").read().split("\n"); i = l[0].split().index("in_martian_src")
print(sum(int(r.split()[i], 16) for r in l[1:] if r.strip()))'
}
m0=$(metric 'relay_xdp_packets_total\{interface="rpub",action="drop-martian"')
rtpgen mart.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 1 --duration 4 --keep &
gen=$!
sleep 1.5
port=$(flow caller rtp local)
port=${port##*:}
cid=$($C ./target/release/relayctl --http $HTTP --json calls | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["call_id"])')
$E python3 "$work/frames.py" sniff epriv 2 >"$work/sniff.txt" &
sn=$!
sleep 0.3
k0=$(mart)
for spoof in 127.0.0.1 10.203.1.1 10.203.2.1; do
  $C python3 "$work/frames.py" spoof4 cpub "$rpub_mac" $spoof 10.203.1.1 "$port" 30
  ng="spoof$RANDOM d7:command6:delete7:call-id${#cid}:${cid}e"
  $C python3 "$work/frames.py" spoof4 cpub "$rpub_mac" $spoof 10.203.1.1 2280 3 "$ng"
done
wait $sn
k=$(($(mart) - k0))
wait $gen || fail "the call lost packets while spoofed frames arrived"
m=$(($(metric 'relay_xdp_packets_total\{interface="rpub",action="drop-martian"') - m0))
alive=$($C ./target/release/relayctl --http $HTTP --json calls | python3 -c 'import json,sys; print(sum(c["call_id"] == sys.argv[1] for c in json.load(sys.stdin)))' "$cid")
[[ $m -ge 90 && $(cat "$work/sniff.txt") -eq 0 && $alive -eq 1 && $k -ge 9 ]] \
  || fail "spoofed sources: $m of 90 dropped as martians, $(cat "$work/sniff.txt") reached the callee, call alive $alive, kernel martians $k of 9"
ok "spoofed sources 127.0.0.1, 10.203.1.1, 10.203.2.1: $m of 90 at the flow dropped by the program (drop-martian), 0 reached the callee; ng deletes from them dropped by the kernel ($k martian sources counted), the call is still there and lost nothing ($(field mart.json received)/$(field mart.json sent))"
delete_all

# 10. SIGTERM detaches; auto on loopback falls back to io_uring
kill -TERM "$relayd_pid"
wait "$relayd_pid" || true
$R ip link show rpub | grep -q "prog/xdp" && fail "XDP program still attached after SIGTERM"
$R ip link show rpriv | grep -q "prog/xdp" && fail "XDP program still attached to rpriv after SIGTERM"
grep -q "XDP program detached" "$work/relayd.log" || fail "no clean shutdown after SIGTERM"
$R ./target/release/relayd --no-state --listen-ng=127.0.0.1:2281 --listen-http=none --interface=127.0.0.1 --backend auto \
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

# 11. a device without native XDP (a bridge): xdp falls back to generic mode with a warning,
#    auto to io_uring
$R ip link add xdum0 type bridge
$R ip addr add 10.203.9.1/24 dev xdum0
$R ip link set xdum0 up
$R ./target/release/relayd --no-state --listen-ng=127.0.0.1:2282 --listen-http=none --interface=10.203.9.1 --backend xdp \
  --log-level=info >"$work/generic.log" 2>&1 &
pid=$!
$R python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2282 10 >/dev/null || fail "xdp relayd on a bridge device"
grep -q "xdum0: XDP native mode not available" "$work/generic.log" || fail "no warning about generic mode"
grep -q "XDP on xdum0 (ifindex [0-9]*, generic mode" "$work/generic.log" || fail "not attached in generic mode"
kill -TERM $pid
wait $pid || true
$R ip link show xdum0 | grep -q "xdp" && fail "generic-mode program still attached after SIGTERM"
$R ./target/release/relayd --no-state --listen-ng=127.0.0.1:2283 --listen-http=none --interface=10.203.9.1 --backend auto \
  --log-level=info >"$work/auto3.log" 2>&1 &
pid=$!
$R python3 ../shared/conformance/ngclient.py --wait-ping 127.0.0.1:2283 10 >/dev/null || fail "auto relayd on a bridge device"
grep -q "backend io_uring" "$work/auto3.log" || fail "auto did not fall back to io_uring without native XDP"
kill -TERM $pid
wait $pid || true
ok "no native XDP (a bridge device): xdp attaches in generic mode with a warning, auto falls back to io_uring"
# 12. a multi-queue interface: the caller's packets arrive on queue 1, the callee's on
#    queue 0 (XPS on the hosts' 2-queue veths), so two workers each see one direction.
#    Both endpoints signal a wrong address (as behind NAT): only latching finds them, and
#    the latch one worker makes is the one the other forwards to (one table).
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
q0=$(metric 'relay_rx_packets_total\{path="xsk",worker="0"')
q1=$(metric 'relay_rx_packets_total\{path="xsk",worker="1"')
lost=$(field nat.json lost)
[[ $q0 -gt 1000 && $q1 -gt 1000 && $lost -le 100 ]] || fail "multi-queue latching: rx q0 $q0 q1 $q1, lost $lost"
ok "2 queues, one direction each (rx $q0 / $q1): one latch per socket for both workers; lost $lost of $(field nat.json sent) (the first packet per call and direction, sent to the signalled address before anything latched)"

# 13. the caller's packets change queue mid-call (XPS moved under the sender: 1 -> 0),
#    after its SRTP sequence numbers wrapped (first 65000, 500 packets/s): one SRTP
#    context, so the rollover counter carries over and nothing fails to authenticate
$E sh -c 'echo 3 > /sys/class/net/epriv/queues/tx-0/xps_cpus; echo 0 > /sys/class/net/epriv/queues/tx-1/xps_cpus'
$C sh -c 'echo 1 > /sys/class/net/cpub/queues/tx-0/xps_cpus; echo 2 > /sys/class/net/cpub/queues/tx-1/xps_cpus'
q1s=$(metric 'relay_rx_packets_total\{path="xsk",worker="1"')
C="ip netns exec xC taskset -c 1" MAX_LOSS=1 \
  rtpgen qc.json --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --direction pub,priv --calls 1 --rate 1000 \
  --duration 4 --cpu 1 --first-seq 65000 --srtp AES_CM_128_HMAC_SHA1_80 --keep &
gen=$!
sleep 2.5
q1a=$(($(metric 'relay_rx_packets_total\{path="xsk",worker="1"') - q1s))
$C sh -c 'echo 2 > /sys/class/net/cpub/queues/tx-0/xps_cpus; echo 1 > /sys/class/net/cpub/queues/tx-1/xps_cpus'
sleep 0.3
q0b=$(metric 'relay_rx_packets_total\{path="xsk",worker="0"')
q1b=$(metric 'relay_rx_packets_total\{path="xsk",worker="1"')
wait $gen || fail "SRTP across a queue change: $(cat "$work/qc.json")"
q0c=$(metric 'relay_rx_packets_total\{path="xsk",worker="0"')
q1c=$(metric 'relay_rx_packets_total\{path="xsk",worker="1"')
auth=$(flow caller rtp drop_srtp_auth)
[[ $q1a -ge 500 && $((q1c - q1b)) -le 5 && $((q0c - q0b)) -ge 600 && $auth -eq 0 \
  && $(field qc.json srtp_auth_failures) -eq 0 ]] \
  || fail "queue change: queue 1 $q1a before, +$((q1c - q1b)) after; queue 0 +$((q0c - q0b)) after; relay auth failures $auth"
ok "SRTP across a wrap and a queue change mid-call (queue 1: $q1a packets, then queue 0: +$((q0c - q0b))): $(field qc.json received)/$(field qc.json sent) delivered, 0 authentication failures at the relay or the callee"
t_end
