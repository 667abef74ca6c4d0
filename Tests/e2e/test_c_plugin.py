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
        reason = "built for plugin ABI 2.0, this host speaks ABI 1.2 (the major version must match)"
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


# ---- (f) the 1.2 contract: reply codes, post_control, media calls from other threads --------------

CONTRACT = "atrium.plugin.contract"

# A plugin built against the current header that exercises what 1.2 defined. Its requests:
#  {"return": N [, "explain": true]}  handle_message returns N (after set_error("explained"));
#  {"post": true}    posts 65537 calls to [control] while handle_message holds it; the last is refused;
#                    the calls report, once all ran, whether they ran in order;
#  {"relay": true}   media calls from [control], on a handle without a PeerConnection;
#  {"thread": true}  acks; a thread of the plugin relays RTP and posts the event that reports it;
#  {"group": N}      atrium.group/1 on its handle (no PeerConnection yet) and on a handle the host never made.
# At shutdown each handle_destroyed posts 1000 calls, and destroy logs how many had run.
CONTRACT_SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "atrium_plugin.h"

static const atrium_host_t *host;
static atrium_plugin_t table;
static atrium_status_t post_during_create;
static unsigned accepted, ran, next_index;
static int in_order = 1;
static uint8_t big[1501];

struct posted { const atrium_handle_t *handle; unsigned index; };
struct job { const atrium_handle_t *handle; atrium_status_t relay; };

static void push(const atrium_handle_t *handle, const char *json) {
    host->push_event(host, handle, NULL, json, strlen(json), NULL, 0);
}

static void counted(const atrium_plugin_t *plugin, void *user_data) {
    (void)plugin;
    struct posted *p = user_data;
    if (p->index != next_index) in_order = 0;
    next_index = p->index + 1;
    if (++ran == accepted) {
        char json[96];
        snprintf(json, sizeof json, "{\"ran\":%u,\"in_order\":%s}", ran, in_order ? "true" : "false");
        push(p->handle, json);
    }
    free(p);
}

static void report(const atrium_plugin_t *plugin, void *user_data) {
    (void)plugin;
    struct job *job = user_data;
    char json[96];
    snprintf(json, sizeof json, "{\"from\":\"thread\",\"relay\":%d}", (int)job->relay);
    push(job->handle, json);
    free(job);
}

static atrium_rtp_packet_t rtp_packet(const uint8_t *bytes, uint32_t length) {
    atrium_rtp_packet_t packet = { .struct_size = sizeof packet, .mindex = -1, .is_video = 0, .buffer = bytes,
        .length = length, .audio_level = -1, .audio_voice = -1, .video_rotation = -1 };
    return packet;
}

static const uint8_t rtp[12] = { 0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1 };

static void *relay_from_thread(void *arg) {
    struct job *job = arg;
    atrium_rtp_packet_t packet = rtp_packet(rtp, sizeof rtp);
    job->relay = host->relay_rtp(host, job->handle, &packet);
    if (host->post_control(host, report, job) != ATRIUM_OK) free(job);
    return NULL;
}

