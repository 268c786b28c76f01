"""The contract check itself can fail: it catches bad requests and bad bodies, and its opt-outs are honest.

Every other test leans on `fake_github`'s teardown check; these make sure that check is not a
rubber stamp (house-style: no tests that cannot fail), and that the vendored data still says
where it came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from k3sc.sandbox.github import RecordedRequest
from tests import github_contract
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub, contract_failures


@pytest.fixture
def unchecked(tmp_path: Path) -> Iterator[ContractCheckedFakeGitHub]:
    """A fake outside the `fake_github` fixture, so a test can look at the failures it would report."""
    fake = ContractCheckedFakeGitHub(tmp_path / "github", token=FAKE_GITHUB_TOKEN, users=["k3sc"])
    fake.start()
    fake.add_repo("acme", "api")
    fake.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])
    try:
        yield fake
    finally:
        fake.stop()


def _get(fake: ContractCheckedFakeGitHub, path: str, **params: str) -> RecordedRequest:
    httpx.get(
        f"{fake.url}{path}", params=params, headers={"Authorization": f"token {fake.token}"}, trust_env=False
    )
    return fake.requests[-1]


def test_a_request_github_would_reject_is_reported(unchecked: ContractCheckedFakeGitHub) -> None:
    recorded = _get(unchecked, "/repos/acme/api/issues", state="opened")

    errors = github_contract.request_errors(recorded)

    assert len(errors) == 1 and "'opened' is not one of ['open', 'closed', 'all']" in errors[0]
    with pytest.raises(github_contract.ContractViolation, match="GET /repos/acme/api/issues\\?state=opened"):
        github_contract.validate_request(recorded)


def test_a_path_github_does_not_serve_is_reported(unchecked: ContractCheckedFakeGitHub) -> None:
    recorded = _get(unchecked, "/repos/acme/api/issue")

    assert any("PathNotFound" in e for e in github_contract.request_errors(recorded))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda issue: issue.pop("number"), "'number' is a required property", id="a missing field"
        ),
        pytest.param(lambda issue: issue.update(state=42), "42 is not of type 'string'", id="a wrong type"),
        pytest.param(lambda issue: issue["labels"][0].update(id="x"), "'x'", id="a bad nested label"),
    ],
)
def test_a_body_github_would_not_send_is_reported(
    unchecked: ContractCheckedFakeGitHub, mutate: object, expected: str
) -> None:
    recorded = _get(unchecked, "/repos/acme/api/issues/1")
    issue = recorded.json()
    mutate(issue)  # type: ignore[operator]
    broken = replace(recorded, response_body=json.dumps(issue).encode())

    assert github_contract.response_errors(recorded) == []
    assert any(expected in e for e in github_contract.response_errors(broken))


def test_undocumented_statuses_are_checked_against_githubs_error_schema(
    unchecked: ContractCheckedFakeGitHub,
) -> None:
    recorded = _get(unchecked, "/repos/acme/api/branches/main")  # documents 200, 301, 404 only
    teapot = replace(recorded, status=418, response_body=b'{"message": "I am a teapot"}')
    server_error = replace(recorded, status=500, response_body=b'{"message": "Server Error"}')
    bad_server_error = replace(recorded, status=500, response_body=b'{"message": 500}')
    not_modified_with_body = replace(recorded, status=304)

    assert github_contract.response_errors(teapot) == ["status 418 is not documented for this operation"]
    assert github_contract.response_errors(server_error) == []
    assert github_contract.response_errors(bad_server_error) == ["basic-error: 500 is not of type 'string'"]
    assert github_contract.response_errors(not_modified_with_body) == ["a 304 must not carry a body"]


def test_the_fixture_check_reports_invalid_traffic_and_unused_opt_outs(
    unchecked: ContractCheckedFakeGitHub,
) -> None:
    _get(unchecked, "/repos/acme/api/issues", state="opened")
    unchecked.expect_invalid(method="GET", path_contains="/pulls", reason="never happens")

    failures = contract_failures(unchecked)

    assert len(failures) == 2
    assert failures[0].startswith("request GET /repos/acme/api/issues?state=opened: InvalidParameter")
    assert failures[1] == "expect_invalid(GET '/pulls': never happens) matched no invalid request"


def test_expect_invalid_excuses_the_request_it_names(unchecked: ContractCheckedFakeGitHub) -> None:
    _get(unchecked, "/repos/acme/api/issues", state="opened")
    unchecked.expect_invalid(method="GET", path_contains="/issues", reason="state=opened on purpose")

    assert contract_failures(unchecked) == []


def test_the_fixture_check_reports_bugs_inside_the_fake(unchecked: ContractCheckedFakeGitHub) -> None:
    unchecked.internal_errors.append("Traceback: boom")

    assert contract_failures(unchecked) == ["fake GitHub internal error:\nTraceback: boom"]


def test_readme_names_the_vendored_versions() -> None:
    readme = (github_contract.SPEC_PATH.parent / "README.md").read_text()
    source = github_contract.spec_version()
    fixtures_version = (github_contract.SPEC_PATH.parent / "fixtures" / "VERSION").read_text().strip()

    assert source["package"] in readme
    assert f"info.version` {source['info.version']}" in readme
    assert source["sha256"] in readme
    assert fixtures_version in readme
    for fix in source["fixes"]:
        assert re.sub(r":.*", "", fix) in readme
