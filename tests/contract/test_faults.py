"""Failures on demand: injected 5xx, secondary and primary rate limits, 422s, an exhausted limit, and 401s.

Every error path of k3sc's GitHub adapter needs a GitHub that fails the way GitHub fails: the same
status, headers (Retry-After, X-RateLimit-*) and body text, since githubkit tells a secondary from
a primary limit by exactly those. Each case is checked on the wire and through githubkit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from githubkit import GitHub
from githubkit.exception import (
    GitHubException,
    PrimaryRateLimitExceeded,
    RequestFailed,
    SecondaryRateLimitExceeded,
)
from githubkit.retry import RETRY_DEFAULT, RetryOption

from tests.contract.conftest import add_ready_issue, client
from tests.fixtures.github import ContractCheckedFakeGitHub

ISSUES = "/repos/acme/api/issues"
MakeFake = Callable[..., ContractCheckedFakeGitHub]


class Clock:
    """A hand-wound clock for the fake, so rate-limit windows pass without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def http(http: httpx.Client, fake_github: ContractCheckedFakeGitHub) -> httpx.Client:
    """The contract client, with acme/api#1 labelled ready."""
    add_ready_issue(fake_github)
    return http


@pytest.mark.parametrize(
    ("inject", "status", "headers", "message", "raised"),
    [
        pytest.param(
            {"status": 502}, 502, {}, "Bad Gateway", RequestFailed, id="a 5xx carries GitHub's error body"
        ),
        pytest.param(
            {"status": 403, "retry_after": 7},
            403,
            {"retry-after": "7"},
            "You have exceeded a secondary rate limit",
            SecondaryRateLimitExceeded,
            id="403 with Retry-After is a secondary limit",
        ),
        pytest.param(
            {"status": 429, "retry_after": 3},
            429,
            {"retry-after": "3"},
            "You have exceeded a secondary rate limit",
            SecondaryRateLimitExceeded,
            id="429 with Retry-After is a secondary limit",
        ),
        pytest.param(
            {"status": 403, "rate_limit_remaining_zero": True, "retry_after": 30},
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "{now+30}"},
            "API rate limit exceeded for user ID",
            PrimaryRateLimitExceeded,
            id="403 with no remaining requests is the primary limit",
        ),
        pytest.param(
            {"status": 422}, 422, {}, "Validation Failed", RequestFailed, id="422 is Validation Failed"
        ),
    ],
)
def test_injected_fault(
    make_fake_github: MakeFake,
    inject: dict[str, Any],
    status: int,
    headers: dict[str, str],
    message: str,
    raised: type[Exception],
) -> None:
    clock = Clock()
    fake = make_fake_github(clock=clock)
    fake.add_repo("acme", "api")
    fake.inject(**inject)
    fake.inject(**inject)

    with httpx.Client(
        base_url=fake.url, headers={"Authorization": f"token {fake.token}"}, trust_env=False
    ) as http:
        wire = http.get(ISSUES)
    with client(fake) as gh, pytest.raises(raised) as caught:
        gh.rest.issues.list_for_repo("acme", "api")
    with client(fake) as gh:
        after = gh.rest.issues.list_for_repo("acme", "api")

    assert wire.status_code == status
    expected = {k: v.replace("{now+30}", str(int(clock.now) + 30)) for k, v in headers.items()}
    assert {k: wire.headers.get(k) for k in expected} == expected
    assert message in wire.json()["message"]
    assert "retry-after" in wire.headers or not isinstance(caught.value, SecondaryRateLimitExceeded)
    if isinstance(caught.value, SecondaryRateLimitExceeded):
        assert caught.value.retry_after == timedelta(seconds=inject["retry_after"])
    assert after.status_code == 200, "each injected fault answers once"


