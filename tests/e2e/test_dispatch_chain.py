"""The adaptive interval as a self-scheduling chain: idle scans back off, work resets, never two links.

The dispatch flow runs as its own process (as a worker would start it) against the session's
Prefect server with the deployments in place; no worker serves the chain, so the scheduled
successor each run leaves behind can be inspected.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun
from tests.e2e.helpers import deployed_world, reset_dispatch

pytestmark = pytest.mark.e2e

SCAN = "import asyncio, sys; from flows.dispatch import dispatch; asyncio.run(dispatch(force=sys.argv[1] == 'force'))"


def test_idle_scans_back_off_work_resets_and_the_chain_has_one_link(
    tmp_path: Path, prefect_api_url: str
) -> None:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "chain",
            "allowed_authors": ["alice"],
            "repos": [{"name": "api", "issues": [{"title": "later", "author": "alice", "labels": []}]}],
            "config": {"scan": {"min_interval": "10s", "max_interval": "1m"}},
        },
    )
    world, env = deployed.world, deployed.env
    try:
        asyncio.run(reset_dispatch(prefect_api_url))

        def scan(
            mode: str = "scheduled",
        ) -> tuple[dispatch_state.DispatchState, list[FlowRun], datetime]:
            began = datetime.now(UTC)
            proc = subprocess.run(
                [sys.executable, "-c", SCAN, mode],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            return (*asyncio.run(_state(prefect_api_url)), began)

        # Idle scans: 10s doubled per idle scan, capped at 1m; always exactly one scheduled successor.
        for idle, interval in ((1, 20), (2, 40), (3, 60), (4, 60)):
            state, chain, began = scan()
            assert state.idle_scans == idle
            assert len(chain) == 1, chain
            due = _scheduled(chain[0])
            assert (
                began + timedelta(seconds=interval) <= due <= datetime.now(UTC) + timedelta(seconds=interval)
            )

        # A forced scan that finds nothing neither stretches nor resets the backoff.
        state, chain, _ = scan("force")
        assert state.idle_scans == 4 and len(chain) == 1

        # Work resets it: the next scan comes at the minimum interval.
        world.fake.set_labels(world.owner, "api", 1, ["ready"], actor="alice")
        state, chain, began = scan()
        assert state.idle_scans == 0
        assert len(chain) == 1
        assert _scheduled(chain[0]) <= datetime.now(UTC) + timedelta(seconds=10)
        assert world.fake.issue_view(world.owner, "api", 1)["labels"][0].startswith(("claude-", "codex-"))
    finally:
        deployed.stop()
        asyncio.run(reset_dispatch(prefect_api_url))


async def _state(api_url: str) -> tuple[dispatch_state.DispatchState, list[FlowRun]]:
    async with PrefectAPI(api_url) as api:
        state = await dispatch_state.load(api)
        deployment = await api.deployment_id(runs.DISPATCH_DEPLOYMENT)
        chain = await api.flow_runs(
            deployment_ids=[deployment], tags_all=["k3sc-chain"], state_types=["SCHEDULED"]
        )
    return state, chain


def _scheduled(flow_run: FlowRun) -> datetime:
    assert flow_run.scheduled_time is not None
    return flow_run.scheduled_time
