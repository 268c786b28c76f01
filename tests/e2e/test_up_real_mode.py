"""`k3sc up` without --sandbox: the user's own config file and token, nothing built for it.

A GitHub stand-in (the fake, answering at a URL given as `github_api_url`) plays github.com; the
token comes from GITHUB_TOKEN as a user would export it; the config names a clone URL and the
stub agent as `agent.command`. Everything else is the real main job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from k3sc.orchestration.stack import free_port
from k3sc.sandbox.github import FakeGitHub
from tests import github_contract

pytestmark = pytest.mark.e2e


def test_up_runs_the_loop_from_the_users_config(tmp_path: Path, prefect_api_url: str) -> None:
    token = "ghp_realModeToken0000000000000000000000"
    secret, port = "realModeHookSecret", free_port()
    with FakeGitHub(tmp_path / "remotes", token=token, users=["k3sc-bot", "carol"]) as github:
        remote = github.add_repo("carol", "service", default_branch="trunk")
        first = github.add_issue("carol", "service", title="Add retries", author="carol", labels=["ready"])
        second = github.add_issue(
            "carol", "service", title="Not for robots", author="carol", labels=["waiting", "ready"]
        )
        config = {
            "github_url": github.url,
            "github_api_url": github.url,
            "repos": [{"owner": "carol", "name": "service", "clone_url": str(remote)}],
            "allowed_authors": ["carol"],
            "max_slots": 2,
            "agent": {"command": [sys.executable, "-m", "k3sc.sandbox.stub_agent"]},
            "workspace_root": str(tmp_path / "workspaces"),
            "webhook": {"port": port},
        }
        (tmp_path / "k3sc.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_TOKEN", "GH_TOKEN"))}
        env.update(
            PREFECT_API_URL=prefect_api_url,
            GITHUB_TOKEN=token,
            K3SC_CONFIG=str(tmp_path / "k3sc.yaml"),
            K3SC_HOME=str(tmp_path / "home"),
            K3SC_WEBHOOK_SECRET=secret,
        )
        # The repository's webhook, as set up in GitHub's settings (deliveries before `up` fail).
        hook = github.hook_to(f"http://127.0.0.1:{port}/github", secret)
        proc = subprocess.run(
            [sys.executable, "-m", "k3sc", "up", "--until-idle", "--timeout", "300"],
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert github.issue_view("carol", "service", first)["labels"] == ["needs-human"]
        assert github.issue_view("carol", "service", second)["labels"] == ["waiting", "ready"]
        history = github.label_history("carol", "service", first)
        assert (
            history[0] == ("ready",) and history[2] == ("needs-review",) and history[-1] == ("needs-human",)
        )
        assert history[1] != history[3], "the reviewer must not be the implementer"
        assert github_contract.violations(github.requests) == []
        assert hook.wait() and any(d.status == 202 for d in hook.deliveries)
    assert "watching 1 repo(s): carol/service" in proc.stderr
    assert f"webhook: receiving GitHub deliveries at http://127.0.0.1:{port}/github" in proc.stderr
    assert token not in proc.stdout + proc.stderr and secret not in proc.stdout + proc.stderr
