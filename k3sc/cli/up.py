"""`k3sc up`: run the whole loop on this machine (the embedded default), or `--sandbox` on demo repos.

The command only parses options and renders; `k3sc.services.up` starts and stops everything.
Progress goes to stderr so `--json` leaves exactly one document on stdout.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from k3sc.cli import _output

if TYPE_CHECKING:
    from k3sc.services.up import UpOptions


def up(
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against a fake GitHub with demo repos and a stub agent.")
    ] = False,
    seed: Annotated[
        Path | None,
        typer.Option("--seed", help="Sandbox world file (repos, issues, config) instead of the demo."),
    ] = None,
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="Exit once nothing is left to do, printing a per-issue summary."),
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="With --until-idle: print the summary as JSON.")] = (
        False
    ),
    timeout: Annotated[
        float, typer.Option("--timeout", help="With --until-idle: give up (exit 1) after this many seconds.")
    ] = 900.0,
    port: Annotated[
        int | None, typer.Option("--port", help="Port for the local Prefect server (default: a free one).")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="postgresql://user@host[:port]/name for the local Prefect server (created if absent) "
            "instead of SQLite; also K3SC_DATABASE_URL or prefect.database. Put a password in those, "
            "not here: a command line is visible to every user.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start Prefect (unless PREFECT_API_URL is set), deploy the flows, start the workers and the scans."""
    from k3sc.errors import UsageError
    from k3sc.services import up as service

    if seed is not None and not sandbox:
        raise UsageError("--seed only applies with --sandbox.")
    if json_ and not until_idle:
        raise UsageError("--json only applies with --until-idle.")
    secret = None
    if database is not None:
        from pydantic import SecretStr

        from k3sc.orchestration import database as databases

        shown = databases.redact(database)
        if not database.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise UsageError(f"--database {shown}: expected a postgresql://user@host[:port]/name URL.")
        if shown != database:
            sys.stderr.write(
                "warning: --database holds a password, visible in the process list; use K3SC_DATABASE_URL\n"
            )
        secret = SecretStr(database)
    options = service.UpOptions(
        sandbox=sandbox, seed=seed, until_idle=until_idle, timeout=timeout, port=port, database=secret
    )

    def say(line: str) -> None:
        # After SIGHUP the terminal may be gone; the shutdown must go on without it.
        with contextlib.suppress(OSError):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    previous = _stop_on_signals()
    try:
        _run(options, json_, say)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(options: UpOptions, json_: bool, say: Callable[[str], None]) -> None:
    """Prepare, start, wait (for idleness or a signal), and always shut down what was started."""
    from k3sc.services import up as service

    try:
        session, token = service.prepare(options, say)
    except KeyboardInterrupt:
        say("stopped before starting anything.")
        return
    try:
        service.start(session, token, options, say)
        for line in service.banner(session):
            say(line)
        if options.until_idle:
            idle = service.wait_idle(session, options.timeout, say)
            report = _output.run(service.summary(session))
            if json_:
                _output.print_json(report)
            else:
                _render(report)
            if not idle:
                raise typer.Exit(1)
            return
        say("press Ctrl-C to stop")
        while True:
            service.check_children(session, say)
            time.sleep(1.0)
    except KeyboardInterrupt:
        say("stopping ...")
    finally:
        _ignore_signals()  # the shutdown is bounded; a second signal must not cut it short
        service.shutdown(session, say)


def _stop_on_signals() -> dict[int, Any]:
    """Every stop signal (`k3sc.stopping`) stops `k3sc up` as Ctrl-C does."""
    from k3sc.stopping import stop_signals

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return {signum: signal.signal(signum, interrupt) for signum in stop_signals()}


def _ignore_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table("issue", "title", "labels now", "label history", "attempts", "PR", box=None, pad_edge=False)
    for row in report["issues"]:
        history = " → ".join(",".join(step) or "-" for step in row["history"])
        attempts = ", ".join(
            f"{a['kind'][0]}{a['attempt']} {a['agent']} {a['outcome'] or a['state']}" for a in row["attempts"]
        )
        table.add_row(
            Text(row["issue"]),
            Text(row["title"][:40]),
            Text(",".join(row["labels"]) or "-"),
            Text(history),
            Text(attempts or "-"),
            Text(f"#{row['pr']}" if row["pr"] else "-"),
        )
    console = _output.console()
    console.print(table)
    console.print(Text(f"idle after {report['elapsed_s']}s; Prefect UI: {report['prefect_ui']}"))
