"""Headless Chromium for the e2e suite: the pages and the Debian copies of janus.js and adapter.js
served on a loopback port, Chromium sessions driven by chromedriver, and the page helpers.

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
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
WAIT = 10.0  # seconds for any one step
# How long chromedriver waits for a page load or a script. Only a bound: with test modules running
# side by side on two cores, a renderer can be starved for several seconds, and a page load that
# would finish must not fail for that.
DRIVER_TIMEOUT = 30.0


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


def chromium_sessions(tmp_path: Path):
    """Yields start(name, extra_args) that starts a headless Chromium session (one per name, each
    with its own profile under tmp_path); all are quit when the generator is closed."""
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
        driver.set_script_timeout(DRIVER_TIMEOUT)
        driver.set_page_load_timeout(DRIVER_TIMEOUT)
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
