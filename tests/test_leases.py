"""Table tests for review leases: worker ids, which PRs may be taken and in what order, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from k3sc import leases
from k3sc.leases import Lease
from k3sc.models import Pull, Repo
from tests.builders import API, NOW, WEB, make_issue


def pull(number: int, issue: int | None, *, repo: Repo = API, title: str = "feat: x", owner: str | None = None,
         waiting: bool = False) -> Pull:  # fmt: skip
    return Pull(repo, number, f"issue-{issue}" if issue else "topic", issue, owner, waiting, title=title)


def held(pr: int, worker: str = "claude-9", issue: int = 1) -> Lease:
    return Lease(API, pr, issue, worker, "b", "u", NOW, NOW + timedelta(hours=12))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(" Claude-4 ", "claude-4", id="trimmed and lower-cased"),
        pytest.param("codex-1", "codex-1", id="codex"),
        pytest.param("codex-review-bot", "codex-review-bot", id="dashes inside"),
    ],
)
def test_valid_workers(text: str, expected: str) -> None:
    assert leases.parse_worker(text) == expected


@pytest.mark.parametrize("text", ["claude", "claude-", "gpt-4", "", "claude 4", "human-1", "claude-4/x"])
def test_invalid_workers(text: str) -> None:
    with pytest.raises(ValueError, match="want claude-\\* or codex-\\*"):
        leases.parse_worker(text)


def test_candidates_filter_and_order() -> None:
    pulls = [
        pull(20, 2, title="feat: later"),
        pull(21, 3, title="fix: a bug"),
        pull(22, 4, title="Perf: faster"),
        pull(23, 5, owner="codex-2"),  # held by someone
        pull(24, 6, waiting=True),  # parked
        pull(25, None),  # not linked to an issue
        pull(26, 7),  # leased already
        pull(27, 8),  # its issue is owned
        pull(28, 9),  # an agent is on its issue
        pull(10, 10, repo=WEB, title="feat: web"),
        pull(19, 11, title="feat: older"),
    ]
    issues = [make_issue(8, ("claude-b",))]
    chosen = leases.candidates(pulls, issues, [held(26, issue=7)], {"acme/api#9"})
    assert [(p.repo.name, p.number) for p in chosen] == [
        ("api", 22),
        ("api", 21),
        ("api", 19),
        ("api", 20),
        ("web", 10),
    ]
    assert [p.number for p in leases.candidates(pulls, issues, [], set(), repo=WEB)] == [10]


def test_expiry_and_reserved_issues() -> None:
    live, old = held(1, issue=1), Lease(API, 2, 2, "codex-1", "b", "u", NOW - timedelta(hours=13), NOW)
    assert not live.expired(NOW) and old.expired(NOW)
    assert list(leases.reserved_issues([live, old], NOW)) == ["acme/api#1"]
    assert leases.held_by([live, old], "codex-1") is old
