#!/usr/bin/env bash
# Test hosts in network namespaces (root): a dual-homed relay and the peers on both of
# its networks.
#
#   rlyP (peers)                         rlyR (relay)
#   ppub  10.201.1.2/24  <--- veth --->  rpub  10.201.1.1/24   "pub"  (caller side)
#   ppriv 10.201.2.2/24  <--- veth --->  rpriv 10.201.2.1/24   "priv" (callee side)
#
#   scripts/netns.sh up | down
set -euo pipefail
R=rlyR
P=rlyP
down() {
  ip netns del "$R" 2>/dev/null || true
  ip netns del "$P" 2>/dev/null || true
}
up() {
  down
  ip netns add "$R"
  ip netns add "$P"
  for side in pub:1 priv:2; do
    name=${side%:*}
    net=${side#*:}
    ip link add "r$name" type veth peer name "p$name"
    ip link set "r$name" netns "$R"
    ip link set "p$name" netns "$P"
    ip -n "$R" addr add "10.201.$net.1/24" dev "r$name"
    ip -n "$P" addr add "10.201.$net.2/24" dev "p$name"
    ip -n "$R" link set "r$name" up
    ip -n "$P" link set "p$name" up
  done
  ip -n "$R" link set lo up
  ip -n "$P" link set lo up
}
case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
