"""The dispatcher killed right before or right after any of its writes, or told a write failed that
landed, duplicates nothing and loses nothing (ARCHITECTURE.md invariant 1). Replaces the timed crash
test: faults are placed, not hoped for.

How: every dispatcher is its own process launched through `tests.e2e.write_faults`, which names
each GitHub and Prefect write it makes by *write point* (the Prefect task it happens in and what it
writes) and strikes at the armed ones. One walk over a small world (three issues, real stub agents
on a real process worker, each going ready → implement → needs-review → review → needs-human, two
through a failed review: the hand-off that comments) arms, in every launch, all faults not yet
struck. A launch dies at the first kill it reaches (a failure it reaches on the way strikes and the
launch goes on); the next launch is the restart, and so on until every fault has struck and the
loop is idle. So the first claim is interrupted at each of its writes in turn, the first hand-off
likewise, and points only a recovery reaches (re-submitting a claim whose dispatcher died after its
label write) are struck as they come. Fresh issues are added once if the world settles with faults
unfired. Every launch logs its writes: the first, unfaulted stretch of each is the pass's count of
write points, in order, that `test_write_points_are_listed` holds against `WRITE_POINTS`.

Covered: each of `WRITE_POINTS` (every write a pass makes here; a write point the dispatcher gains
fails `test_write_points_are_listed` until it is listed) with three faults: SIGKILL before the
write, SIGKILL after it (the write landed, the dispatcher never learnt it), and the write landing
but reported failed (the client's own error, as after a timeout). Not covered: repetitions of a
point (the same code), and writes this world never makes (stuck-run reaping, lease expiry, parking
an account, orphan reaping: a fault that made one would fail the listing test).

Why one shared walk: a loop to idle per fault would take half an hour; the walk takes about a
minute and a half. The price is attribution: a case checks what its fault set in motion (a label
written twice until the next fault; a second claim or attempt that began or landed in its launch,
the latter being where a lost claim resurfaces), and the end-state invariants are checked once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from k3sc.models import AgentRun
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.sandbox import world as sandbox
from k3sc.services import up
from tests import github_contract
from tests.e2e import write_faults
from tests.e2e.helpers import Deployed, deployed_world, reset_dispatch
from tests.e2e.write_faults import Fault

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DISPATCH = "import asyncio; from flows.dispatch import dispatch; asyncio.run(dispatch(force=True))"
STATE = "prefect set_variable k3sc-dispatch-state"
OWNERS = ("claude-", "codex-")

# Every write one dispatch pass can make on this world, in the order a pass makes them.
WRITE_POINTS = [
    f"schedule-next-scan / prefect create_flow_run {runs.DISPATCH_DEPLOYMENT}",
    "schedule-next-scan / prefect set_state SCHEDULED",
    f"claim-and-submit / {STATE}",
    "claim-and-submit / github PUT issues/N/labels",
    f"claim-and-submit / prefect create_flow_run {runs.AGENT_DEPLOYMENT}",
    f"submit-recovered / prefect create_flow_run {runs.AGENT_DEPLOYMENT}",
    "hand-off / github POST issues/N/comments",
    "hand-off / github PUT issues/N/labels",
    "hand-off / prefect set_tags",
    f"k3sc-dispatch / {STATE}",
]


def faults_at(point: str) -> list[Fault]:
    """Killed right before and right after the write, and the write landing but reported failed."""
    return [Fault(point, "before"), Fault(point, "after"), Fault(point, "after", "fail")]


FAULTS = [fault for point in WRITE_POINTS for fault in faults_at(point)]

ISSUES: list[dict[str, Any]] = [
    {"title": "plain", "author": "alice"},
    # A failed review is handed off with a comment, the one hand-off here that writes one; two of
    # them, so one comment is still to write when the kills at that point have struck.
    {"title": "review fails", "author": "alice", "stub": "review-fail"},
    {"title": "review fails too", "author": "alice", "stub": "review-fail"},
]
SEED: dict[str, Any] = {
    "owner": "faults",
    "max_slots": 3,
    "allowed_authors": ["alice"],
    "repos": [
        {
            "name": "api",
            "issues": ISSUES,
        }
    ],
    # The dispatcher here only runs when the walk starts it: no orphan grace to wait out.
    "config": {"scan": {"orphan_grace": "1s"}},
}
FRESH_ROUNDS = 1  # times fresh issues may be added when the world settles with faults unfired
WALK_TIMEOUT = 600.0


@dataclass
class Launch:
    index: int
    started: datetime
    write_mark: int  # len(fake.write_log) when it started
    points: list[str]  # the writes it completed, in order
    fired: list[Fault]  # the faults that struck in it (a kill is the last)


@dataclass
class Walk:
    launches: list[Launch]
    summary: dict[str, Any]
    recorded: list[AgentRun]
    write_log: list[str]
    violations: list[tuple[Any, str]]  # github_contract.violations: (request, why)
    unfired: list[Fault] = field(default_factory=list)

    def struck_in(self, fault: Fault) -> Launch | None:
        return next((launch for launch in self.launches if fault in launch.fired), None)

    def window(self, fault: Fault) -> list[Launch]:
        """What `fault` set in motion: the rest of its launch if it only failed a write, then the
        launches after it, up to and including the next one a fault struck in (which redid the
        interrupted work until that fault)."""
        struck = self.struck_in(fault)
        assert struck is not None
        after = self.launches[struck.index + 1 :]
        end = next((i for i, launch in enumerate(after) if launch.fired), len(after) - 1)
        return ([struck] if fault.action == "fail" else []) + after[: end + 1]

    def span(self, launches: list[Launch]) -> range:
        """The indexes of the fake's write log written while `launches` ran."""
        if not launches:
            return range(0)
        later = [launch.write_mark for launch in self.launches if launch.index > launches[-1].index]
        return range(launches[0].write_mark, later[0] if later else len(self.write_log))

    def launch_at(self, write: int | None = None, when: datetime | None = None) -> int:
        """The index of the launch that ran when the fake logged write number `write`, or at `when`."""
        return max(
            (
                x.index
                for x in self.launches
                if (write is None or x.write_mark <= write) and (when is None or x.started <= when)
            ),
            default=-1,
        )


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Walk]:
    tmp_path = tmp_path_factory.mktemp("write-points")
    deployed = deployed_world(tmp_path, prefect_api_url, SEED)
    try:
        deployed.session.stack.start_worker("k3sc-agents")
        launches, unfired = _walk(deployed, tmp_path)
        summary = asyncio.run(up.summary(deployed.session))
        recorded = asyncio.run(_runs(prefect_api_url, summary))
    finally:
        deployed.stop()
        asyncio.run(reset_dispatch(prefect_api_url))
    fake = deployed.world.fake
    yield Walk(
        launches, summary, recorded, list(fake.write_log), github_contract.violations(fake.requests), unfired
    )


