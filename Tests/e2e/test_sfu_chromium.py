"""The SFU with real browsers: headless Chromium pages running janus.js (Debian libjs-janus-gateway)
against the VideoRoom API.

* pages/janusjs-videoroom.{html,js}: one participant per page, written after Janus's multistream
  demo (mvideoroomtest.js): join as publisher, publish the fake camera and microphone, subscribe to
  every other publisher on ONE subscriber handle, window.feedStats() from getStats.
* Three participants in one room each decode the other two's video and audio.
* Simulcast: a publisher sends three rid encodings (h/m/l) from a 1280x720 capture; a subscriber
  asks for substream 0, then 2, and the decoded width follows; Janus announces each switch with
  {"videoroom":"event","room","mid","substream":N}.
* NACK: 10% loss on ONE subscriber's downlink only (see LossyPort); its video keeps decoding and
  its inbound-rtp nackCount grows.
* Janus's own demo page (/usr/share/janus/demos/mvideoroomtest.html, janus-demos), served from a
  local copy with a settings.js pointing at the server under test: two users join room 1234 and
  play each other's video.

The server is Atrium's SFU plugin, or Janus's VideoRoom with ATRIUM_E2E_SFU=janus
(videoroom_client.py). Runs in the e2e network namespace; nothing leaves the machine (no ICE
servers: the pages pass iceServers: []).
"""
from __future__ import annotations

import functools
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from urllib.parse import urlencode

import pytest

from browser import QuietHandler, brief, janus_demo_folder, results, save_artifacts, wait_for
from videoroom_client import create_room_sync, sync_request

MEDIA_WAIT = 25.0


def page_url(base: str, server: str, room: int, display: str, **extra) -> str:
    query = {"server": server, "room": room, "display": display, "debug": "warn,error", **extra}
    return f"{base}/janusjs-videoroom.html?" + urlencode(query)


def feed_stats(driver) -> dict:
    stats = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.feedStats().then(done, function (e) { done({error: String(e)}); });")
    assert "error" not in stats, stats
    return {int(k): v for k, v in stats.items()}


def start_pages(chromium, names: list[str]) -> dict:
    with ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(chromium, names)))


def wait_feeds(driver, name: str, feeds: list[int], kinds=("video", "audio"), timeout: float = MEDIA_WAIT) -> dict:
    """Waits until the page decodes video and audio of every feed in *feeds*; returns feed_stats."""
    deadline = time.monotonic() + timeout
    stats: dict = {}
    while time.monotonic() < deadline:
        stats = feed_stats(driver)
        ok = all(feed in stats and all(k in stats[feed] for k in kinds)
                 and ("video" not in kinds or stats[feed]["video"]["framesDecoded"] > 0)
                 and ("audio" not in kinds or stats[feed]["audio"]["totalSamplesReceived"] > 0)
                 for feed in feeds)
        if ok:
            return stats
        r = results(driver)
        assert r["state"] != "failed", f"{name}: {r['errors']}\n{brief(r)}"
        time.sleep(0.2)
    raise AssertionError(f"{name}: no decoded media of feeds {feeds} within {timeout}s: {stats}\n"
                         f"{brief(results(driver))}")


def assert_still_decoding(driver, name: str, feeds: list[int], within: float = 5.0) -> tuple[dict, dict]:
    """Each feed decodes more video frames and audio samples than a first reading, within `within` s."""
    first = feed_stats(driver)

    def advanced(second: dict, feed: int) -> bool:
        a, b = first[feed], second[feed]
        return (b["video"]["framesDecoded"] > a["video"]["framesDecoded"]
                and b["audio"]["totalSamplesReceived"] > a["audio"]["totalSamplesReceived"])
    deadline = time.monotonic() + within
    second = feed_stats(driver)
    while not all(advanced(second, feed) for feed in feeds) and time.monotonic() < deadline:
        time.sleep(0.2)
        second = feed_stats(driver)
    for feed in feeds:
        a, b = first[feed], second[feed]
        assert b["video"]["framesDecoded"] > a["video"]["framesDecoded"], f"{name}: video of {feed} stalled: {a} -> {b}"
        assert b["audio"]["totalSamplesReceived"] > a["audio"]["totalSamplesReceived"], \
            f"{name}: audio of {feed} stalled: {a} -> {b}"
    return first, second


