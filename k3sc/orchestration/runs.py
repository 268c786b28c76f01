"""Agent runs as k3sc sees them: read from Prefect flow runs, submitted, and marked handed off.

A flow run of the `k3sc-agent` deployment *is* an attempt. Its identity lives in its tags
(`issue:acme/api#7`, `kind:implement`, `agent:claude-b`, `attempt:1`), because Prefect filters
runs by tags and not by parameters. `handoff:pending` stays on a run until the dispatcher has
applied its outcome to GitHub; then it is swapped for `outcome:success|failure`. Active slots,
failure counts and attempt numbers are all derived from these records (invariant 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from k3sc import names
from k3sc.models import AgentRun, Outcome, RunPhase
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun
from k3sc.workflow import Dispatch

AGENT_DEPLOYMENT = "k3sc-agent/k3sc-agent"
DISPATCH_DEPLOYMENT = "k3sc-dispatch/k3sc-dispatch"

_PHASES = {
    "SCHEDULED": RunPhase.WAITING,
    "PENDING": RunPhase.WAITING,
    "PAUSED": RunPhase.WAITING,
    "RUNNING": RunPhase.RUNNING,
    "CANCELLING": RunPhase.RUNNING,
    "COMPLETED": RunPhase.COMPLETED,
    "FAILED": RunPhase.FAILED,
    "CRASHED": RunPhase.CRASHED,
    "CANCELLED": RunPhase.CANCELLED,
}


def to_agent_run(flow_run: FlowRun) -> AgentRun | None:
    """Build an AgentRun from a flow run; None if it is not a k3sc agent run."""
    identity = names.parse_run_tags(flow_run.tags)
    if identity is None:
        return None
    state = flow_run.state
    pr = flow_run.parameters.get("pr")
    outcome = Outcome(identity.outcome) if identity.outcome in set(Outcome) else None
    return AgentRun(
        id=flow_run.id,
        repo=identity.repo,
        issue=identity.issue,
        kind=identity.kind,
        agent=identity.agent,
        attempt=identity.attempt,
        phase=_PHASES.get(flow_run.state_type, RunPhase.WAITING),
        created_at=flow_run.created,
        started_at=flow_run.start_time,
        ended_at=flow_run.end_time,
        handed_off=identity.handed_off,
        outcome=outcome,
        message=(state.message or "") if state else "",
        pr=pr if isinstance(pr, int) and not isinstance(pr, bool) else None,
        tags=flow_run.tags,
        ran_for=flow_run.total_run_time,
        state_name=(state.name or "") if state else "",
        reset=identity.reset,
        pending_since=state.timestamp if state is not None and state.type == "PENDING" else None,
    )


def _agent_runs(flow_runs: Iterable[FlowRun]) -> list[AgentRun]:
    return [run for fr in flow_runs if (run := to_agent_run(fr)) is not None]


async def pending_runs(api: PrefectAPI) -> list[AgentRun]:
    """Every attempt not yet handed off: queued, running, or finished awaiting hand-off."""
    found = await api.flow_runs(tags_all=[names.TAG_AGENT_RUN, names.TAG_HANDOFF_PENDING])
    return _agent_runs(found)


async def recent_runs(api: PrefectAPI, limit: int | None = None) -> list[AgentRun]:
    """The latest agent runs (by expected start, newest first), up to `limit` (None = all)."""
    return _agent_runs(await api.flow_runs(tags_all=[names.TAG_AGENT_RUN], limit=limit))


# Issues per history query. The database answers even 1,000 tags in milliseconds (PostgreSQL `?|`,
# SQLite `json_each ... IN`, well under its 32,766 variables), while each request costs a busy
# server a second or more: at 1,000 open issues, batches of 100 made a scan's history read 24 s.
HISTORY_BATCH = 1000


async def runs_for_issues(api: PrefectAPI, issue_refs: Iterable[str]) -> list[AgentRun]:
    """The full recorded history of the given issues (`acme/api#7`), in batches."""
    refs = sorted(set(issue_refs))
    runs: list[AgentRun] = []
    for start in range(0, len(refs), HISTORY_BATCH):
        batch = [f"issue:{ref}" for ref in refs[start : start + HISTORY_BATCH]]
        runs.extend(_agent_runs(await api.flow_runs(tags_all=[names.TAG_AGENT_RUN], tags_any=batch)))
    return runs


async def run_by_key(api: PrefectAPI, keys: Iterable[str]) -> dict[str, AgentRun]:
    """Runs already created for these idempotency keys, by key."""
    wanted = list(keys)
    if not wanted:
        return {}
    found = await api.flow_runs(idempotency_keys=wanted)
    by_key: dict[str, AgentRun] = {}
    for flow_run in found:
        run = to_agent_run(flow_run)
        if run is not None and flow_run.idempotency_key:
            by_key[flow_run.idempotency_key] = run
    return by_key


def parameters_for(dispatch: Dispatch) -> dict[str, Any]:
    """The agent flow's parameters: identities only, never a secret (invariant 5)."""
    return {
        "repo": dispatch.issue.repo.full_name,
        "issue": dispatch.issue.number,
        "kind": dispatch.kind.value,
        "agent": dispatch.agent,
        "attempt": dispatch.attempt,
        "pr": dispatch.pr,
    }


async def submit(
    api: PrefectAPI, dispatch: Dispatch, job_variables: dict[str, Any] | None = None
) -> AgentRun:
    """Create the agent run for a dispatch; idempotent per (repo, issue, kind, attempt).

    `job_variables` are the run's additions to the pool's job template (Kubernetes: its Job's
    name, labels and workspace sub-path).
    """
    repo, issue = dispatch.issue.repo, dispatch.issue.number
    flow_run = await api.create_flow_run(
        AGENT_DEPLOYMENT,
        parameters=parameters_for(dispatch),
        name=names.run_name(repo, issue, dispatch.kind, dispatch.agent),
        tags=names.run_tags(repo, issue, dispatch.kind, dispatch.agent, dispatch.attempt),
        idempotency_key=names.idempotency_key(repo, issue, dispatch.kind, dispatch.attempt),
        job_variables=job_variables,
    )
    run = to_agent_run(flow_run)
    assert run is not None  # we just tagged it
    return run


async def mark_handed_off(api: PrefectAPI, run: AgentRun, outcome: Outcome) -> None:
    """Record the verified outcome on the run; after this no pass applies it again."""
    await api.set_tags(run.id, names.handed_off_tags(run.tags, outcome.value))


def peak_concurrency(recorded: Iterable[AgentRun]) -> int:
    """The most runs that were ever running at the same moment (from start and end times)."""
    edges: list[tuple[datetime, int]] = []
    for run in recorded:
        if run.started_at and run.ended_at:
            edges += [(run.started_at, 1), (run.ended_at, -1)]
    # At equal timestamps an end sorts before a start: back-to-back runs do not overlap.
    edges.sort()
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak
