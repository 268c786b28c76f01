"""Small pure parts of `k3sc up`: which secrets it stores, and the credential blocks' masking."""

from __future__ import annotations

from pydantic import SecretStr

from blocks.credentials import AgentCredentials, GitHubCredentials
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
