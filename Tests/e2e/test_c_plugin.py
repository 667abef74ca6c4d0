"""The example C plugin (Plugins/Examples/hello-c) in the real server, and the host's load checks.

The plugin is the library `make c-plugins` builds (.build/c-plugins/libatrium_hello.so, or
ATRIUM_C_PLUGINS_DIR); a missing library fails with "build first", it never skips. Each test of the
plugin runs twice: on that build, and on the same plugin as it was at ABI 1.0, built against the
1.0 header (Tests/ABI/1.0, .build/c-plugins/abi-1.0), which every later minor version must serve
unchanged. Load failures are provoked with tiny libraries compiled into the test's tmp_path with
`cc`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, AtriumServer, base_config
from janus_client import HttpJanus, WsJanus

HELLO = "atrium.plugin.hello"
C_PLUGINS_DIR = Path(os.environ.get("ATRIUM_C_PLUGINS_DIR", ROOT / ".build" / "c-plugins"))
ABI_INCLUDE = ROOT / "Sources" / "PluginAPI" / "include"


HELLO_BUILDS = {"current": Path("libatrium_hello.so"), "abi-1.0": Path("abi-1.0") / "libatrium_hello.so"}


def hello_library(build: str = "current") -> Path:
    path = C_PLUGINS_DIR / HELLO_BUILDS[build]
    if not path.exists():
        pytest.fail(f"{path} does not exist: build first: make c-plugins "
                    f"(or point ATRIUM_C_PLUGINS_DIR at the folder that has it)", pytrace=False)
    return path


@pytest.fixture(params=list(HELLO_BUILDS))
def hello_build(request) -> str:
    """Which build of the hello plugin a test runs on: the current source or the ABI 1.0 one."""
    return request.param


def hello_entry(config: dict | None = None, build: str = "current", **extra) -> dict:
    return {"library": str(hello_library(build)), "config": {"greeting": "Hi"} if config is None else config, **extra}


def compile_library(tmp_path: Path, name: str, source: str) -> Path:
    """Builds `source` into tmp_path/libatrium_<name>.so against the ABI header alone."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler (`cc`) on PATH: install build-essential", pytrace=False)
    c_file = tmp_path / f"{name}.c"
    c_file.write_text(source)
    library = tmp_path / f"libatrium_{name}.so"
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-shared", "-fPIC",
                    "-I", str(ABI_INCLUDE), str(c_file), "-o", str(library)], check=True)
    return library


def failed_start(config: dict, workdir: Path) -> AtriumServer:
    """Starts atrium expecting it to give up; returns the exited server (exit code and log)."""
    server = AtriumServer(config, workdir)
    with pytest.raises(AssertionError, match="exited with"):
        server.start()
    return server


def create_session(http: HttpJanus) -> int:
    _, reply, _ = http.post(None, {"janus": "create", "transaction": "c"})
    return reply["data"]["id"]


def attach(http: HttpJanus, session: int, plugin: str = HELLO) -> dict:
    return http.post(session, {"janus": "attach", "plugin": plugin, "transaction": "a"})[1]


def message(http: HttpJanus, session: int, handle: int, body: dict, transaction: str = "m") -> dict:
    return http.post(f"{session}/{handle}", {"janus": "message", "transaction": transaction, "body": body})[1]


def ws_session(ws: WsJanus, plugin: str = HELLO) -> tuple[int, int]:
    session = ws.request({"janus": "create", "transaction": "c"})["data"]["id"]
    handle = ws.request({"janus": "attach", "session_id": session, "plugin": plugin, "transaction": "a"})["data"]["id"]
    return session, handle


# ---- (a) synchronous answers ----------------------------------------------------------------------

def test_sync_hello_over_http_and_websocket(start_atrium, hello_build):
    server = start_atrium(base_config(plugins=[hello_entry(build=hello_build, aliases=["janus.plugin.hello"])]))
    http = HttpJanus(server.http_url)
    session = create_session(http)
    handle = attach(http, session)["data"]["id"]

    reply = message(http, session, handle, {"request": "hello", "name": "Ada"}, "t1")
    assert reply["janus"] == "success"
    assert reply["transaction"] == "t1"
    assert reply["sender"] == handle
    assert reply["plugindata"] == {"plugin": HELLO, "data": {"hello": "greeting", "text": "Hi, Ada!"}}

    # Application errors are ordinary replies, not Janus errors.
    unknown = message(http, session, handle, {"request": "goodbye", "name": "Ada"})
    assert unknown["janus"] == "success"
    assert unknown["plugindata"]["data"] == {"hello": "error", "error": "unknown request 'goodbye'"}
    for body in ({"request": "hello"}, {"request": "hello", "name": ""}, {"request": "hello", "name": 7},
                 {"request": "later", "name": None}):
        data = message(http, session, handle, body)["plugindata"]["data"]
        assert data["hello"] == "error" and "name" in data["error"], body
    data = message(http, session, handle, {"request": "later", "name": "Ada", "delay_ms": 5001})["plugindata"]["data"]
    assert data == {"hello": "error", "error": "delay_ms should be an integer from 0 to 5000"}
    assert message(http, session, handle, {"name": "Ada"})["plugindata"]["data"]["hello"] == "error"

    with WsJanus(server.ws_url) as ws:
        # Attached through the alias: plugindata names the plugin as the client did.
        ws_s, ws_h = ws_session(ws, "janus.plugin.hello")
        reply = ws.request({"janus": "message", "session_id": ws_s, "handle_id": ws_h, "transaction": "w1",
                            "body": {"request": "hello", "name": "Grace"}})
        assert reply["janus"] == "success"
        assert reply["plugindata"] == {"plugin": "janus.plugin.hello", "data": {"hello": "greeting", "text": "Hi, Grace!"}}


