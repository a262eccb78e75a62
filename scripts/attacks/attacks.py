#!/usr/bin/env python3
"""The attacks of issues 9 and 11 against a running relayd (driven by scripts/attack-test.sh).

Runs inside the relay namespace (aR: the proxy's side, ng and HTTP on loopback) and opens
every other socket in the namespace it belongs to (setns): the caller's in aC, the
callee's in aE, the attacker's (UDP, and AF_PACKET for spoofed frames) in aA. One check
per run (--check a..m; k and l, the WebRTC inputs of issue 11, live in webrtc_checks.py; m, the
appliance's of issue 12, in appliance_checks.py); each
prints one line per verdict, `ok <what>` or `fail <what>`, and exits 1 when any failed. Expected outcomes are what issue 9 requires, checked on
behaviour (result == "error" and the reason names the address or the limit), not on
exact wording. docs/security.md describes the defences these attacks exercise.
"""
import argparse
import base64
import collections
import contextlib
import ctypes
import hashlib
import hmac
import http.client
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "conformance"))
from ngclient import NgClient, NgTimeout, bencode  # noqa: E402

RELAY_PUB = "10.203.1.1"
RELAY_PRIV = "10.203.2.1"
CALLER = "10.203.1.2"
CALLEE = "10.203.2.2"
ATTACKER = "10.203.1.66"
RELAY_OWN = (RELAY_PUB, RELAY_PRIV, "127.0.0.1")

A = None  # parsed arguments
FAILED = 0


def ok(msg):
    print("ok %s" % msg, flush=True)


def fail(msg):
    global FAILED
    FAILED += 1
    print("fail %s" % msg, flush=True)


def note(msg):
    print("  %s" % msg, flush=True)


def sub(name, fn, *args):
    """One verdict: fn returns (passed, message); an exception is a failure."""
    try:
        passed, msg = fn(*args)
    except Exception as e:  # the check itself broke: that is a failure, with the reason
        passed, msg = False, "%s: %r" % (type(e).__name__, e)
    (ok if passed else fail)("%s: %s" % (name, msg))
    return passed


# ------------------------------------------------------------------ namespaces
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
HOME_NS = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
NS_LOCK = threading.Lock()


