"""`invoke`: the one way CLI tests run a k3sc command (house style 23, after Prefect's invoke_and_assert).

It runs the real typer app in-process, asserts the exit code and expected text, and fails on any
traceback in the output. Unexpected exceptions are re-raised with their traceback (the app's
`RERAISE` switch) instead of being reduced to "rerun with --debug", so a failing test shows where.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import typer
from typer.testing import CliRunner, Result

from k3sc.cli import _app


def invoke(
    args: Sequence[str],
    code: int = 0,
    contains: Sequence[str] = (),
    *,
    absent: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    app: typer.Typer | None = None,
    reraise: bool = True,
    traceback: bool = False,
) -> Result:
    """Run `k3sc <args>`; assert the exit code, that each `contains` string appears in stdout or
    stderr and each `absent` string in neither, and that no traceback was printed.

    `env` overrides environment variables for this run (None unsets one); `app` replaces the real
    CLI, for tests of the error boundary itself; `reraise=False` lets unexpected exceptions take the
    user-facing path; `traceback=True` permits one (only `--debug` prints them). Returns the result for stream-specific checks (`.stdout`, `.stderr`).
    """
    if app is None:
        from k3sc.cli import app as k3sc_app

        app = k3sc_app
    result = CliRunner().invoke(
        app,
        list(args),
        env=env,
        catch_exceptions=not reraise,
        prog_name="k3sc",
        obj={_app.RERAISE: reraise},
    )
    shown = f"k3sc {' '.join(args)} -> exit {result.exit_code}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    assert result.exit_code == code, f"expected exit {code}\n{shown}"
    if not traceback:
        assert "Traceback" not in result.output, f"traceback printed\n{shown}"
    for text in contains:
        assert text in result.output, f"{text!r} not in output\n{shown}"
    for text in absent:
        assert text not in result.output, f"{text!r} unexpectedly in output\n{shown}"
    return result
