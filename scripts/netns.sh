#!/usr/bin/env bash
# The kernel-bypass test topology (root): caller -- veth -- relay -- veth -- callee, each
# host in its own network namespace, the relay dual-homed (a "public" side towards the
# caller, a "private" side towards the callee) and routing between them, so ping and TCP
# from caller to callee cross the relay namespace.
#
#   xC (caller)                     xR (relay)                      xE (callee)
#   cpub 10.203.1.2/24 <-- veth --> rpub 10.203.1.1/24
#        fd03:1::2/64                    fd03:1::1/64
#                                   rpriv 10.203.2.1/24 <-- veth --> epriv 10.203.2.2/24
#                                         fd03:2::1/64                     fd03:2::2/64
#
#   scripts/netns.sh up | down     (used by netns-bridge.sh, xdp-test.sh, bench/xdp_bench.py)
#   QUEUES=2 scripts/netns.sh up   veths with 2 RX/TX queues (a multi-queue NIC's shape)
set -euo pipefail
down() {
  for ns in xC xR xE; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
pair() { # pair NS_A IF_A ADDR_A NS_B IF_B ADDR_B
  local q=${QUEUES:-1}
  ip link add "$2" numtxqueues "$q" numrxqueues "$q" type veth peer name "$5" numtxqueues "$q" numrxqueues "$q"
  ip link set "$2" netns "$1"
  ip link set "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}
up() {
  down
  for ns in xC xR xE; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  pair xC cpub 10.203.1.2/24 xR rpub 10.203.1.1/24
  pair xR rpriv 10.203.2.1/24 xE epriv 10.203.2.2/24
  ip -n xC addr add fd03:1::2/64 dev cpub nodad
  ip -n xR addr add fd03:1::1/64 dev rpub nodad
  ip -n xR addr add fd03:2::1/64 dev rpriv nodad
  ip -n xE addr add fd03:2::2/64 dev epriv nodad
  ip netns exec xR sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n xC route add default via 10.203.1.1
  ip -n xE route add default via 10.203.2.1
  ip -n xC -6 route add default via fd03:1::1
  ip -n xE -6 route add default via fd03:2::1
}
case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
