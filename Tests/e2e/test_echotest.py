"""Media through the EchoTest: aiortc and headless Chromium (janus.js) send audio and video, the
server echoes them, and the tests count the frames decoded from what comes back.

The server is Atrium (default; chat and echotest plugins, a "media" section with a free UDP port,
see conftest.media_config) or, with ATRIUM_E2E_SERVER=janus, the real Janus 1.1.2 EchoTest that
Atrium's must match (janus_reference.py, gathering on MEDIA_IP). Tests marked ``atrium_only`` (a
vanished peer, datagrams from a stranger) always start their own Atrium: deselect them with
``-m "not atrium_only"`` when validating against Janus.

Media needs a non-loopback address: run inside a network namespace whose interface holds
MEDIA_IP (10.99.0.1/24), as `make e2e` does. Nothing leaves the machine: no ICE servers, every
candidate is on MEDIA_IP.

What Janus 1.1.2's EchoTest answers, observed with these tests (and asserted for both servers):
  message {"audio":true,"video":true} + jsep offer
      reply  {"janus":"ack","session_id","transaction","hint":"I'm taking my time!"}
      event  {"janus":"event","session_id","transaction" (of the message),"sender",
              "plugindata":{"plugin":"janus.plugin.echotest","data":{"echotest":"event","result":"ok"}},
              "jsep":{"type":"answer","sdp"}}
      then   {"janus":"webrtcup","session_id","sender"} and, per m-line once media flows,
             {"janus":"media","session_id","sender","mid","type":"audio"|"video","receiving":true}
  {"video":false} / {"video":true} / {"audio":…} / {"bitrate":128000}
      ack, then event with that transaction, data {"echotest":"event","result":"ok"}, no jsep.
      video false: no echoed video until video true (Janus sends the sender a PLI on true).
  {"keyframe":true} (not an EchoTest attribute in 1.1.2: it belongs to the VideoRoom)
      ack, then event data {"echotest":"event","error_code":413,
                            "error":"Message error: no supported attributes found"}
  janus "hangup" (with a PeerConnection)
      reply {"janus":"success","session_id","transaction"}; events (no transaction):
      {"janus":"event",…,"plugindata":{…,"data":{"echotest":"event","result":"done"}}} and
      {"janus":"hangup","session_id","sender","reason":"Janus API"}; media stops; the handle
      stays and takes a new offer. A second hangup: success, no events.
  data channel in the offer: Janus accepts m=application and echoes text as
      "Janus EchoTest here! You wrote: <text>". Atrium has no data channels yet: its answer must
      reject m=application (port 0, not in the BUNDLE group) and the channel never opens.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import queue
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from conftest import (AtriumServer, MEDIA_IP, MEDIA_THREADS, ServerUnderTest, media_config, require_media_ip)
from janus_reference import start_janus
from janus_client import open_janus
from rtc_peer import EchoPeer, candidates, ice_ufrag, media_summary, ssrcs
from browser import results, save_artifacts, wait_for

HERE = Path(__file__).resolve().parent
SERVER_KIND = os.environ.get("ATRIUM_E2E_SERVER", "atrium")
ECHO = "janus.plugin.echotest"
ECHO_ATRIUM = "atrium.plugin.echotest"
VIDEO_FRAMES = 30   # 2 s of the 15 fps pattern
AUDIO_FRAMES = 50   # 1 s of 20 ms frames
WIDTH, HEIGHT = 320, 240
MEDIA_WAIT = 15.0   # seconds for the first echoed frames
ECHO_OK = {"echotest": "event", "result": "ok"}
ECHO_DONE = {"echotest": "event", "result": "done"}
NO_ATTRIBUTES = {"echotest": "event", "error_code": 413, "error": "Message error: no supported attributes found"}


# --------------------------------------------------------------------------------------------
# Servers

EchoServer = ServerUnderTest


def atrium_echo_server(atrium: AtriumServer) -> EchoServer:
    return ServerUnderTest.of_atrium(atrium)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_media_ip()
    if SERVER_KIND == "janus":
        janus = start_janus(tmp_path_factory.mktemp("janus-echo"), ice_ip=MEDIA_IP)
        try:
            yield EchoServer("janus", janus.http_url, janus.ws_url, janus.log_path, janus.alive, None)
        finally:
            janus.stop()
    elif SERVER_KIND == "atrium":
        atrium = AtriumServer(media_config(), tmp_path_factory.mktemp("atrium-echo")).start()
        try:
            yield atrium_echo_server(atrium)
        finally:
            code = atrium.stop()
        assert code == 0, f"atrium did not stop cleanly (exit {code}):\n{atrium.log()[-4000:]}"
    else:
        pytest.fail(f"ATRIUM_E2E_SERVER={SERVER_KIND!r}: expected 'atrium' or 'janus'", pytrace=False)


def run(coro, timeout: float = 50.0):
    """Runs one test's coroutine; every test stays well under a minute."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# --------------------------------------------------------------------------------------------
