"""What the SFU tests share: the server under test, VideoRoom handles over the Janus API, and aiortc
publishers and subscribers.

The server is Atrium with its SFU plugin (libatrium_sfu.so, reachable as janus.plugin.videoroom;
conftest.sfu_plugin_entry) or, with ``ATRIUM_E2E_SFU=janus``, the real Janus 1.1.2 VideoRoom
(janus_reference.start_janus with ``videoroom_rooms=``), both given the same rooms (ROOMS) and the
same admin_key (ADMIN_KEY), gathering on MEDIA_IP. The module-scoped fixture ``sfu`` (conftest.py)
starts it with ``start_sfu``; ``sfu_trace`` saves its log and the sessions' events on failure.

Handles (async, over rtc_peer's HttpAsyncJanus / WsAsyncJanus, one Janus session per participant):

* ``VideoRoomHandle.sync(body)``: a synchronous request; returns plugindata.data of the
  ``success`` reply (an error is also a ``success`` whose data has error_code/error).
* ``VideoRoomHandle.call(body, jsep)``: an asynchronous request; checks the ``ack`` and returns the
  ``event`` that carries the request's transaction (``.data`` / ``.jsep`` of an ``Event``).
* ``VideoRoomHandle.wait(pred)``: the next unsolicited event of this handle matching pred(data).

aiortc peers:

* ``Publisher``: joins as a publisher (``join``), then ``publish()`` offers a 320x240 pattern and a
  440 Hz tone (``SwitchableTone``: ``publisher.tone.silent = True`` sends silence) and applies the
  answer.
* ``Subscriber``: joins as a subscriber with ``streams``, answers the plugin's offer with ``start``
  and decodes every track it receives, counted per subscriber mid (``counts()``);
  ``renegotiate(event)`` answers a later offer (``updated``) the same way.
"""
from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

from conftest import (AtriumServer, BUILD_DIR, ServerUnderTest, MEDIA_IP, MEDIA_THREADS, base_config, free_udp_port,
                      require_media_ip, sfu_plugin_entry)
from janus_reference import start_janus
from janus_client import AsyncJanus, JanusError, open_janus
from rtc_peer import PatternVideoTrack, ToneAudioTrack, for_aiortc, media_summary

SFU_KIND = os.environ.get("ATRIUM_E2E_SFU", "atrium")
VIDEOROOM = "janus.plugin.videoroom"
ADMIN_KEY = "e2e-admin-key"
SECRET = "adminpwd"

# The rooms both servers start with: Debian's two demo rooms (janus.plugin.videoroom.jcfg) and a
# private one, which `list` shows only with the admin_key.
ROOMS = [
    {"room": 1234, "description": "Demo Room", "secret": SECRET, "publishers": 6, "bitrate": 128000,
     "fir_freq": 10, "record": False},
    {"room": 5678, "description": "VP9-SVC Demo Room", "secret": SECRET, "publishers": 6, "bitrate": 512000,
     "fir_freq": 10, "videocodec": "vp9", "video_svc": True},
    {"room": 4321, "description": "Hidden Room", "secret": SECRET, "publishers": 3, "is_private": True},
]


# --------------------------------------------------------------------------------------------
# The server under test

SfuServer = ServerUnderTest


def start_sfu(folder: Path, rooms: list[dict] = ROOMS, admin_key: str | None = ADMIN_KEY):
    """Starts the server under test; returns (SfuServer, stop) where stop() returns an error text
    (or None)."""
    require_media_ip()
    if SFU_KIND == "janus":
        janus = start_janus(folder, ice_ip=MEDIA_IP, videoroom_rooms=rooms,
                            videoroom_general={"admin_key": admin_key})
        server = ServerUnderTest("janus", janus.http_url, janus.ws_url, janus.log_path, janus.alive, None)

        def stop():
            janus.stop()
            return None
        return server, stop
    if SFU_KIND == "atrium":
        udp_port = free_udp_port(MEDIA_THREADS)
        config = base_config([sfu_plugin_entry(admin_key=admin_key, rooms=rooms)],
                             media={"udp_port": udp_port, "consent_timeout_seconds": 30})
        atrium = AtriumServer(config, folder / "atrium")
        try:
            atrium.start()
        except AssertionError as e:
            plugin = BUILD_DIR / "libatrium_sfu.so"
            hint = "" if plugin.exists() else (
                f"\n{plugin} does not exist: the SFU plugin is not built (yet). "
                f"ATRIUM_E2E_SFU=janus runs these tests against the real Janus VideoRoom instead.")
            pytest.fail(f"atrium with the SFU plugin did not start{hint}\n{e}", pytrace=False)
        server = ServerUnderTest.of_atrium(atrium)

        def stop():
            code = atrium.stop()
            return None if code == 0 else f"atrium did not stop cleanly (exit {code}):\n{atrium.log()[-4000:]}"
        return server, stop
    pytest.fail(f"ATRIUM_E2E_SFU={SFU_KIND!r}: expected 'atrium' or 'janus'", pytrace=False)