@contextlib.contextmanager
def netns(name):
    """Run the block in network namespace `name` (this thread only); sockets made in it stay there."""
    with NS_LOCK:
        fd = os.open("/var/run/netns/%s" % name, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns %s" % name)
            try:
                yield
            finally:
                if libc.setns(HOME_NS, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(fd)


def udp(ns, ip, port=0):
    if ns:
        with netns(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s


# ------------------------------------------------------------------ process
def relayd_alive(pid=None):
    pid = pid or A.relayd_pid
    try:
        st = open("/proc/%d/status" % pid).read()
    except OSError:
        return False
    return not re.search(r"^State:\s+Z", st, re.M)


def proc_kb(field, pid=None):
    st = open("/proc/%d/status" % (pid or A.relayd_pid)).read()
    m = re.search(r"^%s:\s+(\d+) kB" % field, st, re.M)
    return int(m.group(1)) if m else 0


# ------------------------------------------------------------------ ng
class Ng:
    def __init__(self, addr, timeout=3.0):
        self.addr = addr
        self.c = NgClient(addr, timeout=timeout, retries=1)

    def req(self, msg, timeout=None):
        if timeout:
            self.c.timeout = timeout
        try:
            return self.c.request(msg)
        finally:
            self.c.timeout = 3.0

    def ping(self):
        try:
            return NgClient(self.addr, timeout=1.0, retries=2).request({"command": "ping"}).get("result") == "pong"
        except Exception:
            return False

    def delete(self, cid):
        try:
            self.req({"command": "delete", "call-id": cid, "delete-delay": 0})
        except Exception:
            pass


def sdp_text(ip, port, extra=(), proto="RTP/AVP", fmts="0", media=None):
    lines = ["v=0", "o=- 1 1 IN IP4 %s" % ip, "s=-", "c=IN IP4 %s" % ip, "t=0 0"]
    if media is None:
        lines += ["m=audio %d %s %s" % (port, proto, fmts), "a=rtpmap:0 PCMU/8000"]
    else:
        lines += media
    lines += list(extra)
    lines.append("a=sendrecv")
    return "\r\n".join(lines) + "\r\n"


def sdp_addr(sdp):
    """(c= address, first m= port) of an SDP."""
    ip = None
    port = None
    for ln in sdp.splitlines():
        if ln.startswith("c=") and ip is None:
            ip = ln.split()[-1]
        if ln.startswith("m=") and port is None:
            port = int(ln.split()[1])
    return ip, port


def reason(r):
    return str(r.get("error-reason", r.get("warning", "")))


class Call:
    pass


def offer(ng, cid, ip, port, from_tag="caller", direction=("pub", "priv"), extra=(), proto="RTP/AVP",
          fmts="0", more=None, media=None, received_from=None, timeout=None):
    msg = {"command": "offer", "call-id": cid, "from-tag": from_tag,
           "sdp": sdp_text(ip, port, extra, proto, fmts, media), "replace": ["origin"]}
    if direction:
        msg["direction"] = list(direction)
    if received_from:
        msg["received-from"] = ["IP4", received_from]
    msg.update(more or {})
    return ng.req(msg, timeout)


def answer(ng, cid, ip, port, from_tag="caller", to_tag="callee", extra=(), proto="RTP/AVP", more=None,
           received_from=None):
    msg = {"command": "answer", "call-id": cid, "from-tag": from_tag, "to-tag": to_tag,
           "sdp": sdp_text(ip, port, extra, proto), "replace": ["origin"]}
    if received_from:
        msg["received-from"] = ["IP4", received_from]
    msg.update(more or {})
    return ng.req(msg)


def setup_call(ng, cid, caller_sock, callee_sock, direction=("pub", "priv"), offer_more=None, offer_extra=(),
               proto="RTP/AVP"):
    """Offer from the caller, answer from the callee; .a = where the caller sends (relay's
    caller-side socket), .b = where the callee sends."""
    c = Call()
    c.cid = cid
    cip, cport = caller_sock.getsockname()
    eip, eport = callee_sock.getsockname()
    r = offer(ng, cid, cip, cport, direction=direction, more=offer_more, extra=offer_extra, proto=proto,
              received_from=cip)
    if r.get("result") != "ok":
        raise RuntimeError("offer %s: %r" % (cid, r))
    c.b = sdp_addr(r["sdp"])
    c.offer_sdp = r["sdp"]
    r = answer(ng, cid, eip, eport, received_from=eip)
    if r.get("result") != "ok":
        raise RuntimeError("answer %s: %r" % (cid, r))
    c.a = sdp_addr(r["sdp"])
    c.answer_sdp = r["sdp"]
    return c


def streams(ng, cid):
    """[(tag, local port, endpoint address, endpoint port, packets)] of a call (ng query)."""
    r = ng.req({"command": "query", "call-id": cid})
    out = []
    for tag, t in (r.get("tags") or {}).items():
        for md in t.get("medias", []):
            for s in md.get("streams", []):
                e = s.get("endpoint") or {}
                out.append((tag, s.get("local port"), e.get("address"), e.get("port"),
                            (s.get("stats") or {}).get("packets", 0)))
    return out


def local_port_of(ng, cid, tag):
    for t, lp, _, _, _ in streams(ng, cid):
        if t == tag:
            return lp
    raise RuntimeError("no stream of tag %s in call %s" % (tag, cid))


def endpoint_of(ng, cid, tag):
    """The RTP endpoint (address, port) of a tag's first stream."""
    for t, _, ip, port, _ in streams(ng, cid):
        if t == tag:
            return ip, port
    return None, None


def packets_of(ng, cid):
    return sum(s[4] for s in streams(ng, cid))


# ------------------------------------------------------------------ HTTP
def http_req(method, path, host=None, headers=None, timeout=5.0, addr=None, token=True):
    h, p = (addr or A.http).rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=timeout)
    hd = dict(headers or {})
    if host:
        hd["Host"] = host
    if token and A.token and "Authorization" not in hd:
        hd["Authorization"] = "Bearer " + A.token
    conn.request(method, path, headers=hd)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def metric(pattern):
    """Sum of the /metrics series matching pattern (None when the API does not answer)."""
    try:
        st, body = http_req("GET", "/metrics", timeout=3)
    except Exception:
        return None
    if st != 200:
        return None
    pat = re.compile(pattern)
    total = 0
    for ln in body.decode(errors="replace").splitlines():
        if ln.startswith("#") or not pat.match(ln):
            continue
        total += int(float(ln.rsplit(" ", 1)[1]))
    return total


def ng_commands(cmd):
    return metric(r'relay_ng_commands_total\{command="%s"\}' % cmd)


# ------------------------------------------------------------------ RTP / SRTP
def rtp(seq, ts, ssrc, payload, pt=0, marker=0):
    return struct.pack("!BBHII", 0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def media_payload(sid, idx, size=160):
    p = b"RLAB" + struct.pack("!IQ", sid, idx)
    return p + b"\xd5" * (size - len(p))


def attack_payload(extra=b""):
    return b"ATCK" + extra + b"\xee" * 40


def no_space_header(seq=0x1111, ts=0x11111111, ssrc=0x41414141):
    """An RTP header without a 0x20 byte: as an ng datagram, all of it is the cookie."""
    h = rtp(seq, ts, ssrc, b"")
    assert b" " not in h
    return h


def aes_ctr(key, iv, data):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    e = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return e.update(data) + e.finalize()


class Srtp:
    """AES_CM_128_HMAC_SHA1_80 sender (RFC 3711): key derivation, AES-CM, HMAC-SHA1 tag."""

    def __init__(self, key, salt):
        def kdf(label, n):
            x = int.from_bytes(salt, "big") ^ (label << 48)
            return aes_ctr(key, (x << 16).to_bytes(16, "big"), b"\0" * n)
        self.ke, self.ka, self.ks = kdf(0, 16), kdf(1, 20), kdf(2, 14)

    def protect(self, pkt, roc):
        seq, = struct.unpack("!H", pkt[2:4])
        ssrc, = struct.unpack("!I", pkt[8:12])
        i = (roc << 16) | seq
        iv = (int.from_bytes(self.ks, "big") << 16) ^ (ssrc << 64) ^ (i << 16)
        m = pkt[:12] + aes_ctr(self.ke, iv.to_bytes(16, "big"), pkt[12:])
        return m + hmac.new(self.ka, m + struct.pack("!I", roc), hashlib.sha1).digest()[:10]


class Stream:
    """One RTP (or SRTP) stream: packets numbered by idx in the payload (stream id sid)."""

    def __init__(self, sid, seq=None, srtp=None):
        self.sid = sid
        self.seq = random.randrange(1 << 16) if seq is None else seq
        self.ts = random.randrange(1 << 32)
        self.ssrc = random.randrange(1, 1 << 32)
        self.roc = 0
        self.idx = 0
        self.srtp = srtp

    def next(self):
        p = rtp(self.seq, self.ts, self.ssrc, media_payload(self.sid, self.idx))
        if self.srtp:
            p = self.srtp.protect(p, self.roc)
        self.idx += 1
        self.ts += 160
        self.seq += 1
        if self.seq == 1 << 16:
            self.seq = 0
            self.roc += 1
        return p

    def take(self, n):
        return [self.next() for _ in range(n)]


def send_paced(sock, to, pkts, rate=500.0):
    t0 = time.monotonic()
    for k, p in enumerate(pkts):
        d = t0 + k / rate - time.monotonic()
        if d > 0:
            time.sleep(d)
        sock.sendto(p, to)


def send_bg(sock, to, pkts, rate=500.0):
    t = threading.Thread(target=send_paced, args=(sock, to, pkts, rate), daemon=True)
    t.start()
    return t


class Rx:
    """Counts what a socket receives: media by (sid, idx), attack markers, ng replies."""

    def __init__(self, sock):
        self.sock = sock
        self.got = collections.Counter()
        self.marks = 0
        self.ng_replies = 0
        self.other = 0
        self.total = 0
        self.samples = []
        self.stop = False
        sock.settimeout(0.1)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                d, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.total += 1
            if len(d) >= 28 and d[12:16] == b"RLAB":
                sid, idx = struct.unpack("!IQ", d[16:28])
                self.got[(sid, idx)] += 1
            elif b"ATCK" in d:
                self.marks += 1
            else:
                self.other += 1
            if b"result" in d or b"calls" in d or b"pong" in d:
                self.ng_replies += 1
                if len(self.samples) < 3:
                    self.samples.append((src, d[:120]))

    def count(self, sid, lo, hi):
        return sum(1 for i in range(lo, hi) if self.got[(sid, i)])

    def dups(self, sid=None):
        return sum(c - 1 for (s, _), c in self.got.items() if c > 1 and (sid is None or s == sid))

    def close(self):
        self.stop = True
        self.t.join(1)


def settle(t=0.3):
    time.sleep(t)


# ------------------------------------------------------------------ raw frames
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


class Raw:
    """Hand-built Ethernet/IPv4/UDP frames from the attacker's interface to the relay's MAC."""

    def __init__(self, ns="aA", ifname="apub", dst_mac=None):
        with netns(ns):
            self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.s.bind((ifname, 0))
        self.src_mac = self.s.getsockname()[4]
        self.dst_mac = dst_mac or bytes.fromhex(open("/sys/class/net/rpub/address").read().strip().replace(":", ""))
        self.ident = random.randrange(1 << 16)

    def udp(self, src, dst, data):
        (sip, sport), (dip, dport) = src, dst
        s4, d4 = socket.inet_aton(sip), socket.inet_aton(dip)
        u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
        c = csum(s4 + d4 + struct.pack("!BBH", 0, 17, len(u)) + u) or 0xFFFF
        u = u[:6] + struct.pack("!H", c) + u[8:]
        self.ident = (self.ident + 1) & 0xFFFF
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), self.ident, 0x4000, 64, 17, 0, s4, d4)
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        self.s.send(self.dst_mac + self.src_mac + b"\x08\x00" + h + u)


# ------------------------------------------------------------------ the lab
class Lab:
    """Caller (aC), callee (aE) and attacker (aA) sockets around one relayd."""

    def __init__(self):
        self.ng = Ng(A.ng)
        self.caller = udp("aC", CALLER)
        self.callee = udp("aE", CALLEE)
        self.atk = udp("aA", ATTACKER)
        self.rx_caller = Rx(self.caller)
        self.rx_callee = Rx(self.callee)
        self.rx_atk = Rx(self.atk)
        self.tag = "%s-%x" % (A.backend, random.randrange(1 << 24))

    def cid(self, name):
        return "atk-%s-%s" % (name, self.tag)

    def call(self, name, **kw):
        return setup_call(self.ng, self.cid(name), self.caller, self.callee, **kw)

    def close(self):
        for r in (self.rx_caller, self.rx_callee, self.rx_atk):
            r.close()


def flows(lab, call, n=200, rate=500.0, sid=None, both=True):
    """Send n packets each way through a call; (received by callee, received by caller)."""
    sid = sid or random.randrange(1 << 30)
    s1, s2 = Stream(sid), Stream(sid + 1)
    t1 = send_bg(lab.caller, call.a, s1.take(n), rate)
    if both:
        t2 = send_bg(lab.callee, call.b, s2.take(n), rate)
        t2.join()
    t1.join()
    settle(0.3)
    return lab.rx_callee.count(sid, 0, n), (lab.rx_caller.count(sid + 1, 0, n) if both else None)


# ================================================================== checks
def check_a():
    """SDP attribute lines without a colon: no crash, an existing call keeps flowing."""
    lab = Lab()
    live = lab.call("a-live")
    got, back = flows(lab, live, 100)
    if got < 99:
        note("baseline call before the attack: %d/100 and %d/100" % (got, back))
    bad = ["a=rtpmap", "a=fmtp", "a=rtcp-fb", "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=rtpmap:96", "a=fmtp:96"]
    replies = []
    for k, line in enumerate(bad):
        for more in (None, {"codec": {"strip": ["96"]}}, {"codec": {"mask": ["0"]}}):
            cid = lab.cid("a-%d-%d" % (k, 0 if more is None else len(str(more))))
            try:
                r = offer(lab.ng, cid, ATTACKER, 4000 + 2 * k, from_tag="atk", direction=("pub", "pub"),
                          fmts="0 96", extra=["a=rtpmap:96 opus/48000/2", line], more=more)
                replies.append((line, r.get("result")))
                if r.get("result") == "ok":
                    lab.ng.delete(cid)
            except NgTimeout:
                replies.append((line, "no reply"))
            if not relayd_alive():
                break
        if not relayd_alive():
            break
    alive = relayd_alive()
    bad_replies = [x for x in replies if x[1] not in ("ok", "error")]
    sub("a1 SDP a=rtpmap/a=fmtp/a=rtcp-fb without a colon (%d offers)" % len(replies),
        lambda: (alive and not bad_replies and lab.ng.ping(),
                 "relayd %s, %d answered ok/error, unanswered or odd: %s"
                 % ("alive" if alive else "EXITED", len(replies) - len(bad_replies), bad_replies[:4])))
    if alive:
        got, back = flows(lab, live, 200)
        sub("a2 the call in progress keeps flowing after the malformed offers",
            lambda: (got >= 198 and back >= 198, "caller->callee %d/200, callee->caller %d/200" % (got, back)))
    else:
        fail("a2 the call in progress keeps flowing: relayd exited")
    lab.ng.delete(live.cid)
    lab.close()


def raw_http(data, timeout=3.0, read=True):
    h, p = A.http.rsplit(":", 1)
    s = socket.create_connection((h, int(p)), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def check_b():
    """HTTP API: percent-decoding panic, slow-loris, huge header, token, Host check."""
    ng = Ng(A.ng)

    def b1():
        for path in (b"/calls/%a\xc3\xa9", b"/calls/%\xc3\xa9", b"/calls/%a\xe2\x82\xac", b"/calls/%%\xf0\x9f\x98\x80"):
            for method in (b"GET", b"DELETE"):
                try:
                    raw_http(method + b" " + path + b" HTTP/1.1\r\nHost: " + A.http.encode() + b"\r\n\r\n")
                except OSError:
                    pass
        time.sleep(0.2)
        alive = relayd_alive()
        pong = ng.ping()
        try:
            st, _ = http_req("GET", "/stats", timeout=3)
        except Exception as e:
            st = repr(e)
        return alive and pong and st == 200, "relayd %s, ng %s, GET /stats -> %s" % (
            "alive" if alive else "EXITED", "answers" if pong else "SILENT", st)

    def b2():
        h, p = A.http.rsplit(":", 1)
        loris = []
        for _ in range(4):
            s = socket.create_connection((h, int(p)), timeout=2)
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: " + A.http.encode() + b"\r\n")
            loris.append(s)
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                for s in loris:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                stop.wait(0.5)
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        try:
            st, _ = http_req("GET", "/stats", timeout=5)
        except Exception as e:
            st = repr(e)
        dt = time.monotonic() - t0
        stop.set()
        t.join()
        for s in loris:
            s.close()
        return st == 200, "GET /stats with 4 slow-loris clients trickling headers: %s after %.1f s" % (st, dt)
    sub("b2 slow-loris clients do not block the API", b2)

    def b3():
        hwm0 = proc_kb("VmHWM")
        big = 64 << 20
        h, p = A.http.rsplit(":", 1)
        s = socket.create_connection((h, int(p)), timeout=10)
        sent = 0
        try:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: " + A.http.encode() + b"\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            while sent < big:
                s.sendall(chunk)
                sent += len(chunk)
            s.sendall(b"\r\n\r\n")
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.3)
        grew = (proc_kb("VmHWM") - hwm0) // 1024
        alive = relayd_alive()
        try:
            st, _ = http_req("GET", "/stats", timeout=5)
        except Exception as e:
            st = repr(e)
        return alive and grew < 32 and st == 200, (
            "a 64 MB header line (%d MB accepted by the socket): peak RSS +%d MB, then GET /stats -> %s"
            % (sent >> 20, grew, st))
    sub("b3 a huge header line is not read into memory", b3)

    def b4():
        cid = "atk-b-del-%x" % random.randrange(1 << 24)
        r = offer(ng, cid, ATTACKER, 4100, from_tag="atk", direction=("pub", "pub"))
        if r.get("result") != "ok":
            return False, "offer for the victim call failed: %r" % r
        seen = []
        for method, path, hd in (("DELETE", "/calls/" + cid, {}),
                                 ("POST", "/calls/%s/terminate" % cid, {}),
                                 ("DELETE", "/calls/" + cid, {"Authorization": "Bearer wrong-" + cid})):
            try:
                st, _ = http_req(method, path, headers=hd, token=False)
            except Exception as e:
                st = repr(e)
            seen.append("%s %s" % (method, st))
        q = ng.req({"command": "query", "call-id": cid})
        kept = q.get("result") == "ok"
        msg = "without a token (none, wrong): %s; the call %s" % (", ".join(seen), "is kept" if kept else "WAS TORN DOWN")
        good = kept and not any(x.endswith(" 200") for x in seen)
        if A.token and kept:
            st, _ = http_req("DELETE", "/calls/" + cid)
            gone = ng.req({"command": "query", "call-id": cid}).get("result") != "ok"
            msg += "; with the token (Authorization: Bearer): %s, %s" % (st, "torn down" if gone else "STILL THERE")
            good = good and gone
        elif not A.token:
            msg += "; this relayd has no --http-token"
        ng.delete(cid)
        return good, msg
    sub("b4 DELETE without the token is refused", b4)

    def b5():
        st_bad, _ = http_req("GET", "/stats", host="rebind.attacker.example")
        st_bad2, _ = http_req("GET", "/calls", host="rebind.attacker.example:%s" % A.http.rsplit(":", 1)[1])
        st_good, _ = http_req("GET", "/stats")
        return st_bad != 200 and st_bad2 != 200 and st_good == 200, (
            "Host: rebind.attacker.example -> %s, /calls -> %s; Host: %s -> %s" % (st_bad, st_bad2, A.http, st_good))
    sub("b5 Host check (DNS rebinding)", b5)
    # last: today it ends the process
    sub("b1 GET/DELETE /calls/%a<multi-byte UTF-8>", b1)


def inject_ng_list(lab, ng, cid, b, atk_sock, atk_rx, policy_reason, ng_counter=True):
    """The offerer's leg points at an ng socket; the attacker (as the callee) sends RTP
    carrying an ng `list` to the relay port b: no ng reply may come back."""
    list0 = ng_commands("list") if ng_counter else None
    marks0 = atk_rx.ng_replies
    pkt = no_space_header() + b"X d7:command4:liste"
    for _ in range(10):
        atk_sock.sendto(pkt, b)
        time.sleep(0.01)
    settle(0.5)
    list1 = ng_commands("list") if ng_counter else None
    replies = atk_rx.ng_replies - marks0
    ran = None if list0 is None or list1 is None else list1 - list0
    return replies == 0 and not ran, "%s; RTP carrying ng `list` to the port: %d ng replies came back%s%s" % (
        policy_reason, replies, "" if ran is None else ", ng ran `list` %d times" % ran,
        (" e.g. %r" % (atk_rx.samples[-1],)) if replies else "")


def refused(r, addr):
    return r.get("result") == "error" and addr in reason(r)


def check_c():
    """Signalled media addresses: loopback, the relay's own sockets and addresses."""
    lab = Lab()
    ng = lab.ng
    ng_port = int(A.ng.rsplit(":", 1)[1])
    http_port = int(A.http.rsplit(":", 1)[1])
    live = lab.call("c-live")

    def c_ng():
        cid = lab.cid("c-ng")
        r = offer(ng, cid, "127.0.0.1", ng_port, from_tag="atk", direction=("pub", "pub"))
        if r.get("result") != "ok":
            return refused(r, "127.0.0.1"), "offer c=127.0.0.1 m=audio %d (ng): %s %r" % (
                ng_port, r.get("result"), reason(r))
        # accepted: the attacker answers as the callee and tries the ng socket through it
        b = sdp_addr(r["sdp"])
        ap = lab.atk.getsockname()
        answer(ng, cid, ap[0], ap[1], from_tag="atk", to_tag="atk2")
        _, msg = inject_ng_list(lab, ng, cid, b, lab.atk, lab.rx_atk, "offer ACCEPTED (must be refused)")
        ng.delete(cid)
        return False, msg
    sub("c1 c=127.0.0.1 with the ng port refused, ng unreachable through media", c_ng)

    def c_http():
        r = offer(ng, lab.cid("c-http"), "127.0.0.1", http_port, from_tag="atk", direction=("pub", "pub"))
        ng.delete(lab.cid("c-http"))
        return refused(r, "127.0.0.1"), "offer c=127.0.0.1 m=audio %d (HTTP): %s %r" % (
            http_port, r.get("result"), reason(r))
    sub("c2 c=127.0.0.1 with the HTTP port refused", c_http)

    def c_own():
        out = []
        good = True
        for ip, port in ((RELAY_PUB, live.a[1]), (RELAY_PUB, ng_port), (RELAY_PRIV, live.b[1]), (RELAY_PRIV, 5000)):
            cid = lab.cid("c-own-%s-%d" % (ip, port))
            r = offer(ng, cid, ip, port, from_tag="atk", direction=("pub", "pub"))
            ng.delete(cid)
            good = good and refused(r, ip)
            out.append("%s:%d -> %s %s" % (ip, port, r.get("result"), reason(r)[:60]))
        return good, "; ".join(out)
    sub("c3 the relay's own media addresses refused", c_own)

    def c_classes():
        out = []
        good = True
        for ip in ("127.0.0.53", "224.0.0.1", "255.255.255.255", "169.254.1.1", "0.1.2.3"):
            cid = lab.cid("c-cls-%s" % ip)
            r = offer(ng, cid, ip, 5000, from_tag="atk", direction=("pub", "pub"))
            ng.delete(cid)
            good = good and refused(r, ip)
            out.append("%s -> %s" % (ip, r.get("result")))
        return good, "; ".join(out)
    sub("c4 loopback/multicast/broadcast/link-local/0.x media addresses refused", c_classes)

    got, back = flows(lab, live, 200)
    sub("c5 the call in progress keeps flowing", lambda: (got >= 198 and back >= 198,
                                                         "caller->callee %d/200, callee->caller %d/200" % (got, back)))
    ng.delete(live.cid)

    if A.lab_pid and relayd_alive(A.lab_pid):
        lng = Ng(A.lab_ng)
        lab_ng_port = int(A.lab_ng.rsplit(":", 1)[1])
        lab_http_port = int(A.lab_http.rsplit(":", 1)[1])
        s1, s2, s3 = udp(None, "127.0.0.1"), udp(None, "127.0.0.1"), udp(None, "127.0.0.1")
        r1, r2, r3 = Rx(s1), Rx(s2), Rx(s3)

        def lab_own():
            out = []
            good = True
            for port in (lab_ng_port, lab_http_port, 30010, 30501):
                cid = lab.cid("c-lab-%d" % port)
                r = offer(lng, cid, "127.0.0.1", port, from_tag="atk", direction=None)
                if r.get("result") == "ok" and port == lab_ng_port:
                    b = sdp_addr(r["sdp"])
                    answer(lng, cid, "127.0.0.1", s3.getsockname()[1], from_tag="atk", to_tag="atk2")
                    _, msg = inject_ng_list(lab, lng, cid, ("127.0.0.1", b[1]), s3, r3, "ACCEPTED", ng_counter=False)
                    out.append(msg)
                lng.delete(cid)
                good = good and refused(r, "127.0.0.1")
                out.append("127.0.0.1:%d -> %s %s" % (port, r.get("result"), reason(r)[:60]))
            return good, "; ".join(out)
        sub("c6 lab relay (loopback interface): its own ng/HTTP/media sockets refused", lab_own)

        def lab_works():
            cid = lab.cid("c-lab-ok")
            c = setup_call(lng, cid, s1, s2, direction=None)
            sid = random.randrange(1 << 30)
            st1, st2 = Stream(sid), Stream(sid + 1)
            t = send_bg(s2, ("127.0.0.1", c.b[1]), st2.take(100))
            send_paced(s1, ("127.0.0.1", c.a[1]), st1.take(100))
            t.join()
            settle()
            lng.delete(cid)
            g1, g2 = r2.count(sid, 0, 100), r1.count(sid + 1, 0, 100)
            return g1 >= 99 and g2 >= 99, "a loopback call on the lab relay: %d/100 and %d/100" % (g1, g2)
        sub("c7 lab relay keeps working with loopback peers", lab_works)
        for r in (r1, r2, r3):
            r.close()
    else:
        note("no lab relay on this pass: c6/c7 skipped")
    lab.close()


def rtcp_rr(ssrc=0x42424242):
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)  # 8 bytes: RR without report blocks


