"""HTTPS and WSS on Atrium's own ports, seen from another machine.

Atrium runs in a network namespace of its own (the "server" host) and headless Chromium in another
(the "browsers" host), joined by a veth pair: the browsers reach the server at 10.97.0.1 only, as a
laptop on a LAN would, and nothing passes through loopback. The browsers trust the server's
certificate by its public key (`--ignore-certificate-errors-spki-list`, the hash Atrium logs), so
the meeting page is a secure context and getUserMedia works, which on plain http from another
machine it would not. Certificates are made here with `cryptography` (the CA-issued kind from
files: renewals, a key that does not match, expiry) or by Atrium itself (self-signed).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import re
import signal
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from selenium import webdriver

from conftest import ATRIUM_BIN, ROOT, require_build, wait_until
from browser import CHROMEDRIVER, CHROMIUM, DRIVER_TIMEOUT
from hosts import Host, link
from meeting_page import Person, webapp_config

SERVER_IP = "10.97.0.1"
BROWSERS_IP = "10.97.0.2"
SERVER_IP6 = "fd00:97::1"
BROWSERS_IP6 = "fd00:97::2"
HTTPS_PORT = 8443
WSS_PORT = 8989
CHROMEDRIVER_PORT = 9515
NGINX_PORT = 443
NGINX_SITE = ROOT / "docs" / "nginx" / "atrium.conf"


def url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


@pytest.fixture
def lan(request):
    """Two hosts on one link: (server, browsers, the server's address). IPv4 unless the test is
    parametrized with "ipv6", which gives the link IPv6 addresses only."""
    ipv6 = getattr(request, "param", "ipv4") == "ipv6"
    server, browsers = Host("server"), Host("browsers")
    try:
        if ipv6:
            link(server, SERVER_IP6, browsers, BROWSERS_IP6, prefix=64)
        else:
            link(server, SERVER_IP, browsers, BROWSERS_IP)
        yield server, browsers, SERVER_IP6 if ipv6 else SERVER_IP
    finally:
        browsers.close()
        server.close()


class Certificate:
    """A P-256 key and a certificate for SERVER_IP signed by a throwaway CA, as PEM files."""

    def __init__(self, directory: Path, name: str, *, days: int = 90, starts_days_ago: int = 1):
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test CA {name}")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=30))
              .not_valid_after(now + datetime.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
        start = now - datetime.timedelta(days=starts_days_ago)
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_IP)]))
                .issuer_name(ca_name).public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(SERVER_IP))]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.fingerprint = leaf.fingerprint(hashes.SHA256()).hex()
        self.spki = spki_hash(leaf)
        # certbot's fullchain.pem: the leaf, then what signed it.
        self.chain_pem = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
        self.key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
        self.chain_file = directory / f"{name}-fullchain.pem"
        self.key_file = directory / f"{name}-privkey.pem"
        self.chain_file.write_bytes(self.chain_pem)
        self.key_file.write_bytes(self.key_pem)

    def install(self, chain_file: Path, key_file: Path):
        """As a renewal does: new files renamed over the old ones."""
        for content, target in ((self.key_pem, key_file), (self.chain_pem, chain_file)):
            temporary = target.with_suffix(".new")
            temporary.write_bytes(content)
            temporary.replace(target)


def spki_hash(certificate: x509.Certificate) -> str:
    der = certificate.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class RemoteAtrium:
    """Atrium in the server host, TLS on its HTTP and WebSocket ports; or, with `behind_proxy`,
    plain HTTP on loopback with the WebSocket API under /janus-ws, for nginx in front of it
    (docs/nginx/atrium.conf)."""

    def __init__(self, server: Host, tmp: Path, tls: dict, address: str = SERVER_IP, behind_proxy: bool = False):
        require_build(ATRIUM_BIN)
        self.host = server
        config = webapp_config(tmp, recorder=False, turn=False)
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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RemoteChromium:
    """chromedriver in the browsers host, driven through a forwarded port; one Chromium per person."""

    def __init__(self, browsers: Host, tmp: Path, trusted_keys: list[str]):
        home = tmp / "browser-home"
        for sub in ("", ".config", ".cache", "run"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        (home / "run").chmod(0o700)
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
               "XDG_RUNTIME_DIR": str(home / "run"), "PATH": "/usr/bin:/bin"}
        self.tmp = tmp
        self.trusted = ",".join(trusted_keys)
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
                    f"--ignore-certificate-errors-spki-list={self.trusted}"):
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


@pytest.mark.parametrize("lan", ["ipv4", "ipv6"], indirect=True)
def test_meeting_over_https_and_wss_from_another_host_with_a_self_signed_certificate(lan, tmp_path):
    server, browsers, address = lan
    atrium = RemoteAtrium(server, tmp_path, {"self_signed": True}, address)
    chromium = None
    try:
        log = atrium.log()
        spki = re.search(r"spki_sha256=(\S+)", log)
        assert spki, log
        assert f"open the meeting app at {atrium.base}/" in log
        served = atrium.served_certificate()
        assert spki_hash(served) == spki.group(1), "the logged hash is the served certificate's"
        names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert ipaddress.ip_address(address) in names.get_values_for_type(x509.IPAddress)
        assert "localhost" in names.get_values_for_type(x509.DNSName)

        # Plain http on the TLS port: no page, the connection is closed.
        plain = subprocess.run(browsers.command("curl", "-sS", "-m", "5", f"http://{url_host(address)}:{HTTPS_PORT}/"),
                               capture_output=True, text=True)
        assert plain.returncode != 0 and "<html" not in plain.stdout

        chromium = RemoteChromium(browsers, tmp_path, [spki.group(1)])
        alice, bob = meet(chromium, atrium.base)
        # Both pages reached the Janus API over wss, not the long-poll fallback.
        config = alice.js("return fetch('/web-config.json').then(r => r.json())")
        assert config["websocket_port"] == WSS_PORT, config
        assert atrium.metric("atrium_websocket_connections") >= 2
    finally:
        if chromium:
            chromium.close()
        atrium.stop()


def test_a_renewed_certificate_is_used_for_new_connections_while_the_meeting_goes_on(lan, tmp_path):
    server, browsers, _ = lan
    first = Certificate(tmp_path / "certs", "first")
    second = Certificate(tmp_path / "certs", "second")
    live = tmp_path / "live"
    live.mkdir()
    chain_file, key_file = live / "fullchain.pem", live / "privkey.pem"
    first.install(chain_file, key_file)
    atrium = RemoteAtrium(server, tmp_path, {"certificate_file": str(chain_file), "key_file": str(key_file)})
    chromium = RemoteChromium(browsers, tmp_path, [first.spki, second.spki])
    try:
        assert atrium.served_certificate().fingerprint(hashes.SHA256()).hex() == first.fingerprint
        people = meet(chromium, atrium.base)

        def served() -> str:
            return atrium.served_certificate().fingerprint(hashes.SHA256()).hex()

        # A renewal and SIGHUP: new connections get the new certificate at once.
        second.install(chain_file, key_file)
        atrium.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: served() == second.fingerprint, 5, "the renewed certificate after SIGHUP")
        assert "why=SIGHUP" in atrium.log() and "TLS certificate reloaded" in atrium.log()
        keeps_meeting(people)

        # Files changed with no signal (certbot's deploy hook forgotten): picked up by the poll.
        first.install(chain_file, key_file)
        wait_until(lambda: served() == first.fingerprint, 10, "the certificate after its files changed")
        assert "why=the files changed" in atrium.log()

        # A key that is not the certificate's: refused with the reason, the one in use stays.
        key_file.write_bytes(second.key_pem)
        atrium.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "the key does not belong to the certificate" in atrium.log(), 5, "the refused reload logged")
        assert "TLS certificate not reloaded: the one in use stays" in atrium.log()
        assert served() == first.fingerprint
        assert atrium.proc.poll() is None, "SIGHUP does not end the server"

        # Through all of it the meeting went on.
        keeps_meeting(people)
    finally:
        chromium.close()
        atrium.stop()


def test_check_config_names_what_is_wrong_with_a_certificate(tmp_path):
    good = Certificate(tmp_path, "good")
    other = Certificate(tmp_path, "other")
    expired = Certificate(tmp_path, "expired", days=10, starts_days_ago=40)
    cases = {
        "the key does not belong to the certificate": (good.chain_file, other.key_file),
        "the certificate expired on ": (expired.chain_file, expired.key_file),
        f"{tmp_path / 'missing.pem'}: cannot be read": (tmp_path / "missing.pem", good.key_file),
    }
    for expected, (chain, key) in cases.items():
        config = webapp_config(tmp_path, recorder=False, turn=False)
        config["http"].update(certificate_file=str(chain), key_file=str(key))
        path = tmp_path / "check.json"
        path.write_text(json.dumps(config))
        done = subprocess.run([str(ATRIUM_BIN), "check-config", str(path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, (expected, done.stdout, done.stderr)
        assert "http TLS (certificate_file, key_file, self_signed): " in done.stderr and expected in done.stderr, done.stderr
    config = webapp_config(tmp_path, recorder=False, turn=False)
    config["http"].update(certificate_file=str(good.chain_file), key_file=str(good.key_file))
    path.write_text(json.dumps(config))
    done = subprocess.run([str(ATRIUM_BIN), "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


class Nginx:
    """Debian's nginx in the server host, serving docs/nginx/atrium.conf as written but for the
    certificate paths."""

    def __init__(self, server: Host, tmp: Path, certificate: Certificate):
        binary = Path("/usr/sbin/nginx")
        if not binary.exists():
            pytest.fail("nginx is missing: apt-get install nginx (make test installs it)", pytrace=False)
        root = tmp / "nginx"
        root.mkdir()
        site = NGINX_SITE.read_text()
        for placeholder, actual in (("/etc/letsencrypt/live/meet.example.org/fullchain.pem", certificate.chain_file),
                                    ("/etc/letsencrypt/live/meet.example.org/privkey.pem", certificate.key_file)):
            assert placeholder in site, placeholder
            site = site.replace(placeholder, str(actual))
        (root / "atrium.conf").write_text(site)
        temp = "".join(f"{kind}_temp_path {root / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (root / "nginx.conf").write_text(
            f"daemon off;\npid {root / 'nginx.pid'};\nerror_log {root / 'error.log'} info;\nevents {{}}\n"
            f"http {{\naccess_log {root / 'access.log'};\n{temp}include {root / 'atrium.conf'};\n}}\n")
        self.log_path = root / "error.log"
        self.proc = server.popen([str(binary), "-p", str(root), "-c", str(root / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or "start worker process" in self.log(), 10, "nginx started")
        assert self.proc.poll() is None, f"nginx exited:\n{self.log()}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def access_log(self) -> str:
        return (self.log_path.parent / "access.log").read_text(errors="replace")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_meeting_through_nginx_which_ends_tls_and_names_the_real_client(lan, tmp_path):
    server, browsers, address = lan
    certificate = Certificate(tmp_path / "certs", "proxy")
    atrium = RemoteAtrium(server, tmp_path, {}, behind_proxy=True)
    nginx = Nginx(server, tmp_path, certificate)
    chromium = RemoteChromium(browsers, tmp_path, [certificate.spki])
    try:
        assert atrium.served_certificate().fingerprint(hashes.SHA256()).hex() == certificate.fingerprint
        alice, bob = meet(chromium, atrium.base)
        # The pages reached the WebSocket API through nginx, on the page's own port.
        config = alice.js("return fetch('/web-config.json').then(r => r.json())")
        assert config["websocket_path"] == "/janus-ws" and config["websocket_port"] is None, config
        assert not re.search(r'"(GET|POST) /janus[/ ]', nginx.access_log()), "no Janus API over HTTP (long polls)"
        # Atrium counted the browsers' address, not nginx's (the SFU logs who made a room).
        log = atrium.log()
        assert f"created by {BROWSERS_IP}" in log, log[-3000:]
        assert "created by 127.0.0.1" not in log
        # A client cannot pick its address: what it writes in X-Forwarded-For comes before what
        # nginx appends and is not believed, so /metrics (private to loopback) stays closed to it.
        forged = subprocess.run(browsers.command("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                                 "-H", "X-Forwarded-For: 127.0.0.1", f"{atrium.base}/metrics"),
                                capture_output=True, text=True)
        assert forged.stdout == "403", forged
        # nginx logs a WebSocket when it closes: both pages' upgrades, once they are gone.
        chromium.close()
        wait_until(lambda: len(re.findall(r'"GET /janus-ws HTTP/1.1" 101 ', nginx.access_log())) >= 2, 10,
                   "both WebSocket upgrades in nginx's log")
    finally:
        chromium.close()
        nginx.stop()
        atrium.stop()
