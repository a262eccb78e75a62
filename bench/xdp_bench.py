#!/usr/bin/env python3
"""The kernel-bypass benchmark: maximum loss-free rate through the relay namespace of
scripts/netns.sh (caller -- relay -- callee, veth), same run, same load, for

  relayd-xdp    relayd --backend xdp (XDP steering + AF_XDP worker, copy mode on veth)
  relayd-xdp-fifo  the same with --worker-priority=1 (SCHED_FIFO worker; not in the
                default list)
  relayd-uring  relayd --backend uring
  rtpengine     rtpengine userspace (--table=-1)
  ceiling       a minimal XDP program that rewrites and redirects the same packets in
                the kernel (ebpf/ceiling_xdp.c via bench's xdp_ceiling; the calls are set
                up by a relayd so signalling and ports are the same): the most this veth
                setup can forward

The relay side runs on CPU 0: the daemon (one worker), and the kernel's share too --
RPS steers the relay interfaces' receive processing to CPU 0 and, where veth runs NAPI
(with XDP attached), its NAPI threads are made threaded and pinned to CPU 0. The
generator (rtpgen, caller in xC, callee in xE) runs on CPU 1.

The generator is rtpgen --xdp (AF_XDP on the caller's and callee's interfaces): with
UDP sockets it tops out near 300 kpps here, below what the AF_XDP path forwards.

A trial is loss-free when loss < 0.1 %, the median latency < --max-p50-us, rtpgen's
backlog ratio < 4 and rtpgen sent >= 99 % of the requested rate (otherwise the
generator is the limit and the result is a lower bound). Bisection over the rate.
Afterwards one trial at half of each contender's maximum gives its latency there.

Usage: bench/xdp_bench.py [--calls 1000] [--duration 3] [--lo 20000] [--hi 800000] [--socket-generator]
       [--relays relayd-xdp,relayd-uring,rtpengine,ceiling] [--json FILE]
"""
import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from rate_search import run_rtpgen, search as bisect_search  # noqa: E402
BIN = os.path.join(ROOT, "target", "release")
NG = "10.203.1.1:2299"
HTTP = "10.203.1.1:9999"
R = ["ip", "netns", "exec", "xR"]
BEFORE = os.environ.get("RELAYD_BEFORE", os.path.join(BIN, "relayd-before"))
RELAYD = [os.path.join(BIN, "relayd"), "--interface=pub/10.203.1.1", "--interface=priv/10.203.2.1",
          "--listen-ng=" + NG, "--listen-http=" + HTTP, "--workers=1", "--cpus=0", "--port-min=20000",
          "--port-max=29999", "--delete-delay=0", "--log-level=warn"]
CONTENDERS = {
    "relayd-xdp": [RELAYD + ["--backend=xdp"]],
    "relayd-xdp-fifo": [RELAYD + ["--backend=xdp", "--worker-priority=1"]],
    "relayd-uring": [RELAYD + ["--backend=uring"]],
    # before/after in one run: RELAYD_BEFORE=/path/to/old/relayd bench/xdp_bench.py
    #   --relays relayd-xdp-before,relayd-xdp,relayd-uring-before,relayd-uring,rtpengine
    "relayd-xdp-before": [[BEFORE] + RELAYD[1:] + ["--backend=xdp"]],
    "relayd-uring-before": [[BEFORE] + RELAYD[1:] + ["--backend=uring"]],
    "rtpengine": [["rtpengine", "--config-file=none", "--table=-1", "--interface=pub/10.203.1.1",
                   "--interface=priv/10.203.2.1", "--listen-ng=" + NG, "--foreground", "--log-stderr",
                   "--log-level=3", "--port-min=30000", "--port-max=39999", "--num-threads=1", "--delete-delay=0"]],
    "ceiling": [RELAYD + ["--backend=uring"], None],  # the loader is filled in at run time
}


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout.strip()


ENDS = (("xR", "rpub", 0), ("xR", "rpriv", 0), ("xC", "cpub", 1), ("xE", "epriv", 1))


def pin_kernel_side():
    """Every veth end runs NAPI (GRO on), threaded, with RPS to the same CPU: the relay's
    ends on CPU 0, the generator's on CPU 1. veth processes a frame on the core of
    whoever sent it unless told otherwise; this way the kernel's receive work for the
    relay is charged to the relay's core and the generator's to the generator's."""
    for ns, i, cpu in ENDS:
        sh("ip", "netns", "exec", ns, "ethtool", "-K", i, "gro", "on", check=False)
        sh("ip", "netns", "exec", ns, "sh", "-c", "echo %x > /sys/class/net/%s/queues/rx-0/rps_cpus; "
           "echo 1 > /sys/class/net/%s/threaded" % (1 << cpu, i, i), check=False)
    for line in sh("pgrep", "-a", "napi/", check=False).splitlines():
        pid, name = line.split(None, 1)
        sh("taskset", "-pc", "0" if name.startswith("napi/r") else "1", pid, check=False)


