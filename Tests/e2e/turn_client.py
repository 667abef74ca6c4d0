"""A small STUN/TURN client for the TURN e2e tests (RFC 8489 STUN, RFC 8656 TURN, RFC 7635's REST
credentials as coturn and browsers use them).

It is deliberately explicit rather than clever: tests build exactly the messages they want
(including wrong ones) and look at every attribute of what comes back.

- ``Message``: encode/decode, MESSAGE-INTEGRITY (HMAC-SHA1) and MESSAGE-INTEGRITY-SHA256,
  FINGERPRINT (CRC-32 xor 0x5354554e), XOR addresses for IPv4 and IPv6.
- ``TurnClient``: one 5-tuple (a UDP socket, or a TCP/TLS connection with RFC 8656 §12.5 framing),
  long-term authentication (unauthenticated request → 401 with REALM and NONCE → signed retry;
  438 Stale Nonce → retry with the new nonce), Allocate / Refresh / CreatePermission / ChannelBind,
  Send indications and ChannelData, and a receive loop that sorts Data indications and ChannelData
  from responses. By default it authenticates as browsers do (RFC 5389: MD5 key
  MD5(user:realm:password), MESSAGE-INTEGRITY). With ``rfc8489=True`` it follows RFC 8489 §9.2.5:
  it reads the nonce cookie's security features, echoes PASSWORD-ALGORITHMS, picks the first
  algorithm it supports (SHA-256 key SHA-256(user:OpaqueString(realm):OpaqueString(password))),
  signs with MESSAGE-INTEGRITY-SHA256 and sends USERHASH instead of USERNAME when the server asks
  for username anonymity (or when told to).
- ``rest_credentials``: TURN REST ephemeral credentials, username "<unix expiry>:<user>",
  password base64(HMAC-SHA1(secret, username)).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import select
import socket
import ssl
import struct
import time
import unicodedata
import zlib
from dataclasses import dataclass, field

from ports import free_udp_port

MAGIC = 0x2112A442
MAGIC_BYTES = struct.pack("!I", MAGIC)

# Methods
BINDING = 0x001
ALLOCATE = 0x003
REFRESH = 0x004
SEND = 0x006
DATA = 0x007
CREATE_PERMISSION = 0x008
CHANNEL_BIND = 0x009
CONNECT = 0x00A             # RFC 6062
CONNECTION_BIND = 0x00B
CONNECTION_ATTEMPT = 0x00C

# Classes
REQUEST = 0b00
INDICATION = 0b01
SUCCESS = 0b10
ERROR = 0b11

# Attributes
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
XOR_PEER_ADDRESS = 0x0012
DATA_ATTR = 0x0013
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_ADDRESS_FAMILY = 0x0017
EVEN_PORT = 0x0018
REQUESTED_TRANSPORT = 0x0019
DONT_FRAGMENT = 0x001A
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
USERHASH = 0x001E
XOR_MAPPED_ADDRESS = 0x0020
RESERVATION_TOKEN = 0x0022
CONNECTION_ID = 0x002A
ADDITIONAL_ADDRESS_FAMILY = 0x8000
ADDRESS_ERROR_CODE = 0x8001
PASSWORD_ALGORITHMS = 0x8002
SOFTWARE = 0x8022
FINGERPRINT = 0x8028

UDP_TRANSPORT = 17
TCP_TRANSPORT = 6

# RFC 8489 password algorithms (§18.5) and the nonce cookie's security features (§9.2, §18.1).
# Bit 0 is the least significant of the 24 bits (verified erratum 6290).
MD5 = 0x0001
SHA256 = 0x0002
NONCE_COOKIE = b"obMatJos2"
FEATURE_PASSWORD_ALGORITHMS = 1 << 0
FEATURE_USERNAME_ANONYMITY = 1 << 1

ATTRIBUTE_NAMES = {value: name for name, value in (
    ("MAPPED_ADDRESS", MAPPED_ADDRESS), ("USERNAME", USERNAME), ("MESSAGE_INTEGRITY", MESSAGE_INTEGRITY),
    ("ERROR_CODE", ERROR_CODE), ("UNKNOWN_ATTRIBUTES", UNKNOWN_ATTRIBUTES),
    ("CHANNEL_NUMBER", CHANNEL_NUMBER), ("LIFETIME", LIFETIME), ("XOR_PEER_ADDRESS", XOR_PEER_ADDRESS),
    ("DATA_ATTR", DATA_ATTR), ("REALM", REALM), ("NONCE", NONCE),
    ("XOR_RELAYED_ADDRESS", XOR_RELAYED_ADDRESS), ("REQUESTED_ADDRESS_FAMILY", REQUESTED_ADDRESS_FAMILY),
    ("EVEN_PORT", EVEN_PORT), ("REQUESTED_TRANSPORT", REQUESTED_TRANSPORT), ("DONT_FRAGMENT", DONT_FRAGMENT),
    ("XOR_MAPPED_ADDRESS", XOR_MAPPED_ADDRESS), ("RESERVATION_TOKEN", RESERVATION_TOKEN),
    ("MESSAGE_INTEGRITY_SHA256", MESSAGE_INTEGRITY_SHA256), ("PASSWORD_ALGORITHM", PASSWORD_ALGORITHM),
    ("USERHASH", USERHASH), ("PASSWORD_ALGORITHMS", PASSWORD_ALGORITHMS), ("CONNECTION_ID", CONNECTION_ID),
    ("ADDITIONAL_ADDRESS_FAMILY", ADDITIONAL_ADDRESS_FAMILY), ("ADDRESS_ERROR_CODE", ADDRESS_ERROR_CODE),
    ("SOFTWARE", SOFTWARE), ("FINGERPRINT", FINGERPRINT),
)}
METHOD_NAMES = {BINDING: "Binding", ALLOCATE: "Allocate", REFRESH: "Refresh", SEND: "Send", DATA: "Data",
                CREATE_PERMISSION: "CreatePermission", CHANNEL_BIND: "ChannelBind", CONNECT: "Connect",
                CONNECTION_BIND: "ConnectionBind", CONNECTION_ATTEMPT: "ConnectionAttempt"}
CLASS_NAMES = {REQUEST: "request", INDICATION: "indication", SUCCESS: "success", ERROR: "error"}


class StunError(Exception):
    """A datagram or stream that is not a well-formed STUN message."""


def message_type(method: int, cls: int) -> int:
    return ((method & 0xF80) << 2) | ((method & 0x070) << 1) | (method & 0x00F) | \
           ((cls & 0b10) << 7) | ((cls & 0b01) << 4)


def split_type(t: int) -> tuple[int, int]:
    method = ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F)
    cls = ((t & 0x0100) >> 7) | ((t & 0x0010) >> 4)
    return method, cls


def long_term_key(username: str, realm: str, password: str, algorithm: int = MD5) -> bytes:
    """The long-term key (RFC 8489 §9.2.2, §18.5.1): MD5 of the strings as they are (what browsers
    do), or SHA-256 with OpaqueString applied to the realm and the password."""
    if algorithm == SHA256:
        return hashlib.sha256(f"{username}:{opaque_string(realm)}:{opaque_string(password)}".encode()).digest()
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()


def opaque_string(text: str) -> str:
    """RFC 8265's OpaqueString, as far as the tests need it: non-ASCII spaces become U+0020, then NFC."""
    return unicodedata.normalize("NFC", "".join(" " if unicodedata.category(c) == "Zs" else c for c in text))


