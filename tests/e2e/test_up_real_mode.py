"""`k3sc up` without --sandbox: the user's own config file and token, nothing built for it.

A GitHub stand-in (the fake, answering at a URL given as `github_api_url`) plays github.com; the
token comes from GITHUB_TOKEN as a user would export it; the config names a clone URL and the
stub agent as `agent.command`. Everything else is the real main job.

The secrets are canaries: unique values for GITHUB_TOKEN, the webhook secret and every model-provider
key; the repository's webhook points at the receiver `k3sc up` runs. While the
loop runs (a success and a failure), no process but `k3sc up` itself and the agents (which are
given their credentials on purpose) may show one in /proc/<pid>/environ, and none at all in its
command line; afterwards none may appear in k3sc's files (logs, HTTP cache, workspaces and their
`.git/config`) or in what Prefect holds (flow runs and their parameters, logs, artifacts,
variables, automations, events).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from k3sc.agent import workspace
from k3sc.orchestration.stack import free_port
from k3sc.sandbox.github import FakeGitHub
from tests import github_contract

pytestmark = pytest.mark.e2e


def _leaks_in_processes(canaries: list[str], exempt: set[int]) -> list[str]:
    """Where a canary shows in another process's environment or any process's command line."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = {} if proc.pid in exempt else proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        # An agent (or its git), or git that k3sc runs for the agent's workspace with the agent's
        # token: handed the agent's credentials on purpose.
        if "K3SC_AGENT" in environ or workspace.AGENT_GIT_MARKER in environ:
            environ = {}
        for canary in canaries:
            if canary in cmdline:
                found.append(f"cmdline of {proc.pid}: {cmdline[:120]}")
            found += [
                f"environ of {proc.pid} ({cmdline[:80]}): {k}" for k, v in environ.items() if canary in v
            ]
    return found


def _leaks_in_files(root: Path, canaries: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [str(path) for canary in canaries if canary.encode() in data]
    return found


def _prefect_records(api_url: str, since: datetime) -> str:
    """Everything Prefect holds that a secret could end up in (logs and events since `since`), as one text."""
    after = since.isoformat()
    queries = {
        "flow_runs/filter": {},
        "logs/filter": {"logs": {"timestamp": {"after_": after}}},
        "artifacts/filter": {},
        "variables/filter": {},
        "automations/filter": {},
    }
    everything = []
    with httpx.Client(base_url=api_url, timeout=30) as api:
        for path, query in queries.items():
            offset = 0
            while (
                page := api.post(path, json={**query, "limit": 200, "offset": offset})
                .raise_for_status()
                .json()
            ):
                everything.append(str(page))
                offset += len(page)
        events = api.post("events/filter", json={"filter": {"occurred": {"since": after}}, "limit": 50})
        events = events.raise_for_status().json()
        everything.append(str(events))
        while token := events.get("next_page"):
            events = api.get(token).raise_for_status().json()
            everything.append(str(events))
    return "\n".join(everything)


def test_up_runs_the_loop_from_the_users_config_and_leaks_no_secret(
    tmp_path: Path, prefect_api_url: str
) -> None:
    token = f"ghp_canary{secrets.token_hex(15)}"
    model_keys = {
        "ANTHROPIC_API_KEY": f"sk-ant-canary-{secrets.token_hex(12)}",
        "CLAUDE_CODE_OAUTH_TOKEN": f"sk-ant-oat-canary-{secrets.token_hex(12)}",
        "OPENAI_API_KEY": f"sk-canary-{secrets.token_hex(12)}",
    }
    secret, port = f"hook-canary-{secrets.token_hex(12)}", free_port()
    canaries = [token, secret, *model_keys.values()]
    started = datetime.now(UTC)
    with FakeGitHub(tmp_path / "remotes", token=token, users=["k3sc-bot", "carol"]) as github:
        remote = github.add_repo("carol", "service", default_branch="trunk")
        first = github.add_issue("carol", "service", title="Add retries", author="carol", labels=["ready"])
        second = github.add_issue(
            "carol", "service", title="Not for robots", author="carol", labels=["waiting", "ready"]
        )
        failing = github.add_issue(
            "carol", "service", title="Always fails", author="carol", labels=["ready"], body="stub: fail"
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
            **model_keys,
        )
        # The repository's webhook, as set up in GitHub's settings (deliveries before `up` fail).
        hook = github.hook_to(f"http://127.0.0.1:{port}/github", secret)
        up = subprocess.Popen(
            [sys.executable, "-m", "k3sc", "up", "--until-idle", "--timeout", "300"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        leaks: set[str] = set()
        deadline = time.monotonic() + 480
        while up.poll() is None and time.monotonic() < deadline:
            # `k3sc up` holds what the user gave it; this test process set the values.
            leaks.update(_leaks_in_processes(canaries, exempt={up.pid, os.getpid()}))
            time.sleep(0.5)
        stdout, stderr = up.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert sorted(leaks) == []
        assert up.returncode == 0, stderr[-4000:]

        assert github.issue_view("carol", "service", first)["labels"] == ["needs-human"]
        assert github.issue_view("carol", "service", second)["labels"] == ["waiting", "ready"]
        assert github.issue_view("carol", "service", failing)["labels"] == ["needs-human"]
        history = github.label_history("carol", "service", first)
        assert (
            history[0] == ("ready",) and history[2] == ("needs-review",) and history[-1] == ("needs-human",)
        )
        assert history[1] != history[3], "the reviewer must not be the implementer"
        assert github_contract.violations(github.requests) == []
        assert hook.wait() and any(d.status == 202 for d in hook.deliveries)
    assert "watching 1 repo(s): carol/service" in stderr
    assert f"webhook: receiving GitHub deliveries at http://127.0.0.1:{port}/github" in stderr
    assert not [c for c in canaries if c in stdout + stderr]
    assert _leaks_in_files(tmp_path / "home", canaries) == []
    assert _leaks_in_files(tmp_path / "workspaces", canaries) == []
    records = _prefect_records(prefect_api_url, started)
    assert not [c for c in canaries if c in records]