def trial(rate, args):
    pin_kernel_side()  # NAPI threads come and go with XDP programs
    cmd = ["ip", "netns", "exec", "xC", "taskset", "-c", "1", os.path.join(BIN, "rtpgen"), "--ng", NG,
           "--caller-ip", "10.203.1.2", "--callee-ip", "10.203.2.2", "--callee-netns", "xE",
           "--direction", "pub,priv", "--calls", str(args.calls), "--duration", str(args.duration),
           "--cpu", "1", "--settle", "0.5", "--quiet", "--json", "--max-loss", "100"]
    if not args.socket_generator:
        cmd.append("--xdp")
    return run_rtpgen(cmd, rate, args.max_p50_us)


def search(name, args, log):
    best, near = bisect_search(name, lambda rate: trial(rate, args), args.lo, args.hi, log)
    half = None
    if best:
        half = trial(best["requested_pps"] // 2, args)
        log.append({"relay": name, "half_rate": True, **half})
    return best, near, half


def start(name, args):
    procs = []
    for cmd in CONTENDERS[name]:
        if cmd is None:  # the ceiling's loader, once relayd answers
            macs = ["--peer-mac", "10.203.1.2=" + sh("ip", "netns", "exec", "xC", "cat", "/sys/class/net/cpub/address"),
                    "--peer-mac", "10.203.2.2=" + sh("ip", "netns", "exec", "xE", "cat", "/sys/class/net/epriv/address")]
            cmd = [os.path.join(BIN, "xdp_ceiling"), "--http", HTTP, "--iface", "rpub", "--iface", "rpriv"] + macs
            if args.socket_generator:  # rtpgen --xdp runs XDP on those ends itself
                cmd += ["--pass", "xC:cpub", "--pass", "xE:epriv"]
            procs.append(subprocess.Popen(R + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
            time.sleep(1)
            continue
        procs.append(subprocess.Popen(R + ["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        ping = ["ip", "netns", "exec", "xC", "python3", os.path.join(ROOT, "..", "shared", "conformance", "ngclient.py"),
                "--wait-ping", NG, "10"]
        if subprocess.run(ping, capture_output=True).returncode != 0:
            raise RuntimeError("%s did not answer ng" % name)
    time.sleep(0.3)
    pin_kernel_side()
    return procs


def stop(procs):
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        p.wait()
    time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--lo", type=int, default=20000)
    ap.add_argument("--hi", type=int, default=800000)
    ap.add_argument("--socket-generator", action="store_true",
                    help="rtpgen over UDP sockets instead of AF_XDP (the generator then tops out first)")
    ap.add_argument("--max-p50-us", type=int, default=2000)
    ap.add_argument("--relays", default="relayd-xdp,relayd-uring,rtpengine,ceiling")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0 or (os.cpu_count() or 1) < 2:
        print("needs root and 2 CPUs", file=sys.stderr)
        return 2
    names = args.relays.split(",")
    if "rtpengine" in names and not shutil.which("rtpengine"):
        print("rtpengine not installed (apt-get install rtpengine-daemon)", file=sys.stderr)
        return 2
    subprocess.run([os.path.join(ROOT, "scripts", "netns.sh"), "up"], check=True)
    results, log = {}, []
    try:
        for name in names:
            print("%s: searching %d..%d pps, %d calls, %.0f s per trial" % (name, args.lo, args.hi, args.calls,
                                                                            args.duration), flush=True)
            procs = start(name, args)
            try:
                results[name] = search(name, args, log)
            finally:
                stop(procs)
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "netns.sh"), "down"])
    print()
    print("| relay | max loss-free rate (pps) | p50 / p99 at max (us) | p99 at half rate (us) |")
    print("|---|---|---|---|")
    rate = {}
    for name in names:
        best, near, half = results[name]
        if best is None:
            print("| %s | < %d | - | - |" % (name, args.lo))
            continue
        rate[name] = best["rate_pps"]
        print("| %s | %s%.0f | %d / %d | %d |" % (name, ">= " if near else "", best["rate_pps"],
                                                 best["latency_us_p50"], best["latency_us_p99"],
                                                 half["latency_us_p99"] if half else -1))
    print()
    x = rate.get("relayd-xdp")
    for other in ("rtpengine", "relayd-uring", "ceiling"):
        if x and rate.get(other):
            what = "of the ceiling" if other == "ceiling" else "x " + other
            v = x / rate[other]
            print("relayd-xdp: %s %s" % ("%.0f %%" % (100 * v) if other == "ceiling" else "%.2f" % v, what))
    for after in ("relayd-xdp", "relayd-uring"):
        if rate.get(after) and rate.get(after + "-before"):
            print("%s after/before: %.2f" % (after, rate[after] / rate[after + "-before"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(log, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