def loop_probe(ng, cid, targets, sock):
    before = packets_of(ng, cid)
    for t in targets:
        sock.sendto(rtcp_rr(), t)
    time.sleep(1.0)
    mid = packets_of(ng, cid)
    time.sleep(1.0)
    after = packets_of(ng, cid)
    return after - before, after - mid


def check_d():
    """a=rtcp naming the relay's own port: refused, and never a forwarding loop."""
    lab = Lab()
    ng = lab.ng
    atk = lab.atk.getsockname()

    def d_answer(flags):
        cid = lab.cid("d-ans-%d" % len(flags))
        r = offer(ng, cid, atk[0], atk[1], from_tag="atkd", direction=("pub", "pub"), extra=["a=rtcp-mux"],
                  more={"flags": flags})
        if r.get("result") != "ok":
            return False, "set-up offer failed: %r" % r
        b = sdp_addr(r["sdp"])
        a_port = local_port_of(ng, cid, "atkd")
        r = answer(ng, cid, RELAY_PUB, a_port, from_tag="atkd", to_tag="atkd2",
                   extra=["a=rtcp-mux", "a=rtcp:%d IN IP4 %s" % (a_port, RELAY_PUB)])
        if r.get("result") != "ok":
            ng.delete(cid)
            return refused(r, RELAY_PUB), "answer c=%s m=audio %d a=rtcp-mux a=rtcp:%d (the relay's own port): %s %r" % (
                RELAY_PUB, a_port, a_port, r.get("result"), reason(r))
        total, last = loop_probe(ng, cid, [(RELAY_PUB, a_port), b], lab.atk)
        ng.delete(cid)
        return False, "answer naming the relay's own port ACCEPTED; two 8-byte RTCP packets -> %d packets " \
                      "counted in 2 s (%d in the last second)" % (total, last)
    sub("d1 answer with c= and a=rtcp: naming the relay's own rtcp-mux port", d_answer, [])
    sub("d2 the same, the offerer asymmetric (accepts any source)", d_answer, ["asymmetric"])

    def d_reoffer():
        cid = lab.cid("d-re")
        r = offer(ng, cid, atk[0], atk[1], from_tag="atkd", direction=("pub", "pub"), extra=["a=rtcp-mux"])
        b = sdp_addr(r["sdp"])
        a_port = local_port_of(ng, cid, "atkd")
        answer(ng, cid, atk[0], atk[1] + 2, from_tag="atkd", to_tag="atkd2", extra=["a=rtcp-mux"])
        r = offer(ng, cid, atk[0], atk[1], from_tag="atkd", direction=("pub", "pub"),
                  extra=["a=rtcp:%d IN IP4 %s" % (b[1], RELAY_PUB)], more={"to-tag": "atkd2"})
        if r.get("result") != "ok":
            ng.delete(cid)
            return refused(r, RELAY_PUB), "re-offer a=rtcp:%d IN IP4 %s: %s %r" % (b[1], RELAY_PUB, r.get("result"),
                                                                                   reason(r))
        total, last = loop_probe(ng, cid, [(RELAY_PUB, a_port), (RELAY_PUB, a_port + 1), b, (b[0], b[1] + 1)],
                                 lab.atk)
        ng.delete(cid)
        return total <= 20, "re-offer a=rtcp:%d IN IP4 %s accepted (address ignored?); four 8-byte RTCP packets " \
                            "-> %d packets counted in 2 s (%d in the last second)" % (b[1], RELAY_PUB, total, last)
    sub("d3 re-offer whose a=rtcp: names the relay's own address and port", d_reoffer)

    if A.lab_pid and relayd_alive(A.lab_pid):
        lng = Ng(A.lab_ng)
        s = udp(None, "127.0.0.1")
        rx = Rx(s)
        me = s.getsockname()

        def d_lab():
            out = []
            good = True
            cid = lab.cid("d-lab")
            r = offer(lng, cid, "127.0.0.1", me[1], from_tag="atkd", direction=None, extra=["a=rtcp-mux"],
                      more={"flags": ["asymmetric"]})
            b = sdp_addr(r["sdp"])
            a_port = local_port_of(lng, cid, "atkd")
            r = answer(lng, cid, "127.0.0.1", a_port, from_tag="atkd", to_tag="atkd2", extra=["a=rtcp-mux"])
            if r.get("result") == "ok":
                total, last = loop_probe(lng, cid, [("127.0.0.1", a_port), ("127.0.0.1", b[1])], s)
                good = False
                out.append("answer m=audio %d a=rtcp-mux (own port) ACCEPTED: %d packets in 2 s from two RTCP "
                           "packets (%d in the last second)" % (a_port, total, last))
            else:
                good = refused(r, "127.0.0.1")
                out.append("answer m=audio %d a=rtcp-mux (own port): %s %r" % (a_port, r.get("result"), reason(r)))
            lng.delete(cid)
            cid = lab.cid("d-lab2")
            r = offer(lng, cid, "127.0.0.1", me[1], from_tag="atkd", direction=None,
                      extra=["a=rtcp:%s" % A.lab_ng.rsplit(":", 1)[1]])
            lng.delete(cid)
            good = good and refused(r, "127.0.0.1")
            out.append("offer a=rtcp:<ng port>: %s %r" % (r.get("result"), reason(r)))
            return good, "; ".join(out)
        sub("d4 lab relay: a=rtcp naming its own rtcp-mux port or its ng port", d_lab)
        rx.close()
    lab.close()


