"""Shared fixtures for the e2e suite: a real `atrium` process on free loopback ports.

The suite runs inside its own network namespace (`make test` wraps it in `unshare -n`), so the
ports are private to it. Plugins and the binary come from the build folder (ATRIUM_BUILD_DIR,
default .build/debug); a missing build is a failure with a clear message, never a skip.
"""
from __future__ import annotations

import json
import re
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from ports import free_port, free_udp_port  # noqa: F401 - re-exported to the suites

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("ATRIUM_BUILD_DIR", ROOT / ".build" / "debug"))
ATRIUM_BIN = BUILD_DIR / "atrium"
ARTIFACTS = ROOT / "Tests" / "e2e" / "artifacts"


def require_build(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} does not exist: build first (`swift build` or `make build`), "
                    f"or point ATRIUM_BUILD_DIR at the build folder", pytrace=False)
    return path


# The non-loopback address media tests use: `make e2e` gives the namespace an interface `atrium0`
# with 10.99.0.1/24, because browsers and aioice never offer loopback host candidates.
MEDIA_IP = os.environ.get("ATRIUM_E2E_MEDIA_IP", "10.99.0.1")


def require_media_ip() -> str:
    """Fails (never skips) when MEDIA_IP is not an address of this network namespace."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((MEDIA_IP, 0))
    except OSError as e:
        pytest.fail(f"{MEDIA_IP} is not a local address ({e}): media tests run in a network namespace "
                    f"with an interface holding {MEDIA_IP}/24, e.g. `unshare -n -- bash -c 'ip link set lo up && "
                    f"ip link add atrium0 type veth peer name atrium1 && ip link set atrium1 up && "
                    f"ip addr add {MEDIA_IP}/24 dev atrium0 && ip link set atrium0 up && python -m pytest ...'`",
                    pytrace=False)
    return MEDIA_IP


def chat_plugin_entry(**config) -> dict:
    return {"library": "libatrium_chat.so", "aliases": [], "enabled": True, "optional": False, "config": config}


def echotest_plugin_entry(**config) -> dict:
    """Atrium's EchoTest, reachable as atrium.plugin.echotest and as janus.plugin.echotest."""
    return {"library": "libatrium_echotest.so", "aliases": ["janus.plugin.echotest"], "enabled": True,
            "optional": False, "config": config}


def turn_plugin_entry(**config) -> dict:
    """Atrium's TURN server (libatrium_turn.so, plugin id atrium.plugin.turn); the config keys are
    those of Plugins/TURN/Core/TURNConfig.swift."""
    return {"library": "libatrium_turn.so", "aliases": [], "enabled": True, "optional": False, "config": config}


def sfu_plugin_entry(**config) -> dict:
    """Atrium's SFU (libatrium_sfu.so, plugin id atrium.plugin.sfu), also reachable as
    janus.plugin.videoroom. Config: {"admin_key": None or str, "rooms": [{"room": 1234,
    "description": ..., "secret": ..., "publishers": ..., any Janus VideoRoom room property under
    Janus's name}]}; without "rooms" it starts with none (config/config.json lists Debian's demo
    rooms 1234 and 5678)."""
    return {"library": "libatrium_sfu.so", "aliases": ["janus.plugin.videoroom"], "enabled": True,
            "optional": False, "config": config}


# Media loops of every server the suite starts; a test that names a UDP port takes this many in a
# row (free_udp_port(MEDIA_THREADS)): loop i binds udp_port + i.
MEDIA_THREADS = 2


def media_config(consent_timeout_seconds: float = 30, udp_port: int | None = None, **sections) -> dict:
    """A configuration with the chat and echotest plugins and a media section on a free UDP port.
    Atrium advertises the machine's non-loopback addresses (MEDIA_IP in the test namespace)."""
    media = {"udp_port": udp_port or free_udp_port(MEDIA_THREADS), "consent_timeout_seconds": consent_timeout_seconds}
    plugins = [chat_plugin_entry(rooms=[{"id": "lobby", "history": 5}]), echotest_plugin_entry()]
    return base_config(plugins, media={**media, **sections.pop("media", {})}, **sections)


