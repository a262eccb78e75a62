#!/usr/bin/env python3
"""aiortc (a WebRTC stack that is not ours: real ICE, DTLS-SRTP, SRTP) as the browser, the relay under
test in the middle ($RELAY_NG), a plain RTP socket as the SIP phone. Each case checks audio both ways:
the phone receives the browser's PCMU frames byte for byte (after the relay decrypted them) and aiortc
decodes the phone's frames to exactly the samples they carry.

    RELAY_NG=127.0.0.1:2263 tests/webrtc/aiortc_cases.py CASE      (exit 0: passed)
    tests/webrtc/aiortc_cases.py --list
"""
import argparse
import asyncio
import fractions
import logging
import os
import sys
import time

import aioice.ice
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc import rtcdtlstransport
from aiortc.codecs.g711 import PcmuDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpsender import RTCRtpSender
from av import AudioFrame

import common
from common import Call, Phone, SdesKeys, TO_BROWSER, TO_BROWSER_OFFER, TO_PHONE, TO_PHONE_SDES

# aioice leaves loopback out of its host candidates; the relay under test listens on loopback.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [common.LOOPBACK] if use_ipv4 else []

MEDIA_SECONDS = 3.0
MIN_FRAMES = 50  # of the ~150 sent each way in MEDIA_SECONDS; both sides start late by the handshake


def decoded(index, _decoder=PcmuDecoder()):
    """The s16 samples aiortc's PCMU decoder makes of frame `index`'s payload."""
    frames = _decoder.decode(JitterFrame(data=common.payload(index), timestamp=index * 160))
    return b"".join(bytes(f.planes[0])[:f.samples * 2] for f in frames)


class FrameTrack(MediaStreamTrack):
    """Audio whose frame i encodes (PCMU) to exactly common.payload(i)."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.index = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.index * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = AudioFrame(format="s16", layout="mono", samples=160)
        frame.planes[0].update(decoded(self.index))
        frame.sample_rate = 8000
        frame.pts = self.index * 160
        frame.time_base = fractions.Fraction(1, 8000)
        self.index += 1
        return frame


class Browser:
    """aiortc's RTCPeerConnection with one PCMU-only audio transceiver sending FrameTrack."""

    def __init__(self):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.good = set()
        self.bad = 0
        self.reader = None
        self.by_samples = {}
        self.pc.on("track", self._on_track)

    def add_audio(self):
        self.transceiver = self.pc.addTransceiver(FrameTrack(), direction="sendrecv")
        pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
        self.transceiver.setCodecPreferences(pcmu)

    def _on_track(self, track):
        self.reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track):
        while True:
            frame = await track.recv()
            data = bytes(frame.planes[0])[:frame.samples * 2]
            index = self.index_of(data)
            if index is None:
                self.bad += 1
            else:
                self.good.add(index)

    def index_of(self, samples):
        if not self.by_samples:
            self.by_samples = {decoded(i): i for i in range(400)}
        return self.by_samples.get(samples)

    def dtls(self):
        return self.pc.getTransceivers()[0].sender.transport

    def srtp_profile(self):
        ssl = self.dtls()._ssl
        return ssl.get_selected_srtp_profile().decode() if ssl is not None else None

    async def offer(self):
        self.add_audio()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer_to(self, offer_sdp):
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for t in self.pc.getTransceivers():
            t.direction = "sendrecv"
            t.sender.replaceTrack(FrameTrack())
            pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
            t.setCodecPreferences(pcmu)
        self.transceiver = self.pc.getTransceivers()[0]
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def close(self):
        if self.reader:
            self.reader.cancel()
        await self.pc.close()


