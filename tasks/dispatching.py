"""The dispatcher's reads and writes as Prefect tasks: thin wrappers that return what they did.

Reads gather facts through `k3sc.evidence`; writes carry out one decision of `k3sc.decide` each.
Nothing here decides: every branch on workflow state lives in the core. Each write is idempotent
per attempt (invariant 1): a claim is recorded as an intent before its label write, agent runs
carry permanent idempotency keys, comments carry a marker, and a run is marked handed off only
after its labels are right, so a dispatcher killed at any line finishes what it began.
Retries are the adapters' (`k3sc.retrying`); tasks add none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from k3sc import decide, evidence, names
from k3sc.config import format_duration
from k3sc.errors import Conflict, K3scError
from k3sc.leases import Lease
from k3sc.models import AgentRun, Intent
from k3sc.orchestration import chain, controls, dispatch_state, runs
from k3sc.orchestration.dispatch_state import DispatchState
from k3sc.workflow import Dispatch
from tasks.context import Services


def now() -> datetime:
    return datetime.now(UTC)


def job_variables(svc: Services, dispatch: Dispatch) -> dict[str, Any] | None:
    """Per-run additions to the agent pool's job template: the Job's name, labels and sub-path."""
    if svc.config.agent.pool != "kubernetes":
        return None
    from k3sc.kube import jobs

    issue = dispatch.issue
    return jobs.run_job_variables(issue.repo, issue.number, dispatch.kind, dispatch.agent, dispatch.attempt)


# --------------------------------------------------------------------------- reading


@task(name="gather-facts", cache_policy=NO_CACHE)
async def gather(svc: Services, memory: DispatchState, held: frozenset[str]) -> decide.Facts:
    """Operator controls, intents, GitHub's snapshot, the run history, the evidence of finished attempts."""
    return await evidence.gather(svc.gh, svc.api, svc.config, memory, held=held)


# --------------------------------------------------------------------------- writing


@task(name="submit-recovered", cache_policy=NO_CACHE, task_run_name="recover {recovery.intent.key}")
async def submit_recovered(svc: Services, recovery: decide.Recovery) -> AgentRun:
    """Submit the run of a claim that landed before its dispatcher died (same idempotency key)."""
    assert recovery.dispatch is not None
    run = await runs.submit(svc.api, recovery.dispatch, job_variables(svc, recovery.dispatch))
    get_run_logger().info("%s: %s", recovery.intent.issue_key, recovery.reason)
    return run


@task(
    name="hand-off",
    cache_policy=NO_CACHE,
    task_run_name="hand-off {decision.run.issue_key} {decision.run.kind}",
)
async def hand_off(svc: Services, decision: decide.HandOff) -> str:
    """Comment (once), write the decided labels, then record the outcome on the run; the log line."""
    run, verdict = decision.run, decision.verdict
    if (hit := decision.park) is not None:
        await controls.park(svc.api, hit)  # before the issue goes back, so no scan re-dispatches to it
    if decision.labels is not None:
        if verdict.transition.comment:
            await svc.gh.comment_once(run.repo, run.issue, decision.comment_key, verdict.transition.comment)
        await svc.gh.set_workflow_labels(run.repo, run.issue, decision.labels)
    await runs.mark_handed_off(svc.api, run, verdict.outcome)
    line = decide.describe_handoff(decision)
    get_run_logger().info(line)
    return line


@task(name="reap-orphan", cache_policy=NO_CACHE, task_run_name="reap {orphan.issue.key}")
async def reap_orphan(svc: Services, orphan: decide.Orphan) -> bool:
    """Hand off an orphaned claim as a lost attempt; False if someone moved the issue first."""
    transition = orphan.transition
    assert transition is not None
    issue = orphan.issue
    if transition.comment:
        await svc.gh.comment_once(issue.repo, issue.number, orphan.comment_key, transition.comment)
    try:
        await svc.gh.set_workflow_labels(issue.repo, issue.number, [transition.label])
    except Conflict as exc:
        get_run_logger().warning("%s: orphan hand-off lost a race: %s", issue.key, exc)
        return False
    get_run_logger().info("%s: orphaned claim by %s → %s", issue.key, orphan.owner, transition.label)
    return True


@task(name="expire-lease", cache_policy=NO_CACHE, task_run_name="expire lease {lease.pr_key}")
async def expire_lease(svc: Services, lease: Lease) -> str:
    """Remove an expired review lease: its records, then the worker's owner label on the PR."""
    await controls.drop_lease(svc.api, lease)
    await svc.gh.release_pull(lease.repo, lease.pr, lease.worker)
    line = f"{lease.pr_key}: review lease of {lease.worker} expired; removed"
    get_run_logger().info(line)
    return line


