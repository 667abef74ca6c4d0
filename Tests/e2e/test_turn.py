"""Atrium's TURN plugin (libatrium_turn.so, atrium.plugin.turn) end to end, with coturn's own
client tools and a small client of ours (turn_client.py).

The server is Atrium (default) with the TURN plugin configured by ``turn_config()``, or, with
ATRIUM_E2E_TURN=coturn, Debian coturn 4.6.1's ``turnserver`` set up to behave like that
configuration, so that every test here was seen passing against a real TURN server before
Atrium's plugin existed. coturn cannot serve static long-term users and TURN REST secrets from
one process, so coturn mode starts two: ``lt`` (alice and carol) and ``rest`` (the secrets);
Atrium serves both from one plugin and the two names map to the same ports. The peer policy
coturn is given (--denied-peer-ip/--allowed-peer-ip/--no-multicast-peers) mirrors Atrium's
defaults plus ``allowed_peer_ips: ["10.99.0.0/24", "fd99::/64"]``. Tests of what coturn does not
have (Atrium's /metrics, RFC 8489 SHA-256 credentials, the ``listen`` key) are marked
``atrium_only``: deselect them with ``-m "not atrium_only"`` in coturn mode.

What is proved (the issue's "Done when"):
  1. turnutils_uclient relays with zero loss to turnutils_peer, with long-term and REST
     credentials, over UDP, TCP and TLS, with channels and with Send indications, with -c (one
     allocation per client) and without (RTP/RTCP pairs: EVEN-PORT R=1 + RESERVATION-TOKEN).
  2. turnutils_stunclient learns its own address (compared with the source port of its Binding
     request, read off the loopback interface).
  3. Refusals, with turn_client.py: denied peers (403 on CreatePermission and ChannelBind, and
     Send indications to them reach nothing), wrong or expired REST credentials (401), another
     user's credentials on an allocation (441), another 5-tuple (437, and its Send/ChannelData
     are not relayed while the owner's are), a request without MESSAGE-INTEGRITY (401 with
     REALM and NONCE, no allocation), garbage (no answer at all), unknown comprehension-required
     attributes (420). Our client also relays over TCP and TLS (RFC 8656 §12.5 framing), and a
     failed TLS handshake must not disturb a TLS client already relaying.
  4. Atrium only: the credentials request through the Janus API gives iceServers that
     turnutils_uclient relays with (coturn mode: the same credentials minted here), and the
     atrium_turn_* metrics move.
  5. Atrium only (coturn has no RFC 8489 SHA-256 credentials): our client with rfc8489=True
     negotiates SHA-256 from the 401's PASSWORD-ALGORITHMS, allocates and relays both ways with
     static and REST credentials over UDP, TCP (with USERHASH) and TLS, every answer signed with
     MESSAGE-INTEGRITY-SHA256; a tampered PASSWORD-ALGORITHMS or an unknown algorithm gets 400.
  6. RFC 6062 TCP allocations: turnutils_uclient -T (client to client through two TCP relays,
     Connect + ConnectionAttempt + ConnectionBind) with zero loss over TCP and TLS, static and
     REST credentials; our client Connects to a TCP echo peer and gets every byte back (also 3 MB
     over TLS, held to the bandwidth cap by Atrium), a peer connecting in is announced with a
     ConnectionAttempt only with a permission, Connect to denied peers gets 403, to a closed port
     447, twice to one peer 446, and ConnectionBind with an unknown CONNECTION-ID gets 400.
  7. IPv6 (the fixture adds fd99::1 to atrium0 when the namespace lacks it): turnutils_uclient
     over IPv6 (UDP, TCP, TLS; -x IPv6 relays), across families both ways, and dual allocations
     (-Z) to IPv6 and IPv4 echo peers, with zero loss; our client's dual allocation relays to a
     peer of each family from the matching relayed address and sheds its IPv6 half with a
     per-family Refresh; REQUESTED-ADDRESS-FAMILY IPv6 for an IPv4 client (443 for IPv4 peers);
     IPv4 by default for an IPv6 client; IPv6 peers denied (loopback, link-local, ULA outside
     fd99::/64, multicast, 6to4 and NAT64 of loopback and the metadata service); a TCP relay
     over IPv6; Atrium listening on "0.0.0.0" and "::" at once.

Where coturn 4.6.1 differs from Atrium's documented behaviour, that single case is xfail in
coturn mode (never in atrium mode), with the reason:
  - an IPv6 XOR-PEER-ADDRESS on an IPv4 allocation (::ffff:127.0.0.1, ::1, ::) gets
    443 Peer Address Family Mismatch from coturn before its peer filter runs; Atrium judges the
    embedded IPv4 (or the always-denied IPv6) and answers 403.
  - CreatePermission / ChannelBind from a 5-tuple without an allocation gets 400 from coturn;
    RFC 8656 §7.3 wants 437 Allocation Mismatch (coturn answers Refresh with 437).
  - a Binding request whose attribute runs past the end of the message gets an answer from
    coturn; Atrium drops malformed datagrams without a word.
  - ConnectionBind with an unknown CONNECTION-ID: coturn answers 400 and resets the connection at
    once, so the client reads the reset, not the answer.
  - ADDITIONAL-ADDRESS-FAMILY 0x8000 (RFC 8656): coturn 4.6.1 knows only the draft's 0x8032 and
    makes an IPv4 allocation.
  - 6to4 and NAT64 addresses carrying 127.0.0.1 or 169.254.169.254: coturn 4.6.1 does not look
    inside them (CVE-2026-73212, fixed in 4.13.1).

The peer 10.99.0.1 is allowed twice over in Atrium: by allowed_peer_ips and because it is one of
this machine's own addresses (allow_own_addresses, default true); 10.99.0.2 checks the allow-list
alone.

Runs in the e2e network namespace (MEDIA_IP = 10.99.0.1 and MEDIA_IP6 = fd99::1 on a veth);
nothing leaves the machine.
Relay ports are 61000-61999, above Linux's default ephemeral range, so the kernel never hands a
test socket a port the server wants for a relay.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import (ARTIFACTS, BUILD_DIR, AtriumServer, MEDIA_IP, base_config, chat_plugin_entry, require_media_ip,
                      turn_plugin_entry)
from janus_client import HttpJanus
from turn_client import (ADDITIONAL_ADDRESS_FAMILY, ADDRESS_ERROR_CODE, ALLOCATE, BINDING, CHANNEL_BIND, CHANNEL_NUMBER,
                         CONNECTION_ATTEMPT, CREATE_PERMISSION, ERROR, INDICATION, LIFETIME, MD5, MESSAGE_INTEGRITY,
                         NONCE, PASSWORD_ALGORITHM, PASSWORD_ALGORITHMS, REALM, REFRESH, REQUEST,
                         REQUESTED_ADDRESS_FAMILY, REQUESTED_TRANSPORT, SHA256, SUCCESS, TCP_TRANSPORT,
                         UNKNOWN_ATTRIBUTES, USERNAME, XOR_MAPPED_ADDRESS, XOR_PEER_ADDRESS, XOR_RELAYED_ADDRESS,
                         Message, TurnClient, channel_data, long_term_key, rest_credentials)

TURN_KIND = os.environ.get("ATRIUM_E2E_TURN", "atrium")
COTURN = TURN_KIND == "coturn"
TURN_PLUGIN = "atrium.plugin.turn"

REALM_NAME = "atrium"
USERS = {"alice": "secretpw", "carol": "carolpw"}
SECRETS = ["s3cr3t", "0ld-s3cr3t"]        # the first mints, both are accepted (rotation)
RELAY_MIN, RELAY_MAX = 61000, 61999
ALLOWED_PEERS = "10.99.0.0/24"
# IPv6: the namespace's atrium0 also gets MEDIA_IP6 (see require_media_ip6); a ULA, so the peer
# policy denies it by default and the tests re-open its /64 as they do 10.99.0.0/24.
MEDIA_IP6 = os.environ.get("ATRIUM_E2E_MEDIA_IP6", "fd99::1")
ALLOWED_PEERS6 = "fd99::/64"
CREDENTIAL_TTL = 86400

# What coturn needs to refuse what Atrium refuses by default (it already refuses 0/8, 127/8, ::1).
# Allow rules win over deny rules in coturn, as allowed_peer_ips re-opens ranges in Atrium.
COTURN_PEER_POLICY = [
    "--no-multicast-peers",
    "--denied-peer-ip=10.0.0.0-10.255.255.255",
    "--denied-peer-ip=172.16.0.0-172.31.255.255",
    "--denied-peer-ip=192.168.0.0-192.168.255.255",
    "--denied-peer-ip=100.64.0.0-100.127.255.255",
    "--denied-peer-ip=169.254.0.0-169.254.255.255",
    "--denied-peer-ip=192.0.2.0-192.0.2.255",
    "--allowed-peer-ip=10.99.0.0-10.99.0.255",
    "--denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "--denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "--allowed-peer-ip=fd99::-fd99::ffff:ffff:ffff:ffff",
]


def turn_config(udp_tcp_port: int, tls_port: int, cert: Path, key: Path) -> dict:
    """The TURN plugin's config in the tests (keys: Plugins/TURN/Core/TURNConfig.swift)."""
    return {
        "realm": REALM_NAME,
        "listen": [MEDIA_IP, MEDIA_IP6],
        "udp_port": udp_tcp_port,
        "tcp_port": udp_tcp_port,
        "tls_port": tls_port,
        "certificate_file": str(cert),
        "key_file": str(key),
        "relay_addresses": [MEDIA_IP, MEDIA_IP6],
        "min_port": RELAY_MIN,
        "max_port": RELAY_MAX,
        "users": USERS,
        "secrets": SECRETS,
        "credential_ttl_seconds": CREDENTIAL_TTL,
        "allowed_peer_ips": [ALLOWED_PEERS, ALLOWED_PEERS6],
        # turnutils_uclient never deallocates over UDP (its allocations live out their 600 s), and
        # the matrix below runs alice's clients side by side: the default 10 would be reached.
        "max_allocations_per_user": 100,
        # Every client of the matrix comes from the one test address (10.99.0.1), so the share of
        # one address (40 by default) is raised as for a host behind one NAT.
        "max_allocations_per_address": 1000,
    }


# --------------------------------------------------------------------------------------------
# Ports, processes, the server