def run(coro, timeout: float = 60.0):
    """Runs one test's coroutine with a bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_room_id() -> int:
    return random.randrange(100_000, 2**31)


# --------------------------------------------------------------------------------------------
# VideoRoom handles

@dataclass
class Event:
    """A plugin event: the whole Janus message, its plugindata.data and its jsep (or None)."""
    raw: dict
    data: dict = field(default_factory=dict)
    jsep: dict | None = None

    @classmethod
    def of(cls, message: dict) -> "Event":
        plugindata = message.get("plugindata") or {}
        return cls(message, plugindata.get("data") or {}, message.get("jsep"))


def is_error(data: dict, code: int | None = None) -> bool:
    return "error_code" in data and (code is None or data["error_code"] == code)


def assert_error(data: dict, code: int, message: str | None = None) -> None:
    """A VideoRoom error: {"videoroom":"event","error_code":code,"error":"..."} and nothing else."""
    assert set(data) == {"videoroom", "error_code", "error"}, data
    assert data["videoroom"] == "event" and data["error_code"] == code, data
    assert isinstance(data["error"], str) and data["error"], data
    if message is not None:
        assert data["error"] == message, data


def assert_roster_event(data: dict, expected: dict, display: str | None = None) -> None:
    """A "leaving"/"kicked"/"unpublished" event to the others. Janus 1.1.2 sends exactly
    *expected*; later Janus versions (and the reference notes) add the participant's "display"
    and "metadata", which janus.js ignores: tolerated when right."""
    assert {k: data.get(k) for k in expected} == expected, data
    extra = set(data) - set(expected)
    assert extra <= {"display", "metadata"}, data
    if "display" in data:
        assert data["display"] == display, data


class VideoRoomHandle:
    def __init__(self, janus: AsyncJanus, handle: int):
        self.janus = janus
        self.id = handle
        self._consumed: set[int] = set()  # id() of the events call() and wait() already returned

    @classmethod
    async def attach(cls, janus: AsyncJanus) -> "VideoRoomHandle":
        return cls(janus, await janus.attach(VIDEOROOM))

    def plugin_events(self, start: int = 0) -> list[Event]:
        return [Event.of(e) for e in self.janus.events[start:]
                if e.get("sender") == self.id and e.get("janus") == "event"]

    async def sync(self, body: dict) -> dict:
        reply = await self.janus.message(self.id, body)
        assert reply.get("janus") == "success", f"{body}: expected a synchronous success, got {reply}"
        assert reply.get("sender") == self.id, reply
        assert reply["plugindata"]["plugin"] == VIDEOROOM, reply
        return reply["plugindata"]["data"]

    async def call(self, body: dict, jsep: dict | None = None, timeout: float = 10.0) -> Event:
        start = len(self.janus.events)
        reply = await self.janus.message(self.id, body, jsep)
        assert reply.get("janus") == "ack", f"{body}: expected an ack, got {reply}"
        tx = reply["transaction"]
        event = await self.janus.wait_event(
            lambda e: e.get("sender") == self.id and e.get("janus") == "event" and e.get("transaction") == tx,
            timeout, start)
        self._consumed.add(id(event))
        assert event["plugindata"]["plugin"] == VIDEOROOM, event
        return Event.of(event)

    def mark(self) -> int:
        """Everything received so far counts as seen: wait() only looks at later events. Returns
        the index of the next event (for events_since)."""
        self._consumed.update(id(e) for e in self.janus.events)
        return len(self.janus.events)

    def events_since(self, start: int, kind: str = "event") -> list[dict]:
        """This handle's messages (janus == kind) received since index *start*, whole."""
        return [e for e in self.janus.events[start:] if e.get("sender") == self.id and e.get("janus") == kind]

    async def wait(self, pred: Callable[[dict], bool], timeout: float = 10.0, kind: str = "event") -> Event:
        """The first event of this handle (janus == kind) not returned before whose
        plugindata.data satisfies pred; with kind other than "event" pred gets the whole message."""

        def match(e: dict) -> bool:
            if e.get("sender") != self.id or e.get("janus") != kind or id(e) in self._consumed:
                return False
            return pred(Event.of(e).data if kind == "event" else e)

        event = await self.janus.wait_event(match, timeout, 0)
        self._consumed.add(id(event))
        return Event.of(event)

    async def absent(self, pred: Callable[[dict], bool], seconds: float, kind: str = "event") -> None:
        """No event matching pred (not returned before) arrives within *seconds*."""
        try:
            event = await self.wait(pred, seconds, kind)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event: {event.raw}")


