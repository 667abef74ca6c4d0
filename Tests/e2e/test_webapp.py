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
import math
import struct
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import (ARTIFACTS, ROOT, MEDIA_IP, base_config, chat_plugin_entry, free_port, require_media_ip,
                      sfu_plugin_entry, turn_plugin_entry)
from browser import grant_permissions, save_artifacts

WEB_ROOT = ROOT / "web"
STEP = 20.0  # seconds any one step may take
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def recorder_plugin_entry(**config) -> dict:
    return {"library": "libatrium_recorder.so", "aliases": [], "enabled": True, "optional": False, "config": config}


def webapp_config(tmp: Path, *, recorder: bool = True, turn: bool = True) -> dict:
    """Chat, SFU (with its default demo rooms), and optionally TURN and the Recorder; the web app
    from the source tree."""
    plugins = [chat_plugin_entry(), sfu_plugin_entry()]
    if turn:
        port = free_port()
        plugins.append(turn_plugin_entry(listen=[MEDIA_IP], udp_port=port, tcp_port=port, relay_addresses=[MEDIA_IP],
                                         min_port=42000, max_port=42999))
    if recorder:
        plugins.append(recorder_plugin_entry(directory=str(tmp / "recordings")))
    config = base_config(plugins)
    config["http"]["web_root"] = str(WEB_ROOT)
    return config


def sfu_room_of(link_id: str) -> int:
    """The SFU room number a link id names (web/js/room-id.js roomKeys: its top 52 of 180 bits)."""
    n = 0
    for c in link_id:
        n = (n << 5) | ALPHABET.index(c)
    return (n >> 128) or 1


# --------------------------------------------------------------------------------------------
# Driving one page