static int32_t message(const atrium_plugin_t *plugin, atrium_handle_t *handle, const char *transaction,
                       const char *body, size_t body_len, const char *jsep, size_t jsep_len,
                       const atrium_reply_t *reply) {
    (void)plugin; (void)transaction; (void)body_len; (void)jsep; (void)jsep_len;
    char json[256];
    const char *returning = strstr(body, "\"return\":");
    if (returning) {
        if (strstr(body, "\"explain\":true")) reply->set_error(reply, "explained");
        return (int32_t)atoi(returning + strlen("\"return\":"));
    }
    if (strstr(body, "\"post\":true")) {
        atrium_status_t last = ATRIUM_OK;
        accepted = ran = next_index = 0;
        in_order = 1;
        for (unsigned i = 0; i < 65537 && last == ATRIUM_OK; i++) {
            struct posted *p = malloc(sizeof *p);
            p->handle = handle;
            p->index = i;
            last = host->post_control(host, counted, p);
            if (last == ATRIUM_OK) accepted++; else free(p);
        }
        snprintf(json, sizeof json, "{\"accepted\":%u,\"last\":%d,\"null_fn\":%d,\"during_create\":%d}", accepted,
                 (int)last, (int)host->post_control(host, NULL, NULL), (int)post_during_create);
    } else if (strstr(body, "\"relay\":true")) {
        atrium_rtp_packet_t empty = rtp_packet(rtp, 0), oversized = rtp_packet(big, sizeof big), fine = rtp_packet(rtp, sizeof rtp);
        static const uint8_t rr[8] = { 0x80, 201, 0, 1, 0, 0, 0, 1 };
        atrium_rtcp_packet_t rtcp = { .struct_size = sizeof rtcp, .mindex = -1, .is_video = 0, .buffer = rr, .length = sizeof rr };
        snprintf(json, sizeof json, "{\"empty\":%d,\"oversized\":%d,\"queued\":%d,\"rtcp\":%d,\"keyframe\":%d,\"remb\":%d}",
                 (int)host->relay_rtp(host, handle, &empty), (int)host->relay_rtp(host, handle, &oversized),
                 (int)host->relay_rtp(host, handle, &fine), (int)host->relay_rtcp(host, handle, &rtcp),
                 (int)host->request_keyframe(host, handle, -1), (int)host->send_remb(host, handle, 300000));
    } else if (strstr(body, "\"group\":")) {
        const atrium_host_group_t *g = host->get_extension(host, ATRIUM_EXT_GROUP);
        atrium_handle_t copy = *handle;  /* the same fields at another address: no handle of the host's */
        uint64_t group = (uint64_t)atoll(strstr(body, "\"group\":") + strlen("\"group\":"));
        atrium_status_t set = g->set_group(host, handle, group);
        snprintf(json, sizeof json, "{\"set\":%d,\"loop\":%d,\"stranger_set\":%d,\"stranger_loop\":%d,\"out\":%d}",
                 (int)set, (int)g->media_loop(host, handle), (int)g->set_group(host, &copy, group),
                 (int)g->media_loop(host, &copy), (int)g->set_group(host, handle, 0));
    } else if (strstr(body, "\"thread\":true")) {
        struct job *job = calloc(1, sizeof *job);
        job->handle = handle;
        pthread_t thread;
        pthread_create(&thread, NULL, relay_from_thread, job);
        pthread_detach(thread);
        return ATRIUM_MESSAGE_ACK;
    } else {
        return ATRIUM_ERR_INVALID_ARGUMENT;
    }
    reply->set_reply(reply, json, strlen(json));
    return ATRIUM_MESSAGE_REPLY;
}

static atrium_status_t init(const atrium_plugin_t *plugin, const char *config, size_t len, char *err, size_t cap) {
    (void)plugin; (void)config; (void)len; (void)err; (void)cap;
    return ATRIUM_OK;
}
static unsigned exit_posted, exit_ran;

static void counted_at_exit(const atrium_plugin_t *plugin, void *user_data) {
    (void)plugin; (void)user_data;
    exit_ran++;
}

static void destroy(const atrium_plugin_t *plugin) {
    (void)plugin;
    char line[128];
    snprintf(line, sizeof line, "destroy: %u of %u posted calls ran; post now: %d", exit_ran, exit_posted,
             (int)host->post_control(host, counted_at_exit, NULL));
    host->log(host, ATRIUM_LOG_INFO, line);
}
static atrium_status_t created(const atrium_plugin_t *plugin, atrium_handle_t *handle, char *err, size_t cap) {
    (void)plugin; (void)handle; (void)err; (void)cap;
    return ATRIUM_OK;
}
static void destroyed(const atrium_plugin_t *plugin, atrium_handle_t *handle) {
    (void)plugin; (void)handle;
    for (int i = 0; i < 1000; i++) {
        if (host->post_control(host, counted_at_exit, NULL) == ATRIUM_OK) exit_posted++;
    }
}

static const atrium_plugin_t *create(const atrium_host_t *h, char *err, size_t cap) {
    (void)err; (void)cap;
    host = h;
    post_during_create = host->post_control(host, counted, NULL);
    table = (atrium_plugin_t){ .struct_size = sizeof table, .abi_version = ATRIUM_ABI_VERSION_INIT, .init = init,
        .destroy = destroy, .handle_created = created, .handle_destroyed = destroyed, .handle_message = message };
    return &table;
}

static const atrium_plugin_entry_t entry = { .struct_size = sizeof entry, .abi_version = ATRIUM_ABI_VERSION_INIT,
    .id = "atrium.plugin.contract", .name = "Contract", .description = "ABI 1.2 contract checks", .author = "tests",
    .version_string = "1.2.0", .version = 120, .create = create };

