"""Headless Chromium that may only use relay candidates (iceTransportPolicy "relay"), with
credentials it asked the TURN plugin for over the Janus API, reaches the EchoTest through
Atrium's own TURN server and decodes its echoed video. Nothing is configured for the peer: the
EchoTest's media address is this machine's own, which the TURN plugin allows by default.
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from conftest import MEDIA_IP, free_port, media_config, require_media_ip, turn_plugin_entry, wait_until
from test_echotest import ECHO, assert_video_decoding, selected_pair
from browser import results, save_artifacts, wait_for


def test_janusjs_echotest_through_atrium_turn(start_atrium, page_server, chromium):  # noqa: F811 - fixtures
    require_media_ip()
    config = media_config()
    port = free_port()
    # The EchoTest is not a meeting (no room to join), so this deployment hands credentials to any
    # session, as an operator running the EchoTest behind TURN would configure it.
    config["plugins"].append(turn_plugin_entry(listen=[MEDIA_IP], udp_port=port, tcp_port=port, relay_addresses=[MEDIA_IP],
                                               min_port=41000, max_port=41999, credentials_need_meeting=False))
    atrium = start_atrium(config, name="turn-chromium")
    query = {"server": atrium.ws_url, "plugin": ECHO, "turn": atrium.http_url}
    driver = chromium("echo")
    try:
        driver.get(f"{page_server}/janusjs-echotest.html?" + urlencode(query))
        wait_for(driver, "echo", "webrtcup", lambda r: r["webrtcup"], timeout=25)
        creds = results(driver)["turnCredentials"]
        server = creds["iceServers"][0]
        assert f"turn:{MEDIA_IP}:{port}?transport=udp" in server["urls"], creds
        assert re.fullmatch(r"\d+:h\d+", server["username"]) and server["credential"], creds
        assert_video_decoding(driver)
        pair = selected_pair(driver)
        assert pair and pair["local"]["type"] == "relay", pair
        assert atrium.metric("atrium_turn_allocations") >= 1
        wait_until(lambda: atrium.metric("atrium_turn_relayed_packets_total") > 100, 10, "100 packets relayed")
        r = results(driver)
        assert r["errors"] == [] and r["janusErrors"] == [], (r["errors"], r["janusErrors"])
        driver.execute_script("window.finish();")
        wait_for(driver, "echo", "destroy", lambda r: r["destroyed"])
        assert atrium.alive()
    except BaseException:
        save_artifacts(chromium, atrium, "echotest-janusjs-turn")
        raise