# Assertion helpers

def plugin_data(event: dict) -> dict:
    assert event.get("janus") == "event", event
    plugindata = event.get("plugindata") or {}
    assert plugindata.get("plugin") in (ECHO, ECHO_ATRIUM), event
    return plugindata.get("data")


async def request_and_event(peer: EchoPeer, body: dict, timeout: float = 5.0) -> tuple[dict, dict]:
    """Sends a message without jsep; returns (reply, the event carrying the reply's transaction)."""
    start = len(peer.janus.events)
    reply = await peer.janus.message(peer.handle, body)
    assert reply.get("janus") == "ack", f"{body}: expected an ack, got {reply}"
    event = await peer.janus.wait_event(
        lambda e: e.get("sender") == peer.handle and e.get("transaction") == reply["transaction"], timeout, start)
    assert "jsep" not in event, f"{body}: unexpected jsep in {event}"
    return reply, event


async def frames_after(peer: EchoPeer, seconds: float) -> tuple[dict, dict]:
    """The frame counts before and after a window of `seconds`, for showing that something stops:
    an absence has no event to wait for, only a window to watch."""
    before = peer.frames()
    await asyncio.sleep(seconds)
    return before, peer.frames()


def assert_answer(peer: EchoPeer, server: EchoServer, kinds: list[str]):
    """The offer was acked; the answer came as {"echotest":"event","result":"ok"} with the offer's
    transaction; every offered audio/video section is accepted sendrecv; candidates are on MEDIA_IP
    (and, for Atrium, on its one media port)."""
    assert peer.message_reply.get("janus") == "ack", peer.message_reply
    event = peer.answer_event
    assert event.get("transaction") == peer.message_reply["transaction"], event
    assert plugin_data(event) == ECHO_OK, event
    assert event["jsep"]["type"] == "answer"
    summary = media_summary(peer.answer_sdp)
    assert [m["kind"] for m in summary] == kinds, summary
    for m in summary:
        if m["kind"] in ("audio", "video"):
            assert m["port"] != 0 and m["direction"] == "sendrecv", f"{m} in\n{peer.answer_sdp}"
    udp = [c for c in candidates(peer.answer_sdp) if c["protocol"] == "udp"]
    assert any(c["ip"] == MEDIA_IP for c in udp), f"no UDP candidate on {MEDIA_IP}:\n{peer.answer_sdp}"
    if server.udp_port is not None:
        # One port, the one of the handle's media loop (loop i listens on udp_port + i).
        ports = {c["port"] for c in udp}
        loops = set(range(server.udp_port, server.udp_port + MEDIA_THREADS))
        assert len(ports) == 1 and ports <= loops, f"candidates not on one of the media ports {sorted(loops)}: {udp}"


# --------------------------------------------------------------------------------------------
# a. audio + video

CASES = [("http", ECHO), ("websocket", ECHO)]
if SERVER_KIND == "atrium":
    CASES.append(("http", ECHO_ATRIUM))  # Atrium's own name for the plugin


@pytest.mark.parametrize("transport,plugin", CASES)
def test_audio_and_video_come_back(server, trace, transport, plugin):
    trace["servers"].append(server)

    async def body():
        peer = await EchoPeer.connect(server.url(transport), plugin)
        trace["peers"].append(peer)
        try:
            assert_answer(peer, server, ["audio", "video"])
            frames = await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
            assert (frames["width"], frames["height"]) == (WIDTH, HEIGHT), frames
            assert sorted(peer.remote_kinds) == ["audio", "video"], peer.remote_kinds
            # The core's events janus.js turns into webrtcState(true) and mediaState(type, true, mid).
            janus, handle = peer.janus, peer.handle
            up = await janus.wait_event(lambda e: e.get("janus") == "webrtcup" and e.get("sender") == handle, 5)
            assert set(up) == {"janus", "session_id", "sender"}, up
            mids = {m["kind"]: m["mid"] for m in media_summary(peer.offer_sdp)}
            for kind in ("audio", "video"):
                event = await janus.wait_event(
                    lambda e: e.get("janus") == "media" and e.get("sender") == handle and e.get("type") == kind, 5)
                assert event.get("receiving") is True and event.get("mid") == mids[kind], event
            assert not janus.events_for(handle, "hangup"), janus.events
        finally:
            await peer.close()

    run(body())


