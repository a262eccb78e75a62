#!/usr/bin/env bash
# The whole test suite: unit and integration tests, the ng conformance suite, and the
# end-to-end test with Kamailio and sipp. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --e2e
cargo build --release --workspace
cargo test --release --workspace
scripts/conformance.sh
scripts/tools-smoke.sh
scripts/netns-bridge.sh
scripts/e2e-kamailio.sh
scripts/fuzz.sh
echo "test suite: unit+integration, conformance, tools, netns bridge, kamailio e2e, fuzz: 6 passed, 0 failed"
