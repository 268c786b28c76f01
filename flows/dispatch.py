"""The dispatcher: one scan of GitHub that moves every issue one step along the label workflow.

    ready ──claim──▶ claude-x ──implemented──▶ needs-review ──claim──▶ codex-y ──reviewed──▶ needs-human
      ▲                  │ failed (< 3 times)
      └──────────────────┘

Deployment `k3sc-dispatch`: never two at once (concurrency 1, CANCEL_NEW). Each run first
makes sure its successor is scheduled (2m while busy, doubling to 1h when idle), then hands
off finished agent runs, reaps orphaned claims and claims new work. Agent runs that end
trigger a forced run (`force=True`), so hand-offs happen in seconds, not at the next scan.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.runtime import flow_run

from k3sc import backoff, workflow
from k3sc.errors import K3scError
from k3sc.orchestration import dispatch_state, runs
from tasks import dispatching as steps
from tasks.context import Services, services

# Triggers that arrive while we scan are cancelled by the concurrency limit (CANCEL_NEW); instead
# of losing them, the running scan notices and takes another pass, up to this many in one run.
MAX_PASSES = 5


@flow(name="k3sc-dispatch", log_prints=False, retries=0)
async def dispatch(force: bool = False) -> dict[str, Any]:
    """Hand off finished runs, reap orphans, claim and submit eligible issues, schedule the next scan."""
    log = get_run_logger()
    own_id = str(flow_run.id)
    report = steps.Report()
    async with services() as svc:
        state = await dispatch_state.load(svc.api)
        started = steps.now()
        idle_before = state.idle_scans
        # Chain first: whatever happens below, a next scan exists.
        pessimistic = steps.next_due(svc, backoff.after_scan(idle_before, busy=False), started)
        state = await steps.schedule_next_scan(svc, state, own_id, pessimistic, move=False)
        report.paused = await dispatch_state.paused(svc.api)
        if report.paused:
            log.info("paused: finished runs are handed off, no new work is claimed")
        try:
            for _ in range(MAX_PASSES):
                pass_started = steps.now()
                state = await one_pass(svc, state, report)
                # Settle the schedule before looking for missed triggers, so a trigger cancelled
                # after the last look can only land in the few milliseconds it takes to return.
                state = await conclude(svc, state, report, own_id, idle_before, started, force=force)
                if not await missed_while_busy(svc, report, pass_started):
                    break
        except BaseException:
            # The pessimistic successor may have come due and been cancelled while this run was
            # still going; make sure one is scheduled before the failure propagates.
            with contextlib.suppress(Exception):
                state = await steps.schedule_next_scan(svc, state, own_id, pessimistic, move=False)
                await dispatch_state.save(svc.api, state)
            raise
        await publish(report, svc)
    log.info(
        "scan done: %d handed off, %d dispatched, %d skipped, %d active; next scan %s",
        len(report.handed_off),
        len(report.dispatched),
        len(report.skipped),
        report.active_runs,
        report.next_due.strftime("%H:%M:%S") if report.next_due else "not scheduled",
    )
    return report.summary()


async def conclude(
    svc: Services,
    state: dispatch_state.DispatchState,
    report: steps.Report,
    own_id: str,
    idle_before: int,
    started: datetime,
    *,
    force: bool,
) -> dispatch_state.DispatchState:
    """Settle the backoff and the successor's time from what this run found, and save the state."""
    busy = report.busy
    # A forced scan that found nothing does not stretch the backoff.
    idle = idle_before if force and not busy else backoff.after_scan(idle_before, busy)
    due = steps.next_due(svc, idle, steps.now())
    state = state.model_copy(update={"idle_scans": idle, "last_scan": started})
    state = await steps.schedule_next_scan(svc, state, own_id, due, move=not force or busy)
    report.next_due = state.next_due
    await dispatch_state.save(svc.api, state)
    return state


