"""The soak test: many clients join, publish, subscribe, chat, leave and reconnect against one atrium
process for a given time, while the server's RSS, open fds and threads are sampled.

``make soak`` runs it against the release build for SOAK_MINUTES (default 10) with SOAK_CLIENTS
(default 12) clients; Tests/e2e/test_soak_short.py runs it for about a minute against the debug
build in ``make test``. The binary and plugins come from ATRIUM_BUILD_DIR (default .build/debug),
as for the e2e suite, whose client libraries this imports (Tests/e2e: conftest, rtc_peer,
videoroom_client). It needs the e2e network namespace (MEDIA_IP on a local interface).

Clients, each looping until the time is up (a third of them media, a sixth echo, the rest chat):

* media: a VideoRoom participant on its own session (WebSocket, every third cycle HTTP long poll)
  publishes a small pattern and tone from aiortc, subscribes to its own feed and to another live
  one, checks both are decoded, stays a while, then goes one of five ways: leave cleanly
  (``leave``/``unpublish``/``leave``/``detach``/``destroy``), hang up, destroy the session,
  drop the connection (the TCP connection aborted, or an HTTP client that stops polling), or
  drop and reconnect (a new WebSocket ``claim``s the session, the media must still flow, then it
  leaves cleanly).
* echo: an EchoTest PeerConnection (rtc_peer.EchoPeer) whose echoed frames must decode.
* chat: a Chat participant (WebSocket or HTTP) joins "lobby" or an on-demand room, sends
  broadcast and private messages, sometimes drops its WebSocket and claims its session back, and
  leaves one of the ways above. Every message sent to a participant that was in the room when it
  was sent must reach it before it leaves.

Every ``--interval`` seconds a sample records the server's VmRSS and Threads
(/proc/<pid>/status), its open fds (/proc/<pid>/fd), its CPU time, the /metrics and /health
counters, and the warning/error lines its log gained. After the clients stop, the live gauges of
/metrics (sessions, handles, PeerConnections, publishers, subscribers, chat participants,
connections, queued bytes) must come back to zero, the rooms must be empty, and SIGTERM must stop
the server with exit code 0.

Growth is judged after a warm-up (the first ``--warmup`` fraction of the run, 20 %): the mean of
the samples in the first window after the warm-up against the mean of the samples in the last
window of the run (window: one minute, or 15 % of the run when that is shorter). The run fails when
RSS, fds or threads end more than ``--growth-limit`` (10 %) above where they started, on any client
error, on any error/critical server log line, on a crash or an unclean stop, or on anything left
live after the clients. Warning lines are reported, not judged.

Writes samples.csv, samples.json, errors.json and summary.json in --out (default
Tests/e2e/artifacts/soak-<time>), next to the server's log (atrium/atrium.log).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))

import requests  # noqa: E402
from aiortc import RTCSessionDescription  # noqa: E402

from conftest import (ARTIFACTS, BUILD_DIR, MEDIA_IP, AtriumServer, ServerUnderTest, base_config,  # noqa: E402
                      chat_plugin_entry, echotest_plugin_entry, free_udp_port, sfu_plugin_entry)
from janus_client import AsyncJanus, JanusError, WsAsyncJanus, open_janus  # noqa: E402
from rtc_peer import EchoPeer, PatternVideoTrack, for_aiortc  # noqa: E402
from videoroom_client import (ADMIN_KEY, Event, Publisher, Subscriber, SwitchableTone,  # noqa: E402
                              VideoRoomHandle, new_pc, stream_mid)

SFU_ROOM = 4242
CHAT_ROOMS = ["lobby", "soak-side"]   # "lobby" comes from the configuration; "soak-side" is made on join
CHAT_PLUGIN = "atrium.plugin.chat"
ECHO_PLUGIN = "janus.plugin.echotest"

# Small media keeps many aiortc peers affordable on a small machine; the server's work per packet
# does not depend on the picture.
VIDEO = {"width": 160, "height": 120, "fps": 10.0}

# Server timers short enough that abandoned sessions end within the run's drain check.
SESSION_TIMEOUT = 30
KEEPALIVE_SECONDS = 8    # a session lives on requests only: clients that wait send keepalives
RECLAIM_SECONDS = 10
LONG_POLL_SECONDS = 10

STEP_TIMEOUT = 30.0      # one negotiation or request under a busy machine
CYCLE_TIMEOUT = 180.0    # a whole client cycle
DELIVERY_TIMEOUT = 15.0  # a chat message reaching a participant
FINISH_TIMEOUT = 120.0   # clients finishing their cycle once the time is up
DRAIN_TIMEOUT = SESSION_TIMEOUT + LONG_POLL_SECONDS + RECLAIM_SECONDS + 15

LEAVE_WAYS = ["clean", "clean", "hangup", "destroy", "drop", "reconnect"]
LOG_LEVEL = re.compile(r"^\S+ (warning|error|critical) ")


# --------------------------------------------------------------------------------------------
# What the run saw

@dataclass
class Member:
    """A chat participant as the other clients see it: messages sent to it while it was "joined"
    must all arrive before it leaves."""
    display: str
    room: str
    state: str = "joined"           # joined | draining
    expected: set = field(default_factory=set)


class Soak:
    """Shared state of one run: the deadline, counters, errors and the chat registry."""

    def __init__(self, server: AtriumServer, seconds: float):
        self.server = server
        self.sut = ServerUnderTest.of_atrium(server)
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.counts: dict[str, int] = {}
        self.errors: list[dict] = []
        self.members: dict[str, Member] = {}
        self.live_feeds: set[int] = set()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def time_up(self) -> bool:
        return time.monotonic() >= self.deadline

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def error(self, client: str, phase: str, problem: BaseException | str, events: list | None = None) -> None:
        text = problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}"
        self.errors.append({"t": round(self.elapsed(), 1), "client": client, "phase": phase, "error": text[:1500],
                            "recent_events": json.dumps(events or [], default=str)[-3000:]})
        print(f"[soak {self.elapsed():7.1f}s] ERROR {client} {phase}: {text[:300]}", flush=True)

    def room_members(self, room: str, but: str) -> list[Member]:
        return [m for m in self.members.values() if m.room == room and m.display != but and m.state == "joined"]


def url(soak: Soak, transport: str) -> str:
    return soak.sut.url(transport)


async def new_session(soak: Soak, transport: str) -> AsyncJanus:
    janus = await open_janus(url(soak, transport))
    await janus.create()
    soak.count("sessions")
    return janus


async def abort(janus: AsyncJanus) -> None:
    """Drops the client's connection without a word: the TCP connection of a WebSocket is aborted
    (no close frame); an HTTP client just stops polling. The session is left to the server."""
    if isinstance(janus, WsAsyncJanus) and janus._ws is not None:
        janus._ws.transport.abort()
    await janus.close()


async def reclaim(soak: Soak, old: WsAsyncJanus) -> WsAsyncJanus:
    """A new WebSocket that claims *old*'s session, as janus.js does after a reconnect."""
    janus = await WsAsyncJanus(old.url).open()
    janus.session_id = old.session_id
    reply = await janus.request("claim")
    if reply.get("janus") != "success":
        await janus.close()
        raise JanusError(f"claim refused: {reply}")
    await janus._start_events()
    soak.count("reconnects")
    return janus


