"""One pure decision per scan: everything the dispatcher will do in a pass, and why.

The dispatch flow gathers the facts (`Facts`: GitHub's snapshot, the recorded runs, the evidence
of finished attempts, the claims left in flight, the dispatcher's memory), calls `decide` once and
carries out what it returns. `k3sc dispatch --dry-run`, `k3sc scan`, `k3sc up`'s idle check and
the dispatcher's artifact read the same value, so no rule is written twice. The order inside a
pass is the label diagram's:

1. claims a killed dispatcher left half-done are finished or forgotten (`Recovery`);
2. attempts that ended are judged and handed off (`HandOff`);
3. issues held by one of our slot labels with no run behind them are reaped after a grace
   period (`Orphan`);
4. the plan: which eligible issue goes to which agent, and why every other one waits.

Each step sees the labels and runs as the previous steps will leave them: a successful
implementation handed off in this pass is reviewed in the same pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from k3sc import handoff, labels, leases, usage, workflow
from k3sc.config import Config
from k3sc.labels import Kind
from k3sc.leases import Lease
from k3sc.models import AgentRun, Intent, Issue, Outcome, Repo, RunPhase, Snapshot
from k3sc.usage import LimitHit, UsageRecord, Window
from k3sc.workflow import Dispatch, History, Plan, Refusal, Transition, Unavailable

# How long a family rests after a usage limit whose CLI gave no reset time.
PARK_WITHOUT_RESET = timedelta(hours=1)

# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Finished:
    """An attempt that ended and awaits its hand-off, with what GitHub shows about it now."""

    run: AgentRun
    evidence: handoff.Evidence
    issue_labels: tuple[str, ...] | None  # None: the issue is gone
    issue_open: bool


@dataclass(frozen=True)
class IntentCheck:
    """A claim left in flight, and what Prefect and GitHub say about it now."""

    intent: Intent
    run_created: bool  # a run exists under the intent's idempotency key
    issue: Issue | None = None  # the issue as GitHub has it; None when gone or unread
    issue_open: bool = False
    unreadable: str | None = None  # GitHub could not be asked; the intent is kept for later


@dataclass(frozen=True)
class Facts:
    """Everything one pass decides on."""

    snapshot: Snapshot
    runs: tuple[AgentRun, ...]  # of configured repos: pending ones and the history of relevant issues
    finished: tuple[Finished, ...] = ()
    intents: tuple[IntentCheck, ...] = ()
    orphans_seen: Mapping[str, datetime] = field(default_factory=dict)
    last_family: str | None = None
    paused: bool = False
    # Runs whose hand-off failed earlier in this dispatch run: left pending, holding their slot.
    held: frozenset[str] = frozenset()
    leases: tuple[Lease, ...] = ()
    disabled: Mapping[str, str] = field(default_factory=dict)  # family → who disabled it and when
    parks: tuple[LimitHit, ...] = ()  # usage limits families hit, with their reset times
    spent_today: tuple[UsageRecord, ...] = ()  # today's runs' usage (the daily ledger)
    max_slots: int | None = None  # `k3sc scale`'s value, when set


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Recovery:
    """What to do with a claim left in flight: submit its run (`dispatch`), keep it, or forget it."""

    intent: Intent
    dispatch: Dispatch | None
    keep: bool
    reason: str


@dataclass(frozen=True)
class HandOff:
    """A finished attempt judged: its outcome, the labels to write, and the comment (if any)."""

    run: AgentRun
    verdict: handoff.Handoff

    @property
    def comment_key(self) -> str:
        """Marks the hand-off comment so a re-run never posts it twice."""
        return f"handoff:{self.run.id}"

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The workflow labels to write, or None when the issue is no longer this run's."""
        return (self.verdict.transition.label,) if self.verdict.write_labels else None

    @property
    def park(self) -> LimitHit | None:
        """The usage limit the run hit, with a reset time: its family rests until then."""
        if self.verdict.outcome is not Outcome.PARKED:
            return None
        hit = LimitHit.decode(self.run.message) or LimitHit(
            self.run.family, None, None, Window.UNKNOWN, "usage limit"
        )
        if hit.resets_at is None:
            # The CLI said no time: rest a while, then let one run find out.
            hit = dataclasses.replace(
                hit, resets_at=(self.run.ended_at or self.run.created_at) + PARK_WITHOUT_RESET
            )
        return hit


