"""Small pure parts of `k3sc up`: which secrets it stores, the credential blocks' masking, and
which database its Prefect server gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.credentials import AgentCredentials, GitHubCredentials
from k3sc.config import Config
from k3sc.orchestration.stack import LocalStack
from k3sc.services import up


def test_only_agent_credentials_are_copied_into_the_block() -> None:
    environ = {
        "CLAUDE_CODE_OAUTH_TOKEN": "oauth",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "OPENAI_API_KEY": "openai",
        "GITHUB_TOKEN": "gh",  # stored in its own block, never handed to agents this way
        "HOME": "/root",
        "ANTHROPIC_API_KEY": "",  # empty means unset
    }
    stored = up.agent_env(environ)
    assert sorted(stored) == ["AWS_SECRET_ACCESS_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY"]
    assert all(isinstance(v, SecretStr) for v in stored.values())


def test_blocks_never_show_their_secrets() -> None:
    github = GitHubCredentials(token=SecretStr("ghp_secret"))
    agents = AgentCredentials(env={"OPENAI_API_KEY": SecretStr("sk-secret")})
    for shown in (
        repr(github),
        str(github),
        repr(agents),
        github.model_dump_json(),
        agents.model_dump_json(),
    ):
        assert "secret" not in shown.replace("SecretStr", "").lower(), shown
    assert agents.values() == {"OPENAI_API_KEY": "sk-secret"}


FLAG, ENV, FILE = (SecretStr(f"postgresql://u@h/{name}") for name in ("flag", "env", "file"))


@pytest.mark.parametrize(
    ("flag", "sandbox", "expected"),
    [
        pytest.param(FLAG, False, FLAG, id="--database wins over the config"),
        pytest.param(FLAG, True, FLAG, id="--database wins over the environment in the sandbox"),
        pytest.param(None, False, FILE, id="the config (K3SC_DATABASE_URL already applied by load)"),
        pytest.param(None, True, ENV, id="the sandbox reads the environment, not the user's config"),
    ],
)
def test_which_database_the_local_server_gets(
    tmp_path: Path, flag: SecretStr | None, sandbox: bool, expected: SecretStr
) -> None:
    config = Config(prefect={"database": FILE.get_secret_value()})
    session = up.Session(
        tmp_path, config, tmp_path / "k3sc.yaml", LocalStack(tmp_path), world=object() if sandbox else None
    )
    environ = {"K3SC_DATABASE_URL": ENV.get_secret_value()}
    assert up.server_database(session, up.UpOptions(sandbox=sandbox, database=flag), environ) == expected


def test_without_a_database_the_server_stays_on_sqlite(tmp_path: Path) -> None:
    session = up.Session(tmp_path, Config(), tmp_path / "k3sc.yaml", LocalStack(tmp_path))
    assert up.server_database(session, up.UpOptions(), {}) is None


@pytest.mark.parametrize(
    ("started", "skips_handshakes"),
    [
        pytest.param(True, True, id="the server k3sc started: no CSRF token, no version check"),
        pytest.param(False, False, id="a server someone else runs: Prefect's client defaults"),
    ],
)
def test_clients_skip_handshakes_only_with_the_server_k3sc_started(
    tmp_path: Path, started: bool, skips_handshakes: bool
) -> None:
    stack = LocalStack(tmp_path, api_url="http://127.0.0.1:4200/api", started_server=started)
    env = stack.worker_env()
    assert (env.get("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED") == "false") is skips_handshakes
    assert (env.get("PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED") == "false") is skips_handshakes
