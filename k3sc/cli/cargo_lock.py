"""`k3sc cargo-lock <cargo args…>`: cargo under a build lock shared by every agent on this machine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

# Every argument is cargo's, `--help` after the subcommand included: options stop at the first
# positional argument, and unknown options are passed through.
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False}


def cargo_lock(
    args: Annotated[list[str] | None, typer.Argument(help="cargo's subcommand and arguments.")] = None,
) -> None:
    """Run `cargo <args>` holding an exclusive lock on the target dir's `.cargo-build.lock`.

    `run` and `test` build first; `--manifest-path` is added from the nearest Cargo.toml unless
    given. The exit code is cargo's.
    """
    from k3sc.services import cargo_lock as service

    code = service.run(list(args or ()), err=sys.stderr)
    if code:
        raise typer.Exit(code)
