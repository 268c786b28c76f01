"""`k3sc take`, `k3sc release`, `k3sc next`: review leases for a person's own agents (claude-4, codex-1)."""

from __future__ import annotations

from typing import Annotated

import typer

from k3sc.cli import _output


def take(
    worker: Annotated[
        str, typer.Option("--worker", metavar="claude-*|codex-*", help="Your agent's id, e.g. claude-4.")
    ],
    repo: Annotated[
        str | None,
        typer.Option("--repo", metavar="OWNER/NAME", help="Only PRs of this configured repo (default: all)."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the lease as JSON.")] = False,
) -> None:
    """Reserve the best eligible open PR for your agent to review (one lease per worker; expires)."""
    from k3sc import config as k3sc_config
    from k3sc import leases
    from k3sc.errors import UsageError
    from k3sc.services import leasing, targets

    try:
        worker_id = leases.parse_worker(worker)
    except ValueError as exc:
        raise UsageError(f"--worker: {exc}") from None
    config = k3sc_config.load().config
    chosen = targets.repo(config, repo)
    taken = _output.run(leasing.take(config, worker_id, chosen))
    if taken is None:
        if json_:
            _output.print_json(None)
        else:
            typer.echo("no eligible open PRs")
        return
    if json_:
        _output.print_json(taken.as_json())
        return
    lease = taken.lease
    local = lease.expires_at.astimezone()
    typer.echo(f"worker {lease.worker} reserved {lease.repo}#{lease.pr} ({lease.family})")
    typer.echo(f"issue: #{lease.issue}")
    typer.echo(f"branch: {lease.branch}")
    typer.echo(f"url: {lease.url}")
    typer.echo(f"expires: {local:%a, %d %b %Y %H:%M:%S %Z}")
    typer.echo(f"next: start {lease.worker} manually, then review {lease.url}")


def release(
    pr: Annotated[str, typer.Option("--pr", metavar="N", help="The PR whose lease to release.")],
    repo: Annotated[
        str | None, typer.Option("--repo", metavar="OWNER/NAME", help="The PR's repo (needed if ambiguous).")
    ] = None,
) -> None:
    """Release a review lease: its record and the worker's owner label on the PR."""
    from k3sc import config as k3sc_config
    from k3sc.services import leasing, targets

    number = targets.number(pr, "PR")
    config = k3sc_config.load().config
    chosen = targets.repo(config, repo)
    typer.echo(_output.run(leasing.release(config, number, chosen)))


def next_(json_: Annotated[bool, typer.Option("--json", help="Print the pick as JSON.")] = False) -> None:
    """Pick something for a person to look at: a random needs-human issue or unreserved open PR."""
    from k3sc import config as k3sc_config
    from k3sc.services import leasing

    pick = _output.run(leasing.next_up(k3sc_config.load().config))
    if json_:
        _output.print_json(pick)
    elif pick is None:
        typer.echo("nothing to review")
    else:
        typer.echo(f"[{pick['kind']}] {pick['repo']}#{pick['number']}: {pick['title']}")
        typer.echo(pick["url"])
