"""The root typer app and the CLI's single error boundary.

Kept apart from `k3sc/cli/__init__.py` so tests can build a bare app with the same boundary and
global options (`new_app()`) and prove how an unexpected exception is reported.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from k3sc.cli import _output
from k3sc.errors import K3scError

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # typer vendors click; typer.Context subclasses it

# `ctx.obj` key the test helper sets so unexpected exceptions propagate with their traceback instead
# of being reduced to one line. Only tests/cli_helpers.py passes it (house style: seams for tests are
# explicit inputs, not monkeypatching).
RERAISE = "k3sc.reraise"

_CONTROL_FLOW = (typer.Exit, typer.Abort, typer.TyperException)


class K3scGroup(typer.core.TyperGroup):
    """Root command group whose `invoke` is the one place exceptions become exit codes.

    Every subcommand runs inside the root group's `invoke`, so command modules need no decorator:
    a `K3scError` becomes one paragraph and its `exit_code`; anything else becomes one line plus a
    hint, or the full traceback under `--debug`.
    """

    def get_help_option(self, ctx: ClickContext) -> Any:
        return _settle_help_option(super().get_help_option(ctx))

    def resolve_command(self, ctx: ClickContext, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _settle_help_options(command, ctx)
        return name, command, rest

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except K3scError as exc:
            if ctx.params.get("debug"):
                traceback.print_exc()
            _output.exit_with_error(exc)
        except Exception as exc:
            # typer.Exit/Abort and usage errors (TyperException) carry their own exit codes and
            # messages: they are control flow, not failures, and pass through untouched.
            if isinstance(exc, _CONTROL_FLOW) or ctx.params.get("debug") or _reraise(ctx):
                raise
            _output.error(
                f"unexpected {type(exc).__name__}: {exc} (this is a bug in k3sc; rerun with --debug "
                "for the traceback)"
            )
            raise typer.Exit(1) from None


def _settle_help_option(option: Any) -> Any:
    # typer coerces every parameter value that is not already a bool through a pydantic TypeAdapter,
    # and an absent --help is None: so any subcommand would import pydantic (~80 ms) just to learn
    # that help was not asked for. An explicit False default skips that.
    if option is not None and option.default is None:
        option.default = False
    return option


def _settle_help_options(command: Any, ctx: ClickContext) -> None:
    """Apply `_settle_help_option` to a resolved subcommand and, for a group, everything below it."""
    if "help_option_names" in command.context_settings:
        return  # its own help names: let typer build that option from its own context
    _settle_help_option(command.get_help_option(ctx))
    for child in getattr(command, "commands", {}).values():
        _settle_help_options(child, ctx)


def _reraise(ctx: ClickContext) -> bool:
    obj = ctx.find_root().obj
    return isinstance(obj, dict) and bool(obj.get(RERAISE))


def _print_version(value: bool) -> None:
    if value:
        from k3sc import __version__

        typer.echo(f"k3sc {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    """k3sc runs AI coding agents (Claude Code, Codex) against GitHub issues, orchestrated by Prefect."""


def new_app() -> typer.Typer:
    """The root app with k3sc's error boundary and global options, and no commands yet."""
    app = typer.Typer(
        cls=K3scGroup,
        name="k3sc",
        # Plain click help: rich-formatted help costs ~70 ms more per `--help` on a 2-core box
        # (markdown_it, pygments, rich); see README "Figures".
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app
