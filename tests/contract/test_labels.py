"""Label writes on the fake: GitHub's PUT/POST/DELETE semantics, the label history, the write log, events.

Labels are k3sc's state machine on GitHub, so the fake must apply label writes exactly as GitHub
does (PUT replaces, POST adds, names match in any case, unknown names are created) and keep a
record a test can read as a story: the label history per issue and a human-readable write log.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.github import ContractCheckedFakeGitHub

LABELS = "/repos/acme/api/issues/1/labels"


@pytest.mark.parametrize(
    ("initial", "method", "path", "body", "labels", "history", "log"),
    [
        pytest.param(
            ["ready"], "PUT", LABELS, {"labels": ["claude-a"]},
            ["claude-a"], [("ready",), ("claude-a",)], ["acme/api#1 labels: ready → claude-a"],
            id="PUT replaces the whole set",
        ),
        pytest.param(
            ["ready", "bug"], "PUT", LABELS, {"labels": ["bug", "claude-a"]},
            ["bug", "claude-a"], [("ready", "bug"), ("bug", "claude-a")],
            ["acme/api#1 labels: ready, bug → bug, claude-a"],
            id="PUT keeps the labels it names again",
        ),
        pytest.param(
            ["ready"], "PUT", LABELS, {"labels": ["Ready"]},
            ["ready"], [("ready",)], ["acme/api#1 labels: ready (unchanged)"],
            id="PUT of the same set in another case changes nothing but is logged",
        ),
        pytest.param(
            ["ready"], "PUT", LABELS, {"labels": [{"name": "claude-a"}]},
            ["claude-a"], [("ready",), ("claude-a",)], ["acme/api#1 labels: ready → claude-a"],
            id="PUT accepts label objects",
        ),
        pytest.param(
            ["ready", "bug"], "PUT", LABELS, {"labels": []},
            [], [("ready", "bug"), ()], ["acme/api#1 labels: ready, bug → (none)"],
            id="PUT of an empty list removes every label",
        ),
        pytest.param(
            ["ready"], "POST", LABELS, {"labels": ["claude-a", "READY"]},
            ["ready", "claude-a"], [("ready",), ("ready", "claude-a")], ["acme/api#1 labels: ready → ready, claude-a"],
            id="POST adds and skips names already there in any case",
        ),
        pytest.param(
            ["ready", "bug"], "DELETE", f"{LABELS}/Ready", None,
            ["bug"], [("ready", "bug"), ("bug",)], ["acme/api#1 labels: ready, bug → bug"],
            id="DELETE removes one label, name in any case",
        ),
        pytest.param(
            ["needs human"], "DELETE", f"{LABELS}/needs%20human", None,
            [], [("needs human",), ()], ["acme/api#1 labels: needs human → (none)"],
            id="DELETE takes a percent-encoded name",
        ),
        pytest.param(
            ["ready"], "PATCH", "/repos/acme/api/issues/1", {"labels": ["claude-a"]},
            ["claude-a"], [("ready",), ("claude-a",)], ["acme/api#1 labels: ready → claude-a"],
            id="PATCH of the issue with labels replaces them",
        ),
    ],
)  # fmt: skip
def test_label_write(
    fake_github: ContractCheckedFakeGitHub,
    http: httpx.Client,
    initial: list[str],
    method: str,
    path: str,
    body: Any,
    labels: list[str],
    history: list[tuple[str, ...]],
    log: list[str],
) -> None:
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=initial)

    response = http.request(method, path, json=body)

    assert response.status_code == 200
    answered = response.json()
    if method != "PATCH":
        assert [label["name"] for label in answered] == labels
    assert fake_github.issue_view("acme", "api", 1)["labels"] == labels
    assert fake_github.label_history("acme", "api", 1) == history
    assert fake_github.write_log == log


def test_deleting_a_label_the_issue_lacks_is_404_and_changes_nothing(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])

    response = http.delete(f"{LABELS}/claude-a")

    assert response.status_code == 404
    assert response.json()["message"] == "Label does not exist"
    assert fake_github.label_history("acme", "api", 1) == [("ready",)]
    assert fake_github.write_log == []


def test_unknown_labels_are_created_with_githubs_default_colour(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice")

    added = http.post(LABELS, json={"labels": ["brand-new"]}).json()

    assert [(label["name"], label["color"], label["description"]) for label in added] == [
        ("brand-new", "ededed", None)
    ]
    assert added[0]["url"] == f"{fake_github.url}/repos/acme/api/labels/brand-new"


def test_a_human_edit_between_api_writes_is_in_history_and_log(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])

    http.put(LABELS, json={"labels": ["claude-a"]})
    fake_github.set_labels("acme", "api", 1, ["needs-human"])
    http.put(LABELS, json={"labels": ["ready"]})

    assert fake_github.label_history("acme", "api", 1) == [
        ("ready",),
        ("claude-a",),
        ("needs-human",),
        ("ready",),
    ]
    assert fake_github.write_log == [
        "acme/api#1 labels: ready → claude-a",
        "acme/api#1 labels: claude-a → needs-human (by human)",
        "acme/api#1 labels: needs-human → ready",
    ]


def test_comments_and_issues_written_through_the_api_are_logged_with_their_author(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    http.post("/repos/acme/api/issues", json={"title": "from the api"})
    http.post("/repos/acme/api/issues/1/comments", json={"body": "claimed by claude-a"})
    http.patch("/repos/acme/api/issues/1", json={"state": "closed", "state_reason": "not_planned"})

    view = fake_github.issue_view("acme", "api", 1)
    assert fake_github.write_log == [
        "acme/api#1 opened by k3sc",
        "acme/api#1 comment by k3sc",
        "acme/api#1 closed",
    ]
    assert (view["state"], view["author"]) == ("closed", "k3sc")
    assert [(c["author"], c["body"]) for c in view["comments"]] == [("k3sc", "claimed by claude-a")]


def test_events_follow_label_changes_before_the_response_returns(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    fake_github.on_event = lambda name, payload: events.append((name, payload))
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])

    http.put(LABELS, json={"labels": ["claude-a"]})
    seen_when_answered = len(events)
    http.post("/repos/acme/api/issues/1/comments", json={"body": "claimed"})

    assert seen_when_answered == 3
    assert [(name, payload["action"], payload.get("label")) for name, payload in events] == [
        ("issues", "opened", None),
        ("issues", "unlabeled", {"name": "ready"}),
        ("issues", "labeled", {"name": "claude-a"}),
        ("issue_comment", "created", None),
    ]
    assert events[2][1]["issue"]["labels"] == [{"name": "claude-a"}]
    assert events[2][1]["repository"] == {"full_name": "acme/api"}
    assert events[3][1]["comment"]["body"] == "claimed"


def test_events_for_a_pull_requests_labels_are_pull_request_events(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client, push_branch: Any
) -> None:
    push_branch(fake_github.remote_path("acme", "api"), "issue-7")
    events: list[tuple[str, dict[str, Any]]] = []
    fake_github.on_event = lambda name, payload: events.append((name, payload))
    number = fake_github.add_pull("acme", "api", head="issue-7", title="Fix #7", author="k3sc")

    http.post(f"/repos/acme/api/issues/{number}/labels", json={"labels": ["review"]})

    assert [(name, payload["action"]) for name, payload in events] == [
        ("pull_request", "opened"),
        ("pull_request", "labeled"),
    ]
    assert events[1][1]["pull_request"]["head"] == {"ref": "issue-7"}


def test_an_event_handler_that_raises_is_reported_not_swallowed(
    fake_github: ContractCheckedFakeGitHub, http: httpx.Client
) -> None:
    def broken(name: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    fake_github.on_event = broken
    fake_github.add_issue("acme", "api", title="x", author="alice")

    assert len(fake_github.internal_errors) == 1
    assert "handler bug" in fake_github.internal_errors[0]
    fake_github.internal_errors.clear()  # reported; do not fail this test's teardown for it


def test_seeding_an_unknown_repo_or_issue_says_which(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")

    with pytest.raises(LookupError, match="no repo acme/nope"):
        fake_github.add_issue("acme", "nope", title="x", author="alice")
    with pytest.raises(LookupError, match="no issue or pull request acme/api#9"):
        fake_github.set_labels("acme", "api", 9, ["ready"])
