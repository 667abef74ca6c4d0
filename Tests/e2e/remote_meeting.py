"""A meeting across hosts (hosts.py): Atrium in the "server" host, browsers in the "browsers"
host, joined by a veth pair, so a page reaches Atrium as from another machine. Used by test_tls.py
and test_firefox.py; the `lan` fixture (conftest.py) makes the two hosts.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver

from conftest import ATRIUM_BIN, require_build, stop_process, wait_until
from browser import CHROMEDRIVER, CHROMIUM, DRIVER_TIMEOUT
from hosts import Host
from meeting_page import Person, webapp_config

SERVER_IP = "10.97.0.1"
BROWSERS_IP = "10.97.0.2"
SERVER_IP6 = "fd00:97::1"
BROWSERS_IP6 = "fd00:97::2"
HTTPS_PORT = 8443
WSS_PORT = 8989
CHROMEDRIVER_PORT = 9515
NGINX_PORT = 443


def url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def spki_hash(certificate: x509.Certificate) -> str:
    der = certificate.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class RemoteAtrium:
    """Atrium in the server host, TLS on its HTTP and WebSocket ports; or, with `behind_proxy`,
    plain HTTP on loopback with the WebSocket API under /janus-ws, for nginx in front of it
    (docs/nginx/atrium.conf)."""

    def __init__(self, server: Host, tmp: Path, tls: dict, address: str = SERVER_IP, behind_proxy: bool = False,
                 extra_plugins: list[dict] | None = None, sfu_rooms: list[dict] | None = None):
        require_build(ATRIUM_BIN)
        self.host = server
        config = webapp_config(tmp, recorder=False, turn=False)
        config["plugins"] += extra_plugins or []
        for plugin in config["plugins"]:
            if plugin["library"] == "libatrium_sfu.so" and sfu_rooms:
                plugin["config"]["rooms"] = sfu_rooms
        if behind_proxy:
            config["trusted_proxies"] = ["127.0.0.1/32"]
            config["http"].update(bind="127.0.0.1", port=8088, websocket_path="/janus-ws")
            config["websocket"].update(enabled=False)
            ready = "Janus API over HTTP"
        else:
            # "::" takes IPv4 and IPv6 alike (media: one dual-stack socket per port).
            config["http"].update(bind="::", port=HTTPS_PORT, **tls)
            config["websocket"].update(bind="::", port=WSS_PORT, **tls)
            ready = "Janus API over secure WebSocket"
        config["media"].update(bind="::", advertised_addresses=[address], udp_port=10000)
        self.workdir = tmp / "atrium"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        self.config_path = config_path
        self.log_path = self.workdir / "atrium.log"
        with open(self.log_path, "wb") as log:
            # nsenter execs atrium: the process is atrium's, for signals.
            self.proc = server.popen([str(ATRIUM_BIN), "--config", str(config_path)], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir))
        wait_until(lambda: self.proc.poll() is not None or ready in self.log(), 20, "atrium listening")
        assert self.proc.poll() is None, f"atrium exited:\n{self.log()}"
        self.https = server.forward(NGINX_PORT if behind_proxy else HTTPS_PORT)
        self.base = f"https://{url_host(address)}" + ("" if behind_proxy else f":{HTTPS_PORT}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def served_certificate(self) -> x509.Certificate:
        """The certificate a new connection to the HTTPS port gets now."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.https.port), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))

    def metric(self, name: str) -> float:
        """One unlabelled sample of /metrics, asked from inside the server host (a private address)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unverified on purpose: the certificate is checked elsewhere
            answer = requests.get(f"https://127.0.0.1:{self.https.port}/metrics", verify=False, timeout=10).text
        m = re.search(rf"^{re.escape(name)} (\S+)$", answer, re.M)
        assert m, f"{name} not in /metrics"
        return float(m.group(1))

    def stop(self):
        self.https.close()
        stop_process(self.proc)


class RemoteChromium:
    """chromedriver in the browsers host, driven through a forwarded port; one Chromium per person."""

    def __init__(self, browsers: Host, tmp: Path, trusted_keys: list[str], extra_args: list[str] | None = None):
        home = tmp / "browser-home"
        for sub in ("", ".config", ".cache", "run"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "run").chmod(0o700)
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
               "XDG_RUNTIME_DIR": str(home / "run"), "PATH": "/usr/bin:/bin"}
        self.tmp = tmp
        self.trusted = ",".join(trusted_keys)
        self.extra_args = extra_args or []
        self.log = open(tmp / "chromedriver.log", "wb")
        self.proc = browsers.popen([CHROMEDRIVER, f"--port={CHROMEDRIVER_PORT}"], stdout=self.log,
                                   stderr=subprocess.STDOUT, env=env)
        self.forward = browsers.forward(CHROMEDRIVER_PORT)
        self.drivers: list[webdriver.Remote] = []

        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{self.forward.port}/status", timeout=2).json()["value"]["ready"]
            except (requests.RequestException, ValueError, KeyError):
                return False
        wait_until(ready, 10, "chromedriver in the browsers host")

    def person(self, name: str, base: str) -> Person:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream", f"--user-data-dir={self.tmp / f'profile-{name}'}",
                    "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-background-networking",
                    "--disable-extensions", "--disable-sync", "--window-size=1000,700",
                    f"--ignore-certificate-errors-spki-list={self.trusted}", *self.extra_args):
            options.add_argument(arg)
        driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{self.forward.port}", options=options)
        driver.set_script_timeout(DRIVER_TIMEOUT)
        driver.set_page_load_timeout(DRIVER_TIMEOUT)
        self.drivers.append(driver)
        return Person(name, driver, base)

    def close(self):
        if self.proc.poll() is not None:
            return
        for driver in self.drivers:
            try:
                driver.quit()
            except Exception:  # noqa: BLE001 - the rest must still be closed
                pass
        self.forward.close()
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def meet(chromium: RemoteChromium, base: str) -> list[Person]:
    """Alice makes a room and Bob joins by its link; each sees the other's video, on https pages
    that are secure contexts."""
    alice, bob = chromium.person("Alice", base), chromium.person("Bob", base)
    link_url = alice.create_room()
    assert link_url.startswith(f"{base}/r/"), link_url
    assert alice.js("return window.isSecureContext") is True
    alice.open_and_join()
    bob.open_and_join(link_url)
    for person in (alice, bob):
        person.wait_tiles(["Alice", "Bob"])
        person.wait_remote_video(["Alice", "Bob"])
    return [alice, bob]


def keeps_meeting(people: list[Person]):
    """Both still see the other's video move (decoded frame counts grow)."""
    for person in people:
        person.wait_remote_video(["Alice", "Bob"])
