"""Table tests for slot letters, family rotation, the adaptive interval and derived names."""

from __future__ import annotations

from datetime import timedelta

import pytest

from k3sc import backoff, names, slots
from k3sc.labels import Family, Kind
from k3sc.models import Repo

API = Repo("acme", "api")
WEB = Repo("acme", "web")

# --------------------------------------------------------------------------- slots


@pytest.mark.parametrize(
    ("slot", "expected"),
    [
        pytest.param(1, "a", id="slot 1 is a"),
        pytest.param(26, "z", id="slot 26 is z"),
        pytest.param(0, "?", id="slot 0 is unknown"),
        pytest.param(27, "?", id="slot 27 is unknown"),
    ],
)
def test_letter(slot: int, expected: str) -> None:
    assert slots.letter(slot) == expected


@pytest.mark.parametrize(
    ("used", "max_slots", "expected"),
    [
        pytest.param(set(), 3, ["a", "b", "c"], id="nothing used gives the first letters"),
        pytest.param({"a", "c"}, 3, ["b"], id="the gap is the only free letter"),
        pytest.param({"a", "b"}, 2, [], id="full at max_slots"),
        pytest.param({"z"}, 2, ["a", "b"], id="letters beyond max_slots do not matter"),
        pytest.param(set(), 26, list("abcdefghijklmnopqrstuvwxyz"), id="26 slots are a to z"),
    ],
)
def test_free_letters(used: set[str], max_slots: int, expected: list[str]) -> None:
    assert slots.free_letters(used, max_slots) == expected


@pytest.mark.parametrize(
    ("free", "families", "last", "avoid", "expected"),
    [
        pytest.param(["a"], ["claude", "codex"], None, None, ("claude-a", "claude"), id="first pick is claude"),
        pytest.param(["a"], ["claude", "codex"], "claude", None, ("codex-a", "codex"), id="alternates to codex"),
        pytest.param(["a"], ["claude", "codex"], "codex", None, ("claude-a", "claude"), id="alternates back"),
        pytest.param(["b"], ["codex"], "claude", None, ("codex-b", "codex"), id="only one family configured"),
        pytest.param(["a", "b"], ["claude", "codex"], "codex", "claude-a", ("codex-a", "codex"),
                     id="reviewer prefers the other family at the same letter"),
        pytest.param(["a", "b"], ["claude"], None, "claude-a", ("claude-b", "claude"),
                     id="single family reviewer takes the next letter"),
        pytest.param(["a"], ["claude"], None, "claude-a", None, id="no agent other than the implementer"),
        pytest.param([], ["claude", "codex"], None, None, None, id="no free letter"),
    ],
)  # fmt: skip
def test_choose_agent(
    free: list[str],
    families: list[str],
    last: str | None,
    avoid: str | None,
    expected: tuple[str, str] | None,
) -> None:
    assert slots.choose_agent(free, families, last, avoid=avoid) == expected


@pytest.mark.parametrize(
    ("agent", "letter", "family"),
    [
        pytest.param("claude-a", "a", Family.CLAUDE, id="claude agent"),
        pytest.param("codex-z", "z", Family.CODEX, id="codex agent"),
        pytest.param("weird-q", "q", Family.CLAUDE, id="unknown prefix counts as claude"),
    ],
)
def test_agent_parts(agent: str, letter: str, family: Family) -> None:
    assert (slots.letter_of(agent), slots.family_of(agent)) == (letter, family)


# --------------------------------------------------------------------------- backoff

MIN, MAX = timedelta(minutes=2), timedelta(hours=1)


@pytest.mark.parametrize(
    ("idle", "expected"),
    [
        pytest.param(-1, MIN, id="negative idle counts as busy"),
        pytest.param(0, timedelta(minutes=2), id="busy scans every 2m"),
        pytest.param(1, timedelta(minutes=4), id="one idle scan doubles to 4m"),
        pytest.param(2, timedelta(minutes=8), id="two idle scans give 8m"),
        pytest.param(3, timedelta(minutes=16), id="three give 16m"),
        pytest.param(4, timedelta(minutes=32), id="four give 32m"),
        pytest.param(5, timedelta(hours=1), id="five reach the 1h cap"),
        pytest.param(1000, timedelta(hours=1), id="a long idle stretch stays at the cap"),
    ],
)
def test_interval(idle: int, expected: timedelta) -> None:
    assert backoff.interval(idle, MIN, MAX) == expected


