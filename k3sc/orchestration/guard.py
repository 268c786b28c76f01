"""A guard between `k3sc up` and each process it starts, so nothing outlives a killed `k3sc up`.

`python -m k3sc.orchestration.guard <argv...>` runs `argv` and stays its parent. A Prefect worker's
flow runs and their agents (each in its own session) are not reached by a signal to the worker,
and a parent-death signal is not inherited by them; so the guard, a child subreaper on Linux,
keeps every descendant attached to itself and ends them all when `k3sc up` is gone:

- `k3sc up` dies (even by SIGKILL): a parent-death signal on Linux, and everywhere a check of the
  parent pid every half second, then SIGTERM to every descendant, a short grace, SIGKILL.
- SIGTERM / SIGINT from `k3sc up`: passed to the child, which stops as it does (a worker lets
  its flow runs finish); the guard exits with the child's code once the rest is cleaned up.
- SIGUSR1 from `k3sc up`: its patience is over: SIGKILL to every descendant at once.

The guard imports only the standard library and psutil, and starts in a few tens of ms.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

import psutil

PARENT_ENV = "K3SC_GUARD_PARENT"
# What `k3sc up` sends once its grace for a stop has passed.
KILL_NOW = signal.SIGUSR1
# The parent-death signal: one nothing else sends, so its handler can tell why it came.
_PARENT_DIED = signal.SIGUSR2
_POLL_S = 0.5
_TEARDOWN_GRACE_S = 5.0

# <linux/prctl.h>
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class _Stop(Exception):
    """Leave the watch loop: `kill` says whether the grace period is skipped."""

    def __init__(self, kill: bool) -> None:
        self.kill = kill


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0)) == 0


def descendants() -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process().children(recursive=True)
    return []


# Set by KILL_NOW during a teardown: the grace is over.
_hurry = {"now": False}


def end_all(grace: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM to every descendant, up to `grace` seconds for them to go, then SIGKILL the rest.

    Repeated until none is left: as a subreaper the guard inherits orphans while it works.
    """
    deadline = time.monotonic() + grace
    sig = signal.SIGTERM if grace > 0 else signal.SIGKILL
    while True:
        alive = descendants()
        if not alive:
            return
        if _hurry["now"] or time.monotonic() >= deadline:
            sig = signal.SIGKILL
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.send_signal(sig)
        _reap(child)
        time.sleep(0.1)


def _reap(child: subprocess.Popen[bytes] | None = None) -> None:
    """Collect exited orphans, which became the guard's children (zombies otherwise, still
    counted as running by anyone looking); the guarded child's status goes to its Popen."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            if child is not None and pid == child.pid:
                child.returncode = os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    parent = int(os.environ.pop(PARENT_ENV, "0")) or os.getppid()

    def parent_gone() -> bool:
        return os.getppid() != parent

    def on_parent_death(signum: int, frame: object) -> None:
        # Also sent when the *thread* that started the guard ends; only a new parent pid counts.
        if parent_gone():
            raise _Stop(kill=False)

    def on_kill_now(signum: int, frame: object) -> None:
        raise _Stop(kill=True)

    signal.signal(_PARENT_DIED, on_parent_death)
    signal.signal(KILL_NOW, on_kill_now)
    _prctl(_PR_SET_PDEATHSIG, _PARENT_DIED)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if parent_gone():  # died before the death signal was armed
        return 1
    child = subprocess.Popen(argv)
    forward = {signal.SIGTERM, signal.SIGINT}
    for sig in forward:
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    code = 1
    try:
        while (status := child.poll()) is None:
            if parent_gone():
                raise _Stop(kill=False)
            _reap(child)
            time.sleep(_POLL_S)
        code = status
        _quiet(forward)
        end_all(_TEARDOWN_GRACE_S, child)  # whatever the child left behind
    except _Stop as stop:
        _quiet(forward)
        end_all(0.0 if stop.kill else _TEARDOWN_GRACE_S, child)
        code = child.wait()
    return code if code >= 0 else 128 - code


def _quiet(forward: set[signal.Signals]) -> None:
    """During a teardown: nothing left to forward to, and KILL_NOW only cuts the grace short."""
    for sig in forward:
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(_PARENT_DIED, signal.SIG_IGN)
    signal.signal(KILL_NOW, lambda signum, frame: _hurry.update(now=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
