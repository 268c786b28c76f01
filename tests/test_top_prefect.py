"""`k3sc top` against the session's real Prefect server and a sandbox GitHub: what it reads, and
that its keys act on the real dispatcher (the effect is read back from Prefect, not the screen)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from k3sc import config as k3sc_config
from k3sc.labels import Kind
from k3sc.models import Issue, Outcome, Repo
from k3sc.orchestration import controls, dispatch_state, events, ledger, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.services import fleet
from k3sc.services.top import Live
from k3sc.tui.top_app import TopApp
from k3sc.tui.top_logs import LogScreen
from k3sc.usage import Billing, Usage, UsageRecord
from k3sc.workflow import Dispatch
from tests.cli_helpers import invoke
from tests.e2e.helpers import Deployed, deployed_world
from tests.test_top_app import log_read, settle, status

pytestmark = pytest.mark.prefect

ENV = ("K3SC_CONFIG", "GITHUB_TOKEN", "PREFECT_API_URL", "K3SC_CACHE_DIR")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Deployed]:
    """One deployed sandbox world for the module: two workflow issues, one with an open PR."""
    seed = {
        "owner": "ops",
        "allowed_authors": ["alice"],
        "max_slots": 4,
        "repos": [
            {
                "name": "api",
                "issues": [
                    {"title": "to implement", "author": "alice"},
                    {"title": "to decide", "author": "alice", "labels": ["needs-human"]},
                ],
            }
        ],
    }
    deployed = deployed_world(tmp_path_factory.mktemp("top"), prefect_api_url, seed)
    repo = deployed.world.repos[0]
    deployed.world.fake.add_pull(repo.owner, repo.name, head="main", title="a change", author="alice")
    try:
        yield deployed
    finally:
        asyncio.run(_clean(prefect_api_url))
        deployed.stop()


@pytest.fixture
def deployed(world: Deployed, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    for name in ENV:
        monkeypatch.setenv(name, world.env[name])
    asyncio.run(_clean(world.env["PREFECT_API_URL"]))
    return world


async def _clean(api_url: str) -> None:
    """No operator records and no scheduled runs left behind (the server is the session's)."""
    async with PrefectAPI(api_url) as api:
        for name in await api.variables(controls.PREFIX):
            await api.delete_variable(name)
        await api.set_pool_concurrency(fleet.AGENT_POOL, 4)
        for deployment in (runs.DISPATCH_DEPLOYMENT, runs.AGENT_DEPLOYMENT):
            deployment_id = await api.deployment_id(deployment)
            for flow_run in await api.flow_runs(
                deployment_ids=[deployment_id], state_types=["SCHEDULED", "PENDING"]
            ):
                await api.set_state(flow_run.id, "CANCELLED", force=True)


def usage_row(agent: str, total: int, cost: float) -> str:
    spent = Usage(total, 0, 0, 0, total, cost, ("claude-sonnet-4-5",), 2)
    record = UsageRecord(
        "ops/api", 1, "implement", agent, 1, Billing.API_KEY, datetime.now(UTC), 30.0, "ok", 0, spent
    )
    return json.dumps([record.usage_row()])


async def _publish(api_url: str, data: str, refused: str | None = None) -> None:
    async with PrefectAPI(api_url) as api:
        await api.post_json("artifacts/", {"key": "k3sc-agent-usage", "type": "table", "data": data})
        if refused is not None:  # what the agent flow emits when a guard refuses a command
            event = events.security_blocked(
                str(uuid.uuid4()), "ops/api", 1, "implement", "claude-a", 1, refused
            )
            assert await api.emit_events([event]) == 204


def test_json_shows_the_deployed_world(deployed: Deployed) -> None:
    asyncio.run(
        _publish(
            deployed.env["PREFECT_API_URL"],
            usage_row("claude-a", 120_000, 0.5),
            refused="git push blocked (push to main)",
        )
    )
    document = json.loads(invoke(["top", "--json"]).stdout)
    for _ in range(20):  # the server persists events a moment after accepting them
        if document["sections"]["security"]["rows"]:
            break
        time.sleep(0.5)
        document = json.loads(invoke(["top", "--json"]).stdout)
    sections: dict[str, Any] = document["sections"]
    assert (document["header"]["slots"], document["header"]["paused"]) == (4, False)
    assert [r["status"] for r in sections["families"]["rows"]] == ["ok", "ok"]
    assert [(r["number"], r["state"]) for r in sections["issues"]["rows"]] == [
        (1, "ready"),
        (2, "needs-human"),
    ]
    assert [r["title"] for r in sections["pulls"]["rows"]] == ["a change"]
    assert sections["costs"]["rows"][0]["jobs"] >= 1  # today, from the usage artifact
    assert "git push blocked (push to main)" in [r["event"] for r in sections["security"]["rows"]]
    assert all(not s["errors"] for s in sections.values()), {k: s["errors"] for k, s in sections.items()}


def test_once_prints_every_section(deployed: Deployed) -> None:
    out = invoke(["top", "--once"]).stdout
    for title in (
        "FLEET",
        "FAMILIES",
        "AGENT RUNS",
        "REVIEW LEASES",
        "COSTS",
        "GITHUB ISSUES",
        "PULL REQUESTS",
    ):
        assert f"=== {title}" in out
    assert "to implement" in out


def test_usage_is_read_again_only_from_the_newest_artifact_on(deployed: Deployed) -> None:
    api_url = deployed.env["PREFECT_API_URL"]
    config = k3sc_config.load().config
    live = Live(config)
    first = asyncio.run(live.usage())
    asyncio.run(_publish(api_url, usage_row("codex-a", 10_000, 0.02)))
    second = asyncio.run(live.usage())
    assert len(second) == len(first) + 1
    assert second[-1].record.agent == "codex-a"
    assert len(asyncio.run(_ledger_since(api_url, datetime(2000, 1, 1, tzinfo=UTC)))) == len(second)


async def _ledger_since(api_url: str, start: datetime) -> list[UsageRecord]:
    """`k3sc status`'s ledger read, which shares its paging with the dashboard's."""
    async with PrefectAPI(api_url) as api:
        return await ledger.since(api, start)


def test_an_idle_github_refresh_is_all_not_modified(deployed: Deployed) -> None:
    live = Live(k3sc_config.load().config)
    first = asyncio.run(live.github())
    again = asyncio.run(live.github())
    assert (len(again.issues), len(again.pulls)) == (len(first.issues), len(first.pulls))
    assert again.requests > 0 and again.not_modified == again.requests  # 304s cost no rate limit


async def test_p_pauses_and_resumes_the_real_dispatcher(deployed: Deployed) -> None:
    loaded = k3sc_config.load()
    app = TopApp(Live(loaded.config), loaded.config, prefect_seconds=3600, github_seconds=3600)
    async with PrefectAPI(deployed.env["PREFECT_API_URL"]) as api, app.run_test(size=(160, 50)) as pilot:
        await settle(app, pilot)
        before = app.loads
        await pilot.press("p")
        await settle(app, pilot, until=before + 5)
        assert await dispatch_state.paused(api) is True
        assert status(app).startswith("dispatch paused")
        assert "PAUSED" in app.dashboard.header  # type: ignore[union-attr]
        before = app.loads
        await pilot.press("p")
        await settle(app, pilot, until=before + 5)
        assert await dispatch_state.paused(api) is False
        assert status(app) == "dispatch resumed"


async def test_n_plus_minus_and_k_act_on_prefect_and_github(deployed: Deployed) -> None:
    loaded = k3sc_config.load()
    repo = deployed.world.repos[0]
    issue = Issue(Repo(repo.owner, repo.name), 1, "to implement", "alice", datetime.now(UTC), ("ready",))
    deployed.world.fake.set_labels(repo.owner, repo.name, 1, ["claude-a"])
    app = TopApp(Live(loaded.config), loaded.config, prefect_seconds=3600, github_seconds=3600)
    async with PrefectAPI(deployed.env["PREFECT_API_URL"]) as api, app.run_test(size=(160, 50)) as pilot:
        claimed = await runs.submit(api, Dispatch(issue, Kind.IMPLEMENT, "claude-a", 1))
        await settle(app, pilot)

        await pilot.press("n")
        await settle(app, pilot)
        scans = await api.flow_runs(deployment_ids=[await api.deployment_id(runs.DISPATCH_DEPLOYMENT)])
        assert "scan on k3sc top" in [r.name for r in scans]

        await pilot.press("plus")
        await settle(app, pilot)
        assert ((await controls.read(api)).max_slots, status(app)) == (5, "max slots: 4 -> 5")
        await pilot.press("minus")
        await settle(app, pilot)
        assert (await controls.read(api)).max_slots == 4

        assert app.selected_run() is not None and app.selected_run().values["id"] == claimed.id  # type: ignore[union-attr]
        await pilot.press("k", "y")
        await settle(app, pilot)
        ended = await api.flow_run(claimed.id)
        assert ended is not None and ended.state_type == "CANCELLED"
        assert deployed.world.fake.issue_view(repo.owner, repo.name, 1)["labels"] == ["needs-human"]
        assert status(app).startswith(
            f"{repo.owner}/{repo.name}#1: stopped implement attempt 1 by claude-a".lower()
        )


async def test_enter_l_1_r_and_q_on_the_real_server(deployed: Deployed) -> None:
    """The keys that read: a run's log and every running agent's from Prefect, the real PR's
    review command, a refresh that asks every source again, and quitting."""
    loaded = k3sc_config.load()
    repo = deployed.world.repos[0]
    issue = Issue(Repo(repo.owner, repo.name), 1, "to implement", "alice", datetime.now(UTC), ("ready",))
    app = TopApp(Live(loaded.config), loaded.config, prefect_seconds=3600, github_seconds=3600)
    async with PrefectAPI(deployed.env["PREFECT_API_URL"]) as api:
        run = await runs.submit(api, Dispatch(issue, Kind.IMPLEMENT, "claude-a", 1))
        await api.set_state(run.id, "RUNNING", force=True)
        await api.post_json(
            "logs/", [_log(run.id, "[tool] Bash: uv run pytest -q"), _log(run.id, "7 passed")]
        )
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            assert app.selected_run() is not None and app.selected_run().values["id"] == run.id  # type: ignore[union-attr]
            await pilot.press("enter")
            await log_read(app, pilot)
            assert isinstance(app.screen, LogScreen)
            assert "7 passed" in app.screen.text.plain
            await pilot.press("escape", "l")
            await log_read(app, pilot)
            text = app.screen.text.plain  # type: ignore[attr-defined]
            assert f"claude-a {repo.owner}/{repo.name}#1".lower() in text.lower() and "7 passed" in text
            await pilot.press("escape", "1")
            await pilot.pause()
            pr = deployed.world.fake.numbers(repo.owner, repo.name)[-1]
            assert app.clipboard == f"/review {repo.name} {pr}"
            before = app.loads
            await pilot.press("r")
            await settle(app, pilot, until=before + 6)  # every source asked again
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0
        await api.set_state(run.id, "CANCELLED", force=True)


def test_no_reachable_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = invoke(["top", "--once"], code=1, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert result.stderr.startswith("error: Prefect: Prefect API at http://127.0.0.1:9/api unreachable")
    assert result.stderr.count("\n") == 1


class Counting(httpx.AsyncBaseTransport):
    """The real transport, noting each request's method and path."""

    def __init__(self, seen: list[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen = seen

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path.split('/api/', 1)[1]}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountedLive(Live):
    def __init__(self, config: k3sc_config.Config, api_url: str) -> None:
        super().__init__(config)
        self.api_url = api_url
        self.seen: list[str] = []

    def _api(self) -> PrefectAPI:
        return PrefectAPI(self.api_url, transport=Counting(self.seen))


async def test_a_steady_prefect_tick_costs_eight_requests_however_many_agents_run(deployed: Deployed) -> None:
    api_url = deployed.env["PREFECT_API_URL"]
    repo = Repo(deployed.world.repos[0].owner, deployed.world.repos[0].name)
    live = CountedLive(k3sc_config.load().config, api_url)
    async with PrefectAPI(api_url) as api:
        started = []
        for number in (101, 102, 103):
            issue = Issue(repo, number, "busy", "alice", datetime.now(UTC), ("ready",))
            run = await runs.submit(api, Dispatch(issue, Kind.IMPLEMENT, f"claude-{number}", 1))
            await api.set_state(run.id, "RUNNING", force=True)
            started.append(run)
        try:
            await api.post_json("logs/", [_log(started[0].id, "Running the test suite now.")])
            for _ in range(2):  # the first tick learns each run's last line; the second is steady
                live.seen.clear()
                facts = await live.runs()
                for source in (live.fleet, live.usage, live.scan, live.security):
                    await source()
            assert facts.last_lines[started[0].id] == "Running the test suite now."
            assert sorted(live.seen) == sorted(
                [
                    "POST variables/filter",  # leases, disabled, parked, slots, pause
                    "GET variables/name/k3sc-dispatch-state",
                    "POST flow_runs/filter",  # not handed off yet
                    "POST flow_runs/filter",  # the most recent
                    "POST logs/filter",  # the newest line of every running agent
                    "POST artifacts/filter",  # usage since the last one seen
                    "POST artifacts/filter",  # the last scan summary
                    "POST events/filter",  # security events
                ]
            )
        finally:
            for run in started:
                await api.set_state(run.id, "CANCELLED", force=True)
                await runs.mark_handed_off(api, run, Outcome.STOPPED)


def _log(run_id: str, message: str, level: int = 20) -> dict[str, Any]:
    return {
        "name": "prefect.flow_runs",
        "level": level,
        "message": message,
        "timestamp": datetime.now(UTC).isoformat(),
        "flow_run_id": run_id,
    }
