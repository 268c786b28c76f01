"""`k3sc config show|check`, `--version` and the CLI's error boundary, through the `invoke` helper.

The user-facing promise under test: a bad config is exit 2 and one paragraph naming the key, never a
traceback; `--json` is exactly one JSON document on stdout; values say where they came from.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import k3sc
from k3sc.agent import confine
from k3sc.cli import _app
from k3sc.errors import UsageError
from tests.cli_helpers import invoke

ON_THIS_MACHINE = confine.on_this_machine

GOOD = """\
repos: [abix-/endless, {owner: abix-, name: k3sc, default_branch: dev}]
allowed_authors: ['dependabot[bot]']
github_url: https://ghe.example.com
scan: {min_interval: 90s, max_interval: 1h30m}
github_app: {app_id: 1, installation_id: 2, private_key: sekrit-pem}
"""

MALFORMED = [
    pytest.param("max_slots: lots", "'max_slots'", id="max_slots is not a number"),
    pytest.param(
        "alowed_authors: [x]", "unknown key 'alowed_authors' (did you mean 'allowed_authors'?)", id="typo"
    ),
    pytest.param("scan: {min_interval: soon}", "'scan.min_interval'", id="duration is not a duration"),
]


@pytest.fixture(autouse=True)
def working_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees a machine whose bubblewrap works, unless it says otherwise."""
    monkeypatch.setattr(confine, "on_this_machine", lambda mode: confine.Decision(mode != "off"))


@pytest.fixture
def config_file(isolated_env: Path) -> Path:
    """The file K3SC_CONFIG points at (the autouse isolated_env fixture sets the variable)."""
    return isolated_env / "k3sc.yaml"


def row(stdout: str, key: str) -> list[str]:
    """The cells of the table row for `key` (columns are separated by two or more spaces)."""
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == key:
            return cells
    raise AssertionError(f"no row {key!r} in:\n{stdout}")


# ------------------------------------------------------------------------------ version and help


def test_version_prints_name_and_version_only() -> None:
    assert invoke(["--version"]).stdout == f"k3sc {k3sc.__version__}\n"


def test_version_matches_the_installed_distribution() -> None:
    assert k3sc.__version__ == importlib.metadata.version("k3sc")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--help"], ["Usage: k3sc", "config", "--version", "--debug"], id="root help"),
        pytest.param(["config", "--help"], ["show", "check"], id="config group help"),
        pytest.param(["config", "show", "-h"], ["--json"], id="show help with -h"),
    ],
)
def test_help(args: list[str], expected: list[str]) -> None:
    invoke(args, contains=expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param([], "Usage: k3sc", id="no command shows help"),
        pytest.param(["config"], "Usage: k3sc config", id="no subcommand shows the group's help"),
        pytest.param(["bogus"], "No such command 'bogus'", id="unknown command"),
        pytest.param(["config", "show", "--bogus"], "No such option: --bogus", id="unknown option"),
    ],
)
def test_usage_mistakes_exit_2(args: list[str], expected: str) -> None:
    invoke(args, code=2, contains=[expected])


# ------------------------------------------------------------------------------------ config show


def test_show_without_a_file_names_it_and_shows_defaults(config_file: Path) -> None:
    result = invoke(["config", "show"], contains=[f"config file: {config_file} (not found, using defaults)"])
    assert row(result.stdout, "namespace") == ["namespace", "claude-agents", "default"]
    assert row(result.stdout, "scan.min_interval") == ["scan.min_interval", "2m", "default"]
    assert row(result.stdout, "image_dir") == ["image_dir", "(not set)", "default"]
    assert result.stderr == ""


def test_show_names_each_source_and_masks_secrets(config_file: Path) -> None:
    config_file.write_text(GOOD, encoding="utf-8")
    result = invoke(
        ["config", "show"],
        env={"MAX_SLOTS": "7"},
        contains=[f"config file: {config_file} (exists)"],
        absent=["sekrit"],
    )
    out = result.stdout
    assert row(out, "max_slots") == ["max_slots", "7", "env:MAX_SLOTS"]
    assert row(out, "github_url") == ["github_url", "https://ghe.example.com", "file"]
    assert row(out, "github_api_url") == [
        "github_api_url",
        "https://ghe.example.com/api/v3",
        "derived from github_url",
    ]
    assert row(out, "scan.min_interval") == ["scan.min_interval", "1m30s", "file"]
    assert row(out, "scan.max_interval") == ["scan.max_interval", "1h30m", "file"]
    assert row(out, "repos") == ["repos", "abix-/endless", "file"]
    assert "abix-/k3sc (default_branch=dev)" in out
    assert row(out, "allowed_authors") == ["allowed_authors", "dependabot[bot]", "file"]
    assert row(out, "github_app.private_key") == ["github_app.private_key", "********", "file"]
    assert row(out, "launch_dir") == ["launch_dir", str(Path.home() / "code"), "default"]


