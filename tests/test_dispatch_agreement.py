"""The dry run and the dispatcher decide the same: both gather over the same GitHub and Prefect state and
the dispatcher's first pass carries out exactly the rows `k3sc dispatch --dry-run` printed.

The world covers every kind of decision at once: a plain claim, a claim a killed dispatcher left in
flight (an intent), an orphan past its grace, a fresh orphan inside it, a finished attempt awaiting
its hand-off, and an untrusted issue. Runs on the session's Prefect server with k3sc deployed and
no worker, so nothing the dispatcher submits runs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from k3sc import config as k3sc_config
from k3sc.github import GitHubClient
from k3sc.labels import Kind
from k3sc.models import Intent, Issue, Outcome, Repo
from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.services import dispatch
from k3sc.workflow import Dispatch
from tests.e2e.helpers import Deployed, deployed_world, reset_dispatch

pytestmark = pytest.mark.prefect

DISPATCH = (
    "import asyncio, json; from flows.dispatch import dispatch; "
    "print('SUMMARY ' + json.dumps(asyncio.run(dispatch(force=True))))"
)


@pytest.fixture
def deployed(tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    world = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "agree",
            "allowed_authors": ["alice"],
            "max_slots": 6,
            "repos": [
                {
                    "name": "api",
                    "issues": [
                        {"title": "plain", "author": "alice"},
                        {"title": "claim in flight", "author": "alice", "labels": ["claude-c"]},
                        {"title": "orphan past grace", "author": "alice", "labels": ["codex-d"]},
                        {"title": "fresh orphan", "author": "alice", "labels": ["claude-e"]},
                        {"title": "finished attempt", "author": "alice", "labels": ["claude-f"]},
                        {"title": "untrusted", "author": "mallory"},
                    ],
                }
            ],
        },
    )
    for name in ("K3SC_CONFIG", "GITHUB_TOKEN", "PREFECT_API_URL", "K3SC_CACHE_DIR"):
        monkeypatch.setenv(name, world.env[name])
    try:
        yield world
    finally:
        asyncio.run(_cancel_everything(prefect_api_url, world.world.repos[0].full_name))
        world.stop()


def test_the_dispatchers_first_pass_is_the_dry_run(deployed: Deployed, prefect_api_url: str) -> None:
    repo = deployed.world.repos[0]
    asyncio.run(_prepare(prefect_api_url, repo.full_name))

    dry = [_key(r) for r in asyncio.run(_dry_run())]
    proc = subprocess.run(
        [sys.executable, "-c", DISPATCH],
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("SUMMARY "))[8:])
    carried_out = [_key(r) for r in summary["decisions"][0]]

    assert carried_out == dry
    ref = repo.key
    assert {(issue, action) for issue, action, *_ in dry} >= {
        (f"{ref}#2", "recover"),
        (f"{ref}#5", "hand-off"),
        (f"{ref}#3", "orphan"),
        (f"{ref}#4", "watch"),
        (f"{ref}#1", "implement"),
        (f"{ref}#3", "implement"),
        (f"{ref}#5", "implement"),
        (f"{ref}#6", "skip"),
    }


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    # A fresh orphan's first sighting is each reader's own "now"; every other reason is deterministic.
    reason = row["reason"] if row["action"] != "watch" else None
    return row["issue"], row["action"], row["agent"], row["attempt"], row["pr"], reason


async def _dry_run() -> list[dict[str, Any]]:
    config = k3sc_config.load().config
    async with GitHubClient.from_config(config) as gh:
        planned = await dispatch.plan(config, gh)
    return [r.__dict__ for r in planned.decisions.rows()]


async def _prepare(api_url: str, repo: str) -> None:
    """An intent for #2, an old sighting of #3, and a failed attempt of #5 awaiting its hand-off."""
    ref = repo.lower()
    intent = Intent(
        key=f"k3sc/{ref}#2/implement/1", repo=repo, issue=2, kind="implement", agent="claude-c", attempt=1,
        origin="ready",
    )  # fmt: skip
    memory = dispatch_state.DispatchState(
        intents=[intent], orphans_seen={f"{ref}#3": datetime.now(UTC) - timedelta(hours=1)}
    )
    finished = Issue(Repo.parse(repo), 5, "finished attempt", "alice", datetime.now(UTC), ("claude-f",))
    async with PrefectAPI(api_url) as api:
        await dispatch_state.save(api, memory)
        await dispatch_state.set_paused(api, False)
        run = await runs.submit(api, Dispatch(finished, Kind.IMPLEMENT, "claude-f", 1))
        await api.set_state(run.id, "FAILED", message="exit code 1", force=True)


async def _cancel_everything(api_url: str, repo: str) -> None:
    """Leave no scheduled run of this world behind for later tests, and forget its dispatch state."""
    await reset_dispatch(api_url)
    async with PrefectAPI(api_url) as api:
        for run in await runs.pending_runs(api):
            if run.repo.key == repo.lower():
                await runs.mark_handed_off(api, run, Outcome.ERROR)
