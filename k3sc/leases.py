"""Review leases: a person's agent (`claude-4`, `codex-1`) reserves one open PR for a supervised review.

A lease keeps two local reviewers off the same PR and keeps the dispatcher from sending one of its
own agents to review an issue a person is already reviewing. Leases expire (12 h by default); the
dispatcher clears expired ones and their PR owner labels. Pure rules here: which worker ids are
valid, which PRs may be taken and in what order, when a lease has expired. The records themselves
live in Prefect Variables (`k3sc.orchestration.controls`), created atomically.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from k3sc import workflow
from k3sc.models import Issue, Pull, Repo

_WORKER = re.compile(r"^(claude|codex)-[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Lease:
    """One reserved PR: who holds it, for which issue, until when."""

    repo: Repo
    pr: int
    issue: int | None
    worker: str
    branch: str
    url: str
    taken_at: datetime
    expires_at: datetime

    @property
    def family(self) -> str:
        return self.worker.split("-", 1)[0]

    @property
    def issue_key(self) -> str | None:
        return f"{self.repo.key}#{self.issue}" if self.issue is not None else None

    @property
    def pr_key(self) -> str:
        return f"{self.repo.key}#{self.pr}"

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now


def parse_worker(text: str) -> str:
    """A worker id, trimmed and lower-cased: `claude-<x>` or `codex-<x>`; ValueError otherwise."""
    worker = text.strip().lower()
    if not _WORKER.match(worker):
        raise ValueError(f"invalid worker {text!r}: want claude-* or codex-* (letters, digits, dashes)")
    return worker


def _priority(pull: Pull) -> int:
    """`perf:` PRs first, then `fix:`, then the rest."""
    title = pull.title.strip().lower()
    return 0 if title.startswith("perf:") else 1 if title.startswith("fix:") else 2


def candidates(
    pulls: Iterable[Pull],
    issues: Iterable[Issue],
    leases: Iterable[Lease],
    active_issues: set[str],
    *,
    repo: Repo | None = None,
) -> list[Pull]:
    """PRs a worker may take, best first.

    Eligible: in `repo` (if given), no owner label, linked to an issue by its branch, not `waiting`,
    no lease on it, its issue not owned by anyone and no agent run active on it.
    Order: `perf:` titles, then `fix:`, then the rest; then repository; then oldest PR first.
    """
    leased = {lease.pr_key for lease in leases}
    by_key = {i.key: i for i in issues}
    eligible = []
    for pull in pulls:
        if repo is not None and pull.repo.key != repo.key:
            continue
        if pull.owner or pull.waiting or pull.issue is None or f"{pull.repo.key}#{pull.number}" in leased:
            continue
        issue_key = f"{pull.repo.key}#{pull.issue}"
        issue = by_key.get(issue_key)
        if issue is not None and workflow.read_labels(issue.labels).owner is not None:
            continue
        if issue_key in active_issues:
            continue
        eligible.append(pull)
    return sorted(eligible, key=lambda p: (_priority(p), p.repo.key, p.number))


def reserved_issues(leases: Iterable[Lease], now: datetime) -> dict[str, str]:
    """Issue key → why it is reserved, for every live lease (the dispatcher's refusal detail)."""
    reserved = {}
    for lease in leases:
        if not lease.expired(now) and (key := lease.issue_key) is not None:
            until = f"{lease.expires_at:%Y-%m-%d %H:%M} UTC"
            reserved[key] = f"PR #{lease.pr} reserved for review by {lease.worker} until {until}"
    return reserved


def held_by(leases: Iterable[Lease], worker: str) -> Lease | None:
    return next((lease for lease in leases if lease.worker == worker), None)
