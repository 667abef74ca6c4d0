"""The meeting web app (web/), served by Atrium on its HTTP port, driven through its UI only.

Headless Chromium with fake camera and microphone (test_janusjs's `chromium` fixture), in the e2e
network namespace. Every browser does what a person does: the first opens /, presses "Create a
room", types a name, picks the low video quality (320x240, so four browsers fit on two cores),
joins and presses "Copy link"; the others open the copied link and join the same way. The test
then reads the page: tiles and their names, each remote tile's <video> playing decoded frames
(videoWidth and getVideoPlaybackQuality().totalVideoFrames growing), the chat log, the muted
marker on tiles, the recording indicator, messages. The one thing a page does not show is per-feed
decoder stats, which `window.atriumDebug.stats()` gives from getStats (framesDecoded) as a second
witness; and `atriumDebug.dropConnection()` closes the page's connection the way a network failure
does, to see it reconnect.

Screenshots at desktop (1280x800) and phone (390x844) sizes are written to
Tests/e2e/artifacts/webapp-*.png on every run.
"""
from __future__ import annotations

import http.client
import json
import time

import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import ARTIFACTS, require_media_ip
from browser import save_artifacts
from meeting_page import Person, join_all, sfu_room_of, speech_like_wav, start_people, webapp_config


# --------------------------------------------------------------------------------------------
# Without a browser: what the HTTP port serves

def test_pages_and_files_are_served(start_atrium, tmp_path):
    atrium = start_atrium(webapp_config(tmp_path, recorder=False, turn=False), name="webapp-files")
    home = requests.get(f"{atrium.base}/", timeout=5)
    assert home.status_code == 200 and home.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Create a room" in home.text and "script-src 'self'" in home.headers["Content-Security-Policy"]
    room = requests.get(f"{atrium.base}/r/{'a' * 36}", timeout=5)
    assert room.status_code == 200 and 'id="join-button"' in room.text
    for path, kind in [("/js/atrium-client.js", "text/javascript"), ("/css/app.css", "text/css"),
                       ("/favicon.svg", "image/svg+xml")]:
        r = requests.get(atrium.base + path, timeout=5)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind), (path, r.headers)
        assert r.headers["Cache-Control"] == "no-cache" and r.headers["ETag"]
        again = requests.get(atrium.base + path, headers={"If-None-Match": r.headers["ETag"]}, timeout=5)
        assert again.status_code == 304 and again.content == b""
    config = requests.get(f"{atrium.base}/web-config.json", timeout=5).json()
    assert config == {"janus_path": "/janus", "websocket_port": atrium.ws_port, "websocket_path": None}
    # Raw paths, as a browser would never send them: nothing outside web/ comes back.
    for raw in ["/../config.json", "/js/../../Package.swift", "/%2e%2e/Package.swift", "/..%2fPackage.swift",
                "/.gitignore", "/r/../index.html", "/js/%00.js"]:
        conn = http.client.HTTPConnection("127.0.0.1", atrium.http_port, timeout=5)
        conn.request("GET", raw)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 404 and b"swift-tools-version" not in body, (raw, response.status)
    # The Janus API and the others are where they were.
    assert requests.get(f"{atrium.http_url}/info", timeout=5).json()["janus"] == "server_info"
    assert requests.post(f"{atrium.base}/", data="{}", timeout=5).status_code == 404


# --------------------------------------------------------------------------------------------
# Two, then four people

