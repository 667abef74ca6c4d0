"""Issue 18, "Survive hostile clients", the plugins' part: an anonymous client against the SFU,
the Recorder and TURN, each case as the hostile client found it, and a victim on a second client
address (127.0.0.2) who must still be served.

  (3) Recorder: start, stop, list and info need the room's secret (or, in a room without one,
      being in it); folders appear no faster than the per-address and per-room bounds allow.
  (4) TURN: credentials only for a session that is in a meeting, a bounded number per address
      per minute, and allocations bounded per client address in the TURN server itself, so one
      address at its limit leaves credentials and relays for everyone else.
  (5) SFU: rooms made by request are bounded per client address, and an empty one goes after
      `empty_room_seconds`; permanent rooms are not for anonymous clients.
  (7) SFU: an oversized display, metadata or description is refused (430), not fanned out.
  (11) The shipped config/config.json puts no secret on its sample rooms, and the published
      `adminpwd` opens nothing on a server running the shipped plugin configs.

Clients choose their source address: a WebSocket from a socket bound to 127.0.0.x beforehand,
TURN from a socket bound the same way. Run inside the test namespace (Makefile `e2e`).
"""
from __future__ import annotations

import copy
import itertools
import json
import socket
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect as ws_connect

from conftest import (MEDIA_IP, base_config, chat_plugin_entry, free_port, require_media_ip, sfu_plugin_entry,
                      turn_plugin_entry, wait_until)
from turn_client import TurnClient, TurnError

REPO = Path(__file__).resolve().parents[2]
SFU = "atrium.plugin.sfu"
CHAT = "atrium.plugin.chat"
TURN = "atrium.plugin.turn"
RECORDER = "atrium.plugin.recorder"
ATTACKER = "127.0.0.1"
VICTIM = "127.0.0.2"


def recorder_plugin_entry(**config) -> dict:
    return {"library": "libatrium_recorder.so", "aliases": [], "enabled": True, "optional": False, "config": config}


class Client:
    """One Janus session over a WebSocket whose source address is `source`."""

    _transactions = itertools.count(1)

    def __init__(self, server, source: str = ATTACKER):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", server.ws_port))
        self.ws = ws_connect(server.ws_url, sock=sock, subprotocols=["janus-protocol"], open_timeout=5,
                             max_size=None, compression=None, legacy=True)
        self.events: list[dict] = []
        self.session = self.call({"janus": "create"})["data"]["id"]

    def _recv_until(self, transaction: str, kinds: set[str], timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("transaction") == transaction and m.get("janus") in kinds:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kinds} for {transaction}; got {self.events[-5:]!r}")
            self.events.append(json.loads(self.ws.recv(timeout=left)))

    def call(self, body: dict) -> dict:
        tx = f"t{next(self._transactions)}"
        msg = {**body, "transaction": tx}
        if "janus" in body and body["janus"] != "create":
            msg["session_id"] = self.session
        self.ws.send(json.dumps(msg))
        return self._recv_until(tx, {"success", "error", "ack"})

    def attach(self, plugin: str) -> int:
        reply = self.call({"janus": "attach", "plugin": plugin})
        assert reply["janus"] == "success", reply
        return reply["data"]["id"]

    def message(self, handle: int, body: dict, timeout: float = 10.0) -> dict:
        """The plugin's answer: the `success` of a synchronous request, or the event that follows
        the `ack` of an asynchronous one."""
        tx = f"t{next(self._transactions)}"
        self.ws.send(json.dumps({"janus": "message", "session_id": self.session, "handle_id": handle,
                                 "body": body, "transaction": tx}))
        reply = self._recv_until(tx, {"success", "error", "ack"}, timeout)
        if reply["janus"] == "ack":
            reply = self._recv_until(tx, {"event"}, timeout)
        assert "plugindata" in reply, reply
        return reply["plugindata"]["data"]

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def error_code(data: dict) -> int | None:
    return data.get("error_code")


def join_sfu(client: Client, room: int, **extra) -> dict:
    handle = client.attach(SFU)
    joined = client.message(handle, {"request": "join", "ptype": "publisher", "room": room, "display": "p", **extra})
    assert joined.get("videoroom") == "joined", joined
    return {"handle": handle, **joined}


# --------------------------------------------------------------------------------------------
# (3) Recorder

