"""The live `k3sc sessions` view: stat cards, the active 5-hour block and the running sessions.

The data comes from a `load` callable (normally `Collector.collect`, which keeps the incremental
index warm between refreshes) run in a worker thread every `refresh` seconds and on `r`. Panels sit
side by side from 160 columns, stacked below that. `1`-`9` copy that row's session id, `c` the
selected row's working directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import tzinfo
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.widgets import DataTable, Footer, Static

from k3sc.sessions import render
from k3sc.sessions.snapshot import SessionView, Snapshot
from k3sc.tui._base import RefreshingApp, StatusLine

if TYPE_CHECKING:
    from k3sc.sessions.blocks import BlockReport
    from k3sc.sessions.snapshot import Collector

WIDE = 160
BAR = 24
COLUMNS = ("#", "PID", "Project", "Cost", "Total", "Cached", "Output", "Last", "Status")


def bar(share: float, width: int = BAR) -> str:
    filled = max(0, min(width, round(share * width)))
    return "█" * filled + "░" * (width - filled)


class SessionsApp(RefreshingApp[Snapshot]):
    TITLE = "k3sc sessions"
    CSS = """
    #title { height: 1; padding: 0 1; background: $boost; }
    #cards { height: 3; }
    .card { width: 1fr; height: 3; border: round $primary; padding: 0 1; }
    #body { height: 1fr; layout: vertical; }
    #body.wide { layout: horizontal; }
    #block { border: round $secondary; padding: 0 1; height: auto; max-height: 9; }
    #body.wide #block { width: 1fr; height: 1fr; max-height: 100%; }
    #live { border: round $secondary; height: 1fr; }
    #body.wide #live { width: 1fr; }
    #table { height: 1fr; }
    #detail { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    #body.wide #detail { max-height: 5; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *RefreshingApp.BINDINGS,
        Binding("c", "copy_cwd", "copy cwd"),
        *(Binding(str(n), f"copy_session({n})", "copy id", show=n == 1) for n in range(1, 10)),
    ]

    def __init__(
        self, load: Callable[[], Snapshot], *, refresh_seconds: float = 5.0, zone: tzinfo | None = None
    ) -> None:
        super().__init__(refresh_seconds=refresh_seconds)
        self._load = load
        self.zone = zone
        self.snapshot: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title")
        with Horizontal(id="cards"):
            for name in ("sessions", "cost", "tokens", "cache"):
                yield Static(classes="card", id=f"card-{name}")
        with Container(id="body"):
            yield Static("loading…", id="block")
            with Vertical(id="live"):
                table: DataTable[str | Text] = DataTable(id="table", cursor_type="row", zebra_stripes=True)
                table.add_columns(*COLUMNS)
                yield table
                yield Static(id="detail")
        yield StatusLine()
        yield Footer()

    # ------------------------------------------------------------ data

    def load(self) -> Snapshot:
        return self._load()

    def show(self, data: Snapshot) -> None:
        self.snapshot = data
        self._fill_cards(data)
        self.query_one("#block", Static).update(self._block_text(data))
        self._fill_table(data)
        self._fill_detail()

    def on_loading_changed(self) -> None:
        self.query_one("#title", Static).update(self._title())

    def on_resize(self, event: Resize) -> None:
        self.query_one("#body").set_class(event.size.width >= WIDE, "wide")

    # ------------------------------------------------------------ rendering

    def _title(self) -> Text:
        text = Text.assemble(("k3sc sessions ", "bold"))
        text.append(
            " REFRESHING " if self.loading else " LIVE ",
            style="black on yellow" if self.loading else "black on green",
        )
        updated = render.clock(self.snapshot.generated_ms, self.zone) if self.snapshot else "-"
        text.append(f"  updated {updated}  •  refresh {self.refresh_seconds:g}s", style="dim")
        return text

    def _fill_cards(self, data: Snapshot) -> None:
        totals = data.totals
        share = totals.cached / totals.total if totals.total else 0.0
        cards = {
            "sessions": ("Sessions", f"{len(data.sessions)}"),
            "cost": ("Cost", render.money(totals.cost, 2)),
            "tokens": ("Tokens", render.compact(totals.total)),
            "cache": ("Cached", f"{share:.0%}"),
        }
        for name, (label, value) in cards.items():
            self.query_one(f"#card-{name}", Static).update(
                Text.assemble((label + "  ", "dim"), (value, "bold"))
            )

    def _block_text(self, data: Snapshot) -> Text:
        text = Text.assemble(("Active Block", "bold"), ("  local estimate, high-water limit\n", "dim"))
        if data.block_error:
            text.append(data.block_error, style="red")
            return text
        block = data.block
        if block is None:
            text.append("No active block data.", style="dim")
            if data.high_water:
                text.append(f"\nhigh-water mark {render.number(data.high_water)} tokens", style="dim")
            return text
        self._block_body(text, block, data.generated_ms)
        return text

    def _block_body(self, text: Text, block: BlockReport, now_ms: int) -> None:
        t, zone = block.totals, self.zone
        text.append(f"{render.when(block.start_ms, zone)} → {render.clock(block.end_ms, zone)}")
        text.append(f"  remaining {render.remaining((block.end_ms - now_ms) / 60_000)}\n")
        text.append(f"Tokens {render.number(t.total)}  cost {render.money(t.cost, 2)}")
        if block.burn is not None:
            style = {"high": "red", "moderate": "yellow"}.get(block.burn.indicator, "green")
            text.append(f"  burn {render.number(block.burn.tokens_per_minute)} tok/min ")
            text.append(f"{render.money(block.burn.cost_per_hour, 2)}/hr ")
            text.append(f"({block.burn.indicator})", style=style)
        text.append("\n")
        if block.projection is not None:
            projection = block.projection
            text.append(f"Projected {render.number(projection.tokens)}  {render.money(projection.cost, 2)}\n")
        if block.limit is not None:
            limit = block.limit
            style = {"exceeds": "red", "warning": "yellow"}.get(limit.status.value, "green")
            text.append(f"Max {bar(limit.used_percent / 100, 16)} {limit.used_percent:.1f}% → ")
            text.append(f"{limit.projected_percent:.1f}% of {render.number(limit.tokens)} ")
            text.append(f" {limit.status.value.upper()} ", style=f"bold black on {style}")
            text.append("\n")
        text.append(
            f"in {render.number(t.input)}  out {render.number(t.output)}  "
            f"cache-create {render.number(t.cache_create)}  cache-read {render.number(t.cache_read)}\n",
            style="dim",
        )
        if block.models:
            text.append(f"Models {', '.join(render.short_model(m) for m in block.models)}")

    def _fill_table(self, data: Snapshot) -> None:
        table: DataTable[str | Text] = self.query_one("#table", DataTable)
        row = table.cursor_row
        table.clear()
        for position, session in enumerate(data.sessions, 1):
            t = session.totals
            status = session.status or ""
            if session.waiting_for:
                status += f": {session.waiting_for}"
            table.add_row(
                str(position),
                f"{session.pid}" + ("" if session.agent == "claude" else " cx"),
                os.path.basename(session.cwd.rstrip("/\\")) if session.cwd else "-",
                render.money(t.cost, 2) if t else "-",
                render.compact(t.total) if t else "-",
                render.compact(t.cached) if t else "-",
                render.compact(t.output) if t else "-",
                render.clock(session.last_ms, self.zone),
                Text(status, style="yellow") if session.status == "waiting" else status,
            )
        if data.sessions:
            table.move_cursor(row=min(row, len(data.sessions) - 1))

    def _selected(self) -> SessionView | None:
        if self.snapshot is None or not self.snapshot.sessions:
            return None
        row = self.query_one("#table", DataTable).cursor_row
        return self.snapshot.sessions[min(max(row, 0), len(self.snapshot.sessions) - 1)]

    def _fill_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        if self.snapshot is not None and not self.snapshot.sessions:
            detail.update(f"No live sessions: {render.NO_SESSIONS}.")
            return
        session = self._selected()
        if session is None:
            detail.update("")
            return
        lines = [f"session {session.active_session_id or session.session_id or '-'} [{session.mapping}]"]
        lines.append(f"cwd {session.cwd or '-'}")
        extra = [f"started {render.when(session.started_ms, self.zone)}"]
        if session.name:
            extra.insert(0, f"name {session.name}")
        if session.models:
            extra.append("models " + ", ".join(render.short_model(m) for m in session.models))
        lines.append("  ".join(extra))
        lines += [error for error in (session.metadata_error, session.usage_error) if error]
        detail.update("\n".join(lines))

    def on_data_table_row_highlighted(self) -> None:
        with contextlib.suppress(NoMatches):  # a highlight queued before the screen closed
            self._fill_detail()

    # ------------------------------------------------------------ actions

    def action_copy_session(self, number: int) -> None:
        sessions = self.snapshot.sessions if self.snapshot else ()
        if number > len(sessions):
            self.set_status(f"no session {number}")
            return
        session = sessions[number - 1]
        ident = session.active_session_id or session.session_id
        if not ident:
            self.set_status(f"session {number} has no session ID")
            return
        self.copy(ident, "session ID")

    def action_copy_cwd(self) -> None:
        session = self._selected()
        if session is None or not session.cwd:
            self.set_status("no working directory to copy")
            return
        self.copy(session.cwd, "cwd")


def run(collector: Collector, *, refresh: float, zone: tzinfo | None) -> None:
    """Open the live view until `q` or a signal; the terminal is restored either way."""
    SessionsApp(collector.collect, refresh_seconds=refresh, zone=zone).run()