# --------------------------------------------------------------------------------------------
# 3. Three participants

@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_three_chromium_participants_see_and_hear_each_other(sfu, page_server, chromium, transport):  # noqa: F811
    room = create_room_sync(sfu, publishers=6, bitrate=256000)
    names = ["alice", "bob", "carol"]
    started = time.monotonic()
    try:
        drivers = start_pages(chromium, names)
        ids = {}
        for name, driver in drivers.items():
            driver.get(page_url(page_server, sfu.url(transport), room, name))
            joined = wait_for(driver, name, "joined", lambda r: r["joined"], timeout=15)
            assert joined["room"] == room and joined["description"] == f"Room {room}", joined
            ids[name] = joined["id"]
        for name, driver in drivers.items():
            wait_for(driver, name, "our publisher PeerConnection", lambda r: r["publisherUp"] and r["published"],
                     timeout=MEDIA_WAIT)
        for name, driver in drivers.items():
            others = [ids[n] for n in names if n != name]
            wait_feeds(driver, name, others)
        for name, driver in drivers.items():
            others = [ids[n] for n in names if n != name]
            first, second = assert_still_decoding(driver, name, others)
            for feed in others:
                video = second[feed]["video"]
                assert video["frameWidth"] > 0 and video["frameHeight"] > 0, second
                expected = next(n for n in names if ids[n] == feed)
                assert second[feed]["display"] == expected, second
            r = results(driver)
            assert r["errors"] == [], f"{name}: {r['errors']}"
            assert r["janusErrors"] == [], f"{name}: {r['janusErrors']}"
            # One subscriber handle carries everything: attached first, later feeds by update.
            kinds = [e["data"].get("videoroom") for e in r["subEvents"]]
            assert kinds[0] == "attached", kinds
            assert r["subEvents"][0]["jsep"] == {"type": "offer"}, r["subEvents"][0]
        participants = sync_request(sfu, {"request": "listparticipants", "room": room})["participants"]
        assert sorted(p["display"] for p in participants) == names, participants
        assert all(p["publisher"] is True for p in participants), participants
    except BaseException:
        save_artifacts(chromium, sfu, f"sfu-three-{sfu.kind}-{transport}")
        raise
    finally:
        print(f"three participants over {transport}: {time.monotonic() - started:.1f}s")


# --------------------------------------------------------------------------------------------
# 3b. The room's video codec

@pytest.mark.parametrize("codec", ["vp9", "h264", "av1"])
def test_room_video_codec_is_forwarded(sfu, page_server, chromium, codec):  # noqa: F811
    """A room whose videocodec is VP9, H.264 or AV1: the publisher's answer picks it, and the
    subscriber decodes that codec."""
    room = create_room_sync(sfu, publishers=2, videocodec=codec)
    try:
        drivers = start_pages(chromium, ["sender", "viewer"])
        sender, viewer = drivers["sender"], drivers["viewer"]
        sender.get(page_url(page_server, sfu.ws_url, room, "sender"))
        feed = wait_for(sender, "sender", "joined", lambda r: r["joined"], timeout=15)["id"]
        wait_for(sender, "sender", "publishing", lambda r: r["publisherUp"] and r["published"], timeout=MEDIA_WAIT)
        configured = [e["data"] for e in results(sender)["pubEvents"] if e["data"].get("configured") == "ok"]
        assert configured and configured[-1].get("video_codec") == codec, configured
        viewer.get(page_url(page_server, sfu.ws_url, room, "viewer", publish="0"))
        wait_feeds(viewer, "viewer", [feed])
        _, second = assert_still_decoding(viewer, "viewer", [feed])
        assert (second[feed]["video"]["codec"] or "").lower() == f"video/{codec}", second
    except BaseException:
        save_artifacts(chromium, sfu, f"sfu-codec-{codec}-{sfu.kind}")
        raise


