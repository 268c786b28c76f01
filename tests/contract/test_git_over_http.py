"""The fake GitHub serves its bare remotes over git's smart HTTP at github.com's clone URLs
(`<url>/<owner>/<name>.git`), so a client that cannot see the remotes' paths (an agent in a pod of
the fake cluster) clones and pushes as it would on github.com: a token as Basic auth."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

GIT = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@x"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_clone_and_push_with_a_token_over_http(
    fake_github: ContractCheckedFakeGitHub, tmp_path: Path
) -> None:
    fake_github.add_repo("acme", "api")
    authed = fake_github.url.replace("http://", f"http://x-access-token:{FAKE_GITHUB_TOKEN}@")
    clone = tmp_path / "clone"
    done = git("clone", f"{authed}/acme/api.git", str(clone))
    assert done.returncode == 0, done.stderr
    (clone / "change.txt").write_text("over http\n")
    git("add", "change.txt", cwd=clone)
    git("commit", "-m", "over http", cwd=clone)
    done = git("push", "origin", "HEAD:refs/heads/issue-7", cwd=clone)
    assert done.returncode == 0, done.stderr
    # The REST API sees the pushed branch at once: the same bare remote.
    answer = httpx.get(f"{fake_github.url}/repos/acme/api/branches/issue-7",
                       headers={"Authorization": f"Bearer {FAKE_GITHUB_TOKEN}"})  # fmt: skip
    assert answer.status_code == 200
    assert answer.json()["commit"]["sha"] == git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    # Git traffic is not REST: it is not recorded as a REST request (nor contract-checked).
    assert not any(r.path.endswith((".git/info/refs", "git-receive-pack")) for r in fake_github.requests)


def test_without_the_token_nothing_is_cloned(fake_github: ContractCheckedFakeGitHub, tmp_path: Path) -> None:
    fake_github.add_repo("acme", "api")
    wrong = fake_github.url.replace("http://", "http://x-access-token:ghp_wrong@")
    for url in (f"{fake_github.url}/acme/api.git", f"{wrong}/acme/api.git"):
        done = git("clone", url, str(tmp_path / "nope"))
        assert done.returncode != 0
        assert "Authentication failed" in done.stderr or "could not read Username" in done.stderr, done.stderr
