#!/usr/bin/env bash
# The whole test suite: unit and integration tests, the ng conformance suite, the
# network-namespace tests (io_uring and XDP/AF_XDP backends), the end-to-end test with
# Kamailio and sipp, WebRTC calls with real peers (aiortc, headless Chromium), and the fuzz targets. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --e2e --webrtc
cargo build --release --workspace
cargo test --release --workspace
scripts/conformance.sh
scripts/tools-smoke.sh
scripts/netns-bridge.sh
scripts/xdp-test.sh
scripts/xdp-ports-test.sh
scripts/e2e-kamailio.sh
scripts/webrtc-test.sh
scripts/attack-test.sh
scripts/fuzz.sh
echo "test suite: unit+integration, conformance, tools, netns bridge (io_uring), xdp/af_xdp, xdp port return, kamailio e2e, webrtc (aiortc, chromium), attacks, fuzz: 10 passed, 0 failed"
