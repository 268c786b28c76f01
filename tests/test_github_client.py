"""The GitHub client's edges: credentials, the HTTP cache, rate limits, retries and error translation.

Everything that talks goes to the `fake_github` fixture, so each request is also checked against
GitHub's OpenAPI description at teardown. Waits are recorded by a fake `sleep`, never slept.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit import exception as gk
from githubkit.response import Response as GkResponse
from pydantic import SecretStr

from k3sc import retrying
from k3sc.config import Config, GitHubAppConfig
from k3sc.errors import AuthError, Conflict, GitHubError, NotFound, RateLimited, Unprocessable
from k3sc.github import AppCredentials, GitHubClient, TokenCredentials, credentials, transports
from k3sc.github.ratelimit import BudgetMeter
from k3sc.models import Repo
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

ACME = Repo("acme", "api")


class Sleeps(list[float]):
    """A `sleep` that records how long it was asked to wait and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def connect(
    fake: ContractCheckedFakeGitHub,
    *,
    repos: tuple[str, ...] = ("acme/api",),
    token: str | None = FAKE_GITHUB_TOKEN,
    sleeps: Sleeps | None = None,
    backoff: float = 0.0,
    config: dict[str, Any] | None = None,
    **seams: Any,
) -> GitHubClient:
    """A client for the fake: the fixture's token, the test's cache dir, zero-length waits."""
    cfg = Config.model_validate(
        {"github_api_url": fake.url, "repos": list(repos), "allowed_authors": ["alice"], **(config or {})}
    )
    environ = {k: v for k, v in os.environ.items() if k not in credentials.TOKEN_VARS}
    if token is not None:
        environ["GITHUB_TOKEN"] = token
    retry = retrying.Policy(
        attempts=retrying.GITHUB.attempts,
        initial=backoff,
        jitter=0.0,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    seams.setdefault("gh_cli", None)
    return GitHubClient.from_config(cfg, environ=environ, retry=retry, **seams)


def seed(fake: ContractCheckedFakeGitHub, owner: str = "acme", name: str = "api", issues: int = 3) -> None:
    fake.add_repo(owner, name)
    for n in range(issues):
        fake.add_issue(owner, name, title=f"issue {n}", author="alice", labels=["ready"])


# ------------------------------------------------------------------ credentials


def _config(**extra: Any) -> Config:
    return Config.model_validate({"repos": ["acme/api"], **extra})


def _gh_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "gh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize(
    ("environ", "gh_body", "source", "token"),
    [
        pytest.param(
            {"GITHUB_TOKEN": "a", "GH_TOKEN": "b"}, "echo c", "GITHUB_TOKEN", "a", id="GITHUB_TOKEN first"
        ),
        pytest.param({"GH_TOKEN": "b"}, "echo c", "GH_TOKEN", "b", id="GH_TOKEN second"),
        pytest.param(
            {"GITHUB_TOKEN": "  ", "GH_TOKEN": "b"}, None, "GH_TOKEN", "b", id="blank env counts as unset"
        ),
        pytest.param(
            {},
            'test "$*" = "auth token --hostname github.com" && echo c',
            "gh auth token",
            "c",
            id="gh auth token for the configured host last",
        ),
    ],
)
async def test_token_resolution_order(
    tmp_path: Path, environ: dict[str, str], gh_body: str | None, source: str, token: str
) -> None:
    gh = _gh_script(tmp_path, gh_body) if gh_body else None
    found = await credentials.resolve(_config(), environ=environ, gh=gh)
    assert found == TokenCredentials(SecretStr(token), source)


@pytest.mark.parametrize(
    "gh_body",
    [pytest.param(None, id="gh not installed"), pytest.param("exit 1", id="gh installed but logged out")],
)
async def test_no_credentials_is_one_auth_error_saying_what_to_set(
    tmp_path: Path, gh_body: str | None
) -> None:
    gh = _gh_script(tmp_path, gh_body) if gh_body else None
    with pytest.raises(AuthError) as caught:
        await credentials.resolve(_config(), environ={}, gh=gh)
    message = str(caught.value)
    for hint in ("GITHUB_TOKEN", "GH_TOKEN", "gh auth login", "github_app"):
        assert hint in message
    assert caught.value.exit_code == 2