class Person:
    """One browser and what a person does with the page."""

    def __init__(self, name: str, driver, base: str):
        self.name = name
        self.driver = driver
        self.base = base

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, what: str, script: str, *args, timeout: float = STEP):
        """Polls a JS expression (a `return ...` script) until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.js(script, *args)
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for {what} (last: {last!r})\n"
                             f"{self.page_messages()}")

    def page_messages(self) -> str:
        return self.js("""
            const m = window.atriumDebug && window.atriumDebug.meeting;
            const inner = m ? {state: m.state, self: m.selfId, subscribed: [...m._subscribed], streams: (m._subStreams || []).map(s => [s.mid, s.active, s.feed_id]),
                people: [...m.participants.values()].map(p => [p.id, p.display, p.publishing, p.stream.getTracks().map(t => t.kind + ':' + t.readyState)]),
                sub: m.subPC && [m.subPC.signalingState, m.subPC.connectionState, m.subPC.getTransceivers().map(t => [t.mid, t.currentDirection])],
                pub: m.pubPC && m.pubPC.connectionState} : null;
            const t = (id) => { const e = document.getElementById(id); return e && !e.hidden ? e.innerText : null; };
            return JSON.stringify({url: location.href, joinError: t('join-error'), mediaError: t('media-error'),
                                   banner: t('banner'), ended: t('ended'), meeting: inner,
                                   chat: [...document.querySelectorAll('#chat-log li')].map(l => l.innerText).slice(-8)});""")

    def click(self, element_id: str):
        self.driver.find_element(By.ID, element_id).click()

    def create_room(self) -> str:
        self.driver.get(self.base + "/")
        self.click("create-room")
        self.wait("the room page", "return /\\/r\\/[0-9a-z]{36}$/.test(location.pathname)")
        return self.driver.current_url

    def open_and_join(self, link: str | None = None, quality: str = "low"):
        if link:
            self.driver.get(link)
        self.wait("the preview", "const v = document.getElementById('preview'); return v.srcObject && v.videoWidth > 0")
        name = self.driver.find_element(By.ID, "display-name")
        name.clear()
        name.send_keys(self.name)
        Select(self.driver.find_element(By.ID, "quality-select")).select_by_value(quality)
        self.wait("the low-quality preview", "return document.getElementById('preview').videoWidth <= 320")
        self.click("join-button")
        self.wait("the meeting", "return !document.getElementById('meeting').hidden")

    def copy_link(self) -> str:
        """Presses "Copy link" and reads what it put on the clipboard."""
        # grantPermissions refuses every permission it does not list: camera and microphone stay.
        grant_permissions(self.driver, self.base,
                          ["clipboardReadWrite", "clipboardSanitizedWrite", "videoCapture", "audioCapture"])
        self.click("copy-link")
        self.wait("the copied confirmation", "return document.getElementById('copy-status').textContent === 'Link copied'")
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, (e) => done('clipboard failed: ' + e));")

    def tiles(self) -> list[dict]:
        return self.js("""return [...document.querySelectorAll('#grid .tile')].map(t => ({
            id: t.dataset.id, name: t.querySelector('.name').textContent, muted: t.dataset.muted === 'true',
            mutedMarkerShown: !t.querySelector('.mic-state').hidden, video: t.dataset.video === 'true',
            talking: t.classList.contains('talking'), screen: t.classList.contains('screen'),
            width: t.querySelector('video').videoWidth,
            frames: (t.querySelector('video').getVideoPlaybackQuality
                      ? t.querySelector('video').getVideoPlaybackQuality().totalVideoFrames : 0),
            playing: !t.querySelector('video').paused && t.querySelector('video').readyState >= 2}))""")

    def wait_tiles(self, names: list[str], timeout: float = STEP) -> list[dict]:
        want = sorted([f"{self.name} (you)"] + [n for n in names if n != self.name])
        deadline = time.monotonic() + timeout
        tiles = []
        while time.monotonic() < deadline:
            tiles = self.tiles()
            if sorted(t["name"] for t in tiles) == want:
                return tiles
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: tiles {[t['name'] for t in tiles]}, expected {want}\n{self.page_messages()}")

    def wait_remote_video(self, names: list[str], timeout: float = 30.0) -> dict:
        """Every remote tile named in `names` plays video whose decoded frame count grows."""
        others = [n for n in names if n != self.name]
        deadline = time.monotonic() + timeout
        first: dict = {}
        tiles: list = []
        while time.monotonic() < deadline:
            tiles = {t["name"]: t for t in self.tiles()}
            ready = all(n in tiles and tiles[n]["playing"] and tiles[n]["width"] > 0 and tiles[n]["frames"] > 0 for n in others)
            if ready and not first:
                first = {n: tiles[n]["frames"] for n in others}
            elif ready and all(tiles[n]["frames"] > first[n] for n in others):
                return tiles
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: remote video not playing for all of {others}: {tiles}\n{self.page_messages()}")

    def decoder_stats(self) -> dict:
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.atriumDebug.stats().then(done, (e) => done({error: String(e)}));")

    def chat_texts(self) -> list[str]:
        return self.js("return [...document.querySelectorAll('#chat-log li.chat-msg .text')].map(e => e.textContent)")

    def say(self, text: str):
        box = self.driver.find_element(By.ID, "chat-input")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def resize(self, width: int, height: int, phone: bool = False):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2 if phone else 1, "mobile": phone})

    def screenshot(self, label: str, width: int, height: int, phone: bool = False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.resize(width, height, phone)
        # Layout, and a frame or two of video at the new size: a screenshot for people to look at,
        # with nothing in it a test could wait on.
        time.sleep(1.2)
        path = ARTIFACTS / f"webapp-{label}.png"
        self.driver.save_screenshot(str(path))
        return path

    def reset_size(self):
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def start_people(chromium, names: list[str], base: str, args: dict | None = None) -> list[Person]:  # noqa: F811
    """One browser per name; `args` gives some of them extra Chromium switches."""
    args = args or {}
    with ThreadPoolExecutor(len(names)) as pool:
        drivers = list(pool.map(lambda n: chromium(n, args.get(n, ())), names))
    return [Person(n, d, base) for n, d in zip(names, drivers)]


def speech_like_wav(path: Path, seconds: float = 4.0) -> Path:
    """A loud 220 Hz tone switched on and off four times a second, like syllables: Chromium's own
    fake microphone only beeps briefly once a second, which never averages to "talking"."""
    rate = 48000
    frames = bytearray()
    for i in range(int(rate * seconds)):
        on = (i // (rate // 8)) % 2 == 0
        value = int(12000 * math.sin(2 * math.pi * 220 * i / rate)) if on else 0
        frames += struct.pack("<h", value)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def join_all(people: list[Person], link: str):
    with ThreadPoolExecutor(len(people)) as pool:
        list(pool.map(lambda p: p.open_and_join(link), people))


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
    assert config == {"janus_path": "/janus", "websocket_port": atrium.ws_port}
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
