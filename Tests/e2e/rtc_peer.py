"""An aiortc peer that talks to a Janus-API server's EchoTest and counts what comes back.

``peer = await EchoPeer.connect(url_or_client, "janus.plugin.echotest", audio=True, video=True)``
creates a session (unless the client already has one), attaches to the plugin, offers synthetic
tracks (a 320x240 moving pattern at 15 fps, a 440 Hz tone at 48 kHz) and optionally a data channel,
sends ``{"audio": true, "video": true}`` with the offer and applies the answer from the plugin's
event. Every frame of the echoed tracks is decoded and counted: ``peer.frames()`` →
``{"video": n, "audio": n, "width": w, "height": h}``. ``await peer.close()`` ends it all.

Signalling is half-trickle, as janus.js with a browser that gathers quickly: aiortc gathers before
``setLocalDescription`` returns, so the offer carries every candidate, and a
``{"completed": true}`` trickle follows it. The peer uses max-bundle (one transport) and no ICE
servers, so nothing is sent anywhere but the server's candidates.

The Janus API client is janus_client.py's async face (``open_janus``, ``AsyncJanus``); it keeps
every event it received in ``.events``.

Run as a program (``python rtc_peer.py --http URL``) it is the peer that test_echotest.py kills:
it negotiates over HTTP, stops long-polling once it has the answer (so no event is left waiting in
a poll of a process about to die), prints one JSON line with the session and handle ids once
frames come back, then a JSON line of frame counts every half second until it is killed.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import fractions
import json
import math
import re
import sys
import time

import av
from aiortc import (RTCConfiguration, RTCPeerConnection, RTCSessionDescription,
                    MediaStreamTrack)
import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.utils import uint16_add

from janus_client import AsyncJanus, HttpAsyncJanus, JanusError, open_janus

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020


# --------------------------------------------------------------------------------------------
# A receiver that survives a pause

class ResyncingJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer waits for a hole in the sequence numbers to be filled until the
    hole is 512 packets old, delivering nothing meanwhile. An EchoTest that stops relaying video
    ({"video": false}, as Janus does: dropped packets keep their sequence numbers) leaves a hole
    nobody will fill, so aiortc would stay frozen for many seconds after {"video": true}. Browsers
    give up on such a hole and ask for a keyframe; this does the same: a forward jump of more than
    MAX_GAP sequence numbers restarts the buffer at the new packet and requests a keyframe (PLI).
    Without loss (loopback) consecutive packets never jump that far."""

    MAX_GAP = 64

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity, prefetch, is_video)
        self._newest: int | None = None
        self.resyncs = 0

    def add(self, packet):
        seq = packet.sequence_number
        if self._newest is not None:
            jump = uint16_add(seq, -self._newest)
            if 0 < jump < 0x8000:
                self._newest = seq
                if self._is_video and jump > self.MAX_GAP:
                    self.remove(self.capacity)
                    self._origin = None
                    self.resyncs += 1
                    return True, super().add(packet)[1]
        else:
            self._newest = seq
        return super().add(packet)


aiortc.rtcrtpreceiver.JitterBuffer = ResyncingJitterBuffer


# --------------------------------------------------------------------------------------------
# Synthetic tracks

