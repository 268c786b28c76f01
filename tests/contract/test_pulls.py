"""Pull requests and branches on the fake need real git: a pushed branch, with commits the base lacks.

Agents push to the bare remotes for real, so the fake reads branches live and refuses a pull
request the way GitHub would (422 Validation Failed) when the head branch is missing, already has
an open pull request, or holds nothing new.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from githubkit import GitHub
from githubkit.exception import RequestFailed

from tests.contract.conftest import PushBranch, add_ready_issue
from tests.fixtures.github import ContractCheckedFakeGitHub


@pytest.fixture
def http(http: httpx.Client, fake_github: ContractCheckedFakeGitHub) -> httpx.Client:
    """The contract client, with acme/api#1 labelled ready."""
    add_ready_issue(fake_github)
    return http


def _open(http: httpx.Client, head: str, base: str = "main") -> httpx.Response:
    return http.post(
        "/repos/acme/api/pulls", json={"title": "Fix #1", "head": head, "base": base, "body": "Closes #1"}
    )


def test_a_pull_request_needs_its_head_branch_pushed_first(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client, push_branch: PushBranch
) -> None:
    before = _open(http, "issue-1")
    sha = push_branch(fake_github.remote_path("acme", "api"), "issue-1", {"fix.py": "print('fixed')\n"})
    after = _open(http, "issue-1")

    assert before.status_code == 422
    assert before.json()["message"] == "Validation Failed"
    assert before.json()["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    assert after.status_code == 201
    pull = after.json()
    assert (pull["number"], pull["head"]["ref"], pull["head"]["sha"], pull["base"]["ref"]) == (
        2,
        "issue-1",
        sha,
        "main",
    )
    assert (pull["commits"], pull["additions"], pull["deletions"], pull["changed_files"]) == (1, 1, 0, 1)
    assert after.headers["location"] == f"{fake_github.url}/repos/acme/api/pulls/2"
    assert fake_github.write_log == ["acme/api pull #2 opened from issue-1"]
    assert fake_github.issue_view("acme", "api", 2)["is_pull"] is True


@pytest.mark.parametrize(
    ("head", "base", "error"),
    [
        pytest.param(
            "issue-1", "main", "A pull request already exists for acme:issue-1.", id="one open PR per head"
        ),
        pytest.param("main", "main", "No commits between main and main", id="a head with nothing new"),
        pytest.param("issue-1", "develop", None, id="a base branch that does not exist"),
        pytest.param("someone:issue-1", "main", None, id="a head in another account's fork"),
    ],
)
def test_pull_request_refusals(
    fake_github: ContractCheckedFakeGitHub,
    http: httpx.Client,
    push_branch: PushBranch,
    head: str,
    base: str,
    error: str | None,
) -> None:
    push_branch(fake_github.remote_path("acme", "api"), "issue-1")
    fake_github.add_pull("acme", "api", head="issue-1", title="first", author="k3sc")

    response = _open(http, head, base)

    assert response.status_code == 422
    errors = response.json()["errors"]
    if error is None:
        assert errors[0]["code"] == "invalid"
    else:
        assert errors == [{"resource": "PullRequest", "code": "custom", "message": error}]
    assert [i["number"] for i in http.get("/repos/acme/api/pulls").json()] == [2]


def test_seeding_a_pull_request_follows_the_same_rule(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    with pytest.raises(ValueError, match="Validation Failed"):
        fake_github.add_pull("acme", "api", head="never-pushed", title="x", author="k3sc")


def test_branch_endpoint_reads_the_bare_remote_live(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client, push_branch: PushBranch
) -> None:
    missing = http.get("/repos/acme/api/branches/k3sc-issue-1")
    first = push_branch(fake_github.remote_path("acme", "api"), "k3sc-issue-1")
    found = http.get("/repos/acme/api/branches/k3sc-issue-1").json()
    second = push_branch(
        fake_github.remote_path("acme", "api"), "k3sc-issue-1", {"b.txt": "b\n"}, base="k3sc-issue-1"
    )
    moved = http.get("/repos/acme/api/branches/k3sc-issue-1").json()

    assert (missing.status_code, missing.json()["message"]) == (404, "Branch not found")
    assert found["commit"]["sha"] == first
    assert found["commit"]["commit"]["author"]["email"] == "agent@k3sc.invalid"
    assert moved["commit"]["sha"] == second
    assert moved["commit"]["parents"][0]["sha"] == first


def test_a_pull_requests_head_sha_follows_later_pushes(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client, push_branch: PushBranch
) -> None:
    remote = fake_github.remote_path("acme", "api")
    push_branch(remote, "issue-1")
    number = _open(http, "issue-1").json()["number"]
    newer = push_branch(remote, "issue-1", {"more.py": "x = 1\n"}, base="issue-1")

    listed = http.get("/repos/acme/api/pulls").json()
    single = http.get(f"/repos/acme/api/pulls/{number}").json()

    assert listed[0]["head"]["sha"] == single["head"]["sha"] == newer
    assert single["commits"] == 2


def test_githubkit_raises_request_failed_with_githubs_validation_body(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    with (
        GitHub(
            fake_github.token, base_url=fake_github.url, http_cache=False, auto_retry=False, trust_env=False
        ) as gh,
        pytest.raises(RequestFailed) as caught,
    ):
        gh.rest.pulls.create("acme", "api", title="x", head="nope", base="main")
    error: Any = caught.value.response.parsed_data

    assert caught.value.response.status_code == 422
    assert error.message == "Validation Failed"
    assert [e.field for e in error.errors] == ["head"]