def check_e():
    """Spoofed sources (127.0.0.1, the relay's own addresses) from the attacker's wire."""
    lab = Lab()
    ng = lab.ng
    raw = Raw()
    ng_port = int(A.ng.rsplit(":", 1)[1])
    http_port = int(A.http.rsplit(":", 1)[1])
    call = lab.call("e")
    a, b = call.a, call.b
    spoofs = [("127.0.0.1", ng_port), ("127.0.0.1", http_port), ("127.0.0.1", 5000),
              (RELAY_PUB, ng_port), (RELAY_PUB, b[1]), (RELAY_PRIV, b[1]), (RELAY_PUB, a[1] + 2)]
    ngpkt = no_space_header(seq=0x4141) + b"ATCK d7:command4:liste"

    def spray(dst, n=20):
        for _ in range(n):
            for src in spoofs:
                raw.udp(src, dst, ngpkt)

    def bad_endpoints():
        return [(t, ip, p) for t, _, ip, p, _ in streams(ng, call.cid) if ip in RELAY_OWN]

    list0 = ng_commands("list")
    # 1. before the caller sends anything (the flow is not latched yet)
    spray(a)
    settle(0.3)
    bad1 = bad_endpoints()
    got, back = flows(lab, call, 300)
    bad2 = bad_endpoints()
    ep = endpoint_of(ng, call.cid, "caller")
    sub("e1 spoofed 127.0.0.1/relay-address frames before the first packet: no latch, the call flows",
        lambda: (not bad1 and not bad2 and got >= 297 and back >= 297 and ep[0] == CALLER,
                 "endpoints on relay/loopback addresses: %s then %s; caller's endpoint %s:%s; caller->callee %d/300, "
                 "callee->caller %d/300" % (bad1 or "none", bad2 or "none", ep[0], ep[1], got, back)))

    # 2. in the middle of the call
    sid = random.randrange(1 << 30)
    s1, s2 = Stream(sid), Stream(sid + 1)
    t1 = send_bg(lab.caller, a, s1.take(400), 400)
    t2 = send_bg(lab.callee, b, s2.take(400), 400)
    time.sleep(0.3)
    spray(a, 30)
    spray(b, 10)
    t1.join()
    t2.join()
    settle()
    got, back = lab.rx_callee.count(sid, 0, 400), lab.rx_caller.count(sid + 1, 0, 400)
    ep2 = endpoint_of(ng, call.cid, "caller")
    ep3 = endpoint_of(ng, call.cid, "callee")
    marks = lab.rx_callee.marks + lab.rx_caller.marks
    sub("e2 spoofed frames into a live flow: endpoints unchanged, nothing injected, nothing lost",
        lambda: (ep2 == ep and ep3[0] == CALLEE and marks == 0 and got >= 396 and back >= 396,
                 "caller endpoint %s:%s (was %s:%s), callee endpoint %s:%s, %d spoofed packets delivered, "
                 "%d/400 and %d/400 relayed" % (ep2[0], ep2[1], ep[0], ep[1], ep3[0], ep3[1], marks, got, back)))

    # 3. to the ng port, from the relay's own addresses and its media sockets
    marks0 = lab.rx_callee.marks + lab.rx_caller.marks
    catch = [udp(None, "127.0.0.1", 0), udp(None, RELAY_PUB, 0)]
    crx = [Rx(s) for s in catch]
    ping0 = ng_commands("ping")
    srcs = [("127.0.0.1", catch[0].getsockname()[1]), (RELAY_PUB, catch[1].getsockname()[1]), (RELAY_PUB, a[1]),
            (RELAY_PRIV, b[1])]
    q = no_space_header(seq=0x4242) + b"ATCKNG d7:command4:pinge"
    for _ in range(10):
        for src in srcs:
            for dst in (("127.0.0.1", ng_port), (RELAY_PUB, ng_port), (RELAY_PRIV, ng_port)):
                raw.udp(src, dst, q)
    settle(0.5)
    ping1 = ng_commands("ping")
    replies = sum(r.total for r in crx)
    marks = lab.rx_callee.marks + lab.rx_caller.marks - marks0
    for r in crx:
        r.close()
    list1 = ng_commands("list")
    ran = None if None in (list0, list1, ping0, ping1) else (list1 - list0) + (ping1 - ping0)
    sub("e3 spoofed frames to the ng port and media carrying ng commands: ng never answers",
        lambda: (replies == 0 and marks == 0 and not ran,
                 "%d replies at the spoofed sources, %d delivered to the call's ends, ng ran %s spoofed commands"
                 % (replies, marks, "?" if ran is None else ran)))
    ng.delete(call.cid)
    lab.close()


