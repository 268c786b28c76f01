"""Reading GitHub through the client against the fake: every page, every repo, PRs apart, failures kept."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k3sc.errors import AuthError, NotFound
from k3sc.github import RepoFailure
from k3sc.models import Issue, Pull, Repo
from tests.fixtures.github import ContractCheckedFakeGitHub
from tests.test_github_client import connect

ACME, WEB = Repo("acme", "api"), Repo("acme", "web")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def test_every_page_is_read_and_only_workflow_issues_are_kept(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    fake_github.add_repo("acme", "api")
    for n in range(230):
        labels = ["ready", "p1"] if n % 2 == 0 else ["bug"]
        fake_github.add_issue("acme", "api", title=f"i{n}", author="alice", labels=labels,
                              created_at=T0 + timedelta(minutes=n))  # fmt: skip
    fake_github.add_issue("acme", "api", title="parked", author="alice", labels=["waiting"])
    fake_github.add_issue("acme", "api", title="owned", author="alice", labels=["claude-b"])
    async with connect(fake_github) as gh:
        scan = await gh.workflow_issues([ACME])
    pages = [r for r in fake_github.requests if r.path == "/repos/acme/api/issues"]
    assert len(pages) == 3, "232 issues are three pages of 100"
    assert all(r.query["per_page"] == ["100"] for r in pages)
    assert [i.title for i in scan.items] == [f"i{n}" for n in range(0, 230, 2)] + ["owned"]
    first = scan.items[0]
    assert first == Issue(ACME, 1, "i0", "alice", T0, ("ready", "p1"), first.url)
    assert first.url.endswith("/acme/api/issues/1")
    assert scan.failures == ()


async def test_pull_requests_are_not_issues(fake_github: ContractCheckedFakeGitHub) -> None:
    remote = fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="real", author="alice", labels=["ready"])
    _push_branch(remote, "issue-1")
    fake_github.add_pull("acme", "api", head="issue-1", title="pr", author="alice", labels=["ready"])
    async with connect(fake_github) as gh:
        scan = await gh.workflow_issues([ACME])
    assert [i.title for i in scan.items] == ["real"]


async def test_same_number_in_two_repos_is_two_issues_oldest_first(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    for name, minutes in (("api", 5), ("web", 1)):
        fake_github.add_repo("acme", name)
        fake_github.add_issue("acme", name, title=name, author="alice", labels=["ready"],
                              created_at=T0 + timedelta(minutes=minutes))  # fmt: skip
    async with connect(fake_github, repos=("acme/api", "acme/web")) as gh:
        scan = await gh.workflow_issues([ACME, WEB, Repo("ACME", "API")])
    assert [(i.repo, i.number) for i in scan.items] == [(WEB, 1), (ACME, 1)]
    assert len({i.key for i in scan.items}) == 2


async def test_a_failing_repo_is_reported_beside_the_others(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="fine", author="alice", labels=["ready"])
    gone = Repo("acme", "renamed")
    async with connect(fake_github, repos=("acme/api", "acme/renamed")) as gh:
        scan = await gh.workflow_issues([ACME, gone])
    assert [i.title for i in scan.items] == ["fine"]
    assert [f.repo for f in scan.failures] == [gone]
    assert isinstance(scan.failures[0].error, NotFound)


async def test_credential_failures_stop_the_whole_scan(fake_github: ContractCheckedFakeGitHub) -> None:
    for name in ("api", "web"):
        fake_github.add_repo("acme", name)
    async with connect(fake_github, token="wrong", repos=("acme/api", "acme/web")) as gh:
        with pytest.raises(AuthError):
            await gh.workflow_issues([ACME, WEB])


def _push_branch(remote: Path, *branches: str) -> None:
    """Create `branches` on a bare remote (the fake only accepts PRs whose head exists)."""
    head = subprocess.run(
        ["git", "-C", str(remote), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    commands = "".join(f"create refs/heads/{b} {head.stdout.strip()}\n" for b in branches)
    subprocess.run(["git", "-C", str(remote), "update-ref", "--stdin"], input=commands, text=True, check=True)


async def test_open_pulls_link_issues_by_the_configured_branch_pattern(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    remote = fake_github.add_repo("acme", "api")
    _push_branch(remote, "work/7-fix", "issue-8", "feature")
    fake_github.add_pull(
        "acme", "api", head="work/7-fix", title="seven", author="alice", labels=["claude-a", "bug"]
    )
    fake_github.add_pull(
        "acme", "api", head="issue-8", title="eight", author="alice", labels=["codex-b", "waiting"]
    )
    fake_github.add_pull("acme", "api", head="feature", title="other", author="alice")
    async with connect(fake_github, config={"safety": {"branch_pattern": "work/{N}-fix"}}) as gh:
        scan = await gh.open_pulls([ACME])
    got = [(p.number, p.branch, p.issue, p.owner, p.waiting, p.title, p.labels) for p in scan.items]
    assert got == [
        (1, "work/7-fix", 7, "claude-a", False, "seven", ("claude-a", "bug")),
        (2, "issue-8", None, None, True, "eight", ("codex-b", "waiting")),
        (3, "feature", None, None, False, "other", ()),
    ]
    assert all(isinstance(p, Pull) and p.url.endswith(f"/pull/{p.number}") for p in scan.items)


async def test_open_pulls_reads_every_page(fake_github: ContractCheckedFakeGitHub) -> None:
    remote = fake_github.add_repo("acme", "api")
    _push_branch(remote, *(f"issue-{n}" for n in range(105)))
    for n in range(105):
        fake_github.add_pull("acme", "api", head=f"issue-{n}", title=f"p{n}", author="alice")
    async with connect(fake_github) as gh:
        scan = await gh.open_pulls([ACME])
    assert len(scan.items) == 105
    assert [p.number for p in scan.items] == sorted(p.number for p in scan.items)


async def test_pull_for_issue_and_branch_exists(fake_github: ContractCheckedFakeGitHub) -> None:
    remote = fake_github.add_repo("acme", "api")
    _push_branch(remote, "issue-4")
    fake_github.add_issue("acme", "api", title="four", author="alice", labels=["ready"])
    fake_github.add_pull("acme", "api", head="issue-4", title="fixes four", author="alice")
    async with connect(fake_github) as gh:
        pull = await gh.pull_for_issue(ACME, 4)
        none = await gh.pull_for_issue(ACME, 5)
        exists = await gh.branch_exists(ACME, "issue-4")
        missing = await gh.branch_exists(ACME, "issue-5")
    assert pull is not None and (pull.issue, pull.branch, pull.title) == (4, "issue-4", "fixes four")
    assert none is None
    assert (exists, missing) == (True, False)
    heads = [r.query.get("head") for r in fake_github.requests if r.path.endswith("/pulls")]
    assert heads == [["acme:issue-4"], ["acme:issue-5"]]


async def test_get_issue_reads_labels_and_state_fresh(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="x", author="alice", labels=["ready"])
    async with connect(fake_github) as gh:
        before = await gh.get_issue(ACME, 1)
        fake_github.set_labels("acme", "api", 1, ["needs-human", "bug"])
        after = await gh.get_issue(ACME, 1)
        again = await gh.get_issue(ACME, 1)
    assert (before.labels, before.open, before.is_pull) == (("ready",), True, False)
    assert set(after.labels) == {"needs-human", "bug"} and again.labels == after.labels
    assert [r.status for r in fake_github.requests] == [200, 200, 304]


async def test_comments_every_page_and_since(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="x", author="alice", labels=["ready"])
    async with connect(fake_github) as gh:
        for n in range(102):
            await gh.comment(ACME, 1, f"c{n}")
        every = await gh.comments(ACME, 1)
        future = await gh.comments(ACME, 1, since=datetime.now(UTC) + timedelta(days=1))
    assert [c.body for c in every] == [f"c{n}" for n in range(102)]
    assert every[0].author == "k3sc"
    assert future == []


def test_scan_failures_are_values() -> None:
    failure = RepoFailure(ACME, NotFound("gone"))
    assert failure.repo == ACME and str(failure.error) == "gone"
