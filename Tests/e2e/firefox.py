"""Firefox ESR for the e2e suite, driven through Marionette (the `marionette-driver` package; no
geckodriver): one Firefox per person, in a `hosts.Host`, with the calls `meeting_page.Person`
makes of a selenium driver.

Firefox's fake camera and microphone, no permission prompts, and host candidates with their
addresses (not mDNS names, which nothing in the test network resolves) come from its profile's
prefs. It gathers no candidates without a default route, so its host gets one (`hosts.link`).
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
from marionette_driver.marionette import Marionette

from hosts import Host

FIREFOX = "/usr/bin/firefox-esr"
MARIONETTE_PORT = 2828
PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "network.manage-offline-status": False,
    # Nothing a test does not ask for: no first-run pages, updates, telemetry or probes.
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
    "dom.disable_beforeunload": True,
}


def _pref(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return f'"{value}"'


class FirefoxElement:
    def __init__(self, element):
        self.element = element

    def click(self):
        self.element.click()

    def clear(self):
        self.element.clear()

    def send_keys(self, text: str):
        self.element.send_keys(text)


class Firefox:
    """One Firefox ESR, headless, in `host`; `execute_script` runs in the page (no sandbox), as
    selenium's does."""

    def __init__(self, host: Host, tmp: Path, name: str, port: int = MARIONETTE_PORT):
        if not Path(FIREFOX).exists():
            pytest.fail(f"{FIREFOX} is missing: apt-get install firefox-esr (make test installs it)", pytrace=False)
        profile = tmp / f"firefox-{name}"
        profile.mkdir(parents=True)
        prefs = {**PREFS, "marionette.port": port}
        (profile / "user.js").write_text("".join(f'user_pref("{k}", {_pref(v)});\n' for k, v in prefs.items()))
        home = tmp / f"firefox-home-{name}"
        home.mkdir()
        self.log_path = tmp / f"firefox-{name}.log"
        self.log = open(self.log_path, "wb")
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "MOZ_HEADLESS": "1"}
        self.proc = host.popen([FIREFOX, "--marionette", "--headless", "--no-remote", "--profile", str(profile)],
                               stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.forward = host.forward(port)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"firefox exited:\n{self.log_path.read_text(errors='replace')}"
            try:
                # Marionette greets every connection first; a refused or silent one is not up yet.
                with socket.create_connection(("127.0.0.1", self.forward.port), timeout=1) as s:
                    if s.recv(64):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"Marionette did not answer:\n{self.log_path.read_text(errors='replace')}"
            time.sleep(0.1)
        self.client = Marionette(port=self.forward.port)
        # A self-signed certificate is accepted as WebDriver's acceptInsecureCerts does.
        self.client.start_session({"acceptInsecureCerts": True})
        self.client.timeout.script = 30
        self.client.timeout.page_load = 30

    def get(self, url: str):
        self.client.navigate(url)

    @property
    def current_url(self) -> str:
        return self.client.get_url()

    def execute_script(self, script: str, *args):
        return self.client.execute_script(script, script_args=list(args), sandbox=None, new_sandbox=False)

    def find_element(self, by: str, target: str) -> FirefoxElement:
        return FirefoxElement(self.client.find_element(by, target))

    def choose(self, element_id: str, value: str):
        """Picks an option of a <select> by clicking it, as a person does."""
        self.client.find_element("css selector", f"#{element_id} option[value='{value}']").click()

    def quit(self):
        try:
            self.client.delete_session()
        except Exception:  # noqa: BLE001 - the process is ended below either way
            pass
        self.forward.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
