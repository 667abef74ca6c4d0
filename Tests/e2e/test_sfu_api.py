"""The SFU's VideoRoom API requests and their errors, as Janus 1.1.2's VideoRoom answers them.

Every expectation here was first seen against the real Janus VideoRoom (ATRIUM_E2E_SFU=janus);
Atrium's SFU plugin (alias janus.plugin.videoroom) must answer the same. Synchronous requests
(create, edit, destroy, exists, list, allowed, kick, listparticipants) are answered inside the
Janus "success" reply; join is asynchronous (ack, then an event with the request's transaction).
Errors, sync or async, are plugin data {"videoroom":"event","error_code":N,"error":"..."}.

Observed Janus specifics asserted below:
  * `create` without "room" picks a random id (Janus: up to 2^53); with an admin_key configured a
    create without it is 429 "Missing mandatory element (admin_key)", a wrong one 433.
  * `list` hides is_private rooms unless the request carries the admin_key.
  * `publishers` (max publishers) is NOT checked at join: anyone may join as a publisher; the
    publish that would exceed it gets 432 "Maximum number of publishers (N) already reached".
  * `allowed` lists are returned in no particular order (compared as sets); only publisher joins
    check tokens.
  * a kicked participant's handle gets {"leaving":"ok","reason":"kicked"} (then a core "hangup"
    event when it had a PeerConnection); the others get {"kicked": id}.
"""
from __future__ import annotations

import asyncio

import pytest

from videoroom_client import (ADMIN_KEY, SECRET, Publisher, VideoRoomHandle, assert_error, assert_roster_event,
                              close_janus,
                              create_room, manager, new_room_id, run)

pytestmark = pytest.mark.usefixtures("sfu_trace")


def error(code: int, text: str) -> dict:
    return {"videoroom": "event", "error_code": code, "error": text}


async def joined_publisher(server, room: int, display: str, trace, **extra) -> Publisher:
    return await Publisher.join(server, room, display, trace=trace, **extra)


# --------------------------------------------------------------------------------------------
# list / exists