# --------------------------------------------------------------------------------------------
# b. one kind only

@pytest.mark.parametrize("kind", ["audio", "video"])
def test_single_kind_offer(server, trace, kind):
    trace["servers"].append(server)

    async def body():
        peer = await EchoPeer.connect(server.http_url, ECHO, audio=kind == "audio", video=kind == "video")
        trace["peers"].append(peer)
        try:
            assert_answer(peer, server, [kind])
            if kind == "audio":
                await peer.wait_frames(audio=AUDIO_FRAMES, timeout=MEDIA_WAIT)
            else:
                frames = await peer.wait_frames(video=VIDEO_FRAMES, timeout=MEDIA_WAIT)
                assert (frames["width"], frames["height"]) == (WIDTH, HEIGHT), frames
            assert peer.remote_kinds == [kind], peer.remote_kinds
            other = "video" if kind == "audio" else "audio"
            assert peer.frames()[other] == 0, peer.frames()
        finally:
            await peer.close()

    run(body())


# --------------------------------------------------------------------------------------------
# c. data channel in the offer

def test_offer_with_data_channel(server, trace):
    trace["servers"].append(server)

    async def body():
        peer = await EchoPeer.connect(server.ws_url, ECHO, datachannel=True)
        trace["peers"].append(peer)
        try:
            assert_answer(peer, server, ["audio", "video", "application"])
            await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
            application = media_summary(peer.answer_sdp)[2]
            bundle = re.search(r"^a=group:BUNDLE (.*)$", peer.answer_sdp, re.M)
            bundled = bundle.group(1).split() if bundle else []
            if server.kind == "atrium":
                # No data channels yet: the section is rejected and left out of the bundle (RFC 8843).
                assert application["port"] == 0, f"m=application not rejected:\n{peer.answer_sdp}"
                assert application["mid"] not in bundled, f"rejected mid in BUNDLE:\n{peer.answer_sdp}"
                await asyncio.sleep(3)  # a window: a channel that never opens sends no event to await
                assert not peer.channel_opened, "the data channel opened although it was rejected"
                assert peer.channel.readyState != "open"
                await peer.wait_frames(15, 25, timeout=5)  # media goes on regardless
            else:
                assert application["port"] != 0, peer.answer_sdp
                assert application["mid"] in bundled, peer.answer_sdp
                deadline = time.monotonic() + 10
                while not peer.channel_opened and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert peer.channel_opened, "the data channel did not open"
                peer.channel.send("hello echo")
                deadline = time.monotonic() + 5
                while not peer.channel_messages and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert peer.channel_messages == ["Janus EchoTest here! You wrote: hello echo"], \
                    peer.channel_messages
        finally:
            await peer.close()

    run(body())


# --------------------------------------------------------------------------------------------
# d. EchoTest requests while media flows

def test_echotest_requests(server, trace):
    trace["servers"].append(server)

    async def body():
        peer = await EchoPeer.connect(server.ws_url, ECHO)
        trace["peers"].append(peer)
        try:
            await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)

            _, event = await request_and_event(peer, {"video": False})
            assert plugin_data(event) == ECHO_OK, event
            # Frames echoed before the request still arrive, and their last one cannot be told
            # from the next: let them drain for a second, then watch a window.
            await asyncio.sleep(1.0)
            before, after = await frames_after(peer, 2.5)
            assert after["video"] == before["video"], f"video still echoed after video:false: {before} -> {after}"
            assert after["audio"] - before["audio"] >= 60, f"audio stopped with video: {before} -> {after}"

            _, event = await request_and_event(peer, {"video": True})
            assert plugin_data(event) == ECHO_OK, event
            frames = await peer.wait_frames(video=20, audio=25, timeout=10)
            assert (frames["width"], frames["height"]) == (WIDTH, HEIGHT), frames

            _, event = await request_and_event(peer, {"bitrate": 128000})
            assert plugin_data(event) == ECHO_OK, event
            await peer.wait_frames(video=15, audio=25, timeout=5)
            assert not peer.janus.events_for(peer.handle, "hangup"), peer.janus.events
        finally:
            await peer.close()

    run(body())


