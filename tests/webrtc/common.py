"""Shared parts of the real-peer WebRTC tests: the ng client, Kamailio's flag strings turned into ng
dictionaries the way Kamailio's rtpengine module does it, the plain-RTP "SIP phone" endpoint and the
recognisable audio payloads both sides check byte for byte.

The relay under test listens for ng on $RELAY_NG (scripts/webrtc-test.sh starts it); nothing here knows
whether it is relayd or rtpengine.
"""
import asyncio
import base64
import os
import random
import re
import socket
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "conformance"))
from ngclient import NgClient  # noqa: E402

LOOPBACK = "127.0.0.1"

# The two flag strings of the most copied Kamailio WebRTC-to-SIP config, verbatim: towards the SIP phone
# (plain RTP, no ICE, no DTLS) and towards the browser (ICE, DTLS with the relay as server, rtcp-mux).
TO_PHONE = "trust-address replace-origin replace-session-connection rtcp-mux-demux ICE=remove DTLS=off RTP/AVP"
TO_BROWSER = ("trust-address replace-origin replace-session-connection rtcp-mux-offer generate-mid "
              "ICE=force DTLS=passive SDES-off RTP/SAVPF")
# The browser leg when the phone calls the browser: the profile browsers expect in an offer.
TO_BROWSER_OFFER = TO_BROWSER.replace("RTP/SAVPF", "UDP/TLS/RTP/SAVPF")
# An SDES-SRTP phone instead of a plain one.
TO_PHONE_SDES = TO_PHONE.replace("RTP/AVP", "RTP/SAVP")

_TRANSPORTS = {"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"}
_PREFIX_LISTS = {"replace-": "replace", "rtcp-mux-": "rtcp-mux", "SDES-": "SDES"}


def kamailio_flags(flags):
    """A Kamailio rtpengine_offer()/rtpengine_answer() flag string as the module sends it over ng."""
    ng = {}
    for word in flags.split():
        if word in _TRANSPORTS:
            ng["transport-protocol"] = word
            continue
        if "=" in word:
            key, _, value = word.partition("=")
            ng[key] = value
            continue
        for prefix, key in _PREFIX_LISTS.items():
            if word.startswith(prefix):
                ng.setdefault(key, []).append(word[len(prefix):])
                break
        else:
            ng.setdefault("flags", []).append(word)
    return ng


class Call:
    """One call through the relay: offer, answer, delete with fresh call-id and tags."""

    def __init__(self, ng_addr=None):
        self.ng = NgClient(ng_addr or os.environ.get("RELAY_NG", "127.0.0.1:2263"), timeout=3.0)
        self.call_id = "webrtc-%s" % os.urandom(6).hex()
        self.from_tag = "ft-%s" % os.urandom(4).hex()
        self.to_tag = "tt-%s" % os.urandom(4).hex()

    def _cmd(self, command, sdp, flags, **extra):
        msg = {"command": command, "call-id": self.call_id, "from-tag": self.from_tag, "sdp": sdp}
        msg.update(kamailio_flags(flags))
        msg.update(extra)
        reply = self.ng.request(msg)
        if reply.get("result") != "ok":
            raise RuntimeError("%s failed: %r" % (command, reply))
        return reply["sdp"]

    def offer(self, sdp, flags):
        return self._cmd("offer", sdp, flags)

    def answer(self, sdp, flags):
        return self._cmd("answer", sdp, flags, **{"to-tag": self.to_tag})

    def delete(self):
        try:
            self.ng.request({"command": "delete", "call-id": self.call_id, "from-tag": self.from_tag})
        except Exception:
            pass


# ---------------------------------------------------------------- SDP

def media_addr(sdp):
    """(address, port) of the first audio stream: media-level c= over session-level c=."""
    addr, port, in_media = None, None, False
    for line in sdp.splitlines():
        if line.startswith("m=audio"):
            port, in_media = int(line.split()[1]), True
        elif line.startswith("m="):
            in_media = False
        elif line.startswith("c=") and (in_media or port is None):
            addr = line.split()[-1]
    return addr, port


def sdp_attr(sdp, name):
    return [m.group(1) for m in re.finditer(r"^a=%s:(.*?)\r?$" % re.escape(name), sdp, re.M)]


def sdp_proto(sdp):
    m = re.search(r"^m=audio \d+ (\S+)", sdp, re.M)
    return m.group(1) if m else None


def phone_sdp(port, crypto=None):
    """The SIP phone's SDP: one PCMU stream, plain RTP/AVP or (with an a=crypto value) RTP/SAVP."""
    lines = ["v=0", "o=phone 1 1 IN IP4 %s" % LOOPBACK, "s=phone", "c=IN IP4 %s" % LOOPBACK, "t=0 0",
             "m=audio %d RTP/%s 0" % (port, "SAVP" if crypto else "AVP"), "a=rtpmap:0 PCMU/8000"]
    if crypto:
        lines.append("a=crypto:%s" % crypto)
    lines += ["a=sendrecv", ""]
    return "\r\n".join(lines)


