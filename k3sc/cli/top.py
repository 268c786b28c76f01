"""`k3sc top`: the fleet dashboard (live, or one snapshot with --once / --json)."""

from __future__ import annotations

from typing import Annotated

import typer

from k3sc.cli import _output
from k3sc.errors import OrchestrationError, UsageError


def top(
    once: Annotated[bool, typer.Option("--once", help="Print one plain-text snapshot and exit.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the snapshot as one JSON document.")] = False,
) -> None:
    """Live dashboard of the fleet: slots, families, leases, runs, costs, issues, PRs, the last scan.

    Prefect is read every 3 s, GitHub every 30 s through the ETag cache (an idle refresh costs no
    rate limit). Keys: n scan now, p pause/resume, +/- slots, k kill the selected run's issue,
    enter its log, l live logs, 1-9 copy a PR's /review command, r refresh, q quit.
    """
    from datetime import UTC, datetime

    from k3sc import config as k3sc_config
    from k3sc.services import top as service

    loaded = k3sc_config.load()
    slots_source = loaded.source_of("max_slots")
    source = service.Live(loaded.config, slots_source)
    if json_ or once:
        from k3sc.tui import top_dashboard, top_rows, top_text

        now = datetime.now(UTC)
        inputs = _output.run(top_text.collect(source, now))
        if inputs.fleet.error is not None:
            raise OrchestrationError(f"Prefect: {inputs.fleet.error}")
        dashboard = top_dashboard.build(inputs, loaded.config, now, None, slots_source)
        if json_:
            _output.print_json(dashboard.as_json())
            return
        for name in top_rows.SOURCES:
            if (error := inputs.loaded(name).error) is not None:
                _output.warn(f"{name}: {error}")
        top_text.print_snapshot(dashboard, _output.console())
        return
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the live view needs a terminal; use --once or --json when output is redirected.")
    # One read first, so an unreachable server is a one-line error rather than a screen of them.
    _output.run(source.fleet())
    from k3sc.tui import top_app

    top_app.run(source, loaded.config, zone=None, slots_source=slots_source)
