"""What every k3sc flow run opens first: the config, one GitHub client and one Prefect API client.

Secrets come from the credential blocks (filled by `k3sc up`), falling back to the worker's
environment; they are handed to the adapters as values and never appear in parameters or logs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc.config import Config
from k3sc.github import GitHubClient
from k3sc.orchestration.api import PrefectAPI


@dataclass
class Services:
    """The adapters one flow run talks through."""

    config: Config
    gh: GitHubClient
    api: PrefectAPI
    github_token: SecretStr | None


async def github_token() -> SecretStr | None:
    """The token from the `k3sc-github` block, else None (the adapter then reads the environment)."""
    from prefect.exceptions import ObjectNotFound

    from blocks.credentials import GITHUB_BLOCK, GitHubCredentials

    try:
        block = cast(GitHubCredentials, await GitHubCredentials.aload(GITHUB_BLOCK))
    except (ValueError, ObjectNotFound):
        return None
    return block.token


async def agent_secrets() -> dict[str, str]:
    """Model-provider variables from the `k3sc-agents` block (both families; see prompts.agent_env)."""
    from prefect.exceptions import ObjectNotFound

    from blocks.credentials import AGENT_BLOCK, AgentCredentials

    try:
        block = cast(AgentCredentials, await AgentCredentials.aload(AGENT_BLOCK))
    except (ValueError, ObjectNotFound):
        return {}
    return block.values()


@asynccontextmanager
async def services() -> AsyncIterator[Services]:
    """Open the config and both API clients for the duration of a flow run."""
    config = k3sc_config.load().config
    token = await github_token()
    environ = dict(os.environ)
    if token is not None:
        environ["GITHUB_TOKEN"] = token.get_secret_value()
    async with GitHubClient.from_config(config, environ=environ) as gh, PrefectAPI.from_env() as api:
        yield Services(config, gh, api, token)