async def test_github_app_in_config_wins_over_env_tokens(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text("PEM")
    config = _config(github_app={"app_id": 7, "installation_id": 9, "private_key_path": str(key)})
    found = await credentials.resolve(config, environ={"GITHUB_TOKEN": "a"}, gh=None)
    assert found == AppCredentials(7, 9, SecretStr("PEM"))


async def test_unreadable_app_key_names_the_path_not_the_content(tmp_path: Path) -> None:
    config = _config(
        github_app={"app_id": 7, "installation_id": 9, "private_key_path": str(tmp_path / "no.pem")}
    )
    with pytest.raises(AuthError, match=r"no\.pem.*private_key_path"):
        await credentials.resolve(config, environ={}, gh=None)


async def test_rejected_token_is_an_auth_error_naming_its_source_not_its_value(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    seed(fake_github)
    async with connect(fake_github, token="ghp_wrongwrongwrong") as gh:
        with pytest.raises(AuthError) as caught:
            await gh.get_issue(ACME, 1)
    assert "GITHUB_TOKEN" in str(caught.value) and "401" in str(caught.value)
    assert "ghp_wrong" not in str(caught.value) and "ghp_wrong" not in repr(caught.value)


async def test_missing_token_fails_when_the_client_opens(fake_github: ContractCheckedFakeGitHub) -> None:
    with pytest.raises(AuthError, match="GITHUB_TOKEN"):
        async with connect(fake_github, token=None):
            pass
    assert fake_github.requests == []


def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_github_app_mints_an_installation_token_and_reads_with_it(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    seed(fake_github)
    installation = fake_github.installation_id("acme")
    app = {"app_id": 1, "installation_id": installation, "private_key": _rsa_pem()}
    async with connect(fake_github, token=None, config={"github_app": app}) as gh:
        first = await gh.get_issue(ACME, 1)
        await gh.get_issue(ACME, 2)
    assert first.issue.number == 1
    minted = [r for r in fake_github.requests if r.method == "POST" and "access_tokens" in r.path]
    assert len(minted) == 1, "the installation token is minted once and reused"
    assert all(r.status in (200, 201) for r in fake_github.requests)


async def test_a_refused_installation_is_an_auth_error(fake_github: ContractCheckedFakeGitHub) -> None:
    seed(fake_github)
    app = {"app_id": 1, "installation_id": 999, "private_key": _rsa_pem()}
    async with connect(fake_github, token=None, config={"github_app": app}) as gh:
        with pytest.raises(AuthError, match=r"GitHub App authentication failed.*installation 999"):
            await gh.get_issue(ACME, 1)


def test_app_config_private_key_is_not_in_reprs() -> None:
    app = GitHubAppConfig(app_id=1, installation_id=2, private_key=SecretStr("-----BEGIN secret"))
    creds = AppCredentials(app.app_id, app.installation_id, app.private_key or SecretStr(""))
    auth = credentials.http_auth(creds, "https://api.github.com/")
    assert "secret" not in repr(creds) and "secret" not in repr(auth)


# ------------------------------------------------------------------ the HTTP cache


async def test_a_new_client_on_the_same_cache_dir_revalidates_everything_and_gets_304s(
    fake_github: ContractCheckedFakeGitHub, tmp_path: Path
) -> None:
    seed(fake_github, issues=150)
    async with connect(fake_github, cache_dir=tmp_path / "c") as gh:
        cold = await gh.workflow_issues([ACME])
        cold_budget = gh.budget
    used_before = fake_github.rate_limit_status()[1]
    fake_github.clear_requests()
    async with connect(fake_github, cache_dir=tmp_path / "c") as gh:
        warm = await gh.workflow_issues([ACME])
        warm_budget = gh.budget
    assert warm.items == cold.items and len(warm.items) == 150
    assert cold_budget.requests == 2 and cold_budget.not_modified == 0
    assert warm_budget.requests == 2 and warm_budget.not_modified == 2
    assert [r.status for r in fake_github.requests] == [304, 304]
    assert all("if-none-match" in r.headers for r in fake_github.requests)
    assert fake_github.rate_limit_status()[1] == used_before, "304s are not charged"


async def test_the_token_never_reaches_the_cache_file(
    fake_github: ContractCheckedFakeGitHub, tmp_path: Path
) -> None:
    seed(fake_github)
    async with connect(fake_github, cache_dir=tmp_path / "c") as gh:
        await gh.workflow_issues([ACME])
    database = sqlite3.connect(tmp_path / "c" / transports.CACHE_FILE)
    try:
        (rows,) = database.execute("select count(*) from responses").fetchone()
    finally:
        database.close()
    assert rows == 1, "the page was cached"
    # Every byte on disk (database, WAL), not just the rows we know about.
    stored = b"".join(path.read_bytes() for path in (tmp_path / "c").iterdir())
    assert FAKE_GITHUB_TOKEN.encode() not in stored
    assert all(r.headers.get("authorization") == f"token {FAKE_GITHUB_TOKEN}" for r in fake_github.requests)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"K3SC_CACHE_DIR": "/x/c", "XDG_CACHE_HOME": "/y"}, Path("/x/c"), id="K3SC_CACHE_DIR wins"
        ),
        pytest.param({"XDG_CACHE_HOME": "/y"}, Path("/y/k3sc"), id="then XDG_CACHE_HOME/k3sc"),
        pytest.param({}, Path.home() / ".cache" / "k3sc", id="then ~/.cache/k3sc"),
    ],
)
def test_cache_dir(environ: dict[str, str], expected: Path) -> None:
    assert transports.cache_dir(environ) == expected


