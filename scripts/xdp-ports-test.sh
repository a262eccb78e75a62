#!/usr/bin/env bash
# Ports come back on the XDP backend (issue 9 §6), in the namespaces of scripts/netns.sh
# with two RX queues (two AF_XDP workers, each holding a duplicate of every relay socket):
#   1. a refused offer's ports are free for the next offer at once, 20 rounds on a range
#      the offers fill exactly
#   2. with a descriptor limit below what the range needs, offers fail cleanly when the
#      descriptors run out, and after deleting every call the same number of calls fits
#      again: nothing leaked (a failed descriptor duplicate used to leave the port bound)
# Run under `flock /tmp/relay-netns.lock`.
source "$(dirname "$0")/lib.sh"
t_begin xdp-ports root netns
R="ip netns exec xR"
C="ip netns exec xC"
NG=10.203.1.1:2280
QUEUES=2 scripts/netns.sh up

start_relayd() { # start_relayd LOG ARGS...
  local log=$1
  shift
  $R "$@" --listen-ng=$NG --listen-http=none --delete-delay=0 --log-level=warn --no-state --backend xdp \
    --interface=pub/10.203.1.1 >"$work/$log" 2>&1 &
  relayd_pid=$!
  pids+=("$relayd_pid")
  $C python3 ../shared/conformance/ngclient.py --wait-ping $NG 10 >/dev/null || fail "relayd not answering ng ($log)"
}
stop_relayd() {
  kill -INT "$relayd_pid"
  wait "$relayd_pid" || true
}
ng() { # ng PYTHON: runs PYTHON with c = an ng client; prints what it prints
  $C python3 -c "
import sys
sys.path.insert(0, '../shared/conformance')
from ngclient import NgClient
c = NgClient('$NG')
def sdp(sections):
    s = 'v=0\r\no=- 1 1 IN IP4 10.203.1.2\r\ns=-\r\nc=IN IP4 10.203.1.2\r\nt=0 0\r\n'
    for i in range(sections):
        s += 'm=audio %d RTP/AVP 0\r\n' % (7000 + 2 * i)
    return s
def offer(cid, sections):
    return c.request({'command': 'offer', 'call-id': cid, 'from-tag': 'x', 'sdp': sdp(sections)})
def delete(cid):
    return c.request({'command': 'delete', 'call-id': cid, 'delete-delay': 0})
$1"
}

# 1. 8 pairs: an offer of 4 sections takes them all (both sides), one of 5 is refused
start_relayd ports.log ./target/release/relayd --port-min=31000 --port-max=31015
out=$(ng "
for r in range(20):
    o = offer('big%d' % r, 5)
    assert o['result'] == 'error' and 'exhausted' in o['error-reason'], o
    o = offer('fits%d' % r, 4)
    assert o['result'] == 'ok', (r, o)
    assert delete('fits%d' % r)['result'] == 'ok'
print('ok')") || fail "refused offer's ports: $out"
[[ $out == ok ]] || fail "refused offer's ports: $out"
stop_relayd
ok "a refused offer's ports are free for the next offer at once (20 rounds, 8 pairs, 2 AF_XDP workers)"

# 2. descriptors run out before ports do: what fits once fits again after deleting
start_relayd nofile.log prlimit --nofile=400:400 ./target/release/relayd --port-min=31000 --port-max=32999
out=$(ng "
def fill(tag):
    n = 0
    while True:
        o = offer('%s%d' % (tag, n), 1)
        if o['result'] != 'ok':
            return n, o.get('error-reason', '')
        n += 1
a, why = fill('a')
for i in range(a):
    assert delete('a%d' % i)['result'] == 'ok'
b, _ = fill('b')
st = c.request({'command': 'statistics'})['statistics']['currentstatistics']
for i in range(b):
    assert delete('b%d' % i)['result'] == 'ok'
print(a, b, st['portsused'], why)") || fail "descriptor limit: $out"
read -r first second used _ <<<"$out"
sleep 0.5
bound=$($R ss -Huan 'sport >= :31000 and sport <= :32999' | wc -l)
[[ $first -gt 10 && $second -eq $first && $used -eq $((first * 4)) && $bound -eq 0 ]] \
  || fail "descriptor limit: $first calls fitted, then $second after deleting them (ports used $used); $bound sockets still bound after deleting all: $out"
stop_relayd
ok "with 400 descriptors $first calls fit, and again $second after deleting them (${out#* * * }); no socket left bound"
t_end
