"""`k3sc scan` against the fake GitHub: it shows exactly what `decide.decide` decides, with reasons."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from k3sc import decide, workflow
from k3sc.config import Config
from k3sc.github import GitHubClient
from k3sc.models import Repo, Snapshot
from tests.cli_helpers import invoke
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

T0 = datetime(2025, 3, 1, tzinfo=UTC)
REPOS = ["acme/api", "acme/web"]


@pytest.fixture
def world(fake_github: ContractCheckedFakeGitHub) -> ContractCheckedFakeGitHub:
    """Two repos whose issues cover every refusal `scan` must explain, named after what they prove."""
    Path(os.environ["K3SC_CONFIG"]).write_text(yaml.safe_dump({"repos": REPOS, "allowed_authors": ["alice"]}))
    api = fake_github.add_repo("acme", "api")
    fake_github.add_repo("acme", "web")
    seeds = [
        ("api", "ready-by-alice", "alice", ["ready", "bug"]),
        ("api", "ready-but-author-not-allowed", "mallory", ["ready"]),
        ("api", "ready-but-waiting", "alice", ["ready", "waiting"]),
        ("api", "owned-by-claude-b", "alice", ["claude-b"]),
        ("api", "needs-review-with-open-pr", "alice", ["needs-review"]),
        ("api", "not-a-workflow-issue", "alice", ["bug"]),
        ("web", "same-number-other-repo", "alice", ["ready"]),
    ]
    for minutes, (name, title, author, labels) in enumerate(seeds):
        fake_github.add_issue("acme", name, title=title, author=author, labels=labels,
                              created_at=T0 + timedelta(minutes=minutes))  # fmt: skip
    import subprocess

    head = subprocess.run(
        ["git", "-C", str(api), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    subprocess.run(["git", "-C", str(api), "branch", "issue-5", head.stdout.strip()], check=True)
    fake_github.add_pull("acme", "api", head="issue-5", title="fix five", author="alice", labels=["waiting"])
    return fake_github


def env(fake: ContractCheckedFakeGitHub, **extra: str | None) -> dict[str, str | None]:
    return {
        "K3SC_GITHUB_API_URL": fake.url,
        "GITHUB_TOKEN": FAKE_GITHUB_TOKEN,
        "PREFECT_API_URL": None,
        **extra,
    }


def core_decisions(fake: ContractCheckedFakeGitHub) -> dict[tuple[str, int], tuple[bool, str | None]]:
    """What `decide.decide` plans on the same GitHub state, read independently of the CLI."""
    config = Config.model_validate({"repos": REPOS, "allowed_authors": ["alice"], "github_api_url": fake.url})
    environ = {**os.environ, "GITHUB_TOKEN": FAKE_GITHUB_TOKEN}

    async def read() -> workflow.Plan:
        async with GitHubClient.from_config(config, environ=environ, gh_cli=None) as gh:
            repos = [Repo.parse(r) for r in REPOS]
            issues = (await gh.workflow_issues(repos)).items
            pulls = (await gh.open_pulls(repos)).items
        facts = decide.Facts(snapshot=Snapshot(issues, pulls), runs=())
        return decide.decide(facts, config, datetime.now(UTC)).plan

    plan = asyncio.run(read())
    return {
        (d.issue.repo.full_name, d.issue.number): (
            isinstance(d, workflow.Dispatch),
            d.refusal.value if isinstance(d, workflow.Skip) else None,
        )
        for d in plan.decisions
    }


def test_json_shows_exactly_what_the_core_decides(world: ContractCheckedFakeGitHub) -> None:
    result = invoke(["scan", "--json"], env=env(world))
    report = json.loads(result.stdout)
    keys = {"issues", "pending", "pulls", "paused", "pool", "slots", "families", "leases", "rate", "errors"}
    assert set(report) == keys
    assert report["pool"] == "process"
    assert (report["paused"], report["slots"], report["leases"]) == (False, 5, [])
    assert report["families"] == {"claude": "available", "codex": "available"}
    shown = {(i["repo"], i["number"]): (i["eligible"], i["reason"]) for i in report["issues"]}
    assert shown == core_decisions(world)
    assert shown == {
        ("acme/api", 1): (True, None),
        ("acme/api", 2): (False, "author not allowed"),
        ("acme/api", 3): (False, "waiting"),
        ("acme/api", 4): (False, "already owned"),
        ("acme/api", 5): (True, None),
        ("acme/web", 1): (True, None),
    }
    owned = next(i for i in report["issues"] if i["title"] == "owned-by-claude-b")
    assert (owned["state"], owned["owner"], owned["author"]) == ("owned", "claude-b", "alice")
    # Held by a slot label with no run behind it: the next scan watches it as a possible orphan.
    assert [(p["issue"], p["action"], p["agent"]) for p in report["pending"]] == [
        ("acme/api#4", "watch", "claude-b")
    ]
    assert owned["url"].endswith("/acme/api/issues/4")
    assert report["pulls"] == [
        {
            "repo": "acme/api",
            "number": 7,
            "branch": "issue-5",
            "issue": 5,
            "owner": None,
            "waiting": True,
            "url": report["pulls"][0]["url"],
        }
    ]
    assert report["rate"]["requests"] == 4 and report["rate"]["limit"] == 5000
    assert report["errors"] == []
    assert "run history not consulted: no Prefect server" in result.stderr


def test_a_second_scan_costs_no_rate_limit(world: ContractCheckedFakeGitHub) -> None:
    invoke(["scan", "--json"], env=env(world))
    second = json.loads(invoke(["scan", "--json"], env=env(world)).stdout)["rate"]
    assert (second["requests"], second["not_modified"]) == (4, 4)


def test_table_names_the_reasons(world: ContractCheckedFakeGitHub) -> None:
    invoke(
        ["scan"],
        env=env(world),
        contains=[
            "ready-but-author-not-allowed",
            "author not allowed: author 'mallory' is not in allowed_authors",
            "waiting: labelled waiting",
            "already owned: owned by claude-b",
            "issue-5",
            "open pull requests: 1",
            "answered 304",
        ],
        absent=["not-a-workflow-issue"],
    )


def test_repo_option_limits_the_scan(world: ContractCheckedFakeGitHub) -> None:
    report = json.loads(invoke(["scan", "--json", "--repo", "ACME/web"], env=env(world)).stdout)
    assert [(i["repo"], i["number"]) for i in report["issues"]] == [("acme/web", 1)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("acme/other", "--repo acme/other is not a configured repository", id="not configured"),
        pytest.param("nonsense", "--repo expects owner/name", id="not owner/name"),
    ],
)
def test_repo_must_be_configured(world: ContractCheckedFakeGitHub, value: str, message: str) -> None:
    invoke(["scan", "--repo", value], code=2, env=env(world), contains=[message])
    assert world.requests == []


def test_missing_token_exits_2_saying_what_to_set(world: ContractCheckedFakeGitHub, tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = invoke(
        ["scan", "--json"],
        code=2,
        env=env(world, GITHUB_TOKEN=None, GH_TOKEN=None, PATH=str(empty_path)),
        contains=["No GitHub credentials found", "GITHUB_TOKEN", "gh auth login"],
    )
    assert result.stdout == ""


def test_a_repo_that_cannot_be_read_is_reported_and_fails_the_command(
    world: ContractCheckedFakeGitHub,
) -> None:
    Path(os.environ["K3SC_CONFIG"]).write_text(
        yaml.safe_dump({"repos": [*REPOS, "acme/gone"], "allowed_authors": ["alice"]})
    )
    result = invoke(["scan", "--json"], code=1, env=env(world), contains=["acme/gone was not scanned"])
    report: dict[str, Any] = json.loads(result.stdout)
    assert [e["repo"] for e in report["errors"]] == ["acme/gone"]
    assert len(report["issues"]) == 6, "the readable repos are still shown"
