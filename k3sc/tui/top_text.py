"""`k3sc top --once`: the dashboard as one printed snapshot, for scripts and bug reports.

Each section is `=== TITLE ===`, where its data came from, any error, then a table (or the
section's "(no …)" line), in the order of the live view. Colours and hyperlinks appear only on a
terminal; piped output is plain text.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from k3sc.errors import K3scError
from k3sc.tui import top_rows
from k3sc.tui.top_rows import Dashboard, Inputs, Loaded, Row, Section

if TYPE_CHECKING:
    from k3sc.tui.top_app import TopSource


def cell(row: Row, index: int, text: str) -> Text:
    """A cell in its row's style; the first cell of a row with a URL is a terminal hyperlink."""
    style = row.style
    if index == 0 and row.link:
        style = f"{style} link {row.link}".strip()
    return Text(text, style=style)


def section(part: Section) -> RenderableType:
    parts: list[RenderableType] = [Text(f"=== {part.title.upper()} ===", style="bold")]
    parts.append(Text(f"  {part.status}", style="dim"))
    parts += [Text(f"  error: {error}", style="red") for error in part.errors]
    parts += [Text(f"  {line}") for line in part.lines]
    if not part.rows and part.empty:
        parts.append(Text(f"  {part.empty}", style="dim"))
    else:
        table = Table(box=None, padding=(0, 1), pad_edge=True, show_edge=False, header_style="bold")
        for column in part.columns:
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for row in part.rows:
            table.add_row(*(cell(row, i, text) for i, text in enumerate(row.cells)))
        parts.append(table)
    parts.append(Text(""))
    return Group(*parts)


def render(dashboard: Dashboard) -> RenderableType:
    header = Text(f"=== FLEET ===\n  {dashboard.header}\n", style="bold")
    return Group(header, *(section(s) for s in dashboard.sections))


def print_snapshot(dashboard: Dashboard, console: Console) -> None:
    """Print the snapshot without the padding rich leaves at the end of table lines."""
    with console.capture() as captured:
        console.print(render(dashboard), soft_wrap=False)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


async def collect(source: TopSource, now: datetime) -> Inputs:
    """Every source read once, concurrently; a failure is kept as that source's error."""
    names = top_rows.SOURCES
    answers = await asyncio.gather(*(getattr(source, name)() for name in names), return_exceptions=True)
    inputs = Inputs()
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, Exception):
                raise answer
            message = str(answer) if isinstance(answer, K3scError) else f"{type(answer).__name__}: {answer}"
            inputs = inputs.updated(name, Loaded[Any]().failed(message, now))
        else:
            inputs = inputs.updated(name, Loaded[Any]().ok(answer, now))
    return inputs
