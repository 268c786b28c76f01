"""Killing the dispatcher at random points mid-scan never duplicates a claim, a run or a label write,
and never loses a hand-off (ARCHITECTURE.md invariant 1).

The dispatcher runs as its own process (the dispatch flow called directly), SIGKILLed after a
random delay that lands anywhere from start-up to the end of the scan, then started again. The
agents are the real stub agent run by a real process worker from the real `k3sc-agent`
deployment, so hand-offs, retries and reviews all happen while the dispatcher keeps dying.
"""

from __future__ import annotations

import asyncio
import collections
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.services import up
from tests import github_contract
from tests.e2e.helpers import deployed_world

pytestmark = pytest.mark.e2e

DISPATCH = [
    sys.executable,
    "-c",
    "import asyncio; from flows.dispatch import dispatch; asyncio.run(dispatch(force=True))",
]


def test_killed_dispatcher_duplicates_nothing_and_loses_nothing(tmp_path: Path, prefect_api_url: str) -> None:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "crash",
            "max_slots": 3,
            "allowed_authors": ["alice"],
            "repos": [
                {
                    "name": "api",
                    "issues": [
                        {"title": "plain", "author": "alice"},
                        {"title": "flaky", "author": "alice", "stub": "fail-twice"},
                        {"title": "slow", "author": "alice", "stub": "slow=3"},
                    ],
                },
                {"name": "web", "issues": [{"title": "plain", "author": "alice"}]},
            ],
            # The dispatcher here only runs when the test starts it: no orphan grace to wait out.
            "config": {"scan": {"orphan_grace": "1s"}},
        },
    )
    world, session, env = deployed.world, deployed.session, deployed.env
    rng = random.Random(20261127)
    kills: list[float] = []
    try:
        session.stack.start_worker("k3sc-agents")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            log = tmp_path / f"dispatch-{len(kills)}-{time.monotonic():.0f}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(DISPATCH, env=env, stdout=out, stderr=subprocess.STDOUT)
                if rng.random() < 0.7:
                    delay = rng.uniform(2.0, 7.0)
                    try:
                        proc.wait(timeout=delay)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        kills.append(round(delay, 2))
                    proc.wait()
                else:
                    proc.wait(timeout=180)
                    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
            if asyncio.run(up.is_idle(session)):
                break
            time.sleep(1.0)
        else:
            pytest.fail(f"not idle after 600s; kills at {kills}")
        summary = asyncio.run(up.summary(session))
        recorded = asyncio.run(_runs(prefect_api_url, summary))
    finally:
        deployed.stop()
        asyncio.run(_cancel_scheduled_dispatches(prefect_api_url))

    print(f"dispatcher killed {len(kills)} times, after {kills} s")
    assert len(kills) >= 3, f"too few kills landed to prove anything: {kills}"
    # Nothing lost: every issue reached a human, every run was handed off with an outcome.
    for row in summary["issues"]:
        assert row["labels"] == ["needs-human"], (row, kills)
    assert all(r.handed_off and r.outcome is not None for r in recorded), kills
    # No run twice: one run per (issue, kind, attempt).
    per_attempt = collections.Counter((r.issue_key, r.kind, r.attempt) for r in recorded)
    assert max(per_attempt.values()) == 1, per_attempt
    # No claim twice: each owner label in an issue's history belongs to exactly one recorded attempt.
    for row in summary["issues"]:
        claims = [
            step[0] for step in row["history"] if len(step) == 1 and step[0].startswith(("claude-", "codex-"))
        ]
        attempts = [r for r in recorded if r.issue_key == row["issue"].lower()]
        assert len(claims) == len(attempts), (row["issue"], row["history"], kills)
    # No label write twice: the fake logs a write that changes nothing as "(unchanged)".
    repeated = [line for line in world.fake.write_log if "labels" in line and "unchanged" in line]
    assert repeated == [], (repeated, kills)
    # And what the dispatcher, the agent flows and the stub sent was valid for real GitHub.
    assert github_contract.violations(world.fake.requests) == []


async def _runs(api_url: str, summary: dict) -> list:  # type: ignore[type-arg]
    async with PrefectAPI(api_url) as api:
        return await runs.runs_for_issues(api, [i["issue"].lower() for i in summary["issues"]])


async def _cancel_scheduled_dispatches(api_url: str) -> None:
    """Agent ends triggered dispatch runs no worker served here; don't leave them to the next test."""
    async with PrefectAPI(api_url) as api:
        deployment = await api.deployment_id(runs.DISPATCH_DEPLOYMENT)
        for flow_run in await api.flow_runs(
            deployment_ids=[deployment], state_types=["SCHEDULED", "PENDING"]
        ):
            await api.set_state(flow_run.id, "CANCELLED", force=True)
