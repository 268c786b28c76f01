"""The operator's command line against the session's Prefect server and a sandbox GitHub.

Every command's effect is checked where it lands — Prefect records, GitHub labels, or what the next
scan decides (`k3sc dispatch --dry-run --json`) — not only in what it prints. No worker runs here:
nothing the dispatcher submits executes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from k3sc.labels import Kind
from k3sc.leases import Lease
from k3sc.models import Issue, Outcome, Repo
from k3sc.orchestration import controls, dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.services import up
from k3sc.workflow import Dispatch
from tests.cli_helpers import invoke
from tests.e2e.helpers import Deployed, deployed_world, reset_dispatch

pytestmark = pytest.mark.prefect

PRS = 10  # issues 1..10 have an open PR each; 11 is ready; 12 awaits review


def _deploy(root: Path, prefect_api_url: str) -> Deployed:
    """Ten issues with an open PR each (1..10), #11 ready, #12 awaiting review; k3sc deployed."""
    issues: list[dict[str, Any]] = [
        {"title": f"done {n}", "author": "alice", "labels": ["needs-human"]} for n in range(1, PRS + 1)
    ]
    issues += [
        {"title": "to implement", "author": "alice"},
        {"title": "to review", "author": "alice", "labels": ["needs-review"]},
    ]
    deployed = deployed_world(
        root,
        prefect_api_url,
        {
            "owner": "ops",
            "allowed_authors": ["alice"],
            "max_slots": 4,
            "repos": [{"name": "api", "issues": issues}],
        },
    )
    world = deployed.world
    repo = world.repos[0]
    remote = world.fake.remote_path(repo.owner, repo.name)
    head = _git(remote, "rev-parse", "HEAD")
    for n in [*range(1, PRS + 1), 12]:
        _git(remote, "branch", f"issue-{n}", head)
        world.fake.add_pull(repo.owner, repo.name, head=f"issue-{n}", title=f"fix {n}", author="alice")
    return deployed


@contextmanager
def _cleaned(deployed: Deployed, prefect_api_url: str) -> Iterator[Deployed]:
    """Clean operator records before and after; the world stopped at the end."""
    try:
        asyncio.run(_clean(prefect_api_url))
        yield deployed
    finally:
        asyncio.run(_clean(prefect_api_url, deployed.world.repos[0]))
        deployed.stop()


