"""A fixed fleet for `k3sc top`'s table, pilot and snapshot tests, and a source that serves it.

`FakeSource` answers like `k3sc.services.top.Live`; a source named in `failing` raises, one named
in `slow` waits on `gate` (so a test can prove the rest of the screen renders meanwhile), and
every action is recorded in `done` with what it was asked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from k3sc.errors import OrchestrationError
from k3sc.labels import Kind
from k3sc.leases import Lease
from k3sc.models import AgentRun, Issue, Outcome, Pull, Repo, RunPhase
from k3sc.orchestration import controls, dispatch_state
from k3sc.services.top import FleetFacts, GitHubFacts, LogLine, RunFacts, ScanFacts, SecurityEvent, UsageEntry
from k3sc.usage import Billing, LimitHit, Usage, UsageRecord, Window
from tests.builders import API, WEB, make_config

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday
CONFIG = make_config(github_url="https://github.example")

SCAN_MARKDOWN = """# k3sc dispatch

## Handed off

- acme/api#3: implement by claude-b succeeded → needs-review

## Errors

- acme/web: 502 from GitHub

## Decisions

| issue | action | agent | reason |
|---|---|---|---|
| acme/api#7 | implement | claude-a | ready, free slot |
| acme/api#9 | skip | - | no free slot: 2 of 2 in use |

Slots: 2. Families: claude: available, codex: family parked until 12:00 UTC (five_hour limit).