def test_list_and_exists(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        try:
            public = (await m.sync({"request": "list"}))
            assert public["videoroom"] == "success", public
            rooms = {r["room"]: r for r in public["list"]}
            assert 1234 in rooms and 5678 in rooms, public
            assert 4321 not in rooms, f"a private room is listed without the admin_key: {public}"
            demo = rooms[1234]
            expected = {"room": 1234, "description": "Demo Room", "pin_required": False, "is_private": False,
                        "max_publishers": 6, "bitrate": 128000, "fir_freq": 10, "require_pvtid": False,
                        "notify_joining": False, "audiocodec": "opus", "videocodec": "vp8", "record": False,
                        "audiolevel_ext": True, "audiolevel_event": False}
            assert {k: demo.get(k) for k in expected} == expected, demo
            assert isinstance(demo["num_participants"], int), demo
            assert rooms[5678]["videocodec"] == "vp9" and rooms[5678]["description"] == "VP9-SVC Demo Room", rooms[5678]

            admin = await m.sync({"request": "list", "admin_key": ADMIN_KEY})
            hidden = [r for r in admin["list"] if r["room"] == 4321]
            assert len(hidden) == 1 and hidden[0]["is_private"] is True and hidden[0]["max_publishers"] == 3, admin
            assert_error(await m.sync({"request": "list", "admin_key": "wrong"}), 433, "Unauthorized (wrong admin_key)")

            assert await m.sync({"request": "exists", "room": 1234}) == {"videoroom": "success", "room": 1234, "exists": True}
            assert await m.sync({"request": "exists", "room": 4321}) == {"videoroom": "success", "room": 4321, "exists": True}
            missing = new_room_id()
            assert await m.sync({"request": "exists", "room": missing}) == {"videoroom": "success", "room": missing,
                                                                             "exists": False}
            assert_error(await m.sync({"request": "exists"}), 429, "Missing mandatory element (room)")
        finally:
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# create

def test_create(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        try:
            room = new_room_id()
            created = await m.sync({"request": "create", "room": room, "admin_key": ADMIN_KEY, "description": "Made here",
                                    "secret": "s3", "pin": "1111", "publishers": 2, "bitrate": 64000,
                                    "is_private": False})
            assert created == {"videoroom": "created", "room": room, "permanent": False}, created
            listed = [r for r in (await m.sync({"request": "list"}))["list"] if r["room"] == room]
            assert len(listed) == 1, listed
            assert {k: listed[0][k] for k in ("description", "pin_required", "max_publishers", "bitrate", "num_participants")} \
                == {"description": "Made here", "pin_required": True, "max_publishers": 2, "bitrate": 64000,
                    "num_participants": 0}, listed

            # Without a room id the plugin picks one.
            auto = await m.sync({"request": "create", "admin_key": ADMIN_KEY})
            assert auto["videoroom"] == "created" and auto["permanent"] is False, auto
            assert isinstance(auto["room"], int) and 0 < auto["room"] < 2**53, auto
            assert (await m.sync({"request": "exists", "room": auto["room"]}))["exists"] is True
            described = [r for r in (await m.sync({"request": "list"}))["list"] if r["room"] == auto["room"]]
            assert described and described[0]["description"] == f"Room {auto['room']}", described

            # A private room: created, but only listed with the admin_key.
            private = await create_room(m, is_private=True)
            assert private not in [r["room"] for r in (await m.sync({"request": "list"}))["list"]]
            assert private in [r["room"] for r in (await m.sync({"request": "list", "admin_key": ADMIN_KEY}))["list"]]

            assert_error(await m.sync({"request": "create", "room": 1234, "admin_key": ADMIN_KEY}), 427,
                         "Room 1234 already exists")
            assert_error(await m.sync({"request": "create", "room": new_room_id()}), 429,
                         "Missing mandatory element (admin_key)")
            assert_error(await m.sync({"request": "create", "room": new_room_id(), "admin_key": "nope"}), 433,
                         "Unauthorized (wrong admin_key)")
            assert_error(await m.sync({"request": "create", "room": "abc", "admin_key": ADMIN_KEY}), 430,
                         "Invalid element type (room should be a positive integer)")
            assert_error(await m.sync({"request": "create", "admin_key": ADMIN_KEY, "publishers": "many"}), 430)
        finally:
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# edit

def test_edit(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        try:
            room = await create_room(m, description="Before")
            assert_error(await m.sync({"request": "edit", "room": room, "secret": "wrong", "new_description": "x"}),
                         433, "Unauthorized (wrong secret)")
            assert_error(await m.sync({"request": "edit", "room": room, "new_description": "x"}),
                         429, "Missing mandatory element (secret)")
            missing = new_room_id()
            assert_error(await m.sync({"request": "edit", "room": missing, "secret": SECRET}),
                         426, f"No such room ({missing})")
            edited = await m.sync({"request": "edit", "room": room, "secret": SECRET, "new_description": "After",
                                   "new_publishers": 4, "new_pin": "4242"})
            assert edited == {"videoroom": "edited", "room": room, "permanent": False}, edited
            listed = [r for r in (await m.sync({"request": "list"}))["list"] if r["room"] == room][0]
            assert (listed["description"], listed["max_publishers"], listed["pin_required"]) == ("After", 4, True), listed
            # The new pin is enforced.
            h = await VideoRoomHandle.attach(m.janus)
            bad = await h.call({"request": "join", "ptype": "publisher", "room": room, "pin": "0000"})
            assert bad.data == error(433, "Unauthorized (wrong pin)"), bad.raw
            good = await h.call({"request": "join", "ptype": "publisher", "room": room, "pin": "4242"})
            assert good.data["videoroom"] == "joined" and good.data["description"] == "After", good.raw
        finally:
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# destroy

def test_destroy_tells_the_participants(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        alice = bob = None
        try:
            room = await create_room(m)
            alice = await joined_publisher(sfu, room, "alice", sfu_trace)
            bob = await joined_publisher(sfu, room, "bob", sfu_trace)
            assert_error(await m.sync({"request": "destroy", "room": room, "secret": "wrong"}),
                         433, "Unauthorized (wrong secret)")
            destroyed = await m.sync({"request": "destroy", "room": room, "secret": SECRET})
            assert destroyed == {"videoroom": "destroyed", "room": room, "permanent": False}, destroyed
            for p in (alice, bob):
                event = await p.handle.wait(lambda d: d.get("videoroom") == "destroyed", 5)
                assert event.data == {"videoroom": "destroyed", "room": room}, event.raw
                assert "transaction" not in event.raw, event.raw
            assert (await m.sync({"request": "exists", "room": room}))["exists"] is False
            assert_error(await m.sync({"request": "destroy", "room": room, "secret": SECRET}),
                         426, f"No such room ({room})")
            assert_error(await m.sync({"request": "listparticipants", "room": room}), 426, f"No such room ({room})")
        finally:
            for p in (alice, bob):
                if p is not None:
                    await p.close()
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# join and its errors

def test_join_and_join_errors(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        alice = None
        try:
            room = await create_room(m, pin="1234pin", notify_joining=True)
            missing = new_room_id()
            h = await VideoRoomHandle.attach(m.janus)
            cases = [
                ({"request": "join", "ptype": "publisher", "room": missing}, error(426, f"No such room ({missing})")),
                ({"request": "join", "ptype": "publisher", "room": room, "pin": "nope"}, error(433, "Unauthorized (wrong pin)")),
                ({"request": "join", "ptype": "publisher", "room": room}, error(429, "Missing mandatory element (pin)")),
                ({"request": "join", "ptype": "visitor", "room": room, "pin": "1234pin"}, error(430, "Invalid element (ptype)")),
                ({"request": "join", "room": room, "pin": "1234pin"}, error(429, "Missing mandatory element (ptype)")),
                ({"request": "join", "ptype": "publisher", "room": str(room), "pin": "1234pin"},
                 error(430, "Invalid element type (room should be a positive integer)")),
                ({"request": "join", "ptype": "publisher"}, error(429, "Missing mandatory element (room)")),
                ({"request": "configure", "bitrate": 1000}, error(424, "Invalid request on unconfigured participant")),
                ({"request": "start"}, error(424, "Invalid request on unconfigured participant")),
                ({"request": "unpublish"}, error(424, "Invalid request on unconfigured participant")),
            ]
            for body_, expected in cases:
                event = await h.call(body_)
                assert event.data == expected, f"{body_}: {event.raw}"
                assert event.jsep is None
            # Synchronous ones: an unknown request, none at all.
            assert await h.sync({"request": "frobnicate"}) == error(423, "Unknown request 'frobnicate'")
            assert await h.sync({"room": room}) == error(429, "Missing mandatory element (request)")

            alice = await joined_publisher(sfu, room, "alice", sfu_trace, pin="1234pin")
            joined = alice.joined.data
            assert set(joined) == {"videoroom", "room", "description", "id", "private_id", "publishers", "attendees"}, joined
            assert joined["room"] == room and joined["description"] == f"Room {room}", joined
            assert isinstance(joined["id"], int) and 0 < joined["id"] < 2**53, joined
            assert isinstance(joined["private_id"], int) and 0 < joined["private_id"] < 2**32, joined
            assert joined["publishers"] == [] and joined["attendees"] == [], joined
            assert alice.joined.raw.get("transaction") and alice.joined.jsep is None

            # A second join on the same handle.
            again = await alice.handle.call({"request": "join", "ptype": "publisher", "room": room, "pin": "1234pin"})
            assert again.data == error(425, "Already in as a publisher on this handle"), again.raw

            # notify_joining: the room hears of a newcomer, who gets the attendees.
            good = await h.call({"request": "join", "ptype": "publisher", "room": room, "pin": "1234pin",
                                 "display": "bob", "id": 424242})
            assert good.data["videoroom"] == "joined" and good.data["id"] == 424242, good.raw
            assert good.data["attendees"] == [{"id": alice.id, "display": "alice"}], good.raw
            joining = await alice.handle.wait(lambda d: "joining" in d, 5)
            assert joining.data == {"videoroom": "event", "room": room, "joining": {"id": 424242, "display": "bob"}}, joining.raw
            # An id already in the room.
            carol = await VideoRoomHandle.attach(m.janus)
            taken = await carol.call({"request": "join", "ptype": "publisher", "room": room, "pin": "1234pin", "id": 424242})
            assert_error(taken.data, 436)

            participants = await m.sync({"request": "listparticipants", "room": room})
            assert participants["videoroom"] == "participants" and participants["room"] == room, participants
            assert sorted((p["id"], p.get("display"), p["publisher"]) for p in participants["participants"]) == \
                sorted([(alice.id, "alice", False), (424242, "bob", False)]), participants
        finally:
            if alice is not None:
                await alice.close()
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# allowed (ACL tokens)

def test_allowed_tokens(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        people = []
        try:
            room = await create_room(m, allowed=["tok1"])
            h = await VideoRoomHandle.attach(m.janus)
            for extra in ({}, {"token": "zzz"}):
                refused = await h.call({"request": "join", "ptype": "publisher", "room": room, **extra})
                assert refused.data == error(433, "Unauthorized (not in the allowed list)"), refused.raw
            people.append(await joined_publisher(sfu, room, "alice", sfu_trace, token="tok1"))

            added = await m.sync({"request": "allowed", "room": room, "secret": SECRET, "action": "add", "allowed": ["tok2"]})
            assert set(added) == {"videoroom", "room", "allowed"} and added["videoroom"] == "success", added
            assert added["room"] == room and sorted(added["allowed"]) == ["tok1", "tok2"], added
            people.append(await joined_publisher(sfu, room, "bob", sfu_trace, token="tok2"))

            removed = await m.sync({"request": "allowed", "room": room, "secret": SECRET, "action": "remove",
                                    "allowed": ["tok2"]})
            assert removed == {"videoroom": "success", "room": room, "allowed": ["tok1"]}, removed
            h2 = await VideoRoomHandle.attach(m.janus)
            refused = await h2.call({"request": "join", "ptype": "publisher", "room": room, "token": "tok2"})
            assert refused.data == error(433, "Unauthorized (not in the allowed list)"), refused.raw

            assert_error(await m.sync({"request": "allowed", "room": room, "secret": "wrong", "action": "add",
                                       "allowed": ["x"]}), 433, "Unauthorized (wrong secret)")
            assert_error(await m.sync({"request": "allowed", "room": room, "secret": SECRET, "action": "frob",
                                       "allowed": ["x"]}), 430, "Unsupported action 'frob' (allowed)")

            disabled = await m.sync({"request": "allowed", "room": room, "secret": SECRET, "action": "disable"})
            assert disabled == {"videoroom": "success", "room": room}, disabled
            free = await h2.call({"request": "join", "ptype": "publisher", "room": room})
            assert free.data["videoroom"] == "joined", free.raw
        finally:
            for p in people:
                await p.close()
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# kick (without media; with media: test_sfu_media)

def test_kick(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        alice = bob = None
        try:
            room = await create_room(m)
            alice = await joined_publisher(sfu, room, "alice", sfu_trace)
            bob = await joined_publisher(sfu, room, "bob", sfu_trace)
            assert_error(await m.sync({"request": "kick", "room": room, "secret": "wrong", "id": bob.id}),
                         433, "Unauthorized (wrong secret)")
            assert_error(await m.sync({"request": "kick", "room": room, "secret": SECRET, "id": 42}),
                         428, f"No such user 42 in room {room}")
            assert await m.sync({"request": "kick", "room": room, "secret": SECRET, "id": bob.id}) == {"videoroom": "success"}
            kicked = await bob.handle.wait(lambda d: d.get("leaving") == "ok", 5)
            assert kicked.data == {"videoroom": "event", "room": room, "leaving": "ok", "reason": "kicked"}, kicked.raw
            other = await alice.handle.wait(lambda d: "kicked" in d, 5)
            assert_roster_event(other.data, {"videoroom": "event", "room": room, "kicked": bob.id}, "bob")
            participants = (await m.sync({"request": "listparticipants", "room": room}))["participants"]
            assert [p["id"] for p in participants] == [alice.id], participants
        finally:
            for p in (alice, bob):
                if p is not None:
                    await p.close()
            await close_janus(m.janus)

    run(body())


# --------------------------------------------------------------------------------------------
# the publishers limit is checked when publishing

def test_publishers_full(sfu, sfu_trace):
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        alice = bob = None
        try:
            room = await create_room(m, publishers=1)
            alice = await joined_publisher(sfu, room, "alice", sfu_trace)
            bob = await joined_publisher(sfu, room, "bob", sfu_trace)   # joining is not publishing
            await alice.publish()
            with pytest.raises(AssertionError):
                await bob.publish()   # the event answering the offer is an error, without jsep
            assert bob.configured.data == error(432, "Maximum number of publishers (1) already reached"), \
                bob.configured.raw
            assert bob.configured.jsep is None, bob.configured.raw
            # Once alice unpublishes, bob may (after a hangup: the refused offer left the core's
            # half-made PeerConnection on his handle, and Janus answers another offer with 490).
            await alice.handle.call({"request": "unpublish"})
            await bob.pc.close()
            assert (await bob.janus.hangup(bob.handle.id))["janus"] == "success"
            # Janus tears the half-made PeerConnection down after the reply, and no event says when.
            await asyncio.sleep(0.5)
            await bob.publish()
            assert bob.configured.data["configured"] == "ok"
        finally:
            for p in (alice, bob):
                if p is not None:
                    await p.close()
            await close_janus(m.janus)

    run(body())