class PatternVideoTrack(MediaStreamTrack):
    """Frames of a diagonal gradient that moves every frame, with a drifting tint."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15.0):
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._n = 0
        self._start: float | None = None
        self._ramp = b""

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._n / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        n = self._n
        self._n += 1
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shift = (n * 6) & 0xFF
        for index, plane in enumerate(frame.planes):
            rows = plane.buffer_size // plane.line_size
            if index == 0:
                if len(self._ramp) < plane.line_size + 256:
                    self._ramp = bytes(i & 0xFF for i in range(plane.line_size + 256))
                data = b"".join(self._ramp[(y + shift) & 0xFF:((y + shift) & 0xFF) + plane.line_size]
                                for y in range(rows))
            else:
                data = bytes([(n * (3 if index == 1 else 5)) & 0xFF]) * plane.buffer_size
            plane.update(data)
        frame.pts = int(n * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A 440 Hz tone, mono, 16-bit, 48 kHz, in 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0):
        super().__init__()
        self._samples = int(AUDIO_RATE * AUDIO_PTIME)
        # One second holds a whole number of 440 Hz periods, so it loops seamlessly.
        self._second = array.array("h", (int(8000 * math.sin(2 * math.pi * frequency * i / AUDIO_RATE))
                                         for i in range(AUDIO_RATE))).tobytes()
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._n * AUDIO_PTIME - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        pts = self._n * self._samples
        self._n += 1
        offset = (pts % AUDIO_RATE) * 2
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(self._second[offset:offset + self._samples * 2])
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


# --------------------------------------------------------------------------------------------
# SDP helpers

def sdp_sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """(session-level lines, [lines of each m-section])"""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def section_attr(section: list[str], name: str) -> str | None:
    for line in section:
        if line.startswith(f"a={name}:"):
            return line.split(":", 1)[1].strip()
    return None


def media_summary(sdp: str) -> list[dict]:
    """[{kind, port, mid, direction}] per m-section."""
    out = []
    for section in sdp_sections(sdp)[1]:
        kind, port = section[0][2:].split()[:2]
        direction = next((line[2:] for line in section
                          if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")), None)
        out.append({"kind": kind, "port": int(port), "mid": section_attr(section, "mid"),
                    "direction": direction})
    return out


def ice_ufrag(sdp: str) -> str | None:
    session, sections = sdp_sections(sdp)
    for section in sections:
        value = section_attr(section, "ice-ufrag")
        if value:
            return value
    return section_attr(session, "ice-ufrag")


def candidates(sdp: str) -> list[dict]:
    """[{ip, port, protocol, type}] of every a=candidate line."""
    out = []
    for m in re.finditer(r"^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)", sdp, re.M):
        out.append({"protocol": m.group(1).lower(), "ip": m.group(2), "port": int(m.group(3)),
                    "type": m.group(4)})
    return out


def ssrcs(sdp: str) -> list[int]:
    return sorted({int(x) for x in re.findall(r"^a=ssrc:(\d+) ", sdp, re.M)})


def for_aiortc(answer: str) -> str:
    """A rejected m-section (port 0) needs no transport attributes (RFC 8829 §5.3.1), but aiortc
    insists on ICE and DTLS attributes in every section, and with max-bundle it takes the
    candidates of the shared transport from whichever section it reads last. So rejected sections
    that lack them get the first accepted section's ICE, DTLS and candidate lines (aiortc's view
    only; the answer recorded is the server's)."""
    session, sections = sdp_sections(answer)
    accepted = next((s for s in sections if s[0].split()[1] != "0"), None)
    if accepted is None:
        return answer
    needed = [line for line in accepted
              if line.startswith(("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:",
                                  "a=candidate:", "a=end-of-candidates"))]
    out = list(session)
    for section in sections:
        out += section
        if section[0].split()[1] == "0" and not any(line.startswith("a=ice-ufrag:") for line in section):
            out += needed
    return "\r\n".join(out) + "\r\n"


# --------------------------------------------------------------------------------------------
# The peer

