"""A short soak in `make test`: Tests/soak/soak.py, in-process, against the build under test.

The same driver as `make soak` (ten minutes or an hour against the release build), with six clients
(two VideoRoom publishers that also subscribe, one EchoTest peer, three chat participants) joining,
publishing, chatting, leaving and reconnecting for 45 s. It fails on any client error, on a crash or
an unclean stop, on an error line in the server's log, and on sessions, handles, PeerConnections or
participants left behind once the clients are gone.

Growth of RSS, fds and threads is measured and reported but not judged here: nine seconds of
warm-up cannot tell a leak from pools and buffers settling (a dispatch thread that comes or goes is
already 14 % of seven); `make soak` judges it after a real warm-up.
"""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import ARTIFACTS, require_media_ip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "soak"))
import soak  # noqa: E402


def test_short_soak_leaves_nothing_behind():
    require_media_ip()
    summary = soak.run_soak(seconds=45, clients=6, out=ARTIFACTS / "soak-short", judge=False)
    print(soak.report(summary))
    assert summary["passed"], soak.report(summary)