REFUSED_REQUESTS = [
    # Not an EchoTest attribute in Janus 1.1.2 (nor in later Janus: the VideoRoom has it).
    ({"keyframe": True}, NO_ATTRIBUTES),
    ({}, NO_ATTRIBUTES),
    ({"video": "yes"}, {"echotest": "event", "error_code": 413,
                        "error": "Invalid element type (video should be a boolean)"}),
    ({"bitrate": "x"}, {"echotest": "event", "error_code": 413,
                        "error": "Invalid element type (bitrate should be a positive integer)"}),
]


def test_refused_requests(server, trace):
    """Janus acks these, then puts error 413 in the event; media goes on untouched."""
    trace["servers"].append(server)

    async def body():
        peer = await EchoPeer.connect(server.http_url, ECHO)
        trace["peers"].append(peer)
        try:
            await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
            wrong = []
            for request, expected in REFUSED_REQUESTS:
                _, event = await request_and_event(peer, request)
                if plugin_data(event) != expected:
                    wrong.append((request, plugin_data(event), expected))
            assert wrong == [], "\n".join(f"{r}: got {g}, Janus answers {e}" for r, g, e in wrong)
            await peer.wait_frames(video=15, audio=25, timeout=5)
        finally:
            await peer.close()

    run(body())


# --------------------------------------------------------------------------------------------
# e. hangup

def test_hangup_then_new_offer_on_the_same_handle(server, trace):
    trace["servers"].append(server)

    async def body():
        janus = await open_janus(server.http_url)
        peer = second = None
        try:
            peer = await EchoPeer.connect(janus, ECHO)
            trace["peers"].append(peer)
            handle = peer.handle
            await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
            start = len(janus.events)
            reply = await janus.hangup(handle)
            assert reply.get("janus") == "success" and set(reply) == {"janus", "session_id", "transaction"}, reply
            hangup = await janus.wait_event(lambda e: e.get("janus") == "hangup" and e.get("sender") == handle,
                                            5, start)
            assert hangup == {"janus": "hangup", "session_id": janus.session_id, "sender": handle,
                              "reason": "Janus API"}, hangup
            done = await janus.wait_event(lambda e: e.get("janus") == "event" and e.get("sender") == handle,
                                          5, start)
            assert plugin_data(done) == ECHO_DONE, done
            assert "transaction" not in done and "jsep" not in done, done
            # The PeerConnection is gone: nothing more is echoed (a second for frames in flight to
            # drain, then a window; an absence has no event to wait for).
            await asyncio.sleep(1.0)
            before, after = await frames_after(peer, 1.5)
            assert after == before, f"frames still echoed after hangup: {before} -> {after}"

            # Hanging up again (no PeerConnection any more): success, and no events at all.
            start = len(janus.events)
            reply = await janus.hangup(handle)
            assert reply.get("janus") == "success", reply
            await asyncio.sleep(1.5)  # a window in which no event may come
            assert janus.events_for(handle, start=start) == [], janus.events[start:]

            # The handle stays: a new offer on it is echoed again.
            await peer.pc.close()
            second = await EchoPeer.connect(janus, ECHO, handle=handle)
            trace["peers"].append(second)
            assert_answer(second, server, ["audio", "video"])
            await second.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
        finally:
            for p in (second, peer):
                if p is not None:
                    await p.close()
            if janus.session_id is not None:
                await janus.destroy()
            await janus.close()

    run(body())


# --------------------------------------------------------------------------------------------
# f. a peer that vanishes (Atrium: consent freshness)