def _use(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    """Point this test's k3sc commands at the world (after the autouse isolated environment)."""
    for name in ("K3SC_CONFIG", "GITHUB_TOKEN", "PREFECT_API_URL", "K3SC_CACHE_DIR"):
        monkeypatch.setenv(name, deployed.env[name])
    return deployed


@pytest.fixture
def deployed(tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    with _cleaned(_deploy(tmp_path, prefect_api_url), prefect_api_url) as world:
        yield _use(world, monkeypatch)


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Deployed]:
    """One world for the tests that prove a command changes nothing (so they can share it)."""
    with _cleaned(_deploy(tmp_path_factory.mktemp("untouched"), prefect_api_url), prefect_api_url) as world:
        yield world


@pytest.fixture
def untouched(shared_world: Deployed, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    return _use(shared_world, monkeypatch)


def _git(remote: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


async def _clean(api_url: str, repo: Repo | None = None) -> None:
    """No operator records, no dispatch memory, no scheduled runs left for the next test."""
    async with PrefectAPI(api_url) as api:
        for name in await api.variables(controls.PREFIX):
            await api.delete_variable(name)
        await api.set_pool_concurrency("k3sc-agents", 4)
    await reset_dispatch(api_url)
    async with PrefectAPI(api_url) as api:
        for run in await runs.pending_runs(api):
            if repo is not None and run.repo.key == repo.key:
                await runs.mark_handed_off(api, run, Outcome.ERROR)


def plan() -> dict[str, dict[str, Any]]:
    """What the next scan would do, by issue number (the plan's row; hand-offs etc. aside)."""
    rows = json.loads(invoke(["dispatch", "--dry-run", "--json"]).stdout)["rows"]
    return {
        int(r["issue"].rsplit("#", 1)[1]): r for r in rows if r["action"] in ("implement", "review", "skip")
    }


def labels_of(deployed: Deployed, number: int) -> list[str]:
    repo = deployed.world.repos[0]
    return sorted(deployed.world.fake.issue_view(repo.owner, repo.name, number)["labels"])


def pr_of(deployed: Deployed, issue: int) -> int:
    repo = deployed.world.repos[0]
    views = [
        deployed.world.fake.issue_view(repo.owner, repo.name, n)
        for n in deployed.world.fake.numbers(repo.owner, repo.name)
    ]
    return next(v["number"] for v in views if v["is_pull"] and v["head"] == f"issue-{issue}")


# --------------------------------------------------------------------------- leases


def test_twenty_takers_racing_for_ten_prs_each_pr_once_each_worker_once(deployed: Deployed) -> None:
    repo = deployed.world.repos[0]
    deployed.world.fake.set_labels(
        repo.owner, repo.name, pr_of(deployed, 12), ["waiting"]
    )  # 10 eligible left
    workers = [f"{family}-{n}" for family in ("claude", "codex") for n in range(1, 11)]
    argv = [sys.executable, "-m", "k3sc", "take", "--json", "--worker"]
    procs = [
        subprocess.Popen(
            [*argv, w], env=deployed.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for w in workers
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    taken = [json.loads(out) for _, out, _ in results if json.loads(out) is not None]
    assert len(taken) == PRS
    assert len({t["pr"] for t in taken}) == PRS, "a PR was reserved twice"
    assert len({t["worker"] for t in taken}) == PRS
    held = asyncio.run(_leases(deployed.env["PREFECT_API_URL"]))
    assert sorted((lease.pr, lease.worker) for lease in held) == sorted((t["pr"], t["worker"]) for t in taken)
    for t in taken:  # mirrored on GitHub as the worker's owner label
        assert t["worker"] in labels_of(deployed, t["pr"])


def test_the_same_worker_taking_twice_at_once_gets_one_lease(deployed: Deployed) -> None:
    argv = [sys.executable, "-m", "k3sc", "take", "--json", "--worker", "claude-7"]
    procs = [
        subprocess.Popen(argv, env=deployed.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    codes = sorted(p.wait(timeout=300) for p in procs)
    for p in procs:
        p.communicate()
    held = asyncio.run(_leases(deployed.env["PREFECT_API_URL"]))
    assert [lease.worker for lease in held] == ["claude-7"]
    assert codes == [0, 1]
    invoke(["take", "--worker", "claude-7"], code=1, contains=["already has"])


def test_release_frees_the_pr_and_its_label(deployed: Deployed) -> None:
    taken = json.loads(invoke(["take", "--json", "--worker", "codex-3"]).stdout)
    invoke(["release", "--pr", str(taken["pr"])], contains=[f"released {taken['repo']} PR #{taken['pr']}"])
    assert asyncio.run(_leases(deployed.env["PREFECT_API_URL"])) == []
    assert "codex-3" not in labels_of(deployed, taken["pr"])
    invoke(["release", "--pr", str(taken["pr"])], code=1, contains=["not reserved by anyone"])


def test_a_live_lease_blocks_the_review_and_an_expired_one_is_cleaned_by_the_next_scan(
    deployed: Deployed,
) -> None:
    api_url = deployed.env["PREFECT_API_URL"]
    repo = deployed.world.repos[0]
    pr = pr_of(deployed, 12)
    now = datetime.now(UTC)
    lease = Lease(repo, pr, 12, "claude-4", "issue-12", "u", now, now + timedelta(hours=12))
    asyncio.run(_put_lease(api_url, lease))
    deployed.world.fake.set_labels(repo.owner, repo.name, pr, ["claude-4"])
    row = plan()[12]
    assert (row["action"], row["reason"].split(":")[0]) == ("skip", "reserved for review")

    asyncio.run(
        _put_lease(api_url, Lease(repo, pr, 12, "claude-4", "issue-12", "u", now - timedelta(hours=13), now))
    )
    summary = _dispatch(deployed)
    assert any(f"#{pr}" in line and "expired" in line for line in summary["expired_leases"]), summary
    assert asyncio.run(_leases(api_url)) == []
    assert "claude-4" not in labels_of(deployed, pr)
    assert any(r["issue"].endswith("#12") and r["action"] == "review" for r in summary["decisions"][0])


# --------------------------------------------------------------------------- claim, scale, pause, families


def test_claim_scale_pause_and_families_change_the_next_scan(deployed: Deployed) -> None:
    assert plan()[11]["action"] == "implement"

    invoke(["claim", "11"], contains=["claimed by human"])
    assert (plan()[11]["action"], plan()[11]["reason"]) == ("skip", "already owned: owned by human")
    invoke(["claim", "11", "--owner", "human-bob"], code=1, contains=["already claimed by human"])
    invoke(["reset", "11"], contains=["human -> ready"])

    invoke(["pause"], contains=["paused"])
    assert [r for r in plan().values() if r["action"] != "skip"] == []
    invoke(["status", "--json"])
    assert json.loads(invoke(["status", "--json"]).stdout)["paused"] is True
    invoke(["resume"], contains=["resumed"])
    assert plan()[11]["action"] == "implement"

    invoke(["disable", "claude"], contains=["claude dispatch disabled"])
    invoke(["disable", "claude"], contains=["already disabled"])
    assert all(r["agent"].startswith("codex-") for r in plan().values() if r["action"] != "skip")
    invoke(["disable", "codex"], contains=["codex dispatch disabled"])
    assert plan()[11]["reason"].startswith("family disabled")
    invoke(["enable", "codex"], contains=["codex dispatch enabled"])
    invoke(["enable", "claude"], contains=["claude dispatch enabled"])

    invoke(["scale"], contains=["max slots: 4 (from max_slots (file))"])
    invoke(["scale", "1"], contains=["max slots: 4 -> 1"])
    assert sum(r["action"] != "skip" for r in plan().values()) == 1
    invoke(["scale"], contains=["max slots: 1 (from k3sc scale"])
    assert asyncio.run(_pool_limit(deployed.env["PREFECT_API_URL"])) == 1
    # A restarted `k3sc up` deploys again: the agent pool keeps the scaled limit, not the config's 4.
    asyncio.run(up.deploy_all(deployed.session, SecretStr(deployed.world.token)))
    assert asyncio.run(_pool_limit(deployed.env["PREFECT_API_URL"])) == 1
    status = json.loads(invoke(["status", "--json"]).stdout)
    assert (status["slots"], status["ready"], status["needs_review"], status["prs"]) == (1, 1, 1, PRS + 1)


def test_reset_after_three_failures_lets_the_issue_run_again(deployed: Deployed) -> None:
    api_url = deployed.env["PREFECT_API_URL"]
    asyncio.run(_fail_three_times(api_url, deployed.world.repos[0], 11))
    row = plan()[11]
    assert row["reason"].startswith("failure cap reached"), row
    invoke(["reset", "11", "--to", "ready"], contains=["3 earlier attempt(s) no longer count"])
    row = plan()[11]
    assert (row["action"], row["attempt"]) == ("implement", 4)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["kill", "seven"], 2, "invalid issue number: 'seven'", id="kill: non-numeric issue"),
        pytest.param(["kill", "0"], 2, "invalid issue number", id="kill: zero"),
        pytest.param(["kill", "11", "--repo", "nope/nope"], 2, "is not a configured repository", id="kill: unknown repo"),
        pytest.param(["kill", "11", "--to", "done"], 2, "is not a workflow label", id="kill: bad --to"),
        pytest.param(["reset", "x1"], 2, "invalid issue number", id="reset: non-numeric issue"),
        pytest.param(["reset", "11", "--repo", "other"], 2, "is not a configured repository", id="reset: unknown repo"),
        pytest.param(["claim", "11", "--owner", "claude-a"], 2, "k3sc's own slot labels", id="claim: a slot label"),
        pytest.param(["claim", "11", "--owner", "bob"], 2, "is not an owner label", id="claim: not an owner"),
        pytest.param(["claim", "99"], 2, "exists in none of the configured", id="claim: no such issue"),
        pytest.param(["take", "--worker", "gpt-4"], 2, "want claude-* or codex-*", id="take: bad worker"),
        pytest.param(["take", "--worker", "claude-1", "--repo", "nope"], 2, "is not a configured repository",
                     id="take: unknown repo"),
        pytest.param(["release", "--pr", "abc"], 2, "invalid PR number", id="release: non-numeric PR"),
        pytest.param(["release", "--pr", "3"], 1, "not reserved by anyone", id="release: a PR nobody holds"),
        pytest.param(["scale", "0"], 2, "slots must be a whole number from 1 to 26, got: 0", id="scale 0"),
        pytest.param(["scale", "27"], 2, "slots must be a whole number from 1 to 26, got: 27", id="scale 27"),
        pytest.param(["scale", "many"], 2, "got: many", id="scale: not a number"),
        pytest.param(["disable", "gemini"], 2, 'unknown family "gemini"', id="disable: unknown family"),
        pytest.param(["enable", "gpt"], 2, 'unknown family "gpt"', id="enable: unknown family"),
    ],
)  # fmt: skip
def test_bad_input_is_one_paragraph_and_changes_nothing(
    untouched: Deployed, args: list[str], code: int, message: str
) -> None:
    deployed = untouched
    api_url = deployed.env["PREFECT_API_URL"]
    before = (list(deployed.world.fake.write_log), asyncio.run(_records(api_url)))
    result = invoke(args, code=code, contains=[message])
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert (list(deployed.world.fake.write_log), asyncio.run(_records(api_url))) == before


# --------------------------------------------------------------------------- helpers


def _dispatch(deployed: Deployed) -> dict[str, Any]:
    """One dispatch run, in its own process, as the deployment would run it; its summary."""
    code = "import asyncio, json; from flows.dispatch import dispatch; print('SUMMARY ' + json.dumps(asyncio.run(dispatch(force=True))))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("SUMMARY "))[8:])  # type: ignore[no-any-return]


async def _leases(api_url: str) -> list[Lease]:
    async with PrefectAPI(api_url) as api:
        return list((await controls.read(api)).leases)


async def _put_lease(api_url: str, lease: Lease) -> None:
    async with PrefectAPI(api_url) as api:
        value = controls.lease_value(lease)
        await api.set_variable(controls.pr_variable(lease.repo, lease.pr), value, controls.TAGS)
        await api.set_variable(controls.worker_variable(lease.worker), value, controls.TAGS)


async def _records(api_url: str) -> tuple[dict[str, Any], list[str]]:
    """k3sc's variables and the ids of the runs a command could have made: Prefect's scheduler and
    its automations (an earlier test's late GitHub event, say) add runs of their own at any time."""
    async with PrefectAPI(api_url) as api:
        asked: list[str] = []
        while page := await api.post_json(
            "flow_runs/filter",
            {
                "flow_runs": {"tags": {"all_": ["k3sc"]}},
                "sort": "ID_DESC",
                "limit": 200,
                "offset": len(asked),
            },
        ):
            asked += [run["id"] if _by_a_command(run) else "" for run in page]
        asked = sorted(run_id for run_id in asked if run_id)
        return await api.variables(controls.PREFIX), asked


def _by_a_command(run: dict[str, Any]) -> bool:
    return not run.get("auto_scheduled") and (run.get("created_by") or {}).get("type") != "AUTOMATION"


async def _pool_limit(api_url: str) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{api_url}/work_pools/k3sc-agents")
        return int(response.json()["concurrency_limit"])


async def _fail_three_times(api_url: str, repo: Repo, number: int) -> None:
    issue = Issue(repo, number, "to implement", "alice", datetime.now(UTC), ("ready",))
    async with PrefectAPI(api_url) as api:
        for attempt in (1, 2, 3):
            run = await runs.submit(api, Dispatch(issue, Kind.IMPLEMENT, "claude-a", attempt))
            await api.set_state(run.id, "FAILED", message="exit code 1", force=True)
            await runs.mark_handed_off(api, run, Outcome.FAILURE)
        await dispatch_state.save(api, dispatch_state.DispatchState())