def test_show_json_is_one_document_with_every_key(config_file: Path) -> None:
    config_file.write_text(GOOD, encoding="utf-8")
    result = invoke(["config", "show", "--json"], env={"MAX_SLOTS": "7"}, absent=["sekrit"])
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["path"] == str(config_file)
    assert document["exists"] is True
    values = document["values"]
    assert values["max_slots"] == {"value": 7, "source": "env:MAX_SLOTS"}
    assert values["scan.min_interval"] == {"value": "1m30s", "source": "file"}
    assert values["scan.task_ttl"] == {"value": "24h", "source": "default"}
    assert values["families"] == {"value": ["claude", "codex"], "source": "default"}
    assert values["repos"]["value"] == [
        {"owner": "abix-", "name": "endless", "clone_url": None, "default_branch": None},
        {"owner": "abix-", "name": "k3sc", "clone_url": None, "default_branch": "dev"},
    ]
    assert values["github_app.private_key"] == {"value": "********", "source": "file"}
    assert values["workspace_root"]["value"].endswith("/workspaces")
    # Sections flatten to dotted keys in model order; github_app, when set, is a section too.
    keys = list(values)
    assert keys[:6] == ["namespace", "max_slots", "launch_dir", "image_dir", "github_url", "github_api_url"]
    assert keys.index("scan.min_interval") < keys.index("safety.branch_pattern") < keys.index("agent.timeout")
    assert "agent.prompts.implement" in keys
    assert "scan" not in keys
    assert keys[-4:] == [
        "github_app.app_id",
        "github_app.installation_id",
        "github_app.private_key_path",
        "github_app.private_key",
    ]
    assert all(set(entry) == {"value", "source"} for entry in values.values())


def test_show_json_without_github_app_has_one_null_leaf(config_file: Path) -> None:
    values = json.loads(invoke(["config", "show", "--json"]).stdout)["values"]
    assert values["github_app"] == {"value": None, "source": "default"}
    assert not any(key.startswith("github_app.") for key in values)


# ----------------------------------------------------------------------------------- config check


def test_check_ok_prints_the_summary_only(config_file: Path) -> None:
    config_file.write_text(GOOD, encoding="utf-8")
    result = invoke(["config", "check"], env={"MAX_SLOTS": "3"})
    assert result.stdout == f"config OK: {config_file} (2 repos, 1 allowed authors, max_slots 3)\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("text", "warnings"),
    [
        pytest.param(
            None,
            [
                "does not exist; using defaults",
                "no repos configured: nothing can ever be dispatched",
                "allowed_authors is empty: nothing can ever be dispatched",
            ],
            id="missing file warns about the file, repos and authors",
        ),
        pytest.param(
            "allowed_authors: [abix-]",
            ["warning: no repos configured: nothing can ever be dispatched."],
            id="no repos warns",
        ),
        pytest.param(
            "repos: [abix-/endless]",
            ["warning: allowed_authors is empty: nothing can ever be dispatched"],
            id="no allowed authors warns",
        ),
    ],
)
def test_check_warns_when_nothing_can_be_dispatched(
    config_file: Path, text: str | None, warnings: list[str]
) -> None:
    if text is not None:
        config_file.write_text(text, encoding="utf-8")
    result = invoke(["config", "check"], contains=["config OK: "])
    assert result.stdout.startswith("config OK: ")
    assert len(result.stderr.splitlines()) == len(warnings)
    for warning in warnings:
        assert warning in result.stderr