# ------------------------------------------------------------------ rate limits and retries


async def test_server_errors_are_retried_with_exponential_backoff(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    seed(fake_github)
    fake_github.inject(502, count=2, method="GET", path_contains="/issues/1")
    sleeps = Sleeps()
    async with connect(fake_github, sleeps=sleeps, backoff=1.0) as gh:
        issue = await gh.get_issue(ACME, 1)
    assert issue.issue.number == 1
    assert sleeps == [1.0, 2.0]
    assert [r.status for r in fake_github.requests] == [502, 502, 200]


async def test_server_errors_past_the_retries_raise(fake_github: ContractCheckedFakeGitHub) -> None:
    seed(fake_github)
    fake_github.inject(503, count=10, method="GET")
    async with connect(fake_github) as gh:
        with pytest.raises(GitHubError) as caught:
            await gh.get_issue(ACME, 1)
    assert caught.value.status == 503 and type(caught.value) is GitHubError
    assert len(fake_github.requests) == retrying.GITHUB.attempts


async def test_a_post_is_not_resent_after_a_server_error(fake_github: ContractCheckedFakeGitHub) -> None:
    seed(fake_github)
    fake_github.inject(502, method="POST", path_contains="/comments")
    async with connect(fake_github) as gh:
        with pytest.raises(GitHubError):
            await gh.comment(ACME, 1, "hello")
    assert [(r.method, r.status) for r in fake_github.requests] == [("POST", 502)]
    assert fake_github.issue_view("acme", "api", 1)["comments"] == []


@pytest.mark.parametrize("status", [403, 429])
async def test_a_secondary_rate_limit_is_waited_out(
    fake_github: ContractCheckedFakeGitHub, status: int
) -> None:
    seed(fake_github)
    fake_github.inject(status, retry_after=7, path_contains="/issues")
    sleeps = Sleeps()
    async with connect(fake_github, sleeps=sleeps) as gh:
        scan = await gh.workflow_issues([ACME])
    assert len(scan.items) == 3
    assert sleeps == [7.0]


async def test_a_short_primary_limit_is_waited_out(fake_github: ContractCheckedFakeGitHub) -> None:
    seed(fake_github)
    fake_github.inject(403, rate_limit_remaining_zero=True, retry_after=30)
    sleeps = Sleeps()
    async with connect(fake_github, sleeps=sleeps) as gh:
        await gh.get_issue(ACME, 1)
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


async def test_an_exhausted_primary_limit_is_reported_with_its_reset(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    seed(fake_github)
    fake_github.exhaust_rate_limit(reset_in=3600)
    reset = datetime.fromtimestamp(fake_github.rate_limit_status()[2], UTC)
    sleeps = Sleeps()
    async with connect(fake_github, sleeps=sleeps, repos=("acme/api", "acme/web")) as gh:
        with pytest.raises(RateLimited) as caught:
            await gh.workflow_issues([ACME, Repo("acme", "web")])
        budget = gh.budget
    assert caught.value.reset_at == reset
    assert "primary rate limit" in str(caught.value)
    assert sleeps == []
    assert budget.remaining == 0 and budget.reset == reset


async def test_a_secondary_limit_longer_than_max_wait_is_reported(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    seed(fake_github)
    fake_github.inject(403, retry_after=600)
    before = datetime.now(UTC)
    async with connect(fake_github) as gh:
        with pytest.raises(RateLimited) as caught:
            await gh.get_issue(ACME, 1)
    assert caught.value.reset_at is not None
    assert (
        before + timedelta(seconds=599) <= caught.value.reset_at <= datetime.now(UTC) + timedelta(seconds=601)
    )


def test_budget_keeps_the_lowest_remaining_of_the_newest_window() -> None:
    meter = BudgetMeter()
    for status, remaining, reset in [(200, 10, 100), (304, 12, 100), (200, 4990, 200), (200, 4995, 200)]:
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
        }
        meter.observe(status, headers)
    budget = meter.snapshot()
    assert (budget.remaining, budget.limit, budget.requests, budget.not_modified) == (4990, 5000, 4, 1)
    assert budget.reset == datetime.fromtimestamp(200, UTC)


# ------------------------------------------------------------------ error translation


def _failed(
    status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> GkResponse[Any]:
    request = httpx.Request("GET", "https://api.github.test/repos/acme/api/issues/1?token=x")
    raw = httpx.Response(status, json=body or {"message": "nope"}, headers=headers, request=request)
    return GkResponse(raw, Any)


_REQUEST = httpx.Request("GET", "https://api.github.test/repos/acme/api")
RESET_HEADERS = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2000000000"}

# Every exception githubkit's REST path can raise, and httpx's, with the k3sc error it becomes.
TRANSLATIONS = [
    pytest.param(
        gk.PrimaryRateLimitExceeded(_failed(403, headers=RESET_HEADERS), timedelta(hours=1)),
        RateLimited,
        id="primary rate limit",
    ),
    pytest.param(
        gk.SecondaryRateLimitExceeded(_failed(429, headers={"retry-after": "90"}), timedelta(seconds=90)),
        RateLimited,
        id="secondary rate limit",
    ),
    pytest.param(
        gk.RateLimitExceeded(_failed(403, headers=RESET_HEADERS), timedelta(hours=1)),
        RateLimited,
        id="rate limit (base class)",
    ),
    pytest.param(gk.RequestFailed(_failed(401, {"message": "Bad credentials"})), AuthError, id="401"),
    pytest.param(gk.RequestFailed(_failed(403, {"message": "Resource not accessible"})), AuthError, id="403"),
    pytest.param(
        gk.RequestFailed(_failed(403, {"message": "secondary rate limit"})),
        RateLimited,
        id="403 rate limit without headers",
    ),
    pytest.param(gk.RequestFailed(_failed(404)), NotFound, id="404"),
    pytest.param(gk.RequestFailed(_failed(410)), NotFound, id="410"),
    pytest.param(gk.RequestFailed(_failed(409)), Conflict, id="409"),
    pytest.param(gk.RequestFailed(_failed(422)), Unprocessable, id="422"),
    pytest.param(gk.RequestFailed(_failed(429)), RateLimited, id="429 without headers"),
    pytest.param(gk.RequestFailed(_failed(500)), GitHubError, id="500"),
    pytest.param(gk.RequestFailed(_failed(418)), GitHubError, id="other 4xx"),
    pytest.param(gk.RequestTimeout(httpx.ReadTimeout("slow", request=_REQUEST)), GitHubError, id="timeout"),
    pytest.param(gk.RequestError(httpx.ConnectError("refused")), GitHubError, id="unreachable"),
    pytest.param(gk.RequestError(transports.CredentialFailure("x")), AuthError, id="app auth flow failed"),
    pytest.param(gk.AuthCredentialError(), AuthError, id="githubkit credential error"),
    pytest.param(gk.AuthExpiredError(), GitHubError, id="other githubkit error"),
    pytest.param(gk.CacheUnsupportedError(), GitHubError, id="cache unsupported"),
    pytest.param(httpx.ReadTimeout("slow", request=_REQUEST), GitHubError, id="bare httpx timeout"),
    pytest.param(httpx.ConnectError("refused"), GitHubError, id="bare httpx error"),
]
# githubkit exceptions that only its GraphQL and webhook helpers raise; k3sc uses neither.
NOT_ON_THE_REST_PATH = {
    gk.GraphQLError,
    gk.GraphQLFailed,
    gk.GraphQLPaginationError,
    gk.GraphQLMissingPageInfo,
    gk.GraphQLMissingCursorChange,
    gk.WebhookTypeNotFound,
}


@pytest.mark.parametrize(("exc", "expected"), TRANSLATIONS)
def test_translation(exc: Exception, expected: type[GitHubError]) -> None:
    client = GitHubClient(_config(github_api_url="https://api.github.test"))
    translated = client.translate(exc)
    assert type(translated) is expected
    assert "token=x" not in str(translated), "query strings (and so anything secret in them) are left out"


def test_every_githubkit_exception_has_a_translation_row() -> None:
    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for sub in cls.__subclasses__() for s in subclasses(sub)}

    covered = {type(p.values[0]) for p in TRANSLATIONS}
    githubkit_classes = {c for c in subclasses(gk.GitHubException) if c.__module__ == gk.__name__}
    assert githubkit_classes - NOT_ON_THE_REST_PATH - {gk.GitHubException} <= covered


def test_rate_limit_translation_carries_the_reset_from_the_header() -> None:
    client = GitHubClient(_config())
    exc = gk.PrimaryRateLimitExceeded(_failed(403, headers=RESET_HEADERS), timedelta(hours=1))
    translated = client.translate(exc)
    assert isinstance(translated, RateLimited)
    assert translated.reset_at == datetime.fromtimestamp(2_000_000_000, UTC)


@pytest.mark.parametrize(
    ("proxies", "url", "expected"),
    [
        pytest.param(
            {"HTTPS_PROXY": "http://proxy:3128"}, "https://api.github.com/", "http://proxy:3128", id="https"
        ),
        pytest.param(
            {"HTTP_PROXY": "http://proxy:3128"},
            "https://api.github.com/",
            None,
            id="http proxy not for https",
        ),
        pytest.param(
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "github.com"},
            "https://api.github.com/",
            None,
            id="NO_PROXY exempts",
        ),
        pytest.param({}, "https://api.github.com/", None, id="none"),
    ],
)
def test_env_proxy_is_applied_inside_the_stack(
    monkeypatch: pytest.MonkeyPatch, proxies: dict[str, str], url: str, expected: str | None
) -> None:
    for var in (
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    for var, value in proxies.items():
        monkeypatch.setenv(var, value)
    assert transports.env_proxy(url) == expected


def test_importing_the_package_does_not_import_githubkit() -> None:
    import subprocess
    import sys

    probe = "import sys, k3sc.github; print('githubkit' in sys.modules, 'hishel' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
