"""Firefox ESR in the meeting web app, with Chromium on the other side.

Atrium (HTTPS, self-signed) in the server host; Firefox (firefox.py, Marionette) and Chromium
(chromedriver) in the browsers host, which has a default route because Firefox gathers no
candidates without one (remote_meeting.py, hosts.py). Firefox offers every section after the first
as `bundle-only` with port 0; before Atrium took those as accepted, its video never reached
anyone and Chromium showed the Firefox participant as an avatar.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from browser import janus_demo_folder
from conftest import echotest_plugin_entry, stop_process, wait_until
from firefox import Firefox
from hosts import Host
from meeting_page import Person
from remote_meeting import SERVER_IP, RemoteAtrium, RemoteChromium

DEMO_PORT = 8000
MEDIA_WAIT = 25.0


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


class DemoSite:
    """Janus's own demo pages (janus-demos) served over HTTPS from the server host with the
    certificate Atrium made, their settings.js pointing at Atrium's Janus API. (Atrium's web app
    port would refuse their inline scripts: its pages' Content-Security-Policy allows none.)"""

    SERVE = """
import functools, http.server, ssl, sys
root, certificate, key, address, port = sys.argv[1:6]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
httpd = http.server.ThreadingHTTPServer((address, int(port)), functools.partial(Quiet, directory=root))
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(certificate, key)
httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
print("serving", flush=True)
httpd.serve_forever()
"""

    def __init__(self, server: Host, tmp: Path, janus_url: str, certificate: Path, key: Path):
        site = janus_demo_folder(tmp / "demos", janus_url)
        self.proc = server.popen([sys.executable, "-c", self.SERVE, str(site), str(certificate), str(key), SERVER_IP,
                                  str(DEMO_PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout.readline().strip() == "serving", self.proc.stdout.read()
        self.base = f"https://{SERVER_IP}:{DEMO_PORT}"

    def stop(self):
        stop_process(self.proc)


DEMO_STATE = """
const videos = (selector) => [...document.querySelectorAll(selector)].map(v => ({width: v.videoWidth, time: v.currentTime, paused: v.paused}));
return {local: videos('#videoleft video, #videolocal video'), remote: videos('#videoright video, [id^=videoremote] video'),
        alerts: [...document.querySelectorAll('.bootbox .bootbox-body')].map(e => e.textContent)};
"""


def remote_video_advances(driver, who: str):
    """A remote <video> of the demo page plays and its time moves on; no alert on the page."""
    first: dict = {}

    def moving() -> bool:
        state = driver.execute_script(DEMO_STATE)
        assert not state["alerts"], f"{who}: the demo shows an alert: {state['alerts']}"
        playing = [i for i, v in enumerate(state["remote"]) if v["width"] > 0 and not v["paused"]]
        if not first:
            first.update({i: state["remote"][i]["time"] for i in playing})
            return False
        return any(state["remote"][i]["time"] > t for i, t in first.items() if i < len(state["remote"]))
    wait_until(moving, MEDIA_WAIT, f"{who}: a remote video of the demo playing and advancing")


@pytest.mark.parametrize("lan", ["routed"], indirect=True)
def test_janus_echotest_and_videoroom_demos_in_firefox(lan, tmp_path):
    server, browsers, address = lan
    tls = {"self_signed": True, "certificate_file": str(tmp_path / "self.pem"), "key_file": str(tmp_path / "self.key")}
    # Room 1234, as Debian's janus.plugin.videoroom.jcfg has it: the demo joins it by number.
    demo_room = {"room": 1234, "description": "Demo Room", "publishers": 6, "bitrate": 128000, "fir_freq": 10}
    atrium = RemoteAtrium(server, tmp_path, tls, address, extra_plugins=[echotest_plugin_entry()], sfu_rooms=[demo_room])
    spki = re.search(r"spki_sha256=(\S+)", atrium.log())
    assert spki, atrium.log()
    site = DemoSite(server, tmp_path, f"{atrium.base}/janus", tmp_path / "self.pem", tmp_path / "self.key")
    firefox = Firefox(browsers, tmp_path, "Fox")
    chromium = RemoteChromium(browsers, tmp_path, [spki.group(1)])
    try:
        # EchoTest: what Firefox sends comes back to it.
        firefox.get(f"{site.base}/echotest.html")
        wait_until(lambda: firefox.execute_script("return !!document.getElementById('start') && typeof Janus !== 'undefined'"),
                   15, "the echotest page")
        firefox.find_element("id", "start").click()
        remote_video_advances(firefox, "Firefox on echotest.html")

        # VideoRoom: Firefox and Chromium in room 1234, each playing the other's video.
        chrome = chromium.person("chrome", atrium.base).driver
        for name, driver in (("fox", firefox), ("chrome", chrome)):
            driver.get(f"{site.base}/videoroomtest.html")
            wait_until(lambda: driver.execute_script("return !!document.getElementById('start') && typeof Janus !== 'undefined'"),
                       15, f"{name}: the videoroom page")
            driver.find_element(By.ID, "start").click()
            wait_until(lambda: driver.execute_script("const u = document.getElementById('username'); return !!u && u.offsetParent !== null"),
                       15, f"{name}: the name field")
            driver.find_element(By.ID, "username").send_keys(name)
            driver.find_element(By.ID, "register").click()
        for name, driver in (("fox", firefox), ("chrome", chrome)):
            remote_video_advances(driver, f"{name} on videoroomtest.html")
    finally:
        chromium.close()
        firefox.quit()
        site.stop()
        atrium.stop()
