"""The chaos run, shared by bench/chaos.py and tests/e2e/test_chaos.py.

The sandbox loop of `k3sc up --sandbox` (bench/_loop.py: real Prefect server, real workers, the
stub agent) over many `ready` issues while the fake GitHub fails a fraction of requests
(`FakeGitHub.chaos`), the Prefect server is restarted, a worker process and an agent process are
killed. The loop is watched as `k3sc up` watches it (`up.check_children`, which restarts a dead
worker). At the end every issue must be at `needs-human` (reviewed, or past the failure cap) and
the invariants of the write-point suite must hold: no duplicate claim, run or label write, one
workflow label per issue, every attempt ended and handed off.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loop import issue_runs_of, loop

from k3sc.labels import Kind
from k3sc.models import AgentRun, Outcome
from k3sc.services import up

OWNER, REPO = "chaos", "api"
DONE = ["needs-human"]
# The issue whose agent is killed, and the one whose agent runs while its worker is killed: both
# slow enough to be found running.
AGENT_KILLED = 1
WORKER_KILLED = 2
# k3sc's own GitHub requests are the system under test; the stub agent stands in for Claude, whose
# GitHub access is not k3sc's to make resilient, so its requests are spared.
STUB_USER_AGENT = "k3sc-stub-agent"


@dataclass(frozen=True)
class Plan:
    issues: int
    rate: float
    seed: int = 1
    server_restarts: int = 2
    worker_kills: int = 1
    agent_kills: int = 1
    slots: int = 4
    slow_agent_s: int = 20
    # How long a "timeout" fault holds a request before closing the connection: k3sc's client gives
    # up at 30 s, so below that the client sees a dropped connection, above it a timeout.
    hang: float = 1.0
    timeout: float = 1800.0
    # Give up early when no issue's labels changed for this long: a stuck loop fails fast while a
    # slow host (CI hosts have differed 3x) that keeps moving gets to finish.
    stall: float | None = None
    keep_logs: Path | None = None  # copy the server's, workers' and webhook's logs here at the end


@dataclass
class Result:
    plan: Plan
    elapsed: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    server_restarts: int = 0
    server_down_s: float = 0.0
    worker_kills: int = 0
    agent_kills: int = 0
    worker_restarts: int = 0
    github_requests: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    label_problems: list[str] = field(default_factory=list)
    attempt_problems: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    unsuccessful: list[str] = field(default_factory=list)  # attempts that did not succeed, and why

    @property
    def problems(self) -> list[str]:
        return [
            *(f"lost: {x}" for x in self.lost),
            *(f"duplicate: {x}" for x in self.duplicates),
            *(f"labels: {x}" for x in self.label_problems),
            *(f"attempts: {x}" for x in self.attempt_problems),
        ]


def seed_for(plan: Plan) -> dict[str, Any]:
    issues: list[dict[str, Any]] = [
        {"title": f"task {n}", "author": "alice", "labels": []} for n in range(1, plan.issues + 1)
    ]
    for number in (AGENT_KILLED, WORKER_KILLED):
        issues[number - 1]["stub"] = f"slow={plan.slow_agent_s}"
    return {
        "owner": OWNER,
        "max_slots": plan.slots,
        "allowed_authors": ["alice"],
        "repos": [{"name": REPO, "issues": issues}],
    }


# ------------------------------------------------------------------ the invariants (pure)


def duplicate_writes(write_log: list[str]) -> list[str]:
    """Label writes k3sc made that changed nothing: a claim or hand-off written twice."""
    return [line for line in write_log if "(unchanged)" in line and "(by " not in line]


def label_problems(labels_by_issue: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(lost, wrong): issues not at `needs-human`, and issues with other than one label."""
    lost = [f"{ref} at {labels}" for ref, labels in labels_by_issue.items() if labels != DONE]
    wrong = [f"{ref} has {labels}" for ref, labels in labels_by_issue.items() if len(labels) != 1]
    return lost, wrong


