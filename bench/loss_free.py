#!/usr/bin/env python3
"""Maximum loss-free packet rate of relayd (io_uring) and rtpengine (userspace,
--table=-1), measured in the same run with the same rtpgen load.

Each relay is pinned to CPU 0 (one worker / one thread), rtpgen to CPU 1. For every
relay, a bisection over the total packet rate runs rtpgen trials of --calls calls.
A trial is loss-free when
  * loss < 0.1 %,
  * no queue builds up in the relay: median transit latency < --max-p50-us and the mean
    latency of the last second is not 4x that of the first (rtpgen's backlog ratio),
  * rtpgen actually sent >= 99 % of the requested rate (otherwise the generator, not the
    relay, is the limit: the result is then reported as a lower bound, '>=').

Scenarios (--scenario): plain (RTP both legs); srtp-rtp (SDES AES_CM_128_HMAC_SHA1_80
caller, plain callee); srtp-srtp (caller AES_CM_128_HMAC_SHA1_80, callee
AES_CM_128_HMAC_SHA1_32: different suites, so both relays must decrypt and re-encrypt;
with the same suite rtpengine reuses the caller's key and does no crypto at all);
srtp-gcm (caller AEAD_AES_128_GCM, callee AEAD_AES_256_GCM: the AEAD re-key).

Usage: bench/loss_free.py [--scenario plain] [--calls 1000] [--duration 4] [--lo 20000] [--hi 400000]
Prints a table and the ratio relayd / rtpengine; --json FILE writes the raw trials.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "conformance"))


from rate_search import run_rtpgen, search as bisect_search  # noqa: E402


def wait_ping(addr, seconds=10):
    from ngclient import wait_ping as wp  # noqa: E402
    return wp(addr, seconds)


RELAYS = {
    "relayd": {
        "ng": "127.0.0.1:2243",
        "cmd": [os.path.join(ROOT, "target/release/relayd"), "--interface=127.0.0.1", "--listen-ng=127.0.0.1:2243",
                "--listen-http=none", "--workers=1", "--cpus=0", "--port-min=20000", "--port-max=29999",
                "--log-level=warn"],
    },
    # another relayd build measured in the same run (a before/after comparison):
    # RELAYD_BEFORE=/path/to/old/relayd bench/loss_free.py --relays relayd-before,relayd,rtpengine
    "relayd-before": {
        "ng": "127.0.0.1:2245",
        "cmd": [os.environ.get("RELAYD_BEFORE", os.path.join(ROOT, "target/release/relayd-before")),
                "--interface=127.0.0.1", "--listen-ng=127.0.0.1:2245", "--listen-http=none", "--workers=1",
                "--cpus=0", "--port-min=20000", "--port-max=29999", "--log-level=warn"],
    },
    "rtpengine": {
        "ng": "127.0.0.1:2244",
        "cmd": ["rtpengine", "--config-file=none", "--table=-1", "--interface=127.0.0.1", "--listen-ng=127.0.0.1:2244",
                "--foreground", "--log-stderr", "--log-level=3", "--port-min=30000", "--port-max=39999",
                "--num-threads=1", "--delete-delay=0"],
    },
}


SCENARIOS = {
    "plain": [],
    "srtp-rtp": ["--srtp", "AES_CM_128_HMAC_SHA1_80", "--srtp-callee", "plain"],
    "srtp-srtp": ["--srtp", "AES_CM_128_HMAC_SHA1_80", "--srtp-callee", "AES_CM_128_HMAC_SHA1_32"],
    "srtp-gcm": ["--srtp", "AEAD_AES_128_GCM", "--srtp-callee", "AEAD_AES_256_GCM"],
}


def trial(relay, rate, args):
    cmd = [os.path.join(ROOT, "target/release/rtpgen"), "--ng", RELAYS[relay]["ng"], "--calls", str(args.calls),
           "--duration", str(args.duration), "--cpu", "1", "--quiet", "--json",
           "--max-loss", "100"] + SCENARIOS[args.scenario]
    return run_rtpgen(cmd, rate, args.max_p50_us)


def search(relay, args, log):
    return bisect_search(relay, lambda rate: trial(relay, rate, args), args.lo, args.hi, log, width=9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="plain")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--lo", type=int, default=20000)
    ap.add_argument("--hi", type=int, default=400000)
    ap.add_argument("--max-p50-us", type=int, default=2000)
    ap.add_argument("--relays", default="relayd,rtpengine")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.cpu_count() < 2:
        print("needs 2 CPUs", file=sys.stderr)
        return 2
    relays = args.relays.split(",")
    if "rtpengine" in relays and not shutil.which("rtpengine"):
        print("rtpengine not installed (apt-get install rtpengine-daemon)", file=sys.stderr)
        return 2
    results = {}
    log = []
    for relay in relays:
        print("%s: %s, searching %d..%d pps with %d calls, %.0f s per trial" % (relay, args.scenario, args.lo, args.hi, args.calls, args.duration),
              flush=True)
        p = subprocess.Popen(["taskset", "-c", "0"] + RELAYS[relay]["cmd"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            if not wait_ping(RELAYS[relay]["ng"]):
                print("%s did not answer ng ping" % relay, file=sys.stderr)
                return 2
            results[relay] = search(relay, args, log)
        finally:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait()
            time.sleep(0.5)
    print()
    print("| relay | max loss-free rate (pps) | p50 latency (us) | p99 latency (us) | calls |")
    print("|---|---|---|---|---|")
    for relay in relays:
        best, bound = results[relay]
        if best is None:
            print("| %s | < %d | - | - | %d |" % (relay, args.lo, args.calls))
            continue
        print("| %s | %.0f%s | %d | %d | %d |" % (relay, best["rate_pps"], " (rtpgen hit its own limit above)" if bound else "", best["latency_us_p50"],
                                               best["latency_us_p99"], args.calls))
    # every relay against the last one listed (rtpengine by default)
    base = relays[-1]
    if len(relays) >= 2 and results[base][0]:
        print()
        for r in relays[:-1]:
            if results[r][0]:
                print("ratio %s / %s: %.2f" % (r, base, results[r][0]["rate_pps"] / results[base][0]["rate_pps"]))
    if args.json:
        json.dump(log, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