def test_recording_needs_the_room_secret_or_being_in_it_and_folders_are_bounded(start_atrium, tmp_path):
    folder = tmp_path / "recordings"
    rooms = [{"room": 7100, "secret": "s3cret"}, {"room": 7101}, {"room": 7102, "secret": "other"}]
    server = start_atrium(base_config([
        sfu_plugin_entry(rooms=rooms), chat_plugin_entry(),
        recorder_plugin_entry(directory=str(folder), starts_per_address_per_minute=4, starts_per_room_per_minute=2),
    ]), name="hostile-recorder")
    stranger, member, victim = Client(server), Client(server), Client(server, VICTIM)
    try:
        rec = stranger.attach(RECORDER)
        # A stranger cannot record 7100, with no secret or a wrong one (415 or 419: whether the
        # SFU has told the Recorder of the room's secret yet, nobody being in it).
        assert error_code(stranger.message(rec, {"request": "start", "room": 7100})) in (415, 419)
        assert error_code(stranger.message(rec, {"request": "start", "room": 7100, "secret": "adminpwd"})) == 419
        # Someone joins 7100 (which tells the Recorder the room has a secret, if it did not know).
        join_sfu(member, 7100)
        assert error_code(stranger.message(rec, {"request": "start", "room": 7100})) == 415
        assert error_code(stranger.message(rec, {"request": "start", "room": 7100, "secret": "nope"})) == 419
        assert error_code(stranger.message(rec, {"request": "list"})) == 415
        assert error_code(stranger.message(rec, {"request": "list", "room": 7100})) == 415
        started = stranger.message(rec, {"request": "start", "room": 7100, "secret": "s3cret"})
        assert started.get("recorder") == "started", started
        rid = started["recording"]["id"]
        assert error_code(stranger.message(rec, {"request": "stop", "room": 7100})) == 415
        assert error_code(stranger.message(rec, {"request": "stop", "id": rid, "secret": "nope"})) == 419
        assert error_code(stranger.message(rec, {"request": "info", "id": rid})) == 415
        listed = stranger.message(rec, {"request": "list", "room": "7100", "secret": "s3cret"})
        assert [r["id"] for r in listed["recordings"]] == [rid], listed
        assert stranger.message(rec, {"request": "stop", "id": rid, "secret": "s3cret"}).get("recorder") == "stopped"

        # 7101 has no secret: only its participants record it.
        assert error_code(stranger.message(rec, {"request": "start", "room": 7101})) == 419
        join_sfu(member, 7101)
        assert error_code(stranger.message(rec, {"request": "start", "room": 7101})) == 419
        member_rec = member.attach(RECORDER)
        started = member.message(member_rec, {"request": "start", "room": 7101})
        assert started.get("recorder") == "started", started
        assert member.message(member_rec, {"request": "list", "room": 7101})["recordings"][0]["state"] == "recording"
        assert member.message(member_rec, {"request": "stop", "room": 7101}).get("recorder") == "stopped"

        # Bounded folders: 2 a minute per room, 4 per address (both clients are on 127.0.0.1, so
        # the two starts above count toward it).
        again = stranger.message(rec, {"request": "start", "room": 7100, "secret": "s3cret"})
        assert again.get("recorder") == "started", again
        stranger.message(rec, {"request": "stop", "room": 7100, "secret": "s3cret"})
        third = stranger.message(rec, {"request": "start", "room": 7100, "secret": "s3cret"})
        assert error_code(third) == 421 and "room 7100" in third["error"], third
        # Nobody joined 7102: the SFU announces its configured rooms' secrets within a second of
        # starting.
        wait_until(lambda: error_code(stranger.message(rec, {"request": "start", "room": 7102})) == 415, 3,
                   "the Recorder knows that room 7102 has a secret")
        fourth = stranger.message(rec, {"request": "start", "room": 7102, "secret": "other"})
        assert fourth.get("recorder") == "started", fourth
        stranger.message(rec, {"request": "stop", "room": 7102, "secret": "other"})
        address_bound = stranger.message(rec, {"request": "start", "room": 7102, "secret": "other"})
        assert error_code(address_bound) == 421 and "your address" in address_bound["error"], address_bound
        # Another address is not held back by the first one's use.
        victim_rec = victim.attach(RECORDER)
        ok = victim.message(victim_rec, {"request": "start", "room": 7102, "secret": "other"})
        assert ok.get("recorder") == "started", ok
        victim.message(victim_rec, {"request": "stop", "room": 7102, "secret": "other"})
        folders = [p for p in folder.glob("*/*") if p.is_dir()]
        assert len(folders) == 5, folders
    finally:
        for c in (stranger, member, victim):
            c.close()


# --------------------------------------------------------------------------------------------
# (4) TURN