def _walk(deployed: Deployed, tmp_path: Path) -> tuple[list[Launch], list[Fault]]:
    """Launch dispatchers, each armed with every fault not yet fired, until all fired and idle."""
    world, session = deployed.world, deployed.session
    launches: list[Launch] = []
    armed, struck = list(FAULTS), set[Fault]()
    fresh = 0
    deadline = time.monotonic() + WALK_TIMEOUT
    while time.monotonic() < deadline:
        launch = _launch(deployed, tmp_path, len(launches), armed)
        launches.append(launch)
        struck.update(launch.fired)
        # A point not listed (a new write of the dispatcher's) is walked as well.
        armed = [
            f
            for f in dict.fromkeys(armed + [f for p in launch.points for f in faults_at(p)])
            if f not in struck
        ]
        if launch.fired:
            continue  # restart at once: the dead dispatcher's half-done pass is the point
        if asyncio.run(up.is_idle(session)):
            if not armed or fresh == FRESH_ROUNDS:
                return launches, armed
            fresh += 1
            repo = session.config.repos[0]
            for seed in map(sandbox.IssueSeed.model_validate, ISSUES):
                title, body = f"{seed.title} ({fresh})", sandbox.issue_body(seed)
                world.fake.add_issue(
                    repo.owner, repo.name, title=title, author=seed.author, body=body, labels=seed.labels
                )
        time.sleep(1.0)
    pytest.fail(f"not idle after {WALK_TIMEOUT:.0f}s; struck {[f.name for x in launches for f in x.fired]}")


