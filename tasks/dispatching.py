"""The dispatcher's steps as Prefect tasks: thin wrappers that gather facts, ask the core, and act.

Each step is idempotent per attempt (invariant 1): claims are recorded as intents before the
label write, agent runs carry permanent idempotency keys, labels are written only while the
issue still carries the run's owner label, and a run is marked handed off only after its
labels are right. A dispatcher killed at any line and started again finishes what it began
and never repeats a side effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from k3sc import backoff, handoff, labels, names, workflow
from k3sc.errors import Conflict, K3scError, NotFound, OrchestrationError
from k3sc.github import outcomes
from k3sc.labels import Kind, State
from k3sc.models import AgentRun, Issue, Outcome, Pull, Repo
from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.dispatch_state import DispatchState, Intent
from k3sc.workflow import Dispatch, History
from tasks.context import Services

# Issue states whose decisions depend on run history (eligibility, attempts, implementer, orphans).
_HISTORY_STATES = frozenset({State.READY, State.NEEDS_REVIEW, State.OWNED, State.INCONSISTENT})

# Marker in every comment k3sc posts for a hand-off, so a re-run never posts it twice.
COMMENT_MARKER = "<!-- k3sc:{key} -->"

# Successors one dispatch run may create before giving up (each replaces one cancelled under it).
MAX_SUCCESSORS = 5


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Report:
    """What one dispatch run did, for the operator log, the artifact and the return value."""

    handed_off: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_handoffs: set[str] = field(default_factory=set)
    active_runs: int = 0
    next_due: datetime | None = None
    paused: bool = False

    @property
    def busy(self) -> bool:
        """Work happened or is in flight: the next scan comes at the minimum interval."""
        return bool(self.handed_off or self.dispatched or self.orphans or self.recovered or self.active_runs)

    def summary(self) -> dict[str, Any]:
        return {
            "handed_off": self.handed_off,
            "dispatched": self.dispatched,
            "skipped": [{"issue": i, "reason": r} for i, r in self.skipped],
            "orphans": self.orphans,
            "recovered": self.recovered,
            "errors": self.errors,
            "active_runs": self.active_runs,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "paused": self.paused,
        }


@dataclass(frozen=True)
class Snapshot:
    """GitHub as one pass saw it: workflow issues and open PRs of the configured repos."""

    issues: tuple[Issue, ...]
    pulls: tuple[Pull, ...]
    failures: tuple[str, ...] = ()

    def pull_for(self, repo: Repo, branch: str) -> Pull | None:
        return next((p for p in self.pulls if p.repo.key == repo.key and p.branch == branch), None)

    def with_labels(self, key: str, new_labels: tuple[str, ...]) -> Snapshot:
        """The snapshot after our own label write (so intake in the same pass sees it)."""
        issues = tuple(i.with_labels(new_labels) if i.key == key else i for i in self.issues)
        return Snapshot(issues, self.pulls, self.failures)


# --------------------------------------------------------------------------- reading


@task(name="scan-github", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
async def scan_github(svc: Services) -> Snapshot:
    """Every workflow issue and open PR of the configured repos (paginated, conditional)."""
    repos = [r.repo for r in svc.config.repos]
    issues = await svc.gh.workflow_issues(repos)
    pulls = await svc.gh.open_pulls(repos)
    failures = tuple(f"{f.repo}: {f.error}" for f in (*issues.failures, *pulls.failures))
    return Snapshot(issues.items, pulls.items, failures)


@task(name="read-agent-runs", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
async def read_agent_runs(svc: Services, snapshot: Snapshot) -> list[AgentRun]:
    """Runs still pending hand-off, plus the whole history of every issue in the snapshot.

    Only runs of configured repositories count: a repo dropped from the config is no longer ours
    to hand off (its pending runs stay pending until it is configured again). History is read
    only for issues a decision depends on (`needs-human` ones are done), to spare the server.
    """
    pending = await runs.pending_runs(svc.api)
    relevant = [i.key for i in snapshot.issues if workflow.read_labels(i.labels).state in _HISTORY_STATES]
    history = await runs.runs_for_issues(svc.api, relevant)
    by_id = {r.id: r for r in (*history, *pending) if svc.config.repo_config(r.repo) is not None}
    return sorted(by_id.values(), key=lambda r: r.created_at)


# --------------------------------------------------------------------------- crash recovery


@task(name="recover-intents", cache_policy=NO_CACHE)
async def recover_intents(svc: Services, state: DispatchState, report: Report) -> DispatchState:
    """Finish claims a killed dispatcher left half-done: submit the run, or forget the intent."""
    if not state.intents:
        return state
    log = get_run_logger()
    existing = await runs.run_by_key(svc.api, [i.key for i in state.intents])
    kept: list[Intent] = []
    for intent in state.intents:
        if intent.key in existing:
            continue  # the run was created; only the bookkeeping was lost
        repo = Repo.parse(intent.repo)
        if svc.config.repo_config(repo) is None:
            continue  # no longer watched: nothing of ours to finish there
        try:
            current = await svc.gh.get_issue(repo, intent.issue)
        except NotFound:
            continue
        except K3scError as exc:
            log.warning("%s#%s: cannot settle an unfinished claim yet: %s", repo, intent.issue, exc)
            kept.append(intent)
            continue
        owner = workflow.read_labels(current.labels).owner
        if current.open and owner == intent.agent:
            dispatch = Dispatch(current.issue, Kind(intent.kind), intent.agent, intent.attempt, intent.pr)
            await runs.submit(svc.api, dispatch)
            report.recovered.append(f"{repo}#{intent.issue}")
            log.info("%s#%s: finished a claim by %s, submitted attempt %s", repo, intent.issue, intent.agent,
                     intent.attempt)  # fmt: skip
    state = state.model_copy(update={"intents": kept})
    await dispatch_state.save(svc.api, state)
    return state


# --------------------------------------------------------------------------- hand-off


async def _comment_once(svc: Services, repo: Repo, number: int, key: str, body: str) -> None:
    marker = COMMENT_MARKER.format(key=key)
    for comment in await svc.gh.comments(repo, number):
        if marker in comment.body:
            return
    await svc.gh.comment(repo, number, f"{body}\n\n{marker}")


@task(name="hand-off", cache_policy=NO_CACHE, task_run_name="hand-off {run.agent} {run.kind}")
async def hand_off(
    svc: Services, run: AgentRun, history: History, report: Report
) -> tuple[AgentRun, tuple[str, ...] | None]:
    """Verify a finished attempt, move its issue on, and record the outcome on the run.

    Returns the run as now recorded (handed off, with its outcome) and the issue's labels after
    our write, or None if we wrote nothing.
    """
    log = get_run_logger()
    config = svc.config
    evidence = await outcomes.evidence(svc.gh, run, config.safety.branch_for(run.issue))
    try:
        current = await svc.gh.get_issue(run.repo, run.issue)
        issue_labels: tuple[str, ...] | None = current.labels
        is_open = current.open
    except NotFound:
        issue_labels, is_open = None, False
    prior = history.failures(since=now() - config.scan.task_ttl)
    decision = handoff.decide(run, evidence, issue_labels, is_open, prior, history.errors(run.kind))
    written: tuple[str, ...] | None = None
    if decision.write_labels:
        if decision.transition.comment:
            await _comment_once(svc, run.repo, run.issue, f"handoff:{run.id}", decision.transition.comment)
        written = await svc.gh.set_workflow_labels(run.repo, run.issue, [decision.transition.label])
    await runs.mark_handed_off(svc.api, run, decision.outcome)
    verb = {Outcome.SUCCESS: "succeeded", Outcome.FAILURE: "failed", Outcome.ERROR: "never started"}[
        decision.outcome
    ]
    where = f"→ {decision.transition.label}" if decision.write_labels else f"({decision.note})"
    line = f"{run.repo}#{run.issue} {run.kind.value} by {run.agent} {verb}: {decision.reason} {where}"
    log.info(line)
    report.handed_off.append(line)
    recorded = replace(
        run,
        handed_off=True,
        outcome=decision.outcome,
        tags=tuple(names.handed_off_tags(run.tags, decision.outcome)),
    )
    return recorded, written


# --------------------------------------------------------------------------- orphans


@task(name="reap-orphans", cache_policy=NO_CACHE)
async def reap_orphans(
    svc: Services, snapshot: Snapshot, all_runs: list[AgentRun], state: DispatchState, report: Report
) -> tuple[Snapshot, DispatchState]:
    """Issues held by one of our slot labels with no run behind them, past a grace period."""
    log = get_run_logger()
    histories = workflow.histories(all_runs)
    intended = {f"{i.repo.lower()}#{i.issue}" for i in state.intents}
    grace = svc.config.scan.orphan_grace
    seen = dict(state.orphans_seen)
    current_keys: set[str] = set()
    for issue in snapshot.issues:
        owner = workflow.read_labels(issue.labels).owner
        if owner is None or not labels.is_slot_owner(owner) or issue.key in intended:
            continue
        if histories.get(issue.key, History()).active is not None:
            continue
        current_keys.add(issue.key)
        first = seen.setdefault(issue.key, now())
        if now() - first < grace:
            log.info("%s: claimed by %s with no run; orphan if still so after %s", issue.key, owner, grace)
            continue
        has_pr = snapshot.pull_for(issue.repo, svc.config.safety.branch_for(issue.number)) is not None
        transition = handoff.orphan_transition(has_pr, owner)
        if transition.comment:
            await _comment_once(svc, issue.repo, issue.number, f"orphan:{owner}:{first.isoformat()}",
                                transition.comment)  # fmt: skip
        try:
            written = await svc.gh.set_workflow_labels(issue.repo, issue.number, [transition.label])
        except Conflict as exc:
            log.warning("%s: orphan hand-off lost a race: %s", issue.key, exc)
            continue
        snapshot = snapshot.with_labels(issue.key, written)
        line = f"{issue.key}: orphaned claim by {owner} → {transition.label}"
        log.info(line)
        report.orphans.append(line)
        current_keys.discard(issue.key)
    state = state.model_copy(update={"orphans_seen": {k: v for k, v in seen.items() if k in current_keys}})
    return snapshot, state


# --------------------------------------------------------------------------- intake


@task(name="claim-and-submit", cache_policy=NO_CACHE,
      task_run_name="claim {dispatch.issue.repo}#{dispatch.issue.number} {dispatch.agent}")  # fmt: skip
async def claim_and_submit(
    svc: Services, dispatch: Dispatch, state: DispatchState, report: Report
) -> DispatchState:
    """Record the intent, claim on GitHub, submit the agent run (idempotent per attempt)."""
    log = get_run_logger()
    issue = dispatch.issue
    origin = workflow.read_labels(issue.labels).state
    key = names.idempotency_key(issue.repo, issue.number, dispatch.kind, dispatch.attempt)
    intent = Intent(
        key=key,
        repo=issue.repo.full_name,
        issue=issue.number,
        kind=dispatch.kind.value,
        agent=dispatch.agent,
        attempt=dispatch.attempt,
        pr=dispatch.pr,
        origin=origin.value,
    )
    state = state.model_copy(update={"intents": [*state.intents, intent]})
    await dispatch_state.save(svc.api, state)
    done = state.model_copy(update={"intents": [i for i in state.intents if i.key != key]})
    try:
        await svc.gh.claim(issue.repo, issue.number, dispatch.agent, State(origin))
    except Conflict as exc:
        log.info("%s: not claimed: %s", issue.key, exc)
        report.skipped.append((issue.key, f"claim lost: {exc}"))
        return done
    except K3scError as exc:
        # The claim may or may not have landed: keep the intent, the next pass settles it.
        log.warning("%s: claim failed: %s", issue.key, exc)
        report.errors.append(f"{issue.key}: claim failed: {exc}")
        return state
    try:
        run = await runs.submit(svc.api, dispatch)
    except K3scError as exc:
        log.warning("%s: claimed but not submitted yet: %s", issue.key, exc)
        report.errors.append(f"{issue.key}: submit failed: {exc}")
        return state
    pr = f" PR #{dispatch.pr}" if dispatch.pr else ""
    what = f"{dispatch.kind.value} → {dispatch.agent} (attempt {dispatch.attempt}{pr})"
    line = f"{issue.repo}#{issue.number} {what}"
    log.info("%s run %s", line, run.id)
    report.dispatched.append(line)
    return done


# --------------------------------------------------------------------------- the self-scheduling chain


@task(name="schedule-next-scan", cache_policy=NO_CACHE)
async def schedule_next_scan(
    svc: Services, state: DispatchState, own_run_id: str, due: datetime, *, move: bool
) -> DispatchState:
    """Make sure exactly one scheduled scan follows this run, at `due` if `move`.

    Called first thing (so a crash mid-scan never breaks the chain) with the pessimistic due
    time, and again at the end with the real one. The key `k3sc-next-after-<run id>` makes the
    successor idempotent; an existing scheduled successor is reused, never doubled. A successor
    that is no longer scheduled (it came due while this run was still going and the concurrency
    limit cancelled it) is replaced under the next key, `k3sc-next-after-<run id>/2` and so on.
    """
    log = get_run_logger()
    if state.chain_run_id and state.chain_run_id != own_run_id:
        chain = await svc.api.flow_run(state.chain_run_id)
        if chain and _state_type(chain) == "SCHEDULED":
            if move and await _move(svc, chain, due):
                log.info("next scan moved to %s", due.strftime("%H:%M:%S"))
            return state.model_copy(update={"next_due": due if move else _scheduled_time(chain)})
    for generation in range(1, MAX_SUCCESSORS + 1):
        suffix = "" if generation == 1 else f"/{generation}"
        created = await svc.api.create_flow_run(
            runs.DISPATCH_DEPLOYMENT,
            parameters={"force": False},
            name=f"scan at {due:%H:%M:%S}",
            tags=["k3sc", "k3sc-chain"],
            idempotency_key=f"k3sc-next-after-{own_run_id}{suffix}",
            scheduled_time=due,
        )
        if _state_type(created) == "SCHEDULED":
            break
    else:
        raise OrchestrationError(
            f"could not schedule the next scan: {MAX_SUCCESSORS} successors of run {own_run_id} "
            "were cancelled or started before this run ended"
        )
    if move:
        await _move(svc, created, due)  # a repeated key returns the successor with its first time
    log.info("next scan scheduled for %s", due.strftime("%H:%M:%S"))
    return state.model_copy(update={"chain_run_id": str(created["id"]), "next_due": due})


def _state_type(flow_run: dict[str, Any]) -> str | None:
    value = (flow_run.get("state") or {}).get("type")
    return str(value) if value else None


async def _move(svc: Services, flow_run: dict[str, Any], due: datetime) -> bool:
    """Reschedule a scheduled run to `due` unless it is already there (to the second)."""
    scheduled = _scheduled_time(flow_run)
    if scheduled is None or abs((scheduled - due).total_seconds()) <= 1:
        return False
    await svc.api.set_state(flow_run["id"], "SCHEDULED", scheduled_time=due, force=True)
    return True


def _scheduled_time(flow_run: dict[str, Any]) -> datetime | None:
    details = (flow_run.get("state") or {}).get("state_details") or {}
    return runs.parse_time(details.get("scheduled_time") or flow_run.get("next_scheduled_start_time"))


def next_due(svc: Services, idle_scans: int, at: datetime) -> datetime:
    scan = svc.config.scan
    return at + backoff.interval(idle_scans, scan.min_interval, scan.max_interval)
