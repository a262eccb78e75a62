"""Checks k (STUN, DTLS and media at relayd's WebRTC sockets) and l (hostile WebRTC SDP and flags
over ng), run by attacks.py with the attacks module as `t` (its Lab, namespaces, ng and verdicts).

The browser is played by hand (webrtc.Browser: hand-built STUN checks, an OpenSSL DTLS client), the SIP
phone is the lab's plain callee; the call is set up with the flags of the common Kamailio WebRTC-to-SIP
config (the browser offers; the phone's leg is plain RTP/AVP). docs/security.md lists the defences.
"""
import os
import random
import struct
import time

import webrtc as w

# The two flag strings of the common Kamailio WebRTC-to-SIP config, as Kamailio's module sends them.
TO_PHONE = {"flags": ["trust-address"], "replace": ["origin", "session-connection"], "rtcp-mux": ["demux"],
            "ICE": "remove", "DTLS": "off", "transport-protocol": "RTP/AVP"}
TO_BROWSER = {"flags": ["trust-address", "generate-mid"], "replace": ["origin", "session-connection"],
              "rtcp-mux": ["offer"], "ICE": "force", "DTLS": "passive", "SDES": ["off"],
              "transport-protocol": "RTP/SAVPF"}
# A DTLS-SRTP SIP endpoint without ICE: the handshake has no check in front of it.
TO_DTLS_NO_ICE = dict(TO_BROWSER, ICE="remove")


class WebRtcCall:
    pass


def webrtc_call(t, lab, name, browser, answer_flags=TO_BROWSER, sdp_kw=None):
    """Browser offers (towards the phone: plain), phone answers (towards the browser: answer_flags)."""
    c = WebRtcCall()
    c.cid = lab.cid(name)
    cip = browser.sock.getsockname()[0]
    msg = {"command": "offer", "call-id": c.cid, "from-tag": "caller", "sdp": browser.sdp(**(sdp_kw or {})),
           "direction": ["pub", "priv"], "received-from": ["IP4", cip]}
    msg.update(TO_PHONE)
    r = lab.ng.req(msg)
    if r.get("result") != "ok":
        raise RuntimeError("offer %s: %r" % (c.cid, r))
    c.b = t.sdp_addr(r["sdp"])  # where the phone sends
    eip, eport = lab.callee.getsockname()
    msg = {"command": "answer", "call-id": c.cid, "from-tag": "caller", "to-tag": "callee",
           "sdp": t.sdp_text(eip, eport), "received-from": ["IP4", eip]}
    msg.update(answer_flags)
    r = lab.ng.req(msg)
    if r.get("result") != "ok":
        raise RuntimeError("answer %s: %r" % (c.cid, r))
    c.answer_sdp = r["sdp"]
    browser.learn(r["sdp"], t.sdp_addr(r["sdp"])[0])
    c.a = browser.relay  # where the browser sends
    return c


def srtp_rx(key_salt):
    from pylibsrtp import Policy, Session
    return Session(Policy(key=key_salt, ssrc_type=Policy.SSRC_ANY_INBOUND,
                          srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))


def rtp_at(coll, mark):
    return [d for d, _ in coll.since(mark, "rtp")]


def phone_to_browser(t, lab, call, browser, n=100, rate=250.0, others=()):
    """The phone sends n RTP packets; (SRTP packets at the browser that decrypt to them, RTP at each of
    `others` collectors)."""
    sid = random.randrange(1 << 30)
    marks = [browser.rx.mark()] + [o.mark() for o in others]
    t.send_paced(lab.callee, call.b, t.Stream(sid).take(n), rate)
    t.settle(0.3)
    good = 0
    if browser.keys:
        rx = srtp_rx(browser.keys[1])
        for d in rtp_at(browser.rx, marks[0]):
            try:
                p = rx.unprotect(d)
            except Exception:
                continue
            if p[12:16] == b"RLAB" and struct.unpack("!I", p[16:20])[0] == sid:
                good += 1
    return good, [len(rtp_at(o, m)) for o, m in zip(others, marks[1:])]


def browser_to_phone(t, lab, browser, n=100, rate=250.0, keys=None):
    """The browser sends n SRTP packets (its exported keys, or `keys`); how many reached the phone."""
    sid = random.randrange(1 << 30)
    k = keys or (browser.keys[0] if browser.keys else os.urandom(30))
    st = t.Stream(sid, srtp=t.Srtp(k[:16], k[16:]))
    t.send_paced(browser.sock, browser.relay, st.take(n), rate)
    t.settle(0.3)
    return lab.rx_callee.count(sid, 0, n)


