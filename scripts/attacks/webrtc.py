"""Hand-built WebRTC inputs for the attack suite (check k): STUN binding requests (RFC 8489 with
the short-term credentials of RFC 8445), browser-like SDP, DTLS ClientHellos and a DTLS client
(pyOpenSSL over memory BIOs, as aiortc uses it) for an attacker who wants to see what relayd's ICE-lite
agent and DTLS server do with them. Nothing here talks ng: attacks.py does.
"""
import datetime
import hashlib
import hmac
import os
import re
import struct
import zlib

MAGIC = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
ICE_CONTROLLING = 0x802A
FINGERPRINT = 0x8028


def _attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def stun_request(username=None, pwd=None, txid=None, use_candidate=False, integrity=True, fingerprint=True,
                 bad_integrity=False, method=BINDING_REQUEST, extra=b""):
    """A binding request as a browser sends it: USERNAME, PRIORITY, ICE-CONTROLLING, [USE-CANDIDATE],
    MESSAGE-INTEGRITY keyed with `pwd`, FINGERPRINT. Flags leave parts out or break them."""
    txid = txid or os.urandom(12)
    body = b""
    if username is not None:
        body += _attr(USERNAME, username.encode() if isinstance(username, str) else username)
    body += _attr(PRIORITY, struct.pack("!I", 0x6E7F1EFF))
    body += _attr(ICE_CONTROLLING, os.urandom(8))
    if use_candidate:
        body += _attr(USE_CANDIDATE, b"")
    body += extra

    def header(length):
        return struct.pack("!HHI", method, length, MAGIC) + txid

    if integrity:
        key = (pwd or "").encode()
        mac = hmac.new(key, header(len(body) + 24) + body, hashlib.sha1).digest()
        if bad_integrity:
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        body += _attr(MESSAGE_INTEGRITY, mac)
    if fingerprint:
        crc = (zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += _attr(FINGERPRINT, struct.pack("!I", crc))
    return header(len(body)) + body


def is_stun(data):
    return len(data) >= 20 and data[0] < 4 and struct.unpack("!I", data[4:8])[0] == MAGIC


def stun_class(data):
    """'success', 'error', 'request', 'indication' of a STUN message."""
    t = struct.unpack("!H", data[:2])[0]
    return {0x0000: "request", 0x0010: "indication", 0x0100: "success", 0x0110: "error"}[t & 0x0110]


# ------------------------------------------------------------------ certificates and DTLS
class Identity:
    """A self-signed ECDSA P-256 certificate as a browser makes one, and its SDP fingerprint."""

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, os.urandom(8).hex())])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30)).sign(self.key, hashes.SHA256()))
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.fingerprint = ":".join("%02X" % b for b in hashlib.sha256(der).digest())


class DtlsClient:
    """An OpenSSL DTLS client over memory BIOs with use_srtp (what aiortc does). `feed` takes
    datagrams from the relay, `flights` returns what to send; `keys` the exported SRTP material."""

    PROFILE = b"SRTP_AES128_CM_SHA1_80"

    def __init__(self, identity, mtu=1200):
        from OpenSSL import SSL, crypto
        self.SSL = SSL
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.use_certificate(crypto.X509.from_cryptography(identity.cert))
        ctx.use_privatekey(crypto.PKey.from_cryptography_key(identity.key))
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
        ctx.set_tlsext_use_srtp(self.PROFILE)
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_connect_state()
        self.done = False
        self.peer_fingerprint = None
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            pass

    def flights(self):
        out = []
        while True:
            try:
                data = self.conn.bio_read(65535)
            except self.SSL.WantReadError:
                break
            if not data:
                break
            out.extend(split_records(data))
        return out

    def feed(self, datagram):
        self.conn.bio_write(datagram)
        try:
            self.conn.do_handshake()
            self.done = True
            cert = self.conn.get_peer_certificate()
            if cert is not None:
                self.peer_fingerprint = cert.digest("sha256").decode()
        except self.SSL.WantReadError:
            pass

    def srtp_keys(self):
        """(our key+salt, the relay's key+salt) for AES_CM_128_HMAC_SHA1_80 (RFC 5764 §4.2)."""
        m = self.conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (16 + 14))
        ck, sk, cs, ss = m[:16], m[16:32], m[32:46], m[46:60]
        return ck + cs, sk + ss


def split_records(data):
    """The DTLS records of a flight, one per datagram would be possible; kept together per flight."""
    return [data] if data else []


def client_hello():
    """A real ClientHello from a fresh OpenSSL DTLS client (its own certificate)."""
    return b"".join(DtlsClient(Identity()).flights())


def dtls_records(data):
    """(content type, length) of each record in a datagram."""
    out = []
    off = 0
    while off + 13 <= len(data):
        n = struct.unpack("!H", data[off + 11:off + 13])[0]
        out.append((data[off], n))
        off += 13 + n
    return out