def family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def require_media_ip6() -> str:
    """MEDIA_IP6 on atrium0, added here when missing: `make e2e`'s namespace set-up (E2E_NET) gives
    atrium0 only 10.99.0.1. Inside that private namespace the tests may add an address; outside
    one, require_media_ip has already failed. `nodad` makes the address usable at once."""
    require_media_ip()

    def usable() -> bool:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind((MEDIA_IP6, 0))
            return True
        except OSError:
            return False

    if not usable():
        subprocess.run(["ip", "-6", "addr", "add", f"{MEDIA_IP6}/64", "dev", "atrium0", "nodad"],
                       capture_output=True, timeout=10)
    if not usable():
        pytest.fail(f"{MEDIA_IP6} is not a local address and could not be added to atrium0: the TURN tests need it "
                    f"next to {MEDIA_IP} (`ip -6 addr add {MEDIA_IP6}/64 dev atrium0 nodad` in the namespace)",
                    pytrace=False)
    return MEDIA_IP6


def free_udp_tcp_port(ip: str = MEDIA_IP, count: int = 1, also: str | None = None) -> int:
    """A port free for both UDP and TCP on `ip` (with `count` consecutive ports free for UDP), and
    on `also` too if given (a server listening on both families)."""
    for _ in range(200):
        with socket.socket(family(ip), socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        if port + count > RELAY_MIN:
            continue
        try:
            socks = []
            for address in [ip] + ([also] if also else []):
                for p in range(port, port + count):
                    u = socket.socket(family(address), socket.SOCK_DGRAM)
                    socks.append(u)
                    u.bind((address, p))
                t = socket.socket(family(address), socket.SOCK_STREAM)
                socks.append(t)
                t.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "turn-cert.pem", folder / "turn-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    f"/CN={MEDIA_IP}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


@dataclass
class TurnServer:
    """What the tests need of either server: where each credential kind is served, and logs."""
    kind: str
    ports: dict[tuple[str, str], int]       # (creds "lt"|"rest", transport "udp"|"tcp"|"tls") -> port
    logs: list[Path]
    procs: list[subprocess.Popen] = field(default_factory=list)
    atrium: AtriumServer | None = None

    def port(self, creds: str = "lt", transport: str = "udp") -> int:
        return self.ports[(creds, transport)]

    def addr(self, creds: str = "lt", transport: str = "udp", ip: str = MEDIA_IP) -> tuple[str, int]:
        return ip, self.port(creds, transport)

    def alive(self) -> bool:
        if self.atrium is not None:
            return self.atrium.alive()
        return all(p.poll() is None for p in self.procs)

    def log(self, lines: int = 60) -> str:
        return "\n".join(f"--- {p.name} (last {lines} lines)\n{tail(p, lines)}" for p in self.logs)


def wait_until_serving(server: TurnServer, timeout: float = 10.0) -> None:
    """Until every UDP port answers a Binding and every TCP/TLS port accepts a connection."""
    deadline = time.monotonic() + timeout
    pending = set(server.ports.items())
    while pending and time.monotonic() < deadline:
        if not server.alive():
            break
        for (creds, transport), port in list(pending):
            try:
                for ip in (MEDIA_IP, MEDIA_IP6):
                    if transport == "udp":
                        with TurnClient((ip, port), timeout=0.2) as c:
                            if c.request(BINDING, auth=False) is None:
                                raise OSError(f"no Binding answer on [{ip}]:{port}")
                    else:
                        socket.create_connection((ip, port), timeout=0.2).close()
                pending.discard(((creds, transport), port))
            except OSError:
                pass
        if pending:
            time.sleep(0.05)
    if pending:
        raise AssertionError(f"{server.kind} is not serving {sorted(pending)} (alive: {server.alive()}):\n"
                             f"{server.log()}")


def start_coturn(name: str, folder: Path, port: int, tls_port: int, relay: tuple[int, int],
                 auth: list[str], cert: Path, key: Path) -> tuple[subprocess.Popen, Path]:
    log = folder / f"coturn-{name}.log"
    cmd = ["turnserver", "-n", "-v", f"--listening-ip={MEDIA_IP}", f"--relay-ip={MEDIA_IP}",
           f"--listening-ip={MEDIA_IP6}", f"--relay-ip={MEDIA_IP6}",
           f"--listening-port={port}", f"--tls-listening-port={tls_port}",
           f"--min-port={relay[0]}", f"--max-port={relay[1]}", f"--realm={REALM_NAME}",
           f"--cert={cert}", f"--pkey={key}", "--no-dtls", "--no-cli",
           "--log-file=stdout", "--simple-log", f"--pidfile={folder / f'coturn-{name}.pid'}",
           f"--db={folder / f'coturn-{name}.sqlite'}", *COTURN_PEER_POLICY, *auth]
    out = open(log, "w")
    out.write(" ".join(cmd) + "\n")
    out.flush()
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=folder), log


@pytest.fixture(scope="module")
def turn(tmp_path_factory):
    require_media_ip6()
    folder = tmp_path_factory.mktemp(f"turn-{TURN_KIND}")
    cert, key = make_certificate(folder)
    if COTURN:
        if shutil.which("turnserver") is None:
            pytest.fail("ATRIUM_E2E_TURN=coturn needs coturn's turnserver (Debian package coturn)", pytrace=False)
        lt_port, lt_tls, rest_port, rest_tls = (free_udp_tcp_port(also=MEDIA_IP6) for _ in range(4))
        half = (RELAY_MIN + RELAY_MAX) // 2
        lt, lt_log = start_coturn("lt", folder, lt_port, lt_tls, (RELAY_MIN, half), [
            "--lt-cred-mech", *(f"--user={u}:{p}" for u, p in USERS.items())], cert, key)
        rest, rest_log = start_coturn("rest", folder, rest_port, rest_tls, (half + 1, RELAY_MAX), [
            "--use-auth-secret", *(f"--static-auth-secret={s}" for s in SECRETS)], cert, key)
        server = TurnServer("coturn", {("lt", "udp"): lt_port, ("lt", "tcp"): lt_port, ("lt", "tls"): lt_tls,
                                       ("rest", "udp"): rest_port, ("rest", "tcp"): rest_port,
                                       ("rest", "tls"): rest_tls},
                            [lt_log, rest_log], [lt, rest])
        try:
            wait_until_serving(server)
            yield server
        finally:
            for p in server.procs:
                p.terminate()
            for p in server.procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    elif TURN_KIND == "atrium":
        port, tls_port = free_udp_tcp_port(also=MEDIA_IP6), free_udp_tcp_port(also=MEDIA_IP6)
        # The chat plugin is there for `credentials`, which TURN hands only to sessions in a meeting.
        config = base_config([turn_plugin_entry(**turn_config(port, tls_port, cert, key)), chat_plugin_entry()])
        atrium = AtriumServer(config, folder / "atrium")
        failure = None
        try:
            atrium.start()
        except AssertionError as e:
            failure = str(e)
        if failure is not None:
            plugin = BUILD_DIR / "libatrium_turn.so"
            hint = "" if plugin.exists() else (
                f"\n{plugin} does not exist: the TURN plugin is not built (yet). "
                f"ATRIUM_E2E_TURN=coturn runs this suite against coturn's turnserver instead.")
            pytest.fail(f"atrium with the TURN plugin did not start{hint}\n{failure}", pytrace=False)
        server = TurnServer("atrium", {(c, t): (tls_port if t == "tls" else port)
                                       for c in ("lt", "rest") for t in ("udp", "tcp", "tls")},
                            [atrium.log_path], atrium=atrium)
        try:
            wait_until_serving(server)
            yield server
        finally:
            code = atrium.stop()
        assert code == 0, f"atrium did not stop cleanly (exit {code}):\n{atrium.log()[-4000:]}"
    else:
        pytest.fail(f"ATRIUM_E2E_TURN={TURN_KIND!r}: expected 'atrium' or 'coturn'", pytrace=False)


