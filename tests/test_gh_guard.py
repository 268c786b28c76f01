"""The gh allowlist: a table of gh calls, run through the generated shell wrapper itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from k3sc.agent import gh_guard
from k3sc.config import SafetyConfig

RULES = SafetyConfig().gh_allowed
PR_SUBS = "create,view,list,diff,checks,comment"

# argv after `gh`, and the refusal (None = it runs).
TABLE = [
    pytest.param(["pr", "create", "--base", "main"], None, id="allowed pair runs"),
    pytest.param(["pr", "comment", "5", "--body-file", "r.md"], None, id="review comments are allowed"),
    pytest.param(["issue", "comment", "7", "--body", "x"], None, id="hand-off comments are allowed"),
    pytest.param(["auth", "status"], None, id="auth status"),
    pytest.param(["pr", "merge", "5"], f"[security] gh pr merge blocked (allowed: {PR_SUBS})", id="merge"),
    pytest.param(["pr"], f"[security] gh pr  blocked (allowed: {PR_SUBS})", id="no subcommand"),
    pytest.param(["api", "repos/x/y"], "[security] gh api blocked (not in allowlist)", id="raw api"),
    pytest.param(
        ["repo", "delete", "x/y"], "[security] gh repo delete blocked (allowed: view,list,clone)", id="delete"
    ),
    pytest.param(
        ["-R", "x/y", "pr", "view"], "[security] gh -R blocked (not in allowlist)", id="global flag"
    ),
    pytest.param([], "[security] gh  blocked (not in allowlist)", id="bare gh"),
    pytest.param(["pr", "create;rm"], f"[security] gh pr create;rm blocked (allowed: {PR_SUBS})", id="glued"),
    pytest.param(["pr", "*"], f"[security] gh pr * blocked (allowed: {PR_SUBS})", id="glob"),
]


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    """The generated wrapper, with a fake real gh that echoes its arguments."""
    real = tmp_path / "real-bin"
    real.mkdir()
    (real / "gh").write_text('#!/bin/sh\necho "real gh: $*"\n')
    (real / "gh").chmod(0o755)
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    directory = gh_guard.install(workspace, RULES, f"{real}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return directory / "gh"


@pytest.mark.parametrize(("argv", "refusal"), TABLE)
def test_the_wrapper_runs_only_allowed_calls(wrapper: Path, argv: list[str], refusal: str | None) -> None:
    done = subprocess.run([str(wrapper), *argv], capture_output=True, text=True, check=False)
    if refusal is None:
        assert (done.returncode, done.stdout.strip()) == (0, "real gh: " + " ".join(argv))
    else:
        assert (done.returncode, done.stderr.strip(), done.stdout) == (1, refusal, "")


def test_without_a_real_gh_an_allowed_call_says_so(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    directory = gh_guard.install(workspace, RULES, str(tmp_path / "empty"))
    done = subprocess.run([str(directory / "gh"), "pr", "view"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr.strip()) == (127, "gh is not installed on this machine")


def test_the_wrapper_never_finds_itself_as_the_real_gh(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    first = gh_guard.install(workspace, RULES, "")
    # Installing again with the guarded PATH (a re-run in the same workspace) must not loop.
    again = gh_guard.install(workspace, RULES, gh_guard.guarded_path(first, ""))
    assert "real=''" in (again / "gh").read_text()


def test_rules_for_one_command_merge() -> None:
    assert gh_guard.parse(["pr:view", "pr:view,diff", "issue:list"]) == {
        "pr": ("view", "diff"),
        "issue": ("list",),
    }


def test_guarded_path_puts_the_wrapper_first(tmp_path: Path) -> None:
    assert gh_guard.guarded_path(tmp_path, f"/usr/bin{os.pathsep}{os.pathsep}/bin") == os.pathsep.join(
        [str(tmp_path), "/usr/bin", "/bin"]
    )
