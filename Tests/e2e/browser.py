"""Headless Chromium for the e2e suite: the pages and the Debian copies of janus.js and adapter.js
served on a loopback port, Chromium sessions driven by chromedriver (each worker keeps its
Chromiums, and each test gets fresh browser contexts in them), and the page helpers.

The fixtures `page_server`, `chromium` and `settled_addresses` (conftest.py) are built on this.
A page records what it sees in ``window.results``; `wait_for` polls it. On failure
`save_artifacts` puts a screenshot, the console, ``window.results`` and the logs in
Tests/e2e/artifacts/.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import functools
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import websocket  # websocket-client, which selenium depends on
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
WAIT = 10.0  # seconds for any one step
# How long chromedriver waits for a page load or a script. Only a bound: with test modules running
# side by side on two cores, a renderer can be starved for several seconds, and a page load that
# would finish must not fail for that.
DRIVER_TIMEOUT = 30.0


DEMOS = Path("/usr/share/janus/demos")


def janus_demo_folder(site: Path, server_url: str) -> Path:
    """A copy of Debian's Janus demo pages (janus-demos) in `site`: symlinks to the installed
    files, so the pages' own javascript/, css/ and fonts/ folders (Debian's jquery, bootstrap,
    bootbox, spin.js, toastr, webrtc-adapter, janus.js, font-awesome) are used as they are, and a
    settings.js of our own: `server` is the server under test, `iceServers` is [] (Debian's leaves
    it null, and janus.js then falls back to a public STUN server), `token` and `apisecret` are
    null (Debian's demo scripts read them, and its settings.js never defines them, so the pages as
    installed stop with "ReferenceError: token is not defined" on Start)."""
    if not (DEMOS / "videoroomtest.html").exists():
        pytest.fail(f"{DEMOS}/videoroomtest.html is missing: apt-get install janus-demos", pytrace=False)
    site.mkdir(exist_ok=True)
    for entry in DEMOS.iterdir():
        if entry.name != "settings.js" and not (site / entry.name).is_symlink():
            (site / entry.name).symlink_to(entry)
    (site / "settings.js").write_text(f'var server = "{server_url}";\nvar iceServers = [];\n'
                                      'var token = null;\nvar apisecret = null;\n')
    return site


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve_pages(site: Path):
    """Serves the pages and the Debian copies of janus.js and adapter.js from `site` on a free
    loopback port; yields the base URL (a generator, for a fixture to yield from)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver", pytrace=False)
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