def up(t, lab, name, answer_flags=TO_BROWSER):
    """A browser, its call, its nominating check and its handshake: (browser, call, check request)."""
    b = w.Browser(t.udp("aC", t.CALLER))
    call = webrtc_call(t, lab, name, b, answer_flags)
    req = None
    if answer_flags.get("ICE") != "remove":
        req, rep = b.check()
        if rep is None:
            raise RuntimeError("%s: the browser's check got no answer" % name)
    if not b.handshake():
        raise RuntimeError("%s: the browser's DTLS handshake did not complete" % name)
    return b, call, req


def stats_line(t):
    """The data plane's STUN/DTLS/ICE counters from /metrics, for the notes."""
    try:
        st, body = t.http_req("GET", "/metrics", timeout=3)
    except Exception:
        return "?"
    rows = [ln for ln in body.decode(errors="replace").splitlines()
            if not ln.startswith("#") and any(k in ln for k in ("stun", "dtls", "ice", "consent"))]
    return "; ".join(rows[:12]) or "(no STUN/DTLS/ICE counters in /metrics)"


# ================================================================== check k
def check_k(t):
    """STUN, DTLS and media at the WebRTC sockets."""
    lab = t.Lab()
    raw = t.Raw()
    atk_rx = w.Collector(t.udp("aA", t.ATTACKER))
    atk = atk_rx.sock
    rss0 = t.proc_kb("VmRSS")
    # for k9 (consent expiry): a call whose browser checks once now and never again
    b9, call9, _ = up(t, lab, "k9")
    checked9 = time.monotonic()
    good9, _ = phone_to_browser(t, lab, call9, b9, 20)

    # ---- k1: forged STUN at a WebRTC socket: no reply at all, to anyone
    b, call, req = up(t, lab, "k1")
    good0, _ = phone_to_browser(t, lab, call, b, 50)
    user = "%s:%s" % (b.relay_ufrag, b.ufrag)
    forged = {
        "no MESSAGE-INTEGRITY": w.stun_request(user, b.relay_pwd, integrity=False),
        "wrong MESSAGE-INTEGRITY": w.stun_request(user, b.relay_pwd, bad_integrity=True),
        "keyed with the browser's password": w.stun_request(user, b.pwd),
        "wrong USERNAME": w.stun_request("%s:%s" % (os.urandom(4).hex(), b.ufrag), b.relay_pwd),
        "USERNAME with the wrong remote ufrag": w.stun_request("%s:zzzz" % b.relay_ufrag, b.relay_pwd),
        "no USERNAME": w.stun_request(None, b.relay_pwd),
        "no FINGERPRINT": w.stun_request(user, b.relay_pwd, fingerprint=False),
        "binding indication": w.stun_request(user, b.relay_pwd, method=w.BINDING_INDICATION),
        "2000 bytes": w.stun_request(user, b.relay_pwd, bad_integrity=True,
                                     extra=struct.pack("!HH", 0x8030, 1900) + b"\0" * 1900),
        "truncated": w.stun_request(user, b.relay_pwd)[:30],
    }
    catch = w.Collector(t.udp("aC", t.CALLER))
    spoof_src = catch.sock.getsockname()
    m_atk, m_catch, m_b = atk_rx.mark(), catch.mark(), b.rx.mark()
    sent = 0
    for _ in range(20):
        for pkt in forged.values():
            atk.sendto(pkt, call.a)
            sent += 1
            if len(pkt) <= 1400:  # one Ethernet frame
                raw.udp(spoof_src, call.a, pkt)  # a spoofed victim: the caller's host, another port
                sent += 1
    t.settle(0.5)
    replies = len(atk_rx.since(m_atk)) + len(catch.since(m_catch))
    stray = len(b.rx.since(m_b, "stun"))
    _, rep = b.check()
    good1, _ = phone_to_browser(t, lab, call, b, 50)
    t.sub("k1 %d forged STUN checks (%s) at a WebRTC socket, from the attacker and spoofed: no reply at all"
          % (sent, ", ".join(forged)),
          lambda: (replies == 0 and stray == 0 and rep is not None and good1 >= 48,
                   "%d replies to the attacker or the spoofed victim, %d stray STUN at the browser; the browser's "
                   "own check %s; media to the browser %d/50 before, %d/50 after; %s"
                   % (replies, stray, "answered" if rep else "NOT answered", good0, good1, stats_line(t))))
    catch.close()

    # ---- k2: STUN at the plain (phone) socket: dropped, never relayed, never answered
    m_atk, m_b, other0 = atk_rx.mark(), b.rx.mark(), lab.rx_callee.total
    good_req = b.check_bytes()  # valid credentials, but of the other leg
    for _ in range(20):
        atk.sendto(good_req, call.b)
        atk.sendto(w.stun_request("x:y", "z"), call.b)
        lab.callee.sendto(good_req, call.b)
    t.settle(0.4)
    replies = len(atk_rx.since(m_atk))
    at_phone = lab.rx_callee.total - other0
    relayed = len(b.rx.since(m_b, "stun"))
    t.sub("k2 STUN at the plain (phone-side) socket, from the attacker and from the phone: dropped",
          lambda: (replies == 0 and at_phone == 0 and relayed == 0,
                   "%d answers to the attacker, %d datagrams back at the phone, %d STUN relayed to the browser"
                   % (replies, at_phone, relayed)))

    # ---- k5: a valid check copied by an on-path observer and replayed from the attacker's address
    m_atk = atk_rx.mark()
    for _ in range(3):
        atk.sendto(req, call.a)  # the browser's nominating check, USE-CANDIDATE included
        time.sleep(0.05)
    t.settle(0.2)
    answered = [d for d, _ in atk_rx.since(m_atk, "stun") if w.stun_class(d) == "success"]
    good5, (at_atk,) = phone_to_browser(t, lab, call, b, 100, others=[atk_rx])
    ep = t.endpoint_of(lab.ng, call.cid, "caller")
    t.sub("k5 the browser's nominating check replayed from the attacker's address: media stays with the "
          "browser (consent is fresh)",
          lambda: (good5 >= 95 and at_atk == 0,
                   "relay answered the replay %d times; the phone's media: %d/100 to the browser, %d/100 to the "
                   "attacker; the caller's endpoint in query: %s:%s%s"
                   % (len(answered), good5, at_atk, ep[0], ep[1],
                      "  ** MEDIA HIJACKED by a replayed check **" if at_atk else "")))
    # the real browser checks again (a consent check, as browsers send every few seconds)
    b.check()
    consent = b.check_bytes(use_candidate=False)
    b.sock.sendto(consent, call.a)
    t.settle(0.1)
    for _ in range(3):
        atk.sendto(consent, call.a)  # a copied consent check without USE-CANDIDATE
    t.settle(0.1)
    good5c, (at_atk3,) = phone_to_browser(t, lab, call, b, 50, others=[atk_rx])
    t.sub("k5c a copied consent check (no USE-CANDIDATE) replayed from the attacker: media stays with the browser",
          lambda: (good5c >= 48 and at_atk3 == 0, "%d/50 to the browser, %d to the attacker" % (good5c, at_atk3)))
    b.check()
    good5b, (at_atk2,) = phone_to_browser(t, lab, call, b, 50, others=[atk_rx])
    t.sub("k5b after the browser's next nominating check the media is the browser's again",
          lambda: (good5b >= 48 and at_atk2 == 0, "%d/50 to the browser, %d to the attacker" % (good5b, at_atk2)))
    lab.ng.delete(call.cid)
    b.close()

    # ---- k3: ClientHellos from addresses that passed no check (ICE + DTLS socket)
    b = w.Browser(t.udp("aC", t.CALLER))
    call = webrtc_call(t, lab, "k3", b)
    hello = w.client_hello()
    socks = [w.Collector(t.udp("aA", t.ATTACKER)) for _ in range(10)]
    marks = [s.mark() for s in socks] + [atk_rx.mark()]
    rss1 = t.proc_kb("VmRSS")
    n = 0
    for _ in range(20):
        for s in socks + [atk_rx]:
            s.sock.sendto(hello, call.a)
            n += 1
        for _ in range(10):
            raw.udp((t.ATTACKER, random.randrange(1024, 65535)), call.a, hello)
            n += 1
    t.settle(0.5)
    replies = sum(len(s.since(m)) for s, m in zip(socks + [atk_rx], marks))
    b.check()
    hs = b.handshake()
    # and after the browser's check: the attacker's hellos still go unanswered
    m2 = atk_rx.mark()
    for _ in range(20):
        atk.sendto(hello, call.a)
    t.settle(0.3)
    replies2 = len(atk_rx.since(m2))
    up_ = browser_to_phone(t, lab, b, 100) if hs else 0
    down, _ = phone_to_browser(t, lab, call, b, 100) if hs else (0, None)
    rss2 = t.proc_kb("VmRSS")
    t.sub("k3 %d ClientHellos from 211 unchecked sources at an ICE+DTLS socket: no answer, the browser's "
          "handshake and media unaffected" % n,
          lambda: (replies == 0 and replies2 == 0 and hs and up_ >= 98 and down >= 98,
                   "%d + %d answers to the unchecked sources; browser handshake %s; browser->phone %d/100, "
                   "phone->browser %d/100; relayd RSS %d -> %d kB"
                   % (replies, replies2, "completed" if hs else "FAILED", up_, down, rss1, rss2)))
    for s in socks:
        s.close()

    # ---- k7: what reaches a DTLS socket before its keys, and garbage of every first-byte range
    b2 = w.Browser(t.udp("aC", t.CALLER))
    call2 = webrtc_call(t, lab, "k7", b2)
    b2.check()
    m_b, m_atk, tot0 = b2.rx.mark(), atk_rx.mark(), lab.rx_callee.total
    k = os.urandom(30)
    srtp_first = browser_to_phone(t, lab, b2, 50, rate=1000, keys=k)
    junk = []
    for lo, hi in ((0, 3), (4, 19), (20, 63), (64, 127), (128, 191), (192, 255)):
        for size in (1, 12, 200, 1400, 9000, 65000):
            junk.append(bytes([random.randint(lo, hi)]) + os.urandom(size - 1))
    for d in junk:
        for sender in (b2.sock, atk):
            try:
                sender.sendto(d, call2.a)
                sender.sendto(d, call2.b)
            except OSError:
                pass
    atk.sendto(b"", call2.a)
    t.settle(0.5)
    at_phone = lab.rx_callee.total - tot0
    back = len(b2.rx.since(m_b)) + len(atk_rx.since(m_atk))
    alive = t.relayd_alive()
    hs = b2.handshake()
    up_ = browser_to_phone(t, lab, b2, 100) if hs else 0
    down, _ = phone_to_browser(t, lab, call2, b2, 100) if hs else (0, None)
    t.sub("k7 SRTP before the keys, %d garbage datagrams (first bytes 0..255 by RFC 7983 range, 1 to 65000 bytes)"
          " from the checked browser and the attacker: nothing relayed or answered, the handshake then works"
          % (2 * len(junk)),
          lambda: (srtp_first == 0 and at_phone == 0 and back == 0 and alive and hs and up_ >= 98 and down >= 98,
                   "%d SRTP-before-keys delivered, %d datagrams at the phone, %d answers; relayd %s; handshake %s; "
                   "then browser->phone %d/100, phone->browser %d/100"
                   % (srtp_first, at_phone, back, "alive" if alive else "DEAD", "completed" if hs else "FAILED",
                      up_, down)))
    lab.ng.delete(call2.cid)
    b2.close()

    # ---- k6: a handshake with a certificate other than the one the SDP's fingerprint names
    b3 = w.Browser(t.udp("aC", t.CALLER))
    call3 = webrtc_call(t, lab, "k6", b3)
    b3.check()
    hs = b3.handshake(identity=w.Identity())
    up_ = browser_to_phone(t, lab, b3, 50)
    m_b = b3.rx.mark()
    t.send_paced(lab.callee, call3.b, t.Stream(random.randrange(1 << 30)).take(50), 250)
    t.settle(0.3)
    down = len(b3.rx.since(m_b, "rtp"))
    t.sub("k6 DTLS with a certificate whose fingerprint is not the SDP's: no keys, no media either way",
          lambda: (up_ == 0 and down == 0,
                   "client handshake %s; browser->phone %d/50 delivered, phone->browser %d/50 sent; %s"
                   % ("completed" if hs else "aborted by the relay", up_, down, stats_line(t))))
    lab.ng.delete(call3.cid)
    b3.close()

    # ---- k4: a DTLS socket without ICE (a DTLS-SRTP SIP endpoint): ClientHello flood, amplification
    # (k4c first: without an attacker, such a socket's handshake completes: the control for k4b)
    b4c = w.Browser(t.udp("aC", t.CALLER))
    call4c = webrtc_call(t, lab, "k4c", b4c, TO_DTLS_NO_ICE)
    hs4c = b4c.handshake(timeout=3.0)
    up4c = browser_to_phone(t, lab, b4c, 50) if hs4c else 0
    t.sub("k4c (control) a DTLS socket without ICE, no attacker: the signalled peer's handshake completes",
          lambda: (hs4c and up4c >= 48, "handshake %s, browser->phone %d/50"
                   % ("completed" if hs4c else "NOT completed", up4c)))
    lab.ng.delete(call4c.cid)
    b4c.close()
    b4 = w.Browser(t.udp("aC", t.CALLER))
    call4 = webrtc_call(t, lab, "k4", b4, TO_DTLS_NO_ICE)
    socks = [w.Collector(t.udp("aA", t.ATTACKER)) for _ in range(20)]
    marks = [s.mark() for s in socks]
    sent_bytes = 0
    for _ in range(5):
        for s in socks:
            s.sock.sendto(hello, call4.a)
            sent_bytes += len(hello)
    t.settle(0.5)
    got = [d for s, m in zip(socks, marks) for d, _ in s.since(m)]
    owners = sum(1 for s, m in zip(socks, marks) if s.since(m))
    ratio = sum(len(d) for d in got) / float(sent_bytes)
    t.sub("k4a 100 ClientHellos from 20 attacker ports at a DTLS socket without ICE: one handshake owner, "
          "reply bytes / request bytes < 1",
          lambda: (owners <= 1 and ratio < 1.0,
                   "%d sources answered, %d replies, %d reply bytes for %d request bytes (x%.2f)"
                   % (owners, len(got), sum(len(d) for d in got), sent_bytes, ratio)))
    hs = b4.handshake(timeout=3.0)
    up_ = browser_to_phone(t, lab, b4, 50) if hs else 0
    t.sub("k4b then the signalled peer's own handshake on that socket completes and its media flows",
          lambda: (hs and up_ >= 48,
                   "handshake %s, browser->phone %d/50%s"
                   % ("completed" if hs else "NOT completed", up_,
                      "" if hs else "  ** one unauthenticated ClientHello from any source holds the handshake of a "
                      "DTLS socket without ICE until it times out (DTLS_HANDSHAKE_TIMEOUT_US) **")))
    for s in socks:
        s.close()
    lab.ng.delete(call4.cid)
    b4.close()

    # ---- k9: consent expires (RFC 7675: 30 s after the last check): media towards the browser stops
    wait = checked9 + 31.0 - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    late, _ = phone_to_browser(t, lab, call9, b9, 50)
    m9 = b9.rx.mark()
    t.send_paced(lab.callee, call9.b, t.Stream(random.randrange(1 << 30)).take(20), 250)
    t.settle(0.3)
    sent9 = len(b9.rx.since(m9, "rtp"))
    up9 = browser_to_phone(t, lab, b9, 20)
    b9.check()
    back9, _ = phone_to_browser(t, lab, call9, b9, 50)
    t.sub("k9 31 s without a check: consent expired, no media either way; a new check restores it",
          lambda: (good9 >= 19 and late == 0 and sent9 == 0 and up9 == 0 and back9 >= 48,
                   "before %d/20; after expiry phone->browser %d/50 (+%d), browser->phone %d/20; after a new "
                   "check %d/50" % (good9, late, sent9, up9, back9)))
    lab.ng.delete(call9.cid)
    b9.close()

    rss3 = t.proc_kb("VmRSS")
    t.sub("k8 relayd alive and its memory bounded after check k",
          lambda: (t.relayd_alive() and rss3 - rss0 < 64 * 1024, "RSS %d -> %d kB" % (rss0, rss3)))
    atk_rx.close()
    lab.close()


