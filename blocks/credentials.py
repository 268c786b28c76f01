"""Credential blocks loaded by the flows at run time.

Secrets live here as `SecretStr` fields (masked in the API and UI by default), never in flow
parameters, tags, logs or artifacts (invariant 5). `k3sc up` fills them from the local
environment; flows load them by name. The classes must be importable wherever a flow runs
(the agent image installs this package), or `Block.load` fails with `UnknownBlockType`.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

GITHUB_BLOCK = "k3sc-github"
AGENT_BLOCK = "k3sc-agents"


class GitHubCredentials(Block):
    """How k3sc authenticates to GitHub: a token, or a GitHub App installation."""

    _block_type_name = "k3sc GitHub credentials"
    _block_type_slug = "k3sc-github-credentials"
    _description = "GitHub token (or App key) used by the k3sc dispatcher and agents."

    token: SecretStr | None = Field(default=None, description="Personal access or installation token.")
    app_id: int | None = Field(default=None, description="GitHub App id (App auth instead of a token).")
    installation_id: int | None = Field(default=None, description="GitHub App installation id.")
    private_key: SecretStr | None = Field(default=None, description="GitHub App private key (PEM).")


class AgentCredentials(Block):
    """Model-provider credentials handed to agent processes as environment variables."""

    _block_type_name = "k3sc agent credentials"
    _block_type_slug = "k3sc-agent-credentials"
    _description = "Claude / Codex credentials for k3sc agent runs."

    env: dict[str, SecretStr] = Field(default_factory=dict, description="Variable name → secret value.")

    def values(self) -> dict[str, str]:
        """The plain values; the agent's environment builder keeps only its own family's."""
        return {k: v.get_secret_value() for k, v in self.env.items()}
