"""The real janus.js in headless Chromium against Atrium's chat plugin.

Two browser pages (two chromedriver sessions) load ``pages/janusjs-chat.html`` from a local
http.server on its own port, so the page is cross-origin to Atrium and janus.js's CORS
preflights are exercised. Each page runs Janus.init → new Janus({server}) → attach
("atrium.plugin.chat") → join, records everything in ``window.results``, and is driven through
``window.sendChat`` / ``window.finish``. janus.js and adapter.js come from the Debian packages
libjs-janus-gateway and libjs-webrtc-adapter and are copied next to the page at test time.

Parametrized over the transport: HTTP long-poll (``atrium.http_url``) and WebSocket
(``atrium.ws_url``). On failure a screenshot, the console log, ``window.results``, the
chromedriver log and the atrium log go to Tests/e2e/artifacts/.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from conftest import ARTIFACTS

PAGES = Path(__file__).resolve().parent / "pages"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LIBRARIES = {
    # served name: (installed file, Debian package providing it)
    "janus.js": ("/usr/share/javascript/janus-gateway/janus.js", "libjs-janus-gateway"),
    "adapter.js": ("/usr/share/javascript/webrtc-adapter/adapter.js", "libjs-webrtc-adapter"),
}
PLUGIN = "atrium.plugin.chat"
WAIT = 10.0  # seconds for any one step


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    """Serves the page and the Debian copies of janus.js and adapter.js on a free loopback port."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver", pytrace=False)
    site = tmp_path_factory.mktemp("janusjs-site")
    for page in PAGES.iterdir():
        if page.is_file():
            shutil.copy(page, site / page.name)
    for name, (installed, package) in LIBRARIES.items():
        if not Path(installed).exists():
            pytest.fail(f"{installed} is missing: apt-get install {package}", pytrace=False)
        shutil.copy(installed, site / name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="janusjs-pages", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def chromium(tmp_path):
    """Starts headless Chromium sessions (one per name); all are quit at the end of the test."""
    drivers: dict[str, webdriver.Chrome] = {}
    home = tmp_path / "home"
    env = dict(os.environ)
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_RUNTIME_DIR": str(home / "run"),
    })
    for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)

    def start(name: str, extra_args: tuple[str, ...] = ()) -> webdriver.Chrome:
        """`extra_args` come last, so they override the defaults above them (Chromium keeps a
        switch's last value)."""
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    "--allow-loopback-in-peer-connection", f"--user-data-dir={tmp_path / ('profile-' + name)}",
                    "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                    "--disable-background-networking", "--disable-extensions", "--disable-sync",
                    "--window-size=1000,700", *extra_args):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_output=str(tmp_path / f"chromedriver-{name}.log"), env=env)
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_script_timeout(WAIT)
        driver.set_page_load_timeout(WAIT)
        drivers[name] = driver
        return driver

    start.drivers = drivers
    start.tmp_path = tmp_path
    yield start
    for driver in drivers.values():
        try:
            driver.quit()
        except Exception:  # noqa: BLE001 - quitting must go on for the other drivers
            pass


def results(driver) -> dict:
    return driver.execute_script("return window.results ? JSON.parse(JSON.stringify(window.results)) : null;")


