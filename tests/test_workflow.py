"""Table tests for the label state machine, the transition table, eligibility and planning."""

from __future__ import annotations

from datetime import timedelta

import pytest

from k3sc import workflow
from k3sc.labels import Kind, State
from k3sc.models import AgentRun, Issue, Outcome, Pull, Repo, RunPhase
from k3sc.workflow import Dispatch, History, LabelState, Refusal, Skip, Transition
from tests.builders import API, NOW, WEB, make_config, make_issue, make_run

# --------------------------------------------------------------------------- read_labels


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(["ready"], LabelState(State.READY), id="ready alone is ready"),
        pytest.param(["needs-review"], LabelState(State.NEEDS_REVIEW), id="needs-review alone"),
        pytest.param(["needs-human"], LabelState(State.NEEDS_HUMAN), id="needs-human alone"),
        pytest.param(["bug", "p1"], LabelState(State.NONE), id="no workflow label is none"),
        pytest.param([], LabelState(State.NONE), id="no labels at all is none"),
        pytest.param(["claude-a"], LabelState(State.OWNED, "claude-a"), id="owner label alone is owned"),
        pytest.param(["codex-c", "bug"], LabelState(State.OWNED, "codex-c"), id="codex owner label is owned"),
        pytest.param(
            ["claude-1"], LabelState(State.OWNED, "claude-1"), id="human-launched agent is an owner"
        ),
        pytest.param(["owner:claude-a"], LabelState(State.NONE), id="prefixed text is not an owner label"),
        pytest.param(["claude-"], LabelState(State.NONE), id="bare family prefix is not an owner"),
        pytest.param(["ready", "claude-b"], LabelState(State.READY, "claude-b"), id="state plus owner"),
        pytest.param(["waiting", "ready"], LabelState(State.READY, None, True), id="waiting is a flag"),
        pytest.param(["waiting"], LabelState(State.NONE, None, True), id="waiting alone has no state"),
        pytest.param(["READY"], LabelState(State.READY), id="labels compare case-insensitively"),
        pytest.param(
            ["ready", "needs-human"],
            LabelState(State.INCONSISTENT, None, False, ("needs-human", "ready")),
            id="two state labels are inconsistent",
        ),
        pytest.param(
            ["needs-human", "ready"],
            LabelState(State.INCONSISTENT, None, False, ("needs-human", "ready")),
            id="inconsistency does not depend on label order",
        ),
        pytest.param(
            ["codex-b", "claude-a"],
            LabelState(State.OWNED, "claude-a"),
            id="two owners pick deterministically",
        ),
    ],
)
def test_read_labels(labels: list[str], expected: LabelState) -> None:
    assert workflow.read_labels(labels) == expected


@pytest.mark.parametrize(
    ("labels", "visible"),
    [
        pytest.param(["ready"], True, id="state label is visible"),
        pytest.param(["claude-a"], True, id="owner label is visible"),
        pytest.param(["waiting"], False, id="waiting alone is invisible"),
        pytest.param(["bug"], False, id="other labels are invisible"),
    ],
)
def test_is_workflow_issue(labels: list[str], visible: bool) -> None:
    assert workflow.is_workflow_issue(labels) is visible


# --------------------------------------------------------------------------- transition


