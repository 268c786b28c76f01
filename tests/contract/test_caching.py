"""ETag / If-None-Match against the fake: 304s, GitHub's "a 304 is free" rule, and githubkit's hishel cache.

k3sc's poller leans on conditional requests to stay inside the rate limit, so the fake must send
the headers hishel needs to store a response (ETag, Cache-Control, Vary) and must answer a
matching If-None-Match with a body-less 304 that does not count against the limit.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from githubkit import GitHub

from tests.contract.conftest import add_ready_issue, client
from tests.fixtures.github import ContractCheckedFakeGitHub


@pytest.fixture
def http(http: httpx.Client, fake_github: ContractCheckedFakeGitHub) -> httpx.Client:
    """The contract client, with acme/api#1 labelled ready."""
    add_ready_issue(fake_github)
    return http


def _remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/repos/acme/api/issues?labels=ready", id="an issue list"),
        pytest.param("/repos/acme/api/issues/1", id="one issue"),
        pytest.param("/repos/acme/api/issues/1/labels", id="an issue's labels"),
        pytest.param("/repos/acme/api", id="a repository"),
    ],
)
def test_matching_if_none_match_gets_a_free_bodyless_304(http: httpx.Client, path: str) -> None:
    first = http.get(path)
    again = http.get(path, headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, max-age=60, s-maxage=60"
    assert first.headers["vary"] == "Accept, Authorization, Cookie, X-GitHub-OTP"
    assert first.headers["etag"].startswith('W/"')
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == first.headers["etag"]
    assert _remaining(again) == _remaining(first)


def test_a_stale_etag_gets_the_new_representation_and_is_counted(
    http: httpx.Client, fake_github: ContractCheckedFakeGitHub
) -> None:
    first = http.get("/repos/acme/api/issues/1")
    fake_github.set_labels("acme", "api", 1, ["claude-a"])

    again = http.get("/repos/acme/api/issues/1", headers={"If-None-Match": first.headers["etag"]})

    assert again.status_code == 200
    assert [label["name"] for label in again.json()["labels"]] == ["claude-a"]
    assert again.headers["etag"] != first.headers["etag"]
    assert _remaining(again) == _remaining(first) - 1


def test_if_modified_since_answers_304_only_without_if_none_match(http: httpx.Client) -> None:
    first = http.get("/repos/acme/api/issues/1")
    since = first.headers["last-modified"]

    unchanged = http.get("/repos/acme/api/issues/1", headers={"If-Modified-Since": since})
    # RFC 9110: when both are sent, If-None-Match decides and If-Modified-Since is ignored.
    both = http.get(
        "/repos/acme/api/issues/1", headers={"If-Modified-Since": since, "If-None-Match": '"other"'}
    )

    assert (unchanged.status_code, both.status_code) == (304, 200)


def _hishel(response: Any) -> tuple[bool, bool]:
    extensions = response.raw_response.extensions
    return bool(extensions.get("hishel_from_cache")), bool(extensions.get("hishel_revalidated"))


def test_githubkit_cache_revalidates_a_repeated_list_call_with_a_304(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])
    gh: GitHub[Any] = client(fake_github, cache=True)

    with gh:
        first = gh.rest.issues.list_for_repo("acme", "api", labels="ready", per_page=100)
        second = gh.rest.issues.list_for_repo("acme", "api", labels="ready", per_page=100)
        fake_github.set_labels("acme", "api", 1, ["ready", "claude-a"])
        third = gh.rest.issues.list_for_repo("acme", "api", labels="ready", per_page=100)

    sent = fake_github.requests
    assert [r.status for r in sent] == [200, 304, 200]
    assert "if-none-match" not in sent[0].headers
    assert sent[1].headers["if-none-match"] == sent[0].response_headers["etag"]
    assert sent[2].headers["if-none-match"] == sent[0].response_headers["etag"]
    assert _hishel(first) == (False, False)
    assert _hishel(second) == (True, True)
    assert second.status_code == 200
    assert [i.number for i in second.parsed_data] == [i.number for i in first.parsed_data] == [1]
    assert [label.name for label in third.parsed_data[0].labels] == ["ready", "claude-a"]  # type: ignore[union-attr]
    assert (
        sent[1].response_headers["x-ratelimit-remaining"] == sent[0].response_headers["x-ratelimit-remaining"]
    )


async def test_async_githubkit_cache_revalidates_with_a_304(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])

    async with client(fake_github, cache=True) as gh:
        await gh.rest.issues.async_list_for_repo("acme", "api", state="open")
        second = await gh.rest.issues.async_list_for_repo("acme", "api", state="open")

    assert [r.status for r in fake_github.requests] == [200, 304]
    assert _hishel(second) == (True, True)
    assert [issue.title for issue in second.parsed_data] == ["ready-for-an-agent"]
