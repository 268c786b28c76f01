"""The invariants the chaos run checks (bench/_chaos.py): each must catch the break it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from k3sc.labels import Kind
from k3sc.models import AgentRun, Outcome, RunPhase
from tests.builders import make_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _chaos import Plan, Result, check

REF = "acme/api#1"
IMPLEMENTED = make_run(1, kind=Kind.IMPLEMENT)
REVIEWED = make_run(1, kind=Kind.REVIEW, agent="codex-a")
LOG = ["acme/api#1 labels: ready → claude-a", "acme/api#1 labels: claude-a → needs-review"]


def _problems(labels: list[str], log: list[str], recorded: list[AgentRun]) -> list[str]:
    result = Result(Plan(issues=1, rate=0.0))
    check(result, {REF: labels}, log, recorded)
    return result.problems


def test_a_clean_run_has_no_problems() -> None:
    assert _problems(["needs-human"], LOG, [IMPLEMENTED, REVIEWED]) == []


def test_the_failure_cap_ends_at_needs_human_without_a_review() -> None:
    failed = [make_run(1, attempt=n, outcome=Outcome.FAILURE) for n in (1, 2, 3)]
    assert _problems(["needs-human"], LOG, failed) == []


@pytest.mark.parametrize(
    ("labels", "log", "recorded", "expected"),
    [
        pytest.param(["ready"], LOG, [IMPLEMENTED, REVIEWED], "lost: acme/api#1 at ['ready']", id="lost"),
        pytest.param(
            ["needs-human", "ready"],
            LOG,
            [IMPLEMENTED, REVIEWED],
            "labels: acme/api#1 has ['needs-human', 'ready']",
            id="two workflow labels",
        ),
        pytest.param(
            ["needs-human"],
            [*LOG, "acme/api#1 labels: needs-review (unchanged)"],
            [IMPLEMENTED, REVIEWED],
            "duplicate: acme/api#1 labels: needs-review (unchanged)",
            id="a label written twice",
        ),
        pytest.param(
            ["needs-human"],
            LOG,
            [IMPLEMENTED, REVIEWED, make_run(1, kind=Kind.REVIEW, agent="codex-b")],
            "duplicate: ('acme/api#1', 'review', 1) ran 2 times",
            id="an attempt run twice",
        ),
        pytest.param(
            ["needs-human"],
            LOG,
            [IMPLEMENTED, make_run(1, kind=Kind.REVIEW, handed_off=False)],
            "attempts: acme/api#1 review 1: completed, handed off False",
            id="a run never handed off",
        ),
        pytest.param(
            ["needs-human"],
            LOG,
            [IMPLEMENTED, make_run(1, kind=Kind.REVIEW, phase=RunPhase.RUNNING, handed_off=False)],
            "attempts: acme/api#1 review 1: running, handed off False",
            id="a run still running",
        ),
        pytest.param(
            ["needs-human"],
            LOG,
            [make_run(1, attempt=2), REVIEWED],
            "attempts: acme/api#1 implement attempts [2]",
            id="an attempt missing",
        ),
        pytest.param(
            ["needs-human"],
            LOG,
            [IMPLEMENTED],
            "attempts: acme/api#1 implemented but never reviewed",
            id="no review",
        ),
        pytest.param(
            ["needs-human"],
            LOG,
            [IMPLEMENTED, make_run(1, kind=Kind.REVIEW, phase=RunPhase.RUNNING, handed_off=False)],
            "attempts: acme/api#1 implemented but never reviewed",
            id="a review still running is no review",
        ),
    ],
)
def test_each_break_is_reported(
    labels: list[str], log: list[str], recorded: list[AgentRun], expected: str
) -> None:
    assert expected in _problems(labels, log, recorded)


def test_a_review_that_failed_and_went_to_a_human_is_no_problem() -> None:
    failed = make_run(1, kind=Kind.REVIEW, agent="codex-a", phase=RunPhase.CRASHED, outcome=Outcome.FAILURE)
    assert _problems(["needs-human"], LOG, [IMPLEMENTED, failed]) == []


def test_a_persons_relabel_is_not_a_duplicate() -> None:
    log = [*LOG, "acme/api#1 labels: needs-human (unchanged) (by alice)"]
    assert _problems(["needs-human"], log, [IMPLEMENTED, REVIEWED]) == []
