"""The Swift example of docs/plugin-guide.md (Plugins/Examples/MyPlugin) in the real server.

`swift build` builds the guide's two files into libatrium_myplugin.so beside the host; this runs the
session the guide shows (section 5.3) against it, so the example is compiled and behaves as written.
"""
from __future__ import annotations

import pytest

from conftest import BUILD_DIR, AtriumServer, base_config, require_build
from janus_client import HttpJanus, WsJanus

MYPLUGIN = "example.plugin.myplugin"


def myplugin_entry(config: dict) -> dict:
    require_build(BUILD_DIR / "libatrium_myplugin.so")
    return {"library": "libatrium_myplugin.so", "config": config}


def plugin_data(reply: dict) -> dict:
    assert reply.get("plugindata", {}).get("plugin") == MYPLUGIN, reply
    return reply["plugindata"]["data"]


def test_the_guides_session(start_atrium):
    server = start_atrium(base_config(plugins=[myplugin_entry({"prefix": "> "})]))
    with WsJanus(server.ws_url) as ws:
        session = ws.request({"janus": "create", "transaction": "c"})["data"]["id"]
        handle = ws.request({"janus": "attach", "session_id": session, "plugin": MYPLUGIN,
                             "transaction": "a"})["data"]["id"]
        address = {"session_id": session, "handle_id": handle}

        reply = ws.request({"janus": "message", "transaction": "m1", **address,
                            "body": {"request": "echo", "text": "hi"}})
        assert reply["janus"] == "success", reply
        assert plugin_data(reply) == {"myplugin": "echo", "text": "> hi"}

        got = ws.request({"janus": "message", "transaction": "m2", **address,
                          "body": {"request": "echo_event", "text": "yo"}})
        assert got["janus"] == "ack" and got.get("hint") == "the echo follows as an event", got
        event = ws.recv_until(lambda m: isinstance(m, dict) and m.get("janus") == "event")[-1]
        assert event["transaction"] == "m2", event
        assert plugin_data(event) == {"myplugin": "echo", "text": "> yo"}

        reply = ws.request({"janus": "message", "transaction": "m3", **address, "body": {"request": "echo"}})
        assert plugin_data(reply) == {"myplugin": "error", "error": "text should be a string"}

    # describe() answers handle_info with the number of requests that handle sent; metricsText()
    # adds the plugin's counter to /metrics.
    with HttpJanus(server.http_url) as http:
        session = http.post(None, {"janus": "create", "transaction": "c"})[1]["data"]["id"]
        handle = http.post(session, {"janus": "attach", "plugin": MYPLUGIN, "transaction": "a"})[1]["data"]["id"]
        for n in range(2):
            http.post(f"{session}/{handle}", {"janus": "message", "transaction": f"h{n}",
                                              "body": {"request": "echo", "text": str(n)}})
        info = server.admin({"janus": "handle_info", "session_id": session, "handle_id": handle})
        assert info["info"]["plugin_specific"] == {"requests": 2}, info
    assert server.metric("atrium_myplugin_requests_total") == 5


@pytest.mark.parametrize("config, error", [
    ({"prefix": 3}, "config.prefix: expected a string"),
    ({"suffix": "!"}, "config.suffix: unknown key; expected: prefix"),
])
def test_a_bad_configuration_stops_the_start(tmp_path, config, error):
    server = AtriumServer(base_config(plugins=[myplugin_entry(config)]), tmp_path)
    with pytest.raises(AssertionError, match="exited with"):
        server.start()
    assert error in server.log()