class LongPoller:
    """Long-polls one session over HTTP in a thread, as a janus.js page would, stamping each event
    with its arrival time. The poll is never cut short (it could swallow an event); it ends when
    the server answers 404 or goes away."""

    def __init__(self, http_url: str, session_id: int):
        self.url = f"{http_url}/{session_id}"
        self.events: list[tuple[float, dict]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"observer-{session_id}", daemon=True)
        self._thread.start()

    def _run(self):
        http = requests.Session()
        while not self._stop.is_set():
            try:
                r = http.get(self.url, params={"maxev": 10, "rid": int(time.time() * 1000)}, timeout=45)
            except requests.RequestException as e:
                self.errors.append(repr(e))
                return
            if r.status_code != 200:
                self.errors.append(f"HTTP {r.status_code} {r.content[:200]!r}")
                return
            batch = r.json()
            for event in batch if isinstance(batch, list) else [batch]:
                if event.get("janus") != "keepalive":
                    self.events.append((time.monotonic(), event))

    def stop(self):
        self._stop.set()

    def find(self, pred) -> tuple[float, dict] | None:
        return next(((t, e) for t, e in list(self.events) if pred(e)), None)


class ChildLines:
    """The JSON lines a child process prints, read in a thread."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: "queue.Queue[dict]" = queue.Queue()
        self.last: dict | None = None
        threading.Thread(target=self._run, args=(proc,), daemon=True).start()

    def _run(self, proc):
        for line in proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def next(self, timeout: float) -> dict:
        """The next line; queue.Empty after *timeout* or as soon as the child has exited."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.last = self.lines.get(timeout=0.2)
                return self.last
            except queue.Empty:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise

    def latest(self) -> dict | None:
        while True:
            try:
                self.last = self.lines.get_nowait()
            except queue.Empty:
                return self.last


@pytest.mark.atrium_only
def test_vanished_peer_is_hung_up_after_consent_expires(start_atrium, trace, tmp_path):
    require_media_ip()
    consent = 5
    atrium = start_atrium(media_config(consent_timeout_seconds=consent), name="consent")
    srv = atrium_echo_server(atrium)
    trace["servers"].append(srv)
    stderr = open(tmp_path / "child.stderr", "w")
    # The child checks consent every ~1 s (aioice's default is 4-6 s: more than this short timeout).
    child = subprocess.Popen([sys.executable, "-m", "rtc_peer", "--http", atrium.http_url,
                              "--consent-interval", "1"],
                             cwd=HERE, stdout=subprocess.PIPE, stderr=stderr, text=True)
    observer = None
    try:
        out = ChildLines(child)
        try:
            first = out.next(timeout=30)
        except queue.Empty:
            child.kill()
            child.wait()
            raise AssertionError(f"the child peer never reported echoed frames (exit {child.returncode}):\n"
                                 f"{(tmp_path / 'child.stderr').read_text()[-4000:]}")
        session, handle = first["session_id"], first["handle_id"]
        trace["notes"].append(first)
        observer = LongPoller(atrium.http_url, session)

        # While the child lives and checks consent, nothing is hung up, for longer than the timeout.
        alive_until = time.monotonic() + consent + 2
        while time.monotonic() < alive_until:
            time.sleep(0.2)
            assert child.poll() is None, f"child died:\n{(tmp_path / 'child.stderr').read_text()[-4000:]}"
        latest = out.latest()
        assert latest["video"] >= first["video"] + 30 and latest["audio"] >= first["audio"] + 100, \
            f"the child's echo stalled before it was killed: {first} -> {latest}"
        early = observer.find(lambda e: e.get("sender") == handle and e.get("janus") in ("hangup", "detached"))
        assert early is None, f"hung up while the peer was alive: {early}"

        child.send_signal(signal.SIGKILL)
        child.wait(timeout=5)
        killed = time.monotonic()
        deadline = killed + consent + 5
        found = None
        while found is None and time.monotonic() < deadline:
            time.sleep(0.1)
            found = observer.find(lambda e: e.get("sender") == handle and e.get("janus") == "hangup")
        trace["notes"].append({"events": observer.events, "poll_errors": observer.errors})
        assert found is not None, (f"no hangup for handle {handle} within {consent + 5}s of the kill; "
                                   f"events: {observer.events}; poll errors: {observer.errors}")
        at, hangup = found
        assert hangup == {"janus": "hangup", "session_id": session, "sender": handle, "reason": "ICE failed"}, hangup
        print(f"hangup {at - killed:.1f}s after the kill (consent timeout {consent}s)")
        # The session outlives its PeerConnection, and the server is fine.
        r = requests.post(f"{atrium.http_url}/{session}", json={"janus": "keepalive", "transaction": "k1"}, timeout=5)
        assert r.json().get("janus") == "ack", r.text
        assert atrium.alive(), atrium.log()[-4000:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        stderr.close()
        if observer is not None:
            observer.stop()


# --------------------------------------------------------------------------------------------
# g. datagrams from a stranger (Atrium: one media port for everyone)

MAGIC = 0x2112A442


def stun_binding_request(username: str | None, key: bytes | None, *, fingerprint: bool = True,
                         controlling: bool = True) -> bytes:
    """A STUN binding request as an ICE agent sends it; MESSAGE-INTEGRITY with *key* when given."""
    txid = os.urandom(12)
    attrs = b""

    def attr(kind: int, value: bytes) -> bytes:
        return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)

    if username is not None:
        attrs += attr(0x0006, username.encode())
    attrs += attr(0x0024, struct.pack("!I", 1853824767))                       # PRIORITY
    attrs += attr(0x802A if controlling else 0x8029, os.urandom(8))           # ICE-CONTROLLING/-ED
    if key is not None:
        header = struct.pack("!HHI", 0x0001, len(attrs) + 24, MAGIC) + txid
        attrs += attr(0x0008, hmac.new(key, header + attrs, hashlib.sha1).digest())
    if fingerprint:
        header = struct.pack("!HHI", 0x0001, len(attrs) + 8, MAGIC) + txid
        crc = (zlib.crc32(header + attrs) ^ 0x5354554E) & 0xFFFFFFFF
        attrs += attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", 0x0001, len(attrs), MAGIC) + txid + attrs


