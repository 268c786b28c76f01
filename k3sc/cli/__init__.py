"""The `k3sc` command line: one typer app assembled from one module per command group.

Adding a command group (e.g. `k3sc scan`):

1. Write `k3sc/cli/scan.py` exposing `app = typer.Typer(help=...)` for a group, or a plain function
   for a single command. Its top-level imports are typer, the standard library and the light k3sc
   modules (`errors`, `labels`, `models`, `cli._output`) only: import `k3sc.config`, prefect,
   githubkit, textual, rich or anything else heavy inside the command body, or `k3sc --help` slows
   down for everyone (`tests/test_cli_imports.py` fails; `bench/cli_startup.py` measures it).
2. Add one registration line below: `app.add_typer(scan.app, name="scan")` for a group, or
   `app.command("scan")(scan.scan)` for a single command.

Commands raise `K3scError`s and never call `sys.exit`: the root group (`_app.K3scGroup`) turns them
into one paragraph on stderr and the error's exit code. `--json` output goes through
`_output.print_json`, diagnostics through `_output.warn`.
"""

from __future__ import annotations

from k3sc.cli import (
    _app,
    cargo_lock,
    config,
    deploy,
    dispatch,
    fleet,
    launch,
    leases,
    logs,
    rotate_auth,
    scan,
    sessions,
    steer,
    top,
    up,
    webhook,
)

app = _app.new_app()

app.add_typer(config.app, name="config")
app.command("scan")(scan.scan)
app.command("up")(up.up)
app.command("dispatch")(dispatch.dispatch)
app.command("status")(fleet.status)
app.command("scale")(fleet.scale)
app.command("pause")(fleet.pause)
app.command("resume")(fleet.resume)
app.command("disable")(fleet.disable)
app.command("enable")(fleet.enable)
app.command("take")(leases.take)
app.command("release")(leases.release)
app.command("next")(leases.next_)
app.command("kill")(steer.kill)
app.command("reset")(steer.reset)
app.command("claim")(steer.claim)
app.command("logs")(logs.logs)
app.command("sessions")(sessions.sessions)
app.command("top")(top.top)
app.command("launch")(launch.launch)
app.command("cargo-lock", context_settings=cargo_lock.CONTEXT)(cargo_lock.cargo_lock)
app.command("deploy")(deploy.deploy)
app.command("rotate-auth")(rotate_auth.rotate_auth)
app.command("webhook")(webhook.webhook)


def main() -> None:
    """Console-script entry point (`k3sc = "k3sc.cli:main"`)."""
    app(prog_name="k3sc")
