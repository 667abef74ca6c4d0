"""Publishers and subscribers with aiortc (videoroom_client.Publisher / Subscriber): the events of
the VideoRoom multistream API and the media behind them, as Janus 1.1.2's VideoRoom does them.

What Janus 1.1.2 does, observed with these tests (and asserted for both servers):
  publish (offer)       → event {"videoroom":"event","room","configured":"ok","audio_codec":"opus",
                          "video_codec":"vp8","streams":[{"type","mindex","mid","codec"}...]} + jsep
                          answer (recvonly m-lines), then the core's webrtcup/media events. Only
                          after webrtcup can the feed be subscribed to (before: 428 No such feed).
  the other publishers  → {"videoroom":"event","room","publishers":[{"id","display","audio_codec",
                          "video_codec","streams":[...]}]} (no transaction)
  subscriber join       → {"videoroom":"attached","room","streams":[{"type","active":true,"mindex",
                          "mid","ready":false,"send":true,"feed_id","feed_display","feed_mid",
                          "codec"}...]} + jsep offer (sendonly, candidates inside, BUNDLE)
  start (answer)        → {"videoroom":"event","room","started":"ok"}
  pause / start         → {"paused":"ok"} / {"started":"ok"}; no media while paused
  configure send:false  → {"configured":"ok"}; that mid stops, send:true resumes it
  unpublish             → the publisher: {"unpublished":"ok"}; the other publishers:
                          {"room","unpublished":<id>} (Janus 1.1.2 sends it TWICE); the subscriber:
                          {"videoroom":"updated","room","streams":[{"type","active":false,"mindex",
                          "mid","ready":false,"send":true}...]} + a new offer (m-lines a=inactive)
  publisher's session destroyed / handle detached → the same, then {"leaving":<id>}; core hangup
  or a PC closed by the peer (DTLS alert) → {"unpublished":<id>} once, the same "updated".
  leave / kick while publishing → the others get {"leaving":<id>} / {"kicked":<id>} and media stops,
                          but Janus 1.1.2 sends the subscriber NO "updated" (its m-lines stay
                          until the subscriber renegotiates); the tests accept either.
  subscribe / unsubscribe / update → {"videoroom":"updated","room","streams":[...]} + offer; answer
                          with start → {"started":"ok"}; unsubscribed m-lines become a=inactive and
                          are reused by later subscriptions.
  switch                → {"videoroom":"event","switched":"ok","room","changes":N,"streams":[...]}
                          without renegotiation
  moderate (mute)       → sync {"videoroom":"success"}; every publisher in the room (the muted one
                          too) gets {"videoroom":"event","room","id","mid","moderation":"muted"};
                          subscribers stop getting that mid until "unmuted".
  talking (room with audiolevel_event) → {"videoroom":"talking"|"stopped-talking","room","id",
                          "mindex","mid","audio-level-dBov-avg":float} to every publisher handle,
                          the speaker's too; aiortc sends ssrc-audio-level (its 440 Hz tone: 15).
"""
from __future__ import annotations


import pytest

from conftest import MEDIA_THREADS
from rtc_peer import candidates, media_summary
from videoroom_client import (SECRET, Publisher, Subscriber, VideoRoomHandle, assert_error, assert_roster_event,
                              close_janus,
                              create_room, manager, run, stream_mid)

pytestmark = pytest.mark.usefixtures("sfu_trace")

FRAMES = {"audio": 25, "video": 10}   # half a second of audio, about a second of the 15 fps video


def directions(sdp: str) -> dict[str, str]:
    return {m["mid"]: m["direction"] for m in media_summary(sdp)}


async def room_with(server, trace, names: list[str], **props):
    """A new room and its joined publishers (no media yet); returns (manager, room, [Publisher])."""
    m = await manager(server, trace=trace)
    room = await create_room(m, publishers=6, **props)
    people = [await Publisher.join(server, room, name, trace=trace) for name in names]
    return m, room, people


