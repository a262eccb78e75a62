#!/usr/bin/env bash
# Runs ../shared/conformance (rtpengine's ng compatibility suite) against relayd.
# Skipped, with the reason (see docs/ng-protocol.md, "Conformance"): the one deliberate
# difference.
#   gh-661-plain-L11997, mki-re-invite: rtpengine reuses the offerer's SDES keys (and
#                  MKIs) towards the answerer; relayd gives every leg fresh keys (a leg's
#                  key never protects another leg). With the offerer's key material read
#                  as CRYPTO128 mki-re-invite passes, MKIs included.
exclude='gh-661-plain-L11997|mki-re-invite'

set -euo pipefail
cd "$(dirname "$0")/.."
suite=${CONFORMANCE_DIR:-../shared/conformance}
if [[ ! -f $suite/ng_conformance.py ]]; then
  echo "conformance suite not found at $suite" >&2
  exit 1
fi
bin=./target/release/relayd
log=$(mktemp -t relayd-conf.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

run_profile() {
  local profile=$1; shift
  "$bin" --no-state --listen-ng=127.0.0.1:2223 --listen-http=none --port-min=30000 --port-max=40000 --log-level=warn "$@" >"$log" 2>&1 &
  pid=$!
  python3 "$suite/ngclient.py" --wait-ping 127.0.0.1:2223 10 >/dev/null || { cat "$log"; exit 1; }
  python3 "$suite/ng_conformance.py" --ng 127.0.0.1:2223 --profile "$profile" "${runner[@]}" \
    --exclude "$exclude"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

runner=(--relay4 127.0.0.1 --relay6 ::1 --port-min 30000 --port-max 40000)
run_profile main --interface=127.0.0.1 --interface=::1
runner=(--relay4 127.0.0.1 --relay4b 127.0.0.2 --port-min 30000 --port-max 40000)
run_profile intfs --interface=foo/127.0.0.1 --interface=bar/127.0.0.2
