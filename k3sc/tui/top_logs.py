"""`k3sc top`'s log view: the last lines of one run (`enter`) or of every running agent (`l`).

The lines are the runs' Prefect logs, which the agent flow fills line by line from the agent's
output; they are read again in a background worker on the dashboard's Prefect cadence, so the
view follows the agents while it is open. `escape`, `l` or `q` go back to the dashboard.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

if TYPE_CHECKING:
    from k3sc.services.top import LogLine
    from k3sc.tui.top_app import TopSource
    from k3sc.tui.top_rows import Row


class LogScreen(Screen[None]):
    DEFAULT_CSS = """
    LogScreen #log-title { height: 1; padding: 0 1; background: $boost; }
    LogScreen #log-body { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,l,q", "back", "dashboard"),
        Binding("r", "reload", "refresh"),
    ]

    def __init__(self, source: TopSource, runs: Sequence[Row], every: float, *, lines: int) -> None:
        super().__init__()
        self.source = source
        self.runs = list(runs)
        self.every = every
        self.lines = lines
        self.reading = False
        self.text = Text("loading…", style="dim")

    def compose(self) -> ComposeResult:
        what = f"{len(self.runs)} running" if len(self.runs) > 1 else run_name(self.runs[0])
        yield Static(Text.assemble(("Live logs ", "bold"), (f"({what})", "dim")), id="log-title")
        with VerticalScroll(id="log-body"):
            yield Static(self.text, id="log-text")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.every, self.action_reload)
        self.action_reload()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reload(self) -> None:
        if self.reading:
            return
        self.reading = True
        ids = [str(r.values["id"]) for r in self.runs]
        self._read(ids)

    @work(group="logs", exit_on_error=False)
    async def _read(self, ids: list[str]) -> None:
        try:
            found: dict[str, list[LogLine]] | str = await self.source.logs(ids, self.lines)
        except Exception as exc:
            found = f"{type(exc).__name__}: {exc}"
        self._show(found)

    def _show(self, found: dict[str, list[LogLine]] | str) -> None:
        self.reading = False
        if isinstance(found, str):
            self.text = Text(f"reading the logs failed: {found}", style="red")
        else:
            self.text = render(self.runs, found, self.lines)
        with contextlib.suppress(Exception):  # the screen was popped while we read
            self.query_one("#log-text", Static).update(self.text)


def run_name(row: Row) -> str:
    return f"{row.values['agent']} {row.values['repo']}#{row.values['issue']}"


def render(runs: Sequence[Row], found: dict[str, list[Any]], lines: int) -> Text:
    """A yellow header per run, then its last lines (padded, so the runs line up)."""
    text = Text()
    for row in sorted(runs, key=lambda r: str(r.values["agent"])):
        tail = found.get(str(row.values["id"]), [])[-lines:]
        text.append(f" {run_name(row)}  {row.values['state']}\n", style="bold yellow")
        if not tail:
            text.append("   (no log lines yet)\n", style="dim")
        for line in tail:
            text.append(f"   {line.at:%H:%M:%S} ", style="dim")
            text.append(line.text.rstrip() + "\n", style="red" if line.level >= 40 else "green")
        text.append("\n")
    return text
