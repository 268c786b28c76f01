"""Where k3sc's GitHub credentials come from, and the one error that says how to fix a missing one.

Order: the config's `github_app` (an explicit choice wins), then `GITHUB_TOKEN`, then `GH_TOKEN`,
then `gh auth token` if the gh CLI is installed. With an App, each agent run gets a token of its
own (`agent_token`): one repository, only the permissions an agent needs, expiring within the
hour; the dispatcher's installation token never reaches an agent.

Tokens are held as `SecretStr` from the moment they are read; only `http_auth()` unwraps them,
into the header of a request that is already past the on-disk cache (see `transports.py`), so no
token reaches a log, an exception or the cache file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from k3sc.config import Config
from k3sc.errors import AuthError
from k3sc.github import kit
from k3sc.models import Repo

TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")
GH_TIMEOUT_SECONDS = 10.0

HOW_TO_AUTHENTICATE = (
    "set GITHUB_TOKEN (or GH_TOKEN) in the environment to a token that can read issues and write "
    "labels, run `gh auth login` so `gh auth token` prints one, or configure `github_app` "
    "(app_id, installation_id, private_key_path) in the k3sc config file"
)


@dataclass(frozen=True)
class TokenCredentials:
    """A personal access or installation token; `source` names where it came from, never its value."""

    token: SecretStr
    source: str


@dataclass(frozen=True)
class AppCredentials:
    """A GitHub App that k3sc authenticates as (JWT → installation token, refreshed by githubkit)."""

    app_id: int
    installation_id: int
    private_key: SecretStr
    source: str = "github_app in the k3sc config"


Credentials = TokenCredentials | AppCredentials

# Sentinel for "look gh up on PATH": tests pass None (gh missing) or the path of a stand-in script.
_FIND_GH = "<which gh>"


async def resolve(
    config: Config,
    *,
    environ: Mapping[str, str] | None = None,
    gh: str | None = _FIND_GH,
) -> Credentials:
    """The credentials k3sc uses, or AuthError saying what to set where.

    Args:
        config: the effective configuration (`github_app`, `github_url` for gh's host).
        environ: the environment to read tokens from; defaults to `os.environ`.
        gh: path of the gh CLI; defaults to looking it up on PATH, None means "not installed".
    """
    env = os.environ if environ is None else environ
    if config.github_app is not None:
        app = config.github_app
        if app.private_key is not None:
            key = app.private_key
        else:
            assert app.private_key_path is not None  # the config validator demands exactly one
            key = await _read_key(app.private_key_path)
        return AppCredentials(app.app_id, app.installation_id, key)
    for var in TOKEN_VARS:
        value = env.get(var, "").strip()
        if value:
            return TokenCredentials(SecretStr(value), var)
    gh_path = shutil.which("gh") if gh == _FIND_GH else gh
    if gh_path is not None:
        token = await _gh_auth_token(gh_path, _host(config.github_url))
        if token is not None:
            return TokenCredentials(token, "gh auth token")
    raise AuthError(f"No GitHub credentials found: {HOW_TO_AUTHENTICATE}.")


async def _read_key(path: Path) -> SecretStr:
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except OSError as exc:
        raise AuthError(
            f"cannot read the GitHub App private key at {path} (github_app.private_key_path): {exc.strerror}."
        ) from None
    return SecretStr(text)


async def _gh_auth_token(gh_path: str, host: str) -> SecretStr | None:
    """`gh auth token --hostname HOST`, or None when gh has no login for that host."""
    try:
        proc = await asyncio.create_subprocess_exec(
            gh_path,
            "auth",
            "token",
            "--hostname",
            host,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), GH_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    token = out.decode("utf-8", "replace").strip()
    return SecretStr(token) if proc.returncode == 0 and token else None


def _host(github_url: str) -> str:
    return urlsplit(github_url).hostname or "github.com"


class _TokenAuth(httpx.Auth):
    """Adds the token header at the last moment; the token stays a SecretStr until then."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"token {self._token.get_secret_value()}"
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"token {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_TokenAuth(token=**********)"


def http_auth(credentials: Credentials, api_url: str) -> httpx.Auth:
    """The httpx auth flow for these credentials, to be run below the HTTP cache."""
    if isinstance(credentials, TokenCredentials):
        return _TokenAuth(credentials.token)
    kit.load()
    from githubkit import GitHub
    from githubkit.auth import AppInstallationAuthStrategy
    from githubkit.cache import MemCacheStrategy

    strategy = AppInstallationAuthStrategy(
        credentials.app_id, credentials.private_key.get_secret_value(), credentials.installation_id
    )
    # githubkit's App flow only reads base_url and its token cache from this core and yields the
    # token request back to our transport, so the core itself never sends anything. The token cache
    # is per client: githubkit's default is process-wide and keyed by app and installation only, so
    # a token minted by one server (or revoked since) would be replayed to another.
    core = GitHub(base_url=api_url, http_cache=False, auto_retry=False, cache_strategy=MemCacheStrategy())
    return _AppAuth(strategy.get_auth_flow(core))


class _AppAuth(httpx.Auth):
    """githubkit's App flow behind a repr that cannot print the private key (its own is a dataclass)."""

    def __init__(self, inner: httpx.Auth) -> None:
        self._inner = inner

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._inner.async_auth_flow(request)
        outgoing = await flow.__anext__()
        while True:
            response = yield outgoing
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return

    def __repr__(self) -> str:
        return "_AppAuth(private_key=**********)"


# What an agent run needs and nothing more: push its branch (contents), open the PR and comment
# on it (pull_requests), comment on its issue (issues), and read the repository (metadata).
AGENT_PERMISSIONS: Mapping[str, str] = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "metadata": "read",
}