@task(name="reap-stuck-run", cache_policy=NO_CACHE, task_run_name="reap stuck {stuck.run.issue_key}")
async def reap_stuck(svc: Services, stuck: decide.Stuck) -> str:
    """Crash a run that never started; on Kubernetes say why (ImagePullBackOff…) and delete its Job."""
    run, why = stuck.run, ""
    if svc.config.agent.pool == "kubernetes":
        from k3sc.kube.client import Kube

        async with await Kube.connect(svc.config.namespace) as kube:
            problem = await kube.start_problem(run.id)
            await kube.delete_run_jobs(run.id)
        why = f": {problem}" if problem else ""
    timeout = format_duration(svc.config.agent.start_timeout)
    message = f"never started: still pending after {timeout} (agent.start_timeout){why}"
    await svc.api.set_state(run.id, "CRASHED", message=message, force=True)
    line = f"{run.issue_key} {run.kind.value} attempt {run.attempt} by {run.agent}: {message}"
    get_run_logger().warning(line)
    return line


class Claim(StrEnum):
    """How a claim-and-submit ended; the intent is dropped only when nothing is left in flight."""

    SUBMITTED = "submitted"  # labelled and run created
    LOST = "lost"  # someone else moved the issue first; nothing of ours on it
    UNCERTAIN = "uncertain"  # the label write may or may not have landed
    UNSUBMITTED = "unsubmitted"  # labelled, run not created yet

    @property
    def settled(self) -> bool:
        return self in (Claim.SUBMITTED, Claim.LOST)


@dataclass(frozen=True)
class Claimed:
    intent: Intent
    result: Claim
    detail: str


def intent_for(dispatch: Dispatch) -> Intent:
    issue = dispatch.issue
    return Intent(
        key=names.idempotency_key(issue.repo, issue.number, dispatch.kind, dispatch.attempt),
        repo=issue.repo.full_name,
        issue=issue.number,
        kind=dispatch.kind.value,
        agent=dispatch.agent,
        attempt=dispatch.attempt,
        origin=dispatch.origin.value,
        pr=dispatch.pr,
    )


@task(name="claim-and-submit", cache_policy=NO_CACHE,
      task_run_name="claim {dispatch.issue.key} {dispatch.agent}")  # fmt: skip
async def claim_and_submit(svc: Services, dispatch: Dispatch, memory: DispatchState) -> Claimed:
    """Record the intent, claim on GitHub, submit the agent run (idempotent per attempt)."""
    log = get_run_logger()
    issue, intent = dispatch.issue, intent_for(dispatch)
    await dispatch_state.save(svc.api, memory.model_copy(update={"intents": [*memory.intents, intent]}))
    try:
        await svc.gh.claim(issue.repo, issue.number, dispatch.agent, dispatch.origin)
    except Conflict as exc:
        log.info("%s: not claimed: %s", issue.key, exc)
        return Claimed(intent, Claim.LOST, str(exc))
    except K3scError as exc:
        log.warning("%s: claim failed: %s", issue.key, exc)
        return Claimed(intent, Claim.UNCERTAIN, str(exc))
    try:
        run = await runs.submit(svc.api, dispatch, job_variables(svc, dispatch))
    except K3scError as exc:
        log.warning("%s: claimed but not submitted yet: %s", issue.key, exc)
        return Claimed(intent, Claim.UNSUBMITTED, str(exc))
    line = decide.describe_dispatch(dispatch)
    log.info("%s run %s", line, run.id)
    return Claimed(intent, Claim.SUBMITTED, line)


# --------------------------------------------------------------------------- the chain


@task(name="schedule-next-scan", cache_policy=NO_CACHE)
async def schedule_next_scan(
    svc: Services, memory: DispatchState, own_run_id: str, due: datetime, *, move: bool
) -> DispatchState:
    """Make sure exactly one scheduled scan follows this run (`chain.ensure_successor`)."""
    link = await chain.ensure_successor(svc.api, memory.chain_run_id, own_run_id, due, move=move)
    if link.action != "kept":
        get_run_logger().info("next scan %s for %s", link.action, due.strftime("%H:%M:%S"))
    return memory.model_copy(update={"chain_run_id": link.run_id, "next_due": link.due})


@task(name="look-for-missed-triggers", cache_policy=NO_CACHE)
async def missed_triggers(svc: Services, since: datetime, held: frozenset[str]) -> bool:
    return await chain.missed_triggers(svc.api, svc.config, since, held)
