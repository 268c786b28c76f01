"""The live `k3sc top`: a pilot per key asserting what the key asked of the source, sources that
fail or hang without freezing the screen, and SVG snapshots at 80x24 and 200x50."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from k3sc.tui._base import StatusLine
from k3sc.tui.top_app import PREFECT_SOURCES, Confirm, TopApp
from k3sc.tui.top_logs import LogScreen
from tests.top import fakes

UTC = ZoneInfo("UTC")


def app_for(source: fakes.FakeSource, prefect: float = 3600, github: float = 3600) -> TopApp:
    return TopApp(
        source,
        fakes.CONFIG,
        prefect_seconds=prefect,
        github_seconds=github,
        zone=UTC,
        clock=lambda: fakes.NOW,
    )


def status(app: TopApp) -> str:
    return str(app.query_one(StatusLine).render())


def title(app: TopApp, key: str) -> str:
    return str(app.query_one(f"#title-{key}", Static).render())


def rows(app: TopApp, key: str) -> int:
    return app.query_one(f"#table-{key}", DataTable).row_count


async def settle(app: TopApp, pilot: Pilot[None], *, until: int = 6) -> None:
    """Wait until `until` sources have answered (each in its own background worker)."""
    for _ in range(200):
        await pilot.pause(0.01)
        if app.loads >= until and not app.acting:
            return
    raise AssertionError(f"only {app.loads} loads, acting {app.acting}")


async def test_every_section_fills_from_its_own_source() -> None:
    source = fakes.FakeSource()
    app = app_for(source)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(app, pilot)
        assert source.calls == dict.fromkeys(("fleet", "runs", "usage", "scan", "security", "github"), 1)
        assert {
            k: rows(app, k) for k in ("families", "leases", "runs", "costs", "issues", "pulls", "scan")
        } == {
            "families": 2,
            "leases": 1,
            "runs": 5,
            "costs": 6,
            "issues": 4,
            "pulls": 2,
            "scan": 4,
        }
        assert "PAUSED" not in str(app.query_one("#header", Static).render())


async def test_a_failing_source_shows_its_error_and_the_rest_still_renders() -> None:
    app = app_for(fakes.FakeSource(failing=["security", "usage"]))
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(app, pilot)
        assert "error: security: Prefect API POST /security/filter → 500: boom" in title(app, "security")
        assert "error: usage: Prefect API POST /usage/filter → 500: boom" in title(app, "costs")
        assert rows(app, "runs") == 5 and app.is_running


async def test_a_slow_source_delays_only_its_sections_and_is_not_asked_twice() -> None:
    source = fakes.FakeSource(slow=["github"], slow_for=10)
    app = app_for(source, prefect=0.05)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(app, pilot, until=5)
        assert "github: loading…" in title(app, "issues") and rows(app, "issues") == 0
        assert rows(app, "runs") == 5
        for _ in range(100):  # the Prefect timer keeps ticking while GitHub hangs
            await pilot.pause(0.02)
            if source.calls["runs"] >= 3:
                break
        assert source.calls["runs"] >= 3
        await pilot.press("r")  # GitHub is still loading: it is not started again
        assert source.calls["github"] == 1
        source.gate.set()
        for _ in range(100):
            await pilot.pause(0.02)
            if rows(app, "issues"):
                break
        assert rows(app, "issues") == 4


async def test_r_while_every_source_is_loading_is_refused() -> None:
    source = fakes.FakeSource(slow=[*PREFECT_SOURCES, "github"], slow_for=10)
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert status(app) == "refresh already in progress"
        source.gate.set()
        await settle(app, pilot)


@pytest.mark.parametrize(
    ("keys", "done", "message"),
    [
        pytest.param(("n",), [("scan_now", None)], "scan started: scan on k3sc top", id="n scans now"),
        pytest.param(("p",), [("pause", True)], "dispatch paused", id="p pauses a running dispatcher"),
        pytest.param(("plus",), [("scale", 1)], "max slots: 2 -> 3", id="+ adds a slot"),
        pytest.param(("minus",), [("scale", -1)], "max slots: 2 -> 1", id="- removes a slot"),
    ],
)
async def test_action_keys_call_the_service_and_report(
    keys: tuple[str, ...], done: list[tuple[str, object]], message: str
) -> None:
    source = fakes.FakeSource()
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press(*keys)
        await settle(app, pilot)
        assert source.done == done
        assert status(app) == message


async def test_p_resumes_a_paused_dispatcher_and_the_header_says_paused() -> None:
    source = fakes.FakeSource(paused=True)
    app = app_for(source)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(app, pilot)
        assert "PAUSED" in str(app.query_one("#header", Static).render())
        before = app.loads
        await pilot.press("p")
        await settle(app, pilot, until=before + len(PREFECT_SOURCES))  # the action reloads Prefect
        assert source.done == [("pause", False)]
        assert "PAUSED" not in str(app.query_one("#header", Static).render())


async def test_k_asks_first_and_n_kills_nothing() -> None:
    source = fakes.FakeSource()
    app = app_for(source)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(app, pilot)
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert "Kill acme/api#8?" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert (source.done, status(app)) == ([], "kill cancelled")


async def test_k_then_y_kills_the_selected_runs_issue() -> None:
    source = fakes.FakeSource()
    app = app_for(source)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "k", "y")  # the second row: #7, running
        await settle(app, pilot)
        assert source.done == [("kill", "acme/api#7")]
        assert status(app) == "acme/api#7: stopped implement attempt 1 by claude-a; now needs-human"


async def log_read(app: TopApp, pilot: Pilot[None]) -> None:
    """Wait until a log screen is up and done reading its lines."""
    for _ in range(500):
        await pilot.pause(0.01)
        if isinstance(app.screen, LogScreen) and not app.screen.reading:
            return
    raise AssertionError(f"no log screen done reading: {app.screen}")


@pytest.mark.parametrize(
    ("key", "clipboard", "message"),
    [
        pytest.param(
            "1", "/review api 12", "copied review command: /review api 12", id="1 copies the first PR"
        ),
        pytest.param("2", "/review web 14", "copied review command: /review web 14", id="2 the second"),
        pytest.param("9", "", "no PR row 9", id="past the last PR says so"),
    ],
)
async def test_number_keys_copy_the_review_command(key: str, clipboard: str, message: str) -> None:
    app = app_for(fakes.FakeSource())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press(key)
        await pilot.pause()
        assert (app.clipboard, status(app)) == (clipboard, message)


async def test_enter_opens_the_selected_runs_log_and_escape_comes_back() -> None:
    source = fakes.FakeSource()
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "enter")
        await log_read(app, pilot)
        assert source.done == [("logs", ("run-api-7-1",))]
        assert "14 passed in 2.31s" in app.screen.text.plain
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, LogScreen)


async def test_l_shows_every_running_agent() -> None:
    source = fakes.FakeSource()
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("l")
        for _ in range(100):
            await pilot.pause(0.01)
            if source.done and not app.screen.reading:  # type: ignore[attr-defined]
                break
        assert source.done == [("logs", ("run-api-8-1", "run-api-7-1"))]
        assert app.screen.text.plain.splitlines()[0] == " claude-a acme/api#7  running"  # type: ignore[attr-defined]
        assert "(no log lines yet)" in app.screen.text.plain  # type: ignore[attr-defined]


async def test_q_quits_at_once_while_a_source_hangs() -> None:
    source = fakes.FakeSource(slow=["github"], slow_for=120)
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, until=5)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert "github" not in source.finished  # its request was cancelled, not waited for


async def test_q_quits() -> None:
    app = app_for(fakes.FakeSource())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@pytest.mark.parametrize(
    ("width", "wide"),
    [
        pytest.param(159, False, id="stacked below 160 columns"),
        pytest.param(160, True, id="side by side from 160"),
    ],
)
async def test_sections_sit_side_by_side_on_wide_terminals(width: int, wide: bool) -> None:
    app = app_for(fakes.FakeSource())
    async with app.run_test(size=(width, 40)) as pilot:
        await settle(app, pilot)
        assert app.query_one("#sections").has_class("wide") is wide


# ------------------------------------------------------------------ snapshots

APP = Path(__file__).parent / "top" / "top_app_fixture.py"


@pytest.mark.parametrize(("size"), [pytest.param((80, 24), id="80x24"), pytest.param((200, 50), id="200x50")])
def test_snapshot_with_security_failing_and_github_slow(snap_compare: object, size: tuple[int, int]) -> None:
    assert snap_compare(str(APP), terminal_size=size, run_before=prefect_loaded)  # type: ignore[operator]


async def prefect_loaded(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, TopApp)
    await settle(app, pilot, until=len(PREFECT_SOURCES))