async def one_pass(
    svc: Services, state: dispatch_state.DispatchState, report: steps.Report
) -> dispatch_state.DispatchState:
    """Read GitHub and the run history once, then act on what they say."""
    log = get_run_logger()
    state = await steps.recover_intents(svc, state, report)
    snapshot = await steps.scan_github(svc)
    for failure in snapshot.failures:
        log.warning("scan: %s", failure)
        report.errors.append(failure)
    all_runs = await steps.read_agent_runs(svc, snapshot)
    histories = workflow.histories(all_runs)

    for run in [r for r in all_runs if not r.handed_off and not r.phase.active]:
        if run.id in report.failed_handoffs:
            continue
        try:
            recorded, written = await steps.hand_off(
                svc, run, histories.get(run.issue_key, workflow.History()), report
            )
        except K3scError as exc:
            # Left pending: the next scan retries it; one bad run must not stall the others.
            log.warning("%s: hand-off of run %s failed: %s", run.issue_key, run.id, exc)
            report.errors.append(f"{run.issue_key}: hand-off failed: {exc}")
            report.failed_handoffs.add(run.id)
            continue
        all_runs = [recorded if r.id == run.id else r for r in all_runs]
        if written is not None:
            snapshot = snapshot.with_labels(run.issue_key, written)

    snapshot, state = await steps.reap_orphans(svc, snapshot, all_runs, state, report)
    report.active_runs = sum(1 for r in all_runs if r.active)
    if report.paused:
        return state

    plan = workflow.plan(
        snapshot.issues, all_runs, snapshot.pulls, svc.config, now=steps.now(), last_family=state.last_family
    )
    for skip in plan.skips:
        if skip.refusal is not workflow.Refusal.NOT_ACTIONABLE:
            log.info("skip %s: %s (%s)", skip.issue.key, skip.refusal.value, skip.detail)
        report.skipped.append((skip.issue.key, f"{skip.refusal.value}: {skip.detail}"))
    for decision in plan.dispatches:
        state = await steps.claim_and_submit(svc, decision, state, report)
    report.active_runs += len(plan.dispatches)
    return state.model_copy(update={"last_family": plan.last_family})  # saved by conclude()


async def missed_while_busy(svc: Services, report: steps.Report, since: datetime) -> bool:
    """Did anything ask for a scan while this pass ran? Then take another pass now.

    Two signs: an agent run ended and awaits its hand-off, or a dispatch run was cancelled for
    colliding with this one (a label event or an agent's end triggered it, and CANCEL_NEW dropped it).
    """
    pending = await runs.pending_runs(svc.api)
    ours = [r for r in pending if svc.config.repo_config(r.repo) is not None]
    if any(not r.phase.active and r.id not in report.failed_handoffs for r in ours):
        return True
    deployment = await svc.api.deployment_id(runs.DISPATCH_DEPLOYMENT)
    cancelled = await svc.api.flow_runs(deployment_ids=[deployment], state_types=["CANCELLED"], limit=10)
    ended = (runs.parse_time((r.get("state") or {}).get("timestamp") or r["created"]) for r in cancelled)
    return any(when is not None and when >= since for when in ended)


async def publish(report: steps.Report, svc: Services) -> None:
    """The scan summary as a markdown artifact in the Prefect UI."""
    lines = ["# k3sc dispatch", ""]
    if report.paused:
        lines += ["**Paused**: no new work claimed.", ""]
    for title, items in (
        ("Handed off", report.handed_off),
        ("Dispatched", report.dispatched),
        ("Orphaned claims", report.orphans),
        ("Recovered claims", report.recovered),
        ("Errors", report.errors),
    ):
        if items:
            lines += [f"## {title}", "", *[f"- {item}" for item in items], ""]
    interesting = [(i, r) for i, r in report.skipped if not r.startswith("not ready")]
    if interesting:
        lines += [
            "## Skipped",
            "",
            "| issue | reason |",
            "|---|---|",
            *[f"| {i} | {r} |" for i, r in interesting],
            "",
        ]
    due = report.next_due.strftime("%Y-%m-%d %H:%M:%S UTC") if report.next_due else "not scheduled"
    lines += [f"Active agent runs: {report.active_runs}. Next scan: {due}."]
    await acreate_markdown_artifact(
        key="k3sc-dispatch", markdown="\n".join(lines), description="k3sc scan summary"
    )
