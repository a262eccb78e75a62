# The test scripts' shared preamble; sourced, never run. In a script:
#   source "$(dirname "$0")/lib.sh"
#   t_begin NAME [root] [netns]
# NAME prefixes every line the helpers print. root: skip (exit 0) unless run as root.
# netns: tear down scripts/netns.sh's namespaces (and what runs in them) at exit.
# Gives $work (a temp dir, removed at exit unless KEEP_WORK is set), pids (killed at
# exit), ok MSG (counts a passed check), fail MSG (the tail of every log in $work, exit
# 1), t_end (the summary line). The working directory is the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

t_begin() {
  T_NAME=$1
  shift
  T_NETNS=
  T_PASSED=0
  local opt
  for opt in "$@"; do
    case $opt in
      root)
        if [[ $(id -u) -ne 0 ]]; then
          echo "$T_NAME: skipped (needs root)"
          exit 0
        fi
        ;;
      netns) T_NETNS=1 ;;
      *) echo "t_begin: unknown option $opt" >&2; exit 2 ;;
    esac
  done
  work=$(mktemp -d -t "relay-$T_NAME.XXXXXX")
  pids=()
  trap t_cleanup EXIT
}

t_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -z $T_NETNS ]] || scripts/netns.sh down
  wait 2>/dev/null || true
  if [[ -n ${KEEP_WORK:-} ]]; then echo "$T_NAME: kept $work"; else rm -rf "$work"; fi
}

fail() {
  echo "$T_NAME: FAIL: $*" >&2
  local f
  for f in "$work"/*.log; do
    [[ -e $f ]] || continue
    echo "== $f"
    tail -n 30 "$f"
  done >&2
  exit 1
}

ok() {
  T_PASSED=$((T_PASSED + 1))
  echo "$T_NAME: ok: $*"
}

t_end() {
  echo "$T_NAME: $T_PASSED passed, 0 failed"
}
