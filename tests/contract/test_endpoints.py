"""Every endpoint of the fake answers bodies GitHub's description accepts and githubkit parses.

The `fake_github` fixture validates all traffic against the spec at teardown; these tests also
assert it inline, so a failure names the endpoint, and they add what the spec cannot say:
githubkit's models (which are stricter than the spec in places) parse every body, and no URL in
any body leads to the real github.com.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit import AppAuthStrategy, GitHub, Response

from k3sc.sandbox import github_api
from tests import github_contract
from tests.contract.conftest import PushBranch
from tests.fixtures.github import ContractCheckedFakeGitHub


@dataclass
class World:
    """acme/api with issue #1 (labelled, commented), pull request #2 from a pushed branch, and a
    second pushed branch ready for a new pull request; plus a user client and an App client."""

    fake: ContractCheckedFakeGitHub
    gh: GitHub[Any]
    app: GitHub[Any]


@pytest.fixture(scope="module")
def app_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def world(
    fake_github: ContractCheckedFakeGitHub, gh: GitHub[Any], push_branch: PushBranch, app_private_key: str
) -> Iterator[World]:
    remote = fake_github.remote_path("acme", "api")
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])
    fake_github.add_comment("acme", "api", 1, author="alice", body="please fix")
    push_branch(remote, "issue-1")
    fake_github.add_pull("acme", "api", head="issue-1", title="Fix #1", author="k3sc")
    push_branch(remote, "issue-3")
    app = GitHub(
        AppAuthStrategy(app_id=1, private_key=app_private_key),
        base_url=fake_github.url,
        http_cache=False,
        auto_retry=False,
        trust_env=False,
    )
    with app:
        yield World(fake_github, gh, app)


def _installation_token(w: World) -> Response[Any]:
    installation = w.app.rest.apps.get_repo_installation("acme", "api").parsed_data
    return w.app.rest.apps.create_installation_access_token(installation.id)


# (method, OpenAPI path, call) - one row per operation the fake serves.
ENDPOINTS: list[Any] = [
    pytest.param("get", "/rate_limit", lambda w: w.gh.rest.rate_limit.get(), id="rate limit"),
    pytest.param("get", "/user", lambda w: w.gh.rest.users.get_authenticated(), id="authenticated user"),
    pytest.param(
        "get", "/repos/{owner}/{repo}", lambda w: w.gh.rest.repos.get("acme", "api"), id="repository"
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/installation",
        lambda w: w.app.rest.apps.get_repo_installation("acme", "api"),
        id="the App's installation on a repo",
    ),
    pytest.param(
        "post",
        "/app/installations/{installation_id}/access_tokens",
        _installation_token,
        id="an installation access token",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/issues",
        lambda w: w.gh.rest.issues.list_for_repo("acme", "api", state="all", labels="ready"),
        id="list issues",
    ),
    pytest.param(
        "post",
        "/repos/{owner}/{repo}/issues",
        lambda w: w.gh.rest.issues.create("acme", "api", title="new", body="text", labels=["ready"]),
        id="create an issue",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}",
        lambda w: w.gh.rest.issues.get("acme", "api", 1),
        id="get an issue",
    ),
    pytest.param(
        "patch",
        "/repos/{owner}/{repo}/issues/{issue_number}",
        lambda w: w.gh.rest.issues.update("acme", "api", 1, state="closed", state_reason="completed"),
        id="close an issue",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        lambda w: w.gh.rest.issues.list_labels_on_issue("acme", "api", 1),
        id="list an issue's labels",
    ),
    pytest.param(
        "put",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        lambda w: w.gh.rest.issues.set_labels("acme", "api", 1, labels=["ready", "claude-a"]),
        id="replace an issue's labels",
    ),
    pytest.param(
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels",
        lambda w: w.gh.rest.issues.add_labels("acme", "api", 1, labels=["bug"]),
        id="add labels to an issue",
    ),
    pytest.param(
        "delete",
        "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}",
        lambda w: w.gh.rest.issues.remove_label("acme", "api", 1, "ready"),
        id="remove a label from an issue",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        lambda w: w.gh.rest.issues.list_comments("acme", "api", 1),
        id="list comments",
    ),
    pytest.param(
        "post",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        lambda w: w.gh.rest.issues.create_comment("acme", "api", 1, body="on it"),
        id="comment on an issue",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/pulls",
        lambda w: w.gh.rest.pulls.list("acme", "api", state="open", head="acme:issue-1"),
        id="list pull requests",
    ),
    pytest.param(
        "post",
        "/repos/{owner}/{repo}/pulls",
        lambda w: w.gh.rest.pulls.create("acme", "api", title="Fix #3", head="issue-3", base="main"),
        id="open a pull request",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        lambda w: w.gh.rest.pulls.get("acme", "api", 2),
        id="get a pull request",
    ),
    pytest.param(
        "get",
        "/repos/{owner}/{repo}/branches/{branch}",
        lambda w: w.gh.rest.repos.get_branch("acme", "api", "issue-1"),
        id="get a branch",
    ),
]


def test_the_fake_serves_exactly_the_vendored_operations() -> None:
    assert set(github_api.route_table()) == github_contract.operations()


def test_every_served_operation_has_a_row_in_the_endpoint_table() -> None:
    rows = {(p.values[0], p.values[1]) for p in ENDPOINTS}
    assert rows == github_contract.operations()


@pytest.mark.parametrize(("method", "path", "call"), ENDPOINTS)
def test_endpoint_answers_a_spec_valid_body_githubkit_parses(
    world: World, method: str, path: str, call: Callable[[World], Response[Any]]
) -> None:
    world.fake.clear_requests()
    response = call(world)

    assert 200 <= response.status_code < 300
    assert response.parsed_data is not None  # raises if githubkit's models reject the body
    served = world.fake.requests[-1]
    assert (served.method.lower(), served.status) == (method, response.status_code)
    assert github_contract.violations(world.fake.requests) == []


def test_no_body_points_at_the_real_github(world: World) -> None:
    for param in ENDPOINTS:
        param.values[2](world)
    bodies = [r.json() for r in world.fake.requests if r.response_body]

    stray = [text for text in _strings(bodies) if "github.com" in text and not _is_docs_url(text)]
    urls = [text for text in _strings(bodies) if "://" in text and not _is_docs_url(text)]

    assert stray == []
    assert urls, "the bodies carry URLs at all"
    assert all(url.startswith((world.fake.url, "file://")) for url in urls), urls


def test_app_installation_token_acts_as_the_app_bot(world: World) -> None:
    installation = world.app.rest.apps.get_repo_installation("acme", "api").parsed_data
    as_installation = world.app.with_auth(world.app.auth.as_installation(installation.id))

    comment = as_installation.rest.issues.create_comment("acme", "api", 1, body="claimed").parsed_data

    assert comment.user is not None and comment.user.login == "k3sc[bot]"
    assert world.fake.write_log[-1] == "acme/api#1 comment by k3sc[bot]"


def test_repository_names_its_bare_remote_as_clone_url(world: World) -> None:
    repo = world.gh.rest.repos.get("acme", "api").parsed_data

    assert repo.clone_url == world.fake.remote_path("acme", "api").as_uri()
    assert repo.default_branch == "main"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_docs_url(text: str) -> bool:
    return text.startswith("https://docs.github.com/")


def test_examples_file_records_where_it_was_cut_from() -> None:
    from k3sc.sandbox import github_bodies

    source = github_bodies.examples()["source"]
    subset = github_contract.spec_version()

    assert source["sha256"] == subset["sha256"]
    assert source["package"] == subset["package"]
    assert json.loads(json.dumps(source))["info.version"] == subset["info.version"]