async def quietly(coro) -> None:
    try:
        await asyncio.wait_for(coro, 10)
    except Exception:  # noqa: BLE001 - cleanup after a failure
        pass


# --------------------------------------------------------------------------------------------
# Clients

class Client:
    role = "client"

    def __init__(self, soak: Soak, index: int):
        self.soak = soak
        self.index = index
        self.name = f"{self.role}{index}"
        self.phase = "start"
        self.janus: AsyncJanus | None = None

    async def run(self) -> None:
        await asyncio.sleep(self.index * 0.7)   # staggered arrivals
        cycle = 0
        while not self.soak.time_up():
            cycle += 1
            try:
                await asyncio.wait_for(self.cycle(cycle), CYCLE_TIMEOUT)
            except asyncio.CancelledError:
                await self.cleanup()
                raise
            except Exception as e:  # noqa: BLE001 - every failure is recorded, then the client goes on
                self.soak.error(self.name, f"cycle {cycle} {self.phase}", e, self.recent_events())
                await self.cleanup()
                await asyncio.sleep(1.0)

    async def cycle(self, n: int) -> None:
        raise NotImplementedError

    def recent_events(self) -> list:
        """The last events the client's session received, for the error record."""
        return self.janus.events[-6:] if self.janus is not None else []

    async def cleanup(self) -> None:
        if self.janus is not None:
            await quietly(self.janus.close())
            self.janus = None

    async def keepalive(self) -> None:
        reply = await self.janus.request("keepalive")
        if reply.get("janus") != "ack":
            raise JanusError(f"keepalive: {reply}")


class SmallPublisher(Publisher):
    """videoroom_client.Publisher with the soak's small picture."""

    async def publish(self, timeout: float = STEP_TIMEOUT) -> Event:
        pc = self.pc = new_pc()
        self.tone = SwitchableTone()
        pc.addTrack(self.tone)
        pc.addTrack(PatternVideoTrack(**VIDEO))
        await pc.setLocalDescription(await pc.createOffer())
        self.offer_sdp = pc.localDescription.sdp
        self.configured = await self.handle.call({"request": "publish"}, {"type": "offer", "sdp": self.offer_sdp},
                                                 timeout)
        if self.configured.data.get("configured") != "ok" or not self.configured.jsep:
            raise JanusError(f"publish: {self.configured.raw}")
        self.answer_sdp = self.configured.jsep["sdp"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=for_aiortc(self.answer_sdp), type="answer"))
        await self.handle.wait(lambda m: True, timeout, kind="webrtcup")
        return self.configured


def watch_pc(soak: Soak, client: "Client", pc, what: str) -> None:
    """A PeerConnection that fails while in use is an error (one closed by us is not)."""
    @pc.on("connectionstatechange")
    def changed():
        if pc.connectionState == "failed":
            soak.error(client.name, client.phase, f"{what} PeerConnection failed")


