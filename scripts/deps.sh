#!/usr/bin/env bash
# Installs what building, running and testing the relay needs (Debian). Idempotent.
#   --e2e     Kamailio, sipp and rtpengine (end to end, conformance reference)
#   --webrtc  Chromium and aiortc (real WebRTC peers: scripts/webrtc-test.sh)
set -euo pipefail
e2e= webrtc=
for opt in "$@"; do
  case $opt in
    --e2e) e2e=1 ;;
    --webrtc) webrtc=1 ;;
    *) echo "deps.sh: unknown option $opt" >&2; exit 2 ;;
  esac
done
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v clang >/dev/null || need+=(clang)   # compiles the XDP program in ebpf/
command -v ping >/dev/null || need+=(iputils-ping)
command -v ethtool >/dev/null || need+=(ethtool)
command -v tshark >/dev/null || need+=(tshark)   # DSCP check in scripts/xdp-test.sh; recordings read back (relayd/tests/recording.rs)
command -v bpftool >/dev/null || need+=(bpftool) # BPF map check in scripts/xdp-test.sh
[[ -f /usr/include/linux/bpf.h ]] || need+=(linux-libc-dev)
[[ -f /usr/include/srtp2/srtp.h ]] || need+=(libsrtp2-dev)
if [[ -n $e2e ]]; then
  command -v kamailio >/dev/null || need+=(kamailio)
  command -v sipp >/dev/null || need+=(sip-tester)
  command -v rtpengine >/dev/null || need+=(rtpengine-daemon)
fi
if [[ -n $webrtc ]]; then
  command -v chromium >/dev/null || need+=(chromium)   # headless, driven over its DevTools pipe
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
fi
if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
# aiortc: a WebRTC stack that is not ours (ICE, DTLS-SRTP, SRTP) as the browser leg; the version pinned
# is the one the tests were written against (it brings its own libsrtp and PyAV wheels)
aiortc=1.14.0
if [[ -n $webrtc ]] && ! python3 -c "import aiortc, sys; sys.exit(aiortc.__version__ != '$aiortc')" 2>/dev/null; then
  echo "installing: aiortc==$aiortc (pip)"
  python3 -m pip install -q "aiortc==$aiortc" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "aiortc==$aiortc"
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
