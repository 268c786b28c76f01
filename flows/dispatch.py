"""The dispatcher: one scan of GitHub that moves every issue one step along the label workflow.

    ready ──claim──▶ claude-x ──implemented──▶ needs-review ──claim──▶ codex-y ──reviewed──▶ needs-human
      ▲                  │ failed (< 3 times)
      └──────────────────┘

Deployment `k3sc-dispatch`: never two at once (concurrency 1, CANCEL_NEW). A pass gathers the
facts, asks `k3sc.decide` once what to do, and carries it out: finish claims left in flight, hand
off finished attempts, reap orphaned claims, claim and submit new work. Around the passes sits the
self-scheduling chain (`k3sc.orchestration.chain`): the successor is scheduled first thing, settled
at the end, and a trigger that collided with this run is answered by another pass.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import Flow, State, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run

from k3sc import backoff, decide
from k3sc.config import Config
from k3sc.errors import K3scError
from k3sc.orchestration import chain, dispatch_state
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.dispatch_state import DispatchState
from tasks import dispatching as steps
from tasks.context import Services, services

# Triggers that arrive while we scan are cancelled by the concurrency limit (CANCEL_NEW); instead
# of losing them, the running scan notices and takes another pass, up to this many in one run.
MAX_PASSES = 5


@dataclass
class Report:
    """What one dispatch run did, for the operator log, the artifact and the return value."""

    paused: bool = False
    handed_off: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)  # expired review leases removed
    errors: list[str] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # runs whose hand-off failed: left for the next scan
    busy: bool = False
    passes: list[decide.Decisions] = field(default_factory=list)
    next_due: datetime | None = None

    @property
    def last(self) -> decide.Decisions | None:
        return self.passes[-1] if self.passes else None

    def summary(self) -> dict[str, Any]:
        rows = self.last.rows() if self.last else []
        return {
            "decisions": [[asdict(r) for r in p.rows()] for p in self.passes],
            "handed_off": self.handed_off,
            "dispatched": self.dispatched,
            "orphans": self.orphans,
            "recovered": self.recovered,
            "expired_leases": self.leases,
            "errors": self.errors,
            "skipped": [{"issue": r.issue, "reason": r.reason} for r in rows if r.action == "skip"],
            "active_runs": self.last.active_runs if self.last else 0,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "paused": self.paused,
        }


def run_name() -> str:
    """Name a run for why it ran. Runs k3sc creates are named already (`scan at 14:02:11`, `scan now
    (k3sc dispatch)`); runs an automation creates get Prefect's random `adjective-animal` names,
    which say nothing, so those are renamed from their `reason` parameter."""
    current = str(flow_run.name or "")
    if current and not RANDOM_NAME.match(current):
        return current
    reason = str(flow_run.parameters.get("reason") or "trigger")
    return f"scan on {reason} at {datetime.now(UTC):%H:%M:%S}"


# Prefect's generated run names: two lower-case words (`normal-petrel`).
RANDOM_NAME = re.compile(r"^[a-z]+-[a-z]+$")


# When each dispatch run in this process began its last pass, for the hook that runs after it ends.
_LAST_PASS: dict[str, datetime] = {}


async def take_over_late_triggers(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """On completion or failure, with the deployment's slot already freed: scan again for triggers
    the limit cancelled after this run's last look (`chain.take_over_late_triggers`)."""
    run_id = str(flow_run.id)
    since = _LAST_PASS.pop(run_id, None) or flow_run.start_time or datetime.now(UTC)
    async with PrefectAPI.from_env() as api:
        successor = await chain.take_over_late_triggers(api, run_id, since)
    if successor is not None:
        flow_run_logger(flow_run, flow).info("a trigger came as this scan ended: started %s", successor.name)