def attempt_problems(recorded: list[AgentRun]) -> tuple[list[str], list[str]]:
    """(duplicates, unaccounted): more than one run of an (issue, kind, attempt); runs still
    active or never handed off; attempts of an issue and kind that are not 1..n."""
    counts = collections.Counter((r.issue_key, r.kind.value, r.attempt) for r in recorded)
    duplicates = [f"{key} ran {n} times" for key, n in sorted(counts.items()) if n > 1]
    unaccounted = [
        f"{r.issue_key} {r.kind.value} {r.attempt}: {r.phase.value}, handed off {r.handed_off}"
        for r in recorded
        if r.phase.active or not r.handed_off
    ]
    attempts: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for r in recorded:
        attempts[(r.issue_key, r.kind.value)].add(r.attempt)
    unaccounted += [
        f"{ref} {kind} attempts {sorted(seen)}"
        for (ref, kind), seen in sorted(attempts.items())
        if seen != set(range(1, len(seen) + 1))
    ]
    return duplicates, unaccounted


def check(
    result: Result, labels_by_issue: dict[str, list[str]], write_log: list[str], recorded: list[AgentRun]
) -> None:
    result.lost, result.label_problems = label_problems(labels_by_issue)
    result.duplicates = duplicate_writes(write_log)
    run_duplicates, result.attempt_problems = attempt_problems(recorded)
    result.duplicates += run_duplicates
    # Where the workflow says an issue ends: at a human after a review attempt that followed a
    # successful implementation, or after implementation attempts that all failed (the cap). A
    # review that failed (say its worker was killed under it) is escalated to a human, as the
    # workflow wants; one that never followed the implementation is a skipped step.
    implemented = {r.issue_key for r in recorded if r.kind is Kind.IMPLEMENT and r.outcome is Outcome.SUCCESS}
    reviewed = {r.issue_key for r in recorded if r.kind is Kind.REVIEW and r.outcome is not None}
    result.attempt_problems += [
        f"{ref} implemented but never reviewed"
        for ref in labels_by_issue
        if ref in implemented and ref not in reviewed
    ]
    result.unsuccessful = [
        f"{r.issue_key} {r.kind.value} {r.attempt} {r.agent}: {_ending(r)}: {r.message[:160]}"
        for r in recorded
        if r.outcome is not Outcome.SUCCESS
    ]
    result.outcomes = dict(collections.Counter(f"{r.kind.value} {_ending(r)}" for r in recorded))


def _ending(run: AgentRun) -> str:
    return run.outcome.value if run.outcome else run.phase.value


# ------------------------------------------------------------------ the faults


