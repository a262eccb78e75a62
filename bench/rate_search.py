"""The loss-free rate search shared by bench/loss_free.py and bench/xdp_bench.py: run rtpgen
trials and bisect over the packet rate.

A trial is loss-free when loss < 0.1 %, no SRTP authentication failed, the median
latency < max_p50_us, rtpgen's backlog ratio (mean latency of the last second over the
first) < 4, and rtpgen sent >= 99 % of the requested rate (otherwise the generator, not
the relay, was the limit)."""
import json
import subprocess


def run_rtpgen(cmd, rate, max_p50_us):
    """Run one rtpgen trial (`cmd` without --rate) and judge it."""
    out = subprocess.run(cmd + ["--rate", str(rate)], capture_output=True, text=True, timeout=180)
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise RuntimeError("rtpgen failed: %s" % out.stderr.strip())
    r = json.loads(out.stdout)
    r["requested_pps"] = rate
    r["generator_bound"] = r["rate_pps"] < 0.99 * rate
    r["loss_free"] = (r["loss_pct"] < 0.1 and r.get("srtp_auth_failures", 0) == 0 and r["latency_us_p50"] < max_p50_us
                      and r["backlog_ratio"] < 4.0 and not r["generator_bound"])
    return r


def search(name, trial, lo, hi, log, width=12):
    """Bisection on a 2 % grid. `trial(rate)` returns a judged rtpgen result. Returns the
    best loss-free result (or None) and whether the generator's own limit was near it."""
    best, bound = None, None  # bound: lowest rate rtpgen could not keep up with
    while hi - lo > max(2000, lo * 0.02):
        mid = (lo + hi) // 2
        r = trial(mid)
        log.append({"relay": name, **r})
        print("  %-*s %7d pps requested: sent %7.0f, loss %.3f %%, p50 %6d us, p99 %7d us, backlog %.2f -> %s" % (
            width, name, mid, r["rate_pps"], r["loss_pct"], r["latency_us_p50"], r["latency_us_p99"],
            r["backlog_ratio"],
            "loss-free" if r["loss_free"] else ("generator-bound" if r["generator_bound"] else "overloaded")),
            flush=True)
        if r["loss_free"]:
            lo, best = mid, r
        else:
            # overloaded, or rtpgen could not send that fast: either way not a result
            if r["generator_bound"]:
                bound = min(bound or mid, mid)
            hi = mid
    return best, bool(best and bound and bound <= 1.15 * best["requested_pps"])
