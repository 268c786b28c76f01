"""Plain values that cross layers: repositories, issues, pull requests and agent runs.

Frozen dataclasses, no I/O and no vendor types, so the core can decide on them and the
adapters (GitHub, Prefect) can build them from whatever they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from k3sc.labels import Kind


@dataclass(frozen=True, order=True)
class Repo:
    """A GitHub repository as spelled; compare `.key` (lower-cased), as GitHub names are case-insensitive."""

    owner: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Repo:
        """Parse `owner/name`; raises ValueError on anything else."""
        owner, sep, name = text.strip().partition("/")
        if not sep or not owner or not name or "/" in name or " " in text.strip():
            raise ValueError(f"expected owner/name, got {text!r}")
        return cls(owner, name)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def key(self) -> str:
        """Lower-cased `owner/name`: the identity used in keys, tags and names."""
        return self.full_name.lower()

    def __str__(self) -> str:
        return self.full_name


@dataclass(frozen=True)
class Issue:
    """An open GitHub issue as k3sc sees it (pull requests excluded)."""

    repo: Repo
    number: int
    title: str
    author: str
    created_at: datetime
    labels: tuple[str, ...]
    url: str = ""

    @property
    def key(self) -> str:
        """Lower-cased `owner/name#N`: unique across repositories."""
        return f"{self.repo.key}#{self.number}"

    def with_labels(self, labels: tuple[str, ...]) -> Issue:
        return Issue(self.repo, self.number, self.title, self.author, self.created_at, labels, self.url)


@dataclass(frozen=True)
class Pull:
    """An open pull request; `issue` is the issue its branch names (issue-N), if any."""

    repo: Repo
    number: int
    branch: str
    issue: int | None
    owner: str | None
    waiting: bool
    url: str = ""
    title: str = ""
    labels: tuple[str, ...] = ()
    created_at: datetime | None = None


@dataclass(frozen=True)
class ReadFailure:
    """A repository that could not be read, and why."""

    repo: Repo
    error: str

    def __str__(self) -> str:
        return f"{self.repo}: {self.error}"


@dataclass(frozen=True)
class Snapshot:
    """GitHub as one pass saw it: workflow issues and open PRs of the configured repos."""

    issues: tuple[Issue, ...]
    pulls: tuple[Pull, ...]
    failures: tuple[ReadFailure, ...] = ()

    def pull_for(self, repo: Repo, branch: str) -> Pull | None:
        return next((p for p in self.pulls if p.repo.key == repo.key and p.branch == branch), None)

    def with_labels(self, key: str, new_labels: tuple[str, ...]) -> Snapshot:
        """The snapshot as it will be after a label write on issue `key`."""
        issues = tuple(i.with_labels(new_labels) if i.key == key else i for i in self.issues)
        return Snapshot(issues, self.pulls, self.failures)


@dataclass(frozen=True)
class Intent:
    """A claim the dispatcher is about to make, persisted *before* the label write.

    If the dispatcher dies between claiming on GitHub and submitting the run, the next pass finds
    the intent and finishes the job under the same idempotency key instead of leaving an orphaned
    owner label or claiming twice.
    """

    key: str  # the agent run's idempotency key
    repo: str
    issue: int
    kind: str
    agent: str
    attempt: int
    origin: str  # the state label the claim replaces
    pr: int | None = None

    @property
    def issue_key(self) -> str:
        return f"{self.repo.lower()}#{self.issue}"


class RunPhase(StrEnum):
    """Where an agent run is, reduced from Prefect's state types."""

    WAITING = "waiting"  # scheduled, pending, late, paused: not started yet
    RUNNING = "running"  # running or cancelling
    COMPLETED = "completed"
    FAILED = "failed"
    CRASHED = "crashed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (RunPhase.WAITING, RunPhase.RUNNING)


class Outcome(StrEnum):
    """The verified result of an attempt, recorded once at hand-off."""

    SUCCESS = "success"
    FAILURE = "failure"
    # The attempt never ran (the worker could not start it, or it was cancelled before it
    # started): retried without counting against the failure cap, a bounded number of times.
    ERROR = "error"
    # A person stopped it (`k3sc kill`), or the budget meter did: never retried automatically,
    # never counted as a failure.
    STOPPED = "stopped"
    # The agent's account hit its usage limit: the family rests until the reset, the issue goes
    # back where it came from, and nothing counts against the cap.
    PARKED = "parked"


@dataclass(frozen=True)
class AgentRun:
    """One attempt of an agent on an issue (a flow run of the `k3sc-agent` deployment)."""

    id: str
    repo: Repo
    issue: int
    kind: Kind
    agent: str
    attempt: int
    phase: RunPhase
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    handed_off: bool = False
    outcome: Outcome | None = None
    message: str = ""
    pr: int | None = None
    tags: tuple[str, ...] = field(default=(), compare=False)
    # Seconds the run spent running; 0 means it never started (Prefect still stamps a start time).
    ran_for: float | None = None
    # The final state's display name (Prefect's `Crashed`, or one k3sc's agent flow sets).
    state_name: str = ""
    # `k3sc reset` was run on the issue after this attempt: it no longer counts towards any cap.
    reset: bool = False
    # When the run entered Pending (handed to its infrastructure and not started yet); else None.
    pending_since: datetime | None = None

    @property
    def never_started(self) -> bool:
        """Ended without ever running: the agent did nothing, so it is nobody's failure."""
        return not self.phase.active and (self.started_at is None or self.ran_for == 0)

    @property
    def issue_key(self) -> str:
        return f"{self.repo.key}#{self.issue}"

    @property
    def family(self) -> str:
        """`claude` of `claude-b`."""
        return self.agent.split("-", 1)[0]

    @property
    def active(self) -> bool:
        """Still occupying its slot: not started, running, or ended but not yet handed off."""
        return self.phase.active or not self.handed_off
