"""Helpers for the fake-GitHub contract tests: githubkit clients bound to the fake, and real git pushes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit import GitHub
from githubkit.cache import MemCacheStrategy

from tests.fixtures.github import ContractCheckedFakeGitHub

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@k3sc.invalid",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@k3sc.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

PushBranch = Callable[..., str]


def client(fake: ContractCheckedFakeGitHub, *, cache: bool = False, retry: bool = False) -> GitHub[Any]:
    """A githubkit client for `fake`: no retries and no HTTP cache unless asked for.

    A cache, when asked for, is private to the client; githubkit's default cache is process-wide
    and would let one test's ETags leak into another.
    """
    return GitHub(
        fake.token,
        base_url=fake.url,
        http_cache=cache,
        cache_strategy=MemCacheStrategy(),
        auto_retry=retry,
        trust_env=False,  # no proxy for 127.0.0.1, whatever the environment says
    )


@pytest.fixture
def gh(fake_github: ContractCheckedFakeGitHub) -> Iterator[GitHub[Any]]:
    """A sync githubkit client on the fake, with the repo acme/api already created."""
    fake_github.add_repo("acme", "api")
    with client(fake_github) as github:
        yield github


@pytest.fixture
def http(fake_github: ContractCheckedFakeGitHub) -> Iterator[httpx.Client]:
    """A plain httpx client on the fake with the repo acme/api created, so headers are ours to set."""
    fake_github.add_repo("acme", "api")
    with httpx.Client(
        base_url=fake_github.url, headers={"Authorization": f"token {fake_github.token}"}, trust_env=False
    ) as http:
        yield http


def add_ready_issue(fake: ContractCheckedFakeGitHub) -> int:
    """Issue #1 of acme/api, labelled ready (after `http` created the repo)."""
    return fake.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])


@pytest.fixture
def push_branch(tmp_path: Path) -> PushBranch:
    """Push `branch` (one commit writing `files`) to a bare remote the way an agent would; return the sha."""
    counter = iter(range(1_000_000))

    def push(remote: Path, branch: str, files: dict[str, str] | None = None, *, base: str = "main") -> str:
        work = tmp_path / f"clone-{next(counter)}"
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=work, env=GIT_ENV, check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(
            ["git", "clone", "-q", str(remote), str(work)], env=GIT_ENV, check=True, capture_output=True
        )
        run("checkout", "-q", "-B", branch, f"origin/{base}")
        for name, content in (files or {f"{branch}.txt": f"work on {branch}\n"}).items():
            (work / name).write_text(content)
        run("add", "-A")
        run("commit", "-q", "-m", f"work on {branch}")
        run("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return run("rev-parse", "HEAD")

    return push