class MediaClient(Client):
    """A VideoRoom participant: publish, subscribe to itself and to another live feed, leave."""

    role = "media"

    def __init__(self, soak: Soak, index: int):
        super().__init__(soak, index)
        self.pub: SmallPublisher | None = None
        self.sub: Subscriber | None = None

    async def cycle(self, n: int) -> None:
        soak = self.soak
        transport = "http" if n % 3 == 0 else "websocket"
        way = random.choice(LEAVE_WAYS)
        if transport == "http" and way == "reconnect":
            way = "drop"
        self.phase = f"join ({transport})"
        self.janus = await new_session(soak, transport)
        self.pub = pub = SmallPublisher(self.janus, await VideoRoomHandle.attach(self.janus))
        pub.joined = await pub.handle.call({"request": "join", "ptype": "publisher", "room": SFU_ROOM,
                                            "display": f"{self.name}-{n}"}, timeout=STEP_TIMEOUT)
        if pub.joined.data.get("videoroom") != "joined":
            raise JanusError(f"join: {pub.joined.raw}")
        pub.id = pub.joined.data["id"]
        soak.count("sfu_joins")

        self.phase = "publish"
        await pub.publish()
        watch_pc(soak, self, pub.pc, "publisher")
        soak.count("publishes")
        soak.live_feeds.add(pub.id)

        self.phase = "subscribe"
        others = sorted(soak.live_feeds - {pub.id})
        other = random.choice(others) if others else None
        feeds = [pub.id] + ([other] if other is not None else [])
        self.sub = sub = Subscriber(self.janus, await VideoRoomHandle.attach(self.janus))
        sub.attached = await sub.handle.call({"request": "join", "ptype": "subscriber", "room": SFU_ROOM,
                                              "streams": [{"feed": f} for f in feeds]}, timeout=STEP_TIMEOUT)
        if sub.attached.data.get("videoroom") != "attached":
            if other is not None and other not in soak.live_feeds:
                # The other feed left between the choice and the join (error 428): try without it.
                soak.count("subscribe_races")
                feeds, other = [pub.id], None
                sub.attached = await sub.handle.call({"request": "join", "ptype": "subscriber", "room": SFU_ROOM,
                                                      "streams": [{"feed": pub.id}]}, timeout=STEP_TIMEOUT)
            if sub.attached.data.get("videoroom") != "attached":
                raise JanusError(f"subscribe to {feeds}: {sub.attached.raw}")
        await sub.answer(sub.attached)
        watch_pc(soak, self, sub.pc, "subscriber")
        soak.count("subscriptions")
        streams = sub.attached.data["streams"]
        own = {stream_mid(streams, pub.id, "video"): 5, stream_mid(streams, pub.id, "audio"): 10}

        self.phase = "media (own feed)"
        await self.frames(own)
        if other is not None:
            self.phase = f"media (feed {other})"
            if not await self.frames({stream_mid(streams, other, "video"): 5}, feed=other):
                soak.count("feed_left_while_waiting")

        self.phase = "stay"
        stay_until = time.monotonic() + random.uniform(5, 20)
        while time.monotonic() < stay_until and not soak.time_up():
            await asyncio.sleep(min(5.0, max(0.0, stay_until - time.monotonic())))
            await self.keepalive()
        self.phase = "media after the stay"
        await self.frames(own)

        if way == "reconnect":
            self.phase = "reconnect"
            old = self.janus
            await abort(old)
            self.janus = await reclaim(soak, old)
            for holder in (pub, pub.handle, sub, sub.handle):
                holder.janus = self.janus
            self.phase = "media after reconnect"
            await self.frames(own)
            way = "clean"

        self.phase = f"leave ({way})"
        soak.live_feeds.discard(pub.id)
        soak.count(f"leave_{way}")
        if way == "clean":
            left = await sub.handle.call({"request": "leave"}, timeout=STEP_TIMEOUT)
            if left.data.get("left") != "ok":
                raise JanusError(f"subscriber leave: {left.raw}")
            done = await pub.handle.call({"request": "unpublish"}, timeout=STEP_TIMEOUT)
            if done.data.get("unpublished") != "ok":
                raise JanusError(f"unpublish: {done.raw}")
            done = await pub.handle.call({"request": "leave"}, timeout=STEP_TIMEOUT)
            if done.data.get("leaving") != "ok":
                raise JanusError(f"leave: {done.raw}")
            for handle in (sub.handle, pub.handle):
                reply = await self.janus.detach(handle.id)
                if reply.get("janus") != "success":
                    raise JanusError(f"detach: {reply}")
            await self.destroy()
        elif way == "hangup":
            for handle in (pub.handle, sub.handle):
                reply = await self.janus.hangup(handle.id)
                if reply.get("janus") != "success":
                    raise JanusError(f"hangup: {reply}")
            await self.destroy()
        elif way == "destroy":
            await self.destroy()
        else:  # drop
            await abort(self.janus)
            self.janus = None
        await self.close_pcs()

    async def frames(self, mids: dict[str, int], feed: int | None = None) -> bool:
        """Waits until each subscriber mid decoded that many more frames, keeping the session alive
        meanwhile. False when *feed* left before (its frames stop then)."""
        sub = self.sub
        base = {mid: sub.tracks.get(mid, {}).get("frames", 0) for mid in mids}
        start = time.monotonic()
        keepalive_at = start + KEEPALIVE_SECONDS
        while True:
            now = sub.counts()
            if all(now.get(mid, 0) - base[mid] >= n for mid, n in mids.items()):
                return True
            if feed is not None and feed not in self.soak.live_feeds:
                return False
            if time.monotonic() - start > STEP_TIMEOUT:
                raise TimeoutError(f"wanted {mids} more frames than {base} within {STEP_TIMEOUT:.0f}s; have {now}, "
                                   f"ICE {sub.pc.iceConnectionState}, connection {sub.pc.connectionState}, "
                                   f"publisher connection {self.pub.pc.connectionState}")
            if time.monotonic() > keepalive_at:
                await self.keepalive()
                keepalive_at = time.monotonic() + KEEPALIVE_SECONDS
            await asyncio.sleep(0.1)

    async def destroy(self) -> None:
        reply = await self.janus.destroy()
        if reply.get("janus") != "success":
            raise JanusError(f"destroy: {reply}")
        await self.janus.close()
        self.janus = None

    async def close_pcs(self) -> None:
        if self.sub is not None:
            await quietly(self.sub.pc.close())
            for task in self.sub._tasks:
                task.cancel()
            self.sub = None
        if self.pub is not None:
            self.soak.live_feeds.discard(self.pub.id)
            if self.pub.pc is not None:
                await quietly(self.pub.pc.close())
            self.pub = None

    async def cleanup(self) -> None:
        await self.close_pcs()
        if self.janus is not None:
            await quietly(self.janus.destroy())
        await super().cleanup()


