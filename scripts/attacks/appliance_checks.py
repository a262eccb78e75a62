"""Check m: the appliance's inputs of issue 12, attacked from the attacker's namespace and over
ng/HTTP, run by attacks.py with the attacks module as `t`.

- m1: RTCP receiver reports from a stranger, lying about loss, jitter and the round trip, at a
  leg's RTCP socket: the leg's quality stays what its real party reported.
- m2: RFC 4733 telephone-events from a stranger at a leg's RTP socket: not counted; the party's
  own key press is counted once.
- m3: the HTTP writes of the appliance (live capture, drain) without the token or with a wrong
  one: refused, the relay still takes calls; /status answers and says it is not draining.
- m4: recording a call whose call-id is a path and carries line breaks: the files stay under
  the recording directory (RECORDING_DIR), no file elsewhere; without a directory the reply is
  an error naming the problem.
docs/security.md ("The appliance") lists the defences.
"""
import json
import os
import random
import struct
import time


def rr(reporter, media_ssrc, fraction, cum_lost, jitter, lsr, dlsr):
    """RTCP RR with one report block (RFC 3550 6.4.2)."""
    return struct.pack("!BBHI", 0x81, 201, 7, reporter) + struct.pack(
        "!IIIIII", media_ssrc, (fraction << 24) | (cum_lost & 0xFFFFFF), 1000, jitter, lsr, dlsr)


def dtmf(t, seq, ts, ssrc, event, end, duration):
    """An RFC 4733 telephone-event packet (payload type 101)."""
    return t.rtp(seq, ts, ssrc, struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration), pt=101)


def call_with_dtmf(t, lab, name):
    """Offer/answer where both parties offer telephone-event/8000 as payload type 101."""
    c = t.Call()
    c.cid = lab.cid(name)
    cip, cport = lab.caller.getsockname()
    eip, eport = lab.callee.getsockname()
    media = lambda port: ["m=audio %d RTP/AVP 0 101" % port, "a=rtpmap:0 PCMU/8000",
                          "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"]
    r = t.offer(lab.ng, c.cid, cip, cport, media=media(cport), received_from=cip)
    if r.get("result") != "ok":
        raise RuntimeError("offer %s: %r" % (c.cid, r))
    c.b = t.sdp_addr(r["sdp"])
    r = t.answer(lab.ng, c.cid, eip, eport, received_from=eip, more={"sdp": t.sdp_text(eip, eport, media=media(eport))})
    if r.get("result") != "ok":
        raise RuntimeError("answer %s: %r" % (c.cid, r))
    c.a = t.sdp_addr(r["sdp"])
    return c


def leg(t, cid, tag):
    """The leg summary of `tag` in /calls (quality, dtmf_events), or None."""
    st, body = t.http_req("GET", "/calls")
    if st != 200:
        return None
    calls = json.loads(body)
    if isinstance(calls, dict):
        calls = calls.get("calls", [])
    for c in calls:
        if c.get("call_id") == cid:
            for lg in c.get("legs") or []:
                if lg.get("tag") == tag:
                    return lg
    return None


def m1(t, lab):
    call = lab.call("m1")
    t.flows(lab, call, 50)
    rtcp = (call.a[0], call.a[1] + 1)
    # the caller's real report: nothing lost, little jitter
    for _ in range(3):
        lab.caller.sendto(rr(0x1111, 0x2222, 0, 0, 8, 0, 0), rtcp)
        time.sleep(0.05)
    t.settle(0.3)
    before = leg(t, call.cid, "caller")
    # the stranger's: 100 % lost, huge jitter, a round trip made up from LSR/DLSR
    for k in range(30):
        lab.atk.sendto(rr(0x1111, 0x2222, 255, 0x7FFFFF, 0x0FFFFFFF, random.randrange(1 << 32), 1), rtcp)
        time.sleep(0.01)
    t.settle(0.3)
    after = leg(t, call.cid, "caller")
    q0, q1 = (before or {}).get("quality") or {}, (after or {}).get("quality") or {}
    t.sub("m1 RTCP reports from a stranger at a leg's RTCP socket do not change its quality",
          lambda: (after is not None and q1.get("remote_loss_percent") == q0.get("remote_loss_percent")
                   and (q1.get("remote_loss_percent") or 0) < 1 and q1.get("rtt_ms") == q0.get("rtt_ms"),
                   "caller leg before %s, after 30 lying RRs from %s: %s" % (q0, t.ATTACKER, q1)))
    lab.ng.delete(call.cid)