# --------------------------------------------------------------------------------------------
# 4. Simulcast

def publisher_encodings(driver) -> list[dict]:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.publisherStats().then(done, function (e) { done([{error: String(e)}]); });")


def wait_width(driver, name: str, feed: int, accept, what: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    video = None
    while time.monotonic() < deadline:
        video = feed_stats(driver).get(feed, {}).get("video")
        if video and accept(video["frameWidth"]):
            return video
        time.sleep(0.2)
    raise AssertionError(f"{name}: the decoded width never became {what}: {video}; "
                         f"events {[e['data'] for e in results(driver)['subEvents']]}")


# A 1280x720 capture in three layers: a browser short of CPU drops the top one, so this runs alone.
@pytest.mark.alone
def test_simulcast_substreams(sfu, page_server, chromium):  # noqa: F811
    """janus.js simulcast: true sends rids h/m/l (scale 1, 1/2, 1/4) of a 1280x720 capture; a
    subscriber's {"request":"configure","mid":M,"substream":0|2} picks the layer it gets."""
    # fir_freq: a keyframe request every 2 s, as a safety net for the layer switches (which wait
    # for a keyframe of the target layer; the switch itself also asks for one).
    room = create_room_sync(sfu, publishers=2, fir_freq=2)
    try:
        drivers = start_pages(chromium, ["sender", "viewer"])
        sender, viewer = drivers["sender"], drivers["viewer"]
        sender.get(page_url(page_server, sfu.ws_url, room, "sender", simulcast="1"))
        joined = wait_for(sender, "sender", "joined", lambda r: r["joined"], timeout=15)
        feed = joined["id"]
        wait_for(sender, "sender", "publishing", lambda r: r["publisherUp"] and r["published"], timeout=MEDIA_WAIT)
        viewer.get(page_url(page_server, sfu.ws_url, room, "viewer", publish="0"))
        wait_feeds(viewer, "viewer", [feed], kinds=("video",))

        # The publisher really sends three layers (the browser may drop some at low resolutions).
        deadline = time.monotonic() + 15
        layers = []
        while time.monotonic() < deadline:
            layers = publisher_encodings(sender)
            if sorted(x["rid"] for x in layers if x["framesEncoded"] > 0) == ["h", "l", "m"]:
                break
            time.sleep(0.2)
        assert sorted(x["rid"] for x in layers if x["framesEncoded"] > 0) == ["h", "l", "m"], layers
        widths = {x["rid"]: x["frameWidth"] for x in layers}
        assert widths["l"] < widths["m"] < widths["h"], layers
        # The publisher's stream descriptor says simulcast.
        configured = [e["data"] for e in results(sender)["pubEvents"] if e["data"].get("configured") == "ok"]
        video = [s for s in configured[-1]["streams"] if s["type"] == "video"]
        assert video and video[0].get("simulcast") is True, configured

        for target, accept, what in ((0, lambda w: 0 < w <= widths["l"], f"<= {widths['l']}"),
                                     (2, lambda w: w >= widths["h"], f">= {widths['h']}")):
            before = len(results(viewer)["subEvents"])
            mid = viewer.execute_script("return window.configureSubscription(arguments[0], arguments[1]);",
                                        feed, {"substream": target})

            assert isinstance(mid, str), mid
            # A switch is announced when it happens; a viewer still on the layer it asks for (its
            # video starts on the first keyframe of any layer and then climbs) gets no new event.
            switches = [e["data"]["substream"] for e in results(viewer)["subEvents"][:before] if "substream" in e["data"]]
            if not switches or switches[-1] != target:
                got = wait_for(viewer, "viewer", f"the substream {target} event",
                               lambda r: [e["data"] for e in r["subEvents"][before:]
                                          if e["data"].get("substream") == target], timeout=20)
                event = got[0]
                assert event == {"videoroom": "event", "room": room, "mid": mid, "substream": target}, event
            configured = [e["data"] for e in results(viewer)["subEvents"][before:] if e["data"].get("configured")]
            assert configured and configured[0] == {"videoroom": "event", "room": room, "configured": "ok"}, configured
            wait_width(viewer, "viewer", feed, accept, what)
        first = feed_stats(viewer)[feed]["video"]
        deadline = time.monotonic() + 5
        second = first
        while second["framesDecoded"] <= first["framesDecoded"] and time.monotonic() < deadline:
            time.sleep(0.2)
            second = feed_stats(viewer)[feed]["video"]
        assert second["framesDecoded"] > first["framesDecoded"], (first, second)
        for name, driver in drivers.items():
            r = results(driver)
            assert r["errors"] == [] and r["janusErrors"] == [], f"{name}: {r['errors']} {r['janusErrors']}"
    except BaseException:
        save_artifacts(chromium, sfu, f"sfu-simulcast-{sfu.kind}")
        raise


# --------------------------------------------------------------------------------------------
# 5. NACK under loss on one subscriber's path

class LossyPort:
    """Drops about *percent* % of the UDP datagrams sent to *port* on the loopback interface, and
    nothing else: inside the test namespace every peer uses MEDIA_IP, so media crosses `lo`.

    The kernel here has no netem (nor prio, gact, nftables binaries): what it has is htb, pfifo and
    cls_bpf. So: an htb root (default class 1:1, unlimited), a class 1:2 whose pfifo holds 0
    packets (everything classified there is dropped), and a classic-BPF classifier that sends to
    1:2 the IPv4 UDP datagrams for *port* whose random number (the SKF_AD_RANDOM ancillary load)
    mod 100 is below *percent*. Removed (``tc qdisc del dev lo root``) on exit."""

    def __init__(self, port: int, percent: int = 10):
        self.port, self.percent = port, percent

    @staticmethod
    def tc(*args: str) -> str:
        done = subprocess.run(["tc", *args], capture_output=True, text=True)
        assert done.returncode == 0, f"tc {' '.join(args)}: {done.stderr}"
        return done.stdout

    def bytecode(self) -> str:
        # ethertype IPv4 → protocol UDP → destination port → random % 100 < percent
        program = [
            (0x28, 0, 0, 12),             # ldh [12]            (ethertype; lo frames have an Ethernet header)
            (0x15, 0, 9, 0x0800),         # jeq #IPv4, else no match
            (0x30, 0, 0, 23),             # ldb [23]            (IP protocol)
            (0x15, 0, 7, 17),             # jeq #UDP, else no match
            (0xB1, 0, 0, 14),             # ldxb 4*([14]&0xf)  (IP header length)
            (0x48, 0, 0, 16),             # ldh [x+16]          (UDP destination port)
            (0x15, 0, 4, self.port),      # jeq #port, else no match
            (0x20, 0, 0, 0xFFFFF000 + 56),  # ld rand             (SKF_AD_OFF + SKF_AD_RANDOM)
            (0x94, 0, 0, 100),            # mod #100
            (0x35, 1, 0, self.percent),   # jge #percent → no match, else drop
            (0x06, 0, 0, 0xFFFFFFFF),     # ret -1: the filter's classid (1:2, the drop class)
            (0x06, 0, 0, 0),              # ret 0: no match (default class)
        ]
        return f"{len(program)}," + ",".join(f"{c} {jt} {jf} {k}" for c, jt, jf, k in program)

    def dropped(self) -> int:
        import re
        out = self.tc("-s", "qdisc", "show", "dev", "lo")
        m = re.search(r"qdisc pfifo 20:.*?dropped (\d+)", out, re.S)
        return int(m.group(1)) if m else 0

    def __enter__(self) -> "LossyPort":
        self.tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1", "r2q", "100000")
        try:
            for cls in ("1:1", "1:2"):
                self.tc("class", "add", "dev", "lo", "parent", "1:", "classid", cls, "htb", "rate", "10gbit")
            self.tc("qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "20:", "pfifo", "limit", "0")
            self.tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
                    "bpf", "bytecode", self.bytecode(), "classid", "1:2")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)


