"""The git wrapper: a table of git calls run through the generated script against a real repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from k3sc.agent import git_guard, workspace

GIT = shutil.which("git") or "git"
ISOLATED = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "PATH": os.environ["PATH"]}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with k3sc's commit-msg hook, a rogue hooksPath in its config, and the wrapper."""
    path = tmp_path / "ws"
    subprocess.run([GIT, "init", "-q", "-b", "main", str(path)], check=True, env=ISOLATED)
    for key, value in (("user.name", "a"), ("user.email", "a@x"), ("core.hooksPath", "/dev/null")):
        subprocess.run([GIT, "-C", str(path), "config", key, value], check=True, env=ISOLATED)
    hooks = path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "commit-msg").write_text(workspace.commit_msg_hook("fixes|closes|resolves"))
    (hooks / "commit-msg").chmod(0o755)
    git_guard.install(path / ".git" / "k3sc-bin", GIT, hooks)
    (path / "f.txt").write_text("x")
    subprocess.run([GIT, "-C", str(path), "add", "f.txt"], check=True, env=ISOLATED)
    return path


def run(repo: Path, *args: str, name: str = "git") -> subprocess.CompletedProcess[str]:
    wrapper = repo / ".git" / "k3sc-bin" / "git"
    if name != "git":
        # git's exec-path links (git-commit → git) reach the same binary under another name.
        link = repo.parent / name
        link.unlink(missing_ok=True)
        link.symlink_to(wrapper)
        wrapper = link
    return subprocess.run(
        [str(wrapper), *args], cwd=repo, capture_output=True, text=True, env=ISOLATED, check=False
    )


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        pytest.param(["commit", "-m", "work"], None, id="an ordinary commit runs"),
        pytest.param(["commit", "-m", "closes #1"], "[security] commit blocked", id="the hook runs despite a rogue hooksPath"),
        pytest.param(["commit", "--no-verify", "-m", "closes #1"], "[security] git commit --no-verify blocked", id="no-verify"),
        pytest.param(["commit", "-n", "-m", "closes #1"], "[security] git commit -n blocked", id="commit -n"),
        pytest.param(["commit", "-anm", "closes #1"], "[security] git commit -n blocked", id="n inside a short cluster"),
        pytest.param(["-c", "core.hooksPath=/dev/null", "commit", "-m", "closes #1"],
                     "[security] git -c core.hookspath blocked", id="a -c hooksPath"),
        pytest.param(["-c", "alias.ci=commit --no-verify", "ci", "-m", "x"],
                     "[security] git -c alias.ci blocked", id="a -c alias"),
        pytest.param(["--config-env=core.hooksPath=X", "commit", "-m", "x"],
                     "[security] git --config-env blocked", id="config-env"),
        pytest.param(["push", "--no-verify", "origin", "main"], "[security] git push --no-verify blocked", id="push no-verify"),
        pytest.param(["commit-tree", "HEAD^{tree}", "-m", "x"], "[security] git commit-tree blocked", id="commit-tree plumbing"),
        pytest.param(["send-pack", "origin", "main"], "[security] git send-pack blocked", id="send-pack plumbing"),
        pytest.param(["-C", ".", "status", "--short"], None, id="global options before the command are fine"),
        pytest.param(["add", "-n", "f.txt"], None, id="-n outside commit is not no-verify"),
    ],
)  # fmt: skip
def test_git_wrapper(repo: Path, args: list[str], refusal: str | None) -> None:
    found = run(repo, *args)
    if refusal is None:
        assert found.returncode == 0, found.stderr
    else:
        assert found.returncode != 0
        assert refusal in found.stderr


def test_an_alias_from_the_repository_config_is_refused(repo: Path) -> None:
    subprocess.run(
        [GIT, "-C", str(repo), "config", "alias.ci", "commit --no-verify"], check=True, env=ISOLATED
    )
    found = run(repo, "ci", "-m", "closes #1")
    assert (found.returncode, found.stderr.strip()) == (
        1,
        "[security] git alias ci blocked (aliases may skip the hooks)",
    )


def test_an_exec_path_name_is_the_command_it_names(repo: Path) -> None:
    found = run(repo, "--no-verify", "-m", "closes #1", name="git-commit")
    assert "[security] git commit --no-verify blocked" in found.stderr
    assert run(repo, "-m", "closes #2", name="git-commit").returncode == 1  # the hook still runs
    assert run(repo, "-m", "fine", name="git-commit").returncode == 0


def test_the_wrapper_runs_the_real_git_with_k3scs_hooks(repo: Path) -> None:
    found = run(repo, "config", "--get", "core.hooksPath")
    assert found.stdout.strip() == str(repo / ".git" / "hooks")