@pytest.mark.parametrize(
    ("text", "bwrap", "code", "message"),
    [
        pytest.param("agent: {pool: kubernetes}", "/usr/bin/bwrap", 2, "agent.pool is kubernetes",
                     id="kubernetes mode is deployed, not run by up"),
        pytest.param("agent: {sandbox: 'on'}", None, 2, "agent.sandbox is on, but bwrap is not installed",
                     id="sandbox on without bwrap"),
        pytest.param("agent: {sandbox: auto}", None, 0, "warning: agent runs without a sandbox",
                     id="sandbox auto without bwrap warns"),
        pytest.param("agent: {sandbox: 'off'}", None, 0, "config OK", id="sandbox off never looks"),
    ],
)  # fmt: skip
def test_check_refuses_agent_settings_this_machine_cannot_honour(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, text: str, bwrap: str | None, code: int, message: str
) -> None:
    monkeypatch.setattr(confine, "on_this_machine", ON_THIS_MACHINE)
    monkeypatch.setattr(confine.shutil, "which", lambda name: bwrap if name == "bwrap" else None)
    monkeypatch.setattr(confine, "probe", lambda _: None)
    config_file.write_text(f"repos: [a/b]\nallowed_authors: [me]\n{text}\n", encoding="utf-8")
    result = invoke(["config", "check"], code=code, contains=[message])
    assert (result.stderr == "") == (message == "config OK")


# ------------------------------------------------------------------------------- malformed config


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["config", "check"], id="check"),
        pytest.param(["config", "show"], id="show"),
        pytest.param(["config", "show", "--json"], id="show --json"),
    ],
)
@pytest.mark.parametrize(("text", "names"), MALFORMED)
def test_malformed_config_is_exit_2_and_one_paragraph(
    config_file: Path, args: list[str], text: str, names: str
) -> None:
    config_file.write_text(text, encoding="utf-8")
    result = invoke(args, code=2)
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: config file {config_file} is invalid: ")
    assert names in result.stderr
    assert result.stderr.count("\n") == 1


def test_invalid_env_override_is_exit_2_naming_the_variable() -> None:
    result = invoke(["config", "check"], code=2, env={"MAX_SLOTS": "lots"})
    assert (
        result.stderr
        == "error: environment variable MAX_SLOTS='lots' is invalid: expected a whole number from 1 to 26.\n"
    )


def test_malformed_config_in_a_real_process_has_no_traceback(config_file: Path) -> None:
    """The whole path a user takes: console-script entry point, typer, boundary, exit status."""
    config_file.write_text("max_slots: lots", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "k3sc", "config", "check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: config file ")
    assert "'max_slots'" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


# ------------------------------------------------------------------------------ the error boundary


def failing_app(exc: Exception) -> typer.Typer:
    """The real root app and boundary with one command that raises `exc`."""
    app = _app.new_app()

    @app.command()
    def fail() -> None:
        raise exc

    @app.command()
    def fine() -> None:
        typer.echo("fine")

    return app


def test_k3sc_error_becomes_its_exit_code_and_one_paragraph() -> None:
    app = failing_app(UsageError("repo 'x' is not owner/name;\n  use owner/name."))
    result = invoke(["fail"], code=2, app=app)
    assert result.stderr == "error: repo 'x' is not owner/name; use owner/name.\n"


def test_k3sc_error_under_debug_adds_the_traceback() -> None:
    app = failing_app(UsageError("bad input"))
    result = invoke(["--debug", "fail"], code=2, app=app, traceback=True)
    assert "Traceback" in result.stderr
    assert result.stderr.endswith("error: bad input\n")


def test_unexpected_exception_is_one_line_with_a_debug_hint() -> None:
    result = invoke(["fail"], code=1, app=failing_app(RuntimeError("kaput")), reraise=False)
    assert result.stderr == (
        "error: unexpected RuntimeError: kaput (this is a bug in k3sc; rerun with --debug for the traceback)\n"
    )


def test_unexpected_exception_under_debug_is_raised() -> None:
    result = invoke(["--debug", "fail"], code=1, app=failing_app(RuntimeError("kaput")), reraise=False)
    assert isinstance(result.exception, RuntimeError)


def test_unexpected_exception_is_raised_under_the_test_helper() -> None:
    with pytest.raises(RuntimeError, match="kaput"):
        invoke(["fail"], app=failing_app(RuntimeError("kaput")))


def test_commands_that_succeed_are_untouched_by_the_boundary() -> None:
    assert invoke(["fine"], app=failing_app(RuntimeError("unused"))).stdout == "fine\n"