def base_config(plugins: list | None = None, **sections) -> dict:
    config = {
        "server_name": "atrium-e2e",
        "log_level": "debug",
        "plugins_dir": str(BUILD_DIR),
        "http": {"bind": "127.0.0.1", "port": free_port()},
        "websocket": {"bind": "127.0.0.1", "port": free_port()},
        "admin": {"secret": "e2e-admin-secret"},
        # Ephemeral media ports, so servers started side by side never collide; two media loops
        # whatever the machine, so every test runs the multi-loop host the same way. IPv4 only:
        # test_turn gives the namespace's veth an IPv6 address midway, and from then on a
        # dual-stack server would offer it too and browsers would prefer it, past the IPv4 loss
        # filters some tests set up (test_tls runs the dual-stack default).
        "media": {"udp_port": 0, "threads": MEDIA_THREADS, "bind": "0.0.0.0"},
        "plugins": plugins if plugins is not None else [chat_plugin_entry(rooms=[{"id": "lobby", "history": 5}])],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def wait_until(predicate, timeout: float, what: str):
    """Polls `predicate` every 0.1 s until it is truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> int | None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout`; returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class ServerUnderTest:
    """What tests that run against Atrium or the Janus reference need of either server. `metric`
    and `admin` are Atrium's /metrics and admin API (None for Janus)."""

    def __init__(self, kind: str, http_url: str, ws_url: str, log_path: Path, alive, udp_port: int | None,
                 metric=None, admin=None):
        self.kind = kind
        self.http_url = http_url
        self.ws_url = ws_url
        self.log_path = log_path
        self._alive = alive
        self.udp_port = udp_port
        self.metric = metric
        self.admin = admin

    @classmethod
    def of_atrium(cls, atrium: "AtriumServer") -> "ServerUnderTest":
        return cls("atrium", atrium.http_url, atrium.ws_url, atrium.log_path, atrium.alive,
                   atrium.config["media"]["udp_port"], atrium.metric, atrium.admin)

    def url(self, transport: str = "websocket") -> str:
        return self.http_url if transport == "http" else self.ws_url

    def alive(self) -> bool:
        return self._alive()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class AtriumServer:
    """One running atrium process."""

    plugin_for_handles = "atrium.plugin.chat"

    def __init__(self, config: dict, workdir: Path):
        self.config = config
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.log_path = workdir / "atrium.log"
        self.http_port = config["http"]["port"]
        self.ws_port = config["websocket"]["port"]
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.http_url = f"{self.base}/janus"
        self.admin_url = f"{self.base}/admin"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "AtriumServer":
        require_build(ATRIUM_BIN)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(ATRIUM_BIN), "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=str(self.workdir))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"atrium exited with {self.proc.returncode} at start:\n{self.log()}")
            try:
                if requests.get(f"{self.http_url}/info", timeout=1).status_code == 200 and self._websocket_listening():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"atrium did not answer within {timeout}s:\n{self.log()}")

    def _websocket_listening(self) -> bool:
        """The host binds the WebSocket port after the HTTP one, so /info can answer a moment
        before a WebSocket could connect. The host logs the bind (at info); a log quieter than
        that leaves a connection attempt to tell."""
        if self.config["websocket"].get("enabled", True) is False:
            return True
        if self.config.get("log_level", "info") in ("trace", "debug", "info", "notice"):
            return "Janus API over WebSocket" in self.log()
        try:
            socket.create_connection(("127.0.0.1", self.ws_port), timeout=1).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        return stop_process(self.proc)

    def admin(self, request: dict) -> dict:
        body = {"transaction": "adm", "admin_secret": self.config["admin"]["secret"], **request}
        return requests.post(self.admin_url, json=body, timeout=10).json()

    def metrics(self) -> str:
        return requests.get(f"{self.base}/metrics", timeout=10).text

    def metric(self, name: str) -> float:
        """One unlabelled sample from /metrics; fails when the metric is missing."""
        m = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.M)
        assert m, f"{name} not in /metrics"
        return float(m.group(1))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def pytest_configure(config):
    config.addinivalue_line("markers", "atrium_only: needs Atrium itself (not runnable against the Janus reference)")
    config.addinivalue_line("markers", "alone: run after the side-by-side part of `make test`, with nothing else "
                                       "running (it measures real time closely: every packet of a timed window, "
                                       "a recording's length)")