# ---- (b) asynchronous answers ---------------------------------------------------------------------

def test_later_acks_then_sends_the_event_over_websocket(start_atrium, hello_build):
    server = start_atrium(base_config(plugins=[hello_entry(build=hello_build)]))
    with WsJanus(server.ws_url) as ws:
        session, handle = ws_session(ws)
        sent = time.monotonic()
        ws.send({"janus": "message", "session_id": session, "handle_id": handle, "transaction": "later-1",
                 "body": {"request": "later", "name": "Ada", "delay_ms": 300}})
        got = ws.recv_until(lambda m: m.get("janus") == "event", timeout=5)
        elapsed = time.monotonic() - sent
        assert [m["janus"] for m in got] == ["ack", "event"]
        ack, event = got
        assert ack["transaction"] == "later-1"
        assert ack["hint"] == "the greeting follows in 300 ms"
        assert event["transaction"] == "later-1"
        assert event["sender"] == handle
        assert event["plugindata"] == {"plugin": HELLO, "data": {"hello": "later", "text": "Hi later, Ada!"}}
        assert elapsed >= 0.25, f"the event came after {elapsed:.3f}s, before its delay"

        # The default delay is 100 ms.
        ack = ws.request({"janus": "message", "session_id": session, "handle_id": handle, "transaction": "later-2",
                          "body": {"request": "later", "name": "Bob"}})
        assert ack["hint"] == "the greeting follows in 100 ms"
        event = ws.recv_until(lambda m: m.get("janus") == "event", timeout=5)[-1]
        assert event["transaction"] == "later-2"
        assert event["plugindata"]["data"]["text"] == "Hi later, Bob!"

        # A handle that goes before its event fires never gets it (nor does anyone else).
        ws.request({"janus": "message", "session_id": session, "handle_id": handle, "transaction": "later-3",
                    "body": {"request": "later", "name": "Gone", "delay_ms": 300}})
        assert ws.request({"janus": "detach", "session_id": session, "handle_id": handle, "transaction": "d"})["janus"] == "success"
        after = ws.recv_all(quiet=0.8, limit=3)
        assert [m["janus"] for m in after] == ["detached"]
        # The plugin is still well after the cancelled event.
        h2 = ws.request({"janus": "attach", "session_id": session, "plugin": HELLO, "transaction": "a2"})["data"]["id"]
        reply = ws.request({"janus": "message", "session_id": session, "handle_id": h2, "transaction": "w",
                            "body": {"request": "hello", "name": "Again"}})
        assert reply["plugindata"]["data"]["text"] == "Hi, Again!"
    assert server.alive()


def test_later_acks_then_sends_the_event_over_http_long_poll(start_atrium, hello_build):
    server = start_atrium(base_config(plugins=[hello_entry(build=hello_build)]))
    http = HttpJanus(server.http_url)
    session = create_session(http)
    handle = attach(http, session)["data"]["id"]
    ack = message(http, session, handle, {"request": "later", "name": "Ada", "delay_ms": 200}, "poll-1")
    assert ack["janus"] == "ack"
    assert ack["transaction"] == "poll-1"
    status, events, _ = http.get(f"{session}?maxev=5", timeout=10)
    assert status == 200
    assert len(events) == 1
    event = events[0]
    assert event["janus"] == "event"
    assert event["transaction"] == "poll-1"
    assert event["sender"] == handle
    assert event["plugindata"] == {"plugin": HELLO, "data": {"hello": "later", "text": "Hi later, Ada!"}}

    # Several pending requests each get their own event, matched by transaction.
    for i, delay in enumerate((250, 0, 120)):
        assert message(http, session, handle, {"request": "later", "name": f"n{i}", "delay_ms": delay}, f"p{i}")["janus"] == "ack"
    received: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(received) < 3 and time.monotonic() < deadline:
        _, events, _ = http.get(f"{session}?maxev=5", timeout=10)
        for e in events:
            received[e["transaction"]] = e["plugindata"]["data"]["text"]
    assert received == {"p0": "Hi later, n0!", "p1": "Hi later, n1!", "p2": "Hi later, n2!"}


