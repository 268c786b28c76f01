"""`k3sc kill` during a real agent run: the agent process is gone within 10 s, the issue is at
`needs-human` with a comment saying who stopped it, and later scans never start another attempt.

The agent is the stub (`slow=120`) run by a real process worker from the `k3sc-agent` deployment;
the dispatcher runs as its own process, as the deployment would run it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k3sc.models import Outcome, RunPhase
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from tests.e2e.helpers import deployed_world

pytestmark = pytest.mark.e2e

DISPATCH = [
    sys.executable,
    "-c",
    "import asyncio; from flows.dispatch import dispatch; asyncio.run(dispatch(force=True))",
]


def test_kill_stops_the_agent_and_nothing_restarts_it(tmp_path: Path, prefect_api_url: str) -> None:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "kill",
            "allowed_authors": ["alice"],
            "repos": [{"name": "api", "issues": [{"title": "slow", "author": "alice", "stub": "slow=120"}]}],
        },
    )
    world, env = deployed.world, {**deployed.env, "K3SC_OPERATOR": "test-operator"}
    repo = world.repos[0]
    ref = f"{repo.key}#1"
    try:
        deployed.session.stack.start_worker("k3sc-agents")
        subprocess.run(DISPATCH, env=env, check=True, capture_output=True, timeout=300)
        run = _wait_for(prefect_api_url, ref, RunPhase.RUNNING, within=240)
        workspace = world.root / "workspaces"
        deadline = time.monotonic() + 180  # the flow prepares the workspace before the agent starts
        while not _stub_processes(workspace) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _stub_processes(workspace), "the stub agent should be running"

        asked = time.monotonic()
        killed = subprocess.run(
            [sys.executable, "-m", "k3sc", "kill", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert killed.returncode == 0, killed.stderr
        returned = time.monotonic() - asked
        while _stub_processes(workspace) and time.monotonic() - asked < 30:
            time.sleep(0.2)
        gone_after = time.monotonic() - asked
        assert not _stub_processes(workspace), "the agent process outlived k3sc kill"
        print(
            f"agent process gone {gone_after:.1f} s after k3sc kill started (the command took {returned:.1f} s)"
        )
        assert gone_after <= 10.0, f"the agent process took {gone_after:.1f} s to stop"

        view = world.fake.issue_view(repo.owner, repo.name, 1)
        assert view["labels"] == ["needs-human"]
        assert any("Stopped by test-operator with `k3sc kill`" in c["body"] for c in view["comments"])

        for _ in range(2):  # the run's end triggers scans; none of them may start another attempt
            subprocess.run(DISPATCH, env=env, check=True, capture_output=True, timeout=300)
        history = asyncio.run(_history(prefect_api_url, ref))
        assert [(r.attempt, r.outcome) for r in history] == [(1, Outcome.STOPPED)], history
        assert history[0].id == run and history[0].phase is RunPhase.CANCELLED
        assert world.fake.issue_view(repo.owner, repo.name, 1)["labels"] == ["needs-human"]
    finally:
        deployed.stop()


def _stub_processes(workspace: Path) -> list[int]:
    """Stub agents whose working directory is in this world's workspaces."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cwd.startswith(str(workspace)) and b"stub_agent" in cmdline:
            found.append(int(entry.name))
    return found


def _wait_for(api_url: str, ref: str, phase: RunPhase, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        current = [r for r in asyncio.run(_history(api_url, ref)) if r.phase is phase]
        if current:
            return current[0].id
        time.sleep(1)
    raise AssertionError(f"no {phase.value} run for {ref} within {within} s")


async def _history(api_url: str, ref: str) -> list:  # type: ignore[type-arg]
    async with PrefectAPI(api_url) as api:
        return await runs.runs_for_issues(api, [ref])
