"""The Chat plugin among three participants, over both Janus transports, with plain clients.

Alice and Carol talk over WebSocket, Bob over HTTP long-poll, all in one room: broadcast,
private messages (arbitrary JSON payloads, as a mesh call relays its offers), join and leave
notices, history on join, and the size and rate limits.
"""
from __future__ import annotations

import itertools
import time

import pytest

from conftest import base_config, chat_plugin_entry
from janus_client import HttpJanus, WsJanus

_tx = itertools.count()


def tx() -> str:
    return f"chat-{next(_tx)}"


class WsParticipant:
    def __init__(self, url: str):
        self.ws = WsJanus(url)
        self.pending: list = []
        self.session = self.request({"janus": "create"})["data"]["id"]
        self.handle = self.request({"janus": "attach", "session_id": self.session, "plugin": "atrium.plugin.chat"})["data"]["id"]

    def request(self, body: dict) -> dict:
        t = tx()
        self.ws.send({**body, "transaction": t})
        deadline = time.time() + 10
        while time.time() < deadline:
            msg = self.ws.recv(timeout=max(0.1, deadline - time.time()))
            if msg.get("transaction") == t and msg.get("janus") != "event":
                return msg
            self.pending.append(msg)
        raise AssertionError(f"no reply to {body}")

    def send(self, body: dict) -> dict:
        reply = self.request({"janus": "message", "session_id": self.session, "handle_id": self.handle, "body": body})
        assert reply["janus"] == "success", reply
        return reply["plugindata"]["data"]

    def events(self, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.time() + timeout
        while sum(1 for m in self.pending if m.get("janus") == "event") < count and time.time() < deadline:
            try:
                self.pending.append(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            except Exception:
                break
        got = [m for m in self.pending if m.get("janus") == "event"]
        self.pending = [m for m in self.pending if m.get("janus") != "event"]
        return [m["plugindata"]["data"] for m in got]

    def close(self):
        self.ws.close()


class HttpParticipant:
    """A Janus session with one handle over HTTP (the Chat plugin's by default)."""

    def __init__(self, url: str, plugin: str = "atrium.plugin.chat"):
        self.http = HttpJanus(url)
        status, reply, _ = self.http.post(None, {"janus": "create", "transaction": tx()})
        self.session = reply["data"]["id"]
        _, reply, _ = self.http.post(self.session, {"janus": "attach", "plugin": plugin, "transaction": tx()})
        self.handle = reply["data"]["id"]

    def send(self, body: dict) -> dict:
        status, reply, _ = self.http.post(f"{self.session}/{self.handle}", {"janus": "message", "body": body, "transaction": tx()})
        assert status == 200 and reply["janus"] == "success", reply
        return reply["plugindata"]["data"]

    def events(self, count: int, timeout: float = 5.0) -> list[dict]:
        got: list[dict] = []
        deadline = time.time() + timeout
        while len(got) < count and time.time() < deadline:
            status, reply, _ = self.http.get(f"{self.session}?maxev=10&rid={time.time()}")
            assert status == 200, status
            for m in reply:
                if m.get("janus") == "event":
                    got.append(m["plugindata"]["data"])
        return got

    def close(self):
        self.http.post(self.session, {"janus": "destroy", "transaction": tx()})


@pytest.fixture
def room(start_atrium):
    # Short long-poll holds so that "no event arrives" is checked quickly over HTTP.
    server = start_atrium(base_config(plugins=[chat_plugin_entry(
        rooms=[{"id": "lobby", "history": 3}], max_message_bytes=512, messages_per_second=2, burst=4)],
        http={"long_poll_seconds": 1}))
    return server


def test_three_participants_both_transports(room):
    alice = WsParticipant(room.ws_url)
    bob = HttpParticipant(room.http_url)
    carol = WsParticipant(room.ws_url)

    joined = alice.send({"request": "join", "room": "lobby", "display": "Alice"})
    assert joined["chat"] == "joined" and joined["participants"] == [] and joined["history"] == []
    alice_id = joined["id"]

    # Messages before Bob and Carol join become their history (the room keeps the last 3).
    for i in range(4):  # the burst (4) lets them through at once
        assert alice.send({"request": "message", "text": f"early {i}"})["chat"] == "sent"

    joined = bob.send({"request": "join", "room": "lobby", "display": "Bob"})
    assert [p["display"] for p in joined["participants"]] == ["Alice"]
    assert [m["text"] for m in joined["history"]] == ["early 1", "early 2", "early 3"]
    assert all(m["from"]["display"] == "Alice" for m in joined["history"])
    joined = carol.send({"request": "join", "room": "lobby", "display": "Carol"})
    assert sorted(p["display"] for p in joined["participants"]) == ["Alice", "Bob"]

    # Join notices: Alice hears Bob and Carol, Bob hears Carol.
    notices = alice.events(2)
    assert [(n["chat"], n["participant"]["display"]) for n in notices] == [("join", "Bob"), ("join", "Carol")]
    assert [(n["chat"], n["participant"]["display"]) for n in bob.events(1)] == [("join", "Carol")]

    # A broadcast reaches the two others, not the sender.
    assert bob.send({"request": "message", "text": "hello all"})["chat"] == "sent"
    for who in (alice, carol):
        [m] = who.events(1)
        assert m["chat"] == "message" and m["text"] == "hello all" and m["private"] is False
        assert m["from"]["display"] == "Bob" and m["room"] == "lobby" and m["date"]
    assert alice.events(0, timeout=0.3) == []

    # A private message carries any JSON payload to exactly one participant.
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", "candidates": [{"sdpMid": "0"}]}
    reply = carol.send({"request": "message", "to": "Alice", "payload": offer})
    assert reply["chat"] == "sent" and reply["to"]["display"] == "Alice"
    [m] = alice.events(1)
    assert m["private"] is True and m["payload"] == offer and m["from"]["display"] == "Carol"
    assert bob.events(1, timeout=0.5) == []

    # Participant list, and the errors for taken names and unknown recipients.
    listing = bob.send({"request": "participants"})
    assert [p["display"] for p in listing["participants"]] == ["Alice", "Bob", "Carol"]
    dave = WsParticipant(room.ws_url)
    taken = dave.send({"request": "join", "room": "lobby", "display": "Alice"})
    assert taken["chat"] == "error" and taken["error_code"] == 420
    nobody = bob.send({"request": "message", "to": "Zed", "text": "hi"})
    assert nobody["chat"] == "error" and nobody["error_code"] == 423

    # Leaving: an explicit leave, a detach and a WebSocket that just closes all notify the others.
    assert carol.send({"request": "leave"})["chat"] == "left"
    assert [(n["chat"], n["participant"]["display"]) for n in alice.events(1)] == [("leave", "Carol")]
    assert [(n["chat"], n["participant"]["display"]) for n in bob.events(1)] == [("leave", "Carol")]
    alice.close()
    [n] = bob.events(1)
    assert (n["chat"], n["participant"]["display"], n["participant"]["id"]) == ("leave", "Alice", alice_id)
    bob.close()
    carol.close()
    dave.close()


def test_limits(room):
    alice = WsParticipant(room.ws_url)
    bob = WsParticipant(room.ws_url)
    alice.send({"request": "join", "room": "lobby", "display": "Alice"})
    bob.send({"request": "join", "room": "lobby", "display": "Bob"})
    alice.events(1)

    too_big = bob.send({"request": "message", "text": "x" * 600})
    assert too_big["chat"] == "error" and too_big["error_code"] == 424 and "limit is 512" in too_big["error"]

    # Burst of 4, then the rate limit refuses with a clear error; nothing refused is delivered.
    outcomes = [bob.send({"request": "message", "text": f"m{i}"})["chat"] for i in range(8)]
    assert outcomes[:4] == ["sent"] * 4 and "error" in outcomes[4:]
    refused = bob.send({"request": "message", "text": "again"})
    assert refused["chat"] == "error" and refused["error_code"] == 425 and "per second" in refused["error"]
    delivered = [m["text"] for m in alice.events(8, timeout=1.5)]
    assert delivered == [f"m{i}" for i, o in enumerate(outcomes) if o == "sent"]

    # The limits are per participant: Alice is unaffected.
    assert alice.send({"request": "message", "text": "mine"})["chat"] == "sent"
    alice.close()
    bob.close()


def test_pins_and_rooms_on_demand(room):
    alice = WsParticipant(room.ws_url)
    bob = WsParticipant(room.ws_url)
    created = alice.send({"request": "create", "room": "secret", "pin": "1234"})
    assert created == {"chat": "created", "room": "secret"}
    assert bob.send({"request": "join", "room": "secret", "display": "Bob"})["error_code"] == 419
    assert bob.send({"request": "join", "room": "secret", "display": "Bob", "pin": "1234"})["chat"] == "joined"
    # Joining a room that does not exist creates it; it goes away when its last member leaves.
    assert alice.send({"request": "join", "room": "adhoc", "display": "Alice"})["chat"] == "joined"
    rooms = {r["room"]: r for r in alice.send({"request": "list"})["rooms"]}
    assert rooms["secret"]["pin_required"] is True and rooms["adhoc"]["num_participants"] == 1
    alice.send({"request": "leave"})
    assert alice.send({"request": "exists", "room": "adhoc"})["exists"] is False
    assert alice.send({"request": "exists", "room": "lobby"})["exists"] is True
    # Bad requests get errors, not crashes.
    assert alice.send({})["error_code"] == 413
    assert alice.send({"request": 5})["error_code"] == 414
    assert alice.send({"request": "fly"})["error_code"] == 415
    assert alice.send({"request": "message", "text": "nobody hears"})["error_code"] == 422
    assert alice.send({"request": "join", "room": ["x"], "display": "A"})["error_code"] == 414
    alice.close()
    bob.close()
    assert "atrium_chat_messages_total" in room.metrics()
