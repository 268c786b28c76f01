"""What `k3sc logs` decides: which run an operator means, which log lines matter, how a run reads.

Pure: runs and log lines come in as values, the clock as an argument. The I/O around it (reading
runs and logs from Prefect, following a live run) is `k3sc.services.logs`.

- `pick`: the newest run matching `[repo] <issue> [--kind] [--attempt]` (newest, never the oldest),
  or an error naming the repos when a bare issue number is in several of them.
- `is_meaningful` / `last_meaningful`: the "last output" shown beside each run; the agent's own
  words, not tool chatter, results, usage, retries or Prefect's engine and worker lines.
- `settled`: a run whose last line can be remembered rather than read again.
- `Cursor`: reads a live log by polling without missing late-arriving lines or repeating any.
- `row`: one run as the listing shows it (and as `--json` gives it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol, TypeVar

from k3sc.errors import K3scError, UsageError
from k3sc.labels import Kind
from k3sc.models import AgentRun, Repo

# The run logger of an agent flow: what the flow itself logs, the agent's relayed output included.
# The worker (`prefect.flow_runs.worker`), the runner and task runs log under other names.
RUN_LOGGER = "prefect.flow_runs"
# Prefect's engine writes these on the run logger too; they say nothing about the agent's work.
ENGINE_PREFIXES = (
    "Beginning flow run",
    "Executing flow",
    "Finished in state",
    "Received non-final state",
    "Crash detected",
    "Downloading flow code",
    "View at ",
)
# Rendered agent lines that are bookkeeping, not what the agent says (k3sc.agent.streams renders
# them): tool calls and their result previews, the final result, session start, usage, retries.
CHATTER_PREFIXES = ("[tool]", "↳", "[result]", "[init]", "[usage]", "[retry]")
# The listing reads this many of a run's newest log records to find its last meaningful line.
TAIL = 20
# How long after a line's timestamp it may still arrive: clients send logs in batches (every 1 s
# under `k3sc up`, 2 s by default) from several processes, so a poll re-reads this far back.
LATE_ARRIVAL = timedelta(seconds=15)


class LogLine(Protocol):
    """One Prefect log record, as far as `k3sc logs` reads it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def message(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...


L = TypeVar("L", bound=LogLine)


# --------------------------------------------------------------------------- choosing a run


@dataclass(frozen=True)
class Wanted:
    """What `k3sc logs [repo] <issue> [--kind K] [--attempt N]` asks for."""

    issue: int
    repo: Repo | None = None
    kind: Kind | None = None
    attempt: int | None = None

    def describe(self) -> str:
        where = f"{self.repo.full_name}#{self.issue}" if self.repo else f"issue #{self.issue}"
        extra = [f"kind {self.kind.value}"] if self.kind else []
        extra += [f"attempt {self.attempt}"] if self.attempt is not None else []
        return f"{where} ({', '.join(extra)})" if extra else where


def newest_first(runs: Iterable[AgentRun]) -> list[AgentRun]:
    """Runs by start (creation, if not started), newest first; ties by attempt, then id."""
    return sorted(runs, key=lambda r: (r.started_at or r.created_at, r.attempt, r.id), reverse=True)


def pick(runs: Sequence[AgentRun], wanted: Wanted) -> AgentRun:
    """The newest run matching `wanted`.

    Raises:
        UsageError: no repo was given and the issue number has runs in several repos.
        K3scError: nothing matches.
    """
    of_issue = [r for r in runs if r.issue == wanted.issue]
    if wanted.repo is not None:
        of_issue = [r for r in of_issue if r.repo.key == wanted.repo.key]
    else:
        # A bare number is only an identity within one repo (invariant 7).
        repos = sorted({r.repo.full_name for r in of_issue}, key=str.lower)
        if len(repos) > 1:
            raise UsageError(
                f"issue #{wanted.issue} has agent runs in several repos ({', '.join(repos)}); "
                f"rerun as `k3sc logs <repo> {wanted.issue}`."
            )
    matching = [
        r
        for r in of_issue
        if (wanted.kind is None or r.kind is wanted.kind)
        and (wanted.attempt is None or r.attempt == wanted.attempt)
    ]
    if not matching:
        raise K3scError(f"no agent run found for {wanted.describe()}.")
    return newest_first(matching)[0]


# --------------------------------------------------------------------------- meaningful lines


def is_meaningful(logger: str, text: str) -> bool:
    """Whether one line of a log record says what the agent is doing."""
    if logger != RUN_LOGGER:
        return False
    line = text.strip()
    if not line:
        return False
    return not line.startswith(ENGINE_PREFIXES + CHATTER_PREFIXES)


def settled(run: AgentRun, now: datetime) -> bool:
    """Whether the run's log can no longer change: it ended longer ago than a line may arrive late.

    A settled run's last meaningful line may be remembered instead of read again.
    """
    return not run.phase.active and run.ended_at is not None and now - run.ended_at > LATE_ARRIVAL


def last_meaningful(lines: Iterable[LogLine]) -> str:
    """The last meaningful line of these records (oldest first), or "" if there is none.

    One record may hold several lines (the agent flow joins a message's rendered blocks).
    """
    last = ""
    for record in lines:
        for text in record.message.splitlines():
            if is_meaningful(record.name, text):
                last = text.strip()
    return last


# --------------------------------------------------------------------------- following


@dataclass
class Cursor:
    """Where a follower is in a live log: what it has shown, and from when to read next.

    Each poll reads from `after()` (the newest timestamp shown, minus LATE_ARRIVAL) and `take`
    returns only records not shown yet, in timestamp order. Ids older than the window are
    forgotten, so memory stays bounded however long the run.
    """

    late: timedelta = LATE_ARRIVAL
    newest: datetime | None = None
    _seen: dict[str, datetime] = field(default_factory=dict)

    def after(self) -> datetime | None:
        return None if self.newest is None else self.newest - self.late

    def take(self, records: Iterable[L]) -> list[L]:
        fresh = [r for r in records if r.id not in self._seen]
        fresh.sort(key=lambda r: (r.timestamp, r.id))
        for record in fresh:
            self._seen[record.id] = record.timestamp
            if self.newest is None or record.timestamp > self.newest:
                self.newest = record.timestamp
        if (cutoff := self.after()) is not None:
            # Strictly older than the next read's lower bound: the server never returns them again.
            self._seen = {i: t for i, t in self._seen.items() if t >= cutoff}
        return fresh


def render_line(record: LogLine, tz: tzinfo | None) -> list[str]:
    """A record as printed: `HH:MM:SS message`, the level named from WARNING up, one per line."""
    stamp = record.timestamp.astimezone(tz).strftime("%H:%M:%S")
    level = f"{_LEVELS.get(record.level, str(record.level))} " if record.level >= 30 else ""
    return [f"{stamp} {level}{text}" for text in record.message.splitlines() or [""]]


_LEVELS = {30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


# --------------------------------------------------------------------------- the listing


@dataclass(frozen=True)
class Row:
    """One run in `k3sc logs` without arguments."""

    id: str
    issue: str  # `acme/api#7`
    repo: str
    number: int
    agent: str
    kind: str
    attempt: int
    state: str
    started: datetime | None
    duration_s: float | None
    last_output: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "issue": self.issue,
            "repo": self.repo,
            "number": self.number,
            "agent": self.agent,
            "kind": self.kind,
            "attempt": self.attempt,
            "state": self.state,
            "started": self.started.isoformat() if self.started else None,
            "duration_s": self.duration_s,
            "last_output": self.last_output,
        }

    def cells(self, tz: tzinfo | None, width: int = 80) -> list[str]:
        """The table's cells: times in `tz` ("Jan 2 15:04"), duration as `1h02m`, output clipped."""
        started = _clock(self.started.astimezone(tz)) if self.started else "-"
        last = self.last_output if len(self.last_output) <= width else self.last_output[: width - 1] + "…"
        return [
            f"#{self.number}",
            self.repo,
            self.agent,
            self.kind,
            str(self.attempt),
            self.state,
            started,
            duration(self.duration_s),
            last,
        ]


COLUMNS = ("issue", "repo", "agent", "kind", "attempt", "state", "started", "duration", "last output")


def row(run: AgentRun, last_output: str, now: datetime) -> Row:
    """A run as listed; a running run's duration runs up to `now`."""
    started = run.started_at if run.ran_for != 0 or run.phase.active else None
    if started is None:
        took = None
    else:
        end = run.ended_at if run.ended_at is not None and not run.phase.active else now
        took = max(0.0, (end - started).total_seconds())
    return Row(
        id=run.id,
        issue=run.issue_key,
        repo=run.repo.full_name,
        number=run.issue,
        agent=run.agent,
        kind=run.kind.value,
        attempt=run.attempt,
        state=run.state_name or run.phase.value.capitalize(),
        started=started,
        duration_s=None if took is None else round(took, 1),
        last_output=last_output,
    )


def duration(seconds: float | None) -> str:
    """`-`, `42s`, `3m05s`, `1h02m`."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _clock(moment: datetime) -> str:
    return f"{moment:%b} {moment.day} {moment:%H:%M}"
