"""Label writes against the fake: one PUT, other labels kept, confirmed by re-read, claims conditional.

Races are staged with the fake's `on_event` hook, which runs inside the request that caused the
event, before its answer is sent: a "human" edit there lands exactly between our write and our
re-read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from k3sc.errors import Conflict
from k3sc.labels import State
from k3sc.models import Repo
from tests.fixtures.github import ContractCheckedFakeGitHub
from tests.test_github_client import connect

ACME = Repo("acme", "api")


def issue(fake: ContractCheckedFakeGitHub, *labels: str) -> int:
    fake.add_repo("acme", "api")
    return fake.add_issue("acme", "api", title="ready-with-bug-and-p1", author="alice", labels=labels)


def labels_of(fake: ContractCheckedFakeGitHub, number: int = 1) -> set[str]:
    return set(fake.issue_view("acme", "api", number)["labels"])


def writes(fake: ContractCheckedFakeGitHub) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests if r.method != "GET"]


def after_our_put(fake: ContractCheckedFakeGitHub, edit: Callable[[], None]) -> None:
    """Run `edit` once, right after the first label write by the API (our PUT)."""
    done: list[bool] = []

    def on_event(name: str, payload: dict[str, Any]) -> None:
        if not done and payload.get("action") in ("labeled", "unlabeled"):
            done.append(True)
            edit()

    fake.on_event = on_event


@pytest.mark.parametrize(
    ("before", "wanted", "after"),
    [
        pytest.param(
            ("ready", "bug", "p1"),
            ["needs-review"],
            {"needs-review", "bug", "p1"},
            id="state moves on and bug, p1 stay",
        ),
        pytest.param(
            ("claude-a", "bug"), ["needs-human"], {"needs-human", "bug"}, id="owner replaced by a state"
        ),
        pytest.param(
            ("ready", "waiting", "docs"), ["ready"], {"ready", "docs"}, id="waiting is a workflow label too"
        ),
        pytest.param(("needs-review", "Bug"), [], {"Bug"}, id="clearing keeps the rest"),
    ],
)
async def test_set_workflow_labels_is_one_put_keeping_other_labels(
    fake_github: ContractCheckedFakeGitHub, before: tuple[str, ...], wanted: list[str], after: set[str]
) -> None:
    number = issue(fake_github, *before)
    async with connect(fake_github) as gh:
        result = await gh.set_workflow_labels(ACME, number, wanted)
    assert labels_of(fake_github) == after == set(result)
    assert writes(fake_github) == [("PUT", "/repos/acme/api/issues/1/labels")]
    assert [r.method for r in fake_github.requests] == ["GET", "PUT", "GET"], "read, write, confirm"


async def test_set_workflow_labels_writes_nothing_when_already_there(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = issue(fake_github, "needs-review", "bug")
    async with connect(fake_github) as gh:
        await gh.set_workflow_labels(ACME, number, ["needs-review"])
    assert writes(fake_github) == []


async def test_set_workflow_labels_refuses_non_workflow_labels(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = issue(fake_github, "ready")
    async with connect(fake_github) as gh:
        with pytest.raises(ValueError, match="bug"):
            await gh.set_workflow_labels(ACME, number, ["needs-review", "bug"])
    assert fake_github.requests == []


async def test_set_workflow_labels_conflicts_when_the_reread_disagrees(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = issue(fake_github, "claude-a", "bug")
    after_our_put(fake_github, lambda: fake_github.set_labels("acme", "api", number, ["needs-human", "bug"]))
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match=r"needs-review.*needs-human"):
            await gh.set_workflow_labels(ACME, number, ["needs-review"])


async def test_claim_replaces_the_state_with_the_owner_and_keeps_the_rest(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = issue(fake_github, "ready", "bug", "p1")
    async with connect(fake_github) as gh:
        result = await gh.claim(ACME, number, "claude-a", State.READY)
    assert labels_of(fake_github) == {"claude-a", "bug", "p1"} == set(result)
    assert fake_github.write_log[-1].startswith("acme/api#1 labels:")


async def test_claiming_what_we_already_hold_writes_nothing(fake_github: ContractCheckedFakeGitHub) -> None:
    number = issue(fake_github, "claude-a", "bug")
    async with connect(fake_github) as gh:
        await gh.claim(ACME, number, "claude-a", State.READY)
    assert writes(fake_github) == []


@pytest.mark.parametrize(
    ("labels", "expected", "why"),
    [
        pytest.param(
            ("needs-review",), State.READY, "state is needs-review, expected ready", id="state moved on"
        ),
        pytest.param(
            ("ready", "claude-1"), State.READY, "already owned by claude-1", id="a human's agent holds it"
        ),
        pytest.param(("codex-b",), State.READY, "already owned by codex-b", id="another slot holds it"),
        pytest.param(("ready", "waiting"), State.READY, "waiting", id="parked since the scan"),
        pytest.param(("ready", "needs-human"), State.READY, "state is inconsistent", id="two state labels"),
    ],
)
async def test_claim_refuses_when_the_issue_changed_since_the_scan(
    fake_github: ContractCheckedFakeGitHub, labels: tuple[str, ...], expected: State, why: str
) -> None:
    number = issue(fake_github, *labels)
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match=why):
            await gh.claim(ACME, number, "claude-a", expected)
    assert writes(fake_github) == []
    assert labels_of(fake_github) == set(labels)


async def test_claim_refuses_a_closed_issue(fake_github: ContractCheckedFakeGitHub) -> None:
    number = issue(fake_github, "ready")
    async with connect(fake_github) as gh:
        await gh.request("PATCH", "repos/acme/api/issues/1", json={"state": "closed"})
        with pytest.raises(Conflict, match="closed"):
            await gh.claim(ACME, number, "claude-a", State.READY)


async def test_an_owner_appearing_between_our_write_and_reread_makes_us_withdraw(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = issue(fake_github, "ready", "bug")
    # A person launches their own agent on it the moment our write lands.
    after_our_put(
        fake_github, lambda: fake_github.set_labels("acme", "api", number, ["claude-a", "bug", "claude-1"])
    )
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match="claude-1 claimed it at the same time as claude-a"):
            await gh.claim(ACME, number, "claude-a", State.READY)
    assert labels_of(fake_github) == {"ready", "bug", "claude-1"}, "ours off, the state we replaced back"
    assert [set(h) for h in fake_github.label_history("acme", "api", number)] == [
        {"ready", "bug"},
        {"claude-a", "bug"},
        {"claude-a", "bug", "claude-1"},
        {"ready", "bug", "claude-1"},
    ]


async def test_a_claim_overwritten_before_the_reread_leaves_theirs_alone(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = issue(fake_github, "ready")
    after_our_put(fake_github, lambda: fake_github.set_labels("acme", "api", number, ["codex-c"]))
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match="overwritten"):
            await gh.claim(ACME, number, "claude-a", State.READY)
    assert labels_of(fake_github) == {"codex-c"}
    assert writes(fake_github) == [("PUT", "/repos/acme/api/issues/1/labels")]


# ------------------------------------------------------------------ PR owner labels (review leases)


def pull(fake: ContractCheckedFakeGitHub, *labels: str) -> int:
    import subprocess

    remote = fake.add_repo("acme", "api")
    head = subprocess.run(
        ["git", "-C", str(remote), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    subprocess.run(["git", "-C", str(remote), "branch", "issue-9", head.stdout.strip()], check=True)
    return fake.add_pull("acme", "api", head="issue-9", title="nine", author="alice", labels=labels)


async def test_claim_and_release_a_pull_keep_its_workflow_labels(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = pull(fake_github, "needs-review", "bug")
    async with connect(fake_github) as gh:
        claimed = await gh.claim_pull(ACME, number, "claude-b")
        again = await gh.claim_pull(ACME, number, "claude-b")
        released = await gh.release_pull(ACME, number, "claude-b")
    assert set(claimed) == set(again) == {"needs-review", "bug", "claude-b"}
    assert set(released) == {"needs-review", "bug"} == labels_of(fake_github, number)
    assert len(writes(fake_github)) == 2, "claiming a lease we hold writes nothing"


async def test_claim_pull_refuses_one_held_by_someone_else(fake_github: ContractCheckedFakeGitHub) -> None:
    number = pull(fake_github, "codex-a")
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match="held by codex-a"):
            await gh.claim_pull(ACME, number, "claude-b")
    assert writes(fake_github) == []


async def test_claim_pull_refuses_an_issue(fake_github: ContractCheckedFakeGitHub) -> None:
    number = issue(fake_github, "needs-review")
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match="not a pull request"):
            await gh.claim_pull(ACME, number, "claude-b")


async def test_claim_pull_withdraws_when_another_owner_lands_meanwhile(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = pull(fake_github, "needs-review")
    after_our_put(
        fake_github,
        lambda: fake_github.set_labels("acme", "api", number, ["needs-review", "claude-b", "codex-a"]),
    )
    async with connect(fake_github) as gh:
        with pytest.raises(Conflict, match="codex-a"):
            await gh.claim_pull(ACME, number, "claude-b")
    assert labels_of(fake_github, number) == {"needs-review", "codex-a"}


async def test_release_pull_without_owner_drops_every_owner_label(
    fake_github: ContractCheckedFakeGitHub,
) -> None:
    number = pull(fake_github, "claude-b", "codex-1", "bug")
    async with connect(fake_github) as gh:
        await gh.release_pull(ACME, number)
        await gh.release_pull(ACME, number)
    assert labels_of(fake_github, number) == {"bug"}
    assert len(writes(fake_github)) == 1