def test_faults_match_method_and_path_and_are_used_in_order(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    fake_github.inject(500, count=2, method="PUT", path_contains="/labels")
    fake_github.inject(503, method="PUT")

    statuses = [
        http.get(ISSUES).status_code,
        http.put(f"{ISSUES}/1/labels", json={"labels": ["claude-a"]}).status_code,
        http.get(f"{ISSUES}/1/labels").status_code,
        http.put(f"{ISSUES}/1/labels", json={"labels": ["claude-a"]}).status_code,
        http.put(f"{ISSUES}/1/labels", json={"labels": ["claude-a"]}).status_code,
        http.put(f"{ISSUES}/1/labels", json={"labels": ["claude-a"]}).status_code,
    ]

    assert statuses == [200, 500, 200, 500, 503, 200]
    assert fake_github.label_history("acme", "api", 1) == [("ready",), ("claude-a",)], "faults write nothing"


def test_githubkit_retries_a_secondary_limit_when_retry_after_says(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    fake_github.inject(403, retry_after=2)
    wanted: list[timedelta | None] = []

    def retry_now(exc: GitHubException, count: int) -> RetryOption:
        # githubkit's own decision, minus the wait (and note: it reads Retry-After: 0 as 60 s).
        decision = RETRY_DEFAULT(exc, count)
        wanted.append(decision.retry_after)
        return RetryOption(decision.do_retry, timedelta(milliseconds=1) if decision.do_retry else None)

    with GitHub(
        fake_github.token, base_url=fake_github.url, http_cache=False, auto_retry=retry_now, trust_env=False
    ) as gh:
        issues = gh.rest.issues.list_for_repo("acme", "api").parsed_data

    assert [issue.number for issue in issues] == [1]
    assert wanted == [timedelta(seconds=2)]
    assert [r.status for r in fake_github.requests] == [403, 200]


def test_exhausted_limit_is_403_until_reset_then_a_fresh_window(make_fake_github: MakeFake) -> None:
    clock = Clock()
    fake = make_fake_github(clock=clock, rate_limit=10)
    fake.add_repo("acme", "api")
    fake.exhaust_rate_limit(reset_in=120)

    with httpx.Client(
        base_url=fake.url, headers={"Authorization": f"token {fake.token}"}, trust_env=False
    ) as http:
        limited = http.get(ISSUES)
        status = http.get("/rate_limit").json()
        clock.now += 121
        recovered = http.get(ISSUES)

    assert limited.status_code == 403
    assert limited.json()["message"].startswith("API rate limit exceeded for user ID")
    assert (limited.headers["x-ratelimit-remaining"], limited.headers["x-ratelimit-reset"]) == (
        "0",
        str(int(clock.now - 121) + 120),
    )
    assert status["resources"]["core"]["remaining"] == 0
    assert recovered.status_code == 200
    assert recovered.headers["x-ratelimit-remaining"] == "9"
    with client(fake) as gh:
        fake.exhaust_rate_limit(reset_in=60)
        with pytest.raises(PrimaryRateLimitExceeded):
            gh.rest.issues.list_for_repo("acme", "api")


def test_requests_count_against_the_limit_but_rate_limit_itself_does_not(make_fake_github: MakeFake) -> None:
    fake = make_fake_github(rate_limit=3)
    fake.add_repo("acme", "api")

    with httpx.Client(
        base_url=fake.url, headers={"Authorization": f"token {fake.token}"}, trust_env=False
    ) as http:
        remaining = [
            int(http.get(path).headers["x-ratelimit-remaining"])
            for path in (ISSUES, "/rate_limit", ISSUES, ISSUES)
        ]
        over = http.get(ISSUES)
        core = http.get("/rate_limit").json()["resources"]["core"]

    assert remaining == [2, 2, 1, 0]
    assert over.status_code == 403
    assert (core["limit"], core["used"], core["remaining"]) == (3, 3, 0)


@pytest.mark.parametrize(
    ("authorization", "status", "message"),
    [
        pytest.param(None, 401, "Requires authentication", id="no credentials"),
        pytest.param("token wrong", 401, "Bad credentials", id="a wrong token"),
        pytest.param("Basic Zm9vOmJhcg==", 401, "Requires authentication", id="another scheme"),
        pytest.param(f"token {'{token}'}", 200, None, id="token scheme"),
        pytest.param(f"Bearer {'{token}'}", 200, None, id="Bearer scheme"),
    ],
)
def test_credentials(
    fake_github: ContractCheckedFakeGitHub, authorization: str | None, status: int, message: str | None
) -> None:
    fake_github.add_repo("acme", "api")
    headers = (
        {}
        if authorization is None
        else {"Authorization": authorization.replace("{token}", fake_github.token or "")}
    )

    response = httpx.get(f"{fake_github.url}{ISSUES}", headers=headers, trust_env=False)

    assert response.status_code == status
    if message is not None:
        assert response.json() == {
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }
        assert response.headers["x-ratelimit-remaining"] == "5000", "a 401 is not counted"


def test_githubkit_raises_on_a_401(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    gh = GitHub("wrong", base_url=fake_github.url, http_cache=False, auto_retry=False, trust_env=False)
    with gh, pytest.raises(RequestFailed) as caught:
        gh.rest.issues.list_for_repo("acme", "api")

    assert caught.value.response.status_code == 401


def test_app_endpoints_want_a_jwt_and_minted_tokens_expire(make_fake_github: MakeFake) -> None:
    clock = Clock()
    fake = make_fake_github(clock=clock)
    fake.add_repo("acme", "api")
    jwt = {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxIn0.c2lnbmF0dXJl"}

    with httpx.Client(base_url=fake.url, trust_env=False) as http:
        with_token = http.get(
            "/repos/acme/api/installation", headers={"Authorization": f"token {fake.token}"}
        )
        installation = http.get("/repos/acme/api/installation", headers=jwt).json()
        unknown = http.post("/app/installations/999/access_tokens", headers=jwt)
        token = http.post(f"/app/installations/{installation['id']}/access_tokens", headers=jwt).json()[
            "token"
        ]
        fresh = http.get(ISSUES, headers={"Authorization": f"token {token}"})
        as_user = http.get("/user", headers={"Authorization": f"token {token}"})
        clock.now += 3601
        expired = http.get(ISSUES, headers={"Authorization": f"token {token}"})

    assert (with_token.status_code, with_token.json()["message"]) == (
        401,
        "A JSON web token could not be decoded",
    )
    assert installation["account"]["login"] == "acme"
    assert unknown.status_code == 404
    assert token.startswith("ghs_")
    assert (fresh.status_code, expired.status_code) == (200, 401)
    assert (as_user.status_code, as_user.json()["message"]) == (403, "Resource not accessible by integration")


def test_inject_refuses_a_status_that_is_not_a_failure(fake_github: ContractCheckedFakeGitHub) -> None:
    with pytest.raises(ValueError, match="4xx/5xx"):
        fake_github.inject(200)
