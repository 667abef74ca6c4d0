"""ICE-TCP (RFC 6544, passive side) on Atrium's media.tcp_port: every packet is an RFC 4571 frame
(a 16-bit length, then the bytes) on a TCP connection the peer opens.

- A connection whose first frame is a valid binding request (the answer's ufrag and password) gets
  a framed success response with its own address in XOR-MAPPED-ADDRESS, and belongs to that
  PeerConnection; frames split across writes or packed into one write are read the same.
- A connection that starts with anything else (a wrong password, an unknown ufrag, garbage, a
  frame larger than any packet) is closed, one that sends nothing is closed after 10 s, and none
  of this touches the peer whose media flows meanwhile.
- Headless Chromium (janus.js) with the answer's UDP candidates removed reaches the EchoTest over
  ICE-TCP: DTLS and SRTP in frames, the echoed video decoded, the selected pair a TCP one.

Runs inside the test network namespace (MEDIA_IP), as the rest of the media tests.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import socket
import struct
import time
from urllib.parse import urlencode

import pytest

from conftest import MEDIA_IP, MEDIA_THREADS, free_port, media_config, require_media_ip
from rtc_peer import EchoPeer, ice_ufrag
from browser import results, save_artifacts, wait_for
from test_echotest import (AUDIO_FRAMES, ECHO, MAGIC, MEDIA_WAIT, VIDEO_FRAMES, atrium_echo_server, run,
                           stun_binding_request, assert_video_decoding, selected_pair)

pytestmark = pytest.mark.atrium_only


def tcp_media_config(**kw) -> dict:
    config = media_config(**kw)
    config["media"]["tcp_port"] = free_port(MEDIA_THREADS)
    return config


def tcp_candidates(sdp: str) -> list[dict]:
    out = []
    for m in re.finditer(r"^a=candidate:\S+ \d+ tcp \d+ (\S+) (\d+) typ host tcptype (\S+)", sdp, re.M | re.I):
        out.append({"ip": m.group(1), "port": int(m.group(2)), "tcptype": m.group(3)})
    return out


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


def read_frame(sock: socket.socket, timeout: float = 3.0) -> bytes | None:
    """One RFC 4571 frame, or None if the server closed the connection."""
    sock.settimeout(timeout)

    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = exactly(2)
    if header is None:
        return None
    return exactly(struct.unpack("!H", header)[0])


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True once the server closes the connection (EOF or reset) within *timeout*; any bytes it
    sends first are a failure too (it must answer a stranger with nothing)."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    assert data == b"", f"the server answered a bad connection: {data[:64].hex()}"
    return True


def check_success(response: bytes, request: bytes, password: bytes, expected: tuple[str, int]):
    """A binding success for *request*: class, transaction, MESSAGE-INTEGRITY with *password*, and
    XOR-MAPPED-ADDRESS equal to *expected* (the client's end of the connection)."""
    assert response[:2] == b"\x01\x01" and response[8:20] == request[8:20], response.hex()
    attributes = {}
    i = 20
    while i + 4 <= len(response):
        kind, length = struct.unpack("!HH", response[i:i + 4])
        attributes.setdefault(kind, (i, response[i + 4:i + 4 + length]))
        i += 4 + length + (-length % 4)
    assert 0x0020 in attributes and 0x0008 in attributes, attributes.keys()
    value = attributes[0x0020][1]
    port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
    ip = socket.inet_ntoa(struct.pack("!I", struct.unpack("!I", value[4:8])[0] ^ MAGIC))
    assert (ip, port) == expected
    offset = attributes[0x0008][0]
    signed = response[:2] + struct.pack("!H", offset + 24 - 20) + response[4:offset]
    assert hmac.compare_digest(hmac.new(password, signed, hashlib.sha1).digest(), attributes[0x0008][1])


def connect(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((MEDIA_IP, 0))
    sock.connect((MEDIA_IP, port))
    return sock


def test_checks_over_tcp_are_answered_and_strangers_disconnected(start_atrium, trace):
    require_media_ip()
    atrium = start_atrium(tcp_media_config(), name="icetcp")
    tcp_port = atrium.config["media"]["tcp_port"]
    trace["servers"].append(atrium_echo_server(atrium))
    idle = connect(tcp_port)  # sends nothing: closed by the 10 s rule, checked at the end
    opened = time.monotonic()

    async def body():
        peer = await EchoPeer.connect(atrium.ws_url, ECHO)
        trace["peers"].append(peer)
        sockets = []
        try:
            # The answer offers the TCP port, passive, on the media address; aiortc uses UDP.
            found = {tuple(c.items()) for c in tcp_candidates(peer.answer_sdp)}  # one per bundled section
            # The first handle of a fresh server goes to the first media loop, on the first port.
            assert [dict(c) for c in found] == [{"ip": MEDIA_IP, "port": tcp_port, "tcptype": "passive"}], peer.answer_sdp
            await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
            server_ufrag, client_ufrag = ice_ufrag(peer.answer_sdp), ice_ufrag(peer.offer_sdp)
            password = next(line.split(":", 1)[1].strip() for line in peer.answer_sdp.splitlines()
                            if line.startswith("a=ice-pwd:")).encode()
            username = f"{server_ufrag}:{client_ufrag}"

            # A valid check, its frame split over three writes; then two checks in one write.
            good = connect(tcp_port)
            sockets.append(good)
            request = stun_binding_request(username, password)
            data = frame(request)
            for part in (data[:1], data[1:7], data[7:]):
                good.sendall(part)
                await asyncio.sleep(0.05)
            response = read_frame(good)
            assert response is not None, "a valid framed check got no answer"
            check_success(response, request, password, good.getsockname())
            second, third = stun_binding_request(username, password), stun_binding_request(username, password)
            good.sendall(frame(second) + frame(third))
            for req in (second, third):
                response = read_frame(good)
                assert response is not None
                check_success(response, req, password, good.getsockname())
            assert atrium.metric("atrium_media_tcp_connections") >= 2  # the idle one and this one

            # Strangers: each connection's first frame is wrong, and each is closed unanswered.
            bad_first_frames = {
                "wrong password": frame(stun_binding_request(username, b"not-the-password-at-all")),
                "unknown ufrag": frame(stun_binding_request(f"nobody:{client_ufrag}", password)),
                "no integrity": frame(stun_binding_request(username, None)),
                "garbage": frame(b"\x80" + bytes(range(100))),
                "empty frame": frame(b""),
                "oversize frame": frame(b"\x00\x01" + bytes(8000)),
                "unframed STUN": request,
            }
            for what, first in bad_first_frames.items():
                s = connect(tcp_port)
                sockets.append(s)
                s.sendall(first)
                assert closed_by_server(s, 5), f"{what}: the connection stayed open"

            # Meanwhile the peer's media never stopped, and the good connection still answers.
            frames = await peer.wait_frames(video=30, audio=50, timeout=8)
            assert frames["video"] >= 30, frames
            again = stun_binding_request(username, password)
            good.sendall(frame(again))
            response = read_frame(good)
            assert response is not None
            check_success(response, again, password, good.getsockname())
            assert atrium.alive()

            # The idle connection goes after 10 s without a check.
            remaining = max(0.0, 13 - (time.monotonic() - opened))
            assert closed_by_server(idle, remaining), "an idle connection was kept over 13 s"
            assert atrium.metric("atrium_media_tcp_connections") == 1  # only the good one
            # Hanging up the peer closes its connection too (after any DTLS close_notify).
            await peer.close(hangup=True)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and read_frame(good, timeout=deadline - time.monotonic()) is not None:
                pass
            assert time.monotonic() < deadline, "the peer's ICE-TCP connection outlived its PeerConnection"
        finally:
            for s in sockets:
                s.close()
            await peer.close()

    try:
        run(body(), timeout=60)
    finally:
        idle.close()


def test_janusjs_echotest_over_ice_tcp(start_atrium, page_server, chromium):  # noqa: F811 - fixtures
    """Chromium with only the TCP candidate reaches the EchoTest: DTLS and SRTP in RFC 4571
    frames on the one connection, the echoed video decoded."""
    require_media_ip()
    atrium = start_atrium(tcp_media_config(), name="icetcp-chromium")
    query = {"server": atrium.ws_url, "plugin": ECHO, "candidates": "tcp"}
    driver = chromium("echo")
    try:
        driver.get(f"{page_server}/janusjs-echotest.html?" + urlencode(query))
        wait_for(driver, "echo", "webrtcup", lambda r: r["webrtcup"], timeout=25)
        assert_video_decoding(driver)
        pair = selected_pair(driver)
        assert pair and pair["local"]["protocol"] == "tcp" and pair["remote"]["protocol"] == "tcp", pair
        assert pair["remote"]["port"] == atrium.config["media"]["tcp_port"], pair
        assert atrium.metric("atrium_media_tcp_connections") >= 1
        r = results(driver)
        assert r["errors"] == [] and r["janusErrors"] == [], (r["errors"], r["janusErrors"])
        assert {m["type"] for m in r["media"] if m["on"]} == {"audio", "video"}, r["media"]
        driver.execute_script("window.finish();")
        wait_for(driver, "echo", "destroy", lambda r: r["destroyed"])
        assert atrium.alive()
    except BaseException:
        save_artifacts(chromium, atrium, "echotest-janusjs-icetcp")
        raise
