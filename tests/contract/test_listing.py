"""Listing issues and pull requests: filters, order, pages and Link headers, as GitHub does them.

The dispatcher's scan is a list call per repo, so these are the fake behaviours it depends on:
real absolute Link headers past 100 items, pull requests mixed into the issue list (carrying
`pull_request`), AND-ed label filters, and GitHub's defaults for state, sort and direction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from githubkit import GitHub

from tests.contract.conftest import PushBranch
from tests.fixtures.github import ContractCheckedFakeGitHub


def _rels(response: httpx.Response) -> dict[str, str]:
    return {rel: str(link["url"]) for rel, link in response.links.items()}


def test_250_issues_page_by_100_with_absolute_links(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    for n in range(250):
        fake_github.add_issue("acme", "api", title=f"issue {n + 1}", author="alice", labels=["ready"])
    base = f"{fake_github.url}/repos/acme/api/issues?labels=ready&per_page=100"

    pages = [
        http.get("/repos/acme/api/issues", params={"labels": "ready", "per_page": 100, "page": p})
        for p in (1, 2, 3)
    ]

    assert [len(page.json()) for page in pages] == [100, 100, 50]
    assert _rels(pages[0]) == {"next": f"{base}&page=2", "last": f"{base}&page=3"}
    assert _rels(pages[1]) == {
        "prev": f"{base}&page=1",
        "next": f"{base}&page=3",
        "last": f"{base}&page=3",
        "first": f"{base}&page=1",
    }
    assert _rels(pages[2]) == {"prev": f"{base}&page=2", "first": f"{base}&page=1"}
    numbers = [issue["number"] for page in pages for issue in page.json()]
    assert numbers == list(range(250, 0, -1))  # newest first: sort=created, direction=desc


def test_githubkit_paginator_follows_the_fake_links_to_every_issue(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    fake_github.add_repo("acme", "api")
    for n in range(205):
        fake_github.add_issue("acme", "api", title=f"issue {n + 1}", author="alice")
    with GitHub(fake_github.token, base_url=fake_github.url, http_cache=False, trust_env=False) as gh:
        issues = list(gh.rest.paginate(gh.rest.issues.list_for_repo, owner="acme", repo="api", per_page=100))

    assert sorted(issue.number for issue in issues) == list(range(1, 206))
    assert [r.query.get("page") for r in fake_github.requests] == [None, ["2"], ["3"]]


@pytest.mark.parametrize(
    ("per_page", "expected"),
    [
        pytest.param(None, 30, id="GitHub's default page is 30"),
        pytest.param(100, 100, id="100 is the largest page"),
        pytest.param(250, 100, id="larger pages are cut to 100"),
    ],
)
def test_page_size(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client, per_page: int | None, expected: int
) -> None:
    for n in range(120):
        fake_github.add_issue("acme", "api", title=f"issue {n}", author="alice")

    page = http.get("/repos/acme/api/issues", params={} if per_page is None else {"per_page": per_page})

    assert len(page.json()) == expected


def test_pull_requests_are_listed_as_issues_with_a_pull_request_object(
    http: httpx.Client, fake_github: ContractCheckedFakeGitHub, push_branch: PushBranch
) -> None:
    fake_github.add_issue("acme", "api", title="bug", author="alice", labels=["ready"])
    push_branch(fake_github.remote_path("acme", "api"), "issue-1")
    fake_github.add_pull("acme", "api", head="issue-1", title="Fix #1", author="k3sc", labels=["ready"])
    fake_github.add_issue("acme", "api", title="another bug", author="alice", labels=["ready"])

    issues = http.get("/repos/acme/api/issues", params={"labels": "ready"}).json()
    pulls = http.get("/repos/acme/api/pulls").json()

    assert [(i["number"], "pull_request" in i) for i in issues] == [(3, False), (2, True), (1, False)]
    assert issues[1]["pull_request"]["url"] == f"{fake_github.url}/repos/acme/api/pulls/2"
    assert [(p["number"], p["head"]["ref"], p["base"]["ref"]) for p in pulls] == [(2, "issue-1", "main")]


OLD = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def mixed(fake_github: ContractCheckedFakeGitHub, http: httpx.Client) -> ContractCheckedFakeGitHub:
    """#1 ready+bug (old), #2 ready (newer, 2 comments), #3 claude-a, #4 closed ready."""
    add = fake_github.add_issue
    add("acme", "api", title="old", author="alice", labels=["ready", "bug"], created_at=OLD)
    add("acme", "api", title="newer", author="bob", labels=["ready"], created_at=OLD + timedelta(days=1))
    add(
        "acme",
        "api",
        title="claimed",
        author="alice",
        labels=["claude-a"],
        created_at=OLD + timedelta(days=2),
    )
    add("acme", "api", title="done", author="alice", labels=["ready"], created_at=OLD + timedelta(days=3))
    fake_github.add_comment("acme", "api", 2, author="alice", body="one")
    fake_github.add_comment("acme", "api", 2, author="bob", body="two")
    assert http.patch("/repos/acme/api/issues/4", json={"state": "closed"}).status_code == 200
    return fake_github


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, [3, 2, 1], id="default is open issues, newest first"),
        pytest.param({"state": "all"}, [4, 3, 2, 1], id="state=all includes closed"),
        pytest.param({"state": "closed"}, [4], id="state=closed"),
        pytest.param({"labels": "ready"}, [2, 1], id="one label"),
        pytest.param({"labels": "ready,bug"}, [1], id="labels are AND-ed"),
        pytest.param({"labels": "READY"}, [2, 1], id="label names match in any case"),
        pytest.param({"direction": "asc"}, [1, 2, 3], id="direction=asc"),
        pytest.param({"sort": "comments"}, [2, 3, 1], id="sort=comments, most first"),
        pytest.param({"creator": "bob"}, [2], id="creator"),
        pytest.param({"assignee": "*"}, [], id="nothing is assigned in the fake"),
        pytest.param({"since": "2026-01-02T00:00:00Z"}, [3, 2], id="since compares updated_at"),
    ],
)
def test_issue_list_filters(
    mixed: ContractCheckedFakeGitHub, http: httpx.Client, params: dict[str, Any], expected: list[int]
) -> None:
    issues = http.get("/repos/acme/api/issues", params=params).json()

    assert [issue["number"] for issue in issues] == expected


