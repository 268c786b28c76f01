"""The live `k3sc top` view: the fleet, its runs, costs, GitHub and the last scan, with keys that act.

Every source loads in its own worker on its own timer (Prefect ones every few seconds,
GitHub every 30 s through the ETag cache), so a slow or failing source delays only its own
sections, which say so on their title line; a source still loading is not asked again. The
sections are rebuilt from `top_rows.build` after every answer. Keys act through the same services
as the CLI commands and report in the status line; `k` asks before it kills.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from k3sc.errors import K3scError
from k3sc.tui import top_dashboard, top_rows, top_text
from k3sc.tui._base import RefreshingApp, StatusLine
from k3sc.tui.top_logs import LogScreen

if TYPE_CHECKING:
    from k3sc.config import Config
    from k3sc.models import Repo
    from k3sc.services.top import (
        FleetFacts,
        GitHubFacts,
        LogLine,
        RunFacts,
        ScanFacts,
        SecurityEvent,
        UsageEntry,
    )

PREFECT_SOURCES = ("fleet", "runs", "usage", "scan", "security")
GITHUB_SOURCES = ("github",)
# Bands of columns of sections: side by side from WIDE terminal columns on, stacked below that.
# The runs table is the widest, so it has a band to itself.
BANDS = (
    (("families",), ("leases",)),
    (("runs",),),
    (("security", "scan"), ("costs", "issues", "pulls")),
)
WIDE = 160
SELECTABLE = ("runs", "pulls")


class TopSource(Protocol):
    """What the dashboard reads and does; `k3sc.services.top.Live` in production, fakes in tests."""

    async def fleet(self) -> FleetFacts: ...
    async def runs(self) -> RunFacts: ...
    async def usage(self) -> tuple[UsageEntry, ...]: ...
    async def scan(self) -> ScanFacts: ...
    async def security(self) -> tuple[SecurityEvent, ...]: ...
    async def github(self) -> GitHubFacts: ...
    async def logs(self, run_ids: Sequence[str], lines: int) -> dict[str, list[LogLine]]: ...
    async def scan_now(self) -> str: ...
    async def pause(self, paused: bool) -> str: ...
    async def scale(self, step: int) -> str: ...
    async def kill(self, repo: Repo, issue: int) -> str: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class Confirm(ModalScreen[bool]):
    """A yes/no question; `y` answers yes, anything bound to no (n, escape) answers no."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static {
        width: auto; max-width: 90%; border: thick $error; padding: 1 2; background: $surface;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}\n\n[b]y[/b] yes   [b]n[/b] no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TopApp(RefreshingApp[None]):
    TITLE = "k3sc top"
    CSS = """
    #title { height: 1; padding: 0 1; background: $boost; }
    #header { height: auto; padding: 0 1; }
    #sections { height: 1fr; }
    .band { height: auto; layout: vertical; }
    #sections.wide .band { layout: horizontal; }
    .column { height: auto; }
    #sections.wide .column { width: 1fr; }
    .section { height: auto; }
    .section-title { height: auto; padding: 0 1; margin-top: 1; }
    .section-table { height: auto; max-height: 14; margin: 0 1; }
    #table-runs { max-height: 30; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *RefreshingApp.BINDINGS,
        Binding("n", "scan_now", "scan now"),
        Binding("p", "pause", "pause/resume"),
        Binding("plus,equals_sign", "scale(1)", "+slot", key_display="+"),
        Binding("minus", "scale(-1)", "-slot", key_display="-"),
        Binding("k", "kill", "kill run"),
        Binding("l", "live_logs", "logs"),
        *(Binding(str(n), f"copy_review({n})", "copy /review", show=n == 1) for n in range(1, 10)),
    ]

    def __init__(
        self,
        source: TopSource,
        config: Config,
        *,
        prefect_seconds: float = 3.0,
        github_seconds: float = 30.0,
        zone: tzinfo | None = None,
        clock: Callable[[], datetime] = utc_now,  # fixed in snapshot tests
        slots_source: str = "config",
    ) -> None:
        super().__init__(refresh_seconds=prefect_seconds)
        self.source = source
        self.config = config
        self.github_seconds = github_seconds
        self.zone = zone
        self.clock = clock
        self.slots_source = slots_source
        self.inputs = top_rows.Inputs()
        self.dashboard: top_rows.Dashboard | None = None
        self.busy: set[str] = set()  # sources with a load in flight
        self.acting: set[str] = set()  # actions in flight
        self.shown: dict[str, tuple[top_rows.Row, ...]] = {}  # each table's rows as last filled

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title")
        yield Static("loading…", id="header")
        with VerticalScroll(id="sections"):
            for band in BANDS:
                with Container(classes="band"):
                    for keys in band:
                        with Vertical(classes="column"):
                            for key in keys:
                                yield from self._section(key)
        yield StatusLine()
        yield Footer()

    @staticmethod
    def _section(key: str) -> ComposeResult:
        with Vertical(id=f"section-{key}", classes="section"):
            yield Static(key, id=f"title-{key}", classes="section-title")
            table: DataTable[Text] = DataTable(
                id=f"table-{key}",
                classes="section-table",
                cursor_type="row" if key in SELECTABLE else "none",
                zebra_stripes=key == "runs",
            )
            table.display = False
            yield table

    # ------------------------------------------------------------ loading

    def on_mount(self) -> None:
        if not self.is_headless:
            self._install_signal_handlers()
        self.set_interval(self.refresh_seconds, lambda: self._load_all(PREFECT_SOURCES))
        self.set_interval(self.github_seconds, lambda: self._load_all(GITHUB_SOURCES))
        self.start_refresh()
        self.query_one("#table-runs", DataTable).focus()

    def start_refresh(self, *, asked: bool = False) -> bool:
        started = self._load_all((*PREFECT_SOURCES, *GITHUB_SOURCES))
        if asked and not started:
            self.set_status("refresh already in progress")
        return started

    def _load_all(self, names: Sequence[str]) -> bool:
        return any([self._load(name) for name in names])

    def _load(self, name: str) -> bool:
        """Start a background load of one source unless one is in flight."""
        if name in self.busy:
            return False
        self.busy.add(name)
        self.loading = True
        self._loading_changed()
        fetch: Callable[[], Awaitable[Any]] = getattr(self.source, name)
        self._fetch(name, fetch)
        return True

    # Async workers, not thread workers: every source is I/O-bound and async to the socket, so
    # waiting never holds the screen, and on quit a hung request is cancelled at once instead of
    # being waited for (a thread would keep the process alive until its retries ran out).
    @work(group="load", exit_on_error=False)
    async def _fetch(self, name: str, fetch: Callable[[], Awaitable[Any]]) -> None:
        try:
            data = await fetch()
        except Exception as exc:
            self._loaded(
                name, None, str(exc) if isinstance(exc, K3scError) else f"{type(exc).__name__}: {exc}"
            )
        else:
            self._loaded(name, data, None)

    def _loaded(self, name: str, data: Any, error: str | None) -> None:
        self.busy.discard(name)
        self.loading = bool(self.busy)
        before = self.inputs.loaded(name)
        now = self.clock()
        self.inputs = self.inputs.updated(name, before.failed(error, now) if error else before.ok(data, now))
        self.loads += 1
        with contextlib.suppress(NoMatches):  # the screen is being torn down around us
            self._render()
            self._loading_changed()

    def on_resize(self, event: Resize) -> None:
        self.query_one("#sections").set_class(event.size.width >= WIDE, "wide")

    def on_loading_changed(self) -> None:
        self.query_one("#title", Static).update(self._title())

    # ------------------------------------------------------------ rendering

    def _title(self) -> Text:
        text = Text.assemble(("k3sc top ", "bold"))
        text.append(
            " REFRESHING " if self.loading else " LIVE ",
            style="black on yellow" if self.loading else "black on green",
        )
        updated = top_rows.stamp(self.dashboard.generated, self.clock(), self.zone) if self.dashboard else "-"
        text.append(
            f"  updated {updated}  •  prefect {self.refresh_seconds:g}s  •  github {self.github_seconds:g}s",
            style="dim",
        )
        return text

    def _render(self) -> None:
        self.dashboard = top_dashboard.build(
            self.inputs, self.config, self.clock(), self.zone, self.slots_source
        )
        header = Text(self.dashboard.header, style="bold")
        if self.dashboard.header_values.get("paused"):
            header.highlight_words(["PAUSED"], style="bold black on red")
        self.query_one("#header", Static).update(header)
        for part in self.dashboard.sections:
            self._fill(part)

    def _fill(self, part: top_rows.Section) -> None:
        title = Text.assemble((part.title, "bold"), ("  " + part.status, "dim"))
        for error in part.errors:
            title.append(f"\n  error: {error}", style="red")
        for line in part.lines:
            title.append(f"\n  {line}")
        if not part.rows and part.empty:
            title.append(f"\n  {part.empty}", style="dim")
        self.query_one(f"#title-{part.key}", Static).update(title)
        if self.shown.get(part.key) == part.rows:
            return  # refilling a table is most of a refresh's CPU; an idle tick changes no rows
        self.shown[part.key] = part.rows
        table: DataTable[Text] = self.query_one(f"#table-{part.key}", DataTable)
        row = table.cursor_row
        table.clear(columns=not table.columns)
        if not table.columns:
            table.add_columns(*part.columns)
        for item in part.rows:
            table.add_row(*(top_text.cell(item, i, text) for i, text in enumerate(item.cells)))
        table.display = bool(part.rows)
        if part.rows and table.cursor_type == "row":
            table.move_cursor(row=min(max(row, 0), len(part.rows) - 1))

    # ------------------------------------------------------------ selection

    def _rows(self, key: str) -> tuple[top_rows.Row, ...]:
        return self.dashboard.section(key).rows if self.dashboard else ()

    def selected_run(self) -> top_rows.Row | None:
        rows = self._rows("runs")
        if not rows:
            return None
        index = self.query_one("#table-runs", DataTable).cursor_row
        return rows[min(max(index, 0), len(rows) - 1)]

    # ------------------------------------------------------------ actions

    def act(
        self, label: str, action: Callable[[], Awaitable[str]], reload: Sequence[str] = PREFECT_SOURCES
    ) -> None:
        """Run one action in the background; its result (or error) lands in the status line."""
        if label in self.acting:
            self.set_status(f"{label}: already in progress")
            return
        self.acting.add(label)
        self.set_status(f"{label}…")
        self._do(label, action, reload)

    @work(group="act", exit_on_error=False)
    async def _do(self, label: str, action: Callable[[], Awaitable[str]], reload: Sequence[str]) -> None:
        try:
            message = await action()
        except K3scError as exc:
            message = f"{label} failed: {exc}"
        except Exception as exc:
            message = f"{label} failed: {type(exc).__name__}: {exc}"
        self._acted(label, message, reload)

    def _acted(self, label: str, message: str, reload: Sequence[str]) -> None:
        self.acting.discard(label)
        self.set_status(message)
        self._load_all(reload)

    def action_scan_now(self) -> None:
        self.act("scan now", self.source.scan_now)

    def action_pause(self) -> None:
        facts = self.inputs.fleet.data
        if facts is None:
            self.set_status("the fleet has not been read yet: try again in a moment")
            return
        paused = not facts.controls.paused
        self.act("pause" if paused else "resume", lambda: self.source.pause(paused))

    def action_scale(self, step: int) -> None:
        self.act("scale", lambda: self.source.scale(step))

    def action_kill(self) -> None:
        row = self.selected_run()
        if row is None:
            self.set_status("no run selected")
            return
        values = row.values
        from k3sc.models import Repo

        repo, issue = Repo.parse(str(values["repo"])), int(values["issue"])
        question = (
            f"Kill {repo}#{issue}? Its active runs ({values['agent']}, {values['kind']} attempt "
            f"{values['attempt']}, {values['state']}) are stopped and the issue moves to needs-human."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(f"kill {repo}#{issue}", lambda: self.source.kill(repo, issue))
            else:
                self.set_status("kill cancelled")

        self.push_screen(Confirm(question), answered)

    def action_live_logs(self) -> None:
        running = [r for r in self._rows("runs") if r.values.get("phase") in ("running", "waiting")]
        if not running:
            self.set_status("no running agents")
            return
        self.push_screen(LogScreen(self.source, running, self.refresh_seconds, lines=8))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "table-runs":
            return
        row = self.selected_run()
        if row is not None:
            self.push_screen(LogScreen(self.source, [row], self.refresh_seconds, lines=200))

    def action_copy_review(self, number: int) -> None:
        rows = self._rows("pulls")
        if number > len(rows):
            self.set_status(f"no PR row {number}")
            return
        self.copy(str(rows[number - 1].values["review_command"]), "review command")


def run(source: TopSource, config: Config, *, zone: tzinfo | None, slots_source: str) -> None:
    """Open the dashboard until `q` or a signal; the terminal is restored either way."""
    TopApp(source, config, zone=zone, slots_source=slots_source).run()