class EchoClient(Client):
    """An EchoTest PeerConnection whose echo must decode, over either transport."""

    role = "echo"

    def __init__(self, soak: Soak, index: int):
        super().__init__(soak, index)
        self.peer: EchoPeer | None = None

    async def cycle(self, n: int) -> None:
        transport = "http" if n % 2 == 0 else "websocket"
        self.phase = f"connect ({transport})"
        self.peer = await EchoPeer.connect(url(self.soak, transport), ECHO_PLUGIN, timeout=STEP_TIMEOUT, **VIDEO)
        self.soak.count("sessions")
        self.soak.count("echo_peers")
        watch_pc(self.soak, self, self.peer.pc, "echo")
        self.phase = "echo"
        await self.peer.wait_frames(video=10, audio=25, timeout=STEP_TIMEOUT)
        await asyncio.sleep(random.uniform(3, 10))
        await self.peer.wait_frames(video=5, audio=10, timeout=STEP_TIMEOUT)
        self.phase = "close"
        peer, self.peer = self.peer, None
        frames = peer.frames()
        self.soak.count("echo_video_frames", frames["video"])
        await peer.close(hangup=random.random() < 0.5)

    async def cleanup(self) -> None:
        if self.peer is not None:
            await quietly(self.peer.close())
            self.peer = None


