#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/, bounded. In the test suite the run is
# deterministic: a fixed seed, a fixed number of inputs (FUZZ_RUNS, default 200000) and a
# fresh corpus (seeded from fuzz/seeds/<target>/ where that exists), so a pass here is a
# pass in CI. For real hunting:
#   FUZZ_SEED=random FUZZ_RUNS=0 FUZZ_SECONDS=600 scripts/fuzz.sh   (keeps fuzz/corpus/)
# Needs a nightly toolchain and cargo-fuzz; where they are missing it says so and
# exits 0 (the deterministic mutation tests in the unit suites still run everywhere).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-60}
seed=${FUZZ_SEED:-1}
runs=${FUZZ_RUNS:-200000}
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
  if [[ $seed == random ]]; then
    corpus="corpus/$t"
    opts=(-max_total_time="$secs")
  else
    corpus=$(mktemp -d -t "fuzz-$t.XXXXXX")
    opts=(-seed="$seed" -runs="$runs" -max_total_time="$secs")
  fi
  mkdir -p "$corpus"
  # real inputs to start from (fuzz/seeds/<target>/: SDPs of phones, softphones,
  # browsers and rtpengine's tests, ng datagrams), copied so the seeds stay as they are
  if [[ -d "seeds/$t" ]]; then
    find "seeds/$t" -maxdepth 1 -type f -exec cp -n {} "$corpus/" \;
  fi
  if cargo +nightly fuzz run "$t" "$corpus" -- "${opts[@]}" -rss_limit_mb=2048 >"/tmp/fuzz-$t.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -o 'Done [0-9]* runs' "/tmp/fuzz-$t.log" | tail -1))"
  else
    echo "fuzz $t: FAILED"; tail -30 "/tmp/fuzz-$t.log"; status=1
  fi
  [[ $seed == random ]] || rm -rf "$corpus"
done
exit $status
