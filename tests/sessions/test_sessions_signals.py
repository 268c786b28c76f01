"""The live view ends cleanly on SIGINT, SIGTERM and SIGHUP: exit 0 and the terminal restored.

Runs the real `k3sc sessions` in a pseudo-terminal, waits for its first frame, sends the signal,
and checks the exit code and that Textual left the alternate screen and showed the cursor again.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")

LEAVE_ALT_SCREEN = b"\x1b[?1049l"
SHOW_CURSOR = b"\x1b[?25h"


def read_until(fd: int, needle: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if needle in seen:
                break
    return seen


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_ends_the_live_view_with_exit_0(name: str, tmp_path: Path) -> None:
    import pty

    primary, secondary = pty.openpty()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": "",
        "K3SC_CACHE_DIR": str(tmp_path / "cache"),
        "K3SC_HOME": str(tmp_path / "home"),
        "TERM": "xterm-256color",
        "COLUMNS": "100",
        "LINES": "30",
    }
    k3sc = Path(sys.executable).with_name("k3sc")
    process = subprocess.Popen(
        [str(k3sc), "sessions"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
    )
    os.close(secondary)
    try:
        first = read_until(primary, b"LIVE", 60)
        assert b"LIVE" in first, first[-500:]
        process.send_signal(getattr(signal, name))
        rest = b""
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            rest += read_until(primary, LEAVE_ALT_SCREEN, 0.5)
        rest += read_until(primary, b"\x00", 0.5)
        assert process.wait(timeout=5) == 0
        assert LEAVE_ALT_SCREEN in rest and SHOW_CURSOR in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
