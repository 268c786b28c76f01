"""Hand-off decisions: was an attempt a success, and what happens to its issue now.

Success means the outcome exists (invariant 3): for an implementation, the branch on the
remote and an open PR from it; for a review, a PR comment beginning `## Review by <agent>`
posted after the run started. An exit code, or a Prefect `Completed`, alone is never success.
Pure functions: the dispatcher gathers the evidence from GitHub and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from k3sc import labels, usage, workflow
from k3sc.labels import Kind
from k3sc.models import AgentRun, Outcome, RunPhase
from k3sc.workflow import Transition

REVIEW_HEADING = "## Review by "
# GitHub timestamps have one-second resolution; allow that much skew when comparing.
_CLOCK_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Evidence:
    """What GitHub shows after an attempt (None = not looked at)."""

    branch: str
    branch_exists: bool | None = None
    pr: int | None = None
    review_posted: bool | None = None


def review_heading(agent: str) -> str:
    return f"{REVIEW_HEADING}{agent}"


def is_review_by(body: str, agent: str, posted_at: datetime, run_started: datetime) -> bool:
    """A comment counts as the run's review if it starts with the heading and is not older."""
    return body.lstrip().startswith(review_heading(agent)) and posted_at >= run_started - _CLOCK_SLACK


def judge(run: AgentRun, evidence: Evidence) -> tuple[Outcome, str]:
    """The verified outcome of a finished attempt and a one-line reason."""
    if run.state_name == usage.PARKED:
        hit = usage.LimitHit.decode(run.message)
        return Outcome.PARKED, hit.headline if hit else "usage limit"
    if run.state_name == usage.BUDGET_STOPPED:
        stop = usage.BudgetStop.decode(run.message)
        return Outcome.STOPPED, stop.headline if stop else "stopped by budget"
    if run.phase is not RunPhase.COMPLETED:
        detail = run.message.strip() or "no message"
        if run.never_started:
            return Outcome.ERROR, f"agent run {run.phase.value} before it started: {detail}"
        return Outcome.FAILURE, f"agent run {run.phase.value}: {detail}"
    if run.kind is Kind.IMPLEMENT:
        if not evidence.branch_exists:
            return Outcome.FAILURE, f"no branch {evidence.branch} on the remote"
        if evidence.pr is None:
            return Outcome.FAILURE, f"no open PR from {evidence.branch}"
        return Outcome.SUCCESS, f"PR #{evidence.pr} open from {evidence.branch}"
    if evidence.pr is None:
        return Outcome.FAILURE, f"no open PR from {evidence.branch} to review"
    if not evidence.review_posted:
        return Outcome.FAILURE, f"no review comment '{review_heading(run.agent)}' on PR #{evidence.pr}"
    return Outcome.SUCCESS, f"review posted on PR #{evidence.pr}"


@dataclass(frozen=True)
class Handoff:
    """What to do with the issue of a finished attempt."""

    outcome: Outcome
    reason: str
    transition: Transition
    write_labels: bool  # False when the issue is no longer held by this run's agent
    note: str = ""


def decide(
    run: AgentRun,
    evidence: Evidence,
    issue_labels: tuple[str, ...] | None,
    issue_open: bool,
    prior_failures: int,
    prior_errors: int = 0,
) -> Handoff:
    """Judge the attempt, pick the transition, and decide whether the labels are still ours.

    Labels are written only while the issue still carries this run's owner label: a human
    who moved it meanwhile wins, and a re-run after a crash never writes twice. An attempt
    that never started is retried, but after `MAX_ERRORS` of them it counts as a failure.
    """
    outcome, reason = judge(run, evidence)
    if outcome is Outcome.ERROR and prior_errors + 1 >= workflow.MAX_ERRORS:
        outcome, reason = Outcome.FAILURE, f"{reason} ({prior_errors + 1} attempts never started)"
    failures = prior_failures + (1 if run.kind is Kind.IMPLEMENT and outcome is Outcome.FAILURE else 0)
    transition = workflow.transition(run.kind, outcome, failures, reason)
    if issue_labels is None or not issue_open:
        return Handoff(outcome, reason, transition, False, "issue is closed or gone")
    owner = workflow.read_labels(issue_labels).owner
    if owner != run.agent:
        held = f"held by {owner}" if owner else "no longer claimed"
        return Handoff(outcome, reason, transition, False, f"issue {held}; labels left alone")
    return Handoff(outcome, reason, transition, True)


def orphan_transition(has_open_pr: bool, owner: str) -> Transition:
    """An issue claimed by one of our agents with no live run is handed off as a failure.

    With an open PR from its branch the lost attempt was a review (escalate to a human);
    otherwise an implementation (back to `ready`).
    """
    note = f"k3sc found this issue claimed by {owner} with no agent run behind it"
    if has_open_pr:
        return Transition(labels.NEEDS_HUMAN, None, f"{note}; the review was lost, so a human should review.")
    return Transition(labels.READY, Kind.IMPLEMENT, f"{note}; returned it to `ready`.")
