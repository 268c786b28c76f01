"""Small builders for the core's table tests: a config, issues and runs at a fixed `NOW`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from k3sc.config import Config
from k3sc.labels import Kind
from k3sc.models import AgentRun, Issue, Outcome, Repo, RunPhase

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
API = Repo("acme", "api")
WEB = Repo("acme", "web")


def make_config(**overrides: object) -> Config:
    data: dict[str, object] = {
        "repos": ["acme/api", "acme/web"],
        "allowed_authors": ["alice", "Bob"],
        "max_slots": 5,
    }
    data.update(overrides)
    return Config.model_validate(data)


def make_issue(
    number: int = 1,
    labels: tuple[str, ...] = ("ready",),
    *,
    repo: Repo = API,
    author: str = "alice",
    age_minutes: int = 60,
) -> Issue:
    return Issue(
        repo=repo,
        number=number,
        title=f"issue {number}",
        author=author,
        created_at=NOW - timedelta(minutes=age_minutes),
        labels=labels,
    )


def make_run(
    issue: int = 1,
    *,
    repo: Repo = API,
    kind: Kind = Kind.IMPLEMENT,
    agent: str = "claude-a",
    attempt: int = 1,
    phase: RunPhase = RunPhase.COMPLETED,
    handed_off: bool = True,
    outcome: Outcome | None = Outcome.SUCCESS,
    minutes_ago: int = 30,
) -> AgentRun:
    return AgentRun(
        id=f"run-{repo.key}-{issue}-{kind}-{attempt}",
        repo=repo,
        issue=issue,
        kind=kind,
        agent=agent,
        attempt=attempt,
        phase=phase,
        created_at=NOW - timedelta(minutes=minutes_ago),
        handed_off=handed_off,
        outcome=outcome if handed_off else None,
    )