def dtls_client_hello() -> bytes:
    """A genuine DTLS 1.2 ClientHello (pyOpenSSL, memory BIO): what starts a handshake."""
    from OpenSSL import SSL
    connection = SSL.Connection(SSL.Context(SSL.DTLS_METHOD), None)
    connection.set_connect_state()
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        pass
    return connection.bio_read(65536)


def fake_rtp(length: int, ssrc: int | None = None, payload_type: int | None = None) -> bytes:
    header = struct.pack("!BBHII", 0x80, payload_type if payload_type is not None else random.choice([96, 97, 111, 0]),
                         random.randrange(65536), random.randrange(2 ** 32),
                         ssrc if ssrc is not None else random.randrange(2 ** 32))
    data = header + os.urandom(max(0, length - len(header)))
    return data[:length]


def stranger_datagrams(server_ufrag: str, client_ufrag: str, peer_ssrcs: list[int]) -> list[tuple[str, bytes]]:
    real_username = f"{server_ufrag}:{client_ufrag}"
    out: list[tuple[str, bytes]] = []
    for n in (1, 3, 17, 64, 200, 1200):
        out.append((f"random {n} bytes", os.urandom(n)))
    for first in (0x00, 0x01, 0x03, 0x14, 0x16, 0x17, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xFF):
        out.append((f"random, first byte {first:#x}", bytes([first]) + os.urandom(40)))
    out.append(("empty datagram", b""))
    good_shape = stun_binding_request(real_username, os.urandom(20))
    for n in (1, 4, 10, 19):
        out.append((f"STUN header truncated to {n} bytes", good_shape[:n]))
    out.append(("STUN header claiming more attributes than sent", good_shape[:20] + good_shape[20:28]))
    out.append(("binding request, unknown USERNAME", stun_binding_request("nobody:stranger", os.urandom(16))))
    out.append(("binding request, no USERNAME", stun_binding_request(None, os.urandom(16))))
    out.append(("binding request, real ufrags, wrong MESSAGE-INTEGRITY",
                stun_binding_request(real_username, b"not-the-ice-password-at-all")))
    out.append(("binding request, real ufrags, no MESSAGE-INTEGRITY", stun_binding_request(real_username, None)))
    out.append(("binding request, ufrags reversed, wrong MESSAGE-INTEGRITY",
                stun_binding_request(f"{client_ufrag}:{server_ufrag}", os.urandom(16))))
    out.append(("DTLS record header with garbage", bytes([22, 0xFE, 0xFD, 0, 0]) + os.urandom(6)
                + struct.pack("!H", 60) + os.urandom(60)))
    out.append(("DTLS ClientHello from a stranger", dtls_client_hello()))
    out.append(("DTLS application data garbage", bytes([23, 0xFE, 0xFD, 0, 1]) + os.urandom(6)
                + struct.pack("!H", 100) + os.urandom(100)))
    for n in list(range(0, 13)) + [20, 100, 1200]:
        out.append((f"fake SRTP, {n} bytes", fake_rtp(n)))
    for ssrc in peer_ssrcs:
        out.append((f"fake SRTP with the peer's SSRC {ssrc}", fake_rtp(200, ssrc)))
        out.append((f"fake SRTCP receiver report for SSRC {ssrc}", fake_rtp(60, ssrc, payload_type=201)))
    return out