@dataclass(frozen=True)
class Orphan:
    """An issue held by one of our slot labels with no run behind it.

    `transition` is None while the grace period runs (the claim may still be in flight somewhere);
    after it, the issue is handed off as a lost attempt.
    """

    issue: Issue
    owner: str
    first_seen: datetime
    transition: Transition | None

    @property
    def comment_key(self) -> str:
        return f"orphan:{self.owner}:{self.first_seen.isoformat()}"


@dataclass(frozen=True)
class Stuck:
    """A run handed to its infrastructure that never started (an image that cannot be pulled, a
    pod nobody schedules): crashed after `agent.start_timeout`, so it is retried as never-started."""

    run: AgentRun
    since: datetime


@dataclass(frozen=True)
class Row:
    """One line of what a pass does, for the dry run, the artifact and the dashboards."""

    issue: str
    action: (
        str  # recover | keep-intent | forget-intent | hand-off | orphan | watch | implement | review | skip
    )
    agent: str | None
    reason: str
    attempt: int | None = None
    pr: int | None = None


@dataclass(frozen=True)
class Decisions:
    """Everything one pass will do, in order, and the dispatcher memory it leaves behind."""

    recoveries: tuple[Recovery, ...]
    handoffs: tuple[HandOff, ...]
    orphans: tuple[Orphan, ...]
    plan: Plan
    paused: bool
    orphans_seen: dict[str, datetime]
    active_runs: int  # runs holding a slot once this pass is carried out
    expired: tuple[Lease, ...] = ()  # review leases past their time: removed with their PR labels
    stuck: tuple[Stuck, ...] = ()  # runs pending past agent.start_timeout: crashed, retried
    leases: tuple[Lease, ...] = ()  # live review leases
    families: dict[str, str] = field(default_factory=dict)  # family → "available" or why not
    slots: int = 0  # the capacity planned with
    pool: str = "process"  # where agent runs execute: process | kubernetes
    wake_at: datetime | None = None  # when the first parked family comes back; scan no later
    resumes_soon: bool = False  # a park ends within scan.min_interval: more work is coming

    @property
    def intents_kept(self) -> list[Intent]:
        return [r.intent for r in self.recoveries if r.keep]

    @property
    def submissions(self) -> list[Recovery]:
        return [r for r in self.recoveries if r.dispatch is not None]

    @property
    def reaped(self) -> list[Orphan]:
        return [o for o in self.orphans if o.transition is not None]

    @property
    def busy(self) -> bool:
        """Work happens now or is in flight: the next scan comes at the shortest interval."""
        return bool(
            self.handoffs or self.reaped or self.submissions or self.plan.dispatches or self.active_runs
        )

    @property
    def settled(self) -> bool:
        """Nothing to do now and nothing pending: no hand-off, claim, orphan or dispatch."""
        return not (
            self.recoveries
            or self.handoffs
            or self.orphans
            or self.plan.dispatches
            or self.active_runs
            or self.expired
            or self.resumes_soon
        )

    def controls(self) -> dict[str, Any]:
        """What an operator has set, as the dispatcher sees it: pause, slots, families, leases."""
        return {
            "paused": self.paused,
            "pool": self.pool,
            "slots": self.slots,
            "families": self.families,
            "leases": [
                {"pr": lease.pr_key, "issue": lease.issue_key, "worker": lease.worker,
                 "expires_at": lease.expires_at.isoformat()}
                for lease in self.leases
            ],
        }  # fmt: skip

    def rows(self) -> list[Row]:
        return [
            *(_lease_row(lease) for lease in self.expired),
            *(_stuck_row(stuck) for stuck in self.stuck),
            *(_recovery_row(r) for r in self.recoveries),
            *(_handoff_row(h) for h in self.handoffs),
            *(_orphan_row(o) for o in self.orphans),
            *(_plan_row(d) for d in self.plan.decisions),
        ]


