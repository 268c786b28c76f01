"""`k3sc top`'s pure part: sources' answers → section rows, cost roll-ups, the scan summary parsed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from k3sc.models import Outcome, RunPhase
from k3sc.orchestration import controls
from k3sc.services.top import FleetFacts, GitHubFacts, RunFacts
from k3sc.tui import top_costs, top_dashboard, top_fleet, top_rows, top_scan
from k3sc.tui.top_costs import Bucket
from k3sc.tui.top_rows import Inputs, Loaded
from tests.top import fakes
from tests.top.fakes import NOW

ZONE = ZoneInfo("UTC")


def full(**overrides: Loaded[object]) -> Inputs:
    inputs = Inputs(
        fleet=Loaded().ok(fakes.FLEET, NOW),
        runs=Loaded().ok(fakes.RunFacts(fakes.RUNS, fakes.LAST_LINES), NOW),
        usage=Loaded().ok(fakes.USAGE, NOW),
        scan=Loaded().ok(fakes.ScanFacts(fakes.SCAN_MARKDOWN, NOW - timedelta(minutes=1)), NOW),
        github=Loaded().ok(fakes.GITHUB, NOW),
        security=Loaded().ok(fakes.SECURITY, NOW),
    )
    for name, loaded in overrides.items():
        inputs = inputs.updated(name, loaded)
    return inputs


def build(inputs: Inputs) -> top_rows.Dashboard:
    return top_dashboard.build(inputs, fakes.CONFIG, NOW, ZONE, "config")


def column(section: top_rows.Section, name: str) -> list[str]:
    index = section.columns.index(name)
    return [row.cells[index] for row in section.rows]


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        pytest.param(999, "999", id="under a thousand as is"),
        pytest.param(265_400, "265k", id="thousands as k"),
        pytest.param(1_250_000, "1.2M", id="millions with one decimal"),
    ],
)
def test_tokens(count: int, shown: str) -> None:
    assert top_rows.tokens(count) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        pytest.param(5, "0m 05s", id="seconds padded"),
        pytest.param(754, "12m 34s", id="minutes and seconds"),
        pytest.param(3 * 3600 + 120, "3h 02m", id="hours and minutes past an hour"),
        pytest.param(-3, "0m 00s", id="a clock skew never shows negative"),
    ],
)
def test_duration(seconds: float, shown: str) -> None:
    assert top_rows.duration(seconds) == shown


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        pytest.param(NOW - timedelta(hours=2), "08:00:00", id="today as a time"),
        pytest.param(NOW - timedelta(days=1), "Nov 30 10:00", id="before today with the date"),
        pytest.param(None, "", id="no time is empty"),
    ],
)
def test_stamp(moment: datetime | None, shown: str) -> None:
    assert top_rows.stamp(moment, NOW, ZONE) == shown


def test_clip_keeps_one_line_and_marks_the_cut() -> None:
    assert top_rows.clip("a\nlong   line of text", 12) == "a long li..."
    assert top_rows.clip("short", 12) == "short"


# --------------------------------------------------------------------------- sources


def test_a_failed_source_keeps_its_last_data_and_says_why() -> None:
    good = Loaded[int]().ok(1, NOW)
    assert good.failed("boom", NOW + timedelta(seconds=3)) == Loaded(1, "boom", NOW + timedelta(seconds=3))
    assert good.failed("boom", NOW).ok(2, NOW) == Loaded(2, None, NOW)


def test_a_source_that_has_not_answered_shows_loading_and_no_rows() -> None:
    dashboard = build(full(github=Loaded()))
    issues = dashboard.section("issues")
    assert (issues.rows, issues.status, issues.errors, issues.empty) == ((), "github: loading…", (), "")
    assert dashboard.section("runs").rows  # the other sources still fill theirs


def test_a_failing_source_puts_its_error_on_every_section_it_feeds() -> None:
    error = "Prefect API POST /artifacts/filter → 500: boom"
    dashboard = build(full(usage=Loaded().failed(error, NOW)))
    for key in ("families", "runs", "costs"):
        assert dashboard.section(key).errors == (f"usage: {error}",), key
    assert dashboard.section("issues").errors == ()


# --------------------------------------------------------------------------- header and families


def test_header_counts_runs_and_says_paused() -> None:
    held = controls.Controls(paused=True)
    dashboard = build(full(fleet=Loaded().ok(FleetFacts(held, fakes.FLEET.memory), NOW)))
    assert dashboard.header == (
        "Agents: 1 running, 1 waiting, 1 done, 1 failed (recent runs) | Slots: 5 (max_slots (config)) | "
        "PAUSED | Scan: last 09:59:00, next 10:02:00"
    )
    assert dashboard.header_values["paused"] is True


@pytest.mark.parametrize(
    ("held", "budget", "expected"),
    [
        pytest.param(
            controls.Controls(),
            {},
            [("claude", "OK", "available"), ("codex", "OK", "available")],
            id="nothing set: both available",
        ),
        pytest.param(
            controls.Controls(disabled={"claude": {"by": "ops", "at": "09:00"}}),
            {},
            [
                ("claude", "DISABLED", "disabled via k3sc disable (by ops at 09:00)"),
                ("codex", "OK", "available"),
            ],
            id="disabled names who and when",
        ),
        pytest.param(
            controls.Controls(parks=(fakes.PARK,)),
            {},
            [
                ("claude", "OK", "available"),
                ("codex", "PARKED", "family parked until 12:00 UTC (five_hour limit)"),
            ],
            id="parked until its reset",
        ),
        pytest.param(
            controls.Controls(parks=(fakes.PARK,), disabled={"codex": {"by": "ops", "at": "09:00"}}),
            {},
            [
                ("claude", "OK", "available"),
                ("codex", "DISABLED", "disabled via k3sc disable (by ops at 09:00)"),
            ],
            id="disabled wins over parked",
        ),
        pytest.param(
            controls.Controls(),
            {"per_day_usd": 1.6},
            [
                ("claude", "BUDGET", "daily budget: $1.38 spent + $1.25 expected would pass $1.60"),
                ("codex", "OK", "available"),
            ],
            id="a family whose next run would pass the daily budget",
        ),
    ],
)
def test_family_availability(
    held: controls.Controls, budget: dict[str, float], expected: list[tuple[str, ...]]
) -> None:
    config = fakes.make_config(budget=budget) if budget else fakes.CONFIG
    inputs = full(fleet=Loaded().ok(FleetFacts(held, fakes.FLEET.memory), NOW))
    rows = top_fleet.families(inputs, config, NOW, ZONE).rows
    assert [row.cells for row in rows] == expected


def test_families_say_when_the_budget_could_not_be_read() -> None:
    rows = top_fleet.families(full(usage=Loaded()), fakes.CONFIG, NOW, ZONE).rows
    assert rows[0].cells == ("claude", "OK", "available (today's budget not read yet)")


# --------------------------------------------------------------------------- runs


@pytest.mark.parametrize(
    ("agent_run", "state"),
    [
        pytest.param(fakes.run(1, RunPhase.RUNNING), "running", id="running"),
        pytest.param(fakes.run(1, RunPhase.WAITING, state_name="Late"), "waiting", id="late is just waiting"),
        pytest.param(
            fakes.run(1, RunPhase.COMPLETED, outcome=Outcome.SUCCESS), "completed → success", id="handed off"
        ),
        pytest.param(
            fakes.run(1, RunPhase.FAILED, state_name="Parked", outcome=Outcome.PARKED),
            "failed (Parked) → parked",
            id="Prefect's state name when it says more",
        ),
        pytest.param(fakes.run(1, RunPhase.CRASHED, state_name="Crashed"), "crashed", id="not repeated"),
    ],
)
def test_run_state(agent_run: fakes.AgentRun, state: str) -> None:
    assert top_fleet.run_state(agent_run) == state


def test_runs_sort_active_first_then_done_failed_cancelled_newest_first() -> None:
    ordered = top_fleet.sort_runs(fakes.RUNS)
    assert [(r.issue, r.phase.value) for r in ordered] == [
        (8, "waiting"),
        (7, "running"),
        (3, "completed"),
        (5, "failed"),
        (4, "cancelled"),
    ]


def test_run_rows_carry_usage_cost_and_last_output() -> None:
    section = build(full()).section("runs")
    by_issue = {row.values["issue"]: row for row in section.rows}
    done = by_issue[3]
    assert (done.values["tokens"], done.values["cost_usd"], done.values["duration_s"]) == (
        265_000,
        1.25,
        720.0,
    )
    assert done.cells[8:10] == ("265k", "$1.25")
    running = by_issue[7]
    assert running.values["last_output"] == "  ↳ 14 passed in 2.31s"
    assert (running.values["duration_s"], running.style) == (240.0, "green")
    assert running.link == "https://github.example/acme/api/issues/7"
    assert by_issue[5].values["cost_usd"] == pytest.approx(0.1262, abs=1e-4)  # no cost reported: list price


def test_a_run_that_never_started_shows_no_start_or_duration() -> None:
    never = fakes.run(1, RunPhase.CANCELLED, ran=0)
    inputs = full(runs=Loaded().ok(RunFacts((never,)), NOW))
    row = build(inputs).section("runs").rows[0]
    assert (row.values["started"], row.values["duration_s"], row.cells[6:8]) == (None, None, ("", ""))


# --------------------------------------------------------------------------- costs


def test_roll_up_buckets_today_week_from_sunday_and_all_time() -> None:
    rolled = top_costs.roll_up(fakes.USAGE, NOW, ZONE)
    assert rolled["today"] == Bucket(2, pytest.approx(1.25 + 0.1262, abs=1e-4), 305_000)  # type: ignore[arg-type]
    assert (rolled["week"].jobs, rolled["all"].jobs) == (3, 4)
    assert list(rolled["models"]) == ["claude-sonnet-4-5", "claude-opus-4-6", "gpt-5"]


@pytest.mark.parametrize(
    ("now", "start"),
    [
        pytest.param(datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC), id="tuesday"),
        pytest.param(datetime(2026, 11, 29, 23, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC), id="sunday"),
        pytest.param(
            datetime(2026, 11, 28, 1, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC), id="saturday"
        ),
    ],
)
def test_week_starts_at_the_last_sunday_midnight(now: datetime, start: datetime) -> None:
    assert top_costs.week_start(now, ZONE) == start


def test_today_is_local_midnight_in_the_given_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert top_costs.local_midnight(datetime(2026, 12, 1, 0, 30, tzinfo=UTC), berlin).isoformat() == (
        "2026-12-01T00:00:00+01:00"
    )


def test_costs_section_summary_and_rows() -> None:
    section = build(full()).section("costs")
    assert section.lines == ("Jobs: 4 | Total: $7.88 | Avg: $1.97/job | Tokens: 2.0M",)
    assert [row.cells[0] for row in section.rows] == [
        "Today",
        "This week",
        "All time",
        "  claude-sonnet-4-5",
        "  claude-opus-4-6",
        "  gpt-5",
    ]


def test_no_usage_yet_is_no_cost_data() -> None:
    section = build(full(usage=Loaded().ok((), NOW))).section("costs")
    assert (section.rows, section.empty) == ((), "(no cost data)")


# --------------------------------------------------------------------------- GitHub


def test_issue_rows_are_coloured_by_state_and_owner() -> None:
    section = build(full()).section("issues")
    assert [(r.cells[0], r.cells[2], r.cells[3], r.style) for r in section.rows] == [
        ("#7", "owned", "claude-a", "yellow"),
        ("#9", "ready", "", "green"),
        ("#3", "needs-review", "", "cyan"),
        ("#2", "needs-human", "", "magenta"),
    ]
    assert section.status == "github 10:00:00  (2 requests, 2 not modified)"


def test_pull_rows_are_numbered_for_the_copy_keys_and_show_the_lease_holder() -> None:
    pulls = (
        tuple(fakes.Pull(fakes.API, n, f"issue-{n}", n, None, False, title=f"pr {n}") for n in range(20, 31))
        + fakes.GITHUB.pulls[:1]
    )
    inputs = full(github=Loaded().ok(GitHubFacts(fakes.GITHUB.issues, pulls), NOW))
    section = build(inputs).section("pulls")
    assert column(section, "#") == [str(n) for n in range(1, 10)] + ["", "", ""]
    assert section.rows[-1].values["owner"] == "claude-4"
    assert section.rows[0].values["review_command"] == "/review api 20"
    assert section.rows[0].link == "https://github.example/acme/api/pull/20"


def test_lease_rows_mark_expired_ones() -> None:
    expired = controls.Controls(leases=(fakes.LEASE,))
    later = NOW + timedelta(hours=13)
    section = top_fleet.leases(
        full(fleet=Loaded().ok(FleetFacts(expired, fakes.FLEET.memory), NOW)), later, ZONE
    )
    assert section.rows[0].cells[5] == "22:00:00 (expired)"
    assert (section.rows[0].values["expired"], section.rows[0].style) == (True, "dim")


# --------------------------------------------------------------------------- last scan and security


def test_scan_summary_becomes_decision_rows_and_lines() -> None:
    rows, lines = top_scan.scan_rows(fakes.SCAN_MARKDOWN)
    assert rows == [
        ("handed off", "acme/api#3", "", "implement by claude-b succeeded → needs-review"),
        ("errors", "", "", "acme/web: 502 from GitHub"),
        ("implement", "acme/api#7", "claude-a", "ready, free slot"),
        ("skip", "acme/api#9", "", "no free slot: 2 of 2 in use"),
    ]
    assert lines == [
        "Slots: 2. Families: claude: available, codex: family parked until 12:00 UTC (five_hour limit).",
        "Active agent runs: 2. Next scan: 2026-12-01 10:02:00 UTC.",
    ]


def test_a_paused_scan_says_so() -> None:
    assert top_scan.scan_rows("# k3sc dispatch\n\n**Paused**: no new work claimed.\n") == (
        [],
        ["Paused: no new work claimed."],
    )


def test_no_scan_yet() -> None:
    section = build(full(scan=Loaded().ok(fakes.ScanFacts(), NOW))).section("scan")
    assert (section.rows, section.empty, section.title) == ((), "(no scan recorded yet)", "Last scan")


def test_security_events_name_the_run_they_came_from() -> None:
    section = build(full()).section("security")
    assert section.title == "Security events (1)"
    assert section.rows[0].cells == ("09:58:00", "#7", "claude-a", "git push --force blocked (force push)")


# --------------------------------------------------------------------------- JSON


def test_the_json_document_has_every_section_and_is_serialisable() -> None:
    document = build(full()).as_json()
    assert list(document["sections"]) == [
        "families",
        "leases",
        "issues",
        "runs",
        "security",
        "costs",
        "pulls",
        "scan",
    ]
    assert document["header"]["slots"] == 2
    json.dumps(document)  # raises if a value is not JSON
