"""The label state machine: labels → state, outcome → next label, and who may be dispatched.

Pure functions only. Every rule of the workflow lives in exactly one function here (or in
`slots`/`backoff`/`names`), with a table test beside it. The dispatch flow and `k3sc scan`
both ask these functions, so what the scan shows is what the dispatcher does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from k3sc import labels, slots
from k3sc.config import Config
from k3sc.labels import Kind, State
from k3sc.models import AgentRun, Issue, Outcome, Pull

MAX_FAILURES = 3
# Attempts that never started (infrastructure errors) per issue and kind before they count as failures.
MAX_ERRORS = 3

# --------------------------------------------------------------------------- labels → state


@dataclass(frozen=True)
class LabelState:
    """What an issue's labels say: its state, its owner, and whether a human parked it."""

    state: State
    owner: str | None = None
    waiting: bool = False
    conflicting: tuple[str, ...] = ()  # the state labels, when more than one is present


def read_labels(names: Iterable[str]) -> LabelState:
    """Derive (state, owner) deterministically; several state labels make the issue inconsistent.

    The original let the first label in GitHub's order win; here the answer never depends on order.
    """
    names = [n.lower() for n in names]
    states = tuple(sorted({n for n in names if n in labels.STATE_LABELS}))
    owners = sorted({n for n in names if labels.is_owner_label(n)})
    owner = owners[0] if owners else None
    waiting = labels.WAITING in names
    if len(states) > 1:
        return LabelState(State.INCONSISTENT, owner, waiting, states)
    if states:
        return LabelState(State(states[0]), owner, waiting)
    if owner:
        return LabelState(State.OWNED, owner, waiting)
    return LabelState(State.NONE, None, waiting)


def kind_for(state: State) -> Kind | None:
    """Which run an issue in this state asks for: `ready` → implement, `needs-review` → review."""
    return {State.READY: Kind.IMPLEMENT, State.NEEDS_REVIEW: Kind.REVIEW}.get(state)


def is_workflow_issue(names: Iterable[str]) -> bool:
    """Issues k3sc looks at: any state label or owner label (`waiting` alone is invisible)."""
    return any(n.lower() in labels.STATE_LABELS or labels.is_owner_label(n) for n in names)


# --------------------------------------------------------------------------- outcome → next label


@dataclass(frozen=True)
class Transition:
    """Where an issue goes when an attempt ends, and whether another attempt should follow."""

    label: str
    follow_up: Kind | None
    comment: str | None = None


def transition(kind: Kind, outcome: Outcome, failures: int, reason: str = "") -> Transition:
    """Where a finished attempt sends its issue: the label diagram's transition table.

    `failures` counts failed implementation attempts of this issue *including* this one
    when it failed. A failed review never loops back to review: it escalates to a human.
    """
    why = f": {reason}" if reason else ""
    if outcome in (Outcome.ERROR, Outcome.PARKED):
        # The agent never ran, or its account is resting: back where it was, to try again.
        return Transition(labels.READY if kind is Kind.IMPLEMENT else labels.NEEDS_REVIEW, kind)
    if outcome is Outcome.STOPPED:
        return Transition(
            labels.NEEDS_HUMAN,
            None,
            f"k3sc stopped this {kind.value} attempt{why}. It is not retried automatically; "
            "relabel the issue to try again.",
        )
    if kind is Kind.IMPLEMENT and outcome is Outcome.SUCCESS:
        return Transition(labels.NEEDS_REVIEW, Kind.REVIEW)
    if kind is Kind.IMPLEMENT and failures < MAX_FAILURES:
        return Transition(labels.READY, Kind.IMPLEMENT)
    if kind is Kind.IMPLEMENT:
        return Transition(
            labels.NEEDS_HUMAN,
            None,
            f"k3sc stopped after {failures} failed implementation attempts (last{why or ': unknown'}). "
            "A person needs to look at this issue; relabel it `ready` after `k3sc reset` to try again.",
        )
    if outcome is Outcome.SUCCESS:
        return Transition(labels.NEEDS_HUMAN, None)
    return Transition(
        labels.NEEDS_HUMAN,
        None,
        f"k3sc's review attempt failed{why}. The pull request needs a human review.",
    )


# --------------------------------------------------------------------------- history per issue


