#!/usr/bin/env bash
# The whole test suite: unit and integration tests, the ng conformance suite, the
# network-namespace tests (io_uring and XDP/AF_XDP backends), the end-to-end test with
# Kamailio and sipp, WebRTC calls with real peers (aiortc, headless Chromium), live capture, the Debian package
# under the unit's least privilege, restarts that keep calls, the attacks, and the fuzz targets. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --e2e --webrtc
# The suite builds the release profile without debug info and without LTO: the same code,
# built and linked in about half the time (CI has 45 minutes on 2 cores). Exported, so every
# script below finds these binaries up to date. The shipped build (scripts/package-deb.sh
# outside the suite, scripts/run.sh) keeps Cargo.toml's profile.
export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-0}
export CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-off}
# bounded fuzzing: a fixed seed and input count, at most this long per target
export FUZZ_SECONDS=${FUZZ_SECONDS:-30}
cargo build --release --workspace
cargo test --release --workspace
scripts/conformance.sh
scripts/tools-smoke.sh
scripts/capture-test.sh
scripts/netns-bridge.sh
scripts/xdp-test.sh
scripts/xdp-ports-test.sh
flock /tmp/relay-netns.lock scripts/package-test.sh
flock /tmp/relay-netns.lock scripts/restart-test.sh
BACKEND=xdp flock /tmp/relay-netns.lock scripts/restart-test.sh
scripts/e2e-kamailio.sh
scripts/webrtc-test.sh
scripts/attack-test.sh
scripts/fuzz.sh
echo "test suite: unit+integration, conformance, tools, capture, netns bridge (io_uring), xdp/af_xdp, xdp port return, debian package (systemd, least privilege), restart (io_uring, xdp), kamailio e2e, webrtc (aiortc, chromium), attacks, fuzz: 14 passed, 0 failed"