def test_two_people_meet(start_atrium, chromium, tmp_path):  # noqa: F811
    require_media_ip()
    atrium = start_atrium(webapp_config(tmp_path), name="webapp-two")
    voice = speech_like_wav(tmp_path / "voice.wav")
    alice, bob = start_people(chromium, ["Alice", "Bob"], atrium.base,
                              {"Bob": (f"--use-file-for-fake-audio-capture={voice}",)})
    names = ["Alice", "Bob"]
    started = time.monotonic()
    try:
        link = alice.create_room()
        alice.open_and_join()
        copied = alice.copy_link()
        assert copied == link, (copied, link)
        assert alice.js("return document.getElementById('invite').hidden") is False, "alone: the invite shows"
        bob.open_and_join(copied)

        for p in (alice, bob):
            p.wait_tiles(names)
            tiles = p.wait_remote_video(names)
            other = next(n for n in names if n != p.name)
            assert tiles[other]["width"] <= 320, tiles  # the low quality both chose
            stats = p.decoder_stats()
            assert any(s.get("video", {}).get("framesDecoded", 0) > 0 for s in stats.values()), stats
            assert p.js("return window.atriumDebug.iceServers().length") >= 1, "TURN credentials were fetched"
        assert alice.js("return document.getElementById('invite').hidden") is True

        # Bob talks (his microphone plays a voice-like tone): his tile lights up for Alice, hers
        # (the fake microphone's short beeps) does not for him.
        alice.wait("Bob's tile marked as speaking", "return [...document.querySelectorAll('#grid .tile.talking')].map(t => t.dataset.display).join() === 'Bob'")
        assert not any(t["talking"] for t in bob.tiles() if t["name"] == "Alice"), bob.tiles()

        # Chat both ways, with join notices.
        alice.say("hello from Alice")
        bob.wait("Alice's message", "return [...document.querySelectorAll('#chat-log .text')].some(e => e.textContent === 'hello from Alice')")
        bob.say("hi Alice")
        alice.wait("Bob's message", "return [...document.querySelectorAll('#chat-log .text')].some(e => e.textContent === 'hi Alice')")
        assert alice.wait("a join notice", "return [...document.querySelectorAll('#chat-log .notice')].some(e => e.textContent === 'Bob joined')")

        # A private message reaches only its addressee (and is marked private).
        Select(bob.driver.find_element(By.ID, "chat-to")).select_by_value("Alice")
        bob.say("just for you")
        alice.wait("the private message", "return [...document.querySelectorAll('#chat-log li.private .text')].some(e => e.textContent === 'just for you')")

        # Mute and camera off show on the other's tile.
        alice.click("toggle-mic")
        alice.click("toggle-cam")
        bob.wait("Alice muted on Bob's screen",
                 "return [...document.querySelectorAll('#grid .tile')].some(t => t.dataset.display === 'Alice' && t.dataset.muted === 'true' && !t.querySelector('.mic-state').hidden && t.dataset.video === 'false')")
        alice.click("toggle-cam")
        bob.wait("Alice's camera back", "return [...document.querySelectorAll('#grid .tile')].some(t => t.dataset.display === 'Alice' && t.dataset.video === 'true')")

        # Screen sharing (Chromium's fake screen, 800 pixels wide) replaces Alice's camera for Bob.
        alice.click("toggle-screen")
        bob.wait("Alice's screen on Bob's tile", "const t = [...document.querySelectorAll('#grid .tile')].find(t => t.dataset.display === 'Alice'); return t && t.classList.contains('screen') && t.querySelector('video').videoWidth > 320")
        alice.click("toggle-screen")
        bob.wait("Alice's camera again", "const t = [...document.querySelectorAll('#grid .tile')].find(t => t.dataset.display === 'Alice'); return t && !t.classList.contains('screen') && t.querySelector('video').videoWidth === 320")

        # Recording: the indicator shows for both, and the Recorder writes the room.
        alice.click("toggle-record")
        for p in (alice, bob):
            p.wait("the recording indicator", "return !document.getElementById('recording-indicator').hidden")
        room_dir = tmp_path / "recordings" / str(sfu_room_of(link.rsplit("/", 1)[1]))  # the chat room's id too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list(room_dir.glob("*/participant-*.webm")):
            time.sleep(0.2)
        assert list(room_dir.glob("*/participant-*.webm")), f"nothing recorded in {room_dir}"

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        alice.screenshot("two-desktop", 1280, 800)
        bob.screenshot("two-phone", 390, 844, phone=True)
        bob.click("toggle-chat")
        bob.screenshot("two-phone-chat", 390, 844, phone=True)
        bob.click("chat-close")
        bob.reset_size()

        alice.click("toggle-record")
        for p in (alice, bob):
            p.wait("the recording indicator gone", "return document.getElementById('recording-indicator').hidden")
        transcript = [json.loads(line) for line in next(room_dir.glob("*/chat.jsonl")).read_text().splitlines()]
        assert [(m["from"]["display"], m.get("text")) for m in transcript] == [("Alice", "started recording")], transcript
        alice.click("toggle-mic")
        bob.wait("Alice unmuted", "return [...document.querySelectorAll('#grid .tile')].some(t => t.dataset.display === 'Alice' && t.dataset.muted === 'false')")

        # A network failure on Bob's side: Alice loses his tile, he reconnects, video flows again.
        bob.js("window.atriumDebug.dropConnection()")
        bob.wait("the reconnecting banner", "return !document.getElementById('banner').hidden", timeout=5)
        alice.wait_tiles(names, timeout=30)
        bob.wait("the banner gone", "return document.getElementById('banner').hidden", timeout=30)
        for p in (alice, bob):
            p.wait_remote_video(names)

        # Leaving removes the tile.
        bob.click("leave")
        bob.wait("the left page", "return !document.getElementById('ended').hidden")
        alice.wait_tiles(["Alice"])
        alice.wait("Bob's leave notice", "return [...document.querySelectorAll('#chat-log .notice')].some(e => e.textContent === 'Bob left')")

        # The room was made to go with its last person: once Alice leaves too, it is gone.
        room = sfu_room_of(link.rsplit("/", 1)[1])
        exists = {"janus": "message_plugin", "plugin": "atrium.plugin.sfu", "request": {"request": "exists", "room": room}}
        assert atrium.admin(exists)["response"]["exists"] is True
        alice.click("leave")
        alice.wait("the left page", "return !document.getElementById('ended').hidden")
        deadline = time.monotonic() + 5
        while atrium.admin(exists)["response"]["exists"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert atrium.admin(exists)["response"]["exists"] is False, "the SFU room outlived its last participant"
    except BaseException:
        save_artifacts(chromium, atrium, "webapp-two")
        raise
    finally:
        print(f"two people: {time.monotonic() - started:.1f}s")


def test_four_people_meet(start_atrium, chromium, tmp_path):  # noqa: F811
    require_media_ip()
    atrium = start_atrium(webapp_config(tmp_path, turn=False), name="webapp-four")
    names = ["Alice", "Bob", "Carol", "Dave"]
    people = start_people(chromium, names, atrium.base)
    alice, bob, carol, dave = people
    started = time.monotonic()
    try:
        alice.create_room()
        alice.open_and_join()
        # Recording from the start: those who join later see the indicator too (they ask the Recorder).
        alice.click("toggle-record")
        alice.wait("the recording indicator", "return !document.getElementById('recording-indicator').hidden")
        link = alice.copy_link()
        join_all([bob, carol, dave], link)
        for p in people:
            p.wait_tiles(names, timeout=30)
        for p in people:
            p.wait_remote_video(names, timeout=40)
        for p in (bob, carol, dave):
            p.wait("the recording indicator", "return !document.getElementById('recording-indicator').hidden")

        dave.say("hello everyone, Dave here")
        for p in (alice, bob, carol):
            p.wait("Dave's message", "return [...document.querySelectorAll('#chat-log .text')].some(e => e.textContent === 'hello everyone, Dave here')")

        carol.click("toggle-mic")
        for p in (alice, bob, dave):
            p.wait("Carol muted", "return [...document.querySelectorAll('#grid .tile')].some(t => t.dataset.display === 'Carol' && t.dataset.muted === 'true' && !t.querySelector('.mic-state').hidden)")

        alice.screenshot("four-desktop", 1280, 800)
        bob.screenshot("four-phone", 390, 844, phone=True)
        bob.reset_size()

        dave.click("leave")
        for p in (alice, bob, carol):
            p.wait_tiles(["Alice", "Bob", "Carol"])
    except BaseException:
        save_artifacts(chromium, atrium, "webapp-four")
        raise
    finally:
        print(f"four people: {time.monotonic() - started:.1f}s")


def test_two_people_over_http_long_poll(start_atrium, chromium, tmp_path):  # noqa: F811
    """With the WebSocket transport off, /web-config.json says so and the pages use HTTP long poll."""
    require_media_ip()
    config = webapp_config(tmp_path, recorder=False, turn=False)
    config["websocket"]["enabled"] = False
    atrium = start_atrium(config, name="webapp-http")
    names = ["Gina", "Hal"]
    gina, hal = start_people(chromium, names, atrium.base)
    try:
        gina.create_room()
        gina.open_and_join()
        hal.open_and_join(gina.copy_link())
        for p in (gina, hal):
            assert p.js("return window.atriumDebug.meeting.session.transport") == "http"
            p.wait_tiles(names)
            p.wait_remote_video(names)
        hal.say("over long poll")
        gina.wait("Hal's message", "return [...document.querySelectorAll('#chat-log .text')].some(e => e.textContent === 'over long poll')")
        hal.click("leave")
        gina.wait_tiles(["Gina"])
    except BaseException:
        save_artifacts(chromium, atrium, "webapp-http")
        raise


# --------------------------------------------------------------------------------------------
# What goes wrong, said plainly

def test_landing_and_lobby_screenshots_and_bad_links(start_atrium, chromium, tmp_path):  # noqa: F811
    atrium = start_atrium(webapp_config(tmp_path, recorder=False, turn=False), name="webapp-landing")
    (p,) = start_people(chromium, ["Erin"], atrium.base)
    try:
        p.driver.get(atrium.base + "/")
        p.screenshot("landing-desktop", 1280, 800)
        p.screenshot("landing-phone", 390, 844, phone=True)
        p.reset_size()
        # By keyboard alone: Tab reaches "Create a room" (past the skip link and the logo) and
        # Enter presses it.
        for _ in range(6):
            if p.js("return document.activeElement.id") == "create-room":
                break
            ActionChains(p.driver).send_keys(Keys.TAB).perform()
        assert p.js("return document.activeElement.id") == "create-room"
        assert p.js("return getComputedStyle(document.activeElement).boxShadow") != "none", "no visible focus"
        ActionChains(p.driver).send_keys(Keys.ENTER).perform()
        p.wait("a new room", "return /^\\/r\\/[0-9a-z]{36}$/.test(location.pathname)")
        p.driver.get(atrium.base + "/")
        # The join field takes a pasted link or a code, and says when it is neither.
        box = p.driver.find_element(By.ID, "join-input")
        box.send_keys("not a link")
        box.send_keys(Keys.ENTER)
        p.wait("the error", "return document.getElementById('join-error').textContent.includes('not an Atrium room')")
        box.clear()
        code = "k" * 36
        box.send_keys(f"  {atrium.base}/r/{code.upper()}  ")
        box.send_keys(Keys.ENTER)
        p.wait("the room page", "return location.pathname === arguments[0]", f"/r/{code}")
        p.wait("the preview", "return document.getElementById('preview').videoWidth > 0")
        p.screenshot("lobby-desktop", 1280, 800)
        # Loaded on a phone, the lobby keeps the Join button on the first screen.
        p.screenshot("lobby-phone-resized", 390, 844, phone=True)
        p.driver.refresh()
        p.wait("the preview", "return document.getElementById('preview').videoWidth > 0")
        p.screenshot("lobby-phone", 390, 844, phone=True)
        assert p.js("return document.getElementById('join-button').getBoundingClientRect().bottom <= innerHeight"), \
            "the Join button is below the fold on a phone"
        p.reset_size()
        p.driver.get(f"{atrium.base}/r/short")
        p.wait("the bad link page", "return !document.getElementById('ended').hidden && document.getElementById('ended-title').textContent === 'This is not a room link'")
    except BaseException:
        save_artifacts(chromium, atrium, "webapp-landing")
        raise


def test_denied_camera_and_unreachable_server(start_atrium, chromium, tmp_path):  # noqa: F811
    atrium = start_atrium(webapp_config(tmp_path, recorder=False, turn=False), name="webapp-errors")
    # The fake UI answering "deny" is a person refusing the browser's camera and microphone prompt.
    p = Person("Frank", chromium("Frank", ("--use-fake-ui-for-media-stream=deny",)), atrium.base)
    try:
        link = f"{atrium.base}/r/{'m' * 36}"
        p.driver.get(link)
        text = p.wait("the permission message", "const e = document.getElementById('media-error'); return !e.hidden && e.innerText")
        assert "blocked" in text and "Try again" in text, text
        p.screenshot("denied-desktop", 1280, 800)
        p.resize(390, 844, phone=True)
        # Joining without camera and microphone still works, then the server goes away.
        atrium.stop()
        name = p.driver.find_element(By.ID, "display-name")
        name.send_keys("Frank")
        p.click("join-button")
        text = p.wait("the unreachable message", "const e = document.getElementById('join-error'); return !e.hidden && e.innerText", timeout=30)
        assert "Can't reach the Atrium server" in text, text
        p.screenshot("unreachable-phone", 390, 844, phone=True)
    except BaseException:
        save_artifacts(chromium, atrium, "webapp-errors")
        raise


def test_a_full_room_says_so(start_atrium, chromium, tmp_path):  # noqa: F811
    """The room was made (here by the test, through the API) for one publisher: the second person
    is told the room is full."""
    require_media_ip()
    atrium = start_atrium(webapp_config(tmp_path, recorder=False, turn=False), name="webapp-full")
    link_id = "f" * 36
    session = requests.post(atrium.http_url, json={"janus": "create", "transaction": "c"}, timeout=5).json()["data"]["id"]
    handle = requests.post(f"{atrium.http_url}/{session}", json={"janus": "attach", "plugin": "atrium.plugin.sfu", "transaction": "a"},
                           timeout=5).json()["data"]["id"]
    created = requests.post(f"{atrium.http_url}/{session}/{handle}", timeout=5, json={
        "janus": "message", "transaction": "m", "body": {
            "request": "create", "room": sfu_room_of(link_id), "pin": link_id, "secret": link_id, "is_private": True,
            "publishers": 1, "notify_joining": True}}).json()
    assert created["plugindata"]["data"]["videoroom"] == "created", created
    alice, bob = start_people(chromium, ["Alice", "Bob"], atrium.base)
    try:
        alice.open_and_join(f"{atrium.base}/r/{link_id}")
        bob.driver.get(f"{atrium.base}/r/{link_id}")
        bob.wait("the preview", "return document.getElementById('preview').videoWidth > 0")
        bob.driver.find_element(By.ID, "display-name").send_keys("Bob")
        bob.click("join-button")
        text = bob.wait("the full message", "const e = document.getElementById('join-error'); return !e.hidden && e.innerText")
        assert "This room is full" in text, text
        alice.wait_tiles(["Alice"])
    except BaseException:
        save_artifacts(chromium, atrium, "webapp-full")
        raise