def subscriber_pair(driver) -> dict | None:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.subscriberPair().then(done, function (e) { done({error: String(e)}); });")


def test_nack_recovers_loss_on_one_subscriber_path(sfu, page_server, chromium):  # noqa: F811
    room = create_room_sync(sfu, publishers=2)
    try:
        drivers = start_pages(chromium, ["sender", "lossy", "clean"])
        sender = drivers["sender"]
        sender.get(page_url(page_server, sfu.ws_url, room, "sender"))
        feed = wait_for(sender, "sender", "joined", lambda r: r["joined"], timeout=15)["id"]
        wait_for(sender, "sender", "publishing", lambda r: r["publisherUp"] and r["published"], timeout=MEDIA_WAIT)
        for name in ("lossy", "clean"):
            drivers[name].get(page_url(page_server, sfu.ws_url, room, name, publish="0"))
        for name in ("lossy", "clean"):
            wait_feeds(drivers[name], name, [feed], kinds=("video",))
        pair = subscriber_pair(drivers["lossy"])
        assert pair and pair.get("local", {}).get("protocol") == "udp", pair
        port = pair["local"]["port"]
        before = {name: feed_stats(drivers[name])[feed]["video"] for name in ("lossy", "clean")}
        resent_before = sfu.metric("atrium_media_rtp_retransmitted_total") if sfu.metric else 0
        with LossyPort(port, 10) as loss:
            time.sleep(2.0)  # windows of loss: NACKs and retransmissions show over time, not in one event
            middle = feed_stats(drivers["lossy"])[feed]["video"]
            time.sleep(4.0)  # (the same)
            after = {name: feed_stats(drivers[name])[feed]["video"] for name in ("lossy", "clean")}
            dropped = loss.dropped()
        lossy_a, lossy_b = before["lossy"], after["lossy"]
        print(f"loss on port {port}: {dropped} datagrams dropped; lossy {lossy_a} -> {lossy_b}; "
              f"clean {before['clean']} -> {after['clean']}")
        assert dropped > 20, f"the loss filter dropped only {dropped} datagrams"
        assert lossy_b["framesDecoded"] > middle["framesDecoded"] > lossy_a["framesDecoded"], (lossy_a, middle, lossy_b)
        assert lossy_b["nackCount"] > lossy_a["nackCount"], (lossy_a, lossy_b)
        # The other subscriber's path had no loss: it decoded all along, with (next to) no NACKs.
        clean_a, clean_b = before["clean"], after["clean"]
        assert clean_b["framesDecoded"] > clean_a["framesDecoded"], (clean_a, clean_b)
        lossy_nacks, clean_nacks = lossy_b["nackCount"] - lossy_a["nackCount"], clean_b["nackCount"] - clean_a["nackCount"]
        assert lossy_nacks >= 10 and clean_nacks * 4 < lossy_nacks, (lossy_a, lossy_b, clean_a, clean_b)
        if sfu.metric:
            # Atrium answered those NACKs from its retransmission buffer.
            resent = sfu.metric("atrium_media_rtp_retransmitted_total") - resent_before
            assert resent >= lossy_nacks / 2, f"{resent} retransmissions for {lossy_nacks} NACKs"
        for name, driver in drivers.items():
            r = results(driver)
            assert r["errors"] == [] and r["janusErrors"] == [], f"{name}: {r['errors']} {r['janusErrors']}"
    except BaseException:
        save_artifacts(chromium, sfu, f"sfu-nack-{sfu.kind}")
        raise