@pytest.mark.atrium_only
def test_datagrams_from_a_stranger_are_ignored(start_atrium, trace):
    require_media_ip()
    atrium = start_atrium(media_config(), name="stranger")
    srv = atrium_echo_server(atrium)
    trace["servers"].append(srv)

    async def body():
        peer = await EchoPeer.connect(atrium.ws_url, ECHO)
        trace["peers"].append(peer)
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert_answer(peer, srv, ["audio", "video"])
            await peer.wait_frames(VIDEO_FRAMES, AUDIO_FRAMES, timeout=MEDIA_WAIT)
            target = (MEDIA_IP, srv.udp_port)
            server_ufrag, client_ufrag = ice_ufrag(peer.answer_sdp), ice_ufrag(peer.offer_sdp)
            assert server_ufrag and client_ufrag, (peer.offer_sdp, peer.answer_sdp)
            datagrams = stranger_datagrams(server_ufrag, client_ufrag, ssrcs(peer.offer_sdp))
            start_events = len(peer.janus.events)
            stranger.bind((MEDIA_IP, 0))
            stranger.setblocking(False)
            sent = []
            for what, data in datagrams:
                stranger.sendto(data, target)
                sent.append(what)
                await asyncio.sleep(0.01)
            burst = [random.choice(datagrams) for _ in range(300)]
            for what, data in burst:
                stranger.sendto(data, target)
            trace["notes"].append(f"sent {len(sent)} kinds + a burst of {len(burst)}: {sent}")

            # The peer goes on being echoed, nobody is hung up, and the stranger hears nothing.
            frames = await peer.wait_frames(video=30, audio=100, timeout=8)
            assert (frames["width"], frames["height"]) == (WIDTH, HEIGHT), frames
            answered = []
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    data, source = stranger.recvfrom(65536)
                    answered.append((source, data[:64].hex()))
                except BlockingIOError:
                    await asyncio.sleep(0.05)
            assert answered == [], f"the stranger got answers: {answered}"
            bad = [e for e in peer.janus.events[start_events:]
                   if e.get("sender") == peer.handle and e.get("janus") in ("hangup", "detached")]
            assert bad == [], bad
            info = requests.get(f"{atrium.http_url}/info", timeout=5)
            assert info.status_code == 200 and info.json().get("janus") == "server_info", info.text
            assert atrium.alive()

            # Control: the same port does answer a well-formed check with the right password (a
            # new, peer-reflexive address for this peer; no USE-CANDIDATE, so media stays put).
            # This proves the silence above was the server's choice, not a wrong port.
            password = next(line.split(":", 1)[1].strip() for line in peer.answer_sdp.splitlines()
                            if line.startswith("a=ice-pwd:"))
            request = stun_binding_request(f"{server_ufrag}:{client_ufrag}", password.encode())
            probe.bind((MEDIA_IP, 0))
            probe.settimeout(0)
            probe.sendto(request, target)
            reply = None
            deadline = time.monotonic() + 3
            while reply is None and time.monotonic() < deadline:
                try:
                    reply = probe.recv(2048)
                except BlockingIOError:
                    await asyncio.sleep(0.05)
            assert reply is not None, "a valid binding request got no response: is the media port right?"
            assert reply[:2] == b"\x01\x01" and reply[8:20] == request[8:20], reply.hex()
            await peer.wait_frames(video=15, audio=25, timeout=5)
        finally:
            stranger.close()
            probe.close()
            await peer.close()

    run(body())


# --------------------------------------------------------------------------------------------
# h. janus.js in headless Chromium

def video_stats(driver) -> dict | None:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.videoStats().then(done, function (e) { done({error: String(e)}); });")


