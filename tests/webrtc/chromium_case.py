#!/usr/bin/env python3
"""Headless Chromium (Debian's package) as the browser leg. page.html's RTCPeerConnection, fed by
Chromium's fake audio device, offers; this script's HTTP server sends the offer to the relay under test
($RELAY_NG) with the Kamailio WebRTC flags towards a plain RTP phone (a UDP socket here), answers with the
phone's SDP through the relay, and returns the relay's answer to the page. Passes when the page's own
getStats() shows inbound and outbound RTP and the phone received the browser's audio. Chromium is driven
over the DevTools protocol on a pipe (--remote-debugging-pipe: no websocket library needed).

    RELAY_NG=127.0.0.1:2263 tests/webrtc/chromium_case.py [--screenshot target/webrtc-artifacts/chromium.png]
"""
import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import sys
import tempfile
import time

import common
from common import Call, Phone, TO_BROWSER, TO_PHONE

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    # the relay listens on loopback; Chromium leaves loopback out of its ICE candidates without this
    "--allow-loopback-in-peer-connection",
    "--window-size=900,600", "--remote-debugging-pipe",
]


class Cdp:
    """The DevTools protocol over Chromium's pipe: NUL-terminated JSON, commands on fd 3, replies and
    events on fd 4."""

    def __init__(self, proc, to_chrome, reader):
        self.proc, self.to_chrome, self.reader = proc, to_chrome, reader
        self.ids = itertools.count(1)

    @classmethod
    async def launch(cls, chromium, profile_dir, log):
        cmd_r, cmd_w = os.pipe()
        ev_r, ev_w = os.pipe()
        wrapper = 'exec "$0" "$@" 3<&%d 4>&%d' % (cmd_r, ev_w)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", wrapper, chromium, *CHROMIUM_FLAGS, "--user-data-dir=" + profile_dir, "about:blank",
            pass_fds=(cmd_r, ev_w), stdout=log, stderr=log)
        os.close(cmd_r)
        os.close(ev_w)
        reader = asyncio.StreamReader(limit=64 << 20)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ev_r, "rb"))
        return cls(proc, os.fdopen(cmd_w, "wb", buffering=0), reader)

    async def call(self, method, session=None, **params):
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.to_chrome.write(json.dumps(msg).encode() + b"\0")
        while True:
            reply = json.loads((await self.reader.readuntil(b"\0"))[:-1])
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})

    async def evaluate(self, session, expression):
        r = await self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    async def close(self):
        try:
            await asyncio.wait_for(self.call("Browser.close"), 3)
        except Exception:
            pass
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


class Server:
    """GET / serves page.html; POST /offer takes the browser's offer, makes the call through the relay
    and answers with the relay's SDP for the browser."""

    def __init__(self, phone, offer_flags, ringing):
        self.offer_flags, self.ringing = offer_flags, ringing
        self.phone, self.call, self.offer_sdp, self.answer_sdp, self.error = phone, Call(), None, None, None

    async def handle(self, reader, writer):
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()  # a speculative connection the browser opened and never used
            return
        try:
            method, path = head.split()[:2]
            length = 0
            for line in head.split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":")[1])
            body = (await reader.readexactly(length)).decode() if length else ""
            if method == "GET" and path == "/":
                status, ctype, out = 200, "text/html; charset=utf-8", open(os.path.join(HERE, "page.html"), "rb").read()
            elif method == "POST" and path == "/offer":
                status, ctype, out = 200, "application/sdp", (await self.make_call(body)).encode()
            else:
                status, ctype, out = 404, "text/plain", b"not found"
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)
            status, ctype, out = 500, "text/plain", self.error.encode()
        writer.write(b"HTTP/1.1 %d x\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % (status, ctype.encode(), len(out)) + out)
        await writer.drain()
        writer.close()

    async def make_call(self, offer):
        self.offer_sdp = offer
        to_phone = self.call.offer(offer, self.offer_flags)
        await asyncio.sleep(self.ringing)  # the phone rings before it answers
        self.answer_sdp = self.call.answer(common.phone_sdp(self.phone.port), TO_BROWSER)
        addr, port = common.media_addr(to_phone)
        self.phone.send_to(addr, port, frames=1500)
        return self.answer_sdp


async def run(args):
    phone = Phone()
    await phone.start()
    server = Server(phone, TO_PHONE + (" " + args.extra_offer_flags if args.extra_offer_flags else ""), args.ringing)
    http = await asyncio.start_server(server.handle, common.LOOPBACK, 0)
    port = http.sockets[0].getsockname()[1]
    profile = tempfile.mkdtemp(prefix="relay-chromium-")
    log = open(args.log, "wb") if args.log else asyncio.subprocess.DEVNULL
    cdp = await Cdp.launch(args.chromium, profile, log)
    problems, state = [], {}
    try:
        target = await cdp.call("Target.createTarget", url="http://%s:%d/" % (common.LOOPBACK, port))
        session = (await cdp.call("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            state = await cdp.evaluate(session, "JSON.stringify(window.webrtcTest || {})")
            state = json.loads(state or "{}")
            if state.get("error") or server.error:
                break
            if state.get("inbound", 0) > 0 and state.get("outbound", 0) > 0 and phone.received >= 25:
                await asyncio.sleep(1.0)  # let the page show a later getStats() for the screenshot
                state = json.loads(await cdp.evaluate(session, "JSON.stringify(window.webrtcTest)"))
                break
        if args.screenshot:
            shot = await cdp.call("Page.captureScreenshot", session, format="png")
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
    finally:
        await cdp.close()
        phone.close()
        http.close()
        server.call.delete()
        shutil.rmtree(profile, ignore_errors=True)
    if server.error:
        problems.append("server: " + server.error)
    if state.get("error"):
        problems.append("page: " + state["error"])
    if not state.get("outbound"):
        problems.append("getStats(): no outbound RTP")
    if not state.get("inbound"):
        problems.append("getStats(): no inbound RTP")
    if phone.received < 25:
        problems.append("phone received %d RTP packets from the browser (want >= 25)" % phone.received)
    summary = ("getStats outbound %s inbound %s packets, ice %s, dtls %s, codec %s; phone received %d RTP "
               "(PCMU frames %d), relay's a=setup:%s" % (
                   state.get("outbound"), state.get("inbound"), state.get("ice"), state.get("dtls"),
                   state.get("codec"), phone.received, phone.received - phone.other,
                   ",".join(common.sdp_attr(server.answer_sdp or "", "setup"))))
    return problems, summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--screenshot", default=os.path.join(common.ROOT, "target", "webrtc-artifacts", "chromium.png"))
    ap.add_argument("--log", help="Chromium's own output goes here")
    ap.add_argument("--timeout", type=float, default=25)
    ap.add_argument("--ringing", type=float, default=2.0,
                    help="seconds between the offer and the phone's answer, as a phone rings")
    ap.add_argument("--extra-offer-flags", default="",
                    help="added to the offer's flags, e.g. DTLS-reverse=passive (the #2145 workaround)")
    args = ap.parse_args()
    try:
        problems, summary = asyncio.run(asyncio.wait_for(run(args), args.timeout + 15))
    except Exception as e:
        problems, summary = ["%s: %s" % (type(e).__name__, e)], ""
    print("chromium: %s" % summary)
    for p in problems:
        print("chromium: problem: %s" % p)
    if args.screenshot and os.path.exists(args.screenshot):
        print("chromium: screenshot %s" % args.screenshot)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
