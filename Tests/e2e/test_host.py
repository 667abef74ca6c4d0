"""The host's own behaviour: session lifetime, transport cleanup, bad input, admin, metrics, config."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import ATRIUM_BIN, base_config, chat_plugin_entry, require_build, wait_until
from janus_client import HttpJanus, WsJanus


def janus_requests(server) -> float:
    """Janus API requests the HTTP transport has taken so far."""
    return server.metric('atrium_http_requests_total{kind="janus"}')


def create_session(http: HttpJanus) -> int:
    _, reply, _ = http.post(None, {"janus": "create", "transaction": "c"})
    return reply["data"]["id"]


def attach(http: HttpJanus, session: int) -> int:
    _, reply, _ = http.post(session, {"janus": "attach", "plugin": "atrium.plugin.chat", "transaction": "a"})
    return reply["data"]["id"]


def test_session_timeout_over_websocket_and_http(start_atrium):
    server = start_atrium(base_config(sessions={"timeout_seconds": 2}, http={"long_poll_seconds": 1}))
    ws = WsJanus(server.ws_url)
    s_ws = ws.request({"janus": "create", "transaction": "t"})["data"]["id"]
    h = ws.request({"janus": "attach", "session_id": s_ws, "plugin": "atrium.plugin.chat", "transaction": "t2"})["data"]["id"]
    joined = ws.request({"janus": "message", "session_id": s_ws, "handle_id": h, "transaction": "t3",
                         "body": {"request": "join", "room": "lobby", "display": "Sleepy"}})
    assert joined["plugindata"]["data"]["chat"] == "joined"

    http = HttpJanus(server.http_url)
    s_http = create_session(http)
    kept = create_session(http)

    # Keep one session alive with keepalives; let the others expire.
    deadline = time.time() + 4.5
    timeout_event = None
    while time.time() < deadline:
        assert http.post(kept, {"janus": "keepalive", "transaction": "k"})[1]["janus"] == "ack"
        try:
            msg = ws.recv(timeout=0.5)
            if msg.get("janus") == "timeout":
                timeout_event = msg
        except Exception:
            pass
    assert timeout_event == {"janus": "timeout", "session_id": s_ws}
    assert ws.request({"janus": "keepalive", "session_id": s_ws, "transaction": "x"})["error"]["code"] == 458
    # The HTTP session expired too: its queue answered with the timeout event or it is gone (404).
    status, reply, _ = http.get(f"{s_http}?maxev=5")
    assert status == 404 or reply == [{"janus": "timeout", "session_id": s_http}]
    assert http.get(f"{s_http}?maxev=5")[0] == 404
    assert http.post(kept, {"janus": "keepalive", "transaction": "k"})[1]["janus"] == "ack"
    # The timed-out participant left the chat room.
    rooms = server.admin({"janus": "message_plugin", "plugin": "atrium.plugin.chat", "request": {"request": "list"}})
    lobby = [r for r in rooms["response"]["rooms"] if r["room"] == "lobby"][0]
    assert lobby["num_participants"] == 0
    ws.close()


def test_websocket_close_destroys_its_sessions(atrium):
    http = HttpJanus(atrium.http_url)
    watcher_s = create_session(http)
    watcher_h = attach(http, watcher_s)
    http.post(f"{watcher_s}/{watcher_h}", {"janus": "message", "transaction": "j",
                                           "body": {"request": "join", "room": "closing", "display": "Watcher"}})
    before = atrium.admin({"janus": "list_sessions"})["sessions"]

    ws = WsJanus(atrium.ws_url)
    sessions = [ws.request({"janus": "create", "transaction": f"c{i}"})["data"]["id"] for i in range(3)]
    h = ws.request({"janus": "attach", "session_id": sessions[0], "plugin": "atrium.plugin.chat", "transaction": "a"})["data"]["id"]
    # A message in flight when the socket goes away must not crash or leak anything.
    ws.send({"janus": "message", "session_id": sessions[0], "handle_id": h, "transaction": "j",
             "body": {"request": "join", "room": "closing", "display": "Leaver"}})
    ws.close()

    deadline = time.time() + 5
    while time.time() < deadline:
        listed = atrium.admin({"janus": "list_sessions"})["sessions"]
        if not set(sessions) & set(listed):
            break
        time.sleep(0.1)
    assert not set(sessions) & set(listed)
    assert set(before) <= set(listed)
    # If the join got through before the close, the watcher saw the leave too; either way the room is clean.
    _, reply, _ = http.post(f"{watcher_s}/{watcher_h}", {"janus": "message", "transaction": "p", "body": {"request": "participants"}})
    assert [p["display"] for p in reply["plugindata"]["data"]["participants"]] == ["Watcher"]


def test_reclaim_window_lets_a_new_socket_claim(start_atrium):
    server = start_atrium(base_config(sessions={"reclaim_seconds": 5}))
    ws = WsJanus(server.ws_url)
    s = ws.request({"janus": "create", "transaction": "c"})["data"]["id"]
    ws.close()
    wait_until(lambda: server.metric("atrium_websocket_connections") == 0, 5, "the server to see the socket close")
    ws2 = WsJanus(server.ws_url)
    assert ws2.request({"janus": "claim", "session_id": s, "transaction": "cl"}) == {"janus": "success", "session_id": s, "transaction": "cl"}
    assert ws2.request({"janus": "keepalive", "session_id": s, "transaction": "k"})["janus"] == "ack"
    ws2.close()


def test_bad_input_never_hurts_the_host(start_atrium):
    server = start_atrium(base_config(http={"max_body_bytes": 4096}, websocket={"max_message_bytes": 4096},
                                      limits={"requests_per_second": 20, "burst": 40}))
    http = HttpJanus(server.http_url)
    victim = create_session(http)

    # Oversize bodies: a clear error over HTTP, a closed socket over WebSocket.
    _, reply, _ = http.post(None, b'{"janus":"create","transaction":"' + b"x" * 8000 + b'"}')
    assert reply["janus"] == "error" and reply["error"]["code"] == 450 and "too large" in reply["error"]["reason"]
    ws = WsJanus(server.ws_url)
    ws.send(json.dumps({"janus": "ping", "transaction": "y" * 8000}))
    with pytest.raises(Exception):
        ws.recv(timeout=3)

    # Garbage of every kind gets JSON errors, over both transports.
    junk = [b"{", b"\xff\xfe", b"[[[[" * 200, b'{"janus":"create","transaction":"t","id":1e400}',
            b'"' + b"\\u0000" * 10 + b'"', b'{"a":' * 300 + b"1" + b"}" * 300, b"null"]
    for body in junk:
        status, reply, _ = http.post(None, body)
        assert status == 200 and reply["janus"] == "error", (body[:40], reply)
    ws = WsJanus(server.ws_url)
    for body in junk:
        ws.send(body.decode("latin-1"))
        assert ws.recv(timeout=3)["janus"] == "error"
    ws.close()

    # A flood from one connection is throttled with an error; another client is unaffected.
    flood = WsJanus(server.ws_url)
    for i in range(120):
        flood.send({"janus": "ping", "transaction": f"f{i}"})
    replies = flood.recv_all(quiet=0.5, limit=10)
    codes = [r.get("error", {}).get("code") for r in replies]
    assert len(replies) == 120 and codes.count(490) > 0 and sum(1 for r in replies if r["janus"] == "pong") >= 40
    flood.close()
    assert http.post(victim, {"janus": "keepalive", "transaction": "k"})[1]["janus"] == "ack"

    # A long-poll client that vanishes mid-poll leaves the session usable.
    raw = socket.create_connection(("127.0.0.1", server.http_port))
    polls = janus_requests(server)
    raw.sendall(f"GET /janus/{victim}?maxev=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    wait_until(lambda: janus_requests(server) > polls, 5, "the server to take the long poll")
    raw.close()
    h = attach(http, victim)
    http.post(f"{victim}/{h}", {"janus": "detach", "transaction": "d"})
    _, event, _ = http.get(f"{victim}?maxev=1")
    assert event == {"janus": "detached", "session_id": victim, "sender": h}

    # A half-sent request and a socket that never speaks do not block anyone.
    slow = socket.create_connection(("127.0.0.1", server.http_port))
    slow.sendall(b"POST /janus HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ja")
    silent = socket.create_connection(("127.0.0.1", server.ws_port))
    assert http.post(None, {"janus": "ping", "transaction": "p"})[1]["janus"] == "pong"
    slow.close()
    silent.close()
    assert server.alive()
    metrics = server.metrics()
    assert 'atrium_errors_total{code="454"}' in metrics and 'atrium_errors_total{code="490"}' in metrics


def test_admin_api_and_metrics(atrium):
    http = HttpJanus(atrium.http_url)
    s = create_session(http)
    h = attach(http, s)
    http.post(f"{s}/{h}", {"janus": "message", "transaction": "m", "body": {"request": "join", "room": "adm", "display": "Ann"}})

    assert requests.post(atrium.admin_url, json={"janus": "list_sessions", "transaction": "t"}).json()["error"]["code"] == 403
    assert requests.post(atrium.admin_url, json={"janus": "list_sessions", "transaction": "t", "admin_secret": "nope"}).json()["error"]["code"] == 403

    assert s in atrium.admin({"janus": "list_sessions"})["sessions"]
    assert atrium.admin({"janus": "list_handles", "session_id": s})["handles"] == [h]
    info = atrium.admin({"janus": "handle_info", "session_id": s, "handle_id": h})["info"]
    assert info["plugin"] == "atrium.plugin.chat" and info["plugin_specific"] == {
        "joined": True, "room": "adm", "id": info["plugin_specific"]["id"], "display": "Ann"}
    plugins = atrium.admin({"janus": "list_plugins"})["plugins"]
    assert plugins["atrium.plugin.chat"]["version_string"] == "0.1.0" and plugins["atrium.plugin.chat"]["abi"] == "1.2"
    assert atrium.admin({"janus": "handle_info", "session_id": s, "handle_id": 1})["error"]["code"] == 459

    metrics = atrium.metrics()
    for line in ["atrium_sessions ", "atrium_handles ", 'atrium_requests_total{verb="create"}',
                 'atrium_requests_total{verb="message"}', "atrium_chat_participants "]:
        assert line in metrics, line
    gauge = [l for l in metrics.splitlines() if l.startswith("atrium_sessions ")][0]
    assert int(gauge.split()[1]) >= 1

    assert atrium.admin({"janus": "destroy_session", "session_id": s})["janus"] == "success"
    assert http.post(s, {"janus": "keepalive", "transaction": "k"})[1]["error"]["code"] == 458
    assert requests.get(f"{atrium.base}/health").json()["ok"] is True


def run_check(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.json"
    path.write_text(text)
    return subprocess.run([str(require_build(ATRIUM_BIN)), "check-config", str(path)], capture_output=True, text=True, timeout=60)


def test_check_config(tmp_path):
    good = base_config()
    done = run_check(tmp_path, json.dumps(good))
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr

    done = run_check(tmp_path, '{\n  "http": {\n    "port": 80,\n  }\n}\n')
    assert done.returncode == 2 and "line 4, column 3" in done.stderr, done.stderr

    bad_type = {**good, "http": {"port": "8088"}}
    done = run_check(tmp_path, json.dumps(bad_type))
    assert done.returncode == 2 and "http.port" in done.stderr and "expected an integer" in done.stderr

    unknown = {**good, "sesions": {}}
    done = run_check(tmp_path, json.dumps(unknown))
    assert done.returncode == 2 and "sesions" in done.stderr and "unknown key" in done.stderr

    plugins = [chat_plugin_entry(), {"library": "libatrium_chat.so", "aliases": ["x"], "enabled": True, "enabled2": 1}]
    done = run_check(tmp_path, json.dumps({**good, "plugins": plugins}))
    assert done.returncode == 2 and "plugins[1].enabled2" in done.stderr

    dup = [{**chat_plugin_entry(), "aliases": ["janus.plugin.textroom"]}, {**chat_plugin_entry(), "aliases": ["janus.plugin.textroom"]}]
    done = run_check(tmp_path, json.dumps({**good, "plugins": dup}))
    assert done.returncode == 2 and "already used" in done.stderr

    twice = [chat_plugin_entry(), chat_plugin_entry()]
    done = run_check(tmp_path, json.dumps({**good, "plugins": twice}))
    assert done.returncode == 2 and "atrium.plugin.chat" in done.stderr and "already used" in done.stderr

    plugin_says_no = [chat_plugin_entry(history="lots")]
    done = run_check(tmp_path, json.dumps({**good, "plugins": plugin_says_no}))
    assert done.returncode == 2 and "config.history" in done.stderr

    # The shipped default configuration is valid and needs nothing but the build.
    from conftest import ROOT
    done = subprocess.run([str(ATRIUM_BIN), "check-config", str(ROOT / "config" / "config.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_aliases_answer_under_the_alias(start_atrium):
    server = start_atrium(base_config(plugins=[{**chat_plugin_entry(), "aliases": ["janus.plugin.textroom.chat"]}]))
    http = HttpJanus(server.http_url)
    s = create_session(http)
    _, reply, _ = http.post(s, {"janus": "attach", "plugin": "janus.plugin.textroom.chat", "transaction": "a"})
    h = reply["data"]["id"]
    _, reply, _ = http.post(f"{s}/{h}", {"janus": "message", "transaction": "m", "body": {"request": "list"}})
    assert reply["plugindata"]["plugin"] == "janus.plugin.textroom.chat"
    _, info, _ = http.get("info")
    assert {"atrium.plugin.chat", "janus.plugin.textroom.chat"} <= set(info["plugins"])


def test_sigterm_stops_cleanly_with_clients_connected(start_atrium):
    server = start_atrium()
    ws = WsJanus(server.ws_url)
    s = ws.request({"janus": "create", "transaction": "c"})["data"]["id"]
    ws.request({"janus": "attach", "session_id": s, "plugin": "atrium.plugin.chat", "transaction": "a"})
    requests_before = janus_requests(server)
    poller = threading.Thread(target=lambda: HttpJanus(server.http_url).get(f"{create_session(HttpJanus(server.http_url))}"))
    poller.start()
    # Its create and its long poll reached the server.
    wait_until(lambda: janus_requests(server) >= requests_before + 2, 5, "the poller's create and long poll")
    assert server.stop() == 0, server.log()[-3000:]
    poller.join(timeout=5)