def wait_for(driver, name: str, what: str, predicate, timeout: float = WAIT):
    """Polls window.results until predicate(results) is truthy; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = results(driver)
        if last is not None:
            if last.get("state") == "failed":
                raise AssertionError(f"{name}: janus.js reported failure while waiting for {what}: "
                                     f"{last.get('errors')}\nresults: {brief(last)}")
            value = predicate(last)
            if value:
                return value
        time.sleep(0.05)
    raise AssertionError(f"{name}: timed out after {timeout}s waiting for {what}\nresults: {brief(last)}")


def brief(r: dict | None) -> str:
    """window.results without the console transcript, for assertion messages."""
    if r is None:
        return "None (page did not load the capture script)"
    return json.dumps({k: v for k, v in r.items() if k != "console"}, indent=1)[:6000]


def events(r: dict, kind: str) -> list[dict]:
    return [e["data"] for e in r["events"] if isinstance(e.get("data"), dict) and e["data"].get("chat") == kind]


def preflight_count(atrium) -> int:
    m = re.search(r'^atrium_http_requests_total\{kind="preflight"\} (\d+)$', atrium.metrics(), re.M)
    return int(m.group(1)) if m else 0


def page_url(base: str, server: str, room: str, display: str) -> str:
    return f"{base}/janusjs-chat.html?" + urlencode({"server": server, "room": room, "display": display})


def save_artifacts(chromium, atrium, label: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, driver in chromium.drivers.items():
        prefix = ARTIFACTS / f"{label}-{name}"
        try:
            driver.save_screenshot(str(prefix.with_suffix(".png")))
        except WebDriverException as e:
            prefix.with_suffix(".png.error").write_text(str(e))
        lines = []
        try:
            for entry in driver.get_log("browser"):
                lines.append(f"{entry.get('timestamp')} {entry.get('level')} {entry.get('message')}")
        except Exception as e:  # noqa: BLE001 - best effort
            lines.append(f"(driver.get_log failed: {e})")
        try:
            r = results(driver)
        except WebDriverException as e:
            r = {"error": f"could not read window.results: {e}"}
        if r and r.get("console"):
            lines.append("---- console as captured by the page ----")
            lines += [f"{c['t']} {c['level']} {c['text']}" for c in r["console"]]
        (ARTIFACTS / f"{label}-{name}-console.log").write_text("\n".join(lines) + "\n")
        (ARTIFACTS / f"{label}-{name}-results.json").write_text(json.dumps(r, indent=1))
        log = chromium.tmp_path / f"chromedriver-{name}.log"
        if log.exists():
            shutil.copy(log, ARTIFACTS / f"{label}-{name}-chromedriver.log")
    (ARTIFACTS / f"{label}-atrium.log").write_text(atrium.log())


@pytest.mark.parametrize("transport", ["http", "websocket"])
def test_janusjs_chat(atrium, page_server, chromium, transport):
    server = atrium.http_url if transport == "http" else atrium.ws_url
    room = f"janusjs-{transport}-{uuid.uuid4().hex[:8]}"
    text_ab = f"hello from alice over {transport} ✓"
    text_ba = f"hi alice, bob here ({transport})"
    preflights = preflight_count(atrium)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(2) as pool:
            alice, bob = pool.map(chromium, ["alice", "bob"])

        # Alice joins first: session, handle, synchronous join reply.
        alice.get(page_url(page_server, server, room, "alice"))
        ra = wait_for(alice, "alice", "join reply", lambda r: r if r["joinReply"] is not None else None)
        assert isinstance(ra["sessionId"], int) and ra["sessionId"] > 0, f"session id: {ra['sessionId']!r}"
        assert isinstance(ra["handleId"], int) and ra["handleId"] > 0, f"handle id: {ra['handleId']!r}"
        assert ra["plugin"] == PLUGIN
        join_a = ra["joinReply"]
        assert join_a["chat"] == "joined", join_a
        assert join_a["room"] == room and join_a["display"] == "alice"
        assert join_a["participants"] == [], join_a

        # Bob joins: his reply lists alice; alice gets an asynchronous {"chat":"join"} event.
        bob.get(page_url(page_server, server, room, "bob"))
        rb = wait_for(bob, "bob", "join reply", lambda r: r if r["joinReply"] is not None else None)
        assert isinstance(rb["sessionId"], int) and rb["sessionId"] > 0 and rb["sessionId"] != ra["sessionId"]
        assert isinstance(rb["handleId"], int) and rb["handleId"] > 0
        join_b = rb["joinReply"]
        assert join_b["chat"] == "joined", join_b
        assert [p["display"] for p in join_b["participants"]] == ["alice"], join_b
        assert join_b["participants"][0]["id"] == join_a["id"]
        joined = wait_for(alice, "alice", "bob's join event", lambda r: events(r, "join"))
        assert joined[0]["room"] == room
        assert joined[0]["participant"] == {"id": join_b["id"], "display": "bob"}, joined

        # A broadcast each way: the sender gets the synchronous "sent", the other an event.
        alice.execute_script("window.sendChat(arguments[0]);", text_ab)
        got = wait_for(bob, "bob", "alice's message", lambda r: events(r, "message"))
        assert got[0]["text"] == text_ab, got
        assert got[0]["from"] == {"id": join_a["id"], "display": "alice"}
        assert got[0]["room"] == room and got[0]["private"] is False
        sent = wait_for(alice, "alice", "the 'sent' reply",
                        lambda r: [x for x in r["replies"] if x["request"] == "message"])
        assert sent[0]["data"] == {"chat": "sent", "room": room}, sent

        bob.execute_script("window.sendChat(arguments[0]);", text_ba)
        got = wait_for(alice, "alice", "bob's message", lambda r: events(r, "message"))
        assert got[0]["text"] == text_ba and got[0]["from"]["display"] == "bob", got

        # The whole conversation ran without any janus.js error callback or logged error.
        for name, driver in (("alice", alice), ("bob", bob)):
            r = results(driver)
            assert r["errors"] == [], f"{name}: janus.js error callbacks / page errors: {r['errors']}"
            assert r["janusErrors"] == [], f"{name}: janus.js logged errors: {r['janusErrors']}"
            assert not [e for e in r["events"] if e.get("jsep")], f"{name}: unexpected jsep: {r['events']}"
            assert not r.get("detached"), f"{name}: handle was detached by the server"
        sessions = atrium.admin({"janus": "list_sessions"})["sessions"]
        assert ra["sessionId"] in sessions and rb["sessionId"] in sessions, sessions

        # Bob destroys his session: alice sees him leave; then alice destroys hers.
        bob.execute_script("window.finish();")
        wait_for(bob, "bob", "destroy", lambda r: r["destroyed"])
        left = wait_for(alice, "alice", "bob's leave event", lambda r: events(r, "leave"))
        assert left[0]["participant"]["display"] == "bob", left
        alice.execute_script("window.finish();")
        wait_for(alice, "alice", "destroy", lambda r: r["destroyed"])

        for name, driver in (("alice", alice), ("bob", bob)):
            r = results(driver)
            assert r["destroyed"] == "ok", f"{name}: destroy: {r['destroyed']}"
            assert r["errors"] == [], f"{name}: janus.js error callbacks / page errors: {r['errors']}"
            # A waiting long poll must not be answered when its session is destroyed (Janus holds it);
            # otherwise janus.js re-polls the destroyed session and logs "API call failed".
            assert r["janusErrors"] == [], f"{name}: janus.js logged errors: {r['janusErrors']}"
        sessions = atrium.admin({"janus": "list_sessions"})["sessions"]
        assert ra["sessionId"] not in sessions and rb["sessionId"] not in sessions, sessions
        # Each page saw exactly the events the conversation implies.
        ra, rb = results(alice), results(bob)
        assert [e["data"]["chat"] for e in ra["events"]] == ["join", "message", "leave"], brief(ra)
        assert [e["data"]["chat"] for e in rb["events"]] == ["message"], brief(rb)
        if transport == "http":
            # The page is cross-origin to Atrium and janus.js POSTs JSON: CORS preflights happened.
            assert preflight_count(atrium) > preflights, "no CORS preflight reached atrium"
        assert atrium.alive(), f"atrium died:\n{atrium.log()[-4000:]}"
    except BaseException:
        save_artifacts(chromium, atrium, f"janusjs-{transport}")
        raise
    finally:
        elapsed = time.monotonic() - started
        print(f"janus.js over {transport}: {elapsed:.1f}s")
