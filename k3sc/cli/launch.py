"""`k3sc launch [claude|codex] [-- agent args…]`: an agent session in its own clone and terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from k3sc.errors import ConfigError, UsageError


def launch(
    agent: Annotated[str, typer.Argument(help="claude or codex.")] = "claude",
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the agent, after --.")] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="owner/name to clone (default: the first configured repo).")
    ] = None,
) -> None:
    """Open a supervised agent in slot `<launch_dir>/<agent>-<n>`: the lowest free one, cloned on first use.

    The agent starts in a new tmux window (inside tmux) or the platform's terminal; otherwise the
    command to run is printed. A slot stays taken while its `.k3sc.lock` names a live process.
    """
    if agent not in ("claude", "codex"):
        raise UsageError(
            f"agent must be claude or codex, got {agent!r} (k3sc launch [claude|codex] [-- args])."
        )
    from k3sc import config as k3sc_config
    from k3sc.models import Repo
    from k3sc.services import launch as service

    loaded = k3sc_config.load().config
    if repo is not None:
        try:
            target = Repo.parse(repo)
        except ValueError as exc:
            raise UsageError(f"--repo: {exc}") from None
    elif loaded.repos:
        target = loaded.repos[0].repo
    else:
        raise ConfigError(
            "k3sc launch clones a repository into each slot, and none is configured: add one under "
            "`repos` in the config file, or pass --repo owner/name.",
            key="repos",
        )
    launched = service.launch(
        loaded.launch_dir, agent, [agent, *(args or ())], loaded.clone_url(target), typer.echo
    )
    if launched.opener is None:
        typer.echo(launched.command)
    else:
        typer.echo(f"started in a new {launched.opener} window (pid {launched.pid})")
