"""What every k3sc dashboard shares: background refresh, a status line, copying, clean exits.

`RefreshingApp` loads its data in a thread worker on a timer and on `r`, never on the event loop,
so a slow source cannot freeze the screen; a refresh asked for while one is running is skipped
(and said so when a person asked). SIGINT, SIGTERM and SIGHUP end the app through `exit()`, so
Textual restores the terminal and the process exits 0. `copy` uses Textual's OSC 52 clipboard,
which works over SSH.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import ClassVar, Generic, TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.widgets import Static

T = TypeVar("T")

EXIT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StatusLine(Static):
    """One line at the bottom saying what the last action did."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; color: $text-muted; }
    """


class RefreshingApp(App[None], Generic[T]):
    """A dashboard whose data comes from `load()` (run in a thread) and goes to `show()` (UI thread)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("r", "refresh", "refresh"),
    ]

    def __init__(self, *, refresh_seconds: float) -> None:
        super().__init__()
        self.refresh_seconds = refresh_seconds
        self.loading = False
        self.loads = 0  # completed loads, for tests and the header

    # ------------------------------------------------------------ to implement

    def load(self) -> T:
        """Fetch the data; runs in a worker thread, so it may block."""
        raise NotImplementedError

    def show(self, data: T) -> None:
        """Render fresh data; runs on the event loop."""
        raise NotImplementedError

    def show_error(self, error: BaseException) -> None:
        self.set_status(f"refresh failed: {type(error).__name__}: {error}")

    # ------------------------------------------------------------ plumbing

    def on_mount(self) -> None:
        if not self.is_headless:
            self._install_signal_handlers()
        self.set_interval(self.refresh_seconds, self._tick)
        self.start_refresh()

    def _tick(self) -> None:
        self.start_refresh()

    def start_refresh(self, *, asked: bool = False) -> bool:
        """Start a background load unless one is running; returns whether it started."""
        if self.loading:
            if asked:
                self.set_status("refresh already in progress")
            return False
        self.loading = True
        self._loading_changed()
        self._load_in_thread()
        return True

    @work(thread=True, group="refresh", exit_on_error=False)
    def _load_in_thread(self) -> None:
        try:
            data = self.load()
        except Exception as exc:
            self.call_from_thread(self._finish_failed, exc)
        else:
            self.call_from_thread(self._finish, data)

    def _finish(self, data: T) -> None:
        self.loading = False
        if not self.is_running:
            return  # the load finished after the app closed
        self.loads += 1
        try:
            self.show(data)
        except NoMatches:
            return  # the screen is being torn down around us
        self._loading_changed()

    def _finish_failed(self, error: BaseException) -> None:
        self.loading = False
        with contextlib.suppress(NoMatches):
            self.show_error(error)
        self._loading_changed()

    def _loading_changed(self) -> None:
        # A timer tick can land while the screen is torn down; there is nothing left to badge then.
        with contextlib.suppress(NoMatches):
            self.on_loading_changed()

    def on_loading_changed(self) -> None:
        """Hook for a LIVE/REFRESHING badge."""

    def action_refresh(self) -> None:
        if self.start_refresh(asked=True):
            self.set_status("refreshing…")

    def set_status(self, message: str) -> None:
        for line in self.query(StatusLine):
            line.update(message)

    def copy(self, text: str, what: str) -> None:
        """Put `text` on the clipboard (OSC 52) and say so."""
        self.copy_to_clipboard(text)
        self.set_status(f"copied {what}: {text}")

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for name in EXIT_SIGNALS:
            number = getattr(signal, name, None)
            if number is None:
                continue  # SIGHUP does not exist on Windows
            if sys.platform == "win32":
                signal.signal(number, lambda *_: loop.call_soon_threadsafe(self.exit))
            else:
                loop.add_signal_handler(number, self.exit)