def m2(t, lab):
    call = call_with_dtmf(t, lab, "m2")
    t.flows(lab, call, 50)
    ssrc = random.randrange(1, 1 << 32)
    for ev in range(5):
        for k in range(3):
            lab.atk.sendto(dtmf(t, 1000 + ev * 3 + k, 160000 + ev * 1600, ssrc, ev, k == 2, 400 + k * 160), call.a)
            time.sleep(0.005)
    t.settle(0.3)
    stranger = (leg(t, call.cid, "caller") or {}).get("dtmf_events")
    # the caller presses 5 once: three packets of one event, the end packet sent three times
    ssrc = random.randrange(1, 1 << 32)
    for k, end in enumerate((False, False, True, True, True)):
        lab.caller.sendto(dtmf(t, 2000 + k, 320000, ssrc, 5, end, 160 * (k + 1)), call.a)
        time.sleep(0.01)
    t.settle(0.3)
    own = (leg(t, call.cid, "caller") or {}).get("dtmf_events")
    t.sub("m2 telephone-events from a stranger are not counted, the party's key press once",
          lambda: (stranger == 0 and own == 1, "after 5 events from %s: %s; after the caller's one: %s"
                   % (t.ATTACKER, stranger, own)))
    lab.ng.delete(call.cid)


def m3(t, lab):
    call = lab.call("m3")
    results = {}
    for name, method, path in (("capture", "GET", "/calls/%s/capture" % call.cid), ("drain", "POST", "/drain"),
                               ("drain off", "DELETE", "/drain")):
        for how, headers, token in (("no token", None, False), ("wrong token", {"Authorization": "Bearer x" * 3}, False)):
            try:
                st, _ = t.http_req(method, path, headers=headers, token=token, timeout=3)
            except Exception as e:  # a refused capture must not hang the client
                st = "%s" % type(e).__name__
            results["%s, %s" % (name, how)] = st
    st, body = t.http_req("GET", "/status")
    status = json.loads(body) if st == 200 else {}
    r = t.offer(lab.ng, lab.cid("m3-after"), t.CALLER, 4100)
    refused = all(v in (401, 403) for v in results.values())
    t.sub("m3 capture and drain without the token are refused; the relay takes calls and is not draining",
          lambda: (refused and status.get("draining") is False and r.get("result") == "ok",
                   "replies %s; /status draining=%s; a new offer: %s" % (results, status.get("draining"), r.get("result"))))
    lab.ng.delete(call.cid)
    lab.ng.delete(lab.cid("m3-after"))


def m4(t, lab):
    rec = os.environ.get("RECORDING_DIR")
    name = "relayd-evil-%x" % random.randrange(1 << 24)
    evil = "../../../../../tmp/%s\r\nX-Injected: 1" % name
    cip, cport = lab.caller.getsockname()
    r = t.offer(lab.ng, evil, cip, cport, more={"record-call": "on"}, received_from=cip)
    s = lab.ng.req({"command": "start recording", "call-id": evil})
    outside = [os.path.join(d, f) for d in ("/tmp", "/") for f in os.listdir(d) if f.startswith(name)]
    if rec:
        inside = []
        escaped = []
        for root, _, files in os.walk(rec):
            for f in files:
                path = os.path.realpath(os.path.join(root, f))
                inside.append(path)
                if not path.startswith(os.path.realpath(rec) + os.sep) or "\n" in f or "\r" in f:
                    escaped.append(path)
        t.sub("m4 a call-id that is a path with line breaks records under the recording directory only",
              lambda: (r.get("result") == "ok" and s.get("result") == "ok" and inside and not escaped and not outside,
                       "offer %s, start recording %s; %d file(s) under %s, escaped %s, outside %s"
                       % (r.get("result"), s.get("result"), len(inside), rec, escaped[:2], outside)))
    else:
        t.sub("m4 recording without a recording directory: an error naming it",
              lambda: (s.get("result") == "error" and "recording" in (s.get("error-reason") or ""),
                       "start recording: %r" % s))
    lab.ng.delete(evil)


def check_m(t):
    lab = t.Lab()
    try:
        for step in (m1, m2, m3, m4):
            try:
                step(t, lab)
            except Exception as e:  # one step's set-up failing is that step's failure
                t.fail("%s: could not run: %s: %r" % (step.__name__, type(e).__name__, e))
            if not t.relayd_alive():
                t.fail("m: relayd exited during %s" % step.__name__)
                break
    finally:
        lab.close()
