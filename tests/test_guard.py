"""The guard under each child of `k3sc up`: nothing a child started outlives `k3sc up`, even the
processes that left its session (agents do), and a stop that is not obeyed ends in SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil

from k3sc.orchestration.stack import ManagedProcess, spawn

# A child that starts a grandchild in its own session, as a flow run starts an agent.
TREE = ["sh", "-c", "sleep 300 & setsid sleep 300 & wait"]


def gone(processes: list[psutil.Process], patience: float) -> list[psutil.Process]:
    """Those of `processes` still alive after up to `patience` seconds (zombies count as gone)."""
    deadline = time.monotonic() + patience
    while True:
        alive = [p for p in processes if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie; a process that exits between the two looks is gone."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree_of(pid: int, size: int) -> list[psutil.Process]:
    """`pid` and its descendants, once there are at least `size` of them."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        if len(family) >= size:
            return family
        time.sleep(0.05)
    raise AssertionError(f"the process tree of {pid} never grew to {size}")


def test_a_killed_parent_takes_every_descendant_with_it(tmp_path: Path) -> None:
    parent_script = textwrap.dedent(
        """
        import os, sys, time
        from pathlib import Path
        from k3sc.orchestration.stack import spawn
        child = spawn("tree", sys.argv[1:], dict(os.environ), Path(os.environ["LOG"]))
        print(child.popen.pid, flush=True)
        time.sleep(300)
        """
    )
    family: list[psutil.Process] = []
    with subprocess.Popen(
        [sys.executable, "-c", parent_script, *TREE],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG": str(tmp_path / "tree.log")},
    ) as parent:
        try:
            assert parent.stdout is not None
            guard = int(parent.stdout.readline())
            family = tree_of(guard, size=4)  # guard, sh, sleep, setsid sleep
            parent.kill()
            parent.wait()
            assert gone(family, patience=10) == []
        finally:
            parent.kill()
            for process in gone(family, patience=0):
                process.kill()


def test_a_stop_that_is_ignored_ends_in_sigkill_of_everything(tmp_path: Path) -> None:
    stubborn = spawn(
        "stubborn", ["sh", "-c", "trap '' TERM; " + TREE[2]], dict(os.environ), tmp_path / "s.log"
    )
    family = tree_of(stubborn.popen.pid, size=4)
    started = time.monotonic()
    stubborn.stop(grace=1.0)
    assert time.monotonic() - started < 10
    assert gone(family, patience=2) == []


def test_the_end_of_the_thread_that_started_a_child_is_not_its_parents_death(tmp_path: Path) -> None:
    """Linux sends the parent-death signal when the *thread* that forked ends; the guard must
    tell that from its parent dying."""
    started: list[ManagedProcess] = []
    thread = threading.Thread(
        target=lambda: started.append(spawn("t", TREE, dict(os.environ), tmp_path / "t.log"))
    )
    thread.start()
    thread.join()
    child = started[0]
    try:
        family = tree_of(child.popen.pid, size=4)
        time.sleep(1.5)  # three of the guard's parent checks
        assert all(p.is_running() for p in family)
    finally:
        child.stop(grace=1.0)
