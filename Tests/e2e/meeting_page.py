"""The meeting web app driven as a person drives it: one `Person` per browser (create a room, join,
read the tiles, chat), and the configuration the web-app tests start Atrium with. Used by
test_webapp.py and by the tests that run the app across hosts (test_tls.py).
"""
from __future__ import annotations

import math
import struct
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import (ARTIFACTS, ROOT, MEDIA_IP, base_config, chat_plugin_entry, free_port, sfu_plugin_entry,
                      turn_plugin_entry)
from browser import grant_permissions

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
        choose(self.driver, "quality-select", quality)
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
            // Firefox counts no playback-quality frames for a MediaStream, only painted ones.
            frames: (t.querySelector('video').getVideoPlaybackQuality
                      ? t.querySelector('video').getVideoPlaybackQuality().totalVideoFrames : 0)
                    || t.querySelector('video').mozPaintedFrames || 0,
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


def choose(driver, element_id: str, value: str):
    """Picks an option of a <select>: selenium's Select for Chromium, Firefox's own (firefox.py)."""
    if hasattr(driver, "choose"):
        driver.choose(element_id, value)
    else:
        Select(driver.find_element(By.ID, element_id)).select_by_value(value)


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