@dataclass(frozen=True)
class AgentToken:
    """An installation token for one agent run: one repository, `AGENT_PERMISSIONS`.

    GitHub lets installation tokens live one hour at most, and offers no shorter lifetime; a run
    longer than that needs a new token (the agent's git and gh would get 401s after `expires_at`).
    """

    token: SecretStr
    expires_at: datetime
    repository: str

    def __repr__(self) -> str:
        return f"AgentToken(repository={self.repository!r}, expires_at={self.expires_at.isoformat()})"


async def agent_token(
    app: AppCredentials,
    api_url: str,
    repo: Repo,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AgentToken:
    """Mint an installation token limited to `repo` and `AGENT_PERMISSIONS`, for one agent run.

    Args:
        app: the App credentials (`resolve` with `github_app` configured).
        api_url: the REST API base.
        repo: the only repository the token may touch.
        transport: the HTTP transport under githubkit (a test's fake); None for the network.

    Raises:
        AuthError: the App or its installation refused, or the installation cannot reach `repo`.
    """
    kit.load()
    from githubkit import AppAuthStrategy, GitHub
    from githubkit.exception import GitHubException, RequestFailed

    strategy = AppAuthStrategy(app.app_id, app.private_key.get_secret_value())
    gh = GitHub(strategy, base_url=api_url, async_transport=transport, http_cache=False, trust_env=False)
    try:
        async with gh:
            response = await gh.rest.apps.async_create_installation_access_token(
                app.installation_id,
                repositories=[repo.name],
                # AGENT_PERMISSIONS, spelled out for githubkit's typed body.
                permissions={
                    "contents": "write",
                    "pull_requests": "write",
                    "issues": "write",
                    "metadata": "read",
                },
            )
    except RequestFailed as exc:
        message = _message(exc.response.text)
        raise AuthError(
            f"GitHub refused an agent token for {repo.full_name} from installation {app.installation_id} "
            f"(HTTP {exc.response.status_code}: {message}); the App must be installed on that repository "
            f"with contents, pull_requests and issues write."
        ) from None
    except (GitHubException, httpx.HTTPError) as exc:
        raise AuthError(f"could not mint an agent token for {repo.full_name}: {type(exc).__name__}") from None
    minted = response.parsed_data
    expires = datetime.fromisoformat(minted.expires_at.replace("Z", "+00:00"))
    return AgentToken(SecretStr(minted.token), expires, repo.full_name)


def _message(text: str) -> str:
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return "no message"
    return str(data.get("message", "no message")) if isinstance(data, dict) else "no message"
