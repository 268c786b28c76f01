"""`k3sc rotate-auth`: store this machine's agent credentials in the Prefect blocks (prints keys only)."""

from __future__ import annotations

from typing import Annotated

import typer

from k3sc.cli import _output


def rotate_auth(
    prefect_url: Annotated[
        str | None,
        typer.Option(
            "--prefect-url", help="Prefect API to write to (default: PREFECT_API_URL or `k3sc up`'s)."
        ),
    ] = None,
) -> None:
    """Read the Claude OAuth token, GitHub token, Codex auth, API keys and Bedrock credentials; store them."""
    from k3sc import config as k3sc_config
    from k3sc.services import rotate_auth as service
    from k3sc.services.deploy import prefect_session

    config = k3sc_config.load().config
    found = _output.run(service.gather(config))
    for line in found.warnings:
        _output.warn(line)
    for line in found.notes:
        typer.echo(line)
    with prefect_session(prefect_url):
        stored = _output.run(service.store(found))
    typer.echo(f"stored {len(stored)} key(s) (values never shown):")
    for line in stored:
        typer.echo(f"  {line}")
