"""Separate hosts for the e2e suite: network namespaces of their own, joined by a veth pair, so a
server and a browser reach each other only as two machines on a LAN do, never through loopback.

The suite's own namespace is left alone: an interface appearing there mid-run counts as a network
change for the Chromiums of tests running side by side (ERR_NETWORK_CHANGED). The test process
drives what runs in a host through `forward`, a loopback port in the suite's namespace whose
connections are made from inside the host.
"""
from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class Host:
    """A network namespace kept alive by a sleeping process; `run` and `popen` start programs in it."""

    def __init__(self, name: str):
        self.name = name
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "infinity"])
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == ours:
            assert time.monotonic() < deadline, f"{name}: the namespace was not made"
            time.sleep(0.01)
        self.netns = f"/proc/{self.holder.pid}/ns/net"
        self.run("ip", "link", "set", "lo", "up")

    def command(self, *argv: str) -> list[str]:
        return ["nsenter", f"--net={self.netns}", "--", *argv]

    def run(self, *argv: str) -> str:
        done = subprocess.run(self.command(*argv), capture_output=True, text=True)
        assert done.returncode == 0, f"{self.name}: {' '.join(argv)}: {done.stderr.strip()}"
        return done.stdout

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*argv), **kwargs)

    def forward(self, port: int) -> "Forward":
        return Forward(self, port)

    def close(self):
        self.holder.kill()
        self.holder.wait()


def link(a: Host, a_address: str, b: Host, b_address: str, prefix: int = 24, name: str = "lan",
         default_route: bool = False):
    """A veth pair between two hosts with one address at each end. No IPv6 link-local addresses:
    their duplicate detection ends a second later, which a browser would see as a network change.
    No default route unless asked (Firefox gathers no candidates without one). With one, the
    machine's resolvers are made unreachable in both hosts: name lookups would otherwise go out
    through the other host and be lost, and a browser's first navigation waits 26 s for them."""
    a.run("ip", "link", "add", f"{name}0", "type", "veth", "peer", "name", f"{name}1", "netns", str(b.holder.pid))
    a.run("ip", "link", "set", f"{name}0", "addrgenmode", "none")
    b.run("ip", "link", "set", f"{name}1", "addrgenmode", "none")
    family = "-6" if ":" in a_address else "-4"
    for host, device, address, gateway in ((a, f"{name}0", a_address, b_address), (b, f"{name}1", b_address, a_address)):
        extra = ["nodad"] if family == "-6" else []
        host.run("ip", family, "addr", "add", f"{address}/{prefix}", "dev", device, *extra)
        host.run("ip", "link", "set", device, "up")
        if default_route:
            host.run("ip", family, "route", "add", "default", "via", gateway)
            for resolver in _resolvers():
                host.run("ip", "route", "add", "unreachable", resolver)
    deadline = time.monotonic() + 5
    while not all("state UP" in host.run("ip", "link", "show", device) for host, device in ((a, f"{name}0"), (b, f"{name}1"))):
        assert time.monotonic() < deadline, f"{name}: the link did not come up"
        time.sleep(0.02)


def _resolvers() -> list[str]:
    try:
        lines = open("/etc/resolv.conf").read().splitlines()
    except OSError:
        return []
    return [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]


def _enter(netns: str):
    """Moves the calling thread (only it) into a network namespace."""
    fd = os.open(netns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
    finally:
        os.close(fd)


class Forward:
    """127.0.0.1:`port` (an ephemeral port) in the suite's namespace, leading to 127.0.0.1:`target`
    inside a host: each accepted connection is joined to one made by a thread that entered the
    host's namespace (a socket belongs to the namespace it was made in)."""

    def __init__(self, host: Host, target: int):
        self.host = host
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name=f"forward-{target}", daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._join, args=(client,), daemon=True).start()

    def _join(self, client: socket.socket):
        _enter(self.host.netns)
        try:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)

    def close(self):
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
