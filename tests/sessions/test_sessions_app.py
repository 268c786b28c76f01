"""The Textual view of `k3sc sessions`: a pilot per key, asserting what the key did, and SVG
snapshots of the screen at 80x24 and 200x50 (pytest-textual-snapshot)."""

from __future__ import annotations

import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from k3sc.sessions.snapshot import Snapshot
from k3sc.tui.sessions_app import SessionsApp
from tests.sessions import fakes

UTC = ZoneInfo("UTC")


class Source:
    """A loader that counts its calls and can be held mid-load, to catch a refresh in flight."""

    def __init__(self, snapshot: Snapshot | None = None, error: Exception | None = None) -> None:
        self.snapshot = snapshot or fakes.snapshot()
        self.error = error
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> Snapshot:
        self.gate.wait(5)
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.snapshot


def app_for(source: Source, refresh: float = 60.0) -> SessionsApp:
    return SessionsApp(source, refresh_seconds=refresh, zone=UTC)


def status(app: SessionsApp) -> str:
    from k3sc.tui._base import StatusLine

    return str(app.query_one(StatusLine).render())


async def test_the_first_load_runs_in_the_background_and_fills_the_table() -> None:
    source = Source()
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert source.calls == 1 and app.loads == 1
        table = app.query_one("#table")
        assert table.row_count == 4  # type: ignore[attr-defined]


async def test_r_loads_again_and_a_second_r_while_loading_is_refused() -> None:
    source = Source()
    app = app_for(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        source.gate.clear()
        await pilot.press("r")
        await pilot.pause()
        assert app.loading
        await pilot.press("r")
        await pilot.pause()
        assert status(app) == "refresh already in progress"
        source.gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert (source.calls, app.loads, app.loading) == (2, 2, False)


async def test_the_timer_refreshes_without_a_key() -> None:
    source = Source()
    app = app_for(source, refresh=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(40):
            await pilot.pause(0.05)
            if source.calls >= 3:
                break
        assert source.calls >= 3


@pytest.mark.parametrize(
    ("key", "clipboard", "message"),
    [
        pytest.param(
            "1",
            "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70",
            "copied session ID: 3f2a9c1e",
            id="1 copies the first session id",
        ),
        pytest.param(
            "2",
            "9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6",
            "copied session ID: 9d0e1f2a",
            id="2 copies the active id after a /clear",
        ),
        pytest.param("4", "", "session 4 has no session ID", id="a session without an id says so"),
        pytest.param("9", "", "no session 9", id="a key past the last session says so"),
        pytest.param(
            "c",
            "/home/dev/src/k3sc",
            "copied cwd: /home/dev/src/k3sc",
            id="c copies the selected session's cwd",
        ),
    ],
)
async def test_copy_keys(key: str, clipboard: str, message: str) -> None:
    app = app_for(Source())
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert app.clipboard == clipboard
        assert status(app).startswith(message)


async def test_moving_the_cursor_changes_what_c_copies() -> None:
    app = app_for(Source())
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("down", "down", "c")
        await pilot.pause()
        assert app.clipboard == "/home/dev/src/api"


async def test_a_failing_source_shows_an_error_and_keeps_running() -> None:
    app = app_for(Source(error=OSError("disk gone")))
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert status(app) == "refresh failed: OSError: disk gone"
        assert app.is_running


async def test_q_quits() -> None:
    app = app_for(Source())
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
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
async def test_panels_sit_side_by_side_on_wide_terminals(width: int, wide: bool) -> None:
    app = app_for(Source())
    async with app.run_test(size=(width, 40)) as pilot:
        await pilot.pause()
        assert app.query_one("#body").has_class("wide") is wide


# ------------------------------------------------------------------ snapshots

APP = Path(__file__).with_name("sessions_app_fixture.py")


@pytest.mark.parametrize(("size"), [pytest.param((80, 24), id="80x24"), pytest.param((200, 50), id="200x50")])
def test_snapshot_with_sessions(snap_compare: object, size: tuple[int, int]) -> None:
    assert snap_compare(str(APP), terminal_size=size, run_before=wait_for_data)  # type: ignore[operator]


def test_snapshot_with_no_running_session(snap_compare: object) -> None:
    assert snap_compare(
        str(APP.with_name("sessions_app_empty_fixture.py")), terminal_size=(80, 24), run_before=wait_for_data
    )  # type: ignore[operator]


async def wait_for_data(pilot: object) -> None:
    app = pilot.app  # type: ignore[attr-defined]
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]