@pytest.mark.parametrize(
    ("kind", "outcome", "failures", "label", "follow_up", "has_comment"),
    [
        pytest.param(Kind.IMPLEMENT, Outcome.SUCCESS, 0, "needs-review", Kind.REVIEW, False,
                     id="ready success goes to needs-review with a review to follow"),
        pytest.param(Kind.IMPLEMENT, Outcome.SUCCESS, 2, "needs-review", Kind.REVIEW, False,
                     id="success after earlier failures still goes to review"),
        pytest.param(Kind.IMPLEMENT, Outcome.FAILURE, 1, "ready", Kind.IMPLEMENT, False,
                     id="first failure returns to ready with a retry"),
        pytest.param(Kind.IMPLEMENT, Outcome.FAILURE, 2, "ready", Kind.IMPLEMENT, False,
                     id="second failure returns to ready with a retry"),
        pytest.param(Kind.IMPLEMENT, Outcome.FAILURE, 3, "needs-human", None, True,
                     id="third failure sends ready to needs-human with a comment"),
        pytest.param(Kind.IMPLEMENT, Outcome.FAILURE, 4, "needs-human", None, True,
                     id="beyond the cap stays needs-human"),
        pytest.param(Kind.REVIEW, Outcome.SUCCESS, 0, "needs-human", None, False,
                     id="review success goes to needs-human"),
        pytest.param(Kind.REVIEW, Outcome.FAILURE, 0, "needs-human", None, True,
                     id="review failure escalates to needs-human, never loops"),
    ],
)  # fmt: skip
def test_transition(
    kind: Kind, outcome: Outcome, failures: int, label: str, follow_up: Kind | None, has_comment: bool
) -> None:
    result = workflow.transition(kind, outcome, failures, reason="no PR")
    assert (result.label, result.follow_up) == (label, follow_up)
    assert (result.comment is not None) is has_comment
    if result.comment:
        assert "no PR" in result.comment


def test_cap_comment_explains_count_and_reason() -> None:
    result = workflow.transition(Kind.IMPLEMENT, Outcome.FAILURE, 3, reason="exit code 1")
    assert result == Transition(
        "needs-human",
        None,
        "k3sc stopped after 3 failed implementation attempts (last: exit code 1). "
        "A person needs to look at this issue; relabel it `ready` after `k3sc reset` to try again.",
    )


# --------------------------------------------------------------------------- history


def test_history_counts_only_failed_implementations_in_window() -> None:
    history = History(
        (
            make_run(attempt=1, outcome=Outcome.FAILURE, minutes_ago=60 * 30),  # outside 24h
            make_run(attempt=2, outcome=Outcome.FAILURE, minutes_ago=90),
            make_run(attempt=3, outcome=Outcome.SUCCESS, minutes_ago=60),
            make_run(kind=Kind.REVIEW, attempt=1, outcome=Outcome.FAILURE, agent="codex-b", minutes_ago=30),
        )
    )
    assert history.failures() == 2
    assert history.failures(since=NOW - timedelta(hours=24)) == 1
    assert history.next_attempt(Kind.IMPLEMENT) == 4
    assert history.next_attempt(Kind.REVIEW) == 2
    assert history.implementer == "claude-a"
    assert history.active is None


def test_history_active_includes_finished_but_not_handed_off() -> None:
    finished = make_run(handed_off=False, phase=RunPhase.FAILED)
    assert History((finished,)).active == finished
    queued = make_run(attempt=2, phase=RunPhase.WAITING, handed_off=False)
    assert History((queued,)).active == queued


# --------------------------------------------------------------------------- refusals (every reason)

Refused = tuple[Refusal, str] | None


@pytest.mark.parametrize(
    ("issue", "runs", "expected"),
    [
        pytest.param(make_issue(repo=Repo("other", "repo")), (), Refusal.REPO_NOT_CONFIGURED,
                     id="repo not configured"),
        pytest.param(make_issue(author="mallory"), (), Refusal.AUTHOR_NOT_ALLOWED,
                     id="author not allowed"),
        pytest.param(make_issue(author="bob"), (), None, id="author match is case-insensitive"),
        pytest.param(make_issue(repo=Repo("ACME", "Api")), (), None, id="repo match is case-insensitive"),
        pytest.param(make_issue(labels=("ready", "waiting")), (), Refusal.WAITING, id="waiting is never picked"),
        pytest.param(make_issue(labels=("ready", "needs-human")), (), Refusal.INCONSISTENT,
                     id="conflicting state labels"),
        pytest.param(make_issue(labels=("claude-a",)), (), Refusal.ALREADY_OWNED, id="owned by our agent"),
        pytest.param(make_issue(labels=("ready", "codex-2")), (), Refusal.ALREADY_OWNED,
                     id="owned by a human-launched agent"),
        pytest.param(make_issue(labels=("needs-human",)), (), Refusal.NOT_ACTIONABLE, id="needs-human waits"),
        pytest.param(make_issue(labels=("bug",)), (), Refusal.NOT_ACTIONABLE, id="no state label"),
        pytest.param(make_issue(), (make_run(phase=RunPhase.RUNNING, handed_off=False),),
                     Refusal.ACTIVE_ATTEMPT, id="an attempt is running"),
        pytest.param(make_issue(), (make_run(phase=RunPhase.FAILED, handed_off=False),),
                     Refusal.ACTIVE_ATTEMPT, id="an attempt ended but is not handed off"),
        pytest.param(make_issue(), tuple(make_run(attempt=a, outcome=Outcome.FAILURE) for a in (1, 2, 3)),
                     Refusal.FAILURE_CAP, id="three failures reach the cap"),
        pytest.param(make_issue(), tuple(make_run(attempt=a, outcome=Outcome.FAILURE) for a in (1, 2)),
                     None, id="two failures are under the cap"),
        pytest.param(make_issue(labels=("needs-review",)),
                     tuple(make_run(attempt=a, outcome=Outcome.FAILURE) for a in (1, 2, 3)),
                     None, id="the cap only limits implementation"),
        pytest.param(make_issue(), (), None, id="a trusted ready issue may go"),
    ],
)  # fmt: skip
def test_refuse(issue: Issue, runs: tuple[AgentRun, ...], expected: Refusal | None) -> None:
    skip = workflow.refuse(issue, History(runs), make_config(), NOW)
    assert (skip.refusal if skip else None) == expected
    if skip:
        assert skip.detail


