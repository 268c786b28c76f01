"""Per-run agent tokens from a GitHub App: one repository, the agent's permissions, nothing more.

Against the fake GitHub, whose traffic is checked against GitHub's OpenAPI description at teardown
(the narrowed token request and its `repositories`/`permissions` answer included).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from k3sc.errors import AuthError
from k3sc.github import AppCredentials, credentials
from k3sc.models import Repo
from tests.fixtures.github import ContractCheckedFakeGitHub
from tests.fixtures.keys import rsa_pem

API, WEB = Repo("acme", "api"), Repo("acme", "web")
JWT = "Bearer e30.e30.sig"  # the fake accepts any JWT-shaped App credential


@pytest.fixture
def app(fake_github: ContractCheckedFakeGitHub) -> AppCredentials:
    """Two repositories of one owner, the App installed on the owner, a real RSA key for its JWT."""
    for repo in (API, WEB):
        fake_github.add_repo(repo.owner, repo.name)
        fake_github.add_issue(repo.owner, repo.name, title="t", author="alice", body="b")
    return AppCredentials(1, fake_github.installation_id("acme"), SecretStr(rsa_pem()))


async def call(fake: ContractCheckedFakeGitHub, token: str, method: str, path: str, **kwargs: Any) -> int:
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"token {token}"}) as client:
        return (await client.request(method, path, **kwargs)).status_code


async def test_an_agent_token_can_work_on_its_repository_only(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    before = datetime.now(UTC)
    minted = await credentials.agent_token(app, fake_github.url, API)
    token = minted.token.get_secret_value()
    assert minted.repository == "acme/api"
    assert before < minted.expires_at <= before + timedelta(hours=1, seconds=5)
    comment = {"json": {"body": "hand-off"}}
    # Its own repository: read the issue, comment, list pull requests.
    assert await call(fake_github, token, "GET", "/repos/acme/api/issues/1") == 200
    assert await call(fake_github, token, "POST", "/repos/acme/api/issues/1/comments", **comment) == 201
    assert await call(fake_github, token, "GET", "/repos/acme/api/pulls") == 200
    # Another repository of the same installation: nothing, not even a read.
    assert await call(fake_github, token, "GET", "/repos/acme/web/issues/1") == 403
    assert await call(fake_github, token, "POST", "/repos/acme/web/issues/1/comments", **comment) == 403
    assert await call(fake_github, token, "GET", "/repos/acme/web") == 403


async def test_the_token_request_names_one_repository_and_the_agents_permissions(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    await credentials.agent_token(app, fake_github.url, API)
    (minted,) = [r for r in fake_github.requests if r.path.endswith("/access_tokens")]
    assert minted.json()["repository_selection"] == "selected"
    assert [r["full_name"] for r in minted.json()["repositories"]] == ["acme/api"]
    assert minted.json()["permissions"] == dict(credentials.AGENT_PERMISSIONS)
    assert "administration" not in minted.body.decode()


async def test_a_repository_outside_the_installation_is_an_auth_error(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    with pytest.raises(AuthError, match=r"acme/nowhere .*HTTP 422: There is at least one repository"):
        await credentials.agent_token(app, fake_github.url, Repo("acme", "nowhere"))


async def test_the_token_never_appears_in_its_repr(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    minted = await credentials.agent_token(app, fake_github.url, API)
    assert minted.token.get_secret_value() not in repr(minted)


# --------------------------------------------------------------------------- the fake's side


async def mint(fake: ContractCheckedFakeGitHub, installation: int, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": JWT}) as client:
        return await client.post(f"/app/installations/{installation}/access_tokens", json=body)


@pytest.mark.parametrize(
    ("permissions", "method", "path", "status"),
    [
        pytest.param({"issues": "read"}, "GET", "/repos/acme/api/issues/1", 200, id="read permission reads"),
        pytest.param({"issues": "read"}, "POST", "/repos/acme/api/issues/1/comments", 403, id="read cannot write"),
        pytest.param({"metadata": "read"}, "GET", "/repos/acme/api/issues/1", 403, id="metadata cannot read issues"),
        pytest.param({"metadata": "read"}, "GET", "/repos/acme/api", 200, id="metadata reads the repository"),
        pytest.param({"pull_requests": "write"}, "GET", "/repos/acme/api/pulls", 200, id="pull requests"),
        pytest.param({"contents": "read"}, "GET", "/repos/acme/api/branches/main", 200, id="contents read branches"),
        pytest.param({"issues": "write"}, "GET", "/repos/acme/api/branches/main", 403, id="issues cannot read code"),
    ],
)  # fmt: skip
async def test_the_fake_enforces_a_tokens_permissions(
    fake_github: ContractCheckedFakeGitHub,
    app: AppCredentials,
    permissions: dict[str, str],
    method: str,
    path: str,
    status: int,
) -> None:
    answer = await mint(
        fake_github, app.installation_id, {"repositories": ["api"], "permissions": permissions}
    )
    assert answer.status_code == 201
    assert answer.json()["permissions"] == permissions
    kwargs: dict[str, Any] = {"json": {"body": "x"}} if method == "POST" else {}
    assert await call(fake_github, answer.json()["token"], method, path, **kwargs) == status


async def test_repository_ids_narrow_a_token_too(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    answer = await mint(fake_github, app.installation_id, {"repositories": ["web"]})
    web = answer.json()["repositories"][0]["id"]
    narrowed = await mint(fake_github, app.installation_id, {"repository_ids": [web]})
    token = narrowed.json()["token"]
    assert await call(fake_github, token, "GET", "/repos/acme/web/issues/1") == 200
    assert await call(fake_github, token, "GET", "/repos/acme/api/issues/1") == 403


async def test_permissions_beyond_the_installation_are_refused(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    answer = await mint(fake_github, app.installation_id, {"permissions": {"administration": "write"}})
    assert (answer.status_code, answer.json()["message"]) == (
        422,
        "The permissions requested are not granted to this installation.",
    )
    upgraded = await mint(fake_github, app.installation_id, {"permissions": {"metadata": "write"}})
    assert upgraded.status_code == 422


async def test_an_unnarrowed_token_still_covers_the_whole_installation(
    fake_github: ContractCheckedFakeGitHub, app: AppCredentials
) -> None:
    answer = await mint(fake_github, app.installation_id, {})
    assert answer.json()["repository_selection"] == "all"
    token = answer.json()["token"]
    assert await call(fake_github, token, "GET", "/repos/acme/web/issues/1") == 200
    assert await call(fake_github, token, "GET", "/repos/acme/api/issues/1") == 200