@pytest.mark.parametrize(
    ("idle", "busy", "expected"),
    [
        pytest.param(4, True, 0, id="work resets the backoff"),
        pytest.param(0, False, 1, id="an idle scan adds one"),
        pytest.param(7, False, 8, id="idle scans keep counting past the cap"),
    ],
)
def test_after_scan(idle: int, busy: bool, expected: int) -> None:
    assert backoff.after_scan(idle, busy) == expected


# --------------------------------------------------------------------------- names


def test_names_for_one_attempt() -> None:
    assert names.run_name(API, 7, Kind.IMPLEMENT, "claude-b") == "acme/api#7 implement claude-b"
    assert names.idempotency_key(API, 7, Kind.REVIEW, 2) == "k3sc/acme/api#7/review/2"
    assert names.workspace_name(Repo("Acme", "My.Api"), "codex-c") == "acme-my-api-codex-c"
    assert names.run_tags(API, 7, Kind.IMPLEMENT, "claude-b", 1) == [
        "k3sc",
        "k3sc-agent-run",
        "repo:acme/api",
        "issue:acme/api#7",
        "agent:claude-b",
        "kind:implement",
        "attempt:1",
        "handoff:pending",
    ]


@pytest.mark.parametrize(
    "builder",
    [
        pytest.param(lambda r: names.run_name(r, 7, Kind.IMPLEMENT, "claude-a"), id="run names"),
        pytest.param(lambda r: names.idempotency_key(r, 7, Kind.IMPLEMENT, 1), id="idempotency keys"),
        pytest.param(lambda r: names.workspace_name(r, "claude-a"), id="workspace names"),
        pytest.param(lambda r: tuple(names.run_tags(r, 7, Kind.IMPLEMENT, "claude-a", 1)), id="tags"),
        pytest.param(lambda r: tuple(names.k8s_labels(r, 7, Kind.IMPLEMENT, "claude-a", 1).items()),
                     id="kubernetes labels"),
    ],
)  # fmt: skip
def test_issue_seven_of_two_repos_never_collides(builder: object) -> None:
    assert callable(builder)
    assert builder(API) != builder(WEB)


def test_tags_round_trip_and_hand_off() -> None:
    tags = names.run_tags(API, 7, Kind.REVIEW, "codex-b", 3)
    identity = names.parse_run_tags(tags)
    assert identity == names.RunIdentity(API, 7, Kind.REVIEW, "codex-b", 3, handed_off=False, outcome=None)
    after = names.handed_off_tags(tags, "success")
    assert "handoff:pending" not in after
    assert names.parse_run_tags(after) == names.RunIdentity(
        API, 7, Kind.REVIEW, "codex-b", 3, handed_off=True, outcome="success"
    )


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param(["k3sc"], id="no identity tags"),
        pytest.param(["issue:acme/api#x", "kind:implement", "agent:a", "attempt:1"], id="bad issue number"),
        pytest.param(["issue:acme/api#7", "kind:dance", "agent:a", "attempt:1"], id="unknown kind"),
    ],
)
def test_parse_run_tags_rejects_foreign_tags(tags: list[str]) -> None:
    assert names.parse_run_tags(tags) is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Some_Owner.With.Dots", id="dots and underscores"),
        pytest.param("x" * 200, id="very long"),
        pytest.param("-leading-and-trailing-", id="dashes at the ends"),
    ],
)
def test_k8s_values_are_valid(text: str) -> None:
    import re

    value = names.k8s_value(text)
    assert len(value) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", value)


def test_k8s_values_of_long_texts_do_not_collide() -> None:
    assert names.k8s_value("a" * 100 + "1") != names.k8s_value("a" * 100 + "2")