def test_untrusted_author_is_refused_before_anything_else() -> None:
    # Even an owned, waiting issue by an untrusted author reports the trust problem.
    issue = make_issue(labels=("ready", "waiting", "claude-a"), author="mallory")
    skip = workflow.refuse(issue, History(), make_config(), NOW)
    assert skip == Skip(issue, Refusal.AUTHOR_NOT_ALLOWED, "author 'mallory' is not in allowed_authors")


def test_empty_allowed_authors_dispatches_nothing() -> None:
    skip = workflow.refuse(make_issue(), History(), make_config(allowed_authors=[]), NOW)
    assert skip is not None and skip.refusal is Refusal.AUTHOR_NOT_ALLOWED


# --------------------------------------------------------------------------- ordering


def test_order_review_first_then_oldest_first_stable() -> None:
    r_old = make_issue(1, ("ready",), age_minutes=300)
    r_new = make_issue(2, ("ready",), age_minutes=10)
    nr_new = make_issue(3, ("needs-review",), age_minutes=5)
    nr_old = make_issue(4, ("needs-review",), age_minutes=500)
    tie_a = make_issue(5, ("ready",), repo=WEB, age_minutes=100)
    tie_b = make_issue(5, ("ready",), repo=API, age_minutes=100)
    other = make_issue(6, ("needs-human",), age_minutes=1000)
    assert workflow.order([r_new, other, tie_a, nr_new, r_old, tie_b, nr_old]) == [
        nr_old,
        nr_new,
        r_old,
        tie_a,
        tie_b,
        r_new,
        other,
    ]


# --------------------------------------------------------------------------- plan


def test_plan_assigns_lowest_letters_and_alternates_families() -> None:
    issues = [make_issue(n, age_minutes=100 - n) for n in (1, 2, 3)]
    result = workflow.plan(issues, [], [], make_config(), now=NOW)
    assert [(d.agent, d.attempt) for d in result.dispatches] == [
        ("claude-a", 1),
        ("codex-b", 1),
        ("claude-c", 1),
    ]
    assert result.last_family == "claude"


def test_plan_continues_alternation_from_last_family() -> None:
    result = workflow.plan([make_issue()], [], [], make_config(), now=NOW, last_family="claude")
    assert result.dispatches[0].agent == "codex-a"


def test_plan_respects_max_slots_and_active_runs() -> None:
    busy = make_run(99, agent="claude-a", phase=RunPhase.RUNNING, handed_off=False)
    issues = [make_issue(n, age_minutes=100 - n) for n in (1, 2, 3)]
    result = workflow.plan(issues, [busy], [], make_config(max_slots=2), now=NOW)
    assert [(type(d).__name__, getattr(d, "agent", None)) for d in result.decisions] == [
        ("Dispatch", "claude-b"),
        ("Skip", None),
        ("Skip", None),
    ]
    assert {s.refusal for s in result.skips} == {Refusal.NO_SLOT}