# ---- (c) configuration the plugin refuses ---------------------------------------------------------

@pytest.mark.parametrize("config, reason", [
    ({"greeting": 5}, "config.greeting: expected a non-empty string of at most 64 bytes, found an integer"),
    ({"greeting": "Hi", "volume": 11}, "config.volume: unknown key; expected: greeting"),
])
def test_rejected_config_stops_start_up(tmp_path, config, reason, hello_build):
    server = failed_start(base_config(plugins=[hello_entry(config, build=hello_build)]), tmp_path / "atrium")
    assert server.proc.returncode == 1
    log = server.log()
    assert "cannot start" in log
    assert HELLO in log and "plugins[0]" in log
    assert f"init failed (status -1): {reason}" in log


def test_optional_plugin_with_rejected_config_is_skipped(start_atrium, hello_build):
    server = start_atrium(base_config(plugins=[hello_entry({"greeting": 5}, build=hello_build, optional=True)]))
    assert "optional plugin skipped" in server.log()
    assert "found an integer" in server.log()
    http = HttpJanus(server.http_url)
    session = create_session(http)
    reply = attach(http, session)
    assert reply["janus"] == "error"
    assert reply["error"] == {"code": 460, "reason": f"No such plugin '{HELLO}'"}


# ---- (d) libraries the host refuses to load -------------------------------------------------------

NO_ENTRY_SOURCE = """
__attribute__((visibility("default"))) int atrium_plugin_entry_point(void);
int atrium_plugin_entry_point(void) { return 1; }
"""

ABI_2_SOURCE = """
#include "atrium_plugin.h"

static const atrium_plugin_entry_t entry = {
    .struct_size = sizeof(atrium_plugin_entry_t),
    .abi_version = { 2, 0 },
    .id = "atrium.plugin.future",
    .name = "Future",
    .description = "built against a later plugin ABI",
    .author = "tests",
    .version_string = "2.0.0",
    .version = 200,
    .create = 0,
};

__attribute__((visibility("default"))) const atrium_plugin_entry_t *atrium_plugin_entry(void);
const atrium_plugin_entry_t *atrium_plugin_entry(void) { return &entry; }
"""


@pytest.mark.parametrize("case", ["missing", "no-entry", "abi-2"])
def test_unloadable_library_stops_start_up(tmp_path, case):
    hello_library()  # the suite needs the C plugin build anyway; say so first
    if case == "missing":
        library = tmp_path / "libatrium_nothere.so"
        reason = f"cannot load library: {library}: cannot open shared object file: No such file or directory"
    elif case == "no-entry":
        library = compile_library(tmp_path, "noentry", NO_ENTRY_SOURCE)
        reason = "the library exports no atrium_plugin_entry symbol"
    else:
        library = compile_library(tmp_path, "future", ABI_2_SOURCE)
        reason = "built for plugin ABI 2.0, this host speaks ABI 1.1 (the major version must match)"
    # The hello plugin loads fine first; the bad second entry still stops everything.
    config = base_config(plugins=[hello_entry(), {"library": str(library)}])
    server = failed_start(config, tmp_path / "atrium")
    assert server.proc.returncode == 1
    log = server.log()
    assert f"cannot start: plugin plugins[1] ({library}): " in log
    assert reason in log


# ---- (e) metrics and handle state -----------------------------------------------------------------

def test_metrics_and_handle_info_count_requests(start_atrium, hello_build):
    server = start_atrium(base_config(plugins=[hello_entry({}, build=hello_build)]))
    assert "atrium_hello_requests_total 0\n" in server.metrics()
    assert "# TYPE atrium_hello_requests_total counter" in server.metrics()

    http = HttpJanus(server.http_url)
    session = create_session(http)
    first = attach(http, session)["data"]["id"]
    second = attach(http, session)["data"]["id"]
    # Default greeting without configuration.
    assert message(http, session, first, {"request": "hello", "name": "Ada"})["plugindata"]["data"]["text"] == "Hello, Ada!"
    message(http, session, first, {"request": "nonsense"})
    message(http, session, second, {"request": "hello", "name": "Bob"})

    assert "atrium_hello_requests_total 3\n" in server.metrics()
    for handle, count in ((first, 2), (second, 1)):
        info = server.admin({"janus": "handle_info", "session_id": session, "handle_id": handle})
        assert info["info"]["plugin"] == HELLO
        assert info["info"]["plugin_specific"] == {"requests": count}

