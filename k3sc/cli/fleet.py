"""`k3sc status`, `scale`, `pause`, `resume`, `disable`, `enable`: steer the whole fleet while it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from k3sc.cli import _output


def status(
    json_: Annotated[bool, typer.Option("--json", help="Print every figure as JSON.")] = False,
) -> None:
    """One line: agents running, issues by state, open PRs, slots, and whether dispatch is paused."""
    from k3sc import config as k3sc_config
    from k3sc.services import fleet

    loaded = k3sc_config.load()
    report = _output.run(fleet.status(loaded.config, loaded.source_of("max_slots")))
    for error in report["errors"]:
        _output.warn(error)
    if json_:
        _output.print_json(report)
    else:
        typer.echo(fleet.status_line(report))


def scale(
    slots: Annotated[
        str | None, typer.Argument(metavar="[N]", help="New number of agent slots, 1-26.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Show or set the number of agent slots while k3sc runs (no restart)."""
    from k3sc import config as k3sc_config
    from k3sc.services import fleet

    wanted = fleet.slot_count(slots) if slots is not None else None
    loaded = k3sc_config.load()
    result = _output.run(fleet.scale(loaded.config, loaded.source_of("max_slots"), wanted))
    if json_:
        _output.print_json(result)
    elif wanted is None:
        typer.echo(f"max slots: {result['slots']} (from {result['source']})")
    else:
        typer.echo(f"max slots: {result['previous']} -> {result['slots']}")


def pause() -> None:
    """Stop claiming new work; running agents finish and are handed off as usual."""
    from k3sc.services import fleet

    typer.echo(_output.run(fleet.pause(True)))


def resume() -> None:
    """Claim new work again."""
    from k3sc.services import fleet

    typer.echo(_output.run(fleet.pause(False)))


Family = Annotated[str, typer.Argument(metavar="FAMILY", help="claude or codex.")]


def disable(family: Family) -> None:
    """Stop dispatching to an agent family (its running agents finish)."""
    from k3sc.services import fleet

    typer.echo(_output.run(fleet.set_family(fleet.family(family), enabled=False)))


def enable(family: Family) -> None:
    """Dispatch to an agent family again."""
    from k3sc.services import fleet

    typer.echo(_output.run(fleet.set_family(fleet.family(family), enabled=True)))
