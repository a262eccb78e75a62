#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (default 20 s each).
# Needs a nightly toolchain and cargo-fuzz; where they are missing it says so and
# exits 0 (the deterministic mutation tests in the unit suites still run everywhere).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-20}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no nightly toolchain: 'rustup toolchain install nightly')"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked >/tmp/cargo-fuzz-install.log 2>&1 || { echo "fuzz: skipped (cargo-fuzz did not install)"; exit 0; }
fi
status=0
for t in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$t"
  if cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"/tmp/fuzz-$t.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -o 'Done [0-9]* runs' "/tmp/fuzz-$t.log" | tail -1))"
  else
    echo "fuzz $t: FAILED"; tail -30 "/tmp/fuzz-$t.log"; status=1
  fi
done
exit $status