# ------------------------------------------------------------------ SDP
def browser_sdp(ip, port, ufrag, pwd, fingerprint=None, proto="UDP/TLS/RTP/SAVPF", candidates=None,
                setup="actpass", extra=()):
    """A browser's audio offer: ICE credentials, one host candidate, DTLS fingerprint and setup."""
    lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0", "a=msid-semantic: WMS",
             "m=audio %d %s 0" % (port, proto), "c=IN IP4 %s" % ip, "a=rtcp:9 IN IP4 0.0.0.0",
             "a=ice-ufrag:%s" % ufrag, "a=ice-pwd:%s" % pwd, "a=ice-options:trickle"]
    if fingerprint:
        lines += ["a=fingerprint:sha-256 %s" % fingerprint, "a=setup:%s" % setup]
    lines += ["a=mid:0", "a=sendrecv", "a=rtcp-mux", "a=rtpmap:0 PCMU/8000"]
    if candidates is None:
        candidates = ["a=candidate:1 1 udp 2122260223 %s %d typ host generation 0" % (ip, port)]
    lines += list(candidates) + list(extra)
    return "\r\n".join(lines) + "\r\n"


def sdp_one(sdp, name):
    m = re.search(r"^a=%s:(.*?)\r?$" % re.escape(name), sdp, re.M)
    return m.group(1).strip() if m else None


# ------------------------------------------------------------------ the two ends of a WebRTC call
class Collector:
    """Everything a socket receives, kept (data, source) in order, read by a thread."""

    def __init__(self, sock):
        import threading
        self.sock = sock
        self.got = []
        self.stop = False
        sock.settimeout(0.05)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        import socket
        while not self.stop:
            try:
                self.got.append(self.sock.recvfrom(65535))
            except socket.timeout:
                continue
            except OSError:
                return

    def mark(self):
        return len(self.got)

    def since(self, mark, kind=None):
        """Datagrams received after `mark`; kind 'stun', 'dtls', 'rtp' filters by first byte (RFC 7983)."""
        out = self.got[mark:]
        if kind:
            out = [(d, s) for d, s in out if first_byte_class(d) == kind]
        return out

    def wait(self, mark, kind, timeout=1.0):
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.since(mark, kind)
            if got:
                return got
            time.sleep(0.01)
        return []

    def close(self):
        self.stop = True
        self.t.join(1)


def first_byte_class(d):
    if not d:
        return "other"
    b = d[0]
    return "stun" if b < 4 else "dtls" if 20 <= b < 64 else "rtp" if 128 <= b < 192 else "other"


class Browser:
    """The WebRTC end, by hand: ICE credentials, a certificate (the one it advertises; `handshake_with`
    can present another), checks it sends and a DTLS client."""

    def __init__(self, sock, identity=None):
        self.sock = sock
        self.rx = Collector(sock)
        self.ident = identity or Identity()
        self.ufrag = os.urandom(4).hex()
        self.pwd = os.urandom(12).hex()
        self.relay = None
        self.relay_ufrag = self.relay_pwd = None
        self.keys = None

    def sdp(self, **kw):
        ip, port = self.sock.getsockname()
        return browser_sdp(ip, port, self.ufrag, self.pwd, self.ident.fingerprint, **kw)

    def learn(self, answer_sdp, relay_ip):
        port = int(re.search(r"^m=audio (\d+)", answer_sdp, re.M).group(1))
        self.relay = (relay_ip, port)
        self.relay_ufrag, self.relay_pwd = sdp_one(answer_sdp, "ice-ufrag"), sdp_one(answer_sdp, "ice-pwd")
        self.relay_fingerprint = sdp_one(answer_sdp, "fingerprint")

    def check_bytes(self, use_candidate=True, **kw):
        return stun_request("%s:%s" % (self.relay_ufrag, self.ufrag), self.relay_pwd, use_candidate=use_candidate,
                            **kw)

    def check(self, use_candidate=True):
        """Sends a check; (the request, the reply or None)."""
        req = self.check_bytes(use_candidate)
        m = self.rx.mark()
        self.sock.sendto(req, self.relay)
        got = [d for d, _ in self.rx.wait(m, "stun", 1.0) if d[8:20] == req[8:20]]
        return req, (got[0] if got else None)

    def handshake(self, identity=None, timeout=4.0):
        """A DTLS client handshake with the relay; True when OpenSSL finished it. Keys in self.keys."""
        import time
        c = DtlsClient(identity or self.ident)
        m = self.rx.mark()
        for f in c.flights():
            self.sock.sendto(f, self.relay)
        end = time.monotonic() + timeout
        while time.monotonic() < end and not c.done:
            new = self.rx.got[m:]
            m += len(new)
            got = [(d, s) for d, s in new if first_byte_class(d) == "dtls"]
            if not got:
                time.sleep(0.01)
                continue
            for d, _ in got:
                c.feed(d)
            for f in c.flights():
                self.sock.sendto(f, self.relay)
        if c.done:
            self.keys = c.srtp_keys()
            self.peer_fingerprint = c.peer_fingerprint
        return c.done

    def close(self):
        self.rx.close()