def agent_pids(workspaces: Path, issue: int) -> list[int]:
    """Stub agents working on `issue`: run from a workspace of this world, with K3SC_ISSUE=<issue>."""
    wanted = f"K3SC_ISSUE={issue}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            cmdline = (entry / "cmdline").read_bytes()
            if b"stub_agent" not in cmdline or not cwd.is_relative_to(workspaces):
                continue
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def worker_pid(session: up.Session, pool: str) -> int | None:
    """The `prefect worker` process itself (the guard's child), as a crash or the OOM killer hits it."""
    guard = next((p for p in session.stack.processes if p.name == f"worker {pool}" and p.alive), None)
    if guard is None:
        return None
    children = Path(f"/proc/{guard.popen.pid}/task/{guard.popen.pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    return None


# ------------------------------------------------------------------ the run


def run(plan: Plan, say: Callable[[str], None] = print) -> Result:
    """One chaos run (faults, restarts and kills as `plan` says; rate 0 and no kills is the baseline)."""
    result = Result(plan)
    numbers = range(1, plan.issues + 1)
    with loop(seed_for(plan), record_requests=True) as session:
        world = session.world
        fake, owner = world.fake, world.owner
        refs = [f"{owner}/{REPO}#{n}".lower() for n in numbers]
        workspaces = world.root / "workspaces"
        requests_before = len(fake.requests)
        if plan.rate:
            fake.chaos(
                plan.rate,
                seed=plan.seed,
                retry_after=(1, 2),
                hang=plan.hang,
                spare_user_agents=[STUB_USER_AGENT],
            )
        started = time.monotonic()

        def note(text: str) -> None:
            line = f"{time.monotonic() - started:6.1f}s {text}"
            result.events.append(line)
            say(f"  {line}")

        for number in numbers:
            fake.set_labels(owner, REPO, number, ["ready"], actor="alice")
        # Server restarts once this share of issues has left `ready` (claimed or further): spread
        # over the run and always while work is in flight (counting finished issues instead, a
        # fast run could finish its last ones between two looks and never restart).
        restart_at = [(k + 1) / (plan.server_restarts + 1) for k in range(plan.server_restarts)]
        deadline = started + plan.timeout
        last_report = last_change = started
        seen: dict[str, list[str]] = {}
        while True:
            up.check_children(session, note)  # as `k3sc up` watches: a dead worker is restarted
            labels = {
                ref: fake.issue_view(owner, REPO, n)["labels"] for ref, n in zip(refs, numbers, strict=True)
            }
            if labels != seen:
                seen, last_change = labels, time.monotonic()
            done = sum(v == DONE for v in labels.values())
            started_work = sum(v != ["ready"] for v in labels.values())
            if done == plan.issues:
                break
            if time.monotonic() > deadline:
                note(f"timeout with {done}/{plan.issues} done")
                break
            if plan.stall is not None and time.monotonic() - last_change > plan.stall:
                note(f"no label changed for {plan.stall:.0f}s, {done}/{plan.issues} done")
                break
            if result.agent_kills < plan.agent_kills and (pids := agent_pids(workspaces, AGENT_KILLED)):
                time.sleep(2)  # mid-run, not at its first instruction
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                result.agent_kills += 1
                note(f"killed the agent of #{AGENT_KILLED} (pid {', '.join(map(str, pids))})")
            elif (
                result.worker_kills < plan.worker_kills
                and agent_pids(workspaces, WORKER_KILLED)  # the worker has runs in flight
                and (pid := worker_pid(session, "k3sc-agents"))
            ):
                os.kill(pid, signal.SIGKILL)
                result.worker_kills += 1
                note(f"killed the k3sc-agents worker (pid {pid}) with agent runs in flight")
            elif restart_at and started_work / plan.issues >= restart_at[0]:
                restart_at.pop(0)
                note(f"restarting the Prefect server ({started_work}/{plan.issues} claimed, {done} done)")
                down = time.monotonic()
                session.stack.restart_server()
                result.server_down_s += time.monotonic() - down
                result.server_restarts += 1
                note(f"Prefect server back after {time.monotonic() - down:.1f}s")
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                note(f"{done}/{plan.issues} at needs-human")
            time.sleep(1.0)
        result.elapsed = time.monotonic() - started
        fake.chaos(0)  # the checks below read GitHub and Prefect undisturbed
        result.faults = fake.chaos_injected
        result.github_requests = len(fake.requests) - requests_before
        result.worker_restarts = sum(len(v) for v in session.restarts.values())
        # The last hand-off label write and its run's hand-off mark are one pass apart: let it settle.
        settle = time.monotonic() + 60
        while True:
            labels = {
                ref: fake.issue_view(owner, REPO, n)["labels"] for ref, n in zip(refs, numbers, strict=True)
            }
            check(result, labels, list(fake.write_log), issue_runs_of(session, refs))
            if not result.attempt_problems or time.monotonic() > settle:
                break
            time.sleep(2)
        if plan.keep_logs is not None:
            shutil.copytree(session.stack.log_dir, plan.keep_logs, dirs_exist_ok=True)
    return result
