#!/usr/bin/env bash
# A dual-homed relay between two real networks on the io_uring backend (the XDP backend
# has scripts/xdp-test.sh): the namespaces of scripts/netns.sh, calls come in on "pub"
# from the caller's host and leave on "priv" to the callee's host; rtpgen drives 200
# calls through it and every flow must sit on the right interface. Needs root.
source "$(dirname "$0")/lib.sh"
t_begin netns root netns
scripts/netns.sh up
ip netns exec xR ./target/release/relayd --no-state --backend=uring --interface=pub/10.203.1.1 --interface=priv/10.203.2.1 \
  --listen-ng=10.203.1.1:2263 --listen-http=10.203.1.1:9963 --port-min=31000 --port-max=32999 --log-level=warn \
  >"$work/relayd.log" 2>&1 &
ip netns exec xC python3 ../shared/conformance/ngclient.py --wait-ping 10.203.1.1:2263 10 >/dev/null \
  || fail "relayd not reachable over the pub network"
ip netns exec xC ./target/release/rtpgen --ng 10.203.1.1:2263 --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 \
  --callee-netns xE --direction pub,priv --calls 200 --duration 3 --max-loss 0.1 --quiet --json --keep \
  >"$work/rtpgen.json" || fail "rtpgen through the dual-homed relay"
ip netns exec xC ./target/release/relayctl --http 10.203.1.1:9963 --json flows >"$work/flows.json" || fail "relayctl"
msg=$(python3 - "$work/rtpgen.json" "$work/flows.json" <<'PY'

import json, sys
r = json.load(open(sys.argv[1]))
flows = json.load(open(sys.argv[2]))
assert r["calls"] == 200 and r["received"] >= 0.999 * r["sent"] > 0, r
side = {"caller": "10.203.1.1", "callee": "10.203.2.1"}
peer = {"caller": "10.203.1.2", "callee": "10.203.2.2"}
for f in flows:
    assert f["local"].startswith(side[f["tag"]] + ":"), f
    if f["kind"] == "rtp":
        assert (f["counters"]["latched_peer"] or "").startswith(peer[f["tag"]] + ":"), f
print("%d calls pub -> priv, %d sent, %d received, p99 %d us; %d flows each on its interface"
      % (r["calls"], r["sent"], r["received"], r["latency_us_p99"], len(flows)))
PY
) || fail "flows on the wrong interface"
ok "$msg"
t_end