@flow(
    name="k3sc-dispatch",
    log_prints=False,
    retries=0,
    flow_run_name=run_name,
    on_completion=[take_over_late_triggers],
    on_failure=[take_over_late_triggers],
)
async def dispatch(force: bool = False, reason: str = "") -> dict[str, Any]:
    """Hand off finished runs, reap orphans, claim and submit eligible issues, schedule the next scan.

    `force` marks a scan someone asked for (a trigger, `k3sc dispatch`): one that finds nothing does
    not stretch the idle backoff. `reason` says why it runs, for its name.
    """
    log = get_run_logger()
    own_id = str(flow_run.id)
    async with services() as svc:
        memory = await dispatch_state.load(svc.api)
        started = steps.now()
        idle_before = memory.idle_scans
        # Chain first: whatever happens below, a next scan exists.
        pessimistic = next_due(svc.config, backoff.after_scan(idle_before, busy=False), started)
        memory = await steps.schedule_next_scan(svc, memory, own_id, pessimistic, move=False)
        report = Report()
        try:
            for _ in range(MAX_PASSES):
                pass_started = _LAST_PASS[own_id] = steps.now()
                memory = await one_pass(svc, memory, report)
                # Settle the schedule before looking for missed triggers, so a trigger cancelled
                # after the last look can only land in the few milliseconds it takes to return.
                memory = await conclude(svc, memory, report, own_id, idle_before, started, force=force)
                if not await steps.missed_triggers(svc, pass_started, frozenset(report.held)):
                    break
        except BaseException:
            # The pessimistic successor may have come due and been cancelled while this run was
            # still going; make sure one is scheduled before the failure propagates.
            with contextlib.suppress(Exception):
                memory = await steps.schedule_next_scan(svc, memory, own_id, pessimistic, move=False)
                await dispatch_state.save(svc.api, memory)
            raise
        await publish(report)
    log.info(
        "scan done: %d handed off, %d dispatched, %d orphans, %d active; next scan %s",
        len(report.handed_off),
        len(report.dispatched),
        len(report.orphans),
        report.last.active_runs if report.last else 0,
        report.next_due.strftime("%H:%M:%S") if report.next_due else "not scheduled",
    )
    return report.summary()


async def one_pass(svc: Services, memory: DispatchState, report: Report) -> DispatchState:
    """Gather the facts, decide once, carry the decisions out in the label diagram's order."""
    log = get_run_logger()
    facts = await steps.gather(svc, memory, frozenset(report.held))
    if facts.paused and not report.paused:
        log.info("paused: finished runs are handed off, no new work is claimed")
    report.paused = facts.paused
    for failure in facts.snapshot.failures:
        log.warning("scan: %s", failure)
        report.errors.append(str(failure))
    decisions = decide.decide(facts, svc.config, steps.now())
    report.passes.append(decisions)
    report.busy = report.busy or decisions.busy
    for stuck in decisions.stuck:
        try:
            report.errors.append(await steps.reap_stuck(svc, stuck))
        except K3scError as exc:
            report.errors.append(f"{stuck.run.issue_key}: crashing the stuck run failed: {exc}")
    for lease in decisions.expired:
        try:
            report.leases.append(await steps.expire_lease(svc, lease))
        except K3scError as exc:
            report.errors.append(f"{lease.pr_key}: removing the expired review lease failed: {exc}")
    memory = await recover(svc, decisions, memory, report)
    handoffs_ok = await hand_off(svc, decisions, report)
    memory = await reap(svc, decisions, memory, report)
    for row in decisions.rows():
        if row.action == "skip" and not row.reason.startswith("not ready"):
            log.info("skip %s: %s", row.issue, row.reason)
    if not handoffs_ok and decisions.plan.dispatches:
        # A run whose hand-off failed still holds its slot and agent: plan again in the next pass.
        report.errors.append("claims deferred to the next scan: a hand-off failed")
        return memory
    return await claim(svc, decisions, memory, report)


async def recover(
    svc: Services, decisions: decide.Decisions, memory: DispatchState, report: Report
) -> DispatchState:
    """Submit the runs of claims that landed before a dispatcher died; forget settled intents."""
    kept = decisions.intents_kept
    for recovery in decisions.submissions:
        try:
            await steps.submit_recovered(svc, recovery)
        except K3scError as exc:
            report.errors.append(f"{recovery.intent.issue_key}: recovery failed: {exc}")
            kept.append(recovery.intent)
            continue
        report.recovered.append(recovery.intent.issue_key)
    return memory.model_copy(update={"intents": kept})


async def hand_off(svc: Services, decisions: decide.Decisions, report: Report) -> bool:
    """Carry out every hand-off; one that fails stays pending (retried next scan), the rest go on."""
    ok = True
    for decision in decisions.handoffs:
        try:
            report.handed_off.append(await steps.hand_off(svc, decision))
        except K3scError as exc:
            get_run_logger().warning(
                "%s: hand-off of run %s failed: %s", decision.run.issue_key, decision.run.id, exc
            )
            report.errors.append(f"{decision.run.issue_key}: hand-off failed: {exc}")
            report.held.add(decision.run.id)
            ok = False
    return ok


