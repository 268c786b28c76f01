"""Recorded real api.github.com traffic (@octokit/fixtures) against githubkit's models and paginator.

The fake is built from GitHub's description; these recordings are what GitHub actually sent (in
2017-2022), so they check the other side: that githubkit copes with real bodies and real Link
headers. Where githubkit's 2026-03-10 models demand fields GitHub added after the recording, the
test pins exactly those fields, so drift shows up as a diff rather than a mystery.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from githubkit import GitHub
from githubkit_schemas.latest import models
from pydantic import TypeAdapter, ValidationError

FIXTURES = Path(__file__).parent.parent / "data" / "github" / "fixtures"


@cache
def recorded(scenario: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((FIXTURES / scenario / "normalized-fixture.json").read_text())
    return entries


def _missing_fields(model: Any, body: Any) -> set[str]:
    try:
        TypeAdapter(model).validate_python(body)
    except ValidationError as exc:
        return {f"{err['type']}:{err['loc'][-1]}" for err in exc.errors()}
    return set()


LABEL_DRIFT = {"missing:archived_at", "missing:archived_by"}


@pytest.mark.parametrize(
    ("scenario", "index", "model", "drift"),
    [
        pytest.param("paginate-issues", 0, list[models.Issue], set(), id="a page of issues parses"),
        pytest.param("paginate-issues", 4, list[models.Issue], set(), id="the last page of issues parses"),
        pytest.param("add-labels-to-issue", 0, models.Issue, set(), id="a created issue parses"),
        pytest.param(
            "add-labels-to-issue",
            1,
            list[models.Label],
            LABEL_DRIFT,
            id="added labels lack the archived_at/by githubkit now requires",
        ),
        pytest.param("labels", 0, list[models.Label], LABEL_DRIFT, id="repo labels lack archived_at/by"),
        pytest.param("labels", 1, models.Label, LABEL_DRIFT, id="a created label lacks archived_at/by"),
        pytest.param("errors", 0, models.ValidationError, set(), id="a 422 body parses as ValidationError"),
        pytest.param(
            "get-repository",
            0,
            models.FullRepository,
            {"missing:has_discussions"},
            id="a repository lacks the has_discussions githubkit now requires",
        ),
    ],
)
def test_recorded_body_parses_with_githubkit_except_pinned_drift(
    scenario: str, index: int, model: Any, drift: set[str]
) -> None:
    assert _missing_fields(model, recorded(scenario)[index]["response"]) == drift


def test_recorded_labels_parse_once_the_fields_github_added_later_are_filled() -> None:
    labels = [
        {**label, "archived_at": None, "archived_by": None} for label in recorded("labels")[0]["response"]
    ]

    parsed = TypeAdapter(list[models.Label]).validate_python(labels)

    assert [label.name for label in parsed] == [label["name"] for label in labels]


def _replay(scenario: str) -> respx.MockRouter:
    """Serve a recorded scenario from https://api.github.com, matching method, path and query."""
    router = respx.mock(base_url="https://api.github.com", assert_all_called=True)
    for entry in recorded(scenario):
        path, _, query = entry["path"].partition("?")
        router.request(entry["method"].upper(), path, params=httpx.QueryParams(query)).mock(
            return_value=httpx.Response(
                entry["status"],
                json=entry["response"],
                headers={
                    key: str(value) for key, value in entry["headers"].items() if key != "content-length"
                },
            )
        )
    return router


def test_githubkit_paginates_the_recorded_issues_across_the_real_link_headers() -> None:
    with _replay("paginate-issues") as router, GitHub("token", http_cache=False, auto_retry=False) as gh:
        issues = list(
            gh.rest.paginate(
                gh.rest.issues.list_for_repo, owner="octokit-fixture-org", repo="paginate-issues", per_page=3
            )
        )
        paths = [call.request.url.path for call in router.calls]

    assert [issue.number for issue in issues] == list(range(13, 0, -1))
    # Page 2 onwards came from the Link header's /repositories/1000/... URLs, not rebuilt by githubkit.
    assert paths[1:] == ["/repositories/1000/issues"] * 4


async def test_githubkit_async_paginates_the_recorded_issues() -> None:
    with _replay("paginate-issues"):
        async with GitHub("token", http_cache=False, auto_retry=False) as gh:
            numbers = [
                issue.number
                async for issue in gh.rest.paginate(
                    gh.rest.issues.async_list_for_repo,
                    owner="octokit-fixture-org",
                    repo="paginate-issues",
                    per_page=3,
                )
            ]

    assert numbers == list(range(13, 0, -1))


def test_recorded_pages_carry_the_link_rels_github_sends() -> None:
    rels = [
        sorted(part.split('rel="')[1].rstrip('"') for part in entry["headers"]["link"].split(", "))
        for entry in recorded("paginate-issues")
    ]

    assert rels == [
        ["last", "next"],
        ["first", "last", "next", "prev"],
        ["first", "last", "next", "prev"],
        ["first", "last", "next", "prev"],
        ["first", "prev"],
    ]