# The modules that take longest, longest first. `make test` runs modules side by side (pytest-xdist,
# --dist loadfile: a module stays on one worker, so its module-scoped servers start once), and a
# worker takes the next module in collection order; starting the long ones first keeps one of them
# from running alone at the end. A module missing here runs after these, in file order.
LONGEST_MODULES_FIRST = ["test_sfu_chromium", "test_webapp", "test_recorder", "test_soak_short", "test_echotest",
                         "test_sfu_media", "test_turn", "test_stream_links", "test_bench", "test_ice_tcp",
                         "test_hostile_media"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item (item.rep_setup / rep_call / rep_teardown), so fixtures
    can save artifacts when a test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def atrium(tmp_path_factory) -> AtriumServer:
    server = AtriumServer(base_config(), tmp_path_factory.mktemp("atrium"))
    server.start()
    yield server
    code = server.stop()
    assert code == 0, f"atrium did not stop cleanly (exit {code}):\n{server.log()[-4000:]}"


@pytest.fixture
def start_atrium(tmp_path):
    """Starts servers with custom configurations; all are stopped at the end of the test."""
    servers: list[AtriumServer] = []

    def start(config: dict | None = None, name: str = "atrium") -> AtriumServer:
        server = AtriumServer(config or base_config(), tmp_path / f"{name}{len(servers)}")
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


# ---- Fixtures several suites share --------------------------------------------------------------
# Helpers live in modules of their own (browser.py, videoroom_client.py, rtc_peer.py); they are
# imported here inside the fixtures, because they import this module.

@pytest.fixture(scope="session")
def settled_addresses():
    from browser import settle_addresses
    settle_addresses()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    """The e2e pages (Tests/e2e/pages) with janus.js and adapter.js, on a free loopback port."""
    from browser import serve_pages
    yield from serve_pages(tmp_path_factory.mktemp("janusjs-site"))


@pytest.fixture(scope="session")
def browser_pool(tmp_path_factory):
    """This worker's idle Chromiums, quit when the worker ends."""
    from browser import BrowserPool
    pool = BrowserPool(tmp_path_factory.mktemp("chromium"))
    yield pool
    pool.quit_all()


@pytest.fixture
def chromium(browser_pool, settled_addresses):
    """Chromium sessions (one per name), each in a fresh browser context of a pooled Chromium;
    the contexts are closed at the end of the test."""
    from browser import chromium_sessions
    yield from chromium_sessions(browser_pool)


@pytest.fixture(scope="module")
def sfu(tmp_path_factory):
    """The SFU under test for a module: Atrium with its SFU plugin, or Janus's VideoRoom with
    ATRIUM_E2E_SFU=janus (videoroom_client.start_sfu)."""
    from videoroom_client import SFU_KIND, start_sfu
    server, stop = start_sfu(tmp_path_factory.mktemp(f"sfu-{SFU_KIND}"))
    try:
        yield server
    finally:
        problem = stop()
    assert problem is None, problem


def failed_test_label(request, prefix: str) -> str | None:
    """When the test failed: the artifact file prefix for it (ARTIFACTS made); else None."""
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return prefix + "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


@pytest.fixture
def sfu_trace(request, sfu):
    """On failure: the server's log and every registered session's events go to
    Tests/e2e/artifacts/sfu-<test>-*."""
    items: dict[str, list] = {"janus": [], "notes": []}
    yield items
    label = failed_test_label(request, "sfu")
    if label is None:
        return
    (ARTIFACTS / f"{label}-{sfu.kind}.log").write_text(sfu.log())
    dump = [{"session": j.session_id, "events": j.events} for j in items["janus"]]
    (ARTIFACTS / f"{label}-events.json").write_text(json.dumps({"sessions": dump, "notes": items["notes"]},
                                                               indent=1, default=str))


@pytest.fixture
def trace(request):
    """Peers and servers a test registers; on failure their SDPs, events, frame counts and logs go
    to Tests/e2e/artifacts/echotest-<test>-*."""
    items: dict[str, list] = {"peers": [], "servers": [], "notes": []}
    yield items
    label = failed_test_label(request, "echotest")
    if label is None:
        return
    for i, peer in enumerate(items["peers"]):
        (ARTIFACTS / f"{label}-peer{i}.json").write_text(json.dumps({
            "handle": peer.handle, "frames": peer.frames(), "remote_kinds": peer.remote_kinds,
            "ice": peer.pc.iceConnectionState, "connection": peer.pc.connectionState,
            "offer": peer.offer_sdp, "answer": peer.answer_sdp, "events": peer.janus.events,
        }, indent=1, default=str))
    for i, srv in enumerate(items["servers"]):
        (ARTIFACTS / f"{label}-{srv.kind}{i}.log").write_text(srv.log())
    if items["notes"]:
        (ARTIFACTS / f"{label}-notes.txt").write_text("\n".join(map(str, items["notes"])) + "\n")


@pytest.fixture
def lan(request):
    """Two hosts on one link (hosts.py): (server, browsers, the server's address). IPv4 unless
    parametrized indirectly with "ipv6" (IPv6 addresses only) or "routed" (each host a default
    route through the other, which Firefox needs to gather candidates)."""
    from hosts import Host, link
    from remote_meeting import BROWSERS_IP, BROWSERS_IP6, SERVER_IP, SERVER_IP6
    kind = getattr(request, "param", "ipv4")
    server, browsers = Host("server"), Host("browsers")
    try:
        if kind == "ipv6":
            link(server, SERVER_IP6, browsers, BROWSERS_IP6, prefix=64)
        else:
            link(server, SERVER_IP, browsers, BROWSERS_IP, default_route=kind == "routed")
        yield server, browsers, SERVER_IP6 if kind == "ipv6" else SERVER_IP
    finally:
        browsers.close()
        server.close()
