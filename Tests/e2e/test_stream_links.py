"""Stream links (docs/webapp.md, docs/api/sfu.md "Viewers"): a meeting watched by people who do
not take part in it.

Two headless Chromium participants meet in a room made through the UI; three more open the room's
stream link (/s/<stream id>, read from the room page) and watch. Every viewer decodes both
participants' video and audio (the tiles' <video> frame counts and getStats through
`window.atriumDebug.stats()`); the participants and the viewers show "3 watching", and a viewer
who leaves takes the count to 2 within two seconds; a stream-chat message reaches the other
viewers and the room reads it; with the defaults the room cannot write to the viewers and the
viewers do not see the room's chat; once a participant ticks both stream-chat boxes in the chat
panel, a participant's message "to the viewers" reaches them as "<name> (room)" and the room's own
chat reaches them marked "room chat", until the box is unticked; a viewer's forged post into the
room's chat is refused (429) and reaches nobody; a viewer's forged publish requests are refused
with error 440; a viewer whose connection drops comes back as a viewer; and nothing the watch page
received (its URL, its HTML, /web-config.json, every Janus message, captured through
`atriumDebug.received`) contains the room's link id, its SFU room number (the chat room's id) or
the pin and secret (the link id itself).
"""
from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import chat_plugin_entry, base_config, require_media_ip, sfu_plugin_entry
from janus_client import open_janus
from browser import save_artifacts
from meeting_page import STEP, Person, sfu_room_of, start_people, webapp_config
from videoroom_client import SECRET, VideoRoomHandle, close_janus, create_room, manager, run, session

PARTICIPANTS = ["Alice", "Bob"]
VIEWERS = ["Vera", "Victor", "Viola"]


class Viewer(Person):
    def watch(self, link: str):
        self.driver.get(link)
        self.wait("the watch lobby", "return document.getElementById('join-button').textContent === 'Watch'")
        name = self.driver.find_element(By.ID, "display-name")
        name.clear()
        name.send_keys(self.name)
        self.click("join-button")
        self.wait("the stream", "return !document.getElementById('meeting').hidden")

    def wait_tiles(self, names: list[str], timeout: float = STEP) -> list[dict]:
        """A viewer has no tile of its own: exactly the participants'."""
        deadline = time.monotonic() + timeout
        tiles: list[dict] = []
        while time.monotonic() < deadline:
            tiles = self.tiles()
            if sorted(t["name"] for t in tiles) == sorted(names):
                return tiles
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: tiles {[t['name'] for t in tiles]}, expected {names}\n{self.page_messages()}")

    def wait_remote_video(self, names: list[str], timeout: float = 30.0) -> dict:
        others, self.name = self.name, "\0"  # every participant is remote for a viewer
        try:
            return super().wait_remote_video(names, timeout)
        finally:
            self.name = others


def error(code: int, text: str) -> dict:
    return {"videoroom": "event", "error_code": code, "error": text}


def has_message(selector: str, text: str, tag: str | None = None, sender: str | None = None) -> str:
    """A script: whether the chat log has a message matching `selector` with this text (and tag, and sender)."""
    return ("return [...document.querySelectorAll('#chat-log " + selector + "')].some(l => "
            f"l.querySelector('.text').textContent === {json.dumps(text)}"
            + (f" && l.querySelector('.tag')?.textContent === {json.dumps(tag)}" if tag else "")
            + (f" && l.querySelector('.from').textContent === {json.dumps(sender)}" if sender else "") + ")")


FORGE_CHAT = """
    const done = arguments[arguments.length - 1];
    window.atriumDebug.meeting.chat.request(arguments[0]).then(() => done('accepted'), (e) => done([e.code, e.message]));"""


