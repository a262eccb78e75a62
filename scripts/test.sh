#!/usr/bin/env bash
# The whole test suite: unit and integration tests, the ng conformance suite, and the
# end-to-end test with Kamailio and sipp. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --e2e
cargo build --release --workspace
cargo test --release --workspace
scripts/conformance.sh
if [[ -x scripts/e2e-kamailio.sh ]]; then
  scripts/e2e-kamailio.sh
fi
