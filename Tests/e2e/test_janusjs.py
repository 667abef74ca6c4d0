"""The real janus.js in headless Chromium against Atrium's chat plugin.

Two browser pages (two chromedriver sessions) load ``pages/janusjs-chat.html`` from a local
http.server on its own port, so the page is cross-origin to Atrium and janus.js's CORS
preflights are exercised. Each page runs Janus.init → new Janus({server}) → attach
("atrium.plugin.chat") → join, records everything in ``window.results``, and is driven through
``window.sendChat`` / ``window.finish``. janus.js and adapter.js come from the Debian packages
libjs-janus-gateway and libjs-webrtc-adapter and are copied next to the page at test time.

Parametrized over the transport: HTTP long-poll (``atrium.http_url``) and WebSocket
(``atrium.ws_url``). On failure a screenshot, the console log, ``window.results``, the
chromedriver log and the atrium log go to Tests/e2e/artifacts/.
"""
from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from browser import brief, results, save_artifacts, wait_for

PLUGIN = "atrium.plugin.chat"


def events(r: dict, kind: str) -> list[dict]:
    return [e["data"] for e in r["events"] if isinstance(e.get("data"), dict) and e["data"].get("chat") == kind]


def preflight_count(atrium) -> int:
    m = re.search(r'^atrium_http_requests_total\{kind="preflight"\} (\d+)$', atrium.metrics(), re.M)
    return int(m.group(1)) if m else 0


def page_url(base: str, server: str, room: str, display: str) -> str:
    return f"{base}/janusjs-chat.html?" + urlencode({"server": server, "room": room, "display": display})


@pytest.mark.parametrize("transport", ["http", "websocket"])
def test_janusjs_chat(atrium, page_server, chromium, transport):
    server = atrium.http_url if transport == "http" else atrium.ws_url
    room = f"janusjs-{transport}-{uuid.uuid4().hex[:8]}"
    text_ab = f"hello from alice over {transport} ✓"
    text_ba = f"hi alice, bob here ({transport})"
    preflights = preflight_count(atrium)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(2) as pool:
            alice, bob = pool.map(chromium, ["alice", "bob"])

        # Alice joins first: session, handle, synchronous join reply.
        alice.get(page_url(page_server, server, room, "alice"))
        ra = wait_for(alice, "alice", "join reply", lambda r: r if r["joinReply"] is not None else None)
        assert isinstance(ra["sessionId"], int) and ra["sessionId"] > 0, f"session id: {ra['sessionId']!r}"
        assert isinstance(ra["handleId"], int) and ra["handleId"] > 0, f"handle id: {ra['handleId']!r}"
        assert ra["plugin"] == PLUGIN
        join_a = ra["joinReply"]
        assert join_a["chat"] == "joined", join_a
        assert join_a["room"] == room and join_a["display"] == "alice"
        assert join_a["participants"] == [], join_a

        # Bob joins: his reply lists alice; alice gets an asynchronous {"chat":"join"} event.
        bob.get(page_url(page_server, server, room, "bob"))
        rb = wait_for(bob, "bob", "join reply", lambda r: r if r["joinReply"] is not None else None)
        assert isinstance(rb["sessionId"], int) and rb["sessionId"] > 0 and rb["sessionId"] != ra["sessionId"]
        assert isinstance(rb["handleId"], int) and rb["handleId"] > 0
        join_b = rb["joinReply"]
        assert join_b["chat"] == "joined", join_b
        assert [p["display"] for p in join_b["participants"]] == ["alice"], join_b
        assert join_b["participants"][0]["id"] == join_a["id"]
        joined = wait_for(alice, "alice", "bob's join event", lambda r: events(r, "join"))
        assert joined[0]["room"] == room
        assert joined[0]["participant"] == {"id": join_b["id"], "display": "bob"}, joined

        # A broadcast each way: the sender gets the synchronous "sent", the other an event.
        alice.execute_script("window.sendChat(arguments[0]);", text_ab)
        got = wait_for(bob, "bob", "alice's message", lambda r: events(r, "message"))
        assert got[0]["text"] == text_ab, got
        assert got[0]["from"] == {"id": join_a["id"], "display": "alice"}
        assert got[0]["room"] == room and got[0]["private"] is False
        sent = wait_for(alice, "alice", "the 'sent' reply",
                        lambda r: [x for x in r["replies"] if x["request"] == "message"])
        assert sent[0]["data"] == {"chat": "sent", "room": room}, sent

        bob.execute_script("window.sendChat(arguments[0]);", text_ba)
        got = wait_for(alice, "alice", "bob's message", lambda r: events(r, "message"))
        assert got[0]["text"] == text_ba and got[0]["from"]["display"] == "bob", got

        # The whole conversation ran without any janus.js error callback or logged error.
        for name, driver in (("alice", alice), ("bob", bob)):
            r = results(driver)
            assert r["errors"] == [], f"{name}: janus.js error callbacks / page errors: {r['errors']}"
            assert r["janusErrors"] == [], f"{name}: janus.js logged errors: {r['janusErrors']}"
            assert not [e for e in r["events"] if e.get("jsep")], f"{name}: unexpected jsep: {r['events']}"
            assert not r.get("detached"), f"{name}: handle was detached by the server"
        sessions = atrium.admin({"janus": "list_sessions"})["sessions"]
        assert ra["sessionId"] in sessions and rb["sessionId"] in sessions, sessions

        # Bob destroys his session: alice sees him leave; then alice destroys hers.
        bob.execute_script("window.finish();")
        wait_for(bob, "bob", "destroy", lambda r: r["destroyed"])
        left = wait_for(alice, "alice", "bob's leave event", lambda r: events(r, "leave"))
        assert left[0]["participant"]["display"] == "bob", left
        alice.execute_script("window.finish();")
        wait_for(alice, "alice", "destroy", lambda r: r["destroyed"])

        for name, driver in (("alice", alice), ("bob", bob)):
            r = results(driver)
            assert r["destroyed"] == "ok", f"{name}: destroy: {r['destroyed']}"
            assert r["errors"] == [], f"{name}: janus.js error callbacks / page errors: {r['errors']}"
            # A waiting long poll must not be answered when its session is destroyed (Janus holds it);
            # otherwise janus.js re-polls the destroyed session and logs "API call failed".
            assert r["janusErrors"] == [], f"{name}: janus.js logged errors: {r['janusErrors']}"
        sessions = atrium.admin({"janus": "list_sessions"})["sessions"]
        assert ra["sessionId"] not in sessions and rb["sessionId"] not in sessions, sessions
        # Each page saw exactly the events the conversation implies.
        ra, rb = results(alice), results(bob)
        assert [e["data"]["chat"] for e in ra["events"]] == ["join", "message", "leave"], brief(ra)
        assert [e["data"]["chat"] for e in rb["events"]] == ["message"], brief(rb)
        if transport == "http":
            # The page is cross-origin to Atrium and janus.js POSTs JSON: CORS preflights happened.
            assert preflight_count(atrium) > preflights, "no CORS preflight reached atrium"
        assert atrium.alive(), f"atrium died:\n{atrium.log()[-4000:]}"
    except BaseException:
        save_artifacts(chromium, atrium, f"janusjs-{transport}")
        raise
    finally:
        elapsed = time.monotonic() - started
        print(f"janus.js over {transport}: {elapsed:.1f}s")