def test_turn_credentials_need_a_meeting_and_one_address_cannot_take_every_relay(start_atrium):
    require_media_ip()
    port = free_port()
    server = start_atrium(base_config([
        chat_plugin_entry(), sfu_plugin_entry(rooms=[{"room": 7200}]),
        turn_plugin_entry(listen=["0.0.0.0"], udp_port=port, tcp_port=None, tls_port=None, relay_addresses=[MEDIA_IP],
                          min_port=42000, max_port=42999, credentials_per_address_per_minute=3,
                          max_allocations_per_address=2, max_allocations=10),
    ]), name="hostile-turn")
    attacker, victim = Client(server), Client(server, VICTIM)
    relays: list[TurnClient] = []
    try:
        turn = attacker.attach(TURN)
        refused = attacker.message(turn, {"request": "credentials"})
        assert error_code(refused) == 442, refused
        # In a meeting (a chat room here; an SFU room counts as well).
        chat = attacker.attach(CHAT)
        assert attacker.message(chat, {"request": "join", "room": "hostile", "display": "mallory"}).get("chat") == "joined"
        creds = [attacker.message(turn, {"request": "credentials"}) for _ in range(3)]
        assert all(c.get("turn") == "credentials" for c in creds), creds
        assert error_code(attacker.message(turn, {"request": "credentials"})) == 443
        # Two relays from the attacker's address, then 486 whatever the credentials.
        for c in creds[:2]:
            ice = c["iceServers"][0]
            client = TurnClient(("127.0.0.1", port), ice["username"], ice["credential"], local_ip=ATTACKER)
            relays.append(client)
            client.allocate()
        ice = creds[2]["iceServers"][0]
        third = TurnClient(("127.0.0.1", port), ice["username"], ice["credential"], local_ip=ATTACKER)
        relays.append(third)
        with pytest.raises(TurnError) as e:
            third.allocate()
        assert e.value.response is not None and e.value.response.error_code == 486

        # The victim, on another address, in an SFU room: credentials and a relay.
        join_sfu(victim, 7200)
        vturn = victim.attach(TURN)
        vcreds = victim.message(vturn, {"request": "credentials"})
        assert vcreds.get("turn") == "credentials", vcreds
        ice = vcreds["iceServers"][0]
        mine = TurnClient(("127.0.0.1", port), ice["username"], ice["credential"], local_ip=VICTIM)
        relays.append(mine)
        relayed = mine.allocate()
        assert relayed[0] == MEDIA_IP, relayed
    finally:
        for r in relays:
            try:
                r.close()
            except Exception:
                pass
        attacker.close()
        victim.close()


# --------------------------------------------------------------------------------------------
# (5) SFU rooms

def test_rooms_per_address_are_bounded_and_empty_ones_expire(start_atrium):
    server = start_atrium(base_config([
        sfu_plugin_entry(rooms=[{"room": 7300}], max_rooms_per_address=3, empty_room_seconds=2),
    ]), name="hostile-rooms")
    attacker, victim = Client(server), Client(server, VICTIM)
    try:
        h = attacker.attach(SFU)
        made = [attacker.message(h, {"request": "create"}) for _ in range(3)]
        assert all(m.get("videoroom") == "created" for m in made), made
        over = attacker.message(h, {"request": "create"})
        assert error_code(over) == 441 and "max_rooms_per_address" in over["error"], over
        assert error_code(attacker.message(h, {"request": "create", "permanent": True})) == 433
        vh = victim.attach(SFU)
        mine = victim.message(vh, {"request": "create"})
        assert mine.get("videoroom") == "created", mine

        # Someone in a room keeps it; the empty ones go after the grace period.
        kept = made[0]["room"]
        join_sfu(victim, kept)

        def exists(room) -> bool:
            return victim.message(vh, {"request": "exists", "room": room})["exists"]
        wait_until(lambda: not exists(made[1]["room"]) and not exists(made[2]["room"]) and not exists(mine["room"]),
                   timeout=6, what="empty rooms made by request are gone")
        assert exists(kept) and exists(7300)
        # Gone rooms free their makers' share.
        assert attacker.message(h, {"request": "create"}).get("videoroom") == "created"
    finally:
        attacker.close()
        victim.close()