def userhash(username: str, realm: str) -> bytes:
    """USERHASH (RFC 8489 §14.4): SHA-256(OpaqueString(username) ":" OpaqueString(realm))."""
    return hashlib.sha256(f"{opaque_string(username)}:{opaque_string(realm)}".encode()).digest()


def nonce_features(nonce: bytes | None) -> int | None:
    """The 24 security-feature bits of a nonce that starts with the RFC 8489 cookie, else None."""
    if not nonce or len(nonce) < 13 or not nonce.startswith(NONCE_COOKIE):
        return None
    try:
        return int.from_bytes(base64.b64decode(nonce[9:13], validate=True), "big")
    except ValueError:
        return None


def password_algorithms(value: bytes) -> list[int]:
    """The algorithm numbers of a PASSWORD-ALGORITHMS value (each: number, parameter length, parameters)."""
    out, pos = [], 0
    while pos + 4 <= len(value):
        number, length = struct.unpack("!HH", value[pos:pos + 4])
        out.append(number)
        pos += 4 + length + _pad(length)
    return out


def rest_credentials(secret: str, user: str, ttl: int = 86400, now: float | None = None) -> tuple[str, str]:
    """TURN REST credentials: ("<expiry>:<user>", base64(HMAC-SHA1(secret, username)))."""
    expiry = int((now if now is not None else time.time()) + ttl)
    username = f"{expiry}:{user}"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def xor_address(ip: str, port: int, tid: bytes) -> bytes:
    """XOR-MAPPED/PEER/RELAYED-ADDRESS value; an IPv6 text (also ::ffff:a.b.c.d) gives family 0x02."""
    addr = ipaddress.ip_address(ip)
    xport = port ^ (MAGIC >> 16)
    if addr.version == 4:
        x = int(addr) ^ MAGIC
        return struct.pack("!BBHI", 0, 1, xport, x)
    mask = int.from_bytes(MAGIC_BYTES + tid, "big")
    return struct.pack("!BBH", 0, 2, xport) + (int(addr) ^ mask).to_bytes(16, "big")


