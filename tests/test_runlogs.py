"""`k3sc.runlogs`: which run `k3sc logs` means, which lines matter, how a live log is read, how a run reads."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from k3sc import runlogs
from k3sc.errors import K3scError, UsageError
from k3sc.labels import Kind
from k3sc.models import AgentRun, RunPhase
from tests.builders import API, NOW, WEB, make_run


@dataclass(frozen=True)
class Line:
    """A log record as the API gives it (the fields `runlogs.LogLine` reads)."""

    id: str
    message: str
    timestamp: datetime = NOW
    name: str = runlogs.RUN_LOGGER
    level: int = 20


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --------------------------------------------------------------------------- pick

IMPLEMENT_1 = make_run(7, attempt=1, minutes_ago=90)
IMPLEMENT_2 = make_run(7, attempt=2, minutes_ago=60)
REVIEW_1 = make_run(7, kind=Kind.REVIEW, agent="codex-a", attempt=1, minutes_ago=30)
OTHER_ISSUE = make_run(8, attempt=5, minutes_ago=1)
WEB_7 = make_run(7, repo=WEB, attempt=1, minutes_ago=10)
HISTORY = [IMPLEMENT_1, REVIEW_1, IMPLEMENT_2, OTHER_ISSUE]


@pytest.mark.parametrize(
    ("runs", "wanted", "expected"),
    [
        pytest.param(HISTORY, runlogs.Wanted(7), REVIEW_1, id="a bare issue gets its newest run of any kind"),
        pytest.param(
            HISTORY,
            runlogs.Wanted(7, kind=Kind.IMPLEMENT),
            IMPLEMENT_2,
            id="--kind implement gets the newest attempt, not the oldest",
        ),
        pytest.param(
            list(reversed(HISTORY)),
            runlogs.Wanted(7, kind=Kind.IMPLEMENT),
            IMPLEMENT_2,
            id="the order the runs arrive in does not matter",
        ),
        pytest.param(
            HISTORY,
            runlogs.Wanted(7, attempt=1),
            REVIEW_1,
            id="--attempt 1 matches both kinds: the newer wins",
        ),
        pytest.param(
            HISTORY,
            runlogs.Wanted(7, kind=Kind.IMPLEMENT, attempt=1),
            IMPLEMENT_1,
            id="--kind and --attempt name one run",
        ),
        pytest.param(
            [*HISTORY, WEB_7], runlogs.Wanted(7, repo=WEB), WEB_7, id="a repo settles a number in two repos"
        ),
        pytest.param(
            [*HISTORY, WEB_7], runlogs.Wanted(7, repo=API), REVIEW_1, id="the repo is compared case-blind"
        ),
        pytest.param(
            [
                replace(IMPLEMENT_1, started_at=NOW),
                replace(IMPLEMENT_2, started_at=NOW - timedelta(hours=1)),
            ],
            runlogs.Wanted(7),
            replace(IMPLEMENT_1, started_at=NOW),
            id="the start time orders runs that started",
        ),
    ],
)
def test_pick_chooses_the_newest_matching_run(
    runs: list[AgentRun], wanted: runlogs.Wanted, expected: AgentRun
) -> None:
    assert runlogs.pick(runs, wanted) == expected


def test_a_bare_number_in_two_repos_is_a_usage_error_naming_both() -> None:
    with pytest.raises(UsageError) as caught:
        runlogs.pick([*HISTORY, WEB_7], runlogs.Wanted(7, kind=Kind.REVIEW))
    assert str(caught.value) == (
        "issue #7 has agent runs in several repos (acme/api, acme/web); rerun as `k3sc logs <repo> 7`."
    )
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        pytest.param(runlogs.Wanted(9), "no agent run found for issue #9.", id="no run of the issue"),
        pytest.param(
            runlogs.Wanted(7, repo=WEB, kind=Kind.REVIEW, attempt=3),
            "no agent run found for acme/web#7 (kind review, attempt 3).",
            id="nothing matches the filters",
        ),
    ],
)
def test_nothing_matching_is_an_operational_error(wanted: runlogs.Wanted, message: str) -> None:
    with pytest.raises(K3scError) as caught:
        runlogs.pick(HISTORY, wanted)
    assert (str(caught.value), caught.value.exit_code) == (message, 1)


# --------------------------------------------------------------------------- meaningful lines


@pytest.mark.parametrize(
    ("logger", "text", "meaningful"),
    [
        pytest.param(runlogs.RUN_LOGGER, "I'll add the failing test first.", True, id="the agent's words"),
        pytest.param(runlogs.RUN_LOGGER, "[error] overloaded: try later", True, id="an error the agent hit"),
        pytest.param(runlogs.RUN_LOGGER, "[tool error] exit 1", True, id="a failed tool is worth seeing"),
        pytest.param(runlogs.RUN_LOGGER, "   ", False, id="blank"),
        pytest.param(runlogs.RUN_LOGGER, "[tool] Bash: pytest -q", False, id="a tool call"),
        pytest.param(runlogs.RUN_LOGGER, "  ↳ 3 passed (+2 lines)", False, id="a tool result preview"),
        pytest.param(runlogs.RUN_LOGGER, "[result] success turns=4", False, id="the final result"),
        pytest.param(runlogs.RUN_LOGGER, "[init] model opus, session s1", False, id="session start"),
        pytest.param(runlogs.RUN_LOGGER, '[usage] {"total_tokens": 5}', False, id="usage"),
        pytest.param(runlogs.RUN_LOGGER, "[retry] API error 529, attempt 3/10", False, id="a retry"),
        pytest.param(runlogs.RUN_LOGGER, "Finished in state Completed()", False, id="Prefect's engine"),
        pytest.param(runlogs.RUN_LOGGER, "Beginning flow run 'x' for flow 'k3sc-agent'", False, id="engine"),
        pytest.param("prefect.flow_runs.worker", "Opening process...", False, id="the worker's lines"),
        pytest.param("prefect.task_runs", "cloned acme/api", False, id="a task run's lines"),
    ],
)
def test_is_meaningful(logger: str, text: str, meaningful: bool) -> None:
    assert runlogs.is_meaningful(logger, text) is meaningful


def test_last_meaningful_reads_every_line_of_multi_line_records() -> None:
    lines = [
        Line("1", "Planning the fix."),
        Line("2", "Tests pass now.\n[tool] Bash: git push\n"),
        Line("3", "[result] success turns=9"),
        Line("4", "Opening PR", name="prefect.flow_runs.worker"),
    ]
    assert runlogs.last_meaningful(lines) == "Tests pass now."
    assert runlogs.last_meaningful(lines[2:]) == ""


# --------------------------------------------------------------------------- following


def test_cursor_returns_each_line_once_in_time_order_and_rereads_the_late_window() -> None:
    cursor = runlogs.Cursor(late=timedelta(seconds=10))
    assert cursor.after() is None
    first = [Line("b", "two", at(2)), Line("a", "one", at(1))]
    assert [r.id for r in cursor.take(first)] == ["a", "b"]
    assert cursor.after() == at(2 - 10)
    # A batch from another process arrives late, with an older timestamp, beside repeats.
    again = [
        Line("a", "one", at(1)),
        Line("late", "late", at(1.5)),
        Line("b", "two", at(2)),
        Line("c", "3", at(3)),
    ]
    assert [r.id for r in cursor.take(again)] == ["late", "c"]
    assert cursor.take(again) == []


def test_cursor_forgets_ids_older_than_its_next_read() -> None:
    cursor = runlogs.Cursor(late=timedelta(seconds=10))
    cursor.take([Line("old", "x", at(0))])
    cursor.take([Line("new", "y", at(60))])
    assert cursor.after() == at(50)
    assert cursor._seen == {"new": at(60)}  # bounded memory, and "old" can no longer be returned


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(Line("1", "hello", at(5)), ["12:00:05 hello"], id="info: time and text"),
        pytest.param(
            Line("1", "over budget", at(5), level=30), ["12:00:05 WARNING over budget"], id="warning"
        ),
        pytest.param(
            Line("1", "a\nb", at(5), level=40), ["12:00:05 ERROR a", "12:00:05 ERROR b"], id="lines"
        ),
        pytest.param(Line("1", "", at(5)), ["12:00:05 "], id="an empty message still shows"),
    ],
)
def test_render_line(line: Line, expected: list[str]) -> None:
    assert runlogs.render_line(line, UTC) == expected


# --------------------------------------------------------------------------- the listing


def test_row_of_a_finished_run() -> None:
    run = replace(
        make_run(7, attempt=2, agent="claude-b"),
        started_at=NOW - timedelta(minutes=5),
        ended_at=NOW - timedelta(minutes=1, seconds=30),
        ran_for=210.0,
        state_name="Completed",
    )
    row = runlogs.row(run, "Opened PR #12.", NOW + timedelta(hours=1))
    assert row == runlogs.Row(
        id=run.id,
        issue="acme/api#7",
        repo="acme/api",
        number=7,
        agent="claude-b",
        kind="implement",
        attempt=2,
        state="Completed",
        started=NOW - timedelta(minutes=5),
        duration_s=210.0,
        last_output="Opened PR #12.",
    )
    assert row.cells(UTC) == [
        "#7",
        "acme/api",
        "claude-b",
        "implement",
        "2",
        "Completed",
        "Nov 27 11:55",
        "3m30s",
        "Opened PR #12.",
    ]
    assert row.as_json()["started"] == "2026-11-27T11:55:00+00:00"


@pytest.mark.parametrize(
    ("run", "state", "duration"),
    [
        pytest.param(
            replace(make_run(phase=RunPhase.RUNNING), started_at=NOW - timedelta(seconds=42), ran_for=0.0),
            "Running",
            42.0,
            id="a running run's duration runs up to now",
        ),
        pytest.param(make_run(phase=RunPhase.WAITING), "Waiting", None, id="a queued run has no duration"),
        pytest.param(
            replace(make_run(phase=RunPhase.CRASHED), started_at=NOW, ended_at=NOW, ran_for=0.0),
            "Crashed",
            None,
            id="a run that never started has no start or duration",
        ),
    ],
)
def test_row_state_and_duration(run: AgentRun, state: str, duration: float | None) -> None:
    row = runlogs.row(run, "", NOW)
    assert (row.state, row.duration_s) == (state, duration)


def test_long_last_output_is_clipped_in_the_table_only() -> None:
    row = runlogs.row(make_run(), "x" * 100, NOW)
    assert row.cells(UTC, width=10)[-1] == "x" * 9 + "…"
    assert row.as_json()["last_output"] == "x" * 100


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.4, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"), (3720, "1h02m")],
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert runlogs.duration(seconds) == shown


@pytest.mark.parametrize(
    ("run", "settled"),
    [
        pytest.param(replace(make_run(), ended_at=NOW - timedelta(seconds=16)), True, id="ended 16 s ago"),
        pytest.param(
            replace(make_run(), ended_at=NOW - timedelta(seconds=5)), False, id="late lines may come"
        ),
        pytest.param(make_run(), False, id="no end time"),
        pytest.param(
            replace(make_run(phase=RunPhase.RUNNING), ended_at=NOW - timedelta(hours=1)),
            False,
            id="running again",
        ),
    ],
)
def test_settled(run: AgentRun, settled: bool) -> None:
    assert runlogs.settled(run, NOW) is settled
