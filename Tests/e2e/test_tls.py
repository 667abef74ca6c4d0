"""HTTPS and WSS on Atrium's own ports, and nginx in front, seen from another machine (remote_meeting.py).

Atrium runs in a network namespace of its own (the "server" host) and headless Chromium in another
(the "browsers" host), joined by a veth pair: the browsers reach the server at 10.97.0.1 only, as a
laptop on a LAN would, and nothing passes through loopback. The browsers trust the server's
certificate by its public key (`--ignore-certificate-errors-spki-list`, the hash Atrium logs), so
the meeting page is a secure context and getUserMedia works, which on plain http from another
machine it would not. Certificates are made here with `cryptography` (the CA-issued kind from
files: renewals, a key that does not match, expiry) or by Atrium itself (self-signed).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ATRIUM_BIN, ROOT, stop_process, wait_until
from hosts import Host
from meeting_page import webapp_config
from remote_meeting import (BROWSERS_IP, HTTPS_PORT, SERVER_IP, WSS_PORT, RemoteAtrium, RemoteChromium, keeps_meeting, meet,
                            spki_hash, url_host)

NGINX_SITE = ROOT / "docs" / "nginx" / "atrium.conf"



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
        stop_process(self.proc)


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