Active agent runs: 2. Next scan: 2026-12-01 10:02:00 UTC."""


def run(
    issue: int,
    phase: RunPhase,
    *,
    agent: str = "claude-a",
    kind: Kind = Kind.IMPLEMENT,
    repo: Repo = API,
    minutes_ago: int = 10,
    ran: int = 5,
    outcome: Outcome | None = None,
    message: str = "",
    state_name: str = "",
    attempt: int = 1,
) -> AgentRun:
    started = NOW - timedelta(minutes=minutes_ago)
    ended = started + timedelta(minutes=ran) if not phase.active else None
    return AgentRun(
        id=f"run-{repo.name}-{issue}-{attempt}",
        repo=repo,
        issue=issue,
        kind=kind,
        agent=agent,
        attempt=attempt,
        phase=phase,
        created_at=started,
        started_at=started,
        ended_at=ended,
        handed_off=outcome is not None,
        outcome=outcome,
        message=message,
        ran_for=ran * 60.0,
        state_name=state_name,
    )


def record(agent: str, total: int, cost: float | None, model: str = "claude-sonnet-4-5") -> UsageRecord:
    spent = Usage(total // 2, total // 4, 0, total - total // 2 - total // 4, total, cost, (model,), 3)
    return UsageRecord("acme/api", 1, "implement", agent, 1, Billing.API_KEY, NOW, 60.0, "success", 0, spent)


def entry(run_id: str | None, created: datetime, rec: UsageRecord) -> UsageEntry:
    return UsageEntry(f"art-{run_id}-{created:%d%H%M}", run_id, created, rec)


RUNS = (
    run(7, RunPhase.RUNNING, minutes_ago=4, ran=0),
    run(8, RunPhase.WAITING, agent="codex-a", kind=Kind.REVIEW, minutes_ago=1, ran=0),
    run(3, RunPhase.COMPLETED, agent="claude-b", minutes_ago=50, ran=12, outcome=Outcome.SUCCESS),
    run(
        5,
        RunPhase.FAILED,
        agent="codex-b",
        minutes_ago=70,
        ran=3,
        outcome=Outcome.PARKED,
        state_name="Parked",
        message="usage limit: codex five_hour window",
    ),
    run(4, RunPhase.CANCELLED, repo=WEB, minutes_ago=90, ran=1, outcome=Outcome.STOPPED, attempt=2),
)

USAGE = (
    entry("run-api-3-1", NOW - timedelta(minutes=38), record("claude-b", 265_000, 1.25)),
    entry("run-api-5-1", NOW - timedelta(minutes=67), record("codex-b", 40_000, None, "gpt-5")),
    entry(None, NOW - timedelta(days=2), record("claude-a", 1_200_000, 4.0)),  # Sunday: this week
    entry(None, NOW - timedelta(days=10), record("claude-a", 500_000, 2.5, "claude-opus-4-6")),
)

LEASE = Lease(
    API,
    12,
    3,
    "claude-4",
    "issue-3",
    "https://github.example/acme/api/pull/12",
    NOW,
    NOW + timedelta(hours=12),
)
PARK = LimitHit("codex", None, NOW + timedelta(hours=2), Window.FIVE_HOUR, "You've hit your limit")

FLEET = FleetFacts(
    controls.Controls(
        leases=(LEASE,), parks=(PARK,), max_slots=2, max_slots_set={"by": "ops", "at": "09:00"}
    ),
    dispatch_state.DispatchState(last_scan=NOW - timedelta(minutes=1), next_due=NOW + timedelta(minutes=2)),
)


def issue(number: int, labels: tuple[str, ...], title: str, repo: Repo = API) -> Issue:
    return Issue(repo, number, title, "alice", NOW - timedelta(hours=number), labels)


GITHUB = GitHubFacts(
    issues=(
        issue(7, ("claude-a",), "Add retry to the uploader"),
        issue(9, ("ready",), "Paginate the audit log"),
        issue(3, ("needs-review",), "Fix the flaky login test"),
        issue(2, ("needs-human",), "Rotate the signing key", WEB),
    ),
    pulls=(
        Pull(API, 12, "issue-3", 3, "claude-4", False, title="Fix the flaky login test"),
        Pull(WEB, 14, "issue-2", 2, None, False, title="Rotate the signing key"),
    ),
    requests=2,
    not_modified=2,
    remaining=4990,
)

SECURITY = (
    SecurityEvent("run-api-7-1", NOW - timedelta(minutes=2), "git push --force blocked (force push)"),
)
LAST_LINES = {"run-api-7-1": "  ↳ 14 passed in 2.31s", "run-api-8-1": "waiting for a worker"}
LOGS = {
    "run-api-7-1": [
        LogLine(NOW - timedelta(seconds=30), 20, "[tool] Bash: uv run pytest -q"),
        LogLine(NOW - timedelta(seconds=20), 20, "  ↳ 14 passed in 2.31s"),
    ]
}


class FakeSource:
    """Serves the fixed fleet; see the module docstring for `failing`, `slow`, `gate` and `done`."""

    def __init__(
        self,
        failing: Sequence[str] = (),
        slow: Sequence[str] = (),
        paused: bool = False,
        slow_for: float = 2.0,
    ) -> None:
        self.failing = set(failing)
        self.slow = set(slow)
        self.slow_for = slow_for  # a slow source answers when `gate` is set, or after this long
        self.gate = threading.Event()
        self.done: list[tuple[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.finished: set[str] = set()  # sources whose (slow) wait ran to its end
        self.paused = paused

    async def _answer(self, name: str, value: Any) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.slow:
            waited = 0.0
            while not self.gate.is_set() and waited < self.slow_for:
                await asyncio.sleep(0.01)  # cancellable, like a real request
                waited += 0.01
            self.finished.add(name)
        if name in self.failing:
            raise OrchestrationError(f"Prefect API POST /{name}/filter → 500: boom")
        return value

    async def fleet(self) -> FleetFacts:
        held = controls.Controls(
            leases=FLEET.controls.leases,
            parks=FLEET.controls.parks,
            max_slots=FLEET.controls.max_slots,
            max_slots_set=FLEET.controls.max_slots_set,
            paused=self.paused,
        )
        answer: FleetFacts = await self._answer("fleet", FleetFacts(held, FLEET.memory))
        return answer

    async def runs(self) -> RunFacts:
        answer: RunFacts = await self._answer("runs", RunFacts(RUNS, LAST_LINES))
        return answer

    async def usage(self) -> tuple[UsageEntry, ...]:
        answer: tuple[UsageEntry, ...] = await self._answer("usage", USAGE)
        return answer

    async def scan(self) -> ScanFacts:
        answer: ScanFacts = await self._answer(
            "scan", ScanFacts(SCAN_MARKDOWN, NOW - timedelta(minutes=1), "scan-1")
        )
        return answer

    async def security(self) -> tuple[SecurityEvent, ...]:
        answer: tuple[SecurityEvent, ...] = await self._answer("security", SECURITY)
        return answer

    async def github(self) -> GitHubFacts:
        answer: GitHubFacts = await self._answer("github", GITHUB)
        return answer

    async def logs(self, run_ids: Sequence[str], lines: int) -> dict[str, list[LogLine]]:
        self.done.append(("logs", tuple(run_ids)))
        return {r: LOGS.get(r, [])[-lines:] for r in run_ids}

    async def scan_now(self) -> str:
        self.done.append(("scan_now", None))
        return "scan started: scan on k3sc top"

    async def pause(self, paused: bool) -> str:
        self.done.append(("pause", paused))
        self.paused = paused
        return "dispatch paused" if paused else "dispatch resumed"

    async def scale(self, step: int) -> str:
        self.done.append(("scale", step))
        return f"max slots: 2 -> {2 + step}"

    async def kill(self, repo: Repo, issue: int) -> str:
        self.done.append(("kill", f"{repo}#{issue}"))
        return f"{repo.key}#{issue}: stopped implement attempt 1 by claude-a; now needs-human"
