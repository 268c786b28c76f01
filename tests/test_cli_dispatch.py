"""`k3sc dispatch`: the dry run plans like the dispatcher and writes nothing; the real one starts a scan.

Runs against the session's real Prefect server and a fake GitHub, with the deployments in place
(the same `deploy_all` as `k3sc up`), but no workers: nothing here executes a flow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun
from k3sc.sandbox import world as sandbox
from tests.cli_helpers import invoke
from tests.e2e.helpers import deployed_world

pytestmark = pytest.mark.prefect


@pytest.fixture
def world(tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sandbox.World]:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "plan",
            "allowed_authors": ["alice"],
            "repos": [
                {
                    "name": "api",
                    "issues": [
                        {"title": "trusted", "author": "alice"},
                        {"title": "untrusted", "author": "mallory"},
                        {"title": "needs a review", "author": "alice", "labels": ["needs-review"]},
                    ],
                }
            ],
        },
    )
    for name in ("K3SC_CONFIG", "GITHUB_TOKEN", "PREFECT_API_URL", "K3SC_CACHE_DIR"):
        monkeypatch.setenv(name, deployed.env[name])
    try:
        yield deployed.world
    finally:
        deployed.stop()


def test_dry_run_plans_like_the_dispatcher_and_writes_nothing(
    world: sandbox.World, prefect_api_url: str
) -> None:
    before = list(world.fake.write_log)
    result = invoke(["dispatch", "--dry-run", "--json"])
    plan = json.loads(result.stdout)
    rows = {row["issue"]: row for row in plan["rows"]}
    trusted, untrusted, review = (f"{world.owner}/api#{n}".lower() for n in (1, 2, 3))
    assert rows[review]["action"] == "review"  # needs-review goes first
    assert rows[trusted]["action"] == "implement"
    assert rows[trusted]["attempt"] == 1
    assert rows[review]["agent"] != rows[trusted]["agent"]
    assert rows[untrusted]["action"] == "skip"
    assert rows[untrusted]["reason"].startswith("author not allowed")
    assert world.fake.write_log == before, "a dry run wrote to GitHub"
    assert asyncio.run(_agent_runs(prefect_api_url, [trusted, untrusted, review])) == []


def test_dispatch_starts_a_forced_scan(world: sandbox.World, prefect_api_url: str) -> None:
    result = invoke(["dispatch", "--json"])
    started = json.loads(result.stdout)
    flow_run = asyncio.run(_flow_run(prefect_api_url, started["id"]))
    assert flow_run.parameters == {"force": True, "reason": "k3sc dispatch"}
    assert flow_run.name == "scan on k3sc dispatch"
    assert flow_run.state_type == "SCHEDULED"
    asyncio.run(_cancel(prefect_api_url, started["id"]))


async def _agent_runs(api_url: str, refs: list[str]) -> list[object]:
    async with PrefectAPI(api_url) as api:
        return list(await runs.runs_for_issues(api, refs))


async def _flow_run(api_url: str, run_id: str) -> FlowRun:
    async with PrefectAPI(api_url) as api:
        found = await api.flow_run(run_id)
    assert found is not None
    return found


async def _cancel(api_url: str, run_id: str) -> None:
    async with PrefectAPI(api_url) as api:
        await api.set_state(run_id, "CANCELLED", force=True)
