#!/usr/bin/env bash
# Set up a fresh machine and run the relay in the foreground.
# Extra arguments go to relayd (e.g. --interface=pub/192.0.2.10!203.0.113.10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --workspace
args=("$@")
if ((${#args[@]} == 0)); then
  args=(--config docs/relayd.example.toml)
fi
echo "starting relayd ${args[*]}"
exec ./target/release/relayd "${args[@]}"