__attribute__((visibility("default"))) const atrium_plugin_entry_t *atrium_plugin_entry(void);
const atrium_plugin_entry_t *atrium_plugin_entry(void) { return &entry; }
"""


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory):
    library = compile_library(tmp_path_factory.mktemp("contract"), "contract", CONTRACT_SOURCE)
    server = AtriumServer(base_config(plugins=[{"library": str(library)}]), tmp_path_factory.mktemp("atrium"))
    server.start()
    yield server
    assert server.stop() == 0, server.log()[-4000:]


def contract_handle(server) -> tuple[HttpJanus, int, int]:
    http = HttpJanus(server.http_url)
    session = create_session(http)
    return http, session, attach(http, session, CONTRACT)["data"]["id"]


def next_event(http: HttpJanus, session: int) -> dict:
    # With maxev=1 a long poll answers with the event itself, as Janus does.
    status, event, _ = http.get(f"{session}?maxev=1", timeout=10)
    assert status == 200 and isinstance(event, dict), event
    return event


@pytest.mark.parametrize("returned, explain, expected", [
    (1, False, ("success", None)),                    # ATRIUM_MESSAGE_REPLY without set_reply
    (2, False, ("ack", None)),                        # ATRIUM_MESSAGE_ACK
    (3, True, ("error", "explained")),                # ATRIUM_MESSAGE_ERROR with its reason
    (-7, False, ("error", "plugin failed (ATRIUM_ERR_LIMIT)")),
    (-7, True, ("error", "explained")),
    (0, False, ("error", "plugin returned 0, which is not a reply code")),
    (99, False, ("error", "plugin returned 99, which is not a reply code")),
])
def test_reply_codes_of_abi_1_2_do_not_collide_with_status_codes(contract_server, returned, explain, expected):
    http, session, handle = contract_handle(contract_server)
    body = {"return": returned, "explain": True} if explain else {"return": returned}
    answer = message(http, session, handle, body)
    kind, reason = expected
    if returned == 1:
        # REPLY with nothing set: the host says so rather than sending an empty success.
        assert answer["janus"] == "error" and answer["error"] == {"code": 462, "reason": "plugin returned a reply without content"}
        return
    assert answer["janus"] == kind, answer
    if kind == "error":
        assert answer["error"] == {"code": 462, "reason": reason}
    if returned in (0, 99):
        assert f"misbehaving: handle_message returned {returned}, which is not a reply code" in contract_server.log()


def test_post_control_runs_every_call_in_order_and_bounds_what_waits(contract_server):
    http, session, handle = contract_handle(contract_server)
    answer = message(http, session, handle, {"post": True})
    # handle_message held [control] while posting, so nothing ran: 65536 wait, the next is refused.
    assert answer["plugindata"]["data"] == {"accepted": 65536, "last": -7, "null_fn": -1, "during_create": -3}
    event = next_event(http, session)
    assert event["sender"] == handle
    assert event["plugindata"]["data"] == {"ran": 65536, "in_order": True}
    # Once they ran, the plugin may post again.
    assert message(http, session, handle, {"post": True})["plugindata"]["data"]["accepted"] == 65536
    assert next_event(http, session)["plugindata"]["data"] == {"ran": 65536, "in_order": True}


def test_calls_posted_before_destroy_run_before_it(tmp_path):
    library = compile_library(tmp_path, "contract", CONTRACT_SOURCE)
    server = AtriumServer(base_config(plugins=[{"library": str(library)}]), tmp_path / "atrium")
    server.start()
    contract_handle(server)
    assert server.stop() == 0, server.log()[-4000:]
    # Shutdown destroys the handle (which posts 1000 calls) and then the plugin.
    assert "destroy: 1000 of 1000 posted calls ran; post now: -3" in server.log(), server.log()[-3000:]


def test_media_calls_from_other_threads_are_checked_then_queued(contract_server):
    http, session, handle = contract_handle(contract_server)
    # From [control], on a live handle that has no PeerConnection yet: the checks that need none
    # answer at once, the rest is queued (and dropped on the media loop, which finds no peer).
    assert message(http, session, handle, {"relay": True})["plugindata"]["data"] == {
        "empty": -1, "oversized": -1, "queued": 0, "rtcp": 0, "keyframe": 0, "remb": 0}
    # From a thread of the plugin, then back to [control] through post_control.
    assert message(http, session, handle, {"thread": True})["janus"] == "ack"
    assert next_event(http, session)["plugindata"]["data"] == {"from": "thread", "relay": 0}
    assert contract_server.alive()


def test_the_group_extension_acts_on_live_handles_only(contract_server):
    http, session, handle = contract_handle(contract_server)
    # A handle with no PeerConnection is in no loop yet (-1); one the host never made is not found.
    assert message(http, session, handle, {"group": 7})["plugindata"]["data"] == {
        "set": 0, "loop": -1, "stranger_set": -2, "stranger_loop": -2, "out": 0}
