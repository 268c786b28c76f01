"""Guards for the CLI's start-up cost and the package's public surface (house style 22).

`k3sc --help` must not drag in Prefect, githubkit, Textual, a Kubernetes client or the config stack:
each costs tens to thousands of milliseconds and belongs inside the command that needs it. A fresh
interpreter is the only honest place to look at `sys.modules`, hence the subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import k3sc

# The brief's list, plus what the CLI itself must only import inside a command: the config stack
# (pydantic) and table rendering (rich).
HEAVY = [
    "prefect",
    "prefect_kubernetes",
    "githubkit",
    "textual",
    "kubernetes_asyncio",
    "httpx",
    "yaml",
    "pydantic",
    "rich",
]

# Runs in a fresh interpreter: import the CLI, then run `--version` and every command path's `--help`
# in turn, noting after each which top-level modules had been imported by then.
PROBE = """
import json, sys
import typer.main
from typer.testing import CliRunner
import k3sc.cli

def top() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules})

def paths(command, prefix):
    yield prefix
    for name, child in sorted(getattr(command, "commands", {}).items()):
        yield from paths(child, [*prefix, name])

steps = [{"args": [], "exit_code": 0, "output": "", "modules": top()}]
for args in [["--version"]] + [[*path, "--help"] for path in paths(typer.main.get_command(k3sc.cli.app), [])]:
    result = CliRunner().invoke(k3sc.cli.app, args, prog_name="k3sc")
    steps.append({"args": args, "exit_code": result.exit_code, "output": result.output, "modules": top()})
print(json.dumps(steps))
"""


@pytest.fixture(scope="module")
def start_up_steps() -> list[dict[str, Any]]:
    """What `import k3sc.cli`, `--version` and each command's `--help` imported, in that order."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    steps: list[dict[str, Any]] = json.loads(done.stdout)
    return steps


def test_probe_reaches_every_registered_command(start_up_steps: list[dict[str, Any]]) -> None:
    run = [" ".join(step["args"]) for step in start_up_steps]
    assert {"", "--version", "--help", "config --help", "config show --help", "config check --help"} <= set(
        run
    )
    for step in start_up_steps:
        assert step["exit_code"] == 0, step
    assert "typer" in start_up_steps[0]["modules"]  # the probe saw the CLI's own imports


def test_cli_start_up_and_help_import_nothing_heavy(start_up_steps: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    culprits: dict[str, list[str]] = {}
    for step in start_up_steps:
        new = sorted(set(HEAVY) & set(step["modules"]) - seen)
        if new:
            culprits[" ".join(["k3sc", *step["args"]])] = new
        seen |= set(new)
    # A culprit's module imports one of these at top level: move the import into the command body.
    assert culprits == {}


def test_python_dash_m_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "k3sc", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"k3sc {k3sc.__version__}\n"


def test_public_surface_is_pinned() -> None:
    assert k3sc.__all__ == sorted(k3sc.__all__)
    assert k3sc.__all__ == [
        "AgentError",
        "AgentRun",
        "AuthError",
        "ConfigError",
        "Conflict",
        "Family",
        "GitHubError",
        "Issue",
        "K3scError",
        "Kind",
        "NotFound",
        "OrchestrationError",
        "Outcome",
        "Pull",
        "RateLimited",
        "Repo",
        "RunPhase",
        "State",
        "Unprocessable",
        "UsageError",
        "__version__",
    ]
    for name in k3sc.__all__:
        assert hasattr(k3sc, name), name


# Opens a GitHub client the way every GitHub-reading command does, in a fresh interpreter.
OPEN_CLIENT = """
import asyncio, sys
from k3sc.config import Config
from k3sc.github import GitHubClient

async def main():
    config = Config.model_validate({"repos": ["acme/api"], "github_api_url": "http://127.0.0.1:9"})
    async with GitHubClient.from_config(config, environ={"GITHUB_TOKEN": "ghp_x"}, cache=False):
        pass

asyncio.run(main())
print(" ".join(sorted(m for m in ("githubkit", "hishel", "redis") if m in sys.modules)))
"""


def test_a_github_client_loads_githubkit_without_the_redis_client_it_never_uses() -> None:
    # hishel (githubkit's cache library) imports redis when installed: ~0.1 s per command.
    done = subprocess.run([sys.executable, "-c", OPEN_CLIENT], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["githubkit", "hishel"], done.stderr


@pytest.mark.parametrize(
    ("url", "verify"),
    [
        ("http://127.0.0.1:4200/api", False),  # the embedded default: no TLS, no CA bundle to load
        ("HTTP://localhost:8080", False),
        ("https://api.github.com", True),
        ("https://prefect.example.com/api", True),
    ],
)
def test_certificates_are_checked_on_every_https_url(url: str, verify: bool) -> None:
    from k3sc import tls

    assert tls.verify(url) is verify
