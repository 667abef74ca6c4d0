"""Several media loops (media.threads): a room's handles share one loop, rooms spread over the
loops, and a relay between handles of different loops still delivers (the queued path of the
header's "Media from any thread"). Each loop listens on its own port (udp_port + its index), so
the candidates a handle is given name its loop. The suite's servers run two loops (MEDIA_THREADS).
"""
from __future__ import annotations

import pytest

from aiortc import RTCSessionDescription

from conftest import MEDIA_THREADS
from rtc_peer import PatternVideoTrack, candidates, for_aiortc
from test_sfu_media import FRAMES, cleanup, room_with, subscribe_all
from videoroom_client import Publisher, SwitchableTone, VideoRoomHandle, new_pc, run, session, start_sfu

pytestmark = pytest.mark.atrium_only


def udp_port_of(sdp: str) -> int:
    """The one UDP port the server's candidates in *sdp* name."""
    ports = {c["port"] for c in candidates(sdp) if c["protocol"] == "udp"}
    assert len(ports) == 1, sdp
    return ports.pop()


@pytest.fixture
def fresh_sfu(tmp_path):
    """A server of its own: where handles go depends on what the loops already hold."""
    server, stop = start_sfu(tmp_path)
    yield server
    assert stop() is None


def test_a_room_stays_on_one_loop_and_rooms_spread_over_loops(fresh_sfu):
    assert MEDIA_THREADS == 2
    trace = {"janus": [], "notes": []}

    async def body():
        first = second = None
        try:
            ports = []
            for name in ("ann", "bob"):
                m, room, (pub,) = await room_with(fresh_sfu, trace, [name])
                await pub.publish()
                subs = [(await subscribe_all(fresh_sfu, room, pub, trace))[0] for _ in range(2)]
                room_ports = {udp_port_of(pub.answer_sdp)} | {udp_port_of(s.offers[0]) for s in subs}
                assert len(room_ports) == 1, f"the handles of room {room} are on ports {room_ports}"
                ports.append(room_ports.pop())
                if first is None:
                    first = (m, pub, *subs)
                else:
                    second = (m, pub, *subs)
            # A fresh server: the first room on the first loop, the second on the other one.
            assert ports == [fresh_sfu.udp_port, fresh_sfu.udp_port + 1], ports
            # Both loops forward at once.
            for _, _, *subs in (first, second):
                for s in subs:
                    await s.wait_frames({mid: FRAMES[t["kind"]] for mid, t in s.tracks.items()})
        finally:
            for group in (first, second):
                if group is not None:
                    await cleanup(group[0], *group[1:])

    run(body(), timeout=90)


def test_a_relay_to_a_handle_of_another_loop_arrives(fresh_sfu):
    trace = {"janus": [], "notes": []}

    async def body():
        m1, room1, (pub,) = await room_with(fresh_sfu, trace, ["cyd"])
        m2, room2, (other,) = await room_with(fresh_sfu, trace, ["dan"])
        sub = None
        try:
            await pub.publish()
            await other.publish()
            assert udp_port_of(pub.answer_sdp) == fresh_sfu.udp_port
            assert udp_port_of(other.answer_sdp) == fresh_sfu.udp_port + 1
            # cyd moves to dan's room: the handle keeps its loop (its PeerConnection's state lives
            # there), the room's loop is the other one.
            left = await pub.handle.call({"request": "leave"})
            assert left.data.get("leaving") == "ok", left.raw
            rejoined = await pub.handle.call({"request": "join", "ptype": "publisher", "room": room2, "display": "cyd"})
            assert rejoined.data.get("videoroom") == "joined", rejoined.raw
            pub.id = rejoined.data["id"]
            await pub.pc.close()
            await pub.publish()
            assert udp_port_of(pub.answer_sdp) == fresh_sfu.udp_port
            sub, mids = await subscribe_all(fresh_sfu, room2, pub, trace)
            assert udp_port_of(sub.offers[0]) == fresh_sfu.udp_port + 1
            # subscribe_all waited for frames: every packet crossed from loop 0 to loop 1.
            await sub.wait_frames({mids["audio"]: FRAMES["audio"], mids["video"]: FRAMES["video"]})
        finally:
            await cleanup(m1, sub, pub)
            await cleanup(m2, other)

    run(body(), timeout=90)


async def join_and_configure(server, room: int, name: str, trace: dict) -> Publisher:
    """A publisher that joins with its offer in one request (joinandconfigure): the host sets up
    its PeerConnection, and so places it, before the plugin knows the room."""
    janus = await session(server, "websocket", trace)
    pub = Publisher(janus, await VideoRoomHandle.attach(janus))
    pc = pub.pc = new_pc()
    pub.tone = SwitchableTone()
    pc.addTrack(pub.tone)
    pc.addTrack(PatternVideoTrack())
    await pc.setLocalDescription(await pc.createOffer())
    pub.offer_sdp = pc.localDescription.sdp
    joined = await pub.handle.call({"request": "joinandconfigure", "ptype": "publisher", "room": room, "display": name},
                                   {"type": "offer", "sdp": pub.offer_sdp})
    assert joined.data.get("videoroom") == "joined" and joined.jsep and joined.jsep["type"] == "answer", joined.raw
    pub.id = joined.data["id"]
    pub.answer_sdp = joined.jsep["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=for_aiortc(pub.answer_sdp), type="answer"))
    await pub.handle.wait(lambda m: True, 15, kind="webrtcup")
    return pub


def test_publishers_that_join_with_their_offer_meet_on_the_rooms_loop(fresh_sfu):
    trace = {"janus": [], "notes": []}

    async def body():
        m, room, _ = await room_with(fresh_sfu, trace, [])
        pubs, sub = [], None
        try:
            # Each offer is placed on the loop with the fewest handles (the second and third on the
            # other loop), then the join puts the handle in the room's group: an unanswered
            # PeerConnection moves to the room's loop before its candidates are given out.
            for name in ("eve", "fay", "gus"):
                pubs.append(await join_and_configure(fresh_sfu, room, name, trace))
            assert [udp_port_of(p.answer_sdp) for p in pubs] == [fresh_sfu.udp_port] * 3
            sub, mids = await subscribe_all(fresh_sfu, room, pubs[1], trace)
            assert udp_port_of(sub.offers[0]) == fresh_sfu.udp_port
            await sub.wait_frames({mids["audio"]: FRAMES["audio"], mids["video"]: FRAMES["video"]})
        finally:
            await cleanup(m, sub, *pubs)

    run(body(), timeout=90)