class Browser:
    """One Chromium under chromedriver, kept by a worker for test after test. Each test works in a
    browser context of its own (`open_context`): cookies, storage, caches, permissions and service
    workers start empty and are thrown away with it, as in a new profile, for about 0.2 s instead
    of the 1.4 s a new Chromium costs. Browser-wide switches (fake devices, window size) are the
    ones it was started with."""

    def __init__(self, driver: webdriver.Chrome, log_path: Path):
        self.driver = driver
        self.log_path = log_path
        self.home_window = driver.current_window_handle
        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        with urllib.request.urlopen(f"http://{address}/json/version", timeout=WAIT) as answer:
            url = json.load(answer)["webSocketDebuggerUrl"]
        # Browser-level DevTools: chromedriver's own CDP command runs on a page, where creating a
        # context is not allowed.
        self.devtools = websocket.create_connection(url, timeout=DRIVER_TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.context: str | None = None

    def cdp(self, method: str, **params) -> dict:
        self.next_id += 1
        self.devtools.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.devtools.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise WebDriverException(f"{method}: {message['error']}")
                return message["result"]

    def open_context(self) -> webdriver.Chrome:
        self.context = self.cdp("Target.createBrowserContext")["browserContextId"]
        target = self.cdp("Target.createTarget", url="about:blank", browserContextId=self.context,
                          width=1000, height=700)["targetId"]
        self.driver.switch_to.window(target)
        OPEN_CONTEXTS[id(self.driver)] = self
        return self.driver

    def grant(self, origin: str, permissions: list[str]):
        self.cdp("Browser.grantPermissions", origin=origin, permissions=permissions, browserContextId=self.context)

    def close_context(self):
        """Closes the test's context and its pages, and drops the console lines it left."""
        OPEN_CONTEXTS.pop(id(self.driver), None)
        self.driver.switch_to.window(self.home_window)
        if self.context is not None:
            self.cdp("Target.disposeBrowserContext", browserContextId=self.context)
            self.context = None
        self.driver.get_log("browser")

    def quit(self):
        for close in (self.devtools.close, self.driver.quit):
            try:
                close()
            except Exception:  # noqa: BLE001 - quitting must go on
                pass


# The browser whose context each open session drives, by id(driver).
OPEN_CONTEXTS: dict[int, Browser] = {}


def grant_permissions(driver: webdriver.Chrome, origin: str, permissions: list[str]):
    """Browser.grantPermissions for the session's own browser context (chromedriver's CDP command
    would grant them to the default context, which the test's page is not in). Every permission
    not listed is refused."""
    OPEN_CONTEXTS[id(driver)].grant(origin, permissions)


class BrowserPool:
    """The Chromiums of one pytest worker that no test uses now, by the extra switches they were
    started with. At most MAX_IDLE wait; more are quit, the longest idle first."""

    MAX_IDLE = 4

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.idle: list[tuple[tuple[str, ...], Browser]] = []
        self.lock = threading.Lock()
        self.started = 0
        home = tmp_path / "home"
        self.env = dict(os.environ)
        self.env.update({
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_RUNTIME_DIR": str(home / "run"),
        })
        for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
            Path(self.env[key]).mkdir(parents=True, exist_ok=True)
        os.chmod(self.env["XDG_RUNTIME_DIR"], 0o700)

    def take(self, extra_args: tuple[str, ...]) -> Browser:
        with self.lock:
            # The one back last first: it is the warmest, and the rest age towards eviction.
            for i in reversed(range(len(self.idle))):
                args, browser = self.idle[i]
                if args == extra_args:
                    del self.idle[i]
                    return browser
            self.started += 1
            number = self.started
        log_path = self.tmp_path / f"chromedriver-{number}.log"
        return Browser(self.start(number, extra_args, log_path), log_path)

    def give_back(self, extra_args: tuple[str, ...], browser: Browser):
        with self.lock:
            self.idle.append((extra_args, browser))
            evicted = self.idle[:-self.MAX_IDLE]
            del self.idle[:-self.MAX_IDLE]
        for _, old in evicted:
            old.quit()

    def quit_all(self):
        with self.lock:
            idle, self.idle = self.idle, []
        for _, browser in idle:
            browser.quit()

    def start(self, number: int, extra_args: tuple[str, ...], log_path: Path) -> webdriver.Chrome:
        """`extra_args` come last, so they override the defaults above them (Chromium keeps a
        switch's last value)."""
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    "--allow-loopback-in-peer-connection", f"--user-data-dir={self.tmp_path / f'profile-{number}'}",
                    "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                    "--disable-background-networking", "--disable-extensions", "--disable-sync",
                    "--window-size=1000,700", *extra_args):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_output=str(log_path), env=self.env)
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_script_timeout(DRIVER_TIMEOUT)
        driver.set_page_load_timeout(DRIVER_TIMEOUT)
        return driver


def chromium_sessions(pool: BrowserPool):
    """Yields start(name, extra_args): a Chromium session for that name, in a fresh browser context
    of a pooled Chromium. At the end the contexts are closed and the browsers go back to the pool;
    one that fails to close its context is quit instead."""
    drivers: dict[str, webdriver.Chrome] = {}
    logs: dict[str, Path] = {}
    taken: list[tuple[tuple[str, ...], Browser]] = []
    lock = threading.Lock()

    def start(name: str, extra_args: tuple[str, ...] = ()) -> webdriver.Chrome:
        extra_args = tuple(extra_args)
        browser = pool.take(extra_args)
        with lock:
            taken.append((extra_args, browser))
        driver = browser.open_context()
        with lock:
            drivers[name] = driver
            logs[name] = browser.log_path
        return driver

    start.drivers = drivers
    start.logs = logs
    try:
        yield start
    finally:
        for extra_args, browser in taken:
            try:
                browser.close_context()
            except Exception:  # noqa: BLE001 - a browser that cannot be reset is not reused
                browser.quit()
                continue
            pool.give_back(extra_args, browser)


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
        log = chromium.logs.get(name)
        if log is not None and log.exists():
            shutil.copy(log, ARTIFACTS / f"{label}-{name}-chromedriver.log")
    (ARTIFACTS / f"{label}-atrium.log").write_text(atrium.log())


def settle_addresses():
    """In a namespace made a moment ago the veths' IPv6 link-local addresses are still
    "tentative" (duplicate address detection, about 2 s); when they settle Chromium sees a network
    change and fails the page loads in flight with ERR_NETWORK_CHANGED. Wait for that first."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        if "tentative" not in out:
            return
        time.sleep(0.2)