def parse_xor_address(value: bytes, tid: bytes) -> tuple[str, int]:
    if len(value) < 8:
        raise StunError(f"address attribute of {len(value)} bytes")
    family, xport = value[1], struct.unpack("!H", value[2:4])[0]
    port = xport ^ (MAGIC >> 16)
    if family == 1 and len(value) == 8:
        return str(ipaddress.IPv4Address(struct.unpack("!I", value[4:8])[0] ^ MAGIC)), port
    if family == 2 and len(value) == 20:
        mask = int.from_bytes(MAGIC_BYTES + tid, "big")
        return str(ipaddress.IPv6Address(int.from_bytes(value[4:20], "big") ^ mask)), port
    raise StunError(f"address family {family} with {len(value)} bytes")


def parse_address(value: bytes) -> tuple[str, int]:
    family, port = value[1], struct.unpack("!H", value[2:4])[0]
    if family == 1:
        return socket.inet_ntoa(value[4:8]), port
    return str(ipaddress.IPv6Address(value[4:20])), port


@dataclass
class Message:
    method: int
    cls: int = REQUEST
    tid: bytes = field(default_factory=lambda: os.urandom(12))
    attrs: list[tuple[int, bytes]] = field(default_factory=list)
    raw: bytes = b""                 # as received (decode) or as last encoded
    integrity_offset: int | None = None
    integrity_sha256_offset: int | None = None
    fingerprint_ok: bool | None = None

    # ---- building -----------------------------------------------------------------------------
    def add(self, attr_type: int, value: bytes) -> "Message":
        self.attrs.append((attr_type, value))
        return self

    def add_xor(self, attr_type: int, ip: str, port: int) -> "Message":
        return self.add(attr_type, xor_address(ip, port, self.tid))

    def encode(self, key: bytes | None = None, fingerprint: bool = True, sha256: bool = False) -> bytes:
        """The wire bytes, signed with `key` (MESSAGE-INTEGRITY, or MESSAGE-INTEGRITY-SHA256 if
        `sha256`) and with FINGERPRINT last."""
        body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\0" * _pad(len(v)) for t, v in self.attrs)

        def header(length: int) -> bytes:
            return struct.pack("!HHI", message_type(self.method, self.cls), length, MAGIC) + self.tid

        if key is not None and sha256:
            mac = hmac.new(key, header(len(body) + 36) + body, hashlib.sha256).digest()
            body += struct.pack("!HH", MESSAGE_INTEGRITY_SHA256, 32) + mac
        elif key is not None:
            mac = hmac.new(key, header(len(body) + 24) + body, hashlib.sha1).digest()
            body += struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
        if fingerprint:
            crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
            body += struct.pack("!HHI", FINGERPRINT, 4, crc)
        self.raw = header(len(body)) + body
        return self.raw

    # ---- reading ------------------------------------------------------------------------------
    @classmethod
    def decode(cls_, data: bytes) -> "Message":
        if len(data) < 20:
            raise StunError(f"{len(data)} bytes: shorter than a STUN header")
        t, length, magic = struct.unpack("!HHI", data[:8])
        if t & 0xC000 or magic != MAGIC:
            raise StunError(f"not STUN (type {t:#06x}, cookie {magic:#010x})")
        if length % 4 or 20 + length != len(data):
            raise StunError(f"length {length} for {len(data)} bytes")
        method, klass = split_type(t)
        msg = cls_(method, klass, data[8:20], [], data)
        pos = 20
        while pos < len(data):
            if pos + 4 > len(data):
                raise StunError("truncated attribute header")
            at, alen = struct.unpack("!HH", data[pos:pos + 4])
            value = data[pos + 4:pos + 4 + alen]
            if len(value) != alen:
                raise StunError(f"attribute {at:#06x} runs past the end")
            if at == MESSAGE_INTEGRITY:
                msg.integrity_offset = pos
            if at == MESSAGE_INTEGRITY_SHA256:
                msg.integrity_sha256_offset = pos
            if at == FINGERPRINT:
                crc = zlib.crc32(data[:pos]) ^ 0x5354554E
                msg.fingerprint_ok = len(value) == 4 and struct.unpack("!I", value)[0] == crc
            msg.attrs.append((at, value))
            pos += 4 + alen + _pad(alen)
        return msg

    def get(self, attr_type: int) -> bytes | None:
        for t, v in self.attrs:
            if t == attr_type:
                return v
        return None

    def types(self) -> list[int]:
        return [t for t, _ in self.attrs]

    def check_integrity(self, key: bytes) -> bool:
        """MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY, verified with `key`."""
        if self.integrity_sha256_offset is not None:
            off, attr, digest = self.integrity_sha256_offset, MESSAGE_INTEGRITY_SHA256, hashlib.sha256
        elif self.integrity_offset is not None:
            off, attr, digest = self.integrity_offset, MESSAGE_INTEGRITY, hashlib.sha1
        else:
            return False
        mac = self.get(attr) or b""
        signed = self.raw[:2] + struct.pack("!H", off + 4 + len(mac) - 20) + self.raw[4:off]
        return hmac.compare_digest(hmac.new(key, signed, digest).digest()[:len(mac)], mac)

    @property
    def error_code(self) -> int | None:
        v = self.get(ERROR_CODE)
        if v is None or len(v) < 4:
            return None
        return (v[2] & 0x7) * 100 + v[3]

    @property
    def reason(self) -> str:
        v = self.get(ERROR_CODE)
        return v[4:].decode(errors="replace") if v else ""

    def xor(self, attr_type: int) -> tuple[str, int] | None:
        v = self.get(attr_type)
        return parse_xor_address(v, self.tid) if v is not None else None

    def xor_all(self, attr_type: int) -> list[tuple[str, int]]:
        """Every address of that type: a dual allocation has two XOR-RELAYED-ADDRESSes."""
        return [parse_xor_address(v, self.tid) for t, v in self.attrs if t == attr_type]

    @property
    def lifetime(self) -> int | None:
        v = self.get(LIFETIME)
        return struct.unpack("!I", v)[0] if v else None

    @property
    def connection_id(self) -> int | None:
        v = self.get(CONNECTION_ID)
        return struct.unpack("!I", v)[0] if v is not None and len(v) == 4 else None

    def __str__(self) -> str:
        parts = []
        for t, v in self.attrs:
            name = ATTRIBUTE_NAMES.get(t, f"{t:#06x}")
            if t in (XOR_MAPPED_ADDRESS, XOR_PEER_ADDRESS, XOR_RELAYED_ADDRESS):
                try:
                    parts.append(f"{name}={parse_xor_address(v, self.tid)}")
                    continue
                except StunError:
                    pass
            if t == ERROR_CODE:
                parts.append(f"ERROR_CODE={self.error_code} {self.reason!r}")
            elif t == PASSWORD_ALGORITHMS:
                parts.append(f"PASSWORD_ALGORITHMS={password_algorithms(v)}")
            elif t in (REALM, NONCE, USERNAME, SOFTWARE):
                parts.append(f"{name}={v.decode(errors='replace')!r}")
            elif t == LIFETIME:
                parts.append(f"LIFETIME={self.lifetime}")
            elif t == CONNECTION_ID and len(v) == 4:
                parts.append(f"CONNECTION_ID={struct.unpack('!I', v)[0]:#x}")
            else:
                parts.append(f"{name}({len(v)})")
        return f"{METHOD_NAMES.get(self.method, hex(self.method))} {CLASS_NAMES[self.cls]} [{', '.join(parts)}]"


