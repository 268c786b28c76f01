"""The fake GitHub's in-memory state and the rules for changing it.

Separate from HTTP so that the seeding helpers (`FakeGitHub.add_issue`, `set_labels`, ...) and
the REST handlers apply writes through the same code: one number sequence per repo shared by
issues and pull requests, case-insensitive label names, labels auto-created on first use, one
open pull request per head branch. Every change lands in the write log, the label history and
the webhook-style event queue here, in one place. Callers hold FakeGitHub's lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from k3sc.sandbox import github_git

# The colour GitHub gives a label created implicitly by adding it to an issue.
AUTO_LABEL_COLOR = "ededed"

Event = tuple[str, dict[str, Any]]


class Rejected(ValueError):
    """A write or lookup GitHub would refuse; carries the HTTP status and GitHub's error body."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def not_found() -> Rejected:
    return Rejected(404, "Not Found")


def validation_failed(*errors: dict[str, Any]) -> Rejected:
    return Rejected(422, "Validation Failed", list(errors))


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None = None


@dataclass
class Comment:
    id: int
    author: str
    body: str
    created_at: datetime


@dataclass
class Pull:
    head: str
    base: str
    merged: bool = False


@dataclass
class Issue:
    """An issue or, when `pull` is set, a pull request (GitHub models them as one thing)."""

    id: int
    number: int
    title: str
    body: str | None
    author: str
    labels: list[Label]
    created_at: datetime
    updated_at: datetime
    pull: Pull | None = None
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    comments: list[Comment] = field(default_factory=list)
    label_history: list[tuple[str, ...]] = field(default_factory=list)
    pull_id: int = 0
    # Bumped on every change; the renderer caches bodies per revision.
    rev: int = 0

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    path: Path
    created_at: datetime
    labels: dict[str, Label] = field(default_factory=dict)  # keyed by lower-cased name
    issues: dict[int, Issue] = field(default_factory=dict)
    next_number: int = 1
    # Bumped whenever any issue or pull request in the repo changes; list pages are cached on it.
    rev: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


# GitHub App permissions the fake's repository endpoints need, by the first path segment after
# /repos/{owner}/{repo}; issue endpoints also serve pull requests, which `pull_requests` covers.
_PERMISSION_FOR = {
    "issues": ("issues", "pull_requests"),
    "pulls": ("pull_requests",),
    "branches": ("contents",),
}
_REPO_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)(?:/([^/]+))?")


@dataclass(frozen=True)
class TokenScope:
    """What an installation token minted with `repositories`/`permissions` may touch.

    `repositories` holds lower-cased `owner/name`s, or None for every repository of the
    installation; `permissions` maps a permission to `read` or `write` (write implies read).
    """

    repositories: frozenset[str] | None
    permissions: Mapping[str, str]

    def refusal(self, method: str, path: str) -> str | None:
        """Why GitHub would refuse this request made with the token (403), or None."""
        match = _REPO_PATH.match(path)
        if match is None:
            return None
        owner, name, section = match.groups()
        if self.repositories is not None and f"{owner}/{name}".lower() not in self.repositories:
            return "Resource not accessible by integration"
        if section == "installation":
            return None  # an App (JWT) endpoint, not the token's
        needed = "read" if method.upper() in ("GET", "HEAD") else "write"
        options = _PERMISSION_FOR.get(section or "", ("metadata",))
        for permission in options:
            granted = self.permissions.get(permission)
            if granted == "write" or (granted == "read" and needed == "read"):
                return None
        return "Resource not accessible by integration"


def _names(labels: Iterable[str]) -> str:
    return ", ".join(labels) or "(none)"