def _launch(deployed: Deployed, tmp_path: Path, index: int, armed: list[Fault]) -> Launch:
    log, out_path = tmp_path / f"writes-{index}.jsonl", tmp_path / f"dispatch-{index}.log"
    env = {
        **deployed.env,
        write_faults.LOG_ENV: str(log),
        write_faults.FAULTS_ENV: json.dumps([asdict(f) for f in armed]),
    }
    started, mark = datetime.now(UTC), len(deployed.world.fake.write_log)
    with out_path.open("wb") as out:
        proc = subprocess.run(
            write_faults.launcher(DISPATCH),
            check=False,
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=180,
        )
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    fired = [Fault(e["point"], e["phase"], e["action"], e["nth"]) for e in entries if e.get("fired")]
    # A kill ends the process; an injected failure may fail the flow run; nothing else may.
    killed = [f for f in fired if f.action == "kill"]
    expected = {-signal.SIGKILL} if killed else {0, 1} if fired else {0}
    assert len(killed) <= 1 and proc.returncode in expected, (
        proc.returncode,
        fired,
        out_path.read_text(errors="replace")[-3000:],
    )
    points = [e["point"] for e in entries if e.get("phase") == "done"]
    return Launch(index, started, mark, points, fired)


async def _runs(api_url: str, summary: dict[str, Any]) -> list[AgentRun]:
    async with PrefectAPI(api_url) as api:
        return await runs.runs_for_issues(api, [i["issue"].lower() for i in summary["issues"]])


# --------------------------------------------------------------------------- one case per fault


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_at_write_point(walk: Walk, fault: Fault) -> None:
    """The fault struck, and what followed wrote no label twice, claimed nothing twice and started
    no extra attempt."""
    assert walk.struck_in(fault) is not None, f"never reached: {fault.name}"
    window = walk.window(fault)
    span = walk.span(window)
    repeated = [
        line for line in walk.write_log[span.start : span.stop] if "labels" in line and "unchanged" in line
    ]
    assert repeated == [], repeated
    # A lost claim or attempt shows only later (an orphan is reaped, the issue claimed again):
    # suspects are the faults struck in the launch of the first claim and of the second, and in
    # the launch that created a redundant attempt and the one before it.
    struck = walk.struck_in(fault)
    assert struck is not None
    again = [
        claim
        for first, at, claim in _second_claims(walk.write_log)
        if struck.index in (walk.launch_at(write=first), walk.launch_at(write=at))
    ]
    assert again == [], f"claimed again after {fault.name}: {again}"
    attempts = collections.defaultdict(list)
    for run in sorted(walk.recorded, key=lambda r: r.created_at):
        attempts[run.issue_key, run.kind.value].append(run)
    extra = [
        (key, [r.attempt for r in runs])
        for key, runs in attempts.items()
        if len(runs) > 1 and 0 <= walk.launch_at(when=runs[-1].created_at) - struck.index <= 1
    ]
    assert extra == [], f"an attempt was lost and run again after {fault.name}: {extra}"


LABEL_WRITE = re.compile(r"^(?P<issue>\S+) labels: (?P<before>.*) → (?P<after>.*?)(?: \(by .*\))?$")