class ClientHelloSpy:
    """Makes aiortc's DTLS client send its ClientHello in several handshake fragments, one record per
    datagram, and records how it went out. OpenSSL's smallest DTLS MTU (256) is above aiortc's
    148-byte ClientHello, so the hello is first made bigger with more cipher suites (its own four stay
    first, the relay's ECDSA certificate picks among those anyway), as a post-quantum key share makes
    a recent Firefox's hello bigger."""

    def __init__(self, mtu=256):
        self.mtu = mtu
        self.fragments = []   # (fragment_offset, fragment_length, length) of ClientHello fragments
        self.datagrams = 0    # datagrams that carried ClientHello fragments

    def install(self):
        spy = self
        dt = rtcdtlstransport
        make_ctx = dt.RTCCertificate._create_ssl_context

        def big_hello_ctx(cert, srtp_profiles):
            ctx = make_ctx(cert, srtp_profiles)
            ctx.set_cipher_list(b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ALL")
            return ctx

        class SmallMtu(dt.SSL.Connection):
            def __init__(self, ctx, sock=None):
                super().__init__(ctx, sock)
                from OpenSSL._util import lib
                lib.SSL_set_options(self._ssl, lib.SSL_OP_NO_QUERY_MTU)
                if not lib.SSL_set_mtu(self._ssl, spy.mtu):
                    raise RuntimeError("OpenSSL refused DTLS MTU %d" % spy.mtu)

        async def write_ssl(dtls):
            try:
                data = dtls._ssl.bio_read(65535)
            except dt.SSL.Error:
                data = b""
            for record in spy.records(data):
                spy.observe(record)
                await dtls.transport._send(record)

        dt.RTCCertificate._create_ssl_context = big_hello_ctx
        dt.SSL.Connection = SmallMtu
        dt.RTCDtlsTransport._write_ssl = write_ssl

    @staticmethod
    def records(data):
        off = 0
        while off + 13 <= len(data):
            end = off + 13 + int.from_bytes(data[off + 11:off + 13], "big")
            yield data[off:end]
            off = end

    def observe(self, record):
        body = record[13:]
        if record[0] == 22 and len(body) >= 12 and body[0] == 1 and record[3:5] == b"\0\0":
            self.fragments.append((int.from_bytes(body[6:9], "big"), int.from_bytes(body[9:12], "big"),
                                   int.from_bytes(body[1:4], "big")))
            self.datagrams += 1

    def fragmented(self):
        return any(fl < length for _, fl, length in self.fragments)


async def media(browser, phone):
    """Lets both sides send for MEDIA_SECONDS (the phone starts with the call) and returns the verdict."""
    deadline = time.monotonic() + MEDIA_SECONDS + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if len(phone.good) >= MIN_FRAMES * 2 and len(browser.good) >= MIN_FRAMES * 2:
            break
    problems = []
    if len(phone.good) < MIN_FRAMES:
        problems.append("phone got %d of the browser's frames byte for byte (want >= %d)"
                        % (len(phone.good), MIN_FRAMES))
    if phone.bad or phone.undecryptable:
        problems.append("phone got %d RTP packets that are not the browser's frames (pt, length, start: %s), "
                        "%d undecryptable" % (phone.bad, phone.bad_samples, phone.undecryptable))
    if len(browser.good) < MIN_FRAMES:
        problems.append("browser decoded %d of the phone's frames exactly (want >= %d)"
                        % (len(browser.good), MIN_FRAMES))
    if browser.bad:
        problems.append("browser decoded %d frames that are none of the phone's" % browser.bad)
    summary = ("browser->phone %d frames exact, phone->browser %d frames exact (%d other), dtls %s, ice %s"
               % (len(phone.good), len(browser.good), browser.bad, browser.dtls().state,
                  browser.pc.iceConnectionState))
    return problems, summary


async def browser_offers(phone_flags=TO_PHONE, browser_flags=TO_BROWSER, profiles=None, spy=None, sdes=False,
                         ringing=0.0):
    """The browser calls the phone: its offer goes towards the phone with `phone_flags`, the phone's
    answer back towards the browser with `browser_flags`, `ringing` seconds after the offer (a phone
    that rings first: rtpengine 10.5 starts a DTLS client at the offer, its issue #2145)."""
    if profiles is not None:
        rtcdtlstransport.SRTP_PROFILES[:] = [p for p in rtcdtlstransport.SRTP_PROFILES
                                             if p.openssl_profile.decode() in profiles]
    if spy:
        spy.install()
    browser, phone, call = Browser(), Phone(), Call()
    await phone.start()
    try:
        offer = await browser.offer()
        to_phone = call.offer(offer, phone_flags)
        await asyncio.sleep(ringing)
        keys = None
        if sdes:
            keys = SdesKeys()
            relay_crypto = [c for c in common.sdp_attr(to_phone, "crypto") if SdesKeys.SUITE in c]
            if not relay_crypto:
                return ["relay offered no %s to the SDES phone: %s" % (SdesKeys.SUITE, to_phone)], ""
            tag = relay_crypto[0].split()[0]
            phone.tx, phone.rx = keys.sessions(relay_crypto[0])
        elif common.sdp_proto(to_phone) != "RTP/AVP":
            return ["offer towards the phone is %s, not RTP/AVP" % common.sdp_proto(to_phone)], ""
        to_browser = call.answer(common.phone_sdp(phone.port, keys.crypto_line(int(tag)) if keys else None),
                                 browser_flags)
        addr, port = common.media_addr(to_phone)
        phone.send_to(addr, port)
        await browser.pc.setRemoteDescription(RTCSessionDescription(sdp=to_browser, type="answer"))
        problems, summary = await media(browser, phone)
        summary += ", srtp profile %s, relay's a=setup:%s" % (browser.srtp_profile(),
                                                             ",".join(common.sdp_attr(to_browser, "setup")))
        if sdes:
            summary += ", phone SDES %s" % SdesKeys.SUITE
        if profiles is not None and browser.srtp_profile() not in profiles:
            problems.append("negotiated %s, offered only %s" % (browser.srtp_profile(), profiles))
        if spy:
            summary += ", ClientHello fragments %s in %d datagrams" % (
                [(o, ln) for o, ln, _ in spy.fragments], spy.datagrams)
            if not spy.fragmented():
                problems.append("the ClientHello was not fragmented (fragments %r)" % spy.fragments)
        return problems, summary
    finally:
        phone.close()
        await browser.close()
        call.delete()


async def phone_offers(sdes=False):
    """The phone calls the browser: its offer (plain, or SDES-SRTP) goes towards the browser with the
    browser-offer flags (ICE=force DTLS=passive UDP/TLS/RTP/SAVPF), aiortc's answer back towards the
    phone."""
    browser, phone, call = Browser(), Phone(), Call()
    await phone.start()
    keys = SdesKeys() if sdes else None
    try:
        to_browser = call.offer(common.phone_sdp(phone.port, keys.crypto_line() if keys else None),
                                TO_BROWSER_OFFER)
        answer = await browser.answer_to(to_browser)
        to_phone = call.answer(answer, TO_PHONE_SDES if sdes else TO_PHONE)
        want = "RTP/SAVP" if sdes else "RTP/AVP"
        if common.sdp_proto(to_phone) != want:
            return ["answer towards the phone is %s, not %s" % (common.sdp_proto(to_phone), want)], ""
        if keys:
            relay_crypto = [c for c in common.sdp_attr(to_phone, "crypto") if SdesKeys.SUITE in c]
            if not relay_crypto:
                return ["relay answered the SDES phone without %s: %s" % (SdesKeys.SUITE, to_phone)], ""
            phone.tx, phone.rx = keys.sessions(relay_crypto[0])
        addr, port = common.media_addr(to_phone)
        phone.send_to(addr, port)
        problems, summary = await media(browser, phone)
        summary += ", srtp profile %s, relay's offer a=setup:%s, proto %s" % (
            browser.srtp_profile(), ",".join(common.sdp_attr(to_browser, "setup")), common.sdp_proto(to_browser))
        if sdes:
            summary += ", phone SDES %s" % SdesKeys.SUITE
        return problems, summary
    finally:
        phone.close()
        await browser.close()
        call.delete()


CASES = {
    "browser-offers": ("browser calls a plain RTP phone (default SRTP profile choice)", lambda: browser_offers()),
    "browser-offers-ringing": ("the same, the phone answers 3 s after the offer (rtpengine #2145)",
                               lambda: browser_offers(ringing=3.0)),
    "relay-active": ("browser calls, answer towards it without DTLS=passive: the relay is the DTLS client",
                     lambda: browser_offers(browser_flags=TO_BROWSER.replace(" DTLS=passive", ""))),
    "phone-offers": ("plain RTP phone calls the browser (offer ICE=force DTLS=passive UDP/TLS/RTP/SAVPF)",
                     phone_offers),
    "sdes-phone-offers": ("an SDES-SRTP phone calls the browser", lambda: phone_offers(sdes=True)),
    "sdes-phone": ("browser calls an SDES-SRTP phone (AES_CM_128_HMAC_SHA1_80)",
                   lambda: browser_offers(phone_flags=TO_PHONE_SDES, sdes=True)),
    "aes-cm-80": ("DTLS-SRTP with only SRTP_AES128_CM_SHA1_80 offered",
                  lambda: browser_offers(profiles=["SRTP_AES128_CM_SHA1_80"])),
    "aead-aes-128-gcm": ("DTLS-SRTP with only SRTP_AEAD_AES_128_GCM offered",
                         lambda: browser_offers(profiles=["SRTP_AEAD_AES_128_GCM"])),
    "aead-aes-256-gcm": ("DTLS-SRTP with only SRTP_AEAD_AES_256_GCM offered",
                         lambda: browser_offers(profiles=["SRTP_AEAD_AES_256_GCM"])),
    "fragmented-clienthello": ("browser's ClientHello split into handshake fragments over several datagrams",
                               lambda: browser_offers(spy=ClientHelloSpy())),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", nargs="?")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    if args.list or not args.case:
        for name, (what, _) in CASES.items():
            print("%s\t%s" % (name, what))
        return 0
    if os.environ.get("WEBRTC_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    what, run = CASES[args.case]
    try:
        problems, summary = asyncio.run(asyncio.wait_for(run(), args.timeout))
    except asyncio.TimeoutError:
        problems, summary = ["timed out after %ds" % args.timeout], ""
    except Exception as e:  # a failed case says why, it does not end the run of the others
        problems, summary = ["%s: %s" % (type(e).__name__, e)], ""
    print("%s: %s" % (args.case, summary))
    for p in problems:
        print("%s: problem: %s" % (args.case, p))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