# --------------------------------------------------------------------------- the decision


def decide(facts: Facts, config: Config, now: datetime) -> Decisions:
    """Decide a whole pass from its facts; pure, so every caller gets the same answer."""
    snapshot, runs = facts.snapshot, list(facts.runs)

    recoveries = tuple(recover(check, config) for check in facts.intents)
    for recovery in recoveries:
        if recovery.dispatch is not None:
            runs.append(_submitted(recovery.dispatch, now))

    handoffs: list[HandOff] = []
    for finished in sorted(facts.finished, key=lambda f: f.run.created_at):
        if finished.run.id in facts.held:
            continue
        decision = hand_off(
            finished, workflow.histories(runs).get(finished.run.issue_key, History()), config, now
        )
        handoffs.append(decision)
        runs = [_handed_off(r, decision.verdict.outcome) if r.id == finished.run.id else r for r in runs]
        if (written := decision.labels) is not None and finished.issue_labels is not None:
            snapshot = snapshot.with_labels(
                finished.run.issue_key, labels.with_workflow(finished.issue_labels, written)
            )

    in_flight = {r.intent.issue_key for r in recoveries if r.keep or r.dispatch is not None}
    orphans = find_orphans(snapshot, runs, in_flight, facts.orphans_seen, config, now)
    for orphan in orphans:
        if orphan.transition is not None:
            new = labels.with_workflow(orphan.issue.labels, [orphan.transition.label])
            snapshot = snapshot.with_labels(orphan.issue.key, new)

    active = sum(1 for r in runs if r.active)
    live = tuple(lease for lease in facts.leases if not lease.expired(now))
    parks = [*facts.parks, *(p for h in handoffs if (p := h.park) is not None)]
    held = usage.admission(list(facts.spent_today), usage.Caps.of(config.budget))
    unavailable = availability(facts.disabled, parks, now, held)
    wake = min((resets for resets, _ in parked_until(parks, now).values()), default=None)
    slots_now = facts.max_slots or config.max_slots
    if facts.paused:
        plan = Plan((), facts.last_family)
    else:
        plan = workflow.plan(
            snapshot.issues,
            runs,
            snapshot.pulls,
            config,
            now=now,
            last_family=facts.last_family,
            max_slots=slots_now,
            reserved=leases.reserved_issues(live, now),
            unavailable=unavailable,
        )
    return Decisions(
        recoveries=recoveries,
        handoffs=tuple(handoffs),
        orphans=orphans,
        plan=plan,
        paused=facts.paused,
        orphans_seen={o.issue.key: o.first_seen for o in orphans if o.transition is None},
        active_runs=active + len(plan.dispatches),
        expired=tuple(lease for lease in facts.leases if lease.expired(now)),
        stuck=tuple(
            Stuck(r, r.pending_since)
            for r in facts.runs
            if r.pending_since is not None and now - r.pending_since >= config.agent.start_timeout
        ),
        leases=live,
        families={
            str(f): unavailable[f].detail if f in unavailable else "available" for f in config.families
        },
        slots=slots_now,
        pool=config.agent.pool,
        wake_at=wake,
        resumes_soon=wake is not None and wake - now <= config.scan.min_interval,
    )


def availability(
    disabled: Mapping[str, str],
    parks: list[LimitHit],
    now: datetime,
    over_budget: Mapping[str, str] | None = None,
) -> dict[str, Unavailable]:
    """Families that may not be dispatched now: disabled by a person, resting at a usage limit,
    or with no room left in today's budget (`usage.admission`).

    A family is parked until the latest reset among its live limit hits (an account's hit parks
    its whole family: k3sc does not route agents to accounts).
    """
    off = {family: Unavailable(Refusal.FAMILY_DISABLED, why) for family, why in disabled.items()}
    for family, (resets, hit) in parked_until(parks, now).items():
        if family not in off:
            detail = f"family parked until {resets.astimezone(UTC):%H:%M} UTC ({hit.window.value} limit)"
            off[family] = Unavailable(Refusal.FAMILY_PARKED, detail)
    for family, why in (over_budget or {}).items():
        off.setdefault(family, Unavailable(Refusal.DAILY_BUDGET, why))
    return off