async def session(server: SfuServer, transport: str = "websocket", trace: dict | None = None) -> AsyncJanus:
    janus = await open_janus(server.url(transport))
    await janus.create()
    if trace is not None:
        trace["janus"].append(janus)
    return janus


async def manager(server: SfuServer, transport: str = "websocket", trace: dict | None = None) -> VideoRoomHandle:
    """A handle for synchronous requests (create, list, ...), on its own session."""
    return await VideoRoomHandle.attach(await session(server, transport, trace))


async def create_room(handle: VideoRoomHandle, **props) -> int:
    """Creates a room with a random id (unless props has "room") and the admin_key; returns its id."""
    body = {"request": "create", "room": new_room_id(), "admin_key": ADMIN_KEY, "secret": SECRET, **props}
    data = await handle.sync(body)
    assert data.get("videoroom") == "created" and data.get("room") == body["room"], data
    return body["room"]


async def close_janus(janus: AsyncJanus) -> None:
    try:
        await janus.destroy()
    except Exception:  # noqa: BLE001 - best effort at the end of a test
        pass
    await janus.close()


# --------------------------------------------------------------------------------------------
# aiortc peers

class SwitchableTone(ToneAudioTrack):
    """The 440 Hz tone (about -12 dBov, so aiortc's ssrc-audio-level says 12), or digital silence
    (level 127) while .silent is true."""

    def __init__(self):
        super().__init__()
        self.silent = False

    async def recv(self):
        frame = await super().recv()
        if self.silent:
            frame.planes[0].update(bytes(frame.samples * 2))
        return frame


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


class Publisher:
    """A participant's publisher handle: join, then (optionally) publish from aiortc."""

    def __init__(self, janus: AsyncJanus, handle: VideoRoomHandle):
        self.janus = janus
        self.handle = handle
        self.joined: Event | None = None
        self.id: int | None = None
        self.private_id: int | None = None
        self.pc: RTCPeerConnection | None = None
        self.tone: SwitchableTone | None = None
        self.configured: Event | None = None
        self.offer_sdp = ""
        self.answer_sdp = ""

    @classmethod
    async def join(cls, server: SfuServer, room: int, display: str | None = None, transport: str = "websocket",
                   trace: dict | None = None, **extra) -> "Publisher":
        janus = await session(server, transport, trace)
        pub = cls(janus, await VideoRoomHandle.attach(janus))
        body = {"request": "join", "ptype": "publisher", "room": room, **extra}
        if display is not None:
            body["display"] = display
        pub.joined = await pub.handle.call(body)
        assert pub.joined.data.get("videoroom") == "joined", pub.joined.raw
        pub.id = pub.joined.data["id"]
        pub.private_id = pub.joined.data.get("private_id")
        return pub

    async def publish(self, audio: bool = True, video: bool = True, body: dict | None = None,
                      timeout: float = 15.0) -> Event:
        pc = self.pc = new_pc()
        if audio:
            self.tone = SwitchableTone()
            pc.addTrack(self.tone)
        if video:
            pc.addTrack(PatternVideoTrack())
        await pc.setLocalDescription(await pc.createOffer())
        self.offer_sdp = pc.localDescription.sdp
        self.configured = await self.handle.call(body or {"request": "publish"},
                                                 {"type": "offer", "sdp": self.offer_sdp}, timeout)
        assert self.configured.data.get("configured") == "ok", self.configured.raw
        assert self.configured.jsep and self.configured.jsep["type"] == "answer", self.configured.raw
        self.answer_sdp = self.configured.jsep["sdp"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=for_aiortc(self.answer_sdp), type="answer"))
        # A feed can be subscribed to once its PeerConnection is up (Janus answers 428 before).
        await self.handle.wait(lambda m: True, timeout, kind="webrtcup")
        return self.configured

    def mids(self) -> dict[str, str]:
        """{kind: mid} of the published offer."""
        return {m["kind"]: m["mid"] for m in media_summary(self.offer_sdp)}

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        await close_janus(self.janus)