def start_echo_peer(ip: str, folder: Path):
    """turnutils_peer: a UDP echo on `ip`, on a port and the next (uclient's RTCP goes to +1)."""
    port = free_udp_tcp_port(ip, count=2)
    log = folder / "turnutils_peer.log"
    proc = subprocess.Popen(["turnutils_peer", "-L", ip, "-p", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        with socket.socket(family(ip), socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
            s.settimeout(0.1)
            for _ in range(50):
                s.sendto(b"ping", (ip, port))
                try:
                    if s.recvfrom(100)[0] == b"ping":
                        break
                except socket.timeout:
                    pass
            else:
                raise AssertionError(f"turnutils_peer does not echo on {port}:\n{tail(log)}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def echo_peer(tmp_path_factory):
    require_media_ip()
    yield from start_echo_peer(MEDIA_IP, tmp_path_factory.mktemp("turn-peer"))


@pytest.fixture(scope="module")
def echo_peer6(tmp_path_factory):
    require_media_ip6()
    yield from start_echo_peer(MEDIA_IP6, tmp_path_factory.mktemp("turn-peer6"))


@pytest.fixture(autouse=True)
def server_logs_on_failure(request):
    """On failure, the TURN server's logs go to Tests/e2e/artifacts/turn-<test>-* and their tail
    to the report."""
    yield
    report = getattr(request.node, "rep_call", None)
    server = request.node.funcargs.get("turn")
    if report is None or not report.failed or server is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    for log in server.logs:
        if log.exists():
            shutil.copy(log, ARTIFACTS / f"turn-{name}-{log.name}")
    print(f"TURN server ({server.kind}) logs copied to {ARTIFACTS}/turn-{name}-*\n{server.log(40)}")


# --------------------------------------------------------------------------------------------
# turnutils_uclient

UCLIENT_TOTALS = re.compile(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)
UCLIENT_LOST = re.compile(r"Total lost packets (\d+) \(([\d.]+)%\), total send dropped (\d+)")


@dataclass(frozen=True)
class UclientCase:
    creds: str          # "lt" (alice) or "rest" (-W secret)
    transport: str      # "udp", "tcp" or "tls"
    send: bool          # -s: Send/Data indications instead of channels
    rtcp: bool          # no -c: RTP/RTCP allocation pairs (EVEN-PORT R=1 + RESERVATION-TOKEN)

    @property
    def id(self) -> str:
        return f"{self.creds}-{self.transport}-{'send' if self.send else 'channel'}{'-rtcp' if self.rtcp else ''}"


UCLIENT_CASES = [UclientCase(c, t, s, False)
                 for c in ("lt", "rest") for t in ("udp", "tcp", "tls") for s in (False, True)]
UCLIENT_CASES += [UclientCase("lt", "udp", False, True), UclientCase("rest", "udp", True, True),
                  UclientCase("lt", "tcp", True, True), UclientCase("rest", "tls", False, True)]
UCLIENT_CLIENTS, UCLIENT_MESSAGES = 2, 50


class UclientRun:
    """One turnutils_uclient process, its output in a file."""

    def __init__(self, args: list[str], out: Path):
        self.cmd = ["turnutils_uclient", *args]
        self.out = out
        self.proc = subprocess.Popen(self.cmd, stdout=open(out, "w"), stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=max(0.1, timeout - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self.out.read_text(errors="replace")

    def check_zero_loss(self, server: TurnServer, expected_at_least: int) -> tuple[int, int]:
        rc, output = self.wait()
        shown = "\n".join(output.splitlines()[-40:])
        where = f"$ {' '.join(self.cmd)}\nexit {rc}; last lines of its output:\n{shown}\n\n{server.log(30)}"
        assert rc == 0, f"turnutils_uclient failed\n{where}"
        totals = UCLIENT_TOTALS.findall(output)
        lost = UCLIENT_LOST.search(output)
        assert totals and lost, f"no totals in turnutils_uclient's output\n{where}"
        sent, received = map(int, totals[-1])
        assert sent == received >= expected_at_least, f"sent {sent}, received {received}\n{where}"
        assert int(lost.group(1)) == 0 and int(lost.group(3)) == 0, f"lost or dropped packets\n{where}"
        return sent, received


def uclient_args(server: TurnServer, creds: str, transport: str, peer_port: int, *, send: bool = False,
                 rtcp: bool = False, user: str = "bob", username: str | None = None,
                 password: str | None = None, port: int | None = None,
                 clients: int = UCLIENT_CLIENTS, messages: int = UCLIENT_MESSAGES) -> list[str]:
    args = ["-p", str(port or server.port(creds, transport))]
    if transport in ("tcp", "tls"):
        args.append("-t")
    if transport == "tls":
        args.append("-S")
    if send:
        args.append("-s")
    if not rtcp:
        args.append("-c")
    if username is not None:
        args += ["-u", username, "-w", password]
    elif creds == "lt":
        args += ["-u", "alice", "-w", USERS["alice"]]
    else:
        args += ["-u", user, "-W", SECRETS[0]]
    return args + ["-e", MEDIA_IP, "-r", str(peer_port), "-m", str(clients), "-n", str(messages),
                   "-l", "200", "-z", "10", "-X", "-g", MEDIA_IP]


@pytest.fixture(scope="module")
def uclient_runs(request, turn, echo_peer, tmp_path_factory):
    """Every selected uclient case starts at once (each takes seconds, mostly uclient's own
    1-second ticks); each test then waits for its own."""
    wanted = {item.callspec.params["case"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_uclient_relays_with_zero_loss"
              and hasattr(item, "callspec")}
    folder = tmp_path_factory.mktemp("uclient")
    runs = {case: UclientRun(uclient_args(turn, case.creds, case.transport, echo_peer, send=case.send,
                                          rtcp=case.rtcp, user=f"bob-{case.id}"),
                             folder / f"{case.id}.txt")
            for case in UCLIENT_CASES if case in wanted}
    yield runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


@pytest.mark.parametrize("case", UCLIENT_CASES, ids=lambda c: c.id)
def test_uclient_relays_with_zero_loss(turn, uclient_runs, case):
    uclient_runs[case].check_zero_loss(turn, UCLIENT_CLIENTS * UCLIENT_MESSAGES)


def test_uclient_with_a_wrong_rest_secret_gets_no_allocation(turn, echo_peer, tmp_path):
    args = uclient_args(turn, "rest", "udp", echo_peer, messages=5, clients=1)
    args[args.index("-W") + 1] = "not-the-secret"
    rc, output = UclientRun(args, tmp_path / "uclient.txt").wait(20)
    assert rc != 0 and not UCLIENT_TOTALS.search(output), \
        f"turnutils_uclient with a wrong secret: exit {rc}\n{output[-3000:]}\n{turn.log(30)}"


# --------------------------------------------------------------------------------------------
# STUN Binding

def sniff_binding_source_ports(sniffer: socket.socket | None, server_port: int) -> set[int] | None:
    """Source ports of STUN Binding requests to MEDIA_IP:server_port seen on lo (None: no sniffer)."""
    if sniffer is None:
        return None
    ports = set()
    ip = socket.inet_aton(MEDIA_IP)
    while True:
        try:
            frame = sniffer.recv(65535)
        except BlockingIOError:
            return ports
        if len(frame) < 14 + 20 + 8 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        if frame[14 + 9] != 17 or frame[14 + 16:14 + 20] != ip:
            continue
        src, dst = struct.unpack("!HH", frame[14 + ihl:14 + ihl + 4])
        payload = frame[14 + ihl + 8:]
        if dst == server_port and payload[:2] == b"\x00\x01" and payload[4:8] == b"\x21\x12\xa4\x42":
            ports.add(src)


def test_stunclient_gets_its_mapped_address(turn):
    port = turn.port("lt", "udp")
    try:      # an AF_PACKET socket on lo shows which port stunclient sent from (root in the namespace)
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sniffer.bind(("lo", 0))
        sniffer.setblocking(False)
    except (PermissionError, OSError):
        sniffer = None
    try:
        cmd = ["turnutils_stunclient", "-p", str(port), MEDIA_IP]
        try:   # it waits for an answer forever
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            output, rc = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as e:
            output, rc = f"{e.stdout or ''}{e.stderr or ''}\n(no answer within 5 s)", None
        where = f"$ {' '.join(cmd)}\nexit {rc}:\n{output}\n{turn.log(20)}"
        found = re.findall(r"UDP reflexive addr: ([\d.]+):(\d+)", output)
        assert rc == 0 and found, f"turnutils_stunclient printed no reflexive address\n{where}"
        ip, mapped = found[-1][0], int(found[-1][1])
        assert ip == MEDIA_IP, where
        sources = sniff_binding_source_ports(sniffer, port)
    finally:
        if sniffer is not None:
            sniffer.close()
    if sources is not None:
        assert mapped in sources, f"mapped port {mapped}, Binding requests came from {sources}\n{where}"
    else:    # no raw socket: at least an ephemeral port of this machine
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        assert low <= mapped <= high and mapped != port, where


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_binding_answers_the_client_address(turn, transport):
    with TurnClient(turn.addr("lt", transport), transport=transport, local_ip=MEDIA_IP) as c:
        r = c.request(BINDING, auth=False)
        assert r is not None and r.cls == SUCCESS, f"Binding over {transport}: {r}\n{turn.log(20)}"
        assert r.xor(XOR_MAPPED_ADDRESS) == c.local, f"{r} for a client at {c.local}"
        assert r.fingerprint_ok is not False, f"bad FINGERPRINT in {r}"


# --------------------------------------------------------------------------------------------
# Helpers for our own client

class UdpPeer:
    """A plain UDP socket standing in for the far side of a relay."""

    def __init__(self, ip: str = MEDIA_IP):
        self.sock = socket.socket(family(ip), socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.addr = self.sock.getsockname()[:2]

    def receive(self, expected: int = 1, timeout: float = 1.0) -> list[tuple[bytes, tuple[str, int]]]:
        """Datagrams until `expected` came or `timeout` passed."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, source = self.sock.recvfrom(65535)
                got.append((data, source[:2]))
            except socket.timeout:
                break
        return got

    def close(self):
        self.sock.close()


def refused(response: Message | None, code: int, what: str, client: TurnClient, server: TurnServer) -> Message:
    assert response is not None, f"{what}: no answer (expected error {code})\n{server.log(20)}"
    assert response.cls == ERROR and response.error_code == code, \
        f"{what}: expected error {code}, got {response}\n{server.log(20)}"
    signed = response.integrity_offset is not None or response.integrity_sha256_offset is not None
    if signed and client.key is not None and code not in (401, 441):
        assert response.check_integrity(client.key), f"{what}: MESSAGE-INTEGRITY does not verify: {response}"
    return response


def lt_client(server: TurnServer, user: str = "alice", transport: str = "udp", ip: str = MEDIA_IP) -> TurnClient:
    """alice (or `user`) on the static-user listener, reaching it at `ip` from the same address."""
    return TurnClient(server.addr("lt", transport, ip), user, USERS[user], transport=transport, local_ip=ip)


@pytest.fixture(scope="module")
def alice(turn):
    """An allocation of alice's over UDP that several refusal tests share."""
    client = lt_client(turn)
    client.allocate()
    yield client
    client.close()


# --------------------------------------------------------------------------------------------
# Authentication

@pytest.mark.parametrize("method", [ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND],
                         ids=["Allocate", "Refresh", "CreatePermission", "ChannelBind"])
def test_request_without_integrity_gets_401_with_realm_and_nonce_and_no_state(turn, method):
    with lt_client(turn) as c:
        bare = Message(method, REQUEST)
        if method == ALLOCATE:
            bare.add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        if method in (CREATE_PERMISSION, CHANNEL_BIND):
            bare.add_xor(XOR_PEER_ADDRESS, MEDIA_IP, 5000)
        if method == CHANNEL_BIND:
            bare.add(CHANNEL_NUMBER, struct.pack("!HH", 0x4000, 0))
        r = c.transact(bare)
        refused(r, 401, "unsigned request", c, turn)
        assert r.get(REALM) == REALM_NAME.encode(), f"REALM {r.get(REALM)!r} in {r}"
        assert r.get(NONCE), f"no NONCE in {r}"
        for attr in (XOR_RELAYED_ADDRESS, XOR_MAPPED_ADDRESS, LIFETIME, MESSAGE_INTEGRITY):
            assert r.get(attr) is None, f"attribute {attr:#06x} in a 401: {r}"
        c.realm, c.nonce = r.get(REALM).decode(), r.get(NONCE)
        # Nothing was allocated for this 5-tuple: a signed Refresh finds no allocation ...
        refused(c.refresh(600), 437, "signed Refresh after the 401", c, turn)
        # ... and the 5-tuple can still allocate properly.
        assert c.allocate()[0] == MEDIA_IP


def test_wrong_rest_secret_gets_401_and_no_allocation(turn):
    username, password = rest_credentials("not-the-secret", "mallory")
    with TurnClient(turn.addr("rest"), username, password, local_ip=MEDIA_IP) as c:
        r = c.allocate_request()
        assert c.nonce is not None, f"no 401 with a nonce first: {r}"
        refused(r, 401, "Allocate signed with a wrong REST secret", c, turn)
        assert r.get(XOR_RELAYED_ADDRESS) is None


def test_expired_rest_credential_gets_401(turn):
    username, password = rest_credentials(SECRETS[0], "late", ttl=-60)
    with TurnClient(turn.addr("rest"), username, password, local_ip=MEDIA_IP) as c:
        r = c.allocate_request()
        assert c.nonce is not None, f"no 401 with a nonce first: {r}"
        refused(r, 401, f"Allocate with REST username {username} (expired a minute ago)", c, turn)
    # Control: the same minting, in date, allocates.
    username, password = rest_credentials(SECRETS[0], "late", ttl=600)
    with TurnClient(turn.addr("rest"), username, password, local_ip=MEDIA_IP) as c:
        c.allocate()


@pytest.mark.parametrize("secret", SECRETS, ids=["first-secret", "second-secret"])
def test_every_rest_secret_is_accepted(turn, secret):
    username, password = rest_credentials(secret, "rotating")
    with TurnClient(turn.addr("rest"), username, password, local_ip=MEDIA_IP) as c:
        assert c.allocate()[0] == MEDIA_IP


def test_refresh_with_another_users_credentials_gets_441(turn):
    with lt_client(turn) as c:
        c.allocate()
        r = c.refresh(600, username="carol", password=USERS["carol"])
        refused(r, 441, "Refresh of alice's allocation signed by carol", c, turn)
        # Control: alice's own Refresh is fine.
        c.expect_success(c.refresh(600), "alice's Refresh")


@pytest.mark.parametrize("method", [
    "Refresh",
    pytest.param("CreatePermission", marks=pytest.mark.xfail(
        COTURN, reason="coturn 4.6.1 answers 400 Bad Request, not 437, to a 5-tuple without an allocation")),
    pytest.param("ChannelBind", marks=pytest.mark.xfail(
        COTURN, reason="coturn 4.6.1 answers 400 Bad Request, not 437, to a 5-tuple without an allocation")),
])
def test_another_5tuple_gets_437(turn, alice, method):
    with lt_client(turn) as intruder:
        peer = (MEDIA_IP, 5000)
        r = {"Refresh": lambda: intruder.refresh(600),
             "CreatePermission": lambda: intruder.create_permission(peer),
             "ChannelBind": lambda: intruder.channel_bind(0x4ABC, peer)}[method]()
        refused(r, 437, f"{method} with alice's credentials from a 5-tuple that has no allocation", intruder, turn)
    alice.expect_success(alice.refresh(600), "the owner's Refresh afterwards")


def test_another_5tuple_cannot_relay_through_an_allocation(turn):
    peer = UdpPeer()
    owner = lt_client(turn)
    intruder = lt_client(turn)
    try:
        relayed = owner.allocate()
        owner.expect_success(owner.create_permission(peer.addr), "CreatePermission")
        owner.expect_success(owner.channel_bind(0x4001, peer.addr), "ChannelBind")
        intruder.send_indication(peer.addr, b"intruder send")
        intruder.send_channel_data(0x4001, b"intruder channel")
        owner.send_indication(peer.addr, b"owner send")
        owner.send_channel_data(0x4001, b"owner channel")
        got = peer.receive(expected=2, timeout=1.0)
        got += peer.receive(expected=1, timeout=0.3)     # anything straggling behind
        payloads = [data for data, _ in got]
        assert b"intruder send" not in payloads and b"intruder channel" not in payloads, \
            f"relayed for a 5-tuple without the allocation: {got}"
        assert sorted(payloads) == [b"owner channel", b"owner send"], f"the owner's data: {got}\n{turn.log(20)}"
        assert all(source == relayed for _, source in got), f"sent from {got}, relayed address {relayed}"
        # And back: the peer reaches the owner (on its channel), never the intruder.
        peer.sock.sendto(b"to owner", relayed)
        assert owner.wait_data(1.0) == [(0x4001, b"to owner")]
        assert intruder.wait_data(0.2) == []
    finally:
        owner.close()
        intruder.close()
        peer.close()


# --------------------------------------------------------------------------------------------
# Peer policy

IPV6_FAMILY_XFAIL = pytest.mark.xfail(
    COTURN, reason="coturn 4.6.1 answers 443 (Peer Address Family Mismatch) to an IPv6 peer on an IPv4 "
                   "allocation before its peer filter; Atrium answers 403 (embedded IPv4 judged as IPv4)")
DENIED_PEERS = [
    "0.0.0.0", "0.1.2.3", "127.0.0.1", "127.1.2.3",
    pytest.param("::ffff:127.0.0.1", marks=IPV6_FAMILY_XFAIL),
    pytest.param("::1", marks=IPV6_FAMILY_XFAIL),
    pytest.param("::", marks=IPV6_FAMILY_XFAIL),
    pytest.param("::ffff:169.254.169.254", marks=IPV6_FAMILY_XFAIL),
    "10.1.2.3", "10.99.1.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "192.0.2.1",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
]


@pytest.mark.parametrize("peer", DENIED_PEERS)
def test_denied_peer_create_permission_gets_403(turn, alice, peer):
    refused(alice.create_permission((peer, 5000)), 403, f"CreatePermission for {peer}", alice, turn)


CHANNEL_BIND_DENIED = ["0.0.0.0", "127.0.0.1", "10.1.2.3", "169.254.169.254", "224.0.0.1"]


@pytest.mark.parametrize("peer", CHANNEL_BIND_DENIED)
def test_denied_peer_channel_bind_gets_403(turn, alice, peer):
    channel = 0x4100 + CHANNEL_BIND_DENIED.index(peer)
    refused(alice.channel_bind(channel, (peer, 5000)), 403, f"ChannelBind to {peer}", alice, turn)


@pytest.mark.parametrize("peer", [MEDIA_IP, "10.99.0.2"])
def test_allowed_peer_is_accepted(turn, alice, peer):
    """The control for the refusals: 10.99.0.0/24 is re-opened by allowed_peer_ips (10.99.0.2 is not
    an address of this machine, so Atrium's allow_own_addresses does not cover it)."""
    alice.expect_success(alice.create_permission((peer, 5000)), f"CreatePermission for {peer}")
    channel = 0x4FFF if peer == MEDIA_IP else 0x4FFE
    alice.expect_success(alice.channel_bind(channel, (peer, 5000)), f"ChannelBind to {peer}")


def test_nothing_reaches_a_denied_peer(turn):
    """Send indications to loopback (also as 0.0.0.0 and ::ffff:127.0.0.1) and ChannelData on a
    refused channel reach nothing, while the same to the allowed peer arrives."""
    loopback = UdpPeer("127.0.0.1")
    allowed = UdpPeer()
    port = loopback.addr[1]
    with lt_client(turn) as c:
        c.allocate()
        for peer in ("127.0.0.1", "0.0.0.0", "::ffff:127.0.0.1"):
            r = c.create_permission((peer, port))
            assert r is not None and r.cls == ERROR, f"CreatePermission for {peer}: {r}"
            c.send_indication((peer, port), f"to {peer}".encode())
        r = c.channel_bind(0x4002, ("127.0.0.1", port))
        assert r is not None and r.cls == ERROR, f"ChannelBind to 127.0.0.1: {r}"
        c.send_channel_data(0x4002, b"on a refused channel")
        c.expect_success(c.create_permission(allowed.addr), "CreatePermission for the allowed peer")
        c.send_indication(allowed.addr, b"allowed")
        assert [d for d, _ in allowed.receive(1, 1.0)] == [b"allowed"], "the allowed peer got nothing"
        leaked = loopback.receive(1, 0.3)
        assert leaked == [], f"relayed to loopback: {leaked}"
    loopback.close()
    allowed.close()


# --------------------------------------------------------------------------------------------
# Malformed input

def garbage(tid: bytes = b"\x01" * 12) -> dict[str, bytes]:
    good = Message(BINDING, REQUEST, tid).encode()
    attr = Message(BINDING, REQUEST, tid).add(0x8022, b"abcd").encode(fingerprint=False)
    return {
        "empty": b"",
        "one byte": b"\x00",
        "text": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "header only, 19 bytes": good[:19],
        "length past the end": good[:2] + struct.pack("!H", 400) + good[4:],
        "length not a multiple of 4": good[:2] + struct.pack("!H", len(good) - 19) + good[4:] + b"\0",
        "attribute past the end": attr[:22] + b"\xff\xff" + attr[24:],   # SOFTWARE length 65535
        "wrong FINGERPRINT": good[:-1] + bytes([good[-1] ^ 0xFF]),
        "a success response": Message(BINDING, SUCCESS, tid).encode(),
        "an error response": Message(BINDING, ERROR, tid).add(0x0009, b"\0\0\x04\x00").encode(),
        "ChannelData without allocation": channel_data(0x4000, b"data"),
        "ChannelData length past the end": b"\x40\x00\x04\x00abcd",
        "random bytes": bytes(range(7, 207)),
    }


GARBAGE_CASES = [name if name != "attribute past the end" else pytest.param(name, marks=pytest.mark.xfail(
    COTURN, reason="coturn 4.6.1 answers a Binding request whose attribute runs past the end of the message"))
    for name in garbage()]


@pytest.mark.parametrize("name", GARBAGE_CASES)
def test_garbage_gets_no_answer(turn, name):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((MEDIA_IP, 0))
        s.sendto(garbage()[name], turn.addr("lt"))
        s.settimeout(0.25)
        try:
            answer = s.recvfrom(65535)[0]
        except socket.timeout:
            answer = None
        assert answer is None, f"an answer to a malformed datagram ({name}): {answer!r}"
        # Control: the same socket gets an answer to a well-formed Binding.
        s.settimeout(2)
        request = Message(BINDING)
        s.sendto(request.encode(), turn.addr("lt"))
        assert Message.decode(s.recvfrom(65535)[0]).tid == request.tid
    assert turn.alive()


@pytest.mark.parametrize("method", ["Binding", "Allocate", "Refresh"])
def test_unknown_comprehension_required_attribute_gets_420(turn, alice, method):
    unknown = (0x0031, b"abcd")
    if method == "Refresh":
        client = alice
        r = alice.request(REFRESH, [(LIFETIME, struct.pack("!I", 600)), unknown])
    elif method == "Allocate":
        client = lt_client(turn)
        r = client.allocate_request(extra=[unknown])
    else:
        client = TurnClient(turn.addr("lt"), local_ip=MEDIA_IP)
        r = client.request(BINDING, [unknown], auth=False)
    try:
        refused(r, 420, f"{method} with the unknown comprehension-required attribute 0x0031", client, turn)
        listed = r.get(UNKNOWN_ATTRIBUTES) or b""
        assert 0x0031 in struct.unpack(f"!{len(listed) // 2}H", listed), f"UNKNOWN-ATTRIBUTES in {r}"
    finally:
        if client is not alice:
            client.close()


def test_unknown_comprehension_optional_attribute_is_ignored(turn):
    with TurnClient(turn.addr("lt"), local_ip=MEDIA_IP) as c:
        r = c.request(BINDING, [(0x8031, b"abcd")], auth=False)
        assert r is not None and r.cls == SUCCESS, f"Binding with 0x8031: {r}"


# --------------------------------------------------------------------------------------------
# Our client over streams (RFC 8656 §12.5 framing: ChannelData padded to 4 bytes)

@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_own_client_relays_over_streams(turn, transport):
    peer = UdpPeer()
    try:
        with lt_client(turn, transport=transport) as c:
            relayed = c.allocate()
            c.expect_success(c.create_permission(peer.addr), "CreatePermission")
            c.expect_success(c.channel_bind(0x4003, peer.addr), "ChannelBind")
            refused(c.create_permission(("127.0.0.1", 5000)), 403, f"CreatePermission for 127.0.0.1 over {transport}",
                    c, turn)
            c.send_channel_data(0x4003, b"odd")            # 3 bytes: padded on the stream
            c.send_indication(peer.addr, b"seven b")
            c.send_channel_data(0x4003, b"after the padding")
            got = peer.receive(3, 2.0)
            assert [d for d, _ in got] == [b"odd", b"seven b", b"after the padding"], got
            assert {s for _, s in got} == {relayed}
            peer.sock.sendto(b"x", relayed)
            peer.sock.sendto(b"back again", relayed)
            back = c.wait_data(2.0)
            back += c.wait_data(0.5) if len(back) < 2 else []
            assert back == [(0x4003, b"x"), (0x4003, b"back again")], back
    finally:
        peer.close()


def test_a_failed_tls_handshake_leaves_other_tls_clients_alone(turn):
    """A connection that is not TLS at all fails its handshake; a TLS client already relaying on
    the same listener must not notice (uclient's TLS runs side by side show the same when its
    TLSv1.0/1.1 attempts are refused)."""
    peer = UdpPeer()
    try:
        with lt_client(turn, transport="tls") as c:
            relayed = c.allocate()
            c.expect_success(c.channel_bind(0x4005, peer.addr), "ChannelBind")
            for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05hello" + bytes(64)):
                with socket.create_connection(turn.addr("lt", "tls"), timeout=2) as bad:
                    bad.sendall(junk)
                    try:
                        while bad.recv(4096):
                            pass
                    except (ConnectionError, socket.timeout):
                        pass
            try:
                c.send_channel_data(0x4005, b"after the failed handshakes")
                got = [d for d, _ in peer.receive(1, 1.0)]
                peer.sock.sendto(b"and back", relayed)
                back = c.wait_data(1.0)
                refresh = c.refresh(600)
            except (ConnectionError, OSError) as e:
                raise AssertionError(f"the healthy TLS client lost its connection: {e!r}\n{turn.log(20)}") from e
            assert got == [b"after the failed handshakes"], got
            assert back == [(0x4005, b"and back")], back
            c.expect_success(refresh, "Refresh over TLS")
    finally:
        peer.close()


# --------------------------------------------------------------------------------------------
# RFC 6062 TCP allocations

class TcpEchoPeer:
    """A TCP echo server on MEDIA_IP standing in for the far side of a TCP relay; it remembers
    where connections came from."""

    def __init__(self, ip: str = MEDIA_IP):
        self.listener = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((ip, 0))
        self.listener.listen(16)
        self.addr = self.listener.getsockname()[:2]
        self.sources: list[tuple[str, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, source = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.sources.append(source[:2])
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket):
        conn.settimeout(0.2)
        with conn:
            while not self.stopped.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                conn.sendall(chunk)

    def close(self):
        self.stopped.set()
        self.listener.close()
        self.thread.join(timeout=2)


def read_exactly(sock: socket.socket, n: int, already: bytes = b"", timeout: float = 5.0) -> bytes:
    got, deadline = already, time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(n - len(got))
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    return got


def pump(sock: socket.socket, payload: bytes, timeout: float) -> bytes:
    """Sends `payload` on `sock` while reading what comes back, in one thread (an SSL socket must
    not be written by one thread while another reads it); returns what came back by EOF or
    `timeout`."""
    sock.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + timeout
    try:
        while len(got) < len(payload) and time.monotonic() < deadline:
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            readable, writable, _ = select.select([sock], [sock] if sent < len(payload) else [], [],
                                                  0 if pending else 0.2)
            if writable:
                try:
                    sent += sock.send(payload[sent:sent + 65536])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
            if readable or pending:
                while True:
                    try:
                        chunk = sock.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        break
                    if not chunk:
                        return bytes(got)
                    got += chunk
    finally:
        sock.setblocking(True)
    return bytes(got)


def tcp_control(server: TurnServer, transport: str = "tcp", creds: str = "lt") -> TurnClient:
    if creds == "lt":
        return lt_client(server, transport=transport)
    user, password = rest_credentials(SECRETS[0], "tcp-relay")
    return TurnClient(server.addr("rest", transport), user, password, transport=transport, local_ip=MEDIA_IP)


def bind_data_connection(server: TurnServer, control: TurnClient, connection_id: int, transport: str,
                         creds: str = "lt") -> tuple[TurnClient, bytes]:
    """A new connection with the control connection's credentials, bound to `connection_id`. Like
    turnutils_uclient it signs its first request with the control connection's realm and nonce
    (coturn closes a data connection whose ConnectionBind needs a 401 first)."""
    data = TurnClient(control.server, control.username, control.password, transport=transport, local_ip=MEDIA_IP)
    data.realm, data.nonce = control.realm, control.nonce
    r = data.connection_bind(connection_id)
    data.expect_success(r, f"ConnectionBind {connection_id:#x}")
    assert r.get(XOR_RELAYED_ADDRESS) is None and r.connection_id is None, r
    return data, data.data_socket()[1]


@pytest.mark.parametrize("creds,transport", [("lt", "tcp"), ("rest", "tcp"), ("lt", "tls"), ("rest", "tls")],
                         ids=["lt-tcp", "rest-tcp", "lt-tls", "rest-tls"])
def test_uclient_tcp_relay_with_zero_loss(turn, tmp_path, creds, transport):
    """turnutils_uclient -T: RFC 6062 between pairs of its own clients (-T implies -y, so -e/-r are
    ignored and there is no echo peer): each pair allocates two TCP relays, one Connects to the
    other's relayed address, the other gets a ConnectionAttempt, both ConnectionBind and the
    messages go relay to relay, both ways. (uclient's -P, a plain TCP peer instead of the second
    client, counts only half of what it sends as received, against coturn as against Atrium, so
    it cannot show zero loss; our own client covers that direction below.)"""
    args = ["-T", "-p", str(turn.port(creds, transport))]
    if transport == "tls":
        args.append("-S")
    if creds == "lt":
        args += ["-u", "alice", "-w", USERS["alice"]]
    else:
        args += ["-u", f"bob-tcp-{transport}", "-W", SECRETS[0]]
    args += ["-m", str(UCLIENT_CLIENTS), "-n", str(UCLIENT_MESSAGES), "-l", "200", "-z", "10", MEDIA_IP]
    UclientRun(args, tmp_path / "uclient-tcp-relay.txt").check_zero_loss(turn, UCLIENT_CLIENTS * UCLIENT_MESSAGES)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_tcp_relay_connect_relays_to_an_echo_peer_with_zero_loss(turn, transport):
    """Connect from a TCP allocation to a TCP echo peer, ConnectionBind on a second connection,
    then 200 messages of 200 bytes each way, byte for byte; the peer sees the relayed address."""
    peer = TcpEchoPeer()
    control = tcp_control(turn, transport)
    data = None
    try:
        relayed = control.allocate(relay_transport=TCP_TRANSPORT)
        r = control.expect_success(control.connect(peer.addr), f"Connect to {peer.addr}")
        assert r.connection_id is not None, f"no CONNECTION-ID in {r}"
        data, early = bind_data_connection(turn, control, r.connection_id, transport)
        assert early == b"", early
        sock = data.sock
        payload = b"".join(struct.pack("!I", i) + bytes([i % 251]) * 196 for i in range(200))
        sock.sendall(payload)
        echoed = read_exactly(sock, len(payload))
        assert len(echoed) == len(payload) and echoed == payload, \
            f"{len(echoed)} of {len(payload)} bytes back, equal: {echoed == payload[:len(echoed)]}\n{turn.log(20)}"
        assert peer.sources == [relayed], f"the peer saw {peer.sources}, relayed address {relayed}"
    finally:
        if data is not None:
            data.sock.close()
        control.close()
        peer.close()


def test_tcp_relay_bulk_transfer_is_exact_and_held_to_the_bandwidth_cap(turn):
    """3 MB through a TCP relay to the echo peer and back over TLS: every byte, in order. Atrium
    holds a TCP relay to bandwidth_bytes_per_second (1 MB/s by default) by pausing its reads, not
    by dropping, so the first megabyte passes at once and the rest takes about two seconds."""
    peer = TcpEchoPeer()
    control = tcp_control(turn, "tls")
    data = None
    try:
        control.allocate(relay_transport=TCP_TRANSPORT)
        r = control.expect_success(control.connect(peer.addr), f"Connect to {peer.addr}")
        data, _ = bind_data_connection(turn, control, r.connection_id, "tls")
        payload = os.urandom(3_000_000)
        started = time.monotonic()
        echoed = pump(data.sock, payload, timeout=30)
        elapsed = time.monotonic() - started
        assert len(echoed) == len(payload), f"{len(echoed)} of {len(payload)} bytes back\n{turn.log(20)}"
        assert echoed == payload, "the bytes came back changed or out of order"
        if not COTURN:
            assert 1.5 < elapsed < 10, f"3 MB at 1 MB/s took {elapsed:.2f} s"
    finally:
        if data is not None:
            data.sock.close()
        control.close()
        peer.close()


def test_tcp_relay_accepts_a_peer_with_a_permission_and_announces_it(turn):
    """A peer connecting to the relayed address: refused (closed at once, nothing announced)
    without a permission; with one, a ConnectionAttempt names it, and after ConnectionBind bytes
    flow both ways, the peer's early bytes included."""
    with tcp_control(turn) as control:
        relayed = control.allocate(relay_transport=TCP_TRANSPORT)
        # From 127.0.0.1: no permission (none can be had for loopback). Closed at once, or (coturn)
        # reset while connecting.
        try:
            with socket.create_connection(relayed, timeout=2, source_address=("127.0.0.1", 0)) as stranger:
                stranger.settimeout(2)
                assert stranger.recv(10) == b"", "a peer without permission was not closed"
        except ConnectionResetError:
            pass
        control.expect_success(control.create_permission((MEDIA_IP, 0)), "CreatePermission")
        assert control.receive(0.3) is None, "a ConnectionAttempt for a peer without permission"
        peer = socket.create_connection(relayed, timeout=2, source_address=(MEDIA_IP, 0))
        try:
            peer.sendall(b"early bytes from the peer")
            attempt = control.receive(2.0)
            assert attempt is not None and attempt.method == CONNECTION_ATTEMPT and attempt.cls == INDICATION, attempt
            assert attempt.xor(XOR_PEER_ADDRESS) == peer.getsockname()[:2], attempt
            data, early = bind_data_connection(turn, control, attempt.connection_id, "tcp")
            try:
                assert read_exactly(data.sock, 25, early) == b"early bytes from the peer"
                data.sock.sendall(b"and back")
                assert read_exactly(peer, 8) == b"and back"
                # Either end closing closes the other (coturn resets it, Atrium closes it).
                peer.close()
                data.sock.settimeout(2)
                try:
                    assert data.sock.recv(10) == b"", "the data connection stayed open after the peer closed"
                except ConnectionResetError:
                    pass
            finally:
                data.sock.close()
        finally:
            peer.close()


TCP_CONNECT_DENIED = ["127.0.0.1", "0.0.0.0", "10.1.2.3", "169.254.169.254", "192.168.1.1"]


@pytest.mark.parametrize("peer", TCP_CONNECT_DENIED)
def test_tcp_connect_to_a_denied_peer_gets_403(turn, peer):
    with tcp_control(turn) as c:
        c.allocate(relay_transport=TCP_TRANSPORT)
        refused(c.connect((peer, 80)), 403, f"Connect to {peer}", c, turn)


def test_tcp_connect_errors(turn):
    """447 for a port where nothing listens; 446 for a second Connect to a peer already connected."""
    peer = TcpEchoPeer()
    closed = free_udp_tcp_port()
    try:
        with tcp_control(turn) as c:
            c.allocate(relay_transport=TCP_TRANSPORT)
            refused(c.connect((MEDIA_IP, closed)), 447, f"Connect to {MEDIA_IP}:{closed} (nothing listens)", c, turn)
            c.expect_success(c.connect(peer.addr), "Connect")
            refused(c.connect(peer.addr), 446, "a second Connect to the same peer", c, turn)
    finally:
        peer.close()


@pytest.mark.xfail(COTURN, reason="coturn 4.6.1 answers 400 and resets the connection at once, so the client "
                                   "reads a reset instead of the answer")
def test_connection_bind_with_an_unknown_id_gets_400(turn):
    with tcp_control(turn) as control:
        control.allocate(relay_transport=TCP_TRANSPORT)
        with TurnClient(control.server, control.username, control.password, transport="tcp", local_ip=MEDIA_IP) as data:
            data.realm, data.nonce = control.realm, control.nonce
            refused(data.connection_bind(0x12345678), 400, "ConnectionBind with an unknown CONNECTION-ID", data, turn)


def test_tcp_allocation_over_udp_gets_400(turn):
    with lt_client(turn) as c:
        refused(c.allocate_request(relay_transport=TCP_TRANSPORT), 400, "Allocate TCP over UDP", c, turn)


# --------------------------------------------------------------------------------------------
# IPv6 (RFC 8656 address families): MEDIA_IP6 on atrium0, the listeners and relays on both families

@dataclass(frozen=True)
class Uclient6Case:
    id: str
    server_ip: str          # the address uclient reaches the server at (the control family)
    transport: str
    creds: str
    peer_ip: str            # the echo peer's address (uclient asks for a relay of its family)
    flags: tuple[str, ...]  # -x / -X: IPv6 / IPv4 relay; -Z: dual allocation; -s: Send indications


UCLIENT6_CASES = [
    Uclient6Case("v6-udp-lt", MEDIA_IP6, "udp", "lt", MEDIA_IP6, ("-x",)),
    Uclient6Case("v6-tcp-rest-send", MEDIA_IP6, "tcp", "rest", MEDIA_IP6, ("-x", "-s")),
    Uclient6Case("v6-tls-lt", MEDIA_IP6, "tls", "lt", MEDIA_IP6, ("-x",)),
    Uclient6Case("v4-control-v6-relay", MEDIA_IP, "udp", "rest", MEDIA_IP6, ("-x",)),
    Uclient6Case("v6-control-v4-relay", MEDIA_IP6, "udp", "lt", MEDIA_IP, ("-X",)),
    Uclient6Case("dual-to-v6-peer", MEDIA_IP, "udp", "lt", MEDIA_IP6, ("-Z",)),
    Uclient6Case("dual-to-v4-peer", MEDIA_IP6, "tcp", "rest", MEDIA_IP, ("-Z",)),
]


@pytest.fixture(scope="module")
def uclient6_runs(request, turn, echo_peer, echo_peer6, tmp_path_factory):
    """Every selected IPv6 uclient case at once, as uclient_runs does for the IPv4 matrix."""
    wanted = {item.callspec.params["case"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_uclient_ipv6_relays_with_zero_loss"
              and hasattr(item, "callspec")}
    folder = tmp_path_factory.mktemp("uclient6")
    runs = {}
    for case in UCLIENT6_CASES:
        if case not in wanted:
            continue
        args = ["-p", str(turn.port(case.creds, case.transport))]
        if case.transport in ("tcp", "tls"):
            args.append("-t")
        if case.transport == "tls":
            args.append("-S")
        if case.creds == "lt":
            args += ["-u", "alice", "-w", USERS["alice"]]
        else:
            args += ["-u", f"bob-{case.id}", "-W", SECRETS[0]]
        peer_port = echo_peer6 if ":" in case.peer_ip else echo_peer
        args += [*case.flags, "-c", "-e", case.peer_ip, "-r", str(peer_port), "-m", str(UCLIENT_CLIENTS),
                 "-n", str(UCLIENT_MESSAGES), "-l", "200", "-z", "10", case.server_ip]
        runs[case] = UclientRun(args, folder / f"{case.id}.txt")
    yield runs
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


@pytest.mark.parametrize("case", UCLIENT6_CASES, ids=lambda c: c.id)
def test_uclient_ipv6_relays_with_zero_loss(turn, uclient6_runs, case):
    """turnutils_uclient over IPv6 and across families: an IPv6 control connection (UDP, TCP, TLS)
    with an IPv6 relay (-x), an IPv4 control with an IPv6 relay and the reverse, and dual
    allocations (-Z: ADDITIONAL-ADDRESS-FAMILY, which coturn 4.6.1's uclient sends under the
    draft's code point 0x8032) relaying to an IPv6 or an IPv4 echo peer. uclient takes the relay
    family from the peer's address; -x/-X only say the same."""
    uclient6_runs[case].check_zero_loss(turn, UCLIENT_CLIENTS * UCLIENT_MESSAGES)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_binding_over_ipv6_answers_the_client_address(turn, transport):
    with TurnClient(turn.addr("lt", transport, MEDIA_IP6), transport=transport, local_ip=MEDIA_IP6) as c:
        r = c.request(BINDING, auth=False)
        assert r is not None and r.cls == SUCCESS, f"Binding over IPv6 {transport}: {r}\n{turn.log(20)}"
        assert r.xor(XOR_MAPPED_ADDRESS) == c.local, f"{r} for a client at {c.local}"


@pytest.mark.xfail(COTURN, reason="coturn 4.6.1 knows ADDITIONAL-ADDRESS-FAMILY only under the draft's code point "
                                   "0x8032 (RFC 8656's 0x8000 since coturn 4.10), so it gives an IPv4 allocation")
def test_dual_allocation_relays_to_both_families_and_sheds_one(turn):
    """Our client asks for a dual allocation (ADDITIONAL-ADDRESS-FAMILY IPv6) and gets an IPv4
    and an IPv6 relayed address. One CreatePermission covers a peer of each family; channels and
    Send indications reach each peer from the relayed address of its family, and come back. A
    Refresh with REQUESTED-ADDRESS-FAMILY IPv6 and lifetime 0 then deletes the IPv6 half only."""
    peer4, peer6 = UdpPeer(MEDIA_IP), UdpPeer(MEDIA_IP6)
    c = lt_client(turn)
    try:
        r = c.expect_success(c.allocate_request(extra=[(ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]),
                             "dual Allocate")
        relayed = r.xor_all(XOR_RELAYED_ADDRESS)
        assert sorted(ip for ip, _ in relayed) == sorted([MEDIA_IP, MEDIA_IP6]) and r.get(ADDRESS_ERROR_CODE) is None, r
        relay4, relay6 = (next(a for a in relayed if a[0] == ip) for ip in (MEDIA_IP, MEDIA_IP6))
        c.relayed = relay4
        c.expect_success(c.create_permission(peer4.addr, peer6.addr), "CreatePermission for both families")
        c.expect_success(c.channel_bind(0x4010, peer4.addr), "ChannelBind IPv4")
        c.expect_success(c.channel_bind(0x4011, peer6.addr), "ChannelBind IPv6")
        c.send_channel_data(0x4010, b"to v4 on a channel")
        c.send_channel_data(0x4011, b"to v6 on a channel")
        c.send_indication(peer4.addr, b"to v4 in a Send")
        c.send_indication(peer6.addr, b"to v6 in a Send")
        got4, got6 = peer4.receive(2, 2.0), peer6.receive(2, 2.0)
        assert sorted(d for d, _ in got4) == [b"to v4 in a Send", b"to v4 on a channel"] and \
            {src for _, src in got4} == {relay4}, got4
        assert sorted(d for d, _ in got6) == [b"to v6 in a Send", b"to v6 on a channel"] and \
            {src for _, src in got6} == {relay6}, got6
        peer4.sock.sendto(b"from v4", relay4)
        peer6.sock.sendto(b"from v6", relay6)
        back = c.wait_data(2.0)
        back += c.wait_data(1.0) if len(back) < 2 else []
        assert sorted(back) == [(0x4010, b"from v4"), (0x4011, b"from v6")], back
        # Shed the IPv6 half.
        c.expect_success(c.request(REFRESH, [(LIFETIME, struct.pack("!I", 0)),
                                             (REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]), "Refresh IPv6 with lifetime 0")
        c.send_channel_data(0x4011, b"v6 after its half was deleted")
        c.send_channel_data(0x4010, b"v4 still relays")
        assert [d for d, _ in peer4.receive(1, 1.0)] == [b"v4 still relays"]
        assert peer6.receive(1, 0.3) == [], "relayed to IPv6 after its half was deleted"
        refused(c.request(REFRESH, [(LIFETIME, struct.pack("!I", 600)), (REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]),
                443, "Refresh of the deleted IPv6 half", c, turn)
    finally:
        c.close()
        peer4.close()
        peer6.close()


def test_requested_ipv6_relay_for_an_ipv4_client(turn):
    """REQUESTED-ADDRESS-FAMILY IPv6 over an IPv4 5-tuple: the relayed address is IPv6, an IPv6
    peer is reached from it, and an IPv4 peer is 443 (RFC 8656 §9.1)."""
    peer6 = UdpPeer(MEDIA_IP6)
    c = lt_client(turn)
    try:
        r = c.expect_success(c.allocate_request(extra=[(REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]), "Allocate IPv6")
        relayed = r.xor(XOR_RELAYED_ADDRESS)
        assert relayed[0] == MEDIA_IP6 and r.xor(XOR_MAPPED_ADDRESS)[0] == MEDIA_IP, r
        c.relayed = relayed
        refused(c.create_permission((MEDIA_IP, 5000)), 443, "CreatePermission for an IPv4 peer on an IPv6 relay", c, turn)
        c.expect_success(c.create_permission(peer6.addr), "CreatePermission IPv6")
        c.send_indication(peer6.addr, b"over an IPv6 relay")
        assert peer6.receive(1, 2.0) == [(b"over an IPv6 relay", relayed)]
    finally:
        c.close()
        peer6.close()


def test_an_ipv6_client_gets_an_ipv4_relay_by_default(turn):
    """No REQUESTED-ADDRESS-FAMILY from an IPv6 client: IPv4, as RFC 8656 §7.2 says."""
    peer4 = UdpPeer(MEDIA_IP)
    c = lt_client(turn, ip=MEDIA_IP6)
    try:
        relayed = c.allocate()
        assert relayed[0] == MEDIA_IP and c.mapped == c.local, (relayed, c.mapped, c.local)
        c.expect_success(c.channel_bind(0x4012, peer4.addr), "ChannelBind")
        c.send_channel_data(0x4012, b"from an IPv6 client")
        assert peer4.receive(1, 2.0) == [(b"from an IPv6 client", relayed)]
        peer4.sock.sendto(b"back to IPv6", relayed)
        assert c.wait_data(2.0) == [(0x4012, b"back to IPv6")]
    finally:
        c.close()
        peer4.close()


EMBEDDED_V6_XFAIL = pytest.mark.xfail(
    COTURN, reason="coturn 4.6.1 does not look at the IPv4 inside 6to4 and NAT64 addresses (fixed in 4.13.1, "
                   "CVE-2026-73212)")
DENIED_PEERS6 = [
    "::1", "::", "fe80::1", "fc00::1", "fd00::1", "ff02::1", "fd99:0:0:1::1",
    pytest.param("2002:7f00:1::1", marks=EMBEDDED_V6_XFAIL),          # 6to4 of 127.0.0.1
    pytest.param("2002:a9fe:a9fe::1", marks=EMBEDDED_V6_XFAIL),       # 6to4 of 169.254.169.254
    pytest.param("64:ff9b::7f00:1", marks=EMBEDDED_V6_XFAIL),         # NAT64 of 127.0.0.1
    pytest.param("64:ff9b::a9fe:a9fe", marks=EMBEDDED_V6_XFAIL),      # NAT64 of the metadata service
]


@pytest.fixture(scope="module")
def alice6(turn):
    """An IPv6 allocation of alice's, over IPv6, that the IPv6 refusal tests share."""
    client = lt_client(turn, ip=MEDIA_IP6)
    r = client.expect_success(client.allocate_request(extra=[(REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]),
                              "Allocate IPv6")
    client.relayed = r.xor(XOR_RELAYED_ADDRESS)
    yield client
    client.close()


@pytest.mark.parametrize("peer", DENIED_PEERS6)
def test_denied_ipv6_peer_gets_403(turn, alice6, peer):
    refused(alice6.create_permission((peer, 5000)), 403, f"CreatePermission for {peer}", alice6, turn)


def test_allowed_ipv6_peer_is_accepted(turn, alice6):
    """The control: the test configuration re-opens fd99::/64 (a ULA, denied by default)."""
    alice6.expect_success(alice6.create_permission((MEDIA_IP6, 5000)), f"CreatePermission for {MEDIA_IP6}")
    alice6.expect_success(alice6.channel_bind(0x4013, ("fd99::2", 5000)), "ChannelBind to fd99::2")


@pytest.mark.atrium_only
def test_wildcard_listeners_serve_both_families(tmp_path):
    """listen ["0.0.0.0", "::"], as docs/api/turn.md suggests for IPv6: one port serves both
    families over UDP and TCP, and an IPv6 client relays through an IPv6 relayed address."""
    assert not COTURN, "Atrium's own listen key: run coturn mode with -m 'not atrium_only'"
    require_media_ip6()
    cert, key = make_certificate(tmp_path)
    port = free_udp_tcp_port(also=MEDIA_IP6)
    config = turn_config(port, free_udp_tcp_port(also=MEDIA_IP6), cert, key)
    config["listen"] = ["0.0.0.0", "::"]
    atrium = AtriumServer(base_config([turn_plugin_entry(**config)]), tmp_path / "atrium")
    atrium.start()
    peer6 = UdpPeer(MEDIA_IP6)
    try:
        assert "udp [::]:" in atrium.log() and "udp 0.0.0.0:" in atrium.log(), atrium.log()[-2000:]
        for ip in (MEDIA_IP, MEDIA_IP6):
            for transport in ("udp", "tcp"):
                with TurnClient((ip, port), transport=transport, local_ip=ip) as c:
                    r = c.request(BINDING, auth=False)
                    assert r is not None and r.xor(XOR_MAPPED_ADDRESS) == c.local, f"Binding to [{ip}]:{port}/{transport}: {r}"
        with TurnClient((MEDIA_IP6, port), "alice", USERS["alice"], local_ip=MEDIA_IP6) as c:
            r = c.expect_success(c.allocate_request(extra=[(REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]), "Allocate IPv6")
            relayed = r.xor(XOR_RELAYED_ADDRESS)
            c.relayed = relayed
            c.expect_success(c.channel_bind(0x4014, peer6.addr), "ChannelBind")
            c.send_channel_data(0x4014, b"through the wildcard listener")
            assert peer6.receive(1, 2.0) == [(b"through the wildcard listener", relayed)]
            peer6.sock.sendto(b"and back", relayed)
            assert c.wait_data(2.0) == [(0x4014, b"and back")]
    finally:
        peer6.close()
        code = atrium.stop()
    assert code == 0, atrium.log()[-3000:]


def test_tcp_relay_over_ipv6(turn):
    """RFC 6062 over IPv6 end to end: an IPv6 control connection, an IPv6 TCP relay, Connect to an
    IPv6 echo peer, ConnectionBind on a second IPv6 connection, every byte back."""
    peer = TcpEchoPeer(MEDIA_IP6)
    control = lt_client(turn, transport="tcp", ip=MEDIA_IP6)
    data = None
    try:
        r = control.expect_success(control.allocate_request(
            extra=[(REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))], relay_transport=TCP_TRANSPORT), "Allocate TCP IPv6")
        relayed = r.xor(XOR_RELAYED_ADDRESS)
        control.relayed = relayed
        assert relayed[0] == MEDIA_IP6, r
        c = control.expect_success(control.connect(peer.addr), f"Connect to {peer.addr}")
        data = TurnClient(control.server, "alice", USERS["alice"], transport="tcp", local_ip=MEDIA_IP6)
        data.realm, data.nonce = control.realm, control.nonce
        data.expect_success(data.connection_bind(c.connection_id), "ConnectionBind over IPv6")
        payload = bytes(range(256)) * 64
        data.sock.sendall(payload)
        assert read_exactly(data.sock, len(payload), data.data_socket()[1]) == payload
        assert peer.sources == [relayed], peer.sources
    finally:
        if data is not None:
            data.sock.close()
        control.close()
        peer.close()


# --------------------------------------------------------------------------------------------
# RFC 8489 SHA-256 credentials (Atrium only: coturn has no PASSWORD-ALGORITHMS)

OFFERED_ALGORITHMS = struct.pack("!HHHH", SHA256, 0, MD5, 0)     # SHA-256 first, then MD5


def sha256_client(server: TurnServer, creds: str, transport: str = "udp", userhash: bool | None = None) -> TurnClient:
    if creds == "lt":
        user, password = "alice", USERS["alice"]
    else:
        user, password = rest_credentials(SECRETS[1], "sha-user")
    return TurnClient(server.addr(creds, transport), user, password, transport=transport, local_ip=MEDIA_IP,
                      rfc8489=True, userhash=userhash)


def signed_sha256(response: Message | None, what: str, client: TurnClient) -> Message:
    """A success answer to an RFC 8489 client: MESSAGE-INTEGRITY-SHA256 with its SHA-256 key, and
    no MESSAGE-INTEGRITY."""
    r = client.expect_success(response, what)
    assert r.integrity_sha256_offset is not None and r.integrity_offset is None, \
        f"{what}: expected MESSAGE-INTEGRITY-SHA256 only: {r}"
    assert r.check_integrity(client.key), f"{what}: MESSAGE-INTEGRITY-SHA256 does not verify: {r}"
    return r


@pytest.mark.atrium_only
@pytest.mark.parametrize("creds,transport,userhash", [
    ("lt", "udp", None), ("lt", "tcp", True), ("rest", "udp", None), ("rest", "tls", None)],
    ids=["static-udp", "static-tcp-userhash", "rest-udp", "rest-tls"])
def test_sha256_credentials_allocate_and_relay(turn, creds, transport, userhash):
    """An RFC 8489 client: the 401 offers SHA-256 and MD5 in a nonce whose cookie says so; the
    client answers with PASSWORD-ALGORITHM SHA-256, the echoed list and MESSAGE-INTEGRITY-SHA256
    (USERHASH instead of USERNAME for alice over TCP), and every answer is signed the same way
    while data is relayed both ways."""
    assert not COTURN, "RFC 8489 SHA-256 credentials (coturn has none): run coturn mode with -m 'not atrium_only'"
    peer = UdpPeer()
    c = sha256_client(turn, creds, transport, userhash)
    try:
        bare = c.transact(Message(ALLOCATE, REQUEST).add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])))
        refused(bare, 401, "unsigned Allocate", c, turn)
        assert bare.get(PASSWORD_ALGORITHMS) == OFFERED_ALGORITHMS, f"PASSWORD-ALGORITHMS in {bare}"
        assert bare.get(NONCE).startswith(b"obMatJos2AAAB"), f"nonce cookie in {bare}"
        r = signed_sha256(c.allocate_request(), "Allocate", c)
        assert c.algorithm == SHA256 and c.anonymous == bool(userhash), (c.algorithm, c.anonymous)
        relayed = r.xor(XOR_RELAYED_ADDRESS)
        c.relayed = relayed
        signed_sha256(c.create_permission(peer.addr), "CreatePermission", c)
        signed_sha256(c.channel_bind(0x4006, peer.addr), "ChannelBind", c)
        signed_sha256(c.refresh(600), "Refresh", c)
        refused(c.create_permission(("127.0.0.1", 5000)), 403, "CreatePermission for 127.0.0.1", c, turn)
        c.send_channel_data(0x4006, b"sha-256 channel")
        c.send_indication(peer.addr, b"sha-256 send")
        got = peer.receive(2, 2.0)
        assert sorted(d for d, _ in got) == [b"sha-256 channel", b"sha-256 send"], got
        assert {source for _, source in got} == {relayed}, got
        peer.sock.sendto(b"sha-256 back", relayed)
        assert c.wait_data(2.0) == [(0x4006, b"sha-256 back")]
        signed_sha256(c.refresh(0), "Refresh 0", c)
        c.relayed = None
    finally:
        c.close()
        peer.close()


@pytest.mark.atrium_only
@pytest.mark.parametrize("case", ["md5-only list", "reordered list", "no list", "unknown algorithm"])
def test_sha256_negotiation_tampering_gets_400(turn, case):
    """A PASSWORD-ALGORITHMS that is not the one the server sent (a man in the middle dropped
    SHA-256, or reordered it), a PASSWORD-ALGORITHM without it, or an algorithm never offered: 400,
    and no allocation; the same client then allocates with the honest negotiation."""
    assert not COTURN, "RFC 8489 SHA-256 credentials (coturn has none): run coturn mode with -m 'not atrium_only'"
    lists = {"md5-only list": struct.pack("!HH", MD5, 0), "reordered list": struct.pack("!HHHH", MD5, 0, SHA256, 0),
             "no list": None, "unknown algorithm": OFFERED_ALGORITHMS}
    chosen = {"md5-only list": MD5, "reordered list": MD5, "no list": SHA256, "unknown algorithm": 0x0003}[case]
    with sha256_client(turn, "lt") as c:
        challenge = c.transact(Message(ALLOCATE, REQUEST).add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])))
        refused(challenge, 401, "unsigned Allocate", c, turn)
        realm, nonce = challenge.get(REALM).decode(), challenge.get(NONCE)
        m = Message(ALLOCATE, REQUEST).add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        m.add(USERNAME, b"alice").add(REALM, realm.encode()).add(NONCE, nonce)
        m.add(PASSWORD_ALGORITHM, struct.pack("!HH", chosen, 0))
        if lists[case] is not None:
            m.add(PASSWORD_ALGORITHMS, lists[case])
        key = long_term_key("alice", realm, USERS["alice"], MD5 if chosen == MD5 else SHA256)
        answer = c.transact(m, key, sha256=True)
        refused(answer, 400, f"Allocate with {case}", c, turn)
        assert answer.get(XOR_RELAYED_ADDRESS) is None and answer.get(NONCE) is None, answer
        assert c.allocate()[0] == MEDIA_IP and c.algorithm == SHA256


# --------------------------------------------------------------------------------------------
# Credentials from the Janus API, metrics (Atrium)

def parse_turn_url(url: str) -> tuple[str, str, int, str]:
    m = re.fullmatch(r"(turns?):([\d.]+):(\d+)\?transport=(udp|tcp)", url)
    assert m, f"not a turn:/turns: URL with an IP, a port and a transport: {url!r}"
    return m.group(1), m.group(2), int(m.group(3)), m.group(4)


def janus_credentials(server: TurnServer) -> dict:
    janus = HttpJanus(server.atrium.http_url)
    try:
        status, reply, raw = janus.post(None, {"janus": "create", "transaction": "turn-create"})
        assert status == 200 and reply and reply.get("janus") == "success", raw
        session = reply["data"]["id"]
        # Credentials go to sessions in a meeting: join a chat room first, as the web app does.
        status, reply, raw = janus.post(session, {"janus": "attach", "plugin": "atrium.plugin.chat",
                                                  "transaction": "chat-attach"})
        assert status == 200 and reply and reply.get("janus") == "success", f"attach chat: {raw}"
        status, reply, raw = janus.post(f"{session}/{reply['data']['id']}", {
            "janus": "message", "transaction": "chat-join", "body": {"request": "join", "room": "turn", "display": "t"}})
        assert status == 200 and reply and reply["plugindata"]["data"].get("chat") == "joined", f"join chat: {raw}"
        status, reply, raw = janus.post(session, {"janus": "attach", "plugin": TURN_PLUGIN,
                                                  "transaction": "turn-attach"})
        assert status == 200 and reply and reply.get("janus") == "success", f"attach {TURN_PLUGIN}: {raw}"
        handle = reply["data"]["id"]
        status, reply, raw = janus.post(f"{session}/{handle}", {"janus": "message", "transaction": "turn-creds",
                                                                "body": {"request": "credentials"}})
        assert status == 200 and reply and reply.get("janus") == "success", f"credentials: {raw}"
        assert reply["plugindata"]["plugin"] == TURN_PLUGIN, reply
        return reply["plugindata"]["data"]
    finally:
        janus.close()


def test_credentials_from_janus_work_with_uclient(turn, echo_peer, tmp_path):
    if turn.atrium is not None:
        data = janus_credentials(turn)
    else:    # coturn has no Janus API: the same answer, minted here as Atrium mints it
        username, credential = rest_credentials(SECRETS[0], "janus-user", CREDENTIAL_TTL)
        urls = [f"turn:{MEDIA_IP}:{turn.port('rest', 'udp')}?transport=udp",
                f"turn:{MEDIA_IP}:{turn.port('rest', 'tcp')}?transport=tcp",
                f"turns:{MEDIA_IP}:{turn.port('rest', 'tls')}?transport=tcp"]
        data = {"turn": "credentials", "iceServers": [{"urls": urls, "username": username, "credential": credential}],
                "ttl": CREDENTIAL_TTL}
    assert data.get("turn") == "credentials" and data.get("ttl") == CREDENTIAL_TTL, data
    (ice,) = data["iceServers"]
    username, credential = ice["username"], ice["credential"]
    m = re.fullmatch(r"(\d+):(.+)", username)
    assert m and abs(int(m.group(1)) - (time.time() + CREDENTIAL_TTL)) < 60, f"username {username!r}"
    expected = base64.b64encode(hmac.new(SECRETS[0].encode(), username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected, "the credential is not base64(HMAC-SHA1(first secret, username))"
    parsed = [parse_turn_url(u) for u in ice["urls"]]
    assert {(scheme, host, port, t) for scheme, host, port, t in parsed} == {
        ("turn", MEDIA_IP, turn.port("rest", "udp"), "udp"), ("turn", MEDIA_IP, turn.port("rest", "tcp"), "tcp"),
        ("turns", MEDIA_IP, turn.port("rest", "tls"), "tcp")}, ice["urls"]
    runs = []
    for i, (scheme, host, port, transport) in enumerate(parsed):
        kind = "tls" if scheme == "turns" else transport
        args = uclient_args(turn, "rest", kind, echo_peer, username=username, password=credential, port=port)
        runs.append(UclientRun(args, tmp_path / f"uclient-{i}-{kind}.txt"))
    for run in runs:
        run.check_zero_loss(turn, UCLIENT_CLIENTS * UCLIENT_MESSAGES)


@pytest.mark.atrium_only
def test_metrics_move(turn):
    assert not COTURN, "Atrium's own /metrics (coturn 4.6.1 in Debian has none): run coturn mode with -m 'not atrium_only'"
    names = ["atrium_turn_allocations", "atrium_turn_permissions", "atrium_turn_channels",
             "atrium_turn_relayed_bytes_total", "atrium_turn_relayed_packets_total",
             "atrium_turn_auth_failures_total", "atrium_turn_denied_peers_total"]
    before = {n: turn.atrium.metric(n) for n in names}
    peer = UdpPeer()
    c = lt_client(turn)
    try:
        relayed = c.allocate()
        c.expect_success(c.create_permission(peer.addr), "CreatePermission")
        c.expect_success(c.channel_bind(0x4004, peer.addr), "ChannelBind")
        refused(c.create_permission(("127.0.0.1", 5000)), 403, "CreatePermission for 127.0.0.1", c, turn)
        for i in range(5):
            c.send_channel_data(0x4004, b"m" * 100)
        assert len(peer.receive(5, 2.0)) == 5
        peer.sock.sendto(b"r" * 100, relayed)
        assert c.wait_data(1.0)
        with TurnClient(turn.addr("lt"), "alice", "wrong password", local_ip=MEDIA_IP) as bad:
            refused(bad.allocate_request(), 401, "Allocate with a wrong password", bad, turn)
        during = {n: turn.atrium.metric(n) for n in names}
        moved = {n: (before[n], during[n]) for n in names}
        assert during["atrium_turn_allocations"] >= before["atrium_turn_allocations"] + 1, moved
        assert during["atrium_turn_permissions"] >= before["atrium_turn_permissions"] + 1, moved
        assert during["atrium_turn_channels"] >= before["atrium_turn_channels"] + 1, moved
        assert during["atrium_turn_relayed_packets_total"] >= before["atrium_turn_relayed_packets_total"] + 6, moved
        assert during["atrium_turn_relayed_bytes_total"] >= before["atrium_turn_relayed_bytes_total"] + 600, moved
        assert during["atrium_turn_auth_failures_total"] >= before["atrium_turn_auth_failures_total"] + 1, moved
        assert during["atrium_turn_denied_peers_total"] >= before["atrium_turn_denied_peers_total"] + 1, moved
        c.expect_success(c.refresh(0), "Refresh with lifetime 0")
        c.relayed = None
        deadline = time.monotonic() + 2
        while (after := turn.atrium.metric("atrium_turn_allocations")) > during["atrium_turn_allocations"] - 1 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert after == during["atrium_turn_allocations"] - 1, ("allocations before, during, after the Refresh 0",
                                                                before, during, after)
    finally:
        c.close()
        peer.close()