# --------------------------------------------------------------------------------------------
# 7. Janus's own VideoRoom demo pages (Debian janus-demos), unmodified but for settings.js

@pytest.fixture
def demo_site(tmp_path):
    """Serves Debian's Janus demo pages (browser.janus_demo_folder) on a loopback port. Call it
    with the server URL; returns the site's base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(server_url: str) -> str:
        site = janus_demo_folder(tmp_path / "demos", server_url)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, name="janus-demos", daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


DEMO_STATE = """
const videos = Array.from(document.querySelectorAll('[id^=videoremote] video'));
const alerts = Array.from(document.querySelectorAll('.bootbox .bootbox-body')).map(e => e.textContent);
return {remote: videos.map(v => ({id: v.id, width: v.videoWidth, height: v.videoHeight,
                                  time: v.currentTime, paused: v.paused})),
        local: Array.from(document.querySelectorAll('#videolocal video')).map(v => v.videoWidth),
        alerts: alerts};
"""


@pytest.mark.parametrize("demo", ["mvideoroomtest", "videoroomtest"])
def test_janus_demo_page_two_users_in_room_1234(sfu, chromium, demo_site, demo):  # noqa: F811
    """Two users open Janus's own demo page, press Start, join room 1234 (the demo room of the
    configuration) under a display name, and each plays the other's video."""
    base = demo_site(sfu.http_url)   # the demos' default transport: HTTP long poll
    names = ["alice", "bob"]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        drivers = start_pages(chromium, names)
        for name, driver in drivers.items():
            driver.get(f"{base}/{demo}.html")
            WebDriverWait(driver, 15).until(EC.element_to_be_clickable((By.ID, "start"))).click()
            WebDriverWait(driver, 15).until(EC.visibility_of_element_located((By.ID, "username"))).send_keys(name)
            driver.find_element(By.ID, "register").click()
            WebDriverWait(driver, MEDIA_WAIT).until(
                lambda d: any(w > 0 for w in d.execute_script(DEMO_STATE)["local"]),
                f"{name}: the local video never played")
        for name, driver in drivers.items():
            def playing(d):
                state = d.execute_script(DEMO_STATE)
                assert not state["alerts"], f"{name}: the demo shows an alert: {state['alerts']}"
                return [v for v in state["remote"] if v["width"] > 0 and not v["paused"]]
            WebDriverWait(driver, MEDIA_WAIT).until(playing, f"{name}: no remote video played")
        for name, driver in drivers.items():
            first = {v["id"]: v["time"] for v in driver.execute_script(DEMO_STATE)["remote"]}
            deadline = time.monotonic() + 5
            while True:
                state = driver.execute_script(DEMO_STATE)
                moving = [v for v in state["remote"] if v["width"] > 0 and v["time"] > first.get(v["id"], 0)]
                if moving or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert moving, f"{name}: remote video does not advance: {first} -> {state}"
            assert not state["alerts"], f"{name}: {state['alerts']}"
        participants = sync_request(sfu, {"request": "listparticipants", "room": 1234})["participants"]
        assert sorted(p["display"] for p in participants) == names, participants
        assert all(p["publisher"] for p in participants), participants
        # "Stop" (the Start button, relabelled) destroys the session: the room empties at once.
        for driver in drivers.values():
            driver.find_element(By.ID, "start").click()
        deadline = time.monotonic() + 10
        while participants and time.monotonic() < deadline:
            time.sleep(0.2)
            participants = sync_request(sfu, {"request": "listparticipants", "room": 1234})["participants"]
        assert participants == [], f"still in room 1234 after Stop: {participants}"
    except BaseException:
        save_artifacts(chromium, sfu, f"sfu-demo-{demo}-{sfu.kind}")
        raise
