"""`k3sc up` refuses, with exit 2 and a message saying what to put where, to start a loop that could
never dispatch anything; nothing is started before these checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import invoke


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        pytest.param("allowed_authors: [alice]\n", {}, "no repos to watch: add `repos:", id="no repos"),
        pytest.param(
            "repos: [acme/api]\n", {}, "no allowed_authors: add `allowed_authors:", id="no trusted authors"
        ),
        pytest.param(
            "repos: [acme/api]\nallowed_authors: [alice]\n",
            {"GITHUB_TOKEN": None, "GH_TOKEN": None, "PATH": "/nonexistent"},
            "No GitHub credentials found: set GITHUB_TOKEN",
            id="no GitHub token",
        ),
        pytest.param(
            "repos: [acme/api]\nallowed_authors: [alice]\nagent: {pool: kubernetes}\n",
            {},
            "agent.pool is kubernetes: agent runs are Jobs in your cluster, which `k3sc deploy` sets up",
            id="kubernetes mode is deployed, not run by up",
        ),
        pytest.param("max_slots: lots\n", {}, "'max_slots'", id="malformed config"),
    ],
)
def test_up_refuses_what_could_never_work(
    isolated_env: Path, config: str, env: dict[str, str | None], expected: str
) -> None:
    (isolated_env / "k3sc.yaml").write_text(config)
    invoke(["up"], code=2, contains=[expected], env=env)
    assert not (isolated_env / "k3sc-home" / "logs").exists(), "something was started"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["up", "--seed", "world.yaml"], "--seed only applies with --sandbox", id="seed without sandbox"
        ),
        pytest.param(["up", "--json"], "--json only applies with --until-idle", id="json without until-idle"),
    ],
)
def test_up_option_mistakes_are_usage_errors(args: list[str], expected: str) -> None:
    invoke(args, code=2, contains=[expected])