def _second_claims(write_log: list[str]) -> list[tuple[int, int, tuple[str, str]]]:
    """(first, again, claim): an issue was claimed a second time for the same step (an owner label
    such as `claude-a` written over `ready`: implement; over `needs-review`: review), at write-log
    indexes `first` and `again`.

    Each issue here needs one attempt of each kind: a second is a duplicate. Which agent takes a
    review is the rotation's choice (any agent but the implementer, of either family), so a claim is
    told apart by its step, not by the agent's family.
    """
    seen: dict[tuple[str, str], int] = {}
    again = []
    for at, line in enumerate(write_log):
        if (write := LABEL_WRITE.match(line)) is None:
            continue
        before, after = write["before"].split(", "), write["after"].split(", ")
        step = "review" if "needs-review" in before else "implement" if "ready" in before else "other"
        if any(label not in before and label.startswith(OWNERS) for label in after):
            claim = (write["issue"], step)
            if claim in seen:
                again.append((seen[claim], at, claim))
            seen.setdefault(claim, at)
    return again


def test_a_second_claim_is_told_by_its_step_not_its_family() -> None:
    implement, review = "x/y#1 labels: ready → claude-a", "x/y#1 labels: claude-a → needs-review"
    assert _second_claims([implement, review, "x/y#1 labels: needs-review → claude-b"]) == []
    lost = [implement, "x/y#1 labels: claude-a → ready", "x/y#1 labels: ready → codex-a"]
    assert _second_claims(lost) == [(0, 2, ("x/y#1", "implement"))]
    reviewed_twice = [implement, review, "x/y#1 labels: needs-review → codex-a",
                      "x/y#1 labels: codex-a → needs-review", "x/y#1 labels: needs-review → claude-b"]  # fmt: skip
    assert _second_claims(reviewed_twice) == [(2, 4, ("x/y#1", "review"))]


# --------------------------------------------------------------------------- the walk as a whole


def test_write_points_are_listed(walk: Walk) -> None:
    """Every write the dispatcher made is a listed point, and every listed fault struck."""
    seen = {point for launch in walk.launches for point in launch.points}
    assert sorted(seen - set(WRITE_POINTS)) == [], "unlisted write points: add them to WRITE_POINTS"
    assert walk.unfired == []
    for launch in walk.launches:
        print(launch.index, [f.name for f in launch.fired], launch.points)


def test_walk_ends_settled_with_nothing_duplicated_or_lost(walk: Walk) -> None:
    kills = [f.name for launch in walk.launches for f in launch.fired]
    # Nothing lost: every issue reached a human with exactly one workflow label.
    for row in walk.summary["issues"]:
        assert row["labels"] == ["needs-human"], (row, kills)
    # Every attempt accounted for: handed off with an outcome, one run per (issue, kind, attempt),
    # and plain stubs need exactly one implement and one review attempt each.
    assert all(r.handed_off and r.outcome is not None for r in walk.recorded), kills
    per_kind = collections.Counter((r.issue_key, r.kind.value) for r in walk.recorded)
    issues = {row["issue"].lower() for row in walk.summary["issues"]}
    assert per_kind == {(i, k): 1 for i in issues for k in ("implement", "review")}, per_kind
    # No claim twice: each owner label in an issue's history belongs to exactly one attempt.
    for row in walk.summary["issues"]:
        claims = [s[0] for s in row["history"] if len(s) == 1 and s[0].startswith(OWNERS)]
        attempts = [r for r in walk.recorded if r.issue_key == row["issue"].lower()]
        assert len(claims) == len(attempts), (row["issue"], row["history"])
        # No comment twice: k3sc's comments carry a marker per hand-off.
        markers = [
            line for c in row["comments"] for line in c["body"].splitlines() if line.startswith("<!-- k3sc:")
        ]
        assert len(markers) == len(set(markers)), (row["issue"], markers)
    # No label write twice: the fake logs a write that changes nothing as "(unchanged)".
    assert [line for line in walk.write_log if "labels" in line and "unchanged" in line] == []
    # And what the dispatcher, the agent flows and the stub sent was valid for real GitHub.
    assert walk.violations == []