@dataclass(frozen=True)
class History:
    """What recorded runs say about one issue (invariant 2: never a counter copied forward)."""

    runs: tuple[AgentRun, ...] = ()

    @property
    def active(self) -> AgentRun | None:
        """The run still holding the issue: not finished, or finished but not handed off."""
        live = [r for r in self.runs if r.active]
        return max(live, key=lambda r: r.created_at) if live else None

    def failures(self, since: datetime | None = None) -> int:
        """Failed implementation attempts since the last `k3sc reset`, optionally only after `since`."""
        return sum(
            1
            for r in self.runs
            if r.kind is Kind.IMPLEMENT
            and r.outcome is Outcome.FAILURE
            and not r.reset
            and (since is None or r.created_at >= since)
        )

    def errors(self, kind: Kind) -> int:
        """Attempts of this kind that never started (see Outcome.ERROR), since the last reset."""
        return sum(1 for r in self.runs if r.kind is kind and r.outcome is Outcome.ERROR and not r.reset)

    def next_attempt(self, kind: Kind) -> int:
        """1 + the highest attempt of this kind ever submitted (idempotency keys are permanent)."""
        return 1 + max((r.attempt for r in self.runs if r.kind is kind), default=0)

    @property
    def implementer(self) -> str | None:
        """The agent of the most recent successful implementation, else of the latest attempt."""
        implements = sorted((r for r in self.runs if r.kind is Kind.IMPLEMENT), key=lambda r: r.created_at)
        succeeded = [r for r in implements if r.outcome is Outcome.SUCCESS]
        chosen = succeeded or implements
        return chosen[-1].agent if chosen else None


def histories(runs: Iterable[AgentRun]) -> dict[str, History]:
    """Group runs by issue key."""
    grouped: dict[str, list[AgentRun]] = {}
    for run in runs:
        grouped.setdefault(run.issue_key, []).append(run)
    return {key: History(tuple(sorted(rs, key=lambda r: r.created_at))) for key, rs in grouped.items()}


# --------------------------------------------------------------------------- eligibility


class Refusal(StrEnum):
    """Why an issue is not dispatched now; every refusal has one of these reasons."""

    REPO_NOT_CONFIGURED = "repo not configured"
    AUTHOR_NOT_ALLOWED = "author not allowed"
    WAITING = "waiting"
    NOT_ACTIONABLE = "not ready or needs-review"
    INCONSISTENT = "conflicting state labels"
    ALREADY_OWNED = "already owned"
    ACTIVE_ATTEMPT = "active attempt"
    FAILURE_CAP = "failure cap reached"
    SAME_AGENT = "reviewer implemented it"
    NO_SLOT = "no free slot"
    RESERVED = "reserved for review"
    FAMILY_DISABLED = "family disabled"
    FAMILY_PARKED = "family parked"
    DAILY_BUDGET = "daily budget"


@dataclass(frozen=True)
class Unavailable:
    """Why a family may not be dispatched now: disabled by a person, or parked at a usage limit."""

    refusal: Refusal
    detail: str


@dataclass(frozen=True)
class Skip:
    """An issue left alone this scan, with the reason and a human-readable detail."""

    issue: Issue
    refusal: Refusal
    detail: str


@dataclass(frozen=True)
class Dispatch:
    """Claim `issue` for `agent` and submit attempt `attempt` of `kind`."""

    issue: Issue
    kind: Kind
    agent: str
    attempt: int
    pr: int | None = None

    @property
    def origin(self) -> State:
        """The state label the claim replaces."""
        return State.READY if self.kind is Kind.IMPLEMENT else State.NEEDS_REVIEW


Decision = Dispatch | Skip


