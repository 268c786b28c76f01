"""How every k3sc command writes: results to stdout, diagnostics to stderr, errors as one paragraph.

Shared by all command modules so that `--json`, warnings and the error boundary behave the same
everywhere. Only the standard library and typer are imported here; rich is imported inside
`console()` because only table-printing commands pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from k3sc.errors import K3scError

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")

# Without a terminal (pipes, CliRunner) rich would wrap tables at 80 columns, which splits paths and
# URLs across lines and defeats `grep`; tables only grow to what their content needs.
_PIPE_WIDTH = 200


def paragraph(text: str) -> str:
    """Collapse whitespace so a message prints as one paragraph whatever its source put in it."""
    return " ".join(text.split())


def error(message: str) -> None:
    """Write `error: <message>` to stderr as one paragraph."""
    sys.stderr.write(f"error: {paragraph(message)}\n")


def warn(message: str) -> None:
    """Write `warning: <message>` to stderr; it never changes the exit code."""
    sys.stderr.write(f"warning: {paragraph(message)}\n")


def exit_with_error(exc: K3scError) -> NoReturn:
    """The one way a K3scError leaves the CLI: one paragraph on stderr and the error's exit code."""
    error(str(exc) or type(exc).__name__)
    raise typer.Exit(exc.exit_code)


def print_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (the whole output of a `--json` command)."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def console() -> Console:
    """A rich console on the current stdout, wide enough not to fold values when piped."""
    from rich.console import Console

    terminal = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if terminal else _PIPE_WIDTH, highlight=False)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, with asyncio imported on use: it costs ~35 ms that `k3sc --help` must not pay."""
    import asyncio

    return asyncio.run(coroutine)
