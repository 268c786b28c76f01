"""A dashboard in a real terminal (a pty) stops cleanly on SIGINT, SIGTERM and SIGHUP: exit 0, and
the terminal is given back (the alternate screen left, the cursor shown), as `q` would.

`k3sc sessions` stands for both dashboards: `k3sc top` is the same `RefreshingApp` and installs the
same handlers, but needs a Prefect server to start at all.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.up_process import AS_FROM_A_TERMINAL

LEAVE_ALT_SCREEN = b"\x1b[?1049l"
ENTER_ALT_SCREEN = b"\x1b[?1049h"


def read_until(fd: int, wanted: bytes, seconds: float, seen: bytearray) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                return wanted in seen
            seen += chunk
            if wanted in seen:
                return True
    return wanted in seen


@pytest.mark.skipif(sys.platform == "win32", reason="ptys and POSIX signals")
@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGINT, id="Ctrl-C"),
        pytest.param(signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGHUP, id="SIGHUP"),
    ],
)
def test_a_dashboard_gives_the_terminal_back_on_every_stop_signal(
    isolated_env: Path, sig: signal.Signals
) -> None:
    home = isolated_env / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    parent, child = pty.openpty()
    proc = subprocess.Popen(
        [*AS_FROM_A_TERMINAL, "-m", "k3sc", "sessions"],
        stdin=child, stdout=child, stderr=child, env=env, start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(child)
    seen = bytearray()
    try:
        assert read_until(parent, ENTER_ALT_SCREEN, 60, seen), bytes(seen[-500:])
        time.sleep(1.0)  # the first paint and the handlers, installed on mount
        proc.send_signal(sig)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            read_until(parent, b"\0never", 0.2, seen)  # keep the pty drained: a full one blocks the app
        assert proc.poll() == 0, bytes(seen[-800:])
        read_until(parent, LEAVE_ALT_SCREEN, 2, seen)
        assert LEAVE_ALT_SCREEN in seen[seen.rfind(ENTER_ALT_SCREEN) :]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(parent)