class ChatClient(Client):
    """A Chat participant: join, broadcast and private messages, reconnect, leave."""

    role = "chat"

    def __init__(self, soak: Soak, index: int, transport: str):
        super().__init__(soak, index)
        self.transport = transport
        self.name = f"chat-{'ws' if transport == 'websocket' else 'http'}{index}"
        self.handle: int | None = None
        self.member: Member | None = None
        self.seen = 0
        self.seq = 0

    async def request(self, body: dict) -> dict:
        reply = await self.janus.message(self.handle, body)
        data = ((reply.get("plugindata") or {}).get("data")) or {}
        if reply.get("janus") != "success" or "error_code" in data or "error" in data:
            raise JanusError(f"{body.get('request')}: {reply}")
        return data

    def read_events(self) -> None:
        events = self.janus.events
        while self.seen < len(events):
            event = events[self.seen]
            self.seen += 1
            data = ((event.get("plugindata") or {}).get("data")) or {}
            if data.get("chat") == "message":
                self.soak.count("chat_received")
                self.member.expected.discard(data.get("text"))

    async def drain(self) -> None:
        """Stops taking new messages and waits for those already addressed to this participant."""
        self.member.state = "draining"
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while True:
            self.read_events()
            if not self.member.expected:
                return
            if time.monotonic() > deadline:
                missing = sorted(self.member.expected)
                self.member.expected.clear()
                raise AssertionError(f"{len(missing)} message(s) for {self.member.display} never arrived: "
                                     f"{missing[:5]}")
            await asyncio.sleep(0.1)

    async def cycle(self, n: int) -> None:
        soak = self.soak
        way = random.choice(LEAVE_WAYS)
        if self.transport == "http" and way == "reconnect":
            way = "drop"
        self.phase = f"join ({self.transport})"
        self.janus = await new_session(soak, self.transport)
        self.seen = 0
        self.handle = await self.janus.attach(CHAT_PLUGIN)
        room = random.choice(CHAT_ROOMS)
        display = f"{self.name}-{n}"
        joined = await self.request({"request": "join", "room": room, "display": display})
        if joined.get("chat") != "joined":
            raise JanusError(f"join: {joined}")
        soak.count("chat_joins")
        self.member = soak.members[display] = Member(display, room)

        reconnect_at = random.randint(1, 6) if way == "reconnect" else -1
        for k in range(random.randint(3, 12)):
            if soak.time_up():
                break
            await asyncio.sleep(random.uniform(0.3, 1.5))
            self.read_events()
            if k == reconnect_at:
                self.phase = "reconnect"
                await self.drain()
                old = self.janus
                await abort(old)
                self.janus = await reclaim(soak, old)
                self.seen = 0
                self.member.state = "joined"
            self.phase = "message"
            await self.send(room, display)
        if way == "reconnect":
            way = "clean"

        self.phase = f"leave ({way})"
        await self.drain()
        soak.count(f"leave_{way}")
        soak.members.pop(display, None)
        if way == "clean":
            left = await self.request({"request": "leave"})
            if left.get("chat") != "left":
                raise JanusError(f"leave: {left}")
            reply = await self.janus.detach(self.handle)
            if reply.get("janus") != "success":
                raise JanusError(f"detach: {reply}")
            way = "destroy"
        if way in ("destroy", "hangup"):
            reply = await self.janus.destroy()
            if reply.get("janus") != "success":
                raise JanusError(f"destroy: {reply}")
            await self.janus.close()
        else:
            await abort(self.janus)
        self.janus = None
        self.member = None

    async def send(self, room: str, display: str) -> None:
        soak = self.soak
        self.seq += 1
        text = f"{display} #{self.seq}"
        others = soak.room_members(room, display)
        body = {"request": "message", "text": text}
        if others and random.random() < 0.25:
            to = random.choice(others)
            body["to"] = to.display
            recipients = [to]
        else:
            recipients = others
        for m in recipients:
            m.expected.add(text)
        try:
            sent = await self.request(body)
        except BaseException:
            for m in recipients:
                m.expected.discard(text)
            raise
        if sent.get("chat") != "sent":
            raise JanusError(f"message: {sent}")
        soak.count("chat_private" if "to" in body else "chat_broadcast")
        soak.count("chat_deliveries_expected", len(recipients))

    async def cleanup(self) -> None:
        if self.member is not None:
            self.member.expected.clear()
            self.soak.members.pop(self.member.display, None)
            self.member = None
        if self.janus is not None:
            await quietly(self.janus.destroy())
        await super().cleanup()