# ---------------------------------------------------------------- payloads

FRAME_SAMPLES = 160  # 20 ms of PCMU


def payload(index):
    """The 160 PCMU bytes of frame `index`: a marker, the index in base 127, then a pattern derived from
    it. The byte 0x7f (negative zero) never occurs, so that decode then encode gives the same bytes."""
    rnd = random.Random(index)
    body = bytes(rnd.choice(_ULAW_OK) for _ in range(FRAME_SAMPLES - 4))
    return bytes([0xA5, 0x5A, index // 127, index % 127]) + body


_ULAW_OK = [b for b in range(256) if b != 0x7F]


def payload_index(data):
    """The frame index a received payload claims, if it is exactly that frame's bytes; else None."""
    if len(data) != FRAME_SAMPLES or data[:2] != b"\xa5\x5a":
        return None
    index = data[2] * 127 + data[3]
    return index if payload(index) == data else None


# ---------------------------------------------------------------- RTP

def rtp_packet(seq, ts, ssrc, body, pt=0, marker=False):
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + body


def rtp_parse(data):
    """(payload type, seq, ssrc, payload) of an RTP packet without extensions or CSRCs handled fully."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    cc = data[0] & 0x0F
    off = 12 + 4 * cc
    if data[0] & 0x10:
        if len(data) < off + 4:
            return None
        off += 4 + 4 * struct.unpack("!H", data[off + 2:off + 4])[0]
    end = len(data)
    if data[0] & 0x20:
        end -= data[-1]
    pt = data[1] & 0x7F
    seq, _, ssrc = struct.unpack("!HII", data[2:12])
    return pt, seq, ssrc, data[off:end]


class SdesKeys:
    """The phone's SDES-SRTP: AES_CM_128_HMAC_SHA1_80 with libsrtp (pylibsrtp, aiortc's own binding)."""

    SUITE = "AES_CM_128_HMAC_SHA1_80"

    def __init__(self):
        self.local = os.urandom(30)

    def crypto_line(self, tag=1):
        return "%d %s inline:%s" % (tag, self.SUITE, base64.b64encode(self.local).decode())

    def sessions(self, remote_crypto):
        from pylibsrtp import Policy, Session
        remote = base64.b64decode(remote_crypto.split("inline:")[1].split("|")[0].split()[0])
        tx = Policy(key=self.local, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        rx = Policy(key=remote, ssrc_type=Policy.SSRC_ANY_INBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        return Session(tx), Session(rx)


class Phone(asyncio.DatagramProtocol):
    """The SIP phone: a UDP socket on loopback that sends PCMU frames every 20 ms to the relay and keeps
    what it receives. With SDES sessions it protects what it sends and unprotects what it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.peer = None
        self.ssrc = random.getrandbits(32)
        self.tx = self.rx = None
        self.sent = 0
        self.received = 0
        self.good = set()      # frame indexes received byte for byte
        self.bad = 0           # RTP that is not one of the browser's frames
        self.bad_samples = []  # (payload type, length, first bytes) of the first few of those
        self.undecryptable = 0
        self.other = 0         # non-RTP (RTCP, STUN, ...)
        self.transport = None
        self._task = None

    async def start(self):
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=self.sock)

    def datagram_received(self, data, addr):
        if len(data) < 2 or not 128 <= data[0] <= 191 or 192 <= data[1] <= 223:
            self.other += 1
            return
        if self.rx is not None:
            try:
                data = self.rx.unprotect(data)
            except Exception:
                self.undecryptable += 1
                return
        parsed = rtp_parse(data)
        if parsed is None:
            self.other += 1
            return
        self.received += 1
        pt, _, _, body = parsed
        index = payload_index(body) if pt == 0 else None
        if index is None:
            self.bad += 1
            if len(self.bad_samples) < 3:
                self.bad_samples.append((pt, len(body), body[:8].hex()))
        else:
            self.good.add(index)

    def send_to(self, addr, port, frames=150):
        self.peer = (addr, port)
        self._task = asyncio.ensure_future(self._send_loop(frames))

    async def _send_loop(self, frames):
        for i in range(frames):
            pkt = rtp_packet(1000 + i, 8000 + i * FRAME_SAMPLES, self.ssrc, payload(i), marker=(i == 0))
            if self.tx is not None:
                pkt = self.tx.protect(pkt)
            self.transport.sendto(pkt, self.peer)
            self.sent += 1
            await asyncio.sleep(0.02)

    def close(self):
        if self._task:
            self._task.cancel()
        if self.transport:
            self.transport.close()