class EchoPeer:
    def __init__(self, janus: AsyncJanus, handle: int, pc: RTCPeerConnection, owns_janus: bool):
        self.janus = janus
        self.handle = handle
        self.pc = pc
        self.owns_janus = owns_janus
        self.offer_sdp = ""
        self.answer_sdp = ""
        self.answer_event: dict = {}
        self.message_reply: dict = {}
        self.rejected_mids: list[str] = []
        self.counts = {"video": 0, "audio": 0}
        self.width: int | None = None
        self.height: int | None = None
        self.remote_kinds: list[str] = []
        self.channel = None
        self.channel_opened = False
        self.channel_messages: list = []
        self._tasks: list[asyncio.Task] = []
        self._closed = False

    @classmethod
    async def connect(cls, janus: str | AsyncJanus, plugin: str = "janus.plugin.echotest", *,
                      audio: bool = True, video: bool = True, datachannel: bool = False,
                      body: dict | None = None, timeout: float = 15.0, handle: int | None = None,
                      width: int = 320, height: int = 240, fps: float = 15.0) -> "EchoPeer":
        """Negotiates a new PeerConnection; on a new session and handle unless the client already
        has a session and/or *handle* is given (a handle that was hung up takes a new offer)."""
        owns = isinstance(janus, str)
        client = await open_janus(janus) if owns else janus
        try:
            if client.session_id is None:
                await client.create()
            if handle is None:
                handle = await client.attach(plugin)
        except BaseException:
            if owns:
                await client.close()
            raise
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        peer = cls(client, handle, pc, owns)
        try:
            await peer._negotiate(audio, video, datachannel, body, timeout, width, height, fps)
        except BaseException:
            await peer.close()
            raise
        return peer

    async def _negotiate(self, audio, video, datachannel, body, timeout, width, height, fps):
        pc = self.pc

        @pc.on("track")
        def on_track(track):
            self.remote_kinds.append(track.kind)
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

        if audio:
            pc.addTrack(ToneAudioTrack())
        if video:
            pc.addTrack(PatternVideoTrack(width, height, fps))
        if datachannel:
            self.channel = pc.createDataChannel("echo")

            @self.channel.on("open")
            def on_open():
                self.channel_opened = True

            @self.channel.on("message")
            def on_message(message):
                self.channel_messages.append(message)

        await pc.setLocalDescription(await pc.createOffer())
        self.offer_sdp = pc.localDescription.sdp
        start = len(self.janus.events)
        self.message_reply = await self.janus.message(
            self.handle, body if body is not None else {"audio": True, "video": True},
            {"type": "offer", "sdp": self.offer_sdp})
        if self.message_reply.get("janus") not in ("ack", "success"):
            raise JanusError(f"offer refused: {self.message_reply}")
        await self.janus.trickle(self.handle, {"completed": True})
        self.answer_event = await self.janus.wait_event(
            lambda e: e.get("sender") == self.handle and e.get("janus") == "event" and "jsep" in e,
            timeout, start)
        jsep = self.answer_event["jsep"]
        if jsep.get("type") != "answer":
            raise JanusError(f"expected an answer: {self.answer_event}")
        self.answer_sdp = jsep["sdp"]
        self.rejected_mids = [m["mid"] for m in media_summary(self.answer_sdp) if m["port"] == 0]
        if self.channel is not None and self.pc.sctp is not None and any(
                m["kind"] == "application" and m["port"] == 0 for m in media_summary(self.answer_sdp)):
            # The data section was rejected: never start SCTP (a browser closes the channel).
            async def no_sctp(*args, **kwargs):
                return None
            self.pc.sctp.start = no_sctp
        await pc.setRemoteDescription(RTCSessionDescription(sdp=for_aiortc(self.answer_sdp), type="answer"))

    async def _consume(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                self.width, self.height = frame.width, frame.height
            self.counts[track.kind] += 1

    def frames(self) -> dict:
        return {**self.counts, "width": self.width, "height": self.height}

    async def wait_frames(self, video: int = 0, audio: int = 0, timeout: float = 15.0) -> dict:
        """Waits until at least this many more frames of each kind were decoded; returns frames()."""
        base = dict(self.counts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.counts["video"] - base["video"] >= video and self.counts["audio"] - base["audio"] >= audio:
                return self.frames()
            await asyncio.sleep(0.05)
        raise TimeoutError(f"wanted {video} video / {audio} audio frames more than {base} within "
                           f"{timeout}s; have {self.frames()}, ICE {self.pc.iceConnectionState}, "
                           f"connection {self.pc.connectionState}")

    async def close(self, hangup: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if hangup:
            try:
                await self.janus.hangup(self.handle)
            except Exception:  # noqa: BLE001 - best effort
                pass
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.owns_janus:
            try:
                await self.janus.destroy()
            except Exception:  # noqa: BLE001 - best effort
                pass
            await self.janus.close()


# --------------------------------------------------------------------------------------------
# Program: a peer to be killed

async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", required=True, help="the server's HTTP API URL, e.g. http://127.0.0.1:8088/janus")
    parser.add_argument("--plugin", default="janus.plugin.echotest")
    parser.add_argument("--video-frames", type=int, default=20)
    parser.add_argument("--audio-frames", type=int, default=25)
    parser.add_argument("--consent-interval", type=float, default=None,
                        help="seconds between aioice's consent checks (default: aioice's 4-6 s)")
    args = parser.parse_args(argv)
    if args.consent_interval:
        import aioice.ice
        aioice.ice.CONSENT_INTERVAL = args.consent_interval
    janus = HttpAsyncJanus(args.http, poll_until=lambda e: "jsep" in e)
    peer = await EchoPeer.connect(janus, args.plugin)
    frames = await peer.wait_frames(args.video_frames, args.audio_frames)
    print(json.dumps({"session_id": janus.session_id, "handle_id": peer.handle,
                      "answer_sdp": peer.answer_sdp, "offer_sdp": peer.offer_sdp, **frames}), flush=True)
    while True:
        await asyncio.sleep(0.5)  # a period: the parent reads the counts as they grow
        print(json.dumps(peer.frames()), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
