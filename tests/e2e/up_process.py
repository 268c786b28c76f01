"""`k3sc up` as a user's terminal or a supervisor runs it: a subprocess to watch, signal and inspect.

Every process it starts carries a marker in its environment, so a test can find anything left
behind even after it was re-parented to init.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

MARKER = "K3SC_TEST_MARKER"
# SIGHUP back at its default before `k3sc up` starts, as from a terminal: a test run under `nohup`
# would otherwise hand down an ignored SIGHUP, which `k3sc up` keeps ignored on purpose.
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
]


@dataclass
class UpProcess:
    """One `k3sc up` subprocess, its k3sc home, its port and its marker."""

    popen: subprocess.Popen[bytes]
    home: Path
    port: int
    marker: str
    stderr_path: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        """Until `text` appears on stderr; fails with the output if `k3sc up` exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr:
                return
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"k3sc up exited {self.popen.returncode} before {text!r}:\n{self.stderr}"
                )
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} from k3sc up after {timeout:.0f}s:\n{self.stderr}")

    def flow_runs(self) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.api_url}/flow_runs/filter", json={"limit": 200}, timeout=10)
        response.raise_for_status()
        runs: list[dict[str, Any]] = response.json()
        return runs

    def wait_until(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"k3sc up exited {self.popen.returncode} waiting for {what}:\n{self.stderr}"
                )
            found = check()
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"no {what} after {timeout:.0f}s:\n{self.stderr}")

    def family(self) -> list[psutil.Process]:
        """`k3sc up` and every process it started, however deep, while they are attached to it."""
        root = psutil.Process(self.popen.pid)
        return [root, *root.children(recursive=True)]

    def signal(self, sig: signal.Signals, timeout: float) -> int:
        """Send `sig`; the exit code once `k3sc up` is gone (fails if it takes longer than `timeout`)."""
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"k3sc up still running {timeout:.0f}s after {sig.name}:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        """Test clean-up: nothing this `k3sc up` started may outlive the test, whatever happened."""
        left = marked(self.marker)
        if self.popen.poll() is None:
            with contextlib.suppress(psutil.Error):
                left += self.family()
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.popen.wait(timeout=10)


def start_up(
    home: Path, port: int, *, seed: dict[str, Any] | None = None, extra: Sequence[str] = ()
) -> UpProcess:
    """`k3sc up --sandbox --port <port>` in its own session (no signal meant for pytest reaches it)."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [*AS_FROM_A_TERMINAL, "-m", "k3sc", "up", "--sandbox", "--port", str(port), *extra]
    if seed is not None:
        seed_path = home / f"world-{secrets.token_hex(2)}.yaml"
        seed_path.write_text(yaml.safe_dump(seed))
        argv += ["--seed", str(seed_path)]
    marker = secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GITHUB_TOKEN", "GH_TOKEN"))}
    env.update(K3SC_HOME=str(home), **{MARKER: marker})
    stderr_path = home / f"up-{marker}.stderr"
    with stderr_path.open("wb") as stderr:
        popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    return UpProcess(popen, home, port, marker, stderr_path)


def marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries `marker` (the ones an agent's clean env hides are
    found through `UpProcess.family` instead)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == marker:
                found.append(process)
        except psutil.Error:
            continue
    return found