def refuse(
    issue: Issue,
    history: History,
    config: Config,
    now: datetime,
    reserved: Mapping[str, str] | None = None,
) -> Skip | None:
    """The first rule that keeps `issue` from being dispatched, or None if it may go.

    `reserved` maps issues whose PR a person's agent holds under a live review lease to why.
    Slot availability, family availability and reviewer ≠ implementer are decided later by `plan`,
    because they depend on what earlier issues in the same scan took.
    """
    state = read_labels(issue.labels)
    # Trust first: untrusted text must never reach an agent, whatever its labels say.
    if config.repo_config(issue.repo) is None:
        return Skip(issue, Refusal.REPO_NOT_CONFIGURED, f"repo {issue.repo} is not in the config's repos")
    if not config.is_allowed_author(issue.author):
        return Skip(issue, Refusal.AUTHOR_NOT_ALLOWED, f"author {issue.author!r} is not in allowed_authors")
    # A human parked it.
    if state.waiting:
        return Skip(issue, Refusal.WAITING, "labelled waiting")
    if state.state is State.INCONSISTENT:
        return Skip(issue, Refusal.INCONSISTENT, "labels " + ", ".join(state.conflicting))
    # Someone (ours, a human-launched agent or a person) holds it.
    if state.owner is not None:
        return Skip(issue, Refusal.ALREADY_OWNED, f"owned by {state.owner}")
    # A person's agent is reviewing its PR.
    if reserved and issue.key in reserved:
        return Skip(issue, Refusal.RESERVED, reserved[issue.key])
    kind = kind_for(state.state)
    if kind is None:
        return Skip(issue, Refusal.NOT_ACTIONABLE, f"state is {state.state.value}")
    # An attempt is queued, running, or finished but not handed off yet.
    if (active := history.active) is not None:
        detail = f"{active.kind.value} attempt {active.attempt} by {active.agent}"
        return Skip(issue, Refusal.ACTIVE_ATTEMPT, detail)
    if kind is Kind.IMPLEMENT:
        failures = history.failures(since=now - config.scan.task_ttl)
        if failures >= MAX_FAILURES:
            detail = f"{failures} failed attempts within scan.task_ttl"
            return Skip(issue, Refusal.FAILURE_CAP, detail)
    return None


def order(issues: Iterable[Issue]) -> list[Issue]:
    """`needs-review` before `ready`, then oldest first; stable for ties; everything else last."""
    rank = {State.NEEDS_REVIEW: 0, State.READY: 1}

    def key(issue: Issue) -> tuple[int, datetime]:
        return rank.get(read_labels(issue.labels).state, 2), issue.created_at

    return sorted(issues, key=key)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """Everything one scan decided, in order, plus the family to continue alternating from."""

    decisions: tuple[Decision, ...]
    last_family: str | None

    @property
    def dispatches(self) -> list[Dispatch]:
        return [d for d in self.decisions if isinstance(d, Dispatch)]

    @property
    def skips(self) -> list[Skip]:
        return [d for d in self.decisions if isinstance(d, Skip)]


def plan(
    issues: Sequence[Issue],
    runs: Iterable[AgentRun],
    pulls: Iterable[Pull],
    config: Config,
    *,
    now: datetime,
    last_family: str | None = None,
    max_slots: int | None = None,
    reserved: Mapping[str, str] | None = None,
    unavailable: Mapping[str, Unavailable] | None = None,
) -> Plan:
    """Decide, for every issue, whether to dispatch it (agent, attempt, PR) or why not.

    Slots come from the active runs (invariant 2); each dispatch takes the lowest free letter
    and the next available family in rotation, and a reviewer is never the issue's implementer.
    `max_slots` is the operator's `k3sc scale` value when set; `unavailable` the families that
    are disabled or parked.
    """
    history_by_issue = histories(runs)
    used = {slots.letter_of(r.agent) for h in history_by_issue.values() if (r := h.active) is not None}
    capacity = max_slots or config.max_slots
    pull_by_branch = {(p.repo.key, p.branch): p for p in pulls}
    off = unavailable or {}
    families = [f for f in config.families if f not in off]
    decisions: list[Decision] = []
    for issue in order(issues):
        history = history_by_issue.get(issue.key, History())
        skip = refuse(issue, history, config, now, reserved)
        if skip is not None:
            decisions.append(skip)
            continue
        if not families:
            first = off[config.families[0]]
            detail = "; ".join(f"{f}: {off[f].detail}" for f in config.families)
            decisions.append(Skip(issue, first.refusal, detail))
            continue
        kind = kind_for(read_labels(issue.labels).state)
        assert kind is not None  # refuse() only lets ready/needs-review through
        free = slots.free_letters(used, capacity)
        if not free:
            decisions.append(Skip(issue, Refusal.NO_SLOT, f"all {capacity} slots busy"))
            continue
        avoid = history.implementer if kind is Kind.REVIEW else None
        choice = slots.choose_agent(free, families, last_family, avoid=avoid)
        if choice is None:
            decisions.append(Skip(issue, Refusal.SAME_AGENT, f"only {avoid} is free and it implemented this"))
            continue
        agent, last_family = choice
        pull = pull_by_branch.get((issue.repo.key, config.safety.branch_for(issue.number)))
        decisions.append(
            Dispatch(
                issue,
                kind,
                agent,
                history.next_attempt(kind),
                pull.number if pull and kind is Kind.REVIEW else None,
            )
        )
        used.add(slots.letter_of(agent))
    return Plan(tuple(decisions), last_family)
