"""`k3sc sessions`: this machine's Claude Code and Codex sessions, their usage and the 5-hour block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from k3sc.cli import _output
from k3sc.errors import UsageError

if TYPE_CHECKING:
    from datetime import tzinfo

MODES = ("auto", "calculate", "display")


def sessions(
    once: Annotated[bool, typer.Option("--once", help="Print one plain-text snapshot and exit.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the snapshot as one JSON document.")] = False,
    timings: Annotated[
        bool, typer.Option("--timings", help="Add where the time went to the text snapshot (implies --once).")
    ] = False,
    refresh: Annotated[float, typer.Option("--refresh", help="Seconds between live refreshes (1-60).")] = 5.0,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Show times in this IANA zone (default: local).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode", help="Cost: auto (a line's own costUSD if any, else priced), calculate, or display."
        ),
    ] = "auto",
    now: Annotated[
        str | None,
        typer.Option(
            "--now", hidden=True, help="Evaluate the block at this ISO 8601 instant (reproducible output)."
        ),
    ] = None,
) -> None:
    """Live view of local Claude Code (and Codex) sessions: tokens, cost and the 5-hour block.

    Sessions are found through Claude Code's session registry, then the freshest transcript, then
    the process list. Costs are estimates from the bundled price table, deduplicated the way
    ccusage does it. A warm run reads only what transcripts appended since the last one.
    """
    if not 1 <= refresh <= 60:
        raise UsageError(f"--refresh must be between 1 and 60 seconds, got {refresh:g}.")
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}.")
    zone = _zone(timezone)
    now_ms = _instant(now)

    from k3sc.sessions import pricing, render, snapshot

    collector = snapshot.Collector(mode=pricing.CostMode(mode))
    if json_ or once or timings:
        taken = collector.collect(now_ms)
        if json_:
            _output.print_json(render.document(taken))
        else:
            typer.echo(render.text(taken, zone, timings=timings), nl=False)
        return
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the live view needs a terminal; use --once or --json when output is redirected.")
    from k3sc.tui import sessions_app

    sessions_app.run(collector, refresh=refresh, zone=zone)


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--timezone {name!r} is not a known IANA time zone (e.g. UTC, Europe/Berlin)."
        ) from None


def _instant(text: str | None) -> int | None:
    if text is None:
        return None
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO 8601 time (e.g. 2026-11-27T12:00:00Z).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)