# ================================================================== check l
def check_l(t):
    """Hostile WebRTC SDP and flags over ng: errors naming the problem, the running call unaffected."""
    lab = t.Lab()
    b, call, _ = up(t, lab, "l-live")
    base_up = browser_to_phone(t, lab, b, 50)
    ident = w.Identity()
    pw = os.urandom(12).hex()

    def offer(sdp, more=None):
        msg = {"command": "offer", "call-id": lab.cid("l-%x" % random.randrange(1 << 30)), "from-tag": "caller",
               "sdp": sdp, "direction": ["pub", "priv"]}
        msg.update(TO_BROWSER)
        msg.update(more or {})
        t0 = time.monotonic()
        r = lab.ng.req(msg, timeout=10)
        r["_secs"] = time.monotonic() - t0
        lab.ng.delete(msg["call-id"])
        return r

    def sdp(**kw):
        args = dict(ip=t.CALLER, port=40000, ufrag="uf%x" % random.randrange(1 << 16), pwd=pw,
                    fingerprint=ident.fingerprint)
        args.update(kw)
        return w.browser_sdp(**args)

    def err(r, *words):
        txt = t.reason(r).lower()
        return r.get("result") == "error" and all(x in txt for x in words)

    cases = [
        ("an a=ice-ufrag of 5000 characters", sdp(ufrag="u" * 5000), None, ("ufrag",)),
        ("an a=ice-pwd of 5000 characters", sdp(pwd="p" * 5000), None, ("pwd",)),
        ("an a=ice-pwd with control bytes", sdp(pwd="pw\x01\x7f" + pw), None, ("pwd",)),
        ("a=fingerprint with non-hex digits", sdp(fingerprint="ZZ:11"), None, ("fingerprint",)),
        ("a=fingerprint cut short", sdp(fingerprint=ident.fingerprint[:20]), None, ("fingerprint",)),
        ("a=fingerprint of 3000 bytes", sdp(fingerprint=":".join(["AB"] * 3000)), None, ("fingerprint",)),
        ("a=fingerprint with an unknown hash", sdp(fingerprint=None, extra=["a=fingerprint:md77 AA:BB",
                                                                            "a=setup:actpass"]), None,
         ("fingerprint",)),
        ("a=setup:bogus", sdp(setup="bogus"), None, ("setup",)),
    ]
    for i, (what, s, more, words) in enumerate(cases):
        r = offer(s, more)
        t.sub("l%d offer with %s: an error naming it" % (i + 1, what),
              lambda r=r, words=words: (err(r, *words), "%s %r (%.2fs)" % (r.get("result"), t.reason(r),
                                                                           r["_secs"])))
    # bounded, whatever the answer: 1000 candidates; rtpp-flags garbage; an unknown DTLS= value
    cands = ["a=candidate:%d 1 udp 2122260223 10.9.%d.%d %d typ host" % (i, i // 250, i % 250 + 1, 10000 + i)
             for i in range(1000)]
    rss0 = t.proc_kb("VmRSS")
    rs = [offer(sdp(candidates=cands)) for _ in range(20)]
    rss1 = t.proc_kb("VmRSS")
    worst = max(r["_secs"] for r in rs)
    big = max(len(r.get("sdp", "")) for r in rs)
    t.sub("l9 20 offers with 1000 a=candidate lines each: answered quickly, reply bounded, memory bounded",
          lambda: (all(r.get("result") in ("ok", "error") for r in rs) and worst < 2.0 and big < 8000
                   and rss1 - rss0 < 32 * 1024,
                   "%s; slowest %.2fs; largest reply SDP %d bytes; RSS %d -> %d kB"
                   % (rs[0].get("result") + (" " + t.reason(rs[0]) if rs[0].get("result") == "error" else ""),
                      worst, big, rss0, rss1)))
    flag_cases = [("rtpp-flags of NULs, 0xff and 3000 x", {"rtpp-flags": "ICE= DTLS=banana \x00\xff" + "x" * 3000}),
                  ("rtpp-flags of 2000 '='", {"rtpp-flags": "=" * 2000}),
                  ("rtpp-flags 'DTLS-fingerprint=md5 transport-protocol=UDP/TLS/RTP/SAVPF ICE=force ICE=remove'",
                   {"rtpp-flags": "DTLS-fingerprint=md5 transport-protocol=UDP/TLS/RTP/SAVPF ICE=force ICE=remove"}),
                  ("DTLS=banana", {"DTLS": "banana"}),
                  ("ICE=banana", {"ICE": "banana"})]
    for j, (what, more) in enumerate(flag_cases):
        r = offer(sdp(), more)
        t.sub("l%d offer with %s: answered (an error names it, or the value is ignored as rtpengine does)"
              % (10 + j, what),
              lambda r=r: (r.get("result") in ("ok", "error") and r["_secs"] < 2.0,
                           "%s %r (%.2fs)" % (r.get("result"), t.reason(r), r["_secs"])))
    after_up = browser_to_phone(t, lab, b, 100)
    after_down, _ = phone_to_browser(t, lab, call, b, 100)
    t.sub("l15 the running WebRTC call is unaffected by the hostile offers",
          lambda: (t.relayd_alive() and after_up >= 98 and after_down >= 98,
                   "browser->phone %d/50 before, %d/100 after; phone->browser %d/100 after"
                   % (base_up, after_up, after_down)))
    lab.ng.delete(call.cid)
    b.close()
    lab.close()