def test_an_invalid_filter_value_is_422(fake_github: ContractCheckedFakeGitHub, http: httpx.Client) -> None:
    fake_github.expect_invalid(
        method="GET", path_contains="/issues", reason="state=opened is not an allowed value"
    )

    response = http.get("/repos/acme/api/issues", params={"state": "opened"})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"resource": "Issue", "field": "state", "code": "invalid", "value": "opened"}
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"head": "acme:issue-1"}, [2], id="head as owner:branch"),
        pytest.param({"head": "issue-1"}, [3, 2], id="head without owner is ignored, as GitHub does"),
        pytest.param({"head": "someone:issue-1"}, [], id="head in another account"),
        pytest.param({"base": "main"}, [3, 2], id="base"),
        pytest.param({"base": "develop"}, [], id="base nobody targets"),
    ],
)
def test_pull_list_filters(
    fake_github: ContractCheckedFakeGitHub,
    http: httpx.Client,
    push_branch: PushBranch,
    params: dict[str, str],
    expected: list[int],
) -> None:
    remote = fake_github.remote_path("acme", "api")
    fake_github.add_issue("acme", "api", title="bug", author="alice")
    for branch in ("issue-1", "issue-2"):
        push_branch(remote, branch)
        fake_github.add_pull("acme", "api", head=branch, title=branch, author="k3sc")

    pulls = http.get("/repos/acme/api/pulls", params=params).json()

    assert [pull["number"] for pull in pulls] == expected


def test_unknown_repo_and_issue_are_404_with_githubs_body(http: httpx.Client) -> None:
    missing = [
        http.get("/repos/acme/nope/issues"),
        http.get("/repos/acme/api/issues/99"),
        http.get("/repos/acme/api/pulls/99"),
    ]

    assert [r.status_code for r in missing] == [404, 404, 404]
    assert missing[0].json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    }
