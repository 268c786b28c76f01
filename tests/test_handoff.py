"""Table tests for outcome verification and hand-off decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from k3sc import handoff
from k3sc.handoff import Evidence
from k3sc.labels import Kind
from k3sc.models import AgentRun, Outcome, Repo, RunPhase

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def run(kind: Kind = Kind.IMPLEMENT, phase: RunPhase = RunPhase.COMPLETED, message: str = "") -> AgentRun:
    return AgentRun(
        id="r1",
        repo=Repo("acme", "api"),
        issue=7,
        kind=kind,
        agent="claude-a",
        attempt=1,
        phase=phase,
        created_at=NOW,
        started_at=NOW,
        handed_off=False,
        message=message,
    )


OK_IMPL = Evidence("issue-7", branch_exists=True, pr=12)
OK_REVIEW = Evidence("issue-7", pr=12, review_posted=True)


@pytest.mark.parametrize(
    ("attempt", "evidence", "outcome", "reason"),
    [
        pytest.param(run(), OK_IMPL, Outcome.SUCCESS, "PR #12 open from issue-7", id="branch and PR mean success"),
        pytest.param(run(), Evidence("issue-7", branch_exists=False), Outcome.FAILURE,
                     "no branch issue-7 on the remote", id="exit 0 without a pushed branch fails"),
        pytest.param(run(), Evidence("issue-7", branch_exists=True, pr=None), Outcome.FAILURE,
                     "no open PR from issue-7", id="exit 0 without a PR fails"),
        pytest.param(run(phase=RunPhase.FAILED, message="exit code 1"), OK_IMPL, Outcome.FAILURE,
                     "agent run failed: exit code 1", id="a failed run fails even with a PR"),
        pytest.param(run(phase=RunPhase.CRASHED, message="pod vanished"), OK_IMPL, Outcome.FAILURE,
                     "agent run crashed: pod vanished", id="a crashed run fails"),
        pytest.param(replace(run(phase=RunPhase.CRASHED, message="pod vanished"), ran_for=12.5), OK_IMPL,
                     Outcome.FAILURE, "agent run crashed: pod vanished", id="a run that ran, then crashed, fails"),
        pytest.param(run(phase=RunPhase.CANCELLED), OK_IMPL, Outcome.FAILURE,
                     "agent run cancelled: no message", id="a cancelled run fails"),
        pytest.param(run(phase=RunPhase.FAILED, message="usage limit: resets 4pm"), OK_IMPL, Outcome.FAILURE,
                     "agent run failed: usage limit: resets 4pm", id="a usage limit is a failure, not success"),
        pytest.param(run(Kind.REVIEW), OK_REVIEW, Outcome.SUCCESS, "review posted on PR #12",
                     id="review comment means success"),
        pytest.param(run(Kind.REVIEW), Evidence("issue-7", pr=12, review_posted=False), Outcome.FAILURE,
                     "no review comment '## Review by claude-a' on PR #12", id="exit 0 without a review fails"),
        pytest.param(run(Kind.REVIEW), Evidence("issue-7", pr=None), Outcome.FAILURE,
                     "no open PR from issue-7 to review", id="review without a PR fails"),
    ],
)  # fmt: skip
def test_judge(attempt: AgentRun, evidence: Evidence, outcome: Outcome, reason: str) -> None:
    assert handoff.judge(attempt, evidence) == (outcome, reason)


@pytest.mark.parametrize(
    ("body", "posted", "expected"),
    [
        pytest.param("## Review by claude-a\nLGTM", NOW, True, id="heading by this agent"),
        pytest.param("\n  ## Review by claude-a", NOW, True, id="leading whitespace is fine"),
        pytest.param("## Review by claude-b", NOW, False, id="another agent's review does not count"),
        pytest.param("LGTM ## Review by claude-a", NOW, False, id="heading must come first"),
        pytest.param(
            "## Review by claude-a", NOW - timedelta(minutes=5), False, id="an old review does not count"
        ),
        pytest.param(
            "## Review by claude-a", NOW - timedelta(seconds=1), True, id="one-second clock skew is tolerated"
        ),
    ],
)
def test_is_review_by(body: str, posted: datetime, expected: bool) -> None:
    assert handoff.is_review_by(body, "claude-a", posted, NOW) is expected


@pytest.mark.parametrize(
    ("labels", "is_open", "prior", "write", "label"),
    [
        pytest.param(("claude-a", "bug"), True, 0, True, "needs-review", id="owned issue gets its labels"),
        pytest.param(("needs-review",), True, 0, False, "needs-review", id="already moved: no second write"),
        pytest.param(("claude-b",), True, 0, False, "needs-review", id="another agent holds it now"),
        pytest.param(("claude-a",), False, 0, False, "needs-review", id="closed issue is left alone"),
        pytest.param(None, True, 0, False, "needs-review", id="vanished issue is left alone"),
    ],
)
def test_decide_writes_only_while_owned(
    labels: tuple[str, ...] | None, is_open: bool, prior: int, write: bool, label: str
) -> None:
    result = handoff.decide(run(), OK_IMPL, labels, is_open, prior)
    assert (result.write_labels, result.transition.label, result.outcome) == (write, label, Outcome.SUCCESS)


def test_decide_counts_this_failure_towards_the_cap() -> None:
    failed = run(phase=RunPhase.FAILED, message="exit code 1")
    assert handoff.decide(failed, OK_IMPL, ("claude-a",), True, 1).transition.label == "ready"
    capped = handoff.decide(failed, OK_IMPL, ("claude-a",), True, 2)
    assert capped.transition.label == "needs-human"
    assert (
        capped.transition.comment is not None
        and "3 failed implementation attempts" in capped.transition.comment
    )


@pytest.mark.parametrize(
    ("has_pr", "label"),
    [
        pytest.param(True, "needs-human", id="orphaned review escalates"),
        pytest.param(False, "ready", id="orphaned implementation returns to ready"),
    ],
)
def test_orphan_transition(has_pr: bool, label: str) -> None:
    result = handoff.orphan_transition(has_pr, "codex-c")
    assert result.label == label
    assert result.comment is not None and "codex-c" in result.comment


def never_started(kind: Kind = Kind.IMPLEMENT, phase: RunPhase = RunPhase.CRASHED) -> AgentRun:
    # What Prefect records when the worker cannot start a run: a start time, but 0 s of running.
    return replace(run(kind, phase, "Failed to submit flow run to infrastructure"), ran_for=0.0)


@pytest.mark.parametrize(
    ("attempt", "prior_errors", "outcome", "label"),
    [
        pytest.param(never_started(), 0, Outcome.ERROR, "ready", id="implementation never started is retried"),
        pytest.param(never_started(Kind.REVIEW), 0, Outcome.ERROR, "needs-review",
                     id="review never started is retried, not escalated"),
        pytest.param(never_started(phase=RunPhase.CANCELLED), 1, Outcome.ERROR, "ready",
                     id="cancelled before it started is retried"),
        pytest.param(never_started(), 2, Outcome.FAILURE, "ready",
                     id="the third attempt that never started counts as a failure"),
        pytest.param(never_started(Kind.REVIEW), 2, Outcome.FAILURE, "needs-human",
                     id="a review that cannot start three times goes to a human"),
    ],
)  # fmt: skip
def test_attempts_that_never_started(
    attempt: AgentRun, prior_errors: int, outcome: Outcome, label: str
) -> None:
    result = handoff.decide(attempt, OK_IMPL, ("claude-a",), True, 0, prior_errors)
    assert (result.outcome, result.transition.label) == (outcome, label)
    assert "before it started" in result.reason
