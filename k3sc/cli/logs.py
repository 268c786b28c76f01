"""`k3sc logs`: the recent agent runs, or one run's log (the newest matching attempt), live with -f."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from k3sc.cli import _output

if TYPE_CHECKING:
    from k3sc.config import Config
    from k3sc.models import AgentRun
    from k3sc.orchestration.records import LogRecord
    from k3sc.runlogs import Wanted

# The shell's code for "stopped by Ctrl-C" (128 + SIGINT).
INTERRUPTED = 130


def logs(
    first: Annotated[
        str | None, typer.Argument(metavar="REPO", help="The issue's repo (owner/name or name); optional.")
    ] = None,
    second: Annotated[str | None, typer.Argument(metavar="ISSUE", help="The issue number.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", metavar="implement|review", help="Only runs of this kind.")
    ] = None,
    attempt: Annotated[str | None, typer.Option("--attempt", metavar="N", help="Only this attempt.")] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Stream the log until the run ends; exit 1 unless it succeeded."),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs to list (no ISSUE).")] = 20,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the runs, or the run and its log, as JSON.")
    ] = False,
) -> None:
    """Without ISSUE: the recent agent runs, newest first. With ISSUE: the log of its newest run."""
    from k3sc.errors import UsageError

    if first is None:
        if follow or kind or attempt:
            raise UsageError("--follow, --kind and --attempt need an ISSUE: k3sc logs [REPO] ISSUE.")
        _list(limit, json_)
        return
    if follow and json_:
        raise UsageError("--follow streams lines as they come; it cannot be combined with --json.")
    from k3sc import config as k3sc_config

    config = k3sc_config.load().config
    wanted = _wanted(config, first, second, kind, attempt)
    if follow:
        _follow(config, wanted)
    else:
        _show(config, wanted, json_)


def _wanted(config: Config, first: str, second: str | None, kind: str | None, attempt: str | None) -> Wanted:
    """Arguments to what they ask for; a usage error (exit 2) names the bad one."""
    from k3sc import runlogs
    from k3sc.errors import UsageError
    from k3sc.labels import Kind
    from k3sc.services import targets

    repo_text, issue_text = (first, second) if second is not None else (None, first)
    number = targets.number(issue_text)
    repo = targets.repo(config, repo_text, option="repo") if repo_text is not None else None
    try:
        wanted_kind = Kind(kind.strip().lower()) if kind is not None else None
    except ValueError:
        raise UsageError(f"--kind {kind!r} is not a kind of run: use implement or review.") from None
    wanted_attempt = targets.number(attempt, "attempt") if attempt is not None else None
    return runlogs.Wanted(number, repo, wanted_kind, wanted_attempt)


def _list(limit: int, json_: bool) -> None:
    from rich.table import Table

    from k3sc import runlogs
    from k3sc.services import logs as service

    rows = _output.run(service.recent(limit))
    if json_:
        _output.print_json([r.as_json() for r in rows])
        return
    if not rows:
        typer.echo("no agent runs yet")
        return
    table = Table(*runlogs.COLUMNS, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row.cells(tz=None))
    _output.console().print(table)


def _describe(run: AgentRun) -> str:
    return (
        f"{run.issue_key} {run.kind.value} attempt {run.attempt} by {run.agent} "
        f"({run.state_name or run.phase.value}), run {run.id}"
    )


def _show(config: Config, wanted: Wanted, json_: bool) -> None:
    from datetime import UTC, datetime

    from k3sc import runlogs
    from k3sc.services import logs as service

    found = _output.run(service.show(config, wanted))
    if json_:
        listed = runlogs.row(found.run, runlogs.last_meaningful(found.lines), datetime.now(UTC))
        _output.print_json(
            {"run": listed.as_json(), "lines": [r.model_dump(mode="json") for r in found.lines]}
        )
        return
    sys.stderr.write(f"{_describe(found.run)}\n")
    for record in found.lines:
        for line in runlogs.render_line(record, tz=None):
            typer.echo(line)


def _follow(config: Config, wanted: Wanted) -> None:
    from k3sc import runlogs
    from k3sc.services import logs as service

    def announce(run: AgentRun) -> None:
        sys.stderr.write(f"following {_describe(run)}; Ctrl-C stops following, not the run\n")
        sys.stderr.flush()

    def emit(record: LogRecord) -> None:
        for line in runlogs.render_line(record, tz=None):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()  # piped output must not wait for a buffer to fill

    try:
        state = _output.run(service.follow(config, wanted, emit, announce=announce))
    except KeyboardInterrupt:
        sys.stderr.write("stopped following (the run goes on)\n")
        raise typer.Exit(INTERRUPTED) from None
    sys.stderr.write(f"run ended: {state.lower()}\n")
    if state != "COMPLETED":
        raise typer.Exit(1)
