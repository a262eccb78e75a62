#!/usr/bin/env bash
# Installs what building, running and testing the relay needs (Debian). Idempotent.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v clang >/dev/null || need+=(clang)   # compiles the XDP program in ebpf/
command -v ping >/dev/null || need+=(iputils-ping)
command -v ethtool >/dev/null || need+=(ethtool)
command -v tshark >/dev/null || need+=(tshark)   # DSCP check in scripts/xdp-test.sh
command -v bpftool >/dev/null || need+=(bpftool) # BPF map check in scripts/xdp-test.sh
[[ -f /usr/include/linux/bpf.h ]] || need+=(linux-libc-dev)
[[ -f /usr/include/srtp2/srtp.h ]] || need+=(libsrtp2-dev)
if [[ "${1:-}" == "--e2e" ]]; then
  command -v kamailio >/dev/null || need+=(kamailio)
  command -v sipp >/dev/null || need+=(sip-tester)
  command -v rtpengine >/dev/null || need+=(rtpengine-daemon)
fi
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