def selected_pair(driver) -> dict | None:
    """The candidate pair Chromium's ICE selected (protocol and type of each side)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.selectedPair().then(done, function (e) { done({error: String(e)}); });")


def assert_video_decoding(driver, first_within: float = 10.0):
    """Frames are decoded within *first_within* seconds, and more 1.5 s later."""
    first = video_stats(driver)
    deadline = time.monotonic() + first_within
    while time.monotonic() < deadline and not (first and first.get("framesDecoded", 0) > 0):
        time.sleep(0.2)
        first = video_stats(driver)
    assert first and first["framesDecoded"] > 0, first
    assert_more_frames_decoded(driver, first)


def assert_more_frames_decoded(driver, first: dict, within: float = 5.0) -> dict:
    """Video goes on: more frames than `first` counted are decoded within `within` seconds."""
    deadline = time.monotonic() + within
    second = video_stats(driver) or {}
    while second.get("framesDecoded", 0) <= first["framesDecoded"] and time.monotonic() < deadline:
        time.sleep(0.1)
        second = video_stats(driver) or {}
    assert second.get("framesDecoded", 0) > first["framesDecoded"], (first, second)
    return second


@pytest.mark.parametrize("transport,data", [("websocket", False), ("http", False), ("websocket", True)],
                         ids=["websocket", "http", "websocket-datachannel"])
def test_janusjs_echotest_in_chromium(server, page_server, chromium, transport, data):  # noqa: F811 - fixtures
    """The EchoTest demo's flow in a real browser. With a data channel offered too: Janus opens it
    and echoes text; Atrium rejects it, and Chromium must still take the answer and play media."""
    query = {"server": server.url(transport), "plugin": ECHO, "data": "1" if data else "0"}
    url = f"{page_server}/janusjs-echotest.html?" + urlencode(query)
    driver = chromium("echo")
    started = time.monotonic()
    try:
        driver.get(url)
        wait_for(driver, "echo", "webrtcup", lambda r: r["webrtcup"], timeout=20)
        wait_for(driver, "echo", "the remote video track", lambda r: [t for t in r["remoteTracks"]
                                                                       if t["kind"] == "video" and t["on"]])
        deadline = time.monotonic() + 10
        element = None
        while time.monotonic() < deadline:
            element = driver.execute_script("return window.videoElement();")
            if element["videoWidth"] > 0 and not element["paused"]:
                break
            time.sleep(0.1)
        assert element and element["videoWidth"] > 0 and element["videoHeight"] > 0, element
        assert not element["paused"], element

        first = video_stats(driver)
        assert first and "error" not in first, first
        assert first["framesDecoded"] > 0, first
        assert_more_frames_decoded(driver, first)

        r = results(driver)
        assert r["events"][0]["data"] == ECHO_OK and r["events"][0]["jsep"] == {"type": "answer"}, r["events"]
        assert r["offerSent"] and r["offerReply"] is None, r  # an ack: janus.js's success gets nothing
        assert {m["type"] for m in r["media"] if m["on"]} == {"audio", "video"}, r["media"]
        if data and server.kind == "atrium":
            application = media_summary(r["answer"]["sdp"])[-1]
            assert application["kind"] == "application" and application["port"] == 0, r["answer"]["sdp"]
            time.sleep(1.0)  # a window: a channel that never opens sends no event to await
            assert results(driver)["dataOpen"] == [], "a rejected data channel opened"
        elif data:
            wait_for(driver, "echo", "the data channel", lambda r: r["dataOpen"])
            driver.execute_script("window.sendData('hello from chromium');")
            got = wait_for(driver, "echo", "the echoed text", lambda r: r["dataReceived"])
            assert got == ["Janus EchoTest here! You wrote: hello from chromium"], got
        r = results(driver)
        assert r["errors"] == [], r["errors"]
        janus_errors = r["janusErrors"]
        if data and server.kind == "atrium":
            # Chromium fails the channel of a rejected m=application; janus.js logs that.
            janus_errors = [e for e in janus_errors if not e.startswith("Got error on data channel")]
        assert janus_errors == [], r["janusErrors"]
        driver.execute_script("window.finish();")
        wait_for(driver, "echo", "destroy", lambda r: r["destroyed"])
        assert results(driver)["destroyed"] == "ok"
        assert server.alive()
    except BaseException:
        save_artifacts(chromium, server, f"echotest-janusjs-{server.kind}-{transport}{'-data' if data else ''}")
        raise
    finally:
        print(f"janus.js echotest over {transport}: {time.monotonic() - started:.1f}s")
