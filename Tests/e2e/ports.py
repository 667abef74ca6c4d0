"""Free ports for servers the e2e suite starts, safe when pytest-xdist runs tests side by side.

Binding port 0 and closing the socket hands out a port that another process may take before the
server binds it. Tests run in parallel workers of one network namespace, so each worker takes its
ports from a block of its own (PYTEST_XDIST_WORKER gw0, gw1, ...; the block after them without
xdist), below the kernel's ephemeral range (32768 and up by default) where bind(0) and outgoing
connections draw theirs: two workers never pick the same port, and no ephemeral socket sits in a
block. A port is still checked free before it is handed out.
"""
from __future__ import annotations

import itertools
import os
import re
import socket

FIRST_PORT = 10_000
BLOCK = 2_000
MAX_WORKERS = 10  # the blocks end at 32 000, below the ephemeral range


def _worker_index() -> int:
    m = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    if m is None:
        return MAX_WORKERS
    index = int(m.group(1))
    assert index < MAX_WORKERS, f"ports.py has blocks for {MAX_WORKERS} xdist workers, not {index + 1}"
    return index


def _candidates():
    start = FIRST_PORT + _worker_index() * BLOCK
    return itertools.cycle(range(start, start + BLOCK))


_next = _candidates()


def _free(port: int, kind: int, address: str) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def _take(kind: int, address: str, count: int) -> int:
    """The first of `count` consecutive free ports (a server with several media loops binds the
    port it is given and the ones after it); the next call starts after them."""
    for _ in range(BLOCK):
        first = next(_next)
        ports = [first] + [next(_next) for _ in range(count - 1)]
        if ports[-1] == first + count - 1 and all(_free(p, kind, address) for p in ports):
            return first
    raise RuntimeError(f"no {count} free ports in a row in this worker's block of {BLOCK}")


def free_port(count: int = 1) -> int:
    """A TCP port on 127.0.0.1 (the first of `count` in a row) that is free now and that no other
    worker hands out."""
    return _take(socket.SOCK_STREAM, "127.0.0.1", count)


def free_udp_port(count: int = 1) -> int:
    """A UDP port on every address (the first of `count` in a row) that is free now and that no
    other worker hands out."""
    return _take(socket.SOCK_DGRAM, "0.0.0.0", count)
