"""The whole loop on a real Prefect server and real process workers: `k3sc up --sandbox --until-idle`.

Nothing is mocked here: the dispatcher and the agents are Prefect deployments run by process
workers, the agent is the stub that really commits, pushes and opens PRs on the fake GitHub.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Any

import pytest

from k3sc.config import Config
from k3sc.orchestration.runs import peak_concurrency
from k3sc.services.top import Live
from tests.e2e.helpers import agent_runs, issue, run_up

pytestmark = pytest.mark.e2e


def test_six_issues_two_repos_two_slots(tmp_path: Path, prefect_api_url: str) -> None:
    """Six issues over two repos (numbers repeat), two slots: all reach needs-human, reviewed by another agent."""
    seed = {
        "owner": "six",
        "max_slots": 2,
        "allowed_authors": ["alice"],
        "repos": [
            {"name": "alpha", "issues": [{"title": f"alpha task {n}", "author": "alice"} for n in (1, 2, 3)]},
            {
                "name": "beta",
                "default_branch": "dev",
                "issues": [{"title": f"beta task {n}", "author": "alice"} for n in (1, 2, 3)],
            },
        ],
    }
    summary = run_up(tmp_path, prefect_api_url, seed)

    assert len(summary["issues"]) == 6
    for row in summary["issues"]:
        assert row["labels"] == ["needs-human"], row
        kinds = [(a["kind"], a["attempt"], a["outcome"]) for a in row["attempts"]]
        assert kinds == [("implement", 1, "success"), ("review", 1, "success")], row
        implementer, reviewer = (a["agent"] for a in row["attempts"])
        assert implementer != reviewer, row
        assert [h for h in row["history"]] == [
            ["ready"],
            [implementer],
            ["needs-review"],
            [reviewer],
            ["needs-human"],
        ], row
        assert row["pr"] is not None, row

    recorded = agent_runs(prefect_api_url, summary)
    assert len(recorded) == 12
    attempts = collections.Counter((r.issue_key, r.kind, r.attempt) for r in recorded)
    assert max(attempts.values()) == 1, "an attempt ran twice"
    assert peak_concurrency(recorded) <= 2


def test_failures_retries_and_the_cap(
    tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fail-twice succeeds on the third try; always-fail and exit-0-without-PR stop after 3 with a comment."""
    seed = {
        "owner": "flaky",
        "max_slots": 3,
        "allowed_authors": ["alice"],
        "repos": [
            {
                "name": "gamma",
                "issues": [
                    {"title": "fails twice then works", "author": "alice", "stub": "fail-twice"},
                    # Fails every time, and each time tries what the guards refuse first.
                    {"title": "always fails", "author": "alice", "stub": "rogue"},
                    {"title": "exits 0 without a PR", "author": "alice", "stub": "no-pr"},
                ],
            }
        ],
    }
    summary = run_up(tmp_path, prefect_api_url, seed)

    flaky = issue(summary, "#1")
    assert flaky["labels"] == ["needs-human"]
    assert [(a["kind"], a["attempt"], a["outcome"]) for a in flaky["attempts"]] == [
        ("implement", 1, "failure"),
        ("implement", 2, "failure"),
        ("implement", 3, "success"),
        ("review", 1, "success"),
    ]

    for ref, reason in (("#2", "exit code 1"), ("#3", "no branch issue-3 on the remote")):
        row = issue(summary, ref)
        assert row["labels"] == ["needs-human"], row
        assert [(a["kind"], a["outcome"]) for a in row["attempts"]] == [("implement", "failure")] * 3, row
        # Back to ready after the first two failures, then to a human.
        assert [h for h in row["history"] if h == ["ready"]] == [["ready"]] * 3, row
        explained = [c["body"] for c in row["comments"] if "3 failed implementation attempts" in c["body"]]
        assert len(explained) == 1, row["comments"]
        assert reason in explained[0]

    # Every refusal of every rogue attempt is a Prefect event on that attempt's run, as `k3sc top` shows them.
    rogue = {r.id: r.attempt for r in agent_runs(prefect_api_url, summary) if r.issue_key.endswith("#2")}
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    refused = security_events()
    for attempt in (1, 2, 3):
        details = sorted(e.text for e in refused if rogue.get(e.run_id) == attempt)
        assert len(details) == 3, (attempt, refused)
        wanted = ("commit blocked", "gh pr merge blocked", "push to 'main' blocked")
        for found, start in zip(details, wanted, strict=True):
            assert found.startswith(start), (attempt, details)


def security_events() -> list[Any]:
    live = Live(Config.model_validate({"repos": ["flaky/gamma"]}))
    for _ in range(20):  # events are persisted a moment after the run emits them
        found = asyncio.run(live.security())
        if len(found) >= 9:
            return list(found)
        time.sleep(0.5)
    return list(found)