def test_chat_rooms_per_address_are_bounded_and_empty_ones_expire(start_atrium):
    """The same for the Chat plugin: one address filled max_rooms with rooms nobody joined, and
    then no new meeting could make its chat."""
    server = start_atrium(base_config([chat_plugin_entry(max_rooms_per_address=3, empty_room_seconds=2)]),
                          name="hostile-chat-rooms")
    attacker, victim = Client(server), Client(server, VICTIM)
    try:
        h = attacker.attach(CHAT)
        made = [attacker.message(h, {"request": "create", "room": f"a{i}"}) for i in range(3)]
        assert all(m.get("chat") == "created" for m in made), made
        over = attacker.message(h, {"request": "create", "room": "a3"})
        assert error_code(over) == 427 and "max_rooms_per_address" in over["error"], over
        # A join that would make a room counts the same.
        h2 = attacker.attach(CHAT)
        assert error_code(attacker.message(h2, {"request": "join", "room": "a4", "display": "x"})) == 427
        assert error_code(attacker.message(h, {"request": "create", "room": "b", "description": "d" * 300})) == 414
        vh = victim.attach(CHAT)
        assert victim.message(vh, {"request": "join", "room": "meeting", "display": "v"}).get("chat") == "joined"

        def exists(room) -> bool:
            return victim.message(vh, {"request": "exists", "room": room})["exists"]
        wait_until(lambda: not any(exists(f"a{i}") for i in range(3)), timeout=6, what="empty rooms made by request are gone")
        assert exists("meeting")
        assert attacker.message(h, {"request": "create", "room": "a0"}).get("chat") == "created"
    finally:
        attacker.close()
        victim.close()


# --------------------------------------------------------------------------------------------
# (7) Strings that fan out

def test_oversized_display_metadata_and_description_are_refused(start_atrium):
    server = start_atrium(base_config([sfu_plugin_entry(rooms=[{"room": 7400}])]), name="hostile-strings")
    client = Client(server)
    try:
        h = client.attach(SFU)
        big_display = client.message(h, {"request": "join", "ptype": "publisher", "room": 7400, "display": "x" * 300})
        assert error_code(big_display) == 430 and "display is 300 bytes" in big_display["error"], big_display
        big_meta = client.message(h, {"request": "join", "ptype": "publisher", "room": 7400, "display": "ok",
                                      "metadata": {"blob": "y" * 5000}})
        assert error_code(big_meta) == 430 and "metadata" in big_meta["error"], big_meta
        joined = client.message(h, {"request": "join", "ptype": "publisher", "room": 7400, "display": "ok",
                                    "metadata": {"audio": True}})
        assert joined.get("videoroom") == "joined", joined
        configure = client.message(h, {"request": "configure", "display": "z" * 1000})
        assert error_code(configure) == 430, configure
        configure = client.message(h, {"request": "configure", "metadata": ["w" * 5000]})
        assert error_code(configure) == 430, configure
        listed = client.message(h, {"request": "listparticipants", "room": 7400})
        assert [p.get("display") for p in listed["participants"]] == ["ok"], listed
        other = client.attach(SFU)
        described = client.message(other, {"request": "create", "description": "d" * 1000})
        assert error_code(described) == 430 and "description" in described["error"], described
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# (11) The shipped configuration

def test_shipped_config_has_no_published_room_secret(start_atrium, tmp_path):
    shipped = json.loads((REPO / "config" / "config.json").read_text())
    sfu = next(p for p in shipped["plugins"] if p["library"] == "libatrium_sfu.so")
    rooms = sfu["config"]["rooms"]
    assert rooms and all("secret" not in r for r in rooms), rooms

    # A server with the shipped plugin configs (ports and folders moved out of the way).
    plugins = copy.deepcopy(shipped["plugins"])
    for p in plugins:
        if p["library"] == "libatrium_turn.so":
            port = free_port()
            p["config"].update(listen=["127.0.0.1"], udp_port=port, tcp_port=port, tls_port=None)
        if p["library"] == "libatrium_recorder.so":
            p["config"]["directory"] = str(tmp_path / "recordings")
    server = start_atrium(base_config(plugins), name="hostile-shipped")
    client = Client(server)
    try:
        h = client.attach(SFU)
        for body in ({"request": "edit", "room": 1234, "secret": "adminpwd", "new_rec_dir": "/tmp/elsewhere"},
                     {"request": "enable_recording", "room": 1234, "secret": "adminpwd", "record": True},
                     {"request": "edit", "room": 1234, "new_description": "defaced"},
                     {"request": "destroy", "room": 5678, "secret": "adminpwd"}):
            answer = client.message(h, body)
            assert error_code(answer) == 433, (body, answer)
        assert client.message(h, {"request": "exists", "room": 5678})["exists"]
        # The demo rooms still work for everyone.
        join_sfu(client, 1234)
        # The operator still manages them, through the admin API.
        edited = server.admin({"janus": "message_plugin", "plugin": SFU,
                               "request": {"request": "edit", "room": 1234, "new_description": "Demo Room (edited)"}})
        assert edited.get("response", {}).get("videoroom") == "edited", edited
    finally:
        client.close()