class Subscriber:
    """A subscriber handle with an aiortc PeerConnection that decodes whatever it is sent."""

    def __init__(self, janus: AsyncJanus, handle: VideoRoomHandle):
        self.janus = janus
        self.handle = handle
        self.pc = new_pc()
        self.attached: Event | None = None
        self.offers: list[str] = []
        self.answers: list[str] = []
        self.tracks: dict[str, dict] = {}   # subscriber mid -> {"kind", "frames", "width", "height"}
        self._tasks: list[asyncio.Task] = []

        @self.pc.on("track")
        def on_track(track):
            mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            entry = {"kind": track.kind, "frames": 0, "width": None, "height": None}
            self.tracks[str(mid)] = entry
            self._tasks.append(asyncio.ensure_future(self._consume(track, entry)))

    @classmethod
    async def join(cls, server: SfuServer, room: int, streams: list[dict], transport: str = "websocket",
                   trace: dict | None = None, janus: AsyncJanus | None = None, answer: bool = True,
                   **extra) -> "Subscriber":
        """Joins with ``streams``; with answer=True answers the offer with ``start``."""
        janus = janus or await session(server, transport, trace)
        sub = cls(janus, await VideoRoomHandle.attach(janus))
        sub.attached = await sub.handle.call({"request": "join", "ptype": "subscriber", "room": room,
                                              "streams": streams, **extra})
        assert sub.attached.data.get("videoroom") == "attached", sub.attached.raw
        assert sub.attached.jsep and sub.attached.jsep["type"] == "offer", sub.attached.raw
        if answer:
            await sub.answer(sub.attached)
        return sub

    async def answer(self, event: Event, body: dict | None = None) -> Event:
        """Applies the offer in *event*, answers it with ``start`` (or *body*); returns the event
        answering that request ({"started":"ok"})."""
        assert event.jsep and event.jsep["type"] == "offer", event.raw
        self.offers.append(event.jsep["sdp"])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=event.jsep["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp = self.pc.localDescription.sdp
        self.answers.append(sdp)
        started = await self.handle.call(body or {"request": "start"}, {"type": "answer", "sdp": sdp})
        assert started.data.get("started") == "ok", started.raw
        return started

    async def _consume(self, track, entry: dict) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                entry["width"], entry["height"] = frame.width, frame.height
            entry["frames"] += 1

    def counts(self) -> dict[str, int]:
        return {mid: t["frames"] for mid, t in self.tracks.items()}

    async def wait_frames(self, mids: dict[str, int], timeout: float = 15.0) -> dict[str, int]:
        """Waits until each subscriber mid in *mids* decoded that many more frames."""
        base = {mid: self.tracks.get(mid, {}).get("frames", 0) for mid in mids}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.counts()
            if all(now.get(mid, 0) - base[mid] >= n for mid, n in mids.items()):
                return now
            await asyncio.sleep(0.05)
        raise TimeoutError(f"wanted {mids} more frames than {base} within {timeout}s; have {self.counts()}, "
                           f"tracks {self.tracks}, ICE {self.pc.iceConnectionState}")

    async def frames_during(self, seconds: float, drain: float = 0.0) -> dict[str, int]:
        """How many frames each mid decoded during the next *seconds*, after *drain* seconds in
        which frames already in flight may still arrive. Showing that media stopped takes such a
        window: an absence has no event to wait for, and the last frame sent before a change
        cannot be told from the first one after it."""
        if drain:
            await asyncio.sleep(drain)
        before = self.counts()
        await asyncio.sleep(seconds)
        after = self.counts()
        return {mid: after[mid] - before.get(mid, 0) for mid in after}

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await close_janus(self.janus)


def stream_mid(streams: list[dict], feed: int, kind: str) -> str:
    """The subscriber mid of *feed*'s stream of *kind* in an attached/updated streams list."""
    for s in streams:
        if s.get("feed_id") == feed and s.get("type") == kind:
            return s["mid"]
    raise AssertionError(f"no {kind} stream of feed {feed} in {streams}")


def create_room_sync(server: SfuServer, **props) -> int:
    """create_room for tests that are not async (Chromium): own session, destroyed afterwards."""
    async def body():
        handle = await manager(server)
        try:
            return await create_room(handle, **props)
        finally:
            await close_janus(handle.janus)
    return run(body(), 20)


def sync_request(server: SfuServer, body: dict) -> dict:
    """One synchronous VideoRoom request on a session of its own; returns plugindata.data."""
    async def go():
        handle = await manager(server)
        try:
            return await handle.sync(body)
        finally:
            await close_janus(handle.janus)
    return run(go(), 20)


__all__ = ["ADMIN_KEY", "Event", "JanusError", "Publisher", "ROOMS", "SECRET", "SFU_KIND", "SfuServer",
           "Subscriber", "SwitchableTone", "VIDEOROOM", "VideoRoomHandle", "assert_error", "assert_roster_event", "close_janus",
           "create_room", "create_room_sync", "is_error", "manager", "new_room_id", "run", "session",
           "start_sfu", "stream_mid", "sync_request"]