def test_plan_max_slots_override_wins() -> None:
    issues = [make_issue(n, age_minutes=100 - n) for n in (1, 2, 3)]
    result = workflow.plan(issues, [], [], make_config(max_slots=1), now=NOW, max_slots=3)
    assert len(result.dispatches) == 3


def test_plan_review_never_goes_to_the_implementer_and_carries_the_pr() -> None:
    issue = make_issue(7, ("needs-review",))
    implemented = make_run(7, agent="claude-a")
    pull = Pull(API, 12, "issue-7", 7, None, False)
    result = workflow.plan([issue], [implemented], [pull], make_config(), now=NOW, last_family="codex")
    # Rotation would give claude-a, the implementer; another family at the same letter is preferred.
    assert result.dispatches == [Dispatch(issue, Kind.REVIEW, "codex-a", 1, 12)]


def test_plan_single_family_reviewer_moves_to_another_letter() -> None:
    issue = make_issue(7, ("needs-review",))
    implemented = make_run(7, agent="claude-a")
    result = workflow.plan([issue], [implemented], [], make_config(families=["claude"]), now=NOW)
    assert result.dispatches == [Dispatch(issue, Kind.REVIEW, "claude-b", 1, None)]


def test_plan_refuses_review_when_only_the_implementer_is_free() -> None:
    issue = make_issue(7, ("needs-review",))
    implemented = make_run(7, agent="claude-a")
    config = make_config(families=["claude"], max_slots=1)
    result = workflow.plan([issue], [implemented], [], config, now=NOW)
    assert result.skips == [Skip(issue, Refusal.SAME_AGENT, "only claude-a is free and it implemented this")]


def test_plan_same_number_in_two_repos_are_separate_issues() -> None:
    api7 = make_issue(7, repo=API, age_minutes=50)
    web7 = make_issue(7, repo=WEB, age_minutes=40)
    running = make_run(7, repo=API, phase=RunPhase.RUNNING, handed_off=False, agent="claude-c")
    result = workflow.plan([api7, web7], [running], [], make_config(), now=NOW)
    assert [d.issue.repo for d in result.dispatches] == [WEB]
    assert result.skips[0].refusal is Refusal.ACTIVE_ATTEMPT


def test_plan_retry_takes_the_next_attempt_number() -> None:
    failed = [make_run(1, attempt=a, outcome=Outcome.FAILURE) for a in (1, 2)]
    result = workflow.plan([make_issue(1)], failed, [], make_config(), now=NOW)
    assert result.dispatches[0].attempt == 3


def test_plan_review_pr_lookup_uses_the_configured_branch_pattern() -> None:
    issue = make_issue(7, ("needs-review",))
    config = make_config(safety={"branch_pattern": "agent/{N}"})
    pulls = [Pull(API, 3, "issue-7", None, None, False), Pull(API, 4, "agent/7", 7, None, False)]
    result = workflow.plan([issue], [], pulls, config, now=NOW)
    assert result.dispatches[0].pr == 4


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        pytest.param(Kind.IMPLEMENT, "ready", id="an implementation that never ran goes back to ready"),
        pytest.param(Kind.REVIEW, "needs-review", id="a review that never ran goes back to needs-review"),
    ],
)
def test_error_transition_retries_the_same_kind(kind: Kind, label: str) -> None:
    assert workflow.transition(kind, Outcome.ERROR, 0) == Transition(label, kind)


def test_errors_do_not_count_as_failures() -> None:
    history = History(
        (
            make_run(attempt=1, outcome=Outcome.ERROR),
            make_run(attempt=2, outcome=Outcome.ERROR),
            make_run(kind=Kind.REVIEW, attempt=1, outcome=Outcome.ERROR),
        )
    )
    assert (history.failures(), history.errors(Kind.IMPLEMENT), history.errors(Kind.REVIEW)) == (0, 2, 1)
    assert history.next_attempt(Kind.IMPLEMENT) == 3
    assert workflow.refuse(make_issue(), history, make_config(), NOW) is None