def parked_until(parks: list[LimitHit], now: datetime) -> dict[str, tuple[datetime, LimitHit]]:
    """Each parked family's return: the latest reset among its live limit hits, with that hit."""
    until: dict[str, tuple[datetime, LimitHit]] = {}
    for hit in parks:
        resets = hit.resets_at
        if resets is not None and resets > now and (hit.family not in until or resets > until[hit.family][0]):
            until[hit.family] = (resets, hit)
    return until


def recover(check: IntentCheck, config: Config) -> Recovery:
    """A claim left in flight: submit its run if the claim landed, else forget it."""
    intent = check.intent
    if check.run_created:
        return Recovery(intent, None, False, "its run was created; only the bookkeeping was lost")
    issue = check.issue
    if _unconfigured(intent, config):
        return Recovery(intent, None, False, "repository no longer configured")
    if check.unreadable is not None:
        return Recovery(intent, None, True, f"cannot read the issue yet: {check.unreadable}")
    if issue is None or not check.issue_open:
        return Recovery(intent, None, False, "issue closed or gone")
    owner = workflow.read_labels(issue.labels).owner
    if owner != intent.agent:
        held = f"held by {owner}" if owner else "unclaimed"
        return Recovery(intent, None, False, f"the claim did not land (issue {held})")
    dispatch = Dispatch(issue, Kind(intent.kind), intent.agent, intent.attempt, intent.pr)
    return Recovery(
        intent, dispatch, False, f"claimed by {intent.agent}, run missing: submit attempt {intent.attempt}"
    )


def hand_off(finished: Finished, history: History, config: Config, now: datetime) -> HandOff:
    """Judge a finished attempt against the issue's history (the failure cap counts within task_ttl)."""
    run = finished.run
    prior = history.failures(since=now - config.scan.task_ttl)
    verdict = handoff.decide(
        run, finished.evidence, finished.issue_labels, finished.issue_open, prior, history.errors(run.kind)
    )
    return HandOff(run, verdict)


def find_orphans(
    snapshot: Snapshot,
    runs: list[AgentRun],
    in_flight: set[str],
    seen: Mapping[str, datetime],
    config: Config,
    now: datetime,
) -> tuple[Orphan, ...]:
    """Issues held by one of our slot labels with no active run and no claim in flight.

    A human-launched agent's label (`claude-1`) is not ours to reap. The grace period starts at the
    first pass that saw the issue so, and restarts once it is no longer an orphan.
    """
    histories = workflow.histories(runs)
    found: list[Orphan] = []
    for issue in snapshot.issues:
        owner = workflow.read_labels(issue.labels).owner
        if owner is None or not labels.is_slot_owner(owner) or issue.key in in_flight:
            continue
        if histories.get(issue.key, History()).active is not None:
            continue
        first = seen.get(issue.key, now)
        if now - first < config.scan.orphan_grace:
            found.append(Orphan(issue, owner, first, None))
            continue
        has_pr = snapshot.pull_for(issue.repo, config.safety.branch_for(issue.number)) is not None
        found.append(Orphan(issue, owner, first, handoff.orphan_transition(has_pr, owner)))
    return tuple(found)


# --------------------------------------------------------------------------- projections


def _unconfigured(intent: Intent, config: Config) -> bool:
    try:
        return config.repo_config(Repo.parse(intent.repo)) is None
    except ValueError:
        return True


