"""Firefox ESR in the meeting web app, with Chromium on the other side.

Atrium (HTTPS, self-signed) in the server host; Firefox (firefox.py, Marionette) and Chromium
(chromedriver) in the browsers host, which has a default route because Firefox gathers no
candidates without one (remote_meeting.py, hosts.py). Firefox offers every section after the first
as `bundle-only` with port 0; before Atrium took those as accepted, its video never reached
anyone and Chromium showed the Firefox participant as an avatar.
"""
from __future__ import annotations

import re

import pytest
from selenium.webdriver.common.by import By

from firefox import Firefox
from meeting_page import Person
from remote_meeting import RemoteAtrium, RemoteChromium


def sees_and_is_seen(people: list[Person]):
    names = [p.name for p in people]
    for person in people:
        person.wait_tiles(names)
        person.wait_remote_video(names)


@pytest.mark.parametrize("lan", ["routed"], indirect=True)
def test_firefox_and_chromium_meet_whoever_makes_the_room_and_viewers_watch_firefox(lan, tmp_path):
    server, browsers, address = lan
    atrium = RemoteAtrium(server, tmp_path, {"self_signed": True}, address)
    spki = re.search(r"spki_sha256=(\S+)", atrium.log())
    assert spki, atrium.log()
    chromium = RemoteChromium(browsers, tmp_path, [spki.group(1)])
    firefox = Firefox(browsers, tmp_path, "Fox")
    try:
        fox = Person("Fox", firefox, atrium.base)
        alice = chromium.person("Alice", atrium.base)

        # Firefox makes the room and publishes; Chromium joins: each sees the other.
        link = fox.create_room()
        assert fox.js("return window.isSecureContext") is True
        fox.open_and_join()
        alice.open_and_join(link)
        sees_and_is_seen([fox, alice])
        stats = alice.decoder_stats()
        assert any(s.get("video", {}).get("framesDecoded", 0) > 0 for s in stats.values()), stats

        # A Chromium viewer on the stream link sees Firefox's video (and Alice's), sending nothing.
        stream_link = fox.wait("the stream link", "return document.getElementById('stream-link').value")
        vera = chromium.person("Vera", atrium.base)
        vera.driver.get(stream_link)
        vera.wait("the watch lobby", "return document.getElementById('join-button').textContent === 'Watch'")
        vera.driver.find_element(By.ID, "display-name").send_keys("Vera")
        vera.click("join-button")
        vera.wait("the stream", "return !document.getElementById('meeting').hidden")
        vera.wait_remote_video(["Fox", "Alice"])
        assert vera.js("return window.atriumDebug.meeting.localStream.getTracks().length") == 0

        # The other way round: Chromium makes a new room, Firefox joins it.
        link = alice.create_room()
        alice.open_and_join()
        fox.open_and_join(link)
        sees_and_is_seen([alice, fox])
    finally:
        firefox.quit()
        chromium.close()
        atrium.stop()