class Store:
    """Repos, issues, pull requests, labels and comments, plus the record of every write."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._next_id = 1000
        self.repos: dict[tuple[str, str], Repo] = {}  # keyed by lower-cased (owner, name), like GitHub
        self.user_ids: dict[str, int] = {}
        self.known_users: set[str] = set()  # lower-cased logins the fake was told about
        self.write_log: list[str] = []
        self.events: list[Event] = []  # drained by FakeGitHub after it releases the lock
        self.token_scopes: dict[str, TokenScope] = {}  # installation tokens minted narrowed

    def now(self) -> datetime:
        # GitHub's timestamps have one-second resolution.
        return datetime.fromtimestamp(int(self._clock()), UTC)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def user_id(self, login: str) -> int:
        return self.user_ids.setdefault(login.lower(), self.new_id())

    # -- lookups ---------------------------------------------------------------------------

    def repo(self, owner: str, name: str) -> Repo:
        try:
            return self.repos[owner.lower(), name.lower()]
        except KeyError:
            raise not_found() from None

    def issue(self, repo: Repo, number: int) -> Issue:
        try:
            return repo.issues[number]
        except KeyError:
            raise not_found() from None

    def pull(self, repo: Repo, number: int) -> Issue:
        issue = self.issue(repo, number)
        if issue.pull is None:
            raise not_found()
        return issue

    # -- writes ----------------------------------------------------------------------------

    def add_repo(self, owner: str, name: str, default_branch: str, path: Path) -> Repo:
        if (owner.lower(), name.lower()) in self.repos:
            raise Rejected(422, f"Repository {owner}/{name} already exists")
        repo = Repo(self.new_id(), owner, name, default_branch, path, self.now())
        self.repos[owner.lower(), name.lower()] = repo
        return repo

    def label(self, repo: Repo, name: str) -> Label:
        """The repo's label called `name` (any case), created like GitHub does if missing."""
        name = name.strip()
        if not name:
            raise validation_failed({"resource": "Label", "code": "missing_field", "field": "name"})
        found = repo.labels.get(name.lower())
        if found is None:
            found = repo.labels[name.lower()] = Label(self.new_id(), name, AUTO_LABEL_COLOR)
        return found

    def open_issue(
        self,
        repo: Repo,
        *,
        title: str,
        author: str,
        body: str | None,
        labels: Iterable[str],
        created_at: datetime | None = None,
        pull: Pull | None = None,
    ) -> Issue:
        if not title.strip():
            raise validation_failed({"resource": "Issue", "code": "missing_field", "field": "title"})
        when = created_at.astimezone(UTC).replace(microsecond=0) if created_at else self.now()
        applied = self._dedupe(repo, labels)
        issue = Issue(self.new_id(), repo.next_number, title, body, author, applied, when, when, pull=pull)
        if pull is not None:
            issue.pull_id = self.new_id()
        issue.label_history.append(issue.label_names)
        repo.next_number += 1
        repo.rev += 1
        repo.issues[issue.number] = issue
        if pull is None:
            self.events.append(("issues", self._payload(repo, issue, "opened")))
        else:
            self.events.append(("pull_request", self._payload(repo, issue, "opened")))
        return issue

    def open_pull(
        self,
        repo: Repo,
        *,
        head: str,
        base: str,
        title: str,
        author: str,
        body: str | None,
        labels: Iterable[str],
    ) -> Issue:
        """Open a pull request under GitHub's rules: both branches exist, no open PR for the head."""
        head_sha = github_git.branch_sha(repo.path, head)
        if head_sha is None:
            raise validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if github_git.branch_sha(repo.path, base) is None:
            raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
        for other in repo.issues.values():
            if other.pull is not None and other.state == "open" and other.pull.head == head:
                message = f"A pull request already exists for {repo.owner}:{head}."
                raise validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
        return self.open_issue(
            repo, title=title, author=author, body=body, labels=labels, pull=Pull(head=head, base=base)
        )

    def set_labels(self, repo: Repo, issue: Issue, names: Iterable[str], *, actor: str | None = None) -> None:
        """Replace the label set (PUT semantics); `actor` marks edits made outside the API."""
        self._change_labels(repo, issue, self._dedupe(repo, names), actor)

    def add_labels(self, repo: Repo, issue: Issue, names: Iterable[str]) -> None:
        self._change_labels(repo, issue, self._dedupe(repo, [*issue.label_names, *names]), None)

    def remove_label(self, repo: Repo, issue: Issue, name: str) -> None:
        kept = [label for label in issue.labels if label.name.lower() != name.lower()]
        if len(kept) == len(issue.labels):
            raise Rejected(404, "Label does not exist")
        self._change_labels(repo, issue, kept, None)

    def add_comment(self, repo: Repo, issue: Issue, *, author: str, body: str) -> Comment:
        if not body.strip():
            raise validation_failed({"resource": "IssueComment", "code": "missing_field", "field": "body"})
        comment = Comment(self.new_id(), author, body, self.now())
        issue.comments.append(comment)
        self._touch(repo, issue)
        self.write_log.append(f"{repo.full_name}#{issue.number} comment by {author}")
        payload = self._payload(repo, issue, "created")
        payload["comment"] = {"id": comment.id, "body": body, "user": {"login": author}}
        self.events.append(("issue_comment", payload))
        return comment

    def edit_issue(
        self,
        repo: Repo,
        issue: Issue,
        *,
        actor: str,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
        state_reason: str | None = None,
    ) -> None:
        where = f"{repo.full_name}#{issue.number}"
        edited = [name for name, value in (("title", title), ("body", body)) if value is not None]
        if title is not None:
            if not title.strip():
                raise validation_failed({"resource": "Issue", "code": "missing_field", "field": "title"})
            issue.title = title
        if body is not None:
            issue.body = body
        if edited:
            self._touch(repo, issue)
            self.write_log.append(f"{where} edited {', '.join(edited)}")
            self._emit(repo, issue, "edited")
        if state is not None and state != issue.state:
            issue.state = state
            if state == "closed":
                issue.closed_at, issue.closed_by = self.now(), actor
                issue.state_reason = state_reason or "completed"
            else:
                issue.closed_at, issue.closed_by, issue.state_reason = None, None, "reopened"
            self._touch(repo, issue)
            self.write_log.append(f"{where} {'closed' if state == 'closed' else 'reopened'}")
            self._emit(repo, issue, "closed" if state == "closed" else "reopened")

    # -- helpers ---------------------------------------------------------------------------

    def _dedupe(self, repo: Repo, names: Iterable[str]) -> list[Label]:
        labels: dict[int, Label] = {}
        for name in names:
            label = self.label(repo, name)
            labels.setdefault(label.id, label)
        return list(labels.values())

    def _change_labels(self, repo: Repo, issue: Issue, new: list[Label], actor: str | None) -> None:
        before, after = issue.label_names, tuple(label.name for label in new)
        by = f" (by {actor})" if actor else ""
        where = f"{repo.full_name}#{issue.number}"
        if before == after:
            # Logged anyway: a redundant write is something a test may want to see.
            self.write_log.append(f"{where} labels: {_names(before)} (unchanged){by}")
            return
        issue.labels = new
        issue.label_history.append(after)
        self._touch(repo, issue)
        self.write_log.append(f"{where} labels: {_names(before)} → {_names(after)}{by}")
        old_keys = {name.lower() for name in before}
        new_keys = {name.lower() for name in after}
        for name in before:
            if name.lower() not in new_keys:
                self._emit(repo, issue, "unlabeled", label=name)
        for name in after:
            if name.lower() not in old_keys:
                self._emit(repo, issue, "labeled", label=name)

    def _touch(self, repo: Repo, issue: Issue) -> None:
        issue.updated_at = self.now()
        issue.rev += 1
        repo.rev += 1

    def _emit(self, repo: Repo, issue: Issue, action: str, *, label: str | None = None) -> None:
        payload = self._payload(repo, issue, action)
        if label is not None:
            payload["label"] = {"name": label}
        self.events.append(("pull_request" if issue.pull else "issues", payload))

    def _payload(self, repo: Repo, issue: Issue, action: str) -> dict[str, Any]:
        """A slim webhook-style payload: only the fields a dispatcher reacts to."""
        item: dict[str, Any] = {
            "number": issue.number,
            "title": issue.title,
            "state": issue.state,
            "labels": [{"name": name} for name in issue.label_names],
            "user": {"login": issue.author},
        }
        payload: dict[str, Any] = {"action": action, "repository": {"full_name": repo.full_name}}
        if issue.pull is None:
            payload["issue"] = item
        elif action == "created":  # comments on a PR arrive as issue_comment with issue.pull_request
            payload["issue"] = {**item, "pull_request": {}}
        else:
            item["head"] = {"ref": issue.pull.head}
            item["base"] = {"ref": issue.pull.base}
            payload["number"] = issue.number
            payload["pull_request"] = item
        return payload
