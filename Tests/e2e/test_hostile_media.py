"""Hostile clients against the host's media and request parsing (issue 18, cases 1, 2, 8 and 9).

Each test plays what an anonymous client did to crash or stall the server before, and shows the
server refuses it with a clear error while honest clients keep working:

1. an EchoTest offer with ``a=rtpmap:111 opus/4294967295/2`` was accepted, and about 8 s later the
   sender report's ``elapsed * clock rate`` trapped and ended every meeting;
2. two 908 KiB bodies of 100,000 keys held both network threads for over 20 s (each parsed key
   searched the keys before it), so ``/health`` got no answer;
8. an offer of 15,000 m-lines took 2.7 s to answer and stalled the media thread for everyone;
9. a connected peer sending from ever new SSRCs grew the per-SSRC state without bound, and the
   per-second report walked all of it on the media thread.

Media needs a non-loopback address: run inside the test namespace as `make e2e` does.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import struct
import threading

import pytest
import requests

from conftest import AtriumServer, media_config, require_media_ip
from janus_client import open_janus
from rtc_peer import EchoPeer

ECHO = "janus.plugin.echotest"


@pytest.fixture
def server(start_atrium) -> AtriumServer:
    require_media_ip()
    return start_atrium(media_config(), name="hostile-media")


def crafted_offer(peer_offer: str, replace: tuple[str, str] | None = None, extra_sections: int = 0) -> str:
    """An honest aiortc offer, edited as an attacker would."""
    text = peer_offer
    if replace:
        assert replace[0] in text, f"{replace[0]!r} not in the offer"
        text = text.replace(*replace)
    if extra_sections:
        # In the BUNDLE group, as a browser's sections are: otherwise they are refused for that.
        # Short mids and a static payload type, so that 15,000 fit in 1 MiB as in the attack.
        mids = [f"{i:x}x" for i in range(extra_sections)]
        text = re.sub(r"(a=group:BUNDLE [^\r\n]*)", lambda m: f"{m.group(1)} {' '.join(mids)}", text, count=1)
        text += "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}\r\na=rtcp-mux\r\n" for mid in mids)
    return text


async def offer_reply(url: str, sdp: str) -> dict:
    """Sends `sdp` as an EchoTest offer on a fresh session; returns the message's reply."""
    janus = await open_janus(url)
    try:
        await janus.create()
        handle = await janus.attach(ECHO)
        return await janus.message(handle, {"audio": True, "video": True}, {"type": "offer", "sdp": sdp})
    finally:
        await janus.close()


def assert_offer_refused_while_meetings_go_on(server: AtriumServer, craft, reason: str) -> None:
    """An honest peer echoes; an attacker's offer, crafted from the honest one, gets 465 naming
    `reason`; the honest echo goes on over several report intervals, and the server lives."""
    async def run():
        honest = await EchoPeer.connect(server.http_url)
        try:
            await honest.wait_frames(video=10, audio=20)
            crafted = craft(honest.offer_sdp)
            assert len(crafted) < 1 << 20  # under the body limit, as the attacks were
            reply = await offer_reply(server.http_url, crafted)
            # Refused where it is parsed, with the reason, before anything is stored or set up.
            assert reply.get("janus") == "error", str(reply)[:500]
            assert reply["error"]["code"] == 465, reply
            assert reason in reply["error"]["reason"], reply
            # Generous: the aiortc peer decodes in Python and is the first thing starved on a busy machine.
            await honest.wait_frames(video=45, audio=150, timeout=40)
        finally:
            await honest.close()
    asyncio.run(run())
    assert server.alive(), server.log()[-3000:]


def test_a_clock_rate_rtp_does_not_use_is_refused_and_meetings_go_on(server):
    assert_offer_refused_while_meetings_go_on(
        server, lambda offer: crafted_offer(offer, replace=("opus/48000/2", "opus/4294967295/2")), "4294967295")


