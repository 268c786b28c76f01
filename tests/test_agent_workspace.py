"""The agent workspace against real bare git remotes: clone, refresh, clean, branch, hooks, lock."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from k3sc.agent import workspace
from k3sc.errors import AgentError
from k3sc.models import Repo

REPO = Repo("acme", "api")
AGENT = "claude-b"
TOKEN = "ghp_workspaceTestToken0123456789abcdefABCD"
WORDS = ("fixes", "closes", "resolves")


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer git config (signing, hooksPath, helpers) may leak into these tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)


def git(
    cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
    )


def make_remote(tmp_path: Path, default: str = "main", *, branches: tuple[str, ...] = ()) -> Path:
    """A bare remote whose HEAD is `default`, with one commit there and on each extra branch."""
    bare = tmp_path / "remotes" / "api.git"
    seed = tmp_path / "remotes" / "seed"
    seed.mkdir(parents=True)
    git(seed, "init", "-q", "-b", default)
    (seed / "README.md").write_text("hello\n")
    (seed / ".gitignore").write_text("*.log\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "initial")
    git(tmp_path, "init", "-q", "--bare", "-b", default, str(bare))
    git(seed, "push", "-q", str(bare), default)
    for branch in branches:
        git(seed, "checkout", "-q", "-b", branch, default)
        (seed / f"{branch}.txt").write_text(branch)
        git(seed, "add", ".")
        git(seed, "commit", "-q", "-m", f"work on {branch}")
        git(seed, "push", "-q", str(bare), branch)
    return bare


def remote_sha(bare: Path, branch: str) -> str:
    return git(bare, "rev-parse", f"refs/heads/{branch}").stdout.strip()


async def prepare(
    tmp_path: Path,
    remote: Path | str,
    *,
    issue: int = 5,
    agent: str = AGENT,
    default_branch: str | None = None,
    log: list[str] | None = None,
) -> workspace.Workspace:
    return await workspace.prepare(
        root=tmp_path / "workspaces",
        repo=REPO,
        agent=agent,
        issue=issue,
        clone_url=str(remote),
        branch=f"issue-{issue}",
        default_branch=default_branch,
        blocked_words=WORDS,
        token=TOKEN,
        log=(log if log is not None else []).append,
    )


# --------------------------------------------------------------------------- clone and refresh


@pytest.mark.parametrize("default", ["master", "dev"], ids=["remote default master", "remote default dev"])
async def test_first_prepare_clones_and_branches_from_the_remote_default(
    tmp_path: Path, default: str
) -> None:
    remote = make_remote(tmp_path, default)
    with await prepare(tmp_path, remote) as ws:
        assert ws == workspace.Workspace(
            path=tmp_path / "workspaces" / "acme-api-claude-b",
            branch="issue-5",
            base=default,
            reused_branch=False,
            head_sha=remote_sha(remote, default),
        )
        assert git(ws.path, "branch", "--show-current").stdout.strip() == "issue-5"
        # No upstream: a bare `git push` must never be able to reach the base branch.
        assert git(ws.path, "rev-parse", "--abbrev-ref", "issue-5@{upstream}", check=False).returncode != 0
        assert git(ws.path, "config", "--local", "user.name").stdout.strip() == AGENT
        assert (
            git(ws.path, "config", "--local", "user.email").stdout.strip()
            == f"{AGENT}@users.noreply.k3sc.dev"
        )


async def test_given_default_branch_wins_over_the_remote_default(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "master", branches=("dev",))
    with await prepare(tmp_path, remote, default_branch="dev") as ws:
        assert (ws.base, ws.head_sha) == ("dev", remote_sha(remote, "dev"))


async def test_second_prepare_fetches_instead_of_cloning_again(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    first_log: list[str] = []
    with await prepare(tmp_path, remote, log=first_log) as ws:
        (ws.path / ".git" / "k3sc-marker").write_text("kept if not re-cloned")
    # Someone merges to main in the meantime.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    (other / "new.txt").write_text("new")
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", "merged elsewhere")
    git(other, "push", "-q", "origin", "main")

    second_log: list[str] = []
    with await prepare(tmp_path, remote, log=second_log) as ws:
        assert (ws.path / ".git" / "k3sc-marker").exists()
        assert ws.head_sha == remote_sha(remote, "main")
    assert any(line.startswith("cloning") for line in first_log)
    assert not any(line.startswith("cloning") for line in second_log)
    assert "fetching origin" in second_log


async def test_existing_remote_branch_is_reused_at_the_remote_state(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    with await prepare(tmp_path, remote) as ws:
        # An earlier attempt committed locally but never pushed; only pushed work counts.
        (ws.path / "local.txt").write_text("unpushed")
        git(ws.path, "add", ".")
        git(ws.path, "commit", "-q", "-m", "unpushed work")
    pusher = tmp_path / "pusher"
    git(tmp_path, "clone", "-q", str(remote), str(pusher))
    git(pusher, "checkout", "-q", "-b", "issue-5")
    (pusher / "pushed.txt").write_text("pushed")
    git(pusher, "add", ".")
    git(pusher, "commit", "-q", "-m", "pushed work")
    git(pusher, "push", "-q", "origin", "issue-5")

    with await prepare(tmp_path, remote) as ws:
        assert (ws.reused_branch, ws.head_sha) == (True, remote_sha(remote, "issue-5"))
        assert (
            git(ws.path, "rev-parse", "--abbrev-ref", "issue-5@{upstream}").stdout.strip() == "origin/issue-5"
        )
        assert not (ws.path / "local.txt").exists()
        assert (ws.path / "pushed.txt").exists()


async def test_a_branch_deleted_on_the_remote_starts_again_from_the_base(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main", branches=("issue-5",))
    with await prepare(tmp_path, remote) as ws:
        assert ws.reused_branch
    git(remote, "branch", "-D", "issue-5")
    with await prepare(tmp_path, remote) as ws:
        assert (ws.reused_branch, ws.head_sha) == (False, remote_sha(remote, "main"))


async def test_dirty_half_rebased_workspace_is_cleaned(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    with await prepare(tmp_path, remote) as ws:
        path = ws.path
    # What a run killed mid-rebase leaves: a conflicting rebase in progress, edits, junk, a lock.
    git(path, "checkout", "-q", "-b", "other")
    (path / "README.md").write_text("theirs\n")
    git(path, "commit", "-q", "-am", "theirs")
    git(path, "checkout", "-q", "issue-5")
    (path / "README.md").write_text("ours\n")
    git(path, "commit", "-q", "-am", "ours")
    assert git(path, "rebase", "other", check=False).returncode != 0
    assert (path / ".git" / "rebase-merge").is_dir() or (path / ".git" / "rebase-apply").is_dir()
    (path / "untracked.txt").write_text("junk")
    (path / "debug.log").write_text("ignored junk")
    (path / ".git" / "index.lock").write_text("")

    log: list[str] = []
    with await prepare(tmp_path, remote, log=log) as ws:
        assert not (path / ".git" / "rebase-merge").exists()
        assert not (path / ".git" / "rebase-apply").exists()
        assert not (path / ".git" / "index.lock").exists()
        assert git(path, "status", "--porcelain", "--ignored").stdout == ""
        assert (path / "README.md").read_text() == "hello\n"
        assert ws.head_sha == remote_sha(remote, "main")
    assert any("cleaned leftovers" in line and "index.lock" in line for line in log)


async def test_what_an_earlier_agent_left_in_git_config_and_hooks_is_gone(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    with await prepare(tmp_path, remote) as ws:
        path = ws.path
    ran = tmp_path / "ran"
    # Commands an agent could plant: a hook and a config command k3sc's own git would run.
    hook = path / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\necho hook >> {ran}\n")
    hook.chmod(0o755)
    git(path, "config", "core.fsmonitor", f"echo fsmonitor >> {ran}; false")
    git(path, "config", "alias.push", "!echo hijacked")
    git(path, "config", "remote.origin.fetch", "+refs/heads/main:refs/remotes/origin/main")
    git(path, "config", "core.hooksPath", str(tmp_path))

    with await prepare(tmp_path, remote):
        assert not ran.exists()
        assert sorted(p.name for p in (path / ".git" / "hooks").iterdir()) == ["commit-msg", "pre-push"]
        config = git(path, "config", "--local", "--list").stdout
        assert "fsmonitor" not in config
        assert "alias." not in config
        assert "remote.origin.fetch=+refs/heads/*:refs/remotes/origin/*" in config.splitlines()
        assert f"core.hookspath={path / '.git' / 'hooks'}" in config.splitlines()


async def test_a_clone_killed_halfway_is_cloned_again(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    root = tmp_path / "workspaces"
    (root / ".acme-api-claude-b.cloning" / ".git").mkdir(parents=True)
    (root / "acme-api-claude-b").mkdir()
    (root / "acme-api-claude-b" / "partial").write_text("no .git here")
    with await prepare(tmp_path, remote) as ws:
        assert ws.head_sha == remote_sha(remote, "main")
        assert not (ws.path / "partial").exists()
    assert not (root / ".acme-api-claude-b.cloning").exists()


@pytest.mark.parametrize(
    ("remote", "branch", "words", "message"),
    [
        pytest.param(
            "missing",
            "issue-5",
            WORDS,
            r"`git .*clone .*nowhere\.git .*` failed",
            id="unreachable remote names the command",
        ),
        pytest.param(
            "ok", "issue-5;rm -rf ~", WORDS, "not a usable branch name", id="shell in a branch name"
        ),
        pytest.param("ok", "issue-5", ("clo$es",), "may hold only letters", id="regex or shell in a word"),
        pytest.param("ok", "issue-5", (), "blocked_commit_words is empty", id="no blocked words"),
    ],
)
async def test_unusable_input_is_an_agent_error(
    tmp_path: Path, remote: str, branch: str, words: tuple[str, ...], message: str
) -> None:
    url = str(make_remote(tmp_path)) if remote == "ok" else str(tmp_path / "nowhere.git")
    with pytest.raises(AgentError, match=message) as caught:
        await workspace.prepare(
            root=tmp_path / "workspaces",
            repo=REPO,
            agent=AGENT,
            issue=5,
            clone_url=url,
            branch=branch,
            default_branch=None,
            blocked_words=words,
            token=TOKEN,
            log=lambda _: None,
        )
    assert TOKEN not in str(caught.value)


async def test_missing_base_branch_is_an_agent_error(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    with pytest.raises(AgentError, match="base branch 'develop' does not exist"):
        await prepare(tmp_path, remote, default_branch="develop")
    # The failed attempt released its lock.
    with await prepare(tmp_path, remote):
        pass


# --------------------------------------------------------------------------- lock


async def test_a_second_run_of_the_same_agent_fails_fast_while_the_first_holds_the_clone(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, "main")
    first = await prepare(tmp_path, remote, issue=5)
    with pytest.raises(AgentError, match=r"in use by another run \(pid \d+ .*claude-b for acme/api#5\)"):
        await prepare(tmp_path, remote, issue=6)
    # Another agent has its own clone and is not blocked.
    with await prepare(tmp_path, remote, issue=6, agent="claude-c") as other:
        assert other.path.name == "acme-api-claude-c"
    first.release()
    with await prepare(tmp_path, remote, issue=6) as again:
        assert again.branch == "issue-6"


# --------------------------------------------------------------------------- hooks


async def test_pre_push_hook_allows_only_the_issue_branch(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    main_before = remote_sha(remote, "main")
    with await prepare(tmp_path, remote) as ws:
        (ws.path / "work.txt").write_text("work")
        git(ws.path, "add", ".")
        git(ws.path, "commit", "-q", "-m", "work for issue 5")

        to_main = git(ws.path, "push", "origin", "HEAD:main", check=False)
        assert to_main.returncode != 0
        assert "[security] push to 'main' blocked (only 'issue-5' allowed)" in to_main.stderr
        assert remote_sha(remote, "main") == main_before

        tag = git(ws.path, "push", "origin", "HEAD:refs/tags/v1", check=False)
        assert tag.returncode != 0
        assert "[security] push to 'refs/tags/v1' blocked" in tag.stderr

        assert git(ws.path, "push", "-q", "-u", "origin", "issue-5").returncode == 0
        assert remote_sha(remote, "issue-5") == git(ws.path, "rev-parse", "HEAD").stdout.strip()

        delete = git(ws.path, "push", "origin", ":issue-5", check=False)
        assert delete.returncode != 0
        assert "[security] deleting 'issue-5' blocked" in delete.stderr


async def test_hooks_hold_even_when_the_global_config_sets_another_hooks_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global_config = tmp_path / "gitconfig"
    (tmp_path / "no-hooks").mkdir()
    global_config.write_text(f"[core]\n\thooksPath = {tmp_path / 'no-hooks'}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    remote = make_remote(tmp_path, "main")
    with await prepare(tmp_path, remote) as ws:
        git(ws.path, "commit", "-q", "--allow-empty", "-m", "work")
        pushed = git(ws.path, "push", "origin", "HEAD:main", check=False)
        assert "[security] push to 'main' blocked" in pushed.stderr


@pytest.mark.parametrize(
    ("message", "allowed"),
    [
        pytest.param("closes #3", False, id="closes #3 is blocked"),
        pytest.param("Fixes #3", False, id="keywords are case-insensitive"),
        pytest.param("work\n\nRESOLVES   #12", False, id="in the body with extra spaces"),
        pytest.param("closes: #3", False, id="with a colon, as GitHub also accepts"),
        pytest.param("closes acme/api#3", False, id="a cross-repository reference"),
        pytest.param("issue 3", True, id="issue 3 is allowed"),
        pytest.param("work on issue #3", True, id="issue #3 is allowed"),
        pytest.param("closes the gap in #3", True, id="a keyword not followed by a reference"),
        pytest.param("encloses #3", True, id="a keyword inside another word"),
    ],
)
async def test_commit_msg_hook(tmp_path: Path, message: str, allowed: bool) -> None:
    remote = make_remote(tmp_path, "main")
    with await prepare(tmp_path, remote) as ws:
        (ws.path / "work.txt").write_text("work")
        git(ws.path, "add", ".")
        committed = git(ws.path, "commit", "-q", "-m", message, check=False)
        assert (committed.returncode == 0) is allowed
        if not allowed:
            assert (
                "[security] commit blocked: message contains fixes|closes|resolves #N (auto-closes issues)"
                in committed.stderr
            )


# --------------------------------------------------------------------------- credentials


async def test_the_token_is_written_nowhere(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    log: list[str] = []
    with await prepare(tmp_path, remote, log=log) as ws:
        root = tmp_path / "workspaces"
        for path in [*root.rglob("*"), *root.glob(".*")]:
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path
        assert TOKEN not in "\n".join(log)
        helpers = git(ws.path, "config", "--local", "--get-all", "credential.helper").stdout.splitlines()
        assert helpers == ["", workspace.CREDENTIAL_HELPER]


async def test_the_credential_helper_reads_the_token_from_the_environment_at_run_time(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, "main")
    with await prepare(tmp_path, remote) as ws:
        request = "protocol=https\nhost=github.com\npath=acme/api.git\n\n"
        filled = await asyncio.to_thread(
            subprocess.run,
            ["git", "credential", "fill"],
            cwd=ws.path,
            input=request,
            capture_output=True,
            text=True,
            env={**os.environ, "GITHUB_TOKEN": "token-of-this-run", "GIT_TERMINAL_PROMPT": "0"},
            check=True,
        )
        assert "username=x-access-token" in filled.stdout.splitlines()
        assert "password=token-of-this-run" in filled.stdout.splitlines()


@pytest.mark.parametrize(
    ("url", "key"),
    [
        pytest.param(
            "https://github.com/acme/api.git", "credential.https://github.com.helper", id="github.com"
        ),
        pytest.param(
            "https://ghe.example:8443/acme/api.git",
            "credential.https://ghe.example:8443.helper",
            id="ghe with port",
        ),
        pytest.param("/srv/git/api.git", "credential.helper", id="a local path"),
        pytest.param("git@github.com:acme/api.git", "credential.helper", id="ssh"),
    ],
)
def test_the_helper_is_scoped_to_the_remote_host(url: str, key: str) -> None:
    assert workspace._helper_key(url) == key