def check_f():
    """SRTP: forged SSRCs after a ROC wrap, replays, a sniffed copy sent first, relatch."""
    lab = Lab()
    ng = lab.ng
    raw = Raw()
    key, salt = os.urandom(16), os.urandom(14)
    inline = base64.b64encode(key + salt).decode()
    call = lab.call("f", proto="RTP/SAVP", offer_extra=["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + inline],
                    offer_more={"transport-protocol": "RTP/AVP"})
    a = call.a
    me = lab.caller.getsockname()
    sid = random.randrange(1 << 30)
    st = Stream(sid, seq=65535 - 199, srtp=Srtp(key, salt))
    rate = 500.0
    # 1. past the wrap: ROC 1
    p1 = st.take(400)
    send_paced(lab.caller, a, p1, rate)
    settle()
    got1 = lab.rx_callee.count(sid, 0, 400)
    if got1 < 396:
        note("SRTP before the attack: %d/400 delivered (ROC %d)" % (got1, st.roc))
    # 2. forged SRTP with random SSRCs, from the attacker and spoofed from the caller
    for _ in range(16):
        f = rtp(random.randrange(1 << 16), random.randrange(1 << 32), random.randrange(1, 1 << 32),
                os.urandom(160)) + os.urandom(10)
        lab.atk.sendto(f, a)
        raw.udp(me, a, f)
    settle(0.1)
    # 3. the next 1000
    lo = st.idx
    p3 = st.take(1000)
    send_paced(lab.caller, a, p3, rate)
    settle()
    got3 = lab.rx_callee.count(sid, lo, lo + 1000)
    sub("f1 SRTP past a ROC wrap, then 32 forged random-SSRC datagrams: the next 1000 still decrypt",
        lambda: (got3 >= 990 and got1 >= 396, "before %d/400 (ROC %d), after the forgeries %d/1000" % (
            got1, st.roc, got3)))

    # 4. sniffed copies sent first, from the attacker's own address
    lo4 = st.idx
    p4 = st.take(100)
    for p in p4:
        lab.atk.sendto(p, a)
    settle(0.05)
    send_paced(lab.caller, a, p4, rate)
    settle()
    got4 = lab.rx_callee.count(sid, lo4, lo4 + 100)
    sub("f2 copies of the next packets sent first from another address do not make the real ones replays",
        lambda: (got4 >= 99, "%d/100 of the caller's packets delivered after the attacker sent them first" % got4))

    # 5. replays of captured packets: from the attacker and spoofed from the caller
    dup0 = lab.rx_callee.dups(sid)
    capt = p3[-150:] + p1[:50]
    for p in capt:
        lab.atk.sendto(p, a)
        raw.udp(me, a, p)
    settle(0.5)
    dups5 = lab.rx_callee.dups(sid) - dup0
    sub("f3 150+50 captured SRTP packets replayed (attacker's address and spoofed caller's): none delivered",
        lambda: (dups5 == 0, "%d replays delivered to the callee" % dups5))

    # 6. the caller falls silent; the attacker replays and forges; the caller comes back
    time.sleep(2.5)
    for _ in range(8):
        lab.atk.sendto(rtp(random.randrange(1 << 16), 0, random.randrange(1, 1 << 32), os.urandom(160))
                       + os.urandom(10), a)
    send_paced(lab.atk, a, p3[-50:], 200)
    lo6 = st.idx
    p6 = st.take(200)
    send_paced(lab.caller, a, p6, rate)
    settle()
    got6 = lab.rx_callee.count(sid, lo6, lo6 + 200)
    dups6 = lab.rx_callee.dups(sid) - dup0
    ep = endpoint_of(ng, call.cid, "caller")
    sub("f4 after 2.5 s of silence, replays and forgeries from the attacker: no relatch, no replay",
        lambda: (got6 >= 198 and dups6 == 0 and ep[0] == CALLER,
                 "caller's endpoint %s:%s, %d replays delivered, the caller's next %d/200 delivered"
                 % (ep[0], ep[1], dups6, got6)))
    ng.delete(call.cid)
    lab.close()


def check_g():
    """Set-up race (RTP Bleed at set-up) and relatch after the callee's silence."""
    lab = Lab()
    ng = lab.ng
    cid = lab.cid("g")
    cip, cport = lab.caller.getsockname()
    eip, eport = lab.callee.getsockname()
    r = offer(ng, cid, cip, cport, received_from=cip)
    b = sdp_addr(r["sdp"])
    stop = threading.Event()
    atk_stream = Stream(7)

    def spray():
        while not stop.is_set():
            lab.atk.sendto(rtp(atk_stream.seq & 0xFFFF, atk_stream.ts, atk_stream.ssrc, attack_payload()), b)
            atk_stream.seq += 1
            atk_stream.ts += 160
            stop.wait(0.004)
    t = threading.Thread(target=spray, daemon=True)
    t.start()
    time.sleep(0.3)
    r = answer(ng, cid, eip, eport, received_from=eip)
    a = sdp_addr(r["sdp"])
    sid = random.randrange(1 << 30)
    s1, s2 = Stream(sid), Stream(sid + 1)
    atk0 = lab.rx_atk.got.copy()
    t1 = send_bg(lab.caller, a, s1.take(600), 200)
    time.sleep(0.5)
    t2 = send_bg(lab.callee, b, s2.take(500), 200)
    t1.join()
    t2.join()
    settle()
    got = lab.rx_callee.count(sid, 0, 600)
    stolen = sum(1 for k in lab.rx_atk.got if k[0] == sid and k not in atk0)
    marks = lab.rx_caller.marks
    sub("g1 an off-path host spraying the callee-side port from before the answer: the callee gets the call",
        lambda: (got >= 594, "callee received %d/600 of the caller's packets, the attacker %d; "
                             "%d of the attacker's packets reached the caller" % (got, stolen, marks)))

    # the callee falls silent for 3 s while the spray goes on; then the caller talks again
    time.sleep(3.0)
    lo = s1.idx
    send_paced(lab.caller, a, s1.take(200), 200)
    settle()
    got2 = lab.rx_callee.count(sid, lo, lo + 200)
    stolen2 = sum(1 for k in lab.rx_atk.got if k[0] == sid and k[1] >= lo)
    ep = endpoint_of(ng, cid, "callee")
    stop.set()
    t.join()
    sub("g2 after 3 s of silence from the callee, the spraying host does not take over",
        lambda: (got2 >= 198 and ep[0] == CALLEE, "callee endpoint %s:%s; callee received %d/200, the attacker %d"
                 % (ep[0], ep[1], got2, stolen2)))
    ng.delete(cid)
    lab.close()


def ports_used(ng):
    r = ng.req({"command": "statistics"})
    return ((r.get("statistics") or {}).get("currentstatistics") or {}).get("portsused")


def wait_ports(ng, base, seconds=5.0):
    """Wait (bounded) until the ports in use are back to base: one check's leftovers do
    not fail the next."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ports_used(ng) == base:
                return
        except NgTimeout:
            pass
        time.sleep(0.2)


def limit_reason(r):
    t = reason(r).lower()
    return r.get("result") == "error" and "exhaust" not in t and any(
        w in t for w in ("limit", "too many", "too long", "max", "exceed", "at most", "length"))


def check_h():
    """Bounded control plane."""
    ng = Ng(A.ng, timeout=20)
    tag = "%s-%x" % (A.backend, random.randrange(1 << 24))
    base = ports_used(ng)

    def h_media():
        media = []
        for k in range(2500):
            media += ["m=audio %d RTP/AVP 0" % (4000 + 2 * k)]
        cid = "atk-h-2500-" + tag
        t0 = time.monotonic()
        one = Ng(A.ng, timeout=10)
        one.c.retries = 0
        try:
            r = offer(one, cid, ATTACKER, 0, from_tag="atk", direction=("pub", "pub"), media=media, timeout=10)
        except NgTimeout:
            r = {"result": "no reply within 10 s"}
        dt = time.monotonic() - t0
        ng.delete(cid)
        cid2 = "atk-h-next-" + tag
        r2 = offer(ng, cid2, ATTACKER, 4000, from_tag="atk", direction=("pub", "pub"))
        ng.delete(cid2)
        time.sleep(0.2)
        after = ports_used(ng)
        return limit_reason(r) and r2.get("result") == "ok" and after == base, (
            "2500 m= lines (%d-byte SDP): %s %r after %.1f s; the next offer: %s %s; ports in use %s -> %s" % (
                len(sdp_text(ATTACKER, 0, media=media)), r.get("result"), reason(r)[:100], dt, r2.get("result"),
                reason(r2)[:80], base, after))
    sub("h1 2500 m= lines refused with a clean error, nothing leaked", h_media)

    def h_monologues():
        wait_ports(ng, base)
        cid = "atk-h-mono-" + tag
        res = None
        n = 0
        for n in range(1, 1001):
            r = offer(ng, cid, ATTACKER, 4000, from_tag="f%d" % n, direction=("pub", "pub"),
                      more={"to-tag": "t%d" % n})
            if r.get("result") != "ok":
                res = r
                break
        ng.delete(cid)
        time.sleep(0.2)
        after = ports_used(ng)
        if res is None:
            return False, "1000 monologue pairs in one call all accepted (ports in use now %s)" % after
        return limit_reason(res) and after == base, "offer %d refused: %r; ports in use %s -> %s" % (
            n, reason(res)[:100], base, after)
    sub("h2 monologues per call bounded", h_monologues)

    def h_ids():
        out = []
        good = True
        for what in ("call-id", "from-tag"):
            long_id = "x" * 30000
            cid = long_id if what == "call-id" else "atk-h-id-" + tag
            r = offer(ng, cid, ATTACKER, 4000, from_tag=long_id if what == "from-tag" else "atk",
                      direction=("pub", "pub"))
            ng.delete(cid)
            good = good and limit_reason(r)
            out.append("30000-byte %s: %s %r" % (what, r.get("result"), reason(r)[:80]))
        return good, "; ".join(out)
    sub("h3 call-id / tag lengths bounded", h_ids)

    def h_cookie_source():
        c1 = NgClient(A.ng, timeout=3, retries=1)
        c2 = NgClient(A.ng, timeout=3, retries=1)
        cookie = "atkcookie%x" % random.randrange(1 << 32)
        cid = "atk-h-cookie-" + tag
        msg = {"command": "offer", "call-id": cid, "from-tag": "atk", "direction": ["pub", "pub"],
               "sdp": sdp_text(ATTACKER, 4000, proto="RTP/SAVP",
                               extra=["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(
                                   os.urandom(30)).decode()])}
        _, first = c1.request_raw(bencode(msg), cookie)
        _, retr = c1.request_raw(bencode(msg), cookie)
        try:
            _, other = c2.request_raw(bencode({"command": "ping"}), cookie)
        except NgTimeout:
            other = b""
        ng.delete(cid)
        leaked = other == first or b"crypto" in other
        return not leaked and retr == first, (
            "a retransmission from the proxy gets %s; another source with the same cookie gets %s (%d bytes%s)" % (
                "the cached reply" if retr == first else "A DIFFERENT REPLY",
                "THE CACHED OFFER REPLY" if leaked else "its own answer" if other else "no reply",
                len(other), ", with SDES keys" if b"crypto" in other else ""))
    sub("h4 the ng reply cache is keyed by source and cookie", h_cookie_source)

    def h_list():
        ids = []
        for k in range(300):
            cid = ("atk-h-list-%s-%04d-" % (tag, k)).ljust(60, "z")
            r = offer(ng, cid, ATTACKER, 4000, from_tag="atk", direction=("pub", "pub"))
            if r.get("result") == "ok":
                ids.append(cid)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        req = b"L1 " + bencode({"command": "list", "limit": 1000000})
        s.sendto(req, (A.ng.rsplit(":", 1)[0], int(A.ng.rsplit(":", 1)[1])))
        try:
            rep = s.recv(65535)
        except socket.timeout:
            rep = b""
        for cid in ids:
            ng.delete(cid)
        return len(rep) <= 8192 and len(ids) == 300, (
            "%d calls with 60-byte ids; a %d-byte `list` (limit 1000000) got a %d-byte reply (x%.0f)" % (
                len(ids), len(req), len(rep), len(rep) / len(req)))
    sub("h5 `list` replies are capped (amplification)", h_list)

    def h_cache_bytes():
        rss0 = proc_kb("VmRSS")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.connect((A.ng.rsplit(":", 1)[0], int(A.ng.rsplit(":", 1)[1])))
        s.settimeout(0.02)
        body = b" " + bencode({"command": "ping"})
        n = 1500
        answered = 0
        for k in range(0, n, 3):
            for j in range(3):
                s.send(b"%07d" % (k + j) + os.urandom(30000).hex().encode()[:60000 - 7] + body)
            for j in range(3):
                try:
                    s.recv(70000)
                    answered += 1
                except (socket.timeout, ConnectionRefusedError):
                    break
        time.sleep(0.3)
        grew = (proc_kb("VmRSS") - rss0) // 1024
        return grew < 96 and relayd_alive(), "%d pings with 60 KB cookies (%d answered): RSS +%d MB" % (
            n, answered, grew)
    sub("h6 the ng reply cache is bounded by bytes", h_cache_bytes)


def check_i():
    """Port prediction: consecutive offers get unpredictable ports."""
    ng = Ng(A.ng)
    tag = "%s-%x" % (A.backend, random.randrange(1 << 24))
    ports = []
    for k in range(20):
        cid = "atk-i-%s-%d" % (tag, k)
        r = offer(ng, cid, ATTACKER, 4000, from_tag="atk", direction=("pub", "pub"))
        if r.get("result") == "ok":
            ports.append(sdp_addr(r["sdp"])[1])
        ng.delete(cid)
    diffs = [b - a for a, b in zip(ports, ports[1:])]
    near = sum(1 for d in diffs if abs(d) <= 8)
    sub("i1 20 consecutive offers' ports are not sequential",
        lambda: (len(ports) == 20 and near <= 2 and len(set(ports)) >= 18,
                 "ports %s; %d of %d steps within 8" % (ports, near, len(diffs))))


def start_daemon(cmd, ng_addr):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ng = Ng(ng_addr)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and p.poll() is None:
        if ng.ping():
            return p
        time.sleep(0.1)
    err = b""
    if p.poll() is not None:
        err = p.stderr.read()[-300:]
    p.kill()
    p.wait()
    raise RuntimeError("%s did not answer ng (%s)" % (" ".join(cmd), err.decode(errors="replace")))


def check_j():
    """The host's limits: RLIMIT_NOFILE raised to the hard limit, the inherited CPU set honoured."""
    def j_nofile():
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        p = start_daemon(["prlimit", "--nofile=256:%d" % hard, A.relayd, "--no-state", "--backend", "uring", "--interface=127.0.0.1",
                          "--listen-ng=127.0.0.1:2291", "--listen-http=none", "--port-min=31000",
                          "--port-max=31999"], "127.0.0.1:2291")
        try:
            lim = open("/proc/%d/limits" % p.pid).read()
            m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", lim, re.M)
            soft, hard = int(m.group(1)), int(m.group(2))
            return soft == hard, "started with nofile 256:%d, running with soft %d, hard %d" % (hard, soft, hard)
        finally:
            p.kill()
            p.wait()
    sub("j1 the soft descriptor limit is raised to the hard one", j_nofile)

    def j_cpus():
        p = start_daemon(["taskset", "-c", "1", A.relayd, "--no-state", "--backend", "uring", "--workers", "1",
                          "--interface=127.0.0.1", "--listen-ng=127.0.0.1:2292", "--listen-http=none",
                          "--port-min=32000", "--port-max=32099"], "127.0.0.1:2292")
        try:
            outside = []
            for tid in os.listdir("/proc/%d/task" % p.pid):
                try:
                    st = open("/proc/%d/task/%s/status" % (p.pid, tid)).read()
                    name = open("/proc/%d/task/%s/comm" % (p.pid, tid)).read().strip()
                except OSError:
                    continue
                cpus = re.search(r"^Cpus_allowed_list:\s+(\S+)", st, re.M).group(1)
                if cpus != "1":
                    outside.append("%s on %s" % (name, cpus))
            return not outside, "taskset -c 1 relayd --workers 1: threads outside CPU 1: %s" % (outside or "none")
        finally:
            p.kill()
            p.wait()
    if os.cpu_count() and os.cpu_count() >= 2:
        sub("j2 workers stay in the CPU set the process was started with", j_cpus)


def check_k():
    """STUN, DTLS and media at the WebRTC sockets (webrtc_checks.py)."""
    import webrtc_checks
    webrtc_checks.check_k(sys.modules[__name__])


def check_l():
    """Hostile WebRTC SDP and flags over ng (webrtc_checks.py)."""
    import webrtc_checks
    webrtc_checks.check_l(sys.modules[__name__])


def check_m():
    """The appliance's inputs: RTCP reports, DTMF, capture/drain, recording (appliance_checks.py)."""
    import appliance_checks
    appliance_checks.check_m(sys.modules[__name__])


CHECKS = {"a": check_a, "b": check_b, "c": check_c, "d": check_d, "e": check_e, "f": check_f, "g": check_g,
          "h": check_h, "i": check_i, "j": check_j, "k": check_k, "l": check_l, "m": check_m}


def main():
    global A
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", required=True, choices=sorted(CHECKS))
    ap.add_argument("--backend", default="uring")
    ap.add_argument("--relayd-pid", type=int, required=True)
    ap.add_argument("--lab-pid", type=int, default=0)
    ap.add_argument("--relayd", default="./target/release/relayd")
    ap.add_argument("--ng", default="127.0.0.1:2280")
    ap.add_argument("--http", default="127.0.0.1:9980")
    ap.add_argument("--lab-ng", default="127.0.0.1:2290")
    ap.add_argument("--lab-http", default="127.0.0.1:9990")
    A = ap.parse_args()
    A.token = os.environ.get("HTTP_TOKEN") or None
    try:
        CHECKS[A.check]()
    except Exception as e:  # set-up of a check failed: one failure, the reason
        fail("%s: the check could not run: %s: %r" % (A.check, type(e).__name__, e))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
