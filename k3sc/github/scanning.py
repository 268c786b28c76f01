"""Reading GitHub: workflow issues and open PRs across repos, and the single-item reads around them.

Every list is read to its last page (the Go original read only the first 100 issues / 50 PRs) and
every repo is scanned concurrently under a bound. A repo that fails (renamed, no access, 5xx after
retries) is reported next to the results instead of sinking the whole scan, so one bad entry in
`repos` cannot stop work on the others; credential and rate-limit failures concern every repo and
are raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from k3sc import workflow
from k3sc.errors import AuthError, GitHubError, NotFound, RateLimited
from k3sc.models import Issue, Pull, Repo

if TYPE_CHECKING:
    from k3sc.github.client import GitHubClient

T = TypeVar("T")


@dataclass(frozen=True)
class RepoFailure:
    """A repository whose scan failed, and why."""

    repo: Repo
    error: GitHubError


@dataclass(frozen=True)
class Scan(Generic[T]):
    """What a multi-repo read found, plus the repos it could not read (never silently dropped)."""

    items: tuple[T, ...]
    failures: tuple[RepoFailure, ...] = ()


@dataclass(frozen=True)
class IssueSnapshot:
    """One issue (or PR read as an issue) as GitHub has it right now."""

    issue: Issue
    open: bool
    is_pull: bool

    @property
    def labels(self) -> tuple[str, ...]:
        return self.issue.labels


def repo_path(repo: Repo, *parts: str | int) -> str:
    tail = "/".join(quote(str(p), safe="") for p in parts)
    return f"repos/{quote(repo.owner, safe='')}/{quote(repo.name, safe='')}" + (f"/{tail}" if tail else "")


# ------------------------------------------------------------------ JSON → models


def _labels(item: dict[str, Any]) -> tuple[str, ...]:
    # The spec allows a label to be a bare string or an object; GitHub sends objects.
    return tuple(
        str(label["name"] if isinstance(label, dict) else label)
        for label in item.get("labels") or ()
        if not isinstance(label, dict) or label.get("name")
    )


def parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def issue_from_json(repo: Repo, item: dict[str, Any]) -> Issue:
    """An `Issue` from a REST issue object; raises GitHubError if a field k3sc needs is missing."""
    try:
        return Issue(
            repo=repo,
            number=int(item["number"]),
            title=str(item["title"]),
            author=str((item.get("user") or {}).get("login") or "ghost"),
            created_at=parse_time(item["created_at"]),
            labels=_labels(item),
            url=str(item.get("html_url") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GitHubError(f"{repo}: an issue in GitHub's answer lacks {exc}") from None


def pull_from_json(gh: GitHubClient, repo: Repo, item: dict[str, Any]) -> Pull:
    """A `Pull`; `issue` comes from the configured branch pattern, and only for same-repo branches."""
    try:
        head = item["head"]
        branch = str(head["ref"])
        names = _labels(item)
        state = workflow.read_labels(names)
        head_repo = head.get("repo")
        from_fork = isinstance(head_repo, dict) and str(head_repo.get("full_name", "")).lower() != repo.key
        return Pull(
            repo=repo,
            number=int(item["number"]),
            branch=branch,
            issue=None if from_fork else gh.config.safety.issue_for_branch(branch),
            owner=None if state.waiting else state.owner,
            waiting=state.waiting,
            url=str(item.get("html_url") or ""),
            title=str(item.get("title") or ""),
            labels=names,
            created_at=parse_time(item["created_at"]) if item.get("created_at") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GitHubError(f"{repo}: a pull request in GitHub's answer lacks {exc}") from None


# ------------------------------------------------------------------ fan-out over repos


async def _each_repo(
    gh: GitHubClient, repos: Iterable[Repo], fetch: Callable[[Repo], Awaitable[list[T]]]
) -> tuple[list[T], tuple[RepoFailure, ...]]:
    first: dict[str, Repo] = {}
    for repo in repos:
        first.setdefault(repo.key, repo)  # GitHub names are case-insensitive: scan each repo once
    gate = asyncio.Semaphore(gh.concurrency)
    found: list[T] = []
    failures: list[RepoFailure] = []

    async def one(repo: Repo) -> None:
        async with gate:
            try:
                found.extend(await fetch(repo))
            except (AuthError, RateLimited):
                raise  # about every repo, not this one: stop the scan
            except GitHubError as exc:
                failures.append(RepoFailure(repo, exc))

    try:
        async with asyncio.TaskGroup() as group:
            for repo in first.values():
                group.create_task(one(repo))
    except* (AuthError, RateLimited) as fatal:
        raise fatal.exceptions[0] from None
    return found, tuple(sorted(failures, key=lambda f: f.repo.key))


async def workflow_issues(gh: GitHubClient, repos: Iterable[Repo]) -> Scan[Issue]:
    """Open issues carrying a state or owner label (`workflow.is_workflow_issue`), PRs excluded."""

    async def fetch(repo: Repo) -> list[Issue]:
        issues: dict[int, Issue] = {}
        params = {"state": "open", "sort": "created", "direction": "asc"}
        async for page in gh.pages(repo_path(repo, "issues"), params):
            for item in page:
                if item.get("pull_request") is not None:
                    continue
                issue = issue_from_json(repo, item)
                # Keyed by number: an issue that moved across a page boundary mid-scan counts once.
                if workflow.is_workflow_issue(issue.labels):
                    issues[issue.number] = issue
        return list(issues.values())

    found, failures = await _each_repo(gh, repos, fetch)
    found.sort(key=lambda i: (i.created_at, i.repo.key, i.number))
    return Scan(tuple(found), failures)


async def open_pulls(gh: GitHubClient, repos: Iterable[Repo]) -> Scan[Pull]:
    """Every open pull request of `repos`, oldest first."""

    async def fetch(repo: Repo) -> list[Pull]:
        pulls: dict[int, Pull] = {}
        params = {"state": "open", "sort": "created", "direction": "asc"}
        async for page in gh.pages(repo_path(repo, "pulls"), params):
            for item in page:
                pull = pull_from_json(gh, repo, item)
                pulls[pull.number] = pull
        return list(pulls.values())

    found, failures = await _each_repo(gh, repos, fetch)
    found.sort(key=lambda p: (p.created_at or datetime.min.replace(tzinfo=UTC), p.repo.key, p.number))
    return Scan(tuple(found), failures)


# ------------------------------------------------------------------ single reads


async def pull_for_issue(gh: GitHubClient, repo: Repo, number: int) -> Pull | None:
    branch = gh.config.safety.branch_for(number)
    params = {"state": "open", "head": f"{repo.owner}:{branch}"}
    async for page in gh.pages(repo_path(repo, "pulls"), params):
        for item in page:
            pull = pull_from_json(gh, repo, item)
            if pull.branch == branch:
                return pull
    return None


async def branch_exists(gh: GitHubClient, repo: Repo, branch: str) -> bool:
    try:
        await gh.request("GET", repo_path(repo, "branches", branch))
    except NotFound:
        return False
    return True


async def get_issue(gh: GitHubClient, repo: Repo, number: int) -> IssueSnapshot:
    # Every request is revalidated (Cache-Control: no-cache), so this is GitHub's current state:
    # a 304 only means "what the cache holds is still current".
    item = await gh.get_json(repo_path(repo, "issues", number))
    if not isinstance(item, dict):
        raise GitHubError(f"{repo}#{number}: expected an issue object")
    return IssueSnapshot(
        issue=issue_from_json(repo, item),
        open=item.get("state") == "open",
        is_pull=item.get("pull_request") is not None,
    )