def test_bodies_of_many_keys_do_not_stall_the_server(server):
    body = "{" + ",".join(f'"{i:x}":0' for i in range(100_000)) + "}"
    assert len(body) < server.config["http"].get("max_body_bytes", 1 << 20)
    replies: list[dict] = []
    errors: list[BaseException] = []

    def attack():
        try:
            for _ in range(3):
                r = requests.post(server.http_url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
                replies.append(r.json())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    attackers = [threading.Thread(target=attack) for _ in range(2)]
    for t in attackers:
        t.start()
    # While the attack runs, the server answers others at once (before: nothing for over 20 s).
    health = []
    while any(t.is_alive() for t in attackers):
        health.append(requests.get(f"{server.base}/health", timeout=2).status_code)
    for t in attackers:
        t.join()
    assert not errors, errors
    assert health and all(code == 200 for code in health), health
    assert len(replies) == 6
    for reply in replies:
        assert reply["janus"] == "error" and reply["error"]["code"] == 454, reply
        assert "more than 1000 keys" in reply["error"]["reason"], reply


def test_an_offer_of_thousands_of_sections_is_refused_at_once(server):
    assert_offer_refused_while_meetings_go_on(
        # 45,000 lines: the line bound (20,000) or the section bound (64) refuses it, whichever first.
        server, lambda offer: crafted_offer(offer, extra_sections=15_000), "more than")


def remote_ssrcs(info: dict) -> list[list[int]]:
    """The remote SSRCs each stream of a handle tracks, from the admin API's handle_info."""
    found: list[list[int]] = []

    def walk(value):
        if isinstance(value, dict):
            if "remote_ssrcs" in value:
                found.append(value["remote_ssrcs"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(info)
    return found


def assert_ssrc_attack_bounded(server: AtriumServer, attack) -> None:
    """A connected EchoTest peer runs `attack(peer, send)`, where `send(ssrc, seq)` sends one audio
    packet from `ssrc` through the peer's own SRTP session; afterwards each stream of the handle
    tracks at most media.max_ssrcs_per_stream (16) SSRCs, the peer's honest media still echoes,
    and the server lives."""
    async def run():
        peer = await EchoPeer.connect(server.http_url)
        try:
            await peer.wait_frames(video=10, audio=20)
            audio_pt = next(int(line.split(":")[1].split()[0]) for line in peer.answer_sdp.splitlines()
                            if line.startswith("a=rtpmap:") and "opus" in line.lower())
            transport = peer.pc.getSenders()[0].transport

            async def send(ssrc: int, seq: int) -> None:
                header = struct.pack("!BBHII", 0x80, audio_pt, seq & 0xFFFF, (seq * 960) & 0xFFFFFFFF, ssrc)
                await transport._send_rtp(header + bytes(40))
            await attack(peer, send)
            info = await asyncio.to_thread(server.admin, {"janus": "handle_info", "session_id": peer.janus.session_id,
                                                          "handle_id": peer.handle})
            tracked = remote_ssrcs(info)
            assert tracked, json.dumps(info)[:2000]
            assert all(len(s) <= 16 for s in tracked), tracked
            await peer.wait_frames(video=15, audio=50)
        finally:
            await peer.close()
    asyncio.run(run())
    assert server.alive(), server.log()[-3000:]


def test_packets_from_ever_new_ssrcs_do_not_grow_the_server(server):
    async def attack(peer, send):
        # 3,000 packets, each from an SSRC never seen before.
        for i in range(3_000):
            await send(random.getrandbits(32) | 1, i)
            if i % 200 == 0:
                await asyncio.sleep(0)
    assert_ssrc_attack_bounded(server, attack)


def test_renegotiating_new_ssrcs_again_and_again_does_not_grow_the_server(server):
    """The same, with SSRCs announced in re-offers (a=ssrc), which skip the bound on SSRCs learned
    from packets: each re-offer announces 30 new ones (32 with aiortc's own) and the peer sends
    from all of them."""
    async def attack(peer, send):
        for round_ in range(8):
            ssrcs = [random.getrandbits(32) | 1 for _ in range(30)]
            lines = "".join(f"a=ssrc:{s} cname:attacker\r\n" for s in ssrcs)
            # Announced in the audio section: after its a=mid line.
            offer = re.sub(r"(m=audio [^\r\n]*\r\n(?:[^m][^\r\n]*\r\n)*?a=mid:[^\r\n]*\r\n)",
                           lambda m: m.group(1) + lines, peer.offer_sdp, count=1)
            assert offer != peer.offer_sdp
            reply = await peer.janus.message(peer.handle, {"audio": True, "video": True}, {"type": "offer", "sdp": offer})
            assert reply.get("janus") in ("ack", "success"), reply
            for i, ssrc in enumerate(ssrcs):
                await send(ssrc, round_ * 30 + i)
            await asyncio.sleep(0)
    assert_ssrc_attack_bounded(server, attack)