async def reap(
    svc: Services, decisions: decide.Decisions, memory: DispatchState, report: Report
) -> DispatchState:
    """Hand off orphaned claims past their grace; one not reaped keeps its first sighting."""
    seen = dict(decisions.orphans_seen)
    for orphan in decisions.reaped:
        try:
            reaped = await steps.reap_orphan(svc, orphan)
        except K3scError as exc:
            report.errors.append(f"{orphan.issue.key}: orphan hand-off failed: {exc}")
            reaped = False
        if reaped:
            report.orphans.append(f"{orphan.issue.key}: orphaned claim by {orphan.owner}")
        else:
            seen[orphan.issue.key] = orphan.first_seen
    return memory.model_copy(update={"orphans_seen": seen})


async def claim(
    svc: Services, decisions: decide.Decisions, memory: DispatchState, report: Report
) -> DispatchState:
    """Claim and submit each planned dispatch; an unsettled claim stays an intent for the next pass."""
    for dispatch in decisions.plan.dispatches:
        claimed = await steps.claim_and_submit(svc, dispatch, memory)
        if claimed.result is steps.Claim.SUBMITTED:
            report.dispatched.append(claimed.detail)
        elif not claimed.result.settled:
            memory = memory.model_copy(update={"intents": [*memory.intents, claimed.intent]})
            report.errors.append(f"{dispatch.issue.key}: claim {claimed.result.value}: {claimed.detail}")
    return memory.model_copy(update={"last_family": decisions.plan.last_family})  # saved by conclude()


async def conclude(
    svc: Services,
    memory: DispatchState,
    report: Report,
    own_id: str,
    idle_before: int,
    started: datetime,
    *,
    force: bool,
) -> DispatchState:
    """Settle the backoff and the successor's time from what this run found, and save the memory."""
    busy = report.busy
    # A forced scan that found nothing does not stretch the backoff.
    idle = idle_before if force and not busy else backoff.after_scan(idle_before, busy)
    due = next_due(svc.config, idle, steps.now())
    # A parked family's return is worth a scan: its waiting work starts then, not an hour later.
    wake = report.last.wake_at if report.last else None
    waking = wake is not None and wake < due
    if wake is not None and waking:
        due = wake
    memory = memory.model_copy(update={"idle_scans": idle, "last_scan": started})
    memory = await steps.schedule_next_scan(svc, memory, own_id, due, move=not force or busy or waking)
    report.next_due = memory.next_due
    await dispatch_state.save(svc.api, memory)
    return memory


def next_due(config: Config, idle_scans: int, at: datetime) -> datetime:
    return at + backoff.interval(idle_scans, config.scan.min_interval, config.scan.max_interval)


async def publish(report: Report) -> None:
    """The scan summary as a markdown artifact in the Prefect UI."""
    await acreate_markdown_artifact(
        key="k3sc-dispatch", markdown=render(report), description="k3sc scan summary"
    )


def render(report: Report) -> str:
    lines = ["# k3sc dispatch", ""]
    if report.paused:
        lines += ["**Paused**: no new work claimed.", ""]
    for title, items in (
        ("Handed off", report.handed_off),
        ("Dispatched", report.dispatched),
        ("Orphaned claims", report.orphans),
        ("Recovered claims", report.recovered),
        ("Expired review leases", report.leases),
        ("Errors", report.errors),
    ):
        if items:
            lines += [f"## {title}", "", *[f"- {item}" for item in items], ""]
    rows = [r for r in (report.last.rows() if report.last else []) if not r.reason.startswith("not ready")]
    if rows:
        lines += ["## Decisions", "", "| issue | action | agent | reason |", "|---|---|---|---|"]
        lines += [f"| {r.issue} | {r.action} | {r.agent or '-'} | {r.reason} |" for r in rows]
        lines.append("")
    if report.last:
        families = ", ".join(f"{family}: {why}" for family, why in report.last.families.items())
        lines += [f"Slots: {report.last.slots}. Families: {families}.", ""]
        held = [f"- {lease.pr_key} by {lease.worker} until {lease.expires_at:%Y-%m-%d %H:%M} UTC"
                for lease in report.last.leases]  # fmt: skip
        if held:
            lines += ["## Review leases", "", *held, ""]
    due = report.next_due.strftime("%Y-%m-%d %H:%M:%S UTC") if report.next_due else "not scheduled"
    active = report.last.active_runs if report.last else 0
    lines += [f"Active agent runs: {active}. Next scan: {due}."]
    return "\n".join(lines)
