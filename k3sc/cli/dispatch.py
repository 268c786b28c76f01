"""`k3sc dispatch`: scan now, or `--dry-run` to print the plan the next scan would carry out."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from k3sc.cli import _output


def dispatch(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what the next scan would do (each issue: action, agent, reason)."
        ),
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Start a dispatch scan now (a forced run of the k3sc-dispatch deployment)."""
    from k3sc.services import dispatch as service

    if not dry_run:
        started = _output.run(service.trigger())
        if json_:
            _output.print_json(started)
        else:
            typer.echo(f"scan requested: run {started['name']} ({started['url']})")
        return
    from k3sc import config as k3sc_config

    plan = _output.run(service.dry_run(k3sc_config.load().config))
    for note in plan["notes"]:
        _output.warn(note)
    if json_:
        _output.print_json(plan)
    else:
        _render(plan["rows"])


def _render(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table("issue", "action", "agent", "reason", box=None, pad_edge=False)
    for row in rows:
        table.add_row(Text(row["issue"]), Text(row["action"]), Text(row["agent"] or "-"), Text(row["reason"]))
    _output.console().print(table)
