"""A k3sc run whose process died is crashed by the zombie automation, even before its first heartbeat.

A dispatch run that dies holding the deployment's only concurrency slot would stall every later
scan (CANCEL_NEW cancels them all). The automation starts its clock at *Running*, an event the
server itself emits, so a run that never managed to send a heartbeat is caught too. Here the
"process" is a run forced to Running that never sends anything; the window is shortened to 10 s.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k3sc.orchestration import deploy, runs
from k3sc.orchestration.api import PrefectAPI
from tests.e2e.helpers import deployed_world

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("deployment", [runs.DISPATCH_DEPLOYMENT, runs.AGENT_DEPLOYMENT])
def test_a_run_silent_since_it_started_is_crashed(
    tmp_path: Path, prefect_api_url: str, deployment: str
) -> None:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {"owner": "zombie", "allowed_authors": ["alice"], "repos": [{"name": "api"}]},
    )
    try:
        asyncio.run(_zombie_automation(prefect_api_url, within=timedelta(seconds=10)))
        run_id, began = asyncio.run(_start_silent_run(prefect_api_url, deployment))
        state, message = asyncio.run(_wait_for_crash(prefect_api_url, run_id, within=90))
        assert state == "CRASHED", f"still {state} after 90 s"
        assert message == "No heartbeat for 10s: process lost."
        assert time.monotonic() - began >= 10
    finally:
        asyncio.run(_zombie_automation(prefect_api_url, within=timedelta(seconds=90)))
        deployed.stop()


async def _zombie_automation(api_url: str, within: timedelta) -> None:
    # This process's Prefect settings were fixed at first import: point them at the session
    # server explicitly, as `k3sc up` does (an env var set now would start a temporary server).
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        await deploy.ensure_zombie_automation(within=within)


async def _start_silent_run(api_url: str, deployment: str) -> tuple[str, float]:
    async with PrefectAPI(api_url) as api:
        created = await api.create_flow_run(
            deployment,
            parameters={"force": False}
            if deployment == runs.DISPATCH_DEPLOYMENT
            else {"repo": "zombie/api", "issue": 1, "kind": "implement", "agent": "claude-a", "attempt": 1},
            name=f"silent {datetime.now(UTC):%H:%M:%S}",
            tags=["k3sc-test-zombie"],
            scheduled_time=datetime.now(UTC) + timedelta(days=1),  # no worker must pick it up
        )
        assert await api.set_state(created.id, "PENDING", force=True) == "ACCEPT"
        assert await api.set_state(created.id, "RUNNING", force=True) == "ACCEPT"
        return created.id, time.monotonic()


async def _wait_for_crash(api_url: str, run_id: str, within: float) -> tuple[str, str]:
    deadline = time.monotonic() + within
    async with PrefectAPI(api_url) as api:
        while True:
            run = await api.flow_run(run_id)
            state = run.state if run else None
            if (state and state.type == "CRASHED") or time.monotonic() > deadline:
                return str(state.type if state else None), str(state.message if state else None)
            await asyncio.sleep(2)
