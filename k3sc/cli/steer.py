"""`k3sc kill`, `k3sc reset`, `k3sc claim`: take one issue out of the dispatcher's hands."""

from __future__ import annotations

from typing import Annotated

import typer

from k3sc.cli import _output

Issue = Annotated[str, typer.Argument(metavar="ISSUE", help="The issue number.")]
Repo = Annotated[
    str | None,
    typer.Option(
        "--repo", metavar="OWNER/NAME", help="The issue's repo (needed when the number is ambiguous)."
    ),
]


def kill(
    issue: Issue,
    repo: Repo = None,
    to: Annotated[str, typer.Option("--to", help="Where the issue goes: needs-human, ready or waiting.")] = (
        "needs-human"
    ),
    json_: Annotated[bool, typer.Option("--json", help="Print what was stopped as JSON.")] = False,
) -> None:
    """Stop the issue's running agent (never retried, not counted as a failure) and move the issue."""
    from dataclasses import asdict

    from k3sc import config as k3sc_config
    from k3sc.services import steering, targets

    number = targets.number(issue)
    destination = steering.destination(to)
    config = k3sc_config.load().config
    killed = _output.run(steering.kill(config, number, targets.repo(config, repo), destination))
    if json_:
        _output.print_json(asdict(killed))
        return
    if not killed.stopped:
        typer.echo(f"{killed.issue}: no active agent run")
    for stopped in killed.stopped:
        typer.echo(
            f"{killed.issue}: stopped {stopped['kind']} attempt {stopped['attempt']} by {stopped['agent']} "
            f"({stopped['state'].lower()} after {stopped['seconds']} s)"
        )
    typer.echo(f"{killed.issue}: {killed.previous_owner or 'unclaimed'} -> {killed.to}")


def reset(
    issue: Issue,
    repo: Repo = None,
    to: Annotated[str, typer.Option("--to", help="The label the issue gets.")] = "ready",
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Clear the issue's owner and workflow labels, set --to, and start its failure count from zero."""
    from k3sc import config as k3sc_config
    from k3sc.services import steering, targets

    number = targets.number(issue)
    destination = steering.destination(to)
    config = k3sc_config.load().config
    result = _output.run(steering.reset(config, number, targets.repo(config, repo), destination))
    if json_:
        _output.print_json(result)
    else:
        typer.echo(
            f"{result['issue']}: {result['from']} -> {result['to']} "
            f"({result['attempts_reset']} earlier attempt(s) no longer count)"
        )


def claim(
    issue: Issue,
    repo: Repo = None,
    owner: Annotated[
        str, typer.Option("--owner", help="The owner label: human, human-<login>, or claude-1 / codex-1.")
    ] = "human",
) -> None:
    """Claim an issue for a person: the dispatcher leaves it alone until the label is removed."""
    from k3sc import config as k3sc_config
    from k3sc.services import steering, targets

    number = targets.number(issue)
    label = steering.human_owner(owner)
    config = k3sc_config.load().config
    result = _output.run(steering.claim(config, number, targets.repo(config, repo), label))
    typer.echo(f"{result['issue']}: claimed by {result['owner']}")