async def cleanup(m, *peers):
    for p in peers:
        if p is not None:
            try:
                await p.close()
            except Exception:  # noqa: BLE001 - a test's own failure matters more
                pass
    await close_janus(m.janus)


async def subscribe_all(server, room, feed: Publisher, trace) -> tuple[Subscriber, dict]:
    """A subscriber to every stream of *feed*, decoding; returns it and {kind: subscriber mid}."""
    sub = await Subscriber.join(server, room, [{"feed": feed.id}], trace=trace)
    streams = sub.attached.data["streams"]
    mids = {kind: stream_mid(streams, feed.id, kind) for kind in ("audio", "video")}
    await sub.wait_frames({mids["audio"]: FRAMES["audio"], mids["video"]: FRAMES["video"]})
    return sub, mids


# --------------------------------------------------------------------------------------------
# publish, the roster, subscribe

def test_publish_and_subscribe(sfu, sfu_trace):
    async def body():
        m, room, (alice, bob) = await room_with(sfu, sfu_trace, ["alice", "bob"])
        sub = None
        try:
            configured = await alice.publish()
            mids = alice.mids()
            assert configured.data == {
                "videoroom": "event", "room": room, "configured": "ok", "audio_codec": "opus", "video_codec": "vp8",
                "streams": [{"type": "audio", "mindex": 0, "mid": mids["audio"], "codec": "opus"},
                            {"type": "video", "mindex": 1, "mid": mids["video"], "codec": "vp8"}]}, configured.raw
            assert configured.raw.get("transaction"), configured.raw
            answer = media_summary(configured.jsep["sdp"])
            assert [(x["kind"], x["direction"]) for x in answer] == [("audio", "recvonly"), ("video", "recvonly")], answer

            # bob hears of the new publisher
            news = await bob.handle.wait(lambda d: "publishers" in d, 5)
            assert "transaction" not in news.raw, news.raw
            assert news.data == {"videoroom": "event", "room": room, "publishers": [{
                "id": alice.id, "display": "alice", "audio_codec": "opus", "video_codec": "vp8",
                "streams": configured.data["streams"]}]}, news.raw
            # ... and so does a latecomer, in its joined event
            carol = await Publisher.join(sfu, room, "carol", trace=sfu_trace)
            listed = carol.joined.data["publishers"]
            assert [(p["id"], p["display"]) for p in listed] == [(alice.id, "alice")], listed
            assert [(s["type"], s["mid"], s["codec"]) for s in listed[0]["streams"]] == \
                [("audio", mids["audio"], "opus"), ("video", mids["video"], "vp8")], listed
            await carol.close()

            # a subscriber: attached + offer, start + answer, then frames of both kinds
            sub = await Subscriber.join(sfu, room, [{"feed": alice.id}], trace=sfu_trace, answer=False)
            attached = sub.attached
            assert set(attached.data) == {"videoroom", "room", "streams"} and attached.data["room"] == room, attached.raw
            streams = attached.data["streams"]
            assert [(s["type"], s["mindex"], s["active"], s["feed_id"], s["feed_display"], s["feed_mid"], s["send"],
                     s["codec"]) for s in streams] == [
                ("audio", 0, True, alice.id, "alice", mids["audio"], True, "opus"),
                ("video", 1, True, alice.id, "alice", mids["video"], True, "vp8")], streams
            offer = media_summary(attached.jsep["sdp"])
            assert [(x["kind"], x["mid"], x["direction"]) for x in offer] == [
                ("audio", streams[0]["mid"], "sendonly"), ("video", streams[1]["mid"], "sendonly")], offer
            assert "a=group:BUNDLE" in attached.jsep["sdp"] and "a=candidate:" in attached.jsep["sdp"]
            started = await sub.answer(attached)
            assert started.data == {"videoroom": "event", "room": room, "started": "ok"}, started.raw
            amid, vmid = streams[0]["mid"], streams[1]["mid"]
            await sub.wait_frames({amid: 50, vmid: 20})
            assert (sub.tracks[vmid]["width"], sub.tracks[vmid]["height"]) == (320, 240), sub.tracks
            await sub.handle.wait(lambda e: True, 5, kind="webrtcup")

            participants = (await m.sync({"request": "listparticipants", "room": room}))["participants"]
            assert sorted((p["display"], p["publisher"]) for p in participants) == [("alice", True), ("bob", False)], \
                participants

            # subscriber errors
            h = await VideoRoomHandle.attach(m.janus)
            nofeed = await h.call({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": 12345}]})
            assert nofeed.data == {"videoroom": "event", "error_code": 428, "error": "No such feed (12345)"}, nofeed.raw
            nothing = await h.call({"request": "join", "ptype": "subscriber", "room": room, "streams": []})
            assert_error(nothing.data, 429, "Missing mandatory element (feed)")
            twice = await alice.handle.call({"request": "publish"})
            assert_error(twice.data, 434, "Can't publish, already published")
            unpublished = await bob.handle.call({"request": "unpublish"})
            assert_error(unpublished.data, 435, "Can't unpublish, not published")
        finally:
            await cleanup(m, sub, alice, bob)

    run(body())


def test_pause_start_and_send_false(sfu, sfu_trace):
    async def body():
        m, room, (alice,) = await room_with(sfu, sfu_trace, ["alice"])
        sub = None
        try:
            await alice.publish()
            sub, mids = await subscribe_all(sfu, room, alice, sfu_trace)
            paused = await sub.handle.call({"request": "pause"})
            assert paused.data == {"videoroom": "event", "room": room, "paused": "ok"}, paused.raw
            got = await sub.frames_during(1.5, drain=0.3)
            assert got[mids["video"]] == 0 and got[mids["audio"]] <= 2, got
            started = await sub.handle.call({"request": "start"})
            assert started.data == {"videoroom": "event", "room": room, "started": "ok"} and started.jsep is None, started.raw
            await sub.wait_frames({mids["audio"]: 25, mids["video"]: 10})

            configured = await sub.handle.call({"request": "configure", "streams": [{"mid": mids["video"], "send": False}]})
            assert configured.data == {"videoroom": "event", "room": room, "configured": "ok"}, configured.raw
            got = await sub.frames_during(1.5, drain=0.3)
            assert got[mids["video"]] == 0 and got[mids["audio"]] >= 50, got
            await sub.handle.call({"request": "configure", "streams": [{"mid": mids["video"], "send": True}]})
            await sub.wait_frames({mids["video"]: 10})
        finally:
            await cleanup(m, sub, alice)

    run(body())


# --------------------------------------------------------------------------------------------
# a publisher goes: unpublish, hangup, PC closed, session destroyed, handle detached

def assert_gone(updated, room: int, mids: dict) -> None:
    """The subscriber's "updated" after its only feed went: every stream inactive, a new offer
    whose m-lines are inactive."""
    assert updated.data["videoroom"] == "updated" and updated.data["room"] == room, updated.raw
    assert "transaction" not in updated.raw, updated.raw
    for s in updated.data["streams"]:
        assert s["active"] is False and "feed_id" not in s, updated.raw
    assert sorted(s["mid"] for s in updated.data["streams"]) == sorted(mids.values()), updated.raw
    assert updated.jsep and updated.jsep["type"] == "offer", updated.raw
    for mid in mids.values():
        assert directions(updated.jsep["sdp"])[mid] == "inactive", updated.jsep["sdp"]


@pytest.mark.parametrize("how", ["unpublish", "hangup", "close-pc", "destroy-session", "detach"])
def test_publisher_going_away_is_cleaned_up_at_every_subscriber(sfu, sfu_trace, how):
    async def body():
        m, room, (alice, bob) = await room_with(sfu, sfu_trace, ["alice", "bob"])
        subs = []
        try:
            await alice.publish()
            for _ in range(2):
                subs.append(await subscribe_all(sfu, room, alice, sfu_trace))
            if how == "unpublish":
                done = await alice.handle.call({"request": "unpublish"})
                assert done.data == {"videoroom": "event", "room": room, "unpublished": "ok"}, done.raw
            elif how == "hangup":
                assert (await alice.janus.hangup(alice.handle.id))["janus"] == "success"
            elif how == "close-pc":
                await alice.pc.close()
            elif how == "destroy-session":
                assert (await alice.janus.destroy())["janus"] == "success"
            elif how == "detach":
                assert (await alice.janus.detach(alice.handle.id))["janus"] == "success"

            for sub, mids in subs:
                updated = await sub.handle.wait(lambda d: d.get("videoroom") == "updated", 10)
                assert_gone(updated, room, mids)
                started = await sub.answer(updated)
                assert started.data == {"videoroom": "event", "room": room, "started": "ok"}, started.raw
                got = await sub.frames_during(1.0, drain=0.3)
                assert all(n == 0 for n in got.values()), got

            gone = await bob.handle.wait(lambda d: "unpublished" in d, 5)
            assert_roster_event(gone.data, {"videoroom": "event", "room": room, "unpublished": alice.id}, "alice")
            if how in ("destroy-session", "detach"):
                left = await bob.handle.wait(lambda d: "leaving" in d, 5)
                assert_roster_event(left.data, {"videoroom": "event", "room": room, "leaving": alice.id}, "alice")
                # "unpublished" (however many) comes before "leaving"
                order = [("unpublished" in e.data, "leaving" in e.data) for e in bob.handle.plugin_events()]
                assert order.index((False, True)) > max(i for i, x in enumerate(order) if x == (True, False)), order
            participants = (await m.sync({"request": "listparticipants", "room": room}))["participants"]
            mine = [p for p in participants if p["id"] == alice.id]
            if how in ("destroy-session", "detach"):
                assert mine == [], participants
            else:
                assert mine and mine[0]["publisher"] is False, participants
            if how == "unpublish":
                again = await alice.handle.call({"request": "unpublish"})
                assert_error(again.data, 435, "Can't unpublish, not published")
        finally:
            await cleanup(m, *(s for s, _ in subs), alice, bob)

    run(body())


@pytest.mark.parametrize("how", ["leave", "kick"])
def test_publisher_leaving_or_kicked_mid_stream(sfu, sfu_trace, how):
    async def body():
        m, room, (alice, bob) = await room_with(sfu, sfu_trace, ["alice", "bob"])
        sub = None
        try:
            await alice.publish()
            sub, mids = await subscribe_all(sfu, room, alice, sfu_trace)
            if how == "leave":
                left = await alice.handle.call({"request": "leave"})
                assert left.data == {"videoroom": "event", "room": room, "leaving": "ok"}, left.raw
                news = await bob.handle.wait(lambda d: "leaving" in d, 5)
                assert_roster_event(news.data, {"videoroom": "event", "room": room, "leaving": alice.id}, "alice")
            else:
                kicked = await m.sync({"request": "kick", "room": room, "secret": SECRET, "id": alice.id})
                assert kicked == {"videoroom": "success"}, kicked
                mine = await alice.handle.wait(lambda d: d.get("leaving") == "ok", 5)
                assert mine.data == {"videoroom": "event", "room": room, "leaving": "ok", "reason": "kicked"}, mine.raw
                await alice.handle.wait(lambda e: True, 5, kind="hangup")
                news = await bob.handle.wait(lambda d: "kicked" in d, 5)
                assert_roster_event(news.data, {"videoroom": "event", "room": room, "kicked": alice.id}, "alice")
            # The subscriber gets nothing more from alice. (Janus 1.1.2 sends no "updated" here;
            # a server that does must mark alice's streams inactive.)
            got = await sub.frames_during(1.0, drain=0.5)
            assert all(n == 0 for n in got.values()), got
            for event in sub.handle.plugin_events():
                if event.data.get("videoroom") == "updated":
                    assert_gone(event, room, mids)
            participants = (await m.sync({"request": "listparticipants", "room": room}))["participants"]
            assert [p["id"] for p in participants] == [bob.id], participants
        finally:
            await cleanup(m, sub, alice, bob)

    run(body())


# --------------------------------------------------------------------------------------------
# subscriber renegotiation: subscribe, unsubscribe, update; switch

def test_subscribe_unsubscribe_update_and_switch(sfu, sfu_trace):
    """fir_freq=1: a keyframe request every second, as aiortc never asks for one itself when it
    cannot decode (a browser does) and a switched m-line starts in the middle of a stream."""
    async def body():
        m, room, (alice, bob) = await room_with(sfu, sfu_trace, ["alice", "bob"], fir_freq=1)
        sub = None
        try:
            await alice.publish()
            await bob.publish()
            sub, amids = await subscribe_all(sfu, room, alice, sfu_trace)

            # subscribe: bob's two streams are added (new m-lines), one renegotiation
            updated = await sub.handle.call({"request": "subscribe", "streams": [{"feed": bob.id}]})
            assert updated.data["videoroom"] == "updated" and updated.data["room"] == room, updated.raw
            streams = updated.data["streams"]
            bmids = {kind: stream_mid(streams, bob.id, kind) for kind in ("audio", "video")}
            assert len(streams) == 4 and len({s["mid"] for s in streams}) == 4, streams
            assert [s["feed_display"] for s in streams if s["feed_id"] == bob.id] == ["bob", "bob"], streams
            assert updated.jsep["type"] == "offer" and len(media_summary(updated.jsep["sdp"])) == 4, updated.raw
            started = await sub.answer(updated)
            assert started.data == {"videoroom": "event", "room": room, "started": "ok"}, started.raw
            await sub.wait_frames({amids["video"]: 10, bmids["video"]: 10, amids["audio"]: 25, bmids["audio"]: 25})

            # unsubscribe bob's video: its m-line becomes inactive
            updated = await sub.handle.call({"request": "unsubscribe",
                                             "streams": [{"feed": bob.id, "mid": bob.mids()["video"]}]})
            assert updated.data["videoroom"] == "updated", updated.raw
            gone = [s for s in updated.data["streams"] if s["mid"] == bmids["video"]]
            assert gone and gone[0]["active"] is False and "feed_id" not in gone[0], updated.raw
            assert directions(updated.jsep["sdp"])[bmids["video"]] == "inactive", updated.jsep["sdp"]
            await sub.answer(updated)
            got = await sub.frames_during(1.5, drain=0.3)
            assert got[bmids["video"]] == 0 and got[amids["video"]] > 0 and got[bmids["audio"]] > 0, got

            # update: bob's video back, alice's audio out, in one renegotiation
            updated = await sub.handle.call({"request": "update",
                                             "subscribe": [{"feed": bob.id, "mid": bob.mids()["video"]}],
                                             "unsubscribe": [{"feed": alice.id, "mid": alice.mids()["audio"]}]})
            assert updated.data["videoroom"] == "updated", updated.raw
            by_mid = {s["mid"]: s for s in updated.data["streams"]}
            assert by_mid[amids["audio"]]["active"] is False, updated.raw
            back = [s for s in updated.data["streams"] if s.get("feed_id") == bob.id and s["type"] == "video"]
            assert len(back) == 1 and back[0]["active"] is True, updated.raw
            bmids["video"] = back[0]["mid"]
            # The reused m-line is offered sendonly again, with a new SSRC (Janus 1.1.2 does so).
            # aiortc 1.16 keeps routing that m-line by its first SSRC and decodes nothing more
            # there, so here only the signalling of the reused m-line is checked, and the media of
            # the others.
            assert directions(updated.jsep["sdp"])[bmids["video"]] == "sendonly", updated.jsep["sdp"]
            await sub.answer(updated)
            got = await sub.frames_during(1.5, drain=0.5)
            assert got[amids["audio"]] == 0 and got[amids["video"]] > 0 and got[bmids["audio"]] > 0, got

            # switch: the m-line carrying alice's video now carries bob's, no renegotiation
            switched = await sub.handle.call({"request": "switch", "streams": [
                {"feed": bob.id, "mid": bob.mids()["video"], "sub_mid": amids["video"]}]})
            assert switched.jsep is None, switched.raw
            data = switched.data
            assert (data["videoroom"], data["switched"], data["room"], data["changes"]) == ("event", "ok", room, 1), data
            moved = [s for s in data["streams"] if s["mid"] == amids["video"]]
            assert moved[0]["feed_id"] == bob.id and moved[0]["feed_mid"] == bob.mids()["video"], data
            await sub.wait_frames({amids["video"]: 10})

            # errors
            nofeed = await sub.handle.call({"request": "subscribe", "streams": [{"feed": 12345}]})
            assert_error(nofeed.data, 428)
        finally:
            await cleanup(m, sub, alice, bob)

    run(body())


# --------------------------------------------------------------------------------------------
# moderate

def test_moderate_mutes_one_stream(sfu, sfu_trace):
    async def body():
        m, room, (alice, bob) = await room_with(sfu, sfu_trace, ["alice", "bob"])
        sub = None
        try:
            await alice.publish()
            sub, mids = await subscribe_all(sfu, room, alice, sfu_trace)
            video = alice.mids()["video"]
            assert_error(await m.sync({"request": "moderate", "room": room, "secret": "wrong", "id": alice.id,
                                       "mid": video, "mute": True}), 433, "Unauthorized (wrong secret)")
            assert_error(await m.sync({"request": "moderate", "room": room, "secret": SECRET, "id": 42,
                                       "mid": video, "mute": True}), 428, f"No such user 42 in room {room}")
            assert_error(await m.sync({"request": "moderate", "room": room, "secret": SECRET, "id": alice.id,
                                       "mid": "99", "mute": True}), 428, "No such stream 99")
            muted = await m.sync({"request": "moderate", "room": room, "secret": SECRET, "id": alice.id,
                                  "mid": video, "mute": True})
            assert muted == {"videoroom": "success"}, muted
            expected = {"videoroom": "event", "room": room, "id": alice.id, "mid": video, "moderation": "muted"}
            for p in (alice, bob):
                event = await p.handle.wait(lambda d: "moderation" in d, 5)
                assert event.data == expected, event.raw
            got = await sub.frames_during(1.5, drain=0.3)
            assert got[mids["video"]] == 0 and got[mids["audio"]] >= 50, got

            await m.sync({"request": "moderate", "room": room, "secret": SECRET, "id": alice.id, "mid": video,
                          "mute": False})
            event = await bob.handle.wait(lambda d: d.get("moderation") == "unmuted", 5)
            assert event.data == {**expected, "moderation": "unmuted"}, event.raw
            await sub.wait_frames({mids["video"]: 10})
        finally:
            await cleanup(m, sub, alice, bob)

    run(body())


# --------------------------------------------------------------------------------------------
# talking

def test_talking_events(sfu, sfu_trace):
    """A room with audiolevel_event; aiortc's tone (ssrc-audio-level 15) is talking, its silence
    (127) is not. 25 packets of 20 ms = a verdict every half second."""
    async def body():
        m, room, (alice, bob) = await room_with(sfu, sfu_trace, ["alice", "bob"], audiolevel_event=True,
                                                 audio_active_packets=25, audio_level_average=40)
        try:
            listed = [r for r in (await m.sync({"request": "list"}))["list"] if r["room"] == room][0]
            assert (listed["audiolevel_event"], listed["audio_active_packets"], listed["audio_level_average"]) == \
                (True, 25, 40), listed
            await alice.publish(video=False)
            mid = alice.mids()["audio"]
            for p in (bob, alice):   # everyone in the room, the speaker too
                event = await p.handle.wait(lambda d: d.get("videoroom") == "talking", 10)
                data = event.data
                assert set(data) == {"videoroom", "room", "id", "mindex", "mid", "audio-level-dBov-avg"}, data
                assert (data["room"], data["id"], data["mindex"], data["mid"]) == (room, alice.id, 0, mid), data
                assert isinstance(data["audio-level-dBov-avg"], float) and data["audio-level-dBov-avg"] < 40, data
            participants = (await m.sync({"request": "listparticipants", "room": room}))["participants"]
            assert [p.get("talking") for p in participants if p["id"] == alice.id] == [True], participants

            alice.tone.silent = True
            for p in (bob, alice):
                event = await p.handle.wait(lambda d: d.get("videoroom") == "stopped-talking", 10)
                data = event.data
                assert (data["room"], data["id"], data["mindex"], data["mid"]) == (room, alice.id, 0, mid), data
                assert data["audio-level-dBov-avg"] >= 40, data
            participants = (await m.sync({"request": "listparticipants", "room": room}))["participants"]
            assert [p.get("talking") for p in participants if p["id"] == alice.id] == [False], participants

            alice.tone.silent = False
            again = await bob.handle.wait(lambda d: d.get("videoroom") == "talking", 10)
            assert again.data["id"] == alice.id, again.raw
            # No talking events in a room without audiolevel_event.
            quiet_room = await create_room(m)
            carol = await Publisher.join(sfu, quiet_room, "carol", trace=sfu_trace)
            dave = await Publisher.join(sfu, quiet_room, "dave", trace=sfu_trace)
            try:
                await carol.publish(video=False)
                await dave.handle.absent(lambda d: d.get("videoroom") in ("talking", "stopped-talking"), 2.0)
            finally:
                for p in (carol, dave):
                    await p.close()
        finally:
            await cleanup(m, alice, bob)

    run(body())


# --------------------------------------------------------------------------------------------
# Atrium's own name for the plugin, and its one media port

@pytest.mark.atrium_only
def test_atrium_plugin_id_and_single_media_port(sfu, sfu_trace):
    """atrium.plugin.sfu is the same plugin as janus.plugin.videoroom (one room list), and every
    candidate Atrium offers or answers is on the media section's one UDP port."""
    async def body():
        m, room, (alice,) = await room_with(sfu, sfu_trace, ["alice"])
        sub = None
        try:
            handle = await m.janus.attach("atrium.plugin.sfu")
            reply = await m.janus.message(handle, {"request": "exists", "room": room})
            assert reply["plugindata"]["data"] == {"videoroom": "success", "room": room, "exists": True}, reply
            await alice.publish()
            sub, _ = await subscribe_all(sfu, room, alice, sfu_trace)
            # The room's handles share a media loop: one port, the same for publisher and subscriber.
            ports = set()
            for sdp in (alice.answer_sdp, sub.offers[0]):
                udp = [c for c in candidates(sdp) if c["protocol"] == "udp"]
                assert udp, sdp
                ports |= {c["port"] for c in udp}
            assert len(ports) == 1 and ports <= set(range(sfu.udp_port, sfu.udp_port + MEDIA_THREADS)), ports
        finally:
            await cleanup(m, sub, alice)

    run(body())


# --------------------------------------------------------------------------------------------
# Labels for taps (the Recorder finds a publisher's streams by them)

@pytest.mark.atrium_only
def test_publisher_handles_are_labelled(sfu, sfu_trace):
    """A participant's handle carries room, participant id, display name and recording wishes as
    labels (the admin API's handle_info shows them); a new display name updates them."""
    async def body():
        m, room, (alice,) = await room_with(sfu, sfu_trace, ["alice"])
        try:
            await alice.publish()

            def labels():
                info = sfu.admin({"janus": "handle_info", "session_id": alice.janus.session_id,
                                  "handle_id": alice.handle.id})
                assert info.get("janus") == "success", info
                return info["info"]["labels"]

            assert labels() == {"room": str(room), "participant": str(alice.id), "display": "alice",
                                "record": "false", "plugin": "atrium.plugin.sfu"}
            configured = await alice.handle.call({"request": "configure", "display": "Alice B.", "record": True})
            assert configured.data.get("configured") == "ok", configured.raw
            assert labels() == {"room": str(room), "participant": str(alice.id), "display": "Alice B.",
                                "record": "true", "plugin": "atrium.plugin.sfu"}
        finally:
            await cleanup(m, alice)

    run(body())