def _submitted(dispatch: Dispatch, now: datetime) -> AgentRun:
    """The run a recovered claim is about to get, so it holds its issue and slot in this pass."""
    issue = dispatch.issue
    return AgentRun(
        id=f"pending:{issue.key}/{dispatch.kind.value}/{dispatch.attempt}",
        repo=issue.repo,
        issue=issue.number,
        kind=dispatch.kind,
        agent=dispatch.agent,
        attempt=dispatch.attempt,
        phase=RunPhase.WAITING,
        created_at=now,
        pr=dispatch.pr,
    )


def _handed_off(run: AgentRun, outcome: Outcome) -> AgentRun:
    return dataclasses.replace(run, handed_off=True, outcome=outcome)


# --------------------------------------------------------------------------- rows

_VERBS = {
    Outcome.SUCCESS: "succeeded",
    Outcome.FAILURE: "failed",
    Outcome.ERROR: "never started",
    Outcome.STOPPED: "was stopped",
    Outcome.PARKED: "hit a usage limit",
}


def describe_handoff(decision: HandOff) -> str:
    """One line for the operator log: `acme/api#7 implement by claude-a succeeded: … → needs-review`."""
    run, verdict = decision.run, decision.verdict
    where = f"→ {verdict.transition.label}" if verdict.write_labels else f"({verdict.note})"
    what = f"{run.repo}#{run.issue} {run.kind.value} by {run.agent} {_VERBS[verdict.outcome]}"
    return f"{what}: {verdict.reason} {where}"


def describe_dispatch(dispatch: Dispatch) -> str:
    """One line for the operator log: `acme/api#7 implement → claude-a (attempt 1)`."""
    pr = f" PR #{dispatch.pr}" if dispatch.pr else ""
    issue = dispatch.issue
    what = f"{issue.repo}#{issue.number} {dispatch.kind.value} → {dispatch.agent}"
    return f"{what} (attempt {dispatch.attempt}{pr})"


def _stuck_row(stuck: Stuck) -> Row:
    run = stuck.run
    since = f"{stuck.since:%H:%M:%S} UTC"
    reason = f"{run.kind.value} pending since {since}, past agent.start_timeout: crashed, retried"
    return Row(run.issue_key, "reap-stuck", run.agent, reason, run.attempt)


def _lease_row(lease: Lease) -> Row:
    reason = f"review lease of {lease.worker} expired at {lease.expires_at:%Y-%m-%d %H:%M} UTC: removed"
    return Row(lease.issue_key or lease.pr_key, "expire-lease", lease.worker, reason, pr=lease.pr)


def _recovery_row(recovery: Recovery) -> Row:
    intent = recovery.intent
    action = "recover" if recovery.dispatch else ("keep-intent" if recovery.keep else "forget-intent")
    return Row(intent.issue_key, action, intent.agent, recovery.reason, intent.attempt, intent.pr)


def _handoff_row(decision: HandOff) -> Row:
    run, verdict = decision.run, decision.verdict
    target = f"→ {verdict.transition.label}" if verdict.write_labels else f"({verdict.note})"
    reason = f"{run.kind.value} {verdict.outcome.value}: {verdict.reason} {target}"
    return Row(run.issue_key, "hand-off", run.agent, reason, run.attempt)


def _orphan_row(orphan: Orphan) -> Row:
    if orphan.transition is None:
        since = f"{orphan.first_seen:%H:%M:%S}"
        reason = f"claimed by {orphan.owner} with no agent run since {since}; handed off after the grace"
        return Row(orphan.issue.key, "watch", orphan.owner, reason)
    reason = f"claimed by {orphan.owner} with no agent run → {orphan.transition.label}"
    return Row(orphan.issue.key, "orphan", orphan.owner, reason)


def _plan_row(decision: workflow.Decision) -> Row:
    issue = decision.issue
    if isinstance(decision, workflow.Dispatch):
        reason = f"claim and submit attempt {decision.attempt}"
        return Row(issue.key, decision.kind.value, decision.agent, reason, decision.attempt, decision.pr)
    return Row(issue.key, "skip", None, f"{decision.refusal.value}: {decision.detail}")