def test_stream_link_viewers(start_atrium, chromium, tmp_path):  # noqa: F811
    require_media_ip()
    atrium = start_atrium(webapp_config(tmp_path, recorder=False, turn=False), name="stream-links")
    started = time.monotonic()
    people = start_people(chromium, PARTICIPANTS + VIEWERS, atrium.base)
    alice, bob = people[:2]
    viewers = [Viewer(p.name, p.driver, p.base) for p in people[2:]]
    try:
        link = alice.create_room()
        link_id = link.rsplit("/", 1)[1]
        alice.open_and_join()
        bob.open_and_join(link)

        # The room page shows both links, each with its copy button.
        stream_link = alice.wait("the stream link", "return document.getElementById('stream-link').value")
        assert stream_link.startswith(atrium.base + "/s/"), stream_link
        assert alice.js("return !document.getElementById('copy-stream-link').hidden && !document.getElementById('copy-link').hidden")
        assert bob.wait("Bob's stream link", "return document.getElementById('stream-link').value") == stream_link
        stream_id = stream_link.rsplit("/", 1)[1]
        assert len(stream_id) >= 26 and stream_id not in link and link_id not in stream_link

        with ThreadPoolExecutor(len(viewers)) as pool:
            list(pool.map(lambda v: v.watch(stream_link), viewers))

        # Every viewer sees and hears both participants, without asking for camera or microphone.
        for v in viewers:
            v.wait_tiles(PARTICIPANTS)
            v.wait_remote_video(PARTICIPANTS)
            assert v.js("return window.atriumDebug.meeting.localStream.getTracks().length") == 0
            stats = v.decoder_stats()
            assert len(stats) == 2, stats
            for feed, s in stats.items():
                assert s.get("video", {}).get("framesDecoded", 0) > 0, (v.name, feed, stats)
                assert s.get("audio", {}).get("totalSamplesReceived", 0) > 0, (v.name, feed, stats)

        # The count, live, on both sides.
        for p in [alice, bob, *viewers]:
            p.wait("3 watching", "const e = document.getElementById('viewer-count'); return !e.hidden && e.textContent === '3 watching'")

        # Stream chat: among the viewers.
        viewers[0].say("hello from the audience")
        for v in viewers[1:]:
            v.wait("the stream-chat message", "return [...document.querySelectorAll('#chat-log .text')].some(e => e.textContent === 'hello from the audience')")
        # The room reads the stream chat, marked as the viewers'.
        for p in (alice, bob):
            p.wait("the viewer's message, marked", "return [...document.querySelectorAll('#chat-log li.chat-msg.stream')].some(l => l.querySelector('.text').textContent === 'hello from the audience' && l.querySelector('.tag').textContent === 'viewer')")

        # Defaults: the room only reads the stream chat, and the viewers do not see the room's chat.
        for p in (alice, bob):
            assert p.js("return !document.getElementById('stream-chat-options').hidden"), p.name
            assert p.js("return !document.getElementById('viewers-read-chat').checked && !document.getElementById('stream-chat-write').checked")
            assert p.js("return [...document.getElementById('chat-to').options].every(o => o.dataset.target !== 'stream')")
        alice.say("only for the room, by default")
        bob.wait("Alice's room message", has_message("li.chat-msg", "only for the room, by default"))
        # The server refuses what the page does not offer: the room writing to the viewers.
        refused = alice.driver.execute_async_script(FORGE_CHAT, {"request": "message", "text": "sneaking to the viewers", "target": "stream"})
        assert refused[0] == 429 and "stream_chat_write is off" in refused[1], refused

        # Alice ticks both boxes in the chat panel; Bob's page follows; the viewers are told.
        alice.click("viewers-read-chat")
        alice.wait("the first setting saved", "return !document.getElementById('viewers-read-chat').disabled")
        alice.click("stream-chat-write")
        for p in (alice, bob):
            p.wait("both boxes ticked", "return document.getElementById('viewers-read-chat').checked && document.getElementById('stream-chat-write').checked")
        for v in viewers:
            v.wait("the notice", "return [...document.querySelectorAll('#chat-log .notice')].some(l => l.textContent === \"The room's chat is shown here now (read-only)\")")

        # Alice writes to the viewers: they see "Alice (room)"; Bob sees it in the stream chat; Alice once.
        Select(alice.driver.find_element(By.ID, "chat-to")).select_by_visible_text("To the viewers (stream chat)")
        alice.say("welcome, viewers")
        for v in viewers:
            v.wait("the room's message", has_message("li.chat-msg.from-room", "welcome, viewers", "room", "Alice (room)"))
        bob.wait("Alice's message to the viewers", has_message("li.chat-msg.stream.from-room", "welcome, viewers", "room"))
        assert alice.js("return [...document.querySelectorAll('#chat-log .text')].filter(e => e.textContent === 'welcome, viewers').length") == 1
        assert alice.js(has_message("li.chat-msg.to-stream", "welcome, viewers", "to viewers"))

        # Bob talks to the room: the viewers read it, marked as the room's chat; the room sees it once.
        bob.say("the room talks, the viewers read")
        for v in viewers:
            v.wait("the room chat", has_message("li.chat-msg.room-chat", "the room talks, the viewers read", "room chat", "Bob"))
        alice.wait("Bob's room message", has_message("li.chat-msg", "the room talks, the viewers read"))
        assert alice.js("return [...document.querySelectorAll('#chat-log .text')].filter(e => e.textContent === 'the room talks, the viewers read').length") == 1

        # The room's chat is read-only for viewers: a forged post is refused and reaches nobody.
        refused = viewers[0].driver.execute_async_script(FORGE_CHAT, {"request": "message", "text": "a viewer in the room chat", "target": "room"})
        assert refused[0] == 429 and "Viewers cannot write to the room's chat" in refused[1], refused

        # Bob unticks "Viewers can read this chat": what the room says next stays in the room.
        bob.click("viewers-read-chat")
        for p in (alice, bob):
            p.wait("the box unticked", "return !document.getElementById('viewers-read-chat').checked && document.getElementById('stream-chat-write').checked")
        for v in viewers:
            v.wait("the notice", "return [...document.querySelectorAll('#chat-log .notice')].some(l => l.textContent === \"The room's chat is no longer shown here\")")
        bob.say("just between us")
        alice.wait("Bob's private-to-the-room message", has_message("li.chat-msg", "just between us"))
        alice.say("still writing to you")  # "To the viewers" is still chosen
        for v in viewers:
            v.wait("the later message", has_message("li.chat-msg.from-room", "still writing to you", "room", "Alice (room)"))
            assert "just between us" not in v.chat_texts(), v.name
        for p in (alice, bob):
            assert "a viewer in the room chat" not in p.chat_texts() and "sneaking to the viewers" not in p.chat_texts()

        # A viewer cannot publish: forged requests on its SFU handle are refused.
        refusals = viewers[0].driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const m = window.atriumDebug.meeting;
            const pc = new RTCPeerConnection();
            pc.addTransceiver('audio', {direction: 'sendonly'});
            pc.addTransceiver('video', {direction: 'sendonly'});
            (async () => {
              const offer = await pc.createOffer();
              const out = [];
              for (const body of [{request: 'publish'}, {request: 'configure', audio: true}, {request: 'joinandconfigure', ptype: 'publisher'}]) {
                try { await m.sfu.request(body, {type: offer.type, sdp: offer.sdp}); out.push('accepted'); }
                catch (e) { out.push([e.code, e.message]); }
              }
              pc.close();
              return out;
            })().then(done, (e) => done(String(e)));""")
        assert [r[0] if isinstance(r, list) else r for r in refusals] == [440, 440, 440], refusals
        for p in (alice, bob):
            assert len(p.tiles()) == 2, "the viewer did not become a participant"

        # The room's way in is not derivable from anything the watch page received.
        room = sfu_room_of(link_id)
        secrets = [link_id, str(room)]
        config_text = requests.get(f"{atrium.base}/web-config.json", timeout=5).text
        for v in viewers[:2]:
            seen = v.js("return JSON.stringify({url: location.href, html: document.documentElement.outerHTML, received: window.atriumDebug.received})")
            assert v.js("return window.atriumDebug.received.length") > 10
            for s in secrets:
                assert s not in seen and s not in config_text, f"{v.name} received {s}"

        # A network blip on a viewer: it reconnects as a viewer and sees and hears both again.
        blip = viewers[1]
        blip.js("window.atriumDebug.dropConnection()")
        blip.wait("the reconnecting banner", "return !document.getElementById('banner').hidden")
        blip.wait("back", "return window.atriumDebug.meeting.state === 'joined' && document.getElementById('banner').hidden")
        blip.wait_tiles(PARTICIPANTS)
        blip.wait_remote_video(PARTICIPANTS)
        for p in [alice, bob, *viewers]:
            p.wait("3 watching again", "return document.getElementById('viewer-count').textContent === '3 watching'")

        # A viewer leaving: the count follows within two seconds, on both sides.
        viewers[2].click("leave")
        left = time.monotonic()
        for p in [alice, bob, *viewers[:2]]:
            p.wait("2 watching", "return document.getElementById('viewer-count').textContent === '2 watching'", timeout=2.0 - (time.monotonic() - left) + 0.3)
        assert time.monotonic() - left < 2.5

        # Someone unpublishing and leaving: the viewers follow.
        bob.click("leave")
        for v in viewers[:2]:
            v.wait_tiles(["Alice"])
        assert time.monotonic() - started < 120, "the test should stay well under two minutes"
    finally:
        save_artifacts(chromium, atrium, "stream-links")


# --------------------------------------------------------------------------------------------
# The stream chat's settings on the Chat and SFU APIs (Atrium's own)

class ChatHandle:
    """A Chat plugin handle on an AsyncJanus session."""

    def __init__(self, janus, handle: int):
        self.janus = janus
        self.id = handle

    @classmethod
    async def attach(cls, janus) -> "ChatHandle":
        return cls(janus, await janus.attach("atrium.plugin.chat"))

    async def send(self, body: dict) -> dict:
        reply = await self.janus.message(self.id, body)
        assert reply.get("janus") == "success", reply
        return reply["plugindata"]["data"]

    def datas(self) -> list[dict]:
        return [e["plugindata"]["data"] for e in self.janus.events if e.get("sender") == self.id and e.get("janus") == "event"]

    async def wait(self, pred, timeout: float = 5.0) -> dict:
        event = await self.janus.wait_event(
            lambda e: e.get("sender") == self.id and e.get("janus") == "event" and pred(e["plugindata"]["data"]), timeout)
        return event["plugindata"]["data"]


@pytest.mark.atrium_only
def test_stream_chat_settings_api(start_atrium, tmp_path):
    config = base_config([chat_plugin_entry(rooms=[{"id": "lobby"}]), sfu_plugin_entry()])
    atrium = start_atrium(config, name="stream-chat")

    async def body():
        sessions = [await open_janus(atrium.ws_url) for _ in range(4)]
        for j in sessions:
            await j.create()
        admin_j, alice_j, vera_j, late_j = sessions
        try:
            m = VideoRoomHandle(admin_j, await admin_j.attach("janus.plugin.videoroom"))
            room = await create_room(m, pin="roompin")
            alice_sfu = VideoRoomHandle(alice_j, await alice_j.attach("janus.plugin.videoroom"))
            joined = (await alice_sfu.call({"request": "join", "ptype": "publisher", "room": room, "pin": "roompin",
                                            "display": "Alice", "stream_info": True})).data
            stream = joined["stream_id"]
            assert joined["stream_chat_write"] is False and joined["viewers_read_chat"] is False, joined
            stream_chat = f"stream-{stream[:10]}"

            alice = await ChatHandle.attach(alice_j)
            assert (await alice.send({"request": "join", "room": str(room), "display": "Alice", "pin": "roompin"}))["stream_link"] == \
                {"stream_chat_write": False, "viewers_read_chat": False}
            vera = await ChatHandle.attach(vera_j)
            vjoined = await vera.send({"request": "join", "room": stream_chat, "display": "Vera", "pin": stream})
            assert vjoined["stream_link"] == {"stream_chat_write": False, "viewers_read_chat": False}, vjoined

            # Defaults: read-only for the room, nothing of the room's chat for the viewers.
            assert (await alice.send({"request": "message", "text": "in the room"}))["chat"] == "sent"
            refused = await alice.send({"request": "message", "text": "to the viewers", "target": "stream"})
            assert refused["error_code"] == 429 and "stream_chat_write is off" in refused["error"], refused
            refused = await vera.send({"request": "message", "text": "forged", "target": "room"})
            assert refused == {"chat": "error", "error_code": 429, "error": "Viewers cannot write to the room's chat: they may only read it"}
            # Bad input: a clear error, nothing sent.
            assert (await vera.send({"request": "message", "text": "x", "target": "everyone"}))["error_code"] == 414
            assert (await alice.send({"request": "message", "text": "x", "target": "stream", "to": "Vera"}))["error_code"] == 414
            lobby = await ChatHandle.attach(late_j)
            await lobby.send({"request": "join", "room": "lobby", "display": "Lou"})
            assert (await lobby.send({"request": "message", "text": "x", "target": "stream"}))["error_code"] == 428
            await lobby.send({"request": "leave"})
            assert (await m.sync({"request": "edit", "room": 999_999_999, "secret": SECRET, "new_viewers_read_chat": True}))["error_code"] == 426
            assert (await m.sync({"request": "edit", "room": room, "secret": "wrong", "new_viewers_read_chat": True}))["error_code"] == 433
            bad = await m.sync({"request": "edit", "room": room, "secret": SECRET, "new_viewers_read_chat": "yes", "new_stream_chat_write": True})
            assert bad["error_code"] == 430 and "new_viewers_read_chat" in bad["error"], bad
            assert (await alice.send({"request": "message", "text": "still not", "target": "stream"}))["error_code"] == 429, \
                "a refused edit changed nothing"

            # Both on: the room writes into the stream chat as "(room)", the viewers read the room's chat.
            assert (await m.sync({"request": "edit", "room": room, "secret": SECRET, "new_stream_chat_write": True,
                                  "new_viewers_read_chat": True}))["videoroom"] == "edited"
            await alice_sfu.wait(lambda d: d.get("stream_chat_write") is True and d.get("viewers_read_chat") is True)
            told = await vera.wait(lambda d: d.get("chat") == "stream_link" and d.get("viewers_read_chat") is True)
            assert told == {"chat": "stream_link", "room": stream_chat, "linked": True, "stream_chat_write": True, "viewers_read_chat": True}
            sent = await alice.send({"request": "message", "text": "hello viewers", "target": "stream"})
            assert sent == {"chat": "sent", "room": stream_chat}, sent
            got = await vera.wait(lambda d: d.get("text") == "hello viewers")
            assert got["from"]["display"] == "Alice (room)" and got["from_room"] is True and got["room"] == stream_chat, got
            await alice.send({"request": "message", "text": "room talk", "payload": {"kept": "in the room"}})
            got = await vera.wait(lambda d: d.get("text") == "room talk")
            assert got["room_chat"] is True and got["room"] == stream_chat and got["from"]["display"] == "Alice" and "payload" not in got, got
            refused = await vera.send({"request": "message", "text": "forged again", "target": "room"})
            assert refused["error_code"] == 429, refused
            # A later viewer finds the room's message to the viewers in the history, not the room's own chat.
            late = await ChatHandle.attach(late_j)
            history = (await late.send({"request": "join", "room": stream_chat, "display": "Lena", "pin": stream}))["history"]
            assert [h["text"] for h in history] == ["hello viewers"], history

            # Off again: the room's chat stops reaching the viewers at once.
            await m.sync({"request": "edit", "room": room, "secret": SECRET, "new_viewers_read_chat": False})
            await vera.wait(lambda d: d.get("chat") == "stream_link" and d.get("viewers_read_chat") is False)
            await alice.send({"request": "message", "text": "after off"})
            await alice.send({"request": "message", "text": "marker", "target": "stream"})
            await vera.wait(lambda d: d.get("text") == "marker")
            texts = [d.get("text") for d in vera.datas()]
            assert "after off" not in texts and "forged" not in texts, texts
            alice_texts = [d.get("text") for d in alice.datas()]
            assert "forged" not in alice_texts and "forged again" not in alice_texts, alice_texts

            # The room goes: the stream chat is told the link is gone; nothing a viewer got names the room.
            await m.sync({"request": "destroy", "room": room, "secret": SECRET})
            await vera.wait(lambda d: d.get("chat") == "stream_link" and d.get("linked") is False)
            assert (await vera.send({"request": "message", "text": "x", "target": "room"}))["error_code"] == 428
            for j in (vera_j, late_j):
                text = json.dumps(j.events)
                assert str(room) not in text and "roompin" not in text, text
        finally:
            await asyncio.gather(*(close_janus(j) for j in sessions))

    run(body())


# --------------------------------------------------------------------------------------------
# The viewer role on the SFU API alone (Atrium's own: not run against Janus)

@pytest.mark.atrium_only
def test_viewer_role_api(sfu, sfu_trace):  # noqa: F811
    async def body():
        m = await manager(sfu, trace=sfu_trace)
        try:
            room = await create_room(m, pin="roompin", max_viewers=2)
            alice = await VideoRoomHandle.attach(m.janus)
            joined = (await alice.call({"request": "join", "ptype": "publisher", "room": room, "pin": "roompin", "display": "Alice", "stream_info": True})).data
            stream = joined["stream_id"]
            assert joined["viewers"] == 0 and isinstance(stream, str) and len(stream) == 26, joined
            assert str(room) not in stream

            viewer_sessions = [await session(sfu, trace=sfu_trace) for _ in range(3)]
            v1, v2, v3 = [await VideoRoomHandle.attach(j) for j in viewer_sessions]
            assert (await v1.call({"request": "join", "ptype": "viewer", "stream": "nope"})).data == error(426, "No such stream")
            w1 = (await v1.call({"request": "join", "ptype": "viewer", "stream": stream, "display": "Vera"})).data
            assert w1["videoroom"] == "watching" and w1["room"] == stream and w1["viewers"] == 1 and w1["publishers"] == [], w1
            await alice.wait(lambda d: d.get("viewers") == 1)
            w2 = (await v2.call({"request": "join", "ptype": "viewer", "stream": stream})).data
            assert w2["viewers"] == 2, w2
            await alice.wait(lambda d: d.get("viewers") == 2)
            await v1.wait(lambda d: d.get("viewers") == 2 and d.get("room") == stream)
            full = (await v3.call({"request": "join", "ptype": "viewer", "stream": stream})).data
            assert full["error_code"] == 439, full

            # Not participants; cannot publish.
            people = await m.sync({"request": "listparticipants", "room": room})
            assert [p["display"] for p in people["participants"]] == ["Alice"], people
            for forged in ({"request": "publish"}, {"request": "configure", "audio": True}, {"request": "joinandconfigure", "ptype": "publisher", "room": room, "pin": "roompin"}):
                assert (await v1.call(forged)).data["error_code"] == 440, forged
            assert (await v3.call({"request": "joinandconfigure", "ptype": "viewer", "stream": stream})).data["error_code"] == 440

            # A viewer leaving: everyone hears the new count.
            assert (await v2.call({"request": "leave"})).data == {"videoroom": "event", "room": stream, "leaving": "ok"}
            await alice.wait(lambda d: d.get("viewers") == 1)
            await v1.wait(lambda d: d.get("viewers") == 1)

            # Destroyed: the viewer hears it under the stream id; nothing a viewer got names the room.
            await m.sync({"request": "destroy", "room": room, "secret": SECRET})
            await v1.wait(lambda d: d.get("videoroom") == "destroyed" and d.get("room") == stream)
            for j in viewer_sessions:
                text = json.dumps(j.events)
                assert str(room) not in text and "roompin" not in text, text
            await asyncio.gather(*(close_janus(j) for j in viewer_sessions))
        finally:
            await close_janus(m.janus)

    run(body())