def role_counts(n: int) -> dict[str, int]:
    media = max(1, n // 3)
    echo = max(1, n // 6) if n >= 3 else 0
    return {"media": media, "echo": echo, "chat": max(0, n - media - echo)}


def make_clients(soak: Soak, n: int) -> list[Client]:
    roles = role_counts(n)
    media, echo, chat = roles["media"], roles["echo"], roles["chat"]
    clients: list[Client] = [MediaClient(soak, i) for i in range(media)]
    clients += [EchoClient(soak, media + i) for i in range(echo)]
    clients += [ChatClient(soak, media + echo + i, "websocket" if i % 2 == 0 else "http") for i in range(chat)]
    return clients


# --------------------------------------------------------------------------------------------
# The server and its samples

def soak_config() -> dict:
    rooms = [{"room": SFU_ROOM, "description": "Soak", "publishers": 64, "bitrate": 256000}]
    return base_config(
        [sfu_plugin_entry(admin_key=ADMIN_KEY, rooms=rooms),
         chat_plugin_entry(rooms=[{"id": "lobby", "history": 20}]),
         echotest_plugin_entry()],
        log_level="info",
        http={"long_poll_seconds": LONG_POLL_SECONDS},
        sessions={"timeout_seconds": SESSION_TIMEOUT, "reclaim_seconds": RECLAIM_SECONDS},
        media={"udp_port": free_udp_port(), "consent_timeout_seconds": 30},
    )


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse_metrics(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """(every sample by name+labels, every family summed over its labels)"""
    samples: dict[str, float] = {}
    families: dict[str, float] = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        samples[m.group(1) + (m.group(2) or "")] = value
        families[m.group(1)] = families.get(m.group(1), 0.0) + value
    return samples, families


class Sampler:
    def __init__(self, server: AtriumServer):
        self.server = server
        self.pid = server.proc.pid
        self.samples: list[dict] = []
        self.log_offset = 0
        self.log_counts = {"warning": 0, "error": 0, "critical": 0}
        self.log_examples: list[str] = []
        self.failures: list[str] = []
        self.ticks = os.sysconf("SC_CLK_TCK")

    def read_log(self) -> None:
        try:
            with open(self.server.log_path, "rb") as f:
                f.seek(self.log_offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        self.log_offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            m = LOG_LEVEL.match(line)
            if m:
                self.log_counts[m.group(1)] += 1
                if len(self.log_examples) < 40:
                    self.log_examples.append(line[:400])

    def process(self) -> dict:
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        names: dict[str, int] = {}
        for task in os.listdir(f"/proc/{self.pid}/task"):
            try:
                name = Path(f"/proc/{self.pid}/task/{task}/comm").read_text().strip()
            except OSError:
                continue
            names[name] = names.get(name, 0) + 1
        return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
                "cpu_s": round((int(stat[11]) + int(stat[12])) / self.ticks, 2),
                "thread_names": " ".join(f"{k}:{v}" for k, v in sorted(names.items()))}

    def take(self, t: float, phase: str, extra: dict) -> dict | None:
        if not self.server.alive():
            return None
        sample: dict = {"t": round(t, 2), "phase": phase}
        try:
            sample.update(self.process())
        except (OSError, KeyError, ValueError, IndexError):
            return None
        base = self.server.base
        try:
            _, families = parse_metrics(requests.get(f"{base}/metrics", timeout=10).text)
            health = requests.get(f"{base}/health", timeout=10).json()
        except (requests.RequestException, ValueError) as e:
            self.failures.append(f"t={t:.0f}s: /metrics or /health did not answer: {e}")
            families, health = {}, {}
        sample["health_ok"] = health.get("ok")
        sample["health_sessions"] = health.get("sessions")
        sample["health_handles"] = health.get("handles")
        for name, value in sorted(families.items()):
            sample[name] = value
        self.read_log()
        sample.update({f"log_{k}": v for k, v in self.log_counts.items()})
        sample.update(extra)
        self.samples.append(sample)
        return sample


def window_stats(samples: list[dict], key: str) -> tuple[float | None, float | None]:
    """(mean, median) of *key* over *samples*."""
    values = [s[key] for s in samples if s.get(key) is not None]
    if not values:
        return None, None
    return round(statistics.fmean(values), 2), statistics.median(values)


def judge_growth(samples: list[dict], seconds: float, warmup: float, limit: float) -> dict:
    """The mean of the first window after the warm-up against the mean of the last window.

    Rationale: the mean, not the median, because threads and fds are small integers that step
    with the load of the moment (a dispatch worker, a client's socket): a median jumps a whole step
    (one thread of seven is 14 %) where the mean moves by how long the step lasted."""
    warm_end = seconds * warmup
    window = min(60.0, 0.15 * seconds)
    loaded = [s for s in samples if s["phase"] == "load"]
    first = [s for s in loaded if warm_end <= s["t"] < warm_end + window]
    last = [s for s in loaded if s["t"] >= seconds - window]
    out = {"method": f"mean of the samples in [{warm_end:.0f}s, {warm_end + window:.0f}s) against the mean "
                     f"of those in [{seconds - window:.0f}s, {seconds:.0f}s]; fail above +{limit:.0%}",
           "first_samples": len(first), "last_samples": len(last), "metrics": {}}
    for key in ("rss_kb", "fds", "threads"):
        (start, start_median), (end, end_median) = window_stats(first, key), window_stats(last, key)
        growth = None if not start or end is None else end / start - 1
        out["metrics"][key] = {"start": start, "end": end,
                               "growth": None if growth is None else round(growth, 4),
                               "start_median": start_median, "end_median": end_median,
                               "min": min((s[key] for s in loaded), default=None),
                               "max": max((s[key] for s in loaded), default=None),
                               "passed": growth is not None and growth <= limit}
    return out


# --------------------------------------------------------------------------------------------
# The run

async def drive(server: AtriumServer, seconds: float, clients: int, interval: float, sampler: Sampler) -> Soak:
    # aiortc encodes in the default executor and the HTTP clients post through it: room for all.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
    soak = Soak(server, seconds)
    crew = make_clients(soak, clients)
    tasks = [asyncio.create_task(c.run(), name=c.name) for c in crew]

    def extra() -> dict:
        return {"client_errors": len(soak.errors), **{f"c_{k}": v for k, v in sorted(soak.counts.items())}}

    crashed = False
    next_note = 60.0
    while not soak.time_up():
        await asyncio.sleep(min(interval, max(0.0, soak.deadline - time.monotonic())))
        sample = await asyncio.to_thread(sampler.take, soak.elapsed(), "load", extra())
        if sample is None:
            crashed = True
            break
        if sample["t"] >= next_note:
            next_note += 60.0
            print(f"[soak {sample['t']:7.1f}s] RSS {sample['rss_kb']} kB, fds {sample['fds']}, threads "
                  f"{sample['threads']}, sessions {sample.get('atrium_sessions')}, client errors {len(soak.errors)}, "
                  f"log warnings {sample['log_warning']}", flush=True)
    finish = time.monotonic() + FINISH_TIMEOUT
    pending = set(tasks)
    while pending and time.monotonic() < finish and not crashed:
        done, pending = await asyncio.wait(pending, timeout=interval)
        if await asyncio.to_thread(sampler.take, soak.elapsed(), "finishing", extra()) is None:
            crashed = True
    for task in pending:
        if not crashed:
            soak.error(task.get_name(), "finish", f"still in its cycle {FINISH_TIMEOUT:.0f}s after the end")
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if crashed:
        soak.error("server", "run", f"atrium died (exit {server.proc.poll()}) at {soak.elapsed():.0f}s")
    return soak


async def leftovers(server: AtriumServer) -> list[str]:
    """Rooms that still have participants once every client is gone (asked on a fresh session)."""
    problems = []
    janus = await open_janus(server.ws_url)
    try:
        await janus.create()
        sfu = await VideoRoomHandle.attach(janus)
        data = await sfu.sync({"request": "listparticipants", "room": SFU_ROOM})
        if data.get("participants"):
            problems.append(f"SFU room {SFU_ROOM} still lists {data['participants']}")
        chat = await janus.attach(CHAT_PLUGIN)
        reply = await janus.message(chat, {"request": "list"})
        for room in reply["plugindata"]["data"].get("rooms", []):
            if room.get("num_participants"):
                problems.append(f"chat room {room['room']} still has {room['num_participants']} participant(s)")
        await janus.destroy()
    finally:
        await janus.close()
    return problems


# Gauges of live things that must be back to zero once every client is gone (the scrape itself holds
# one HTTP connection from one address).
DRAINED = {"atrium_sessions": 0, "atrium_handles": 0, "atrium_media_peerconnections": 0,
           "atrium_media_tcp_connections": 0, "atrium_sfu_publishers": 0, "atrium_sfu_subscribers": 0,
           "atrium_chat_participants": 0, "atrium_websocket_connections": 0, "atrium_queued_event_bytes": 0,
           "atrium_websocket_pending_bytes": 0, "atrium_http_connections": 1, "atrium_client_addresses": 1}


def wait_drained(server: AtriumServer, timeout: float, idle: dict) -> tuple[bool, float, str]:
    """Waits until every DRAINED gauge is at most its bound and the chat rooms are back to those of
    the idle server; returns (drained, seconds waited, what was still live at the last look)."""
    start = time.monotonic()
    left = ""
    while True:
        try:
            _, families = parse_metrics(requests.get(f"{server.base}/metrics", timeout=5).text)
            live = {k: v for k, v in families.items() if k in DRAINED and v > DRAINED[k]}
            rooms = families.get("atrium_chat_rooms")
            if rooms is not None and idle.get("atrium_chat_rooms") is not None and rooms > idle["atrium_chat_rooms"]:
                live["atrium_chat_rooms"] = rooms
            left = ", ".join(f"{k} {v:g}" for k, v in live.items())
            if not live:
                return True, time.monotonic() - start, ""
        except (requests.RequestException, ValueError) as e:
            left = str(e)
        if time.monotonic() - start > timeout:
            return False, time.monotonic() - start, left
        time.sleep(0.5)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def require_media_ip() -> None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((MEDIA_IP, 0))
    except OSError as e:
        raise SystemExit(f"{MEDIA_IP} is not a local address ({e}): run the soak in the e2e network namespace "
                         f"(`make soak` does)")


def run_soak(seconds: float, clients: int = 12, out: Path | None = None, interval: float | None = None,
             warmup: float = 0.2, growth_limit: float = 0.10, judge: bool = True) -> dict:
    """Runs one soak and returns its summary (summary["passed"], summary["failures"]). With
    judge=False growth is measured and reported but does not fail the run."""
    require_media_ip()
    binary = BUILD_DIR / "atrium"
    if not binary.exists():
        raise SystemExit(f"{binary} does not exist: build first (`swift build -c release` for make soak), or point "
                         f"ATRIUM_BUILD_DIR at the build folder")
    out = out or ARTIFACTS / time.strftime("soak-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    interval = interval or (1.0 if seconds <= 300 else 2.0)
    server = AtriumServer(soak_config(), out / "atrium")
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    server.start()
    sampler = Sampler(server)
    print(f"[soak] atrium {binary} pid {server.proc.pid}, {clients} clients for {seconds:.0f}s, samples every "
          f"{interval:g}s into {out}", flush=True)
    sampler.take(0.0, "idle", {})
    failures: list[str] = []
    soak: Soak | None = None
    finished_at = drain_s = 0.0
    try:
        soak = asyncio.run(drive(server, seconds, clients, interval, sampler))
        finished_at = soak.elapsed()
        if server.alive():
            idle = sampler.samples[0] if sampler.samples else {}
            drained, drain_s, left = wait_drained(server, DRAIN_TIMEOUT, idle)
            sampler.take(soak.elapsed(), "drained", {"client_errors": len(soak.errors)})
            if not drained:
                failures.append(f"still live {drain_s:.0f}s after the last client: {left}")
            try:
                failures += asyncio.run(asyncio.wait_for(leftovers(server), 30))
            except Exception as e:  # noqa: BLE001
                failures.append(f"could not list the rooms after the run: {type(e).__name__}: {e}")
            drained, _, left = wait_drained(server, 15, idle)
            if not drained:
                failures.append(f"still live after the room check's own session: {left}")
            sampler.take(soak.elapsed(), "idle-after", {"client_errors": len(soak.errors)})
    finally:
        code = server.stop()
    sampler.read_log()
    if code != 0:
        failures.append(f"atrium did not stop cleanly on SIGTERM (exit {code})")
    if soak.errors:
        failures.append(f"{len(soak.errors)} client error(s); first: {soak.errors[0]}")
    failures += sampler.failures
    bad_log = sampler.log_counts["error"] + sampler.log_counts["critical"]
    if bad_log:
        failures.append(f"{bad_log} error/critical line(s) in the server log")
    growth = judge_growth(sampler.samples, seconds, warmup, growth_limit)
    growth["judged"] = judge
    for key, g in growth["metrics"].items():
        if judge and not g["passed"]:
            failures.append(f"{key} grew from {g['start']} to {g['end']} ({g['growth']:+.1%})" if g["growth"] is not None
                            else f"{key}: not enough samples to judge")
    load = [s for s in sampler.samples if s["phase"] == "load"]
    final = sampler.samples[-1] if sampler.samples else {}
    first = sampler.samples[0] if sampler.samples else {}
    summary = {
        "passed": not failures,
        "failures": failures,
        "started_at": started_at,
        "seconds": seconds,
        "clients": clients,
        "roles": role_counts(clients),
        "interval": interval,
        "clients_finished_at": round(finished_at, 1),
        "drain_seconds": round(drain_s, 1),
        "build_dir": str(BUILD_DIR),
        "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(binary.stat().st_mtime)),
        "git_commit": git_commit(),
        "growth": growth,
        "counts": dict(sorted(soak.counts.items())),
        "server": {
            "requests_total": final.get("atrium_requests_total"),
            "errors_total": final.get("atrium_errors_total", 0.0),
            "sessions_created_total": final.get("atrium_sessions_created_total"),
            "sessions_timed_out_total": final.get("atrium_sessions_timed_out_total"),
            "handles_created_total": final.get("atrium_handles_created_total"),
            "events_pushed_total": final.get("atrium_events_pushed_total"),
            "cpu_s": final.get("cpu_s"),
            "rss_kb_idle_before": first.get("rss_kb"),
            "rss_kb_idle_after": final.get("rss_kb"),
            "fds_idle_before": first.get("fds"),
            "fds_idle_after": final.get("fds"),
            "threads_idle_before": first.get("threads"),
            "threads_idle_after": final.get("threads"),
            "peak_sessions": max((s.get("atrium_sessions") or 0 for s in load), default=None),
            "exit_code": code,
        },
        "log": {**sampler.log_counts, "examples": sampler.log_examples},
        "client_errors": len(soak.errors),
        "errors": soak.errors[:50],
        "out": str(out),
    }
    write_outputs(out, sampler.samples, soak.errors, summary)
    return summary


def write_outputs(out: Path, samples: list[dict], errors: list[dict], summary: dict) -> None:
    keys: list[str] = []
    for s in samples:
        keys += [k for k in s if k not in keys]
    with open(out / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(samples)
    (out / "samples.json").write_text(json.dumps(samples, indent=1))
    (out / "errors.json").write_text(json.dumps(errors, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def report(summary: dict) -> str:
    g = summary["growth"]["metrics"]
    s = summary["server"]
    lines = [f"soak {'PASSED' if summary['passed'] else 'FAILED'}: {summary['clients']} clients for "
             f"{summary['seconds'] / 60:.1f} min, build {summary['build_dir']}, commit {summary['git_commit']}",
             f"  growth ({summary['growth']['method']}"
             f"{'' if summary['growth']['judged'] else '; reported, not judged'}):"]
    for key, v in g.items():
        growth = "n/a" if v["growth"] is None else f"{v['growth']:+.1%}"
        lines.append(f"    {key:8} {v['start']} -> {v['end']} ({growth}); range {v['min']}..{v['max']}")
    def n(key: str) -> str:
        return "n/a" if s.get(key) is None else f"{s[key]:.0f}"

    lines.append(f"  server: {n('requests_total')} requests, {n('sessions_created_total')} sessions, "
                 f"{n('handles_created_total')} handles, {n('events_pushed_total')} events, Janus errors answered "
                 f"{n('errors_total')}, {n('sessions_timed_out_total')} sessions timed out, CPU {s['cpu_s']} s, "
                 f"exit {s['exit_code']}")
    lines.append(f"  idle before/after: RSS {s['rss_kb_idle_before']} / {s['rss_kb_idle_after']} kB, fds "
                 f"{s['fds_idle_before']} / {s['fds_idle_after']}, threads {s['threads_idle_before']} / "
                 f"{s['threads_idle_after']}")
    lines.append("  clients: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    lines.append(f"  client errors {summary['client_errors']}; server log: warning {summary['log']['warning']}, "
                 f"error {summary['log']['error']}, critical {summary['log']['critical']}")
    for failure in summary["failures"]:
        lines.append(f"  FAIL: {failure}")
    lines.append(f"  output: {summary['out']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 10)))
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    parser.add_argument("--clients", type=int, default=int(os.environ.get("SOAK_CLIENTS", 12)))
    parser.add_argument("--interval", type=float, default=None, help="seconds between samples (1, or 2 above 5 min)")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run before growth is judged")
    parser.add_argument("--growth-limit", type=float, default=0.10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    summary = run_soak(seconds, args.clients, args.out, args.interval, args.warmup, args.growth_limit)
    print(report(summary), flush=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
