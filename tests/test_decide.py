"""Table tests for the one decision a dispatch pass makes: intents, hand-offs, orphans, then the plan.

Every rule the dispatcher applies is reached here in milliseconds, from facts alone; the end-to-end
tests only prove that the pieces meet.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from k3sc import decide, labels, workflow
from k3sc.decide import Facts, Finished, IntentCheck
from k3sc.handoff import Evidence
from k3sc.labels import Kind
from k3sc.leases import Lease
from k3sc.models import AgentRun, Intent, Issue, Outcome, Pull, RunPhase, Snapshot
from k3sc.usage import Billing, BudgetStop, LimitHit, Unit, Usage, UsageRecord, Window
from k3sc.workflow import Refusal
from tests.builders import API, NOW, make_config, make_issue, make_run

CONFIG = make_config(families=["claude", "codex"])
NO_BRANCH = Evidence("issue-1", branch_exists=False)
PUSHED = Evidence("issue-1", branch_exists=True, pr=11)
REVIEWED = Evidence("issue-1", pr=11, review_posted=True)


def ended(
    kind: Kind = Kind.IMPLEMENT,
    phase: RunPhase = RunPhase.COMPLETED,
    *,
    agent: str = "claude-a",
    attempt: int = 1,
    ran_for: float | None = 40.0,
    message: str = "",
) -> AgentRun:
    """An attempt that ended and is not handed off yet."""
    run = make_run(1, kind=kind, agent=agent, attempt=attempt, phase=phase, handed_off=False, minutes_ago=5)
    return replace(run, started_at=run.created_at, ran_for=ran_for, message=message)


def failed_before(attempt: int) -> AgentRun:
    return make_run(1, attempt=attempt, outcome=Outcome.FAILURE, minutes_ago=60 - attempt)


def pull(number: int = 11, issue: int = 1) -> Pull:
    return Pull(API, number, f"issue-{issue}", issue, None, False)


def facts(
    issues: list[Issue],
    runs: list[AgentRun] = (),  # type: ignore[assignment]
    *,
    finished: list[Finished] = (),  # type: ignore[assignment]
    intents: list[IntentCheck] = (),  # type: ignore[assignment]
    pulls: list[Pull] = (),  # type: ignore[assignment]
    seen: dict[str, timedelta] | None = None,
    paused: bool = False,
    held: frozenset[str] = frozenset(),
) -> Facts:
    return Facts(
        snapshot=Snapshot(tuple(issues), tuple(pulls)),
        runs=tuple(runs),
        finished=tuple(finished),
        intents=tuple(intents),
        orphans_seen={key: NOW - ago for key, ago in (seen or {}).items()},
        paused=paused,
        held=held,
    )


def finish(run: AgentRun, evidence: Evidence, issue_labels: tuple[str, ...] | None = None) -> Finished:
    return Finished(run, evidence, issue_labels if issue_labels is not None else (run.agent,), True)


def actions(decisions: decide.Decisions) -> list[tuple[str, str, str | None]]:
    return [(r.issue, r.action, r.agent) for r in decisions.rows() if r.action != "skip"]


ISSUE = "acme/api#1"


# --------------------------------------------------------------------------- hand-offs


@pytest.mark.parametrize(
    ("run", "evidence", "history", "outcome", "label", "commented"),
    [
        pytest.param(ended(), PUSHED, [], Outcome.SUCCESS, "needs-review", False,
                     id="an implementation with branch and PR goes to needs-review"),
        pytest.param(ended(), NO_BRANCH, [], Outcome.FAILURE, "ready", False,
                     id="a first failed implementation goes back to ready"),
        pytest.param(ended(attempt=3), NO_BRANCH, [failed_before(1), failed_before(2)], Outcome.FAILURE,
                     "needs-human", True, id="the third failure within task_ttl escalates to a human"),
        pytest.param(ended(attempt=3), NO_BRANCH,
                     [replace(failed_before(1), created_at=NOW - timedelta(days=2)), failed_before(2)],
                     Outcome.FAILURE, "ready", False, id="failures older than task_ttl do not count"),
        pytest.param(ended(phase=RunPhase.CRASHED, ran_for=0.0, message="worker could not start it"),
                     PUSHED, [], Outcome.ERROR, "ready", False,
                     id="an attempt that never started is retried without a comment"),
        pytest.param(ended(phase=RunPhase.CRASHED, ran_for=0.0, attempt=3), PUSHED,
                     [replace(make_run(1, attempt=a, outcome=Outcome.ERROR), ran_for=0.0) for a in (1, 2)],
                     Outcome.FAILURE, "ready", False, id="the third attempt in a row that never started counts"),
        pytest.param(ended(phase=RunPhase.CRASHED, ran_for=31.0, message="pod vanished"), PUSHED, [],
                     Outcome.FAILURE, "ready", False, id="an attempt that ran and crashed is a failure"),
        pytest.param(ended(Kind.REVIEW, agent="codex-a"), REVIEWED, [make_run(1)], Outcome.SUCCESS,
                     "needs-human", False, id="a posted review lands at needs-human"),
        pytest.param(ended(Kind.REVIEW, agent="codex-a"), Evidence("issue-1", pr=11, review_posted=False),
                     [make_run(1)], Outcome.FAILURE, "needs-human", True,
                     id="a review that posted nothing escalates to a human with a comment"),
    ],
)  # fmt: skip
def test_hand_off_outcomes(
    run: AgentRun, evidence: Evidence, history: list[AgentRun], outcome: Outcome, label: str, commented: bool
) -> None:
    issue = make_issue(1, (run.agent,))
    decisions = decide.decide(facts([issue], [*history, run], finished=[finish(run, evidence)]), CONFIG, NOW)
    (handoff,) = decisions.handoffs
    assert (handoff.verdict.outcome, handoff.labels) == (outcome, (label,))
    assert bool(handoff.verdict.transition.comment) is commented
    assert handoff.comment_key == f"handoff:{run.id}"


@pytest.mark.parametrize(
    ("issue_labels", "issue_open", "note"),
    [
        pytest.param(("codex-b",), True, "issue held by codex-b; labels left alone", id="a human gave it to another agent"),
        pytest.param(("ready",), True, "issue no longer claimed; labels left alone", id="a human put it back to ready"),
        pytest.param(("claude-a",), False, "issue is closed or gone", id="the issue was closed meanwhile"),
        pytest.param(None, False, "issue is closed or gone", id="the issue was deleted"),
    ],
)  # fmt: skip
def test_a_hand_off_writes_labels_only_while_the_run_holds_the_issue(
    issue_labels: tuple[str, ...] | None, issue_open: bool, note: str
) -> None:
    run = ended()
    finished = Finished(run, NO_BRANCH, issue_labels, issue_open)
    decisions = decide.decide(facts([make_issue(1, ("claude-a",))], [run], finished=[finished]), CONFIG, NOW)
    (handoff,) = decisions.handoffs
    assert handoff.labels is None and handoff.verdict.note == note
    assert handoff.verdict.outcome is Outcome.FAILURE  # still recorded on the run


def test_a_successful_implementation_is_reviewed_by_another_agent_in_the_same_pass() -> None:
    run = ended(agent="claude-a")
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], [run], finished=[finish(run, PUSHED)], pulls=[pull()]),
        CONFIG,
        NOW,
    )
    (review,) = decisions.plan.dispatches
    assert (review.kind, review.pr) == (Kind.REVIEW, 11)
    assert review.agent != "claude-a"
    assert review.issue.labels == ("needs-review",)


def test_a_run_whose_hand_off_failed_keeps_its_slot_and_issue() -> None:
    run = ended(agent="claude-a")
    ready = make_issue(2, ("ready",))
    decisions = decide.decide(
        facts(
            [make_issue(1, ("claude-a",)), ready],
            [run],
            finished=[finish(run, PUSHED)],
            held=frozenset({run.id}),
        ),
        make_config(max_slots=1),
        NOW,
    )
    assert decisions.handoffs == ()
    assert decisions.orphans == ()  # held by a run still pending
    assert [s.refusal.value for s in decisions.plan.skips if s.issue.number == 2] == ["no free slot"]


def test_a_failed_implementation_is_retried_in_the_same_pass_with_the_next_attempt() -> None:
    run = ended(agent="claude-a")
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], [run], finished=[finish(run, NO_BRANCH)]), CONFIG, NOW
    )
    (retry,) = decisions.plan.dispatches
    assert (retry.kind, retry.attempt) == (Kind.IMPLEMENT, 2)


def test_finished_runs_of_one_issue_are_handed_off_oldest_first_each_seeing_the_last() -> None:
    first = replace(ended(attempt=1), created_at=NOW - timedelta(minutes=9))
    second = replace(ended(attempt=2), id="second")
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], [first, second],
              finished=[finish(second, NO_BRANCH), finish(first, NO_BRANCH)]),
        CONFIG,
        NOW,
    )  # fmt: skip
    assert [h.run.attempt for h in decisions.handoffs] == [1, 2]


# --------------------------------------------------------------------------- orphans


@pytest.mark.parametrize(
    ("labels_", "runs", "seen", "pulls", "expected"),
    [
        pytest.param(("claude-a",), [], None, [], [(ISSUE, "watch", "claude-a")],
                     id="a fresh orphan is watched, not reaped"),
        pytest.param(("claude-a",), [], {ISSUE: timedelta(minutes=9)}, [], [(ISSUE, "watch", "claude-a")],
                     id="an orphan within the grace period is still watched"),
        pytest.param(("claude-a",), [], {ISSUE: timedelta(minutes=10)}, [],
                     [(ISSUE, "orphan", "claude-a"), (ISSUE, "implement", "claude-a")],
                     id="an orphan past the grace goes back to ready and is dispatched again"),
        pytest.param(("claude-a",), [], {ISSUE: timedelta(hours=1)}, [pull()], [(ISSUE, "orphan", "claude-a")],
                     id="an orphan with an open PR was a lost review and goes to a human"),
        pytest.param(("claude-1",), [], {ISSUE: timedelta(hours=1)}, [], [],
                     id="a human-launched agent's claim is never an orphan"),
        pytest.param(("claude-a",), [make_run(1, phase=RunPhase.RUNNING, handed_off=False)],
                     {ISSUE: timedelta(hours=1)}, [], [], id="an issue with a live run is no orphan"),
        pytest.param(("ready",), [], {ISSUE: timedelta(hours=1)}, [], [(ISSUE, "implement", "claude-a")],
                     id="an issue that lost its owner label is no orphan and its sighting is forgotten"),
    ],
)  # fmt: skip
def test_orphans(
    labels_: tuple[str, ...],
    runs: list[AgentRun],
    seen: dict[str, timedelta] | None,
    pulls: list[Pull],
    expected: list[tuple[str, str, str | None]],
) -> None:
    decisions = decide.decide(facts([make_issue(1, labels_)], runs, seen=seen, pulls=pulls), CONFIG, NOW)
    assert actions(decisions) == expected
    watched = [o for o in decisions.orphans if o.transition is None]
    assert decisions.orphans_seen == {o.issue.key: o.first_seen for o in watched}


def test_a_reaped_orphan_with_a_pr_goes_to_needs_human_with_a_comment() -> None:
    decisions = decide.decide(
        facts([make_issue(1, ("codex-b",))], seen={ISSUE: timedelta(hours=1)}, pulls=[pull()]), CONFIG, NOW
    )
    (orphan,) = decisions.reaped
    assert orphan.transition is not None and orphan.transition.label == labels.NEEDS_HUMAN
    assert orphan.transition.comment and "codex-b" in orphan.transition.comment


# --------------------------------------------------------------------------- intents


def intent(agent: str = "claude-a", repo: str = "acme/api") -> Intent:
    return Intent(key="k3sc/acme/api#1/implement/1", repo=repo, issue=1, kind="implement", agent=agent,
                  attempt=1, origin="ready")  # fmt: skip


@pytest.mark.parametrize(
    ("check", "action", "kept"),
    [
        pytest.param(IntentCheck(intent(), run_created=True), "forget-intent", False,
                     id="a claim whose run exists only lost its bookkeeping"),
        pytest.param(IntentCheck(intent(), False, make_issue(1, ("claude-a",)), True), "recover", False,
                     id="a claim that landed without a run gets its run submitted"),
        pytest.param(IntentCheck(intent(), False, make_issue(1, ("ready",)), True), "forget-intent", False,
                     id="a claim that never landed is forgotten"),
        pytest.param(IntentCheck(intent(), False, make_issue(1, ("codex-b",)), True), "forget-intent", False,
                     id="a claim someone else won is forgotten"),
        pytest.param(IntentCheck(intent(), False, make_issue(1, ("claude-a",)), False), "forget-intent", False,
                     id="a claim on an issue closed since is forgotten"),
        pytest.param(IntentCheck(intent(), False, unreadable="503"), "keep-intent", True,
                     id="a claim that cannot be checked yet is kept"),
        pytest.param(IntentCheck(intent(repo="gone/repo"), False, unreadable="404"), "forget-intent", False,
                     id="a claim in a repo no longer configured is forgotten"),
    ],
)  # fmt: skip
def test_intents(check: IntentCheck, action: str, kept: bool) -> None:
    issues = [check.issue] if check.issue is not None else []
    decisions = decide.decide(facts(issues, intents=[check]), CONFIG, NOW)
    (recovery,) = decisions.recoveries
    assert decide._recovery_row(recovery).action == action
    assert (decisions.intents_kept == [check.intent]) is kept


def test_a_recovered_claim_is_no_orphan_and_holds_its_slot() -> None:
    check = IntentCheck(intent("claude-a"), False, make_issue(1, ("claude-a",)), True)
    other = make_issue(2, ("ready",))
    decisions = decide.decide(
        facts([check.issue, other], intents=[check], seen={ISSUE: timedelta(hours=1)}),  # type: ignore[list-item]
        make_config(max_slots=1),
        NOW,
    )
    assert decisions.orphans == ()
    assert [s.refusal.value for s in decisions.plan.skips if s.issue.number == 2] == ["no free slot"]
    (submitted,) = decisions.submissions
    assert submitted.dispatch is not None and submitted.dispatch.agent == "claude-a"


def test_a_kept_intent_shields_its_issue_from_the_orphan_reaper() -> None:
    check = IntentCheck(intent("claude-a"), False, unreadable="timeout")
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], intents=[check], seen={ISSUE: timedelta(hours=1)}), CONFIG, NOW
    )
    assert decisions.orphans == () and decisions.intents_kept == [check.intent]


# --------------------------------------------------------------------------- the pass as a whole


def test_paused_hands_off_and_reaps_but_claims_nothing() -> None:
    run = ended()
    decisions = decide.decide(
        facts(
            [make_issue(1, ("claude-a",)), make_issue(2, ("codex-c",)), make_issue(3, ("ready",))],
            [run],
            finished=[finish(run, PUSHED)],
            seen={"acme/api#2": timedelta(hours=1)},
            paused=True,
        ),
        CONFIG,
        NOW,
    )
    assert len(decisions.handoffs) == 1 and len(decisions.reaped) == 1
    assert decisions.plan.decisions == ()


@pytest.mark.parametrize(
    ("the_facts", "settled", "busy"),
    [
        pytest.param(facts([make_issue(1, ("needs-human",))]), True, False, id="only finished work is settled"),
        pytest.param(facts([make_issue(1, ("ready",))]), False, True, id="an eligible issue is work"),
        pytest.param(facts([make_issue(1, ("claude-a",))]), False, False,
                     id="a watched orphan is not settled but not busy either"),
        pytest.param(facts([make_issue(1, ("claude-a",))], [make_run(1, phase=RunPhase.RUNNING, handed_off=False)]),
                     False, True, id="a running agent keeps the dispatcher busy"),
        pytest.param(facts([make_issue(1, ("ready",), author="mallory")]), True, False,
                     id="an untrusted issue is settled: nothing will ever happen to it"),
    ],
)  # fmt: skip
def test_settled_and_busy(the_facts: Facts, settled: bool, busy: bool) -> None:
    decisions = decide.decide(the_facts, CONFIG, NOW)
    assert (decisions.settled, decisions.busy) == (settled, busy)


# --------------------------------------------------------------------------- what an operator set


def lease(
    worker: str = "claude-4", *, issue: int = 1, pr: int = 11, expires_in: timedelta = timedelta(hours=1)
) -> Lease:
    return Lease(API, pr, issue, worker, f"issue-{issue}", f"https://github.test/acme/api/pull/{pr}",
                 NOW - timedelta(hours=1), NOW + expires_in)  # fmt: skip


def test_a_live_review_lease_keeps_the_dispatcher_from_reviewing_that_issue() -> None:
    the_facts = replace(
        facts([make_issue(1, ("needs-review",))], [make_run(1)], pulls=[pull()]), leases=(lease(),)
    )
    decisions = decide.decide(the_facts, CONFIG, NOW)
    (skip,) = decisions.plan.skips
    assert skip.refusal is Refusal.RESERVED and "claude-4" in skip.detail
    assert decisions.leases == (lease(),) and decisions.expired == ()


def test_an_expired_lease_is_removed_and_no_longer_blocks() -> None:
    old = lease(expires_in=-timedelta(seconds=1))
    the_facts = replace(
        facts([make_issue(1, ("needs-review",))], [make_run(1)], pulls=[pull()]), leases=(old,)
    )
    decisions = decide.decide(the_facts, CONFIG, NOW)
    assert decisions.expired == (old,)
    assert [d.kind for d in decisions.plan.dispatches] == [Kind.REVIEW]
    assert ("acme/api#1", "expire-lease", "claude-4") in actions(decisions)


def hit(family: str, resets_in: timedelta | None, window: Window = Window.WEEKLY) -> LimitHit:
    return LimitHit(
        family, None, NOW + resets_in if resets_in is not None else None, window, "Weekly limit reached"
    )


@pytest.mark.parametrize(
    ("disabled", "parks", "agents", "refusal"),
    [
        pytest.param({"claude": "disabled via k3sc disable"}, [], ["codex-a", "codex-b"], None,
                     id="a disabled family's work goes to the other family"),
        pytest.param({"claude": "off", "codex": "off"}, [], [], Refusal.FAMILY_DISABLED,
                     id="with every family disabled nothing is dispatched"),
        pytest.param({}, [hit("claude", timedelta(hours=2))], ["codex-a", "codex-b"], None,
                     id="a family parked at its usage limit rests; the other works"),
        pytest.param({}, [hit("claude", -timedelta(seconds=1))], ["claude-a", "codex-b"], None,
                     id="after the reset the parked family works again"),
        pytest.param({}, [hit("claude", timedelta(hours=2)), hit("codex", timedelta(minutes=5))], [],
                     Refusal.FAMILY_PARKED, id="with every family parked nothing is dispatched"),
    ],
)  # fmt: skip
def test_family_availability(
    disabled: dict[str, str], parks: list[LimitHit], agents: list[str], refusal: Refusal | None
) -> None:
    the_facts = replace(facts([make_issue(1), make_issue(2)]), disabled=disabled, parks=tuple(parks))
    decisions = decide.decide(the_facts, CONFIG, NOW)
    assert [d.agent for d in decisions.plan.dispatches] == agents
    assert {s.refusal for s in decisions.plan.skips} == ({refusal} if refusal else set())
    assert set(decisions.families) == {"claude", "codex"}


@pytest.mark.parametrize(
    ("parks", "wake_in", "settled"),
    [
        pytest.param([], None, True, id="nothing parked: nothing to wake for"),
        pytest.param([hit("claude", timedelta(hours=2))], timedelta(hours=2), True,
                     id="a park ending in hours: the next scan comes at its end, nothing is pending now"),
        pytest.param([hit("claude", timedelta(hours=2)), hit("codex", timedelta(minutes=5))],
                     timedelta(minutes=5), True, id="the first family back sets the wake-up"),
        pytest.param([hit("claude", timedelta(seconds=30))], timedelta(seconds=30), False,
                     id="a park ending within scan.min_interval is work still coming"),
        pytest.param([hit("claude", timedelta(minutes=5)), hit("claude", timedelta(hours=1))],
                     timedelta(hours=1), True, id="a family returns at its latest reset"),
        pytest.param([hit("claude", -timedelta(seconds=1))], None, True, id="a park already over wakes nothing"),
    ],
)  # fmt: skip
def test_a_parked_family_is_woken_for_at_its_reset(
    parks: list[LimitHit], wake_in: timedelta | None, settled: bool
) -> None:
    # No issues at all: only the parks speak.
    the_facts = replace(facts([]), parks=tuple(parks))
    decisions = decide.decide(the_facts, CONFIG, NOW)
    assert decisions.wake_at == (NOW + wake_in if wake_in is not None else None)
    assert decisions.settled is settled


def test_the_operators_slot_count_wins_over_the_config() -> None:
    issues = [make_issue(n) for n in range(1, 6)]
    decisions = decide.decide(replace(facts(issues), max_slots=2), make_config(max_slots=5), NOW)
    assert len(decisions.plan.dispatches) == 2 and decisions.slots == 2


@pytest.mark.parametrize("owner", ["human", "human-alice", "claude-1"])
def test_a_person_s_claim_is_owned_and_never_reaped(owner: str) -> None:
    decisions = decide.decide(facts([make_issue(1, (owner,))], seen={ISSUE: timedelta(days=1)}), CONFIG, NOW)
    (skip,) = decisions.plan.skips
    assert skip.refusal is Refusal.ALREADY_OWNED and decisions.orphans == ()


def test_reset_attempts_no_longer_count_towards_the_cap() -> None:
    failed = [replace(failed_before(a), reset=True) for a in (1, 2, 3)]
    decisions = decide.decide(facts([make_issue(1)], failed), CONFIG, NOW)
    (retry,) = decisions.plan.dispatches
    assert retry.attempt == 4


def test_a_stopped_attempt_is_neither_a_failure_nor_retried_by_itself() -> None:
    stopped = make_run(1, outcome=Outcome.STOPPED, phase=RunPhase.CANCELLED)
    decisions = decide.decide(facts([make_issue(1, ("needs-human",))], [stopped]), CONFIG, NOW)
    assert decisions.handoffs == () and decisions.plan.dispatches == []
    assert workflow.histories([stopped])[ISSUE].failures() == 0


def test_a_usage_limit_parks_the_family_returns_the_issue_and_counts_nothing() -> None:
    weekly = hit("claude", timedelta(hours=3))
    run = replace(ended(phase=RunPhase.FAILED), state_name="Parked", message=weekly.encode(), ended_at=NOW)
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], [run], finished=[finish(run, PUSHED)]), CONFIG, NOW
    )
    (handoff,) = decisions.handoffs
    assert (handoff.verdict.outcome, handoff.labels, handoff.verdict.transition.comment) == (
        Outcome.PARKED,
        ("ready",),
        None,
    )
    assert handoff.park == weekly
    assert decisions.families["claude"] == f"family parked until {weekly.resets_at:%H:%M} UTC (weekly limit)"
    (again,) = decisions.plan.dispatches  # the same pass gives the issue to the other family
    assert again.agent.startswith("codex-") and again.attempt == 2


def test_a_usage_limit_without_a_reset_time_rests_the_family_an_hour() -> None:
    run = replace(
        ended(phase=RunPhase.FAILED), state_name="Parked", message=hit("codex", None).encode(), ended_at=NOW
    )
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], [run], finished=[finish(run, PUSHED)]), CONFIG, NOW
    )
    assert decisions.handoffs[0].park == hit("codex", decide.PARK_WITHOUT_RESET)


def test_a_budget_stop_goes_to_a_human_and_is_not_retried() -> None:
    stop = BudgetStop(10_400, 10_000, Unit.TOKENS)
    run = replace(ended(phase=RunPhase.FAILED), state_name="BudgetStopped", message=stop.encode())
    decisions = decide.decide(
        facts([make_issue(1, ("claude-a",))], [run], finished=[finish(run, PUSHED)]), CONFIG, NOW
    )
    (handoff,) = decisions.handoffs
    assert (handoff.verdict.outcome, handoff.labels) == (Outcome.STOPPED, ("needs-human",))
    assert handoff.verdict.reason == "stopped by budget: 10,400 tokens of a 10,000 tokens per-run cap"
    assert "not retried automatically" in (handoff.verdict.transition.comment or "")
    assert decisions.plan.dispatches == []


@pytest.mark.parametrize(
    ("pending_for", "reaped"),
    [
        pytest.param(timedelta(minutes=9), False, id="a run pending within agent.start_timeout is left to start"),
        pytest.param(timedelta(minutes=10), True, id="a run pending past agent.start_timeout is crashed and retried"),
    ],
)  # fmt: skip
def test_runs_stuck_before_starting(pending_for: timedelta, reaped: bool) -> None:
    pending = replace(make_run(1, phase=RunPhase.WAITING, handed_off=False), pending_since=NOW - pending_for)
    decisions = decide.decide(facts([make_issue(1, ("claude-a",))], [pending]), CONFIG, NOW)
    assert [s.run.id for s in decisions.stuck] == ([pending.id] if reaped else [])
    assert decisions.orphans == ()  # still its run's until it is crashed and handed off


def spent(
    agent: str, tokens: int, billing: Billing = Billing.SUBSCRIPTION, minutes_ago: int = 30
) -> UsageRecord:
    used = Usage(
        input_tokens=tokens, total_tokens=tokens, cost_usd=tokens / 1_000_000, models=("claude-sonnet-4-6",)
    )
    return UsageRecord("acme/api", 9, "implement", agent, 1, billing, NOW - timedelta(minutes=minutes_ago), 60.0,
                       "success_claimed", 0, used)  # fmt: skip


@pytest.mark.parametrize(
    ("records", "cap", "agents", "held"),
    [
        pytest.param([], 100_000, ["claude-a", "codex-b"], set(), id="nothing spent today: everyone works"),
        pytest.param([spent("claude-a", 40_000)], 100_000, ["claude-a", "codex-b"], set(),
                     id="room for another run of the same size"),
        pytest.param([spent("claude-a", 40_000), spent("claude-b", 40_000)], 100_000, ["codex-a", "codex-b"],
                     {"claude"}, id="a run that would pass the daily cap waits; a family without runs today goes"),
        pytest.param([spent("claude-a", 120_000)], 100_000, ["codex-a", "codex-b"], {"claude"},
                     id="a spent daily cap holds the family"),
    ],
)  # fmt: skip
def test_daily_budget_admission(
    records: list[UsageRecord], cap: int, agents: list[str], held: set[str]
) -> None:
    config = make_config(families=["claude", "codex"], budget={"per_day_tokens": cap})
    decisions = decide.decide(
        replace(facts([make_issue(1), make_issue(2)]), spent_today=tuple(records)), config, NOW
    )
    assert [d.agent for d in decisions.plan.dispatches] == agents
    assert {f for f, why in decisions.families.items() if why.startswith("daily budget")} == held