def channel_data(channel: int, payload: bytes, stream: bool = False) -> bytes:
    """ChannelData; over TCP/TLS padded to a multiple of 4 (RFC 8656 §12.5)."""
    frame = struct.pack("!HH", channel, len(payload)) + payload
    return frame + b"\0" * _pad(len(payload)) if stream else frame


class TurnError(AssertionError):
    """A TURN transaction that did not end the way the test needed; carries the response."""

    def __init__(self, what: str, response: Message | None):
        super().__init__(f"{what}: {response if response is not None else 'no response'}")
        self.response = response


class TurnClient:
    """One client 5-tuple towards a TURN server.

    ``transport``: "udp", "tcp" or "tls" (no certificate check). ``username``/``password``: the
    long-term credential; ``realm`` is learnt from the first 401. Received Data indications and
    ChannelData land in ``self.data`` as (peer or channel, payload). ``rfc8489``: negotiate the
    password algorithm as RFC 8489 §9.2.5 says (``self.algorithm`` is then the one in use);
    ``userhash``: send USERHASH (True) or USERNAME (False) whatever the nonce asks, None: as it asks.
    """

    def __init__(self, server: tuple[str, int], username: str | None = None, password: str | None = None,
                 transport: str = "udp", local_ip: str | None = None, timeout: float = 3.0,
                 rfc8489: bool = False, userhash: bool | None = None):
        self.server = server
        self.username = username
        self.password = password
        self.transport = transport
        self.timeout = timeout
        self.rfc8489 = rfc8489
        self.force_userhash = userhash
        self.realm: str | None = None
        self.nonce: bytes | None = None
        self.algorithm = MD5
        self.algorithms: bytes | None = None      # PASSWORD-ALGORITHMS as the server sent it
        self.anonymous = False                    # send USERHASH instead of USERNAME
        self.data: list[tuple[object, bytes]] = []
        self.unmatched: list[Message] = []
        self.buffer = b""
        self.relayed: tuple[str, int] | None = None
        self.mapped: tuple[str, int] | None = None
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        if transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            # An IPv4 port from this worker's block rather than the kernel's ephemeral pick: the
            # kernel may hand back the port of an earlier client whose allocation still lives (a
            # test that leaves without deallocating), and that server rightly answers 437.
            self.sock.bind((local_ip or "", free_udp_port() if family == socket.AF_INET else 0))
        else:
            raw = socket.create_connection(server, timeout=timeout,
                                           source_address=(local_ip, 0) if local_ip else None)
            if transport == "tls":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                raw = ctx.wrap_socket(raw)
            self.sock = raw
        self.sock.settimeout(timeout)

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    @property
    def key(self) -> bytes | None:
        if self.username is None or self.password is None or self.realm is None:
            return None
        return long_term_key(self.username, self.realm, self.password, self.algorithm)

    @property
    def sha256_integrity(self) -> bool:
        """RFC 8489 §9.2.5: once a server sent PASSWORD-ALGORITHMS, requests carry
        MESSAGE-INTEGRITY-SHA256 only."""
        return self.rfc8489 and self.algorithms is not None

    # ---- raw I/O ------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def _read_frame(self, deadline: float) -> bytes | None:
        """One STUN message or ChannelData frame from the 5-tuple, or None at the deadline."""
        if self.transport == "udp":
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                try:
                    data, source = self.sock.recvfrom(65535)
                except (socket.timeout, BlockingIOError):
                    return None
                if source[:2] == self.server:
                    return data
        while True:
            frame = self._frame_from_buffer()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready:
                    return None
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    def _frame_from_buffer(self) -> bytes | None:
        b = self.buffer
        if len(b) < 4:
            return None
        if b[0] & 0xC0 == 0x40:       # ChannelData: 4-byte header, padded to 4 on streams
            length = 4 + struct.unpack("!H", b[2:4])[0]
            length += _pad(length)
        else:
            length = 20 + struct.unpack("!H", b[2:4])[0]
        if len(b) < length:
            return None
        self.buffer = b[length:]
        return b[:length]

    def _file(self, frame: bytes) -> Message | None:
        """Files ChannelData and Data indications into self.data; returns other STUN messages."""
        if frame[0] & 0xC0 == 0x40:
            channel, length = struct.unpack("!HH", frame[:4])
            self.data.append((channel, frame[4:4 + length]))
            return None
        try:
            msg = Message.decode(frame)
        except StunError:
            return None
        if msg.method == DATA and msg.cls == INDICATION:
            peer = msg.xor(XOR_PEER_ADDRESS)
            self.data.append((peer, msg.get(DATA_ATTR) or b""))
            return None
        return msg

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next STUN message that is not a Data indication (None on timeout)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self._read_frame(deadline)
            if frame is None:
                return None
            msg = self._file(frame)
            if msg is not None:
                return msg

    def wait_data(self, timeout: float = 2.0) -> list[tuple[object, bytes]]:
        """Collects relayed data for up to `timeout` seconds (returns as soon as something came)."""
        deadline = time.monotonic() + timeout
        while not self.data and time.monotonic() < deadline:
            frame = self._read_frame(deadline)
            if frame is None:
                break
            msg = self._file(frame)
            if msg is not None:
                self.unmatched.append(msg)
        got, self.data = self.data, []
        return got

    # ---- transactions -------------------------------------------------------------------------
    def transact(self, msg: Message, key: bytes | None = None, fingerprint: bool = True,
                 retries: int = 3, sha256: bool = False) -> Message | None:
        """Sends `msg` (signed with `key` if given, with MESSAGE-INTEGRITY-SHA256 if `sha256`) and
        returns the response with its transaction id; UDP retransmits a few times (RFC 8489
        §6.2.1, shortened), streams wait once."""
        wire = msg.encode(key, fingerprint, sha256)
        attempts = retries if self.transport == "udp" else 1
        per_try = self.timeout / attempts if self.transport == "udp" else self.timeout
        for _ in range(attempts):
            self.send_raw(wire)
            deadline = time.monotonic() + per_try
            while True:
                response = self.receive(max(0.0, deadline - time.monotonic()))
                if response is None:
                    break
                if response.tid == msg.tid:
                    return response
                self.unmatched.append(response)
        return None

    def request(self, method: int, attrs: list[tuple[int, bytes]] | None = None, *,
                auth: bool = True, xor_peers: list[tuple[str, int]] | None = None,
                username: str | None = None, password: str | None = None) -> Message | None:
        """A request with long-term authentication: signed at once when a nonce is known, else sent
        bare, and re-sent signed after the 401 (and after a 438 with the fresh nonce).
        `username`/`password` override the client's credential for this request only."""
        user = username if username is not None else self.username
        pw = password if password is not None else self.password

        def build() -> Message:
            m = Message(method, REQUEST)
            for peer in xor_peers or []:
                m.add_xor(XOR_PEER_ADDRESS, *peer)
            for t, v in attrs or []:
                m.add(t, v)
            return m

        if not auth:
            return self.transact(build())
        response = None
        for _ in range(3):
            m = build()
            if self.nonce is None or self.realm is None:
                response = self.transact(m)
            else:
                if self.anonymous:
                    m.add(USERHASH, userhash(user, self.realm))
                else:
                    m.add(USERNAME, user.encode())
                m.add(REALM, self.realm.encode()).add(NONCE, self.nonce)
                if self.sha256_integrity:
                    m.add(PASSWORD_ALGORITHM, struct.pack("!HH", self.algorithm, 0)).add(PASSWORD_ALGORITHMS, self.algorithms)
                response = self.transact(m, long_term_key(user, self.realm, pw, self.algorithm), sha256=self.sha256_integrity)
            if response is None or response.cls != ERROR or response.error_code not in (401, 438):
                return response
            realm, nonce = response.get(REALM), response.get(NONCE)
            if realm is None or nonce is None:
                return response
            signed_before = self.nonce is not None and response.error_code == 401 and nonce == self.nonce
            self.realm, self.nonce = realm.decode(), nonce
            if self.rfc8489 and not self._negotiate(response):
                return response       # §9.2.5: nothing this client may retry with
            if signed_before:
                return response       # a signed request refused with the same nonce: bad credentials
        return response

    def _negotiate(self, challenge: Message) -> bool:
        """RFC 8489 §9.2.5 on a 401/438: the algorithm (the first of PASSWORD-ALGORITHMS this
        client supports) and USERNAME or USERHASH. False when the client must not retry."""
        features = nonce_features(challenge.get(NONCE))
        offered = challenge.get(PASSWORD_ALGORITHMS)
        if features is not None and features & FEATURE_PASSWORD_ALGORITHMS and offered is None:
            return False          # the bit without the attribute: stripped on the way, a downgrade
        if offered is not None:
            usable = [a for a in password_algorithms(offered) if a in (SHA256, MD5)]
            if not usable:
                return False
            self.algorithm, self.algorithms = usable[0], offered
        anonymity = features is not None and bool(features & FEATURE_USERNAME_ANONYMITY)
        self.anonymous = anonymity if self.force_userhash is None else self.force_userhash
        return True

    def expect_success(self, response: Message | None, what: str) -> Message:
        if response is None or response.cls != SUCCESS:
            raise TurnError(f"{what} failed", response)
        key = self.key
        if key is not None and (response.integrity_offset is not None or response.integrity_sha256_offset is not None):
            assert response.check_integrity(key), \
                f"{what}: MESSAGE-INTEGRITY of the response does not verify: {response}"
        return response

    # ---- TURN operations ----------------------------------------------------------------------
    def allocate_request(self, lifetime: int | None = None, extra: list[tuple[int, bytes]] | None = None,
                         relay_transport: int = UDP_TRANSPORT) -> Message | None:
        attrs = [(REQUESTED_TRANSPORT, bytes([relay_transport, 0, 0, 0]))]
        if lifetime is not None:
            attrs.append((LIFETIME, struct.pack("!I", lifetime)))
        return self.request(ALLOCATE, attrs + (extra or []))

    def allocate(self, lifetime: int | None = None, relay_transport: int = UDP_TRANSPORT) -> tuple[str, int]:
        r = self.expect_success(self.allocate_request(lifetime, relay_transport=relay_transport), "Allocate")
        self.relayed = r.xor(XOR_RELAYED_ADDRESS)
        self.mapped = r.xor(XOR_MAPPED_ADDRESS)
        assert self.relayed is not None, f"Allocate success without XOR-RELAYED-ADDRESS: {r}"
        return self.relayed

    def refresh(self, lifetime: int | None = None, **kw) -> Message | None:
        attrs = [] if lifetime is None else [(LIFETIME, struct.pack("!I", lifetime))]
        return self.request(REFRESH, attrs, **kw)

    def create_permission(self, *peers: tuple[str, int] | str, **kw) -> Message | None:
        addrs = [(p, 0) if isinstance(p, str) else p for p in peers]
        return self.request(CREATE_PERMISSION, xor_peers=addrs, **kw)

    def channel_bind(self, channel: int, peer: tuple[str, int], **kw) -> Message | None:
        return self.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!HH", channel, 0))], xor_peers=[peer], **kw)

    # ---- RFC 6062 -----------------------------------------------------------------------------
    def connect(self, peer: tuple[str, int], **kw) -> Message | None:
        """Connect (on the control connection of a TCP allocation); the success carries CONNECTION-ID."""
        return self.request(CONNECT, xor_peers=[peer], **kw)

    def connection_bind(self, connection_id: int, **kw) -> Message | None:
        """ConnectionBind on this (new) connection; after a success it carries raw bytes only."""
        return self.request(CONNECTION_BIND, [(CONNECTION_ID, struct.pack("!I", connection_id))], **kw)

    def data_socket(self) -> tuple[socket.socket, bytes]:
        """After a successful ConnectionBind: the socket, and the bytes already read past the
        response (the peer's first data)."""
        rest, self.buffer = self.buffer, b""
        return self.sock, rest

    def send_indication(self, peer: tuple[str, int], payload: bytes) -> None:
        m = Message(SEND, INDICATION).add_xor(XOR_PEER_ADDRESS, *peer).add(DATA_ATTR, payload)
        self.send_raw(m.encode(None, fingerprint=True))

    def send_channel_data(self, channel: int, payload: bytes) -> None:
        self.send_raw(channel_data(channel, payload, stream=self.transport != "udp"))

    def close(self, deallocate: bool = True) -> None:
        try:
            if deallocate and self.relayed is not None and self.nonce is not None:
                self.request(REFRESH, [(LIFETIME, struct.pack("!I", 0))])
        except (OSError, ConnectionError):
            pass
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
