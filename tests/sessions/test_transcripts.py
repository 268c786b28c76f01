"""Parsing transcript bytes: the quirks a line can have, Claude and Codex."""

from __future__ import annotations

import json
from typing import Any

import pytest

from k3sc.sessions import transcripts
from tests.sessions.builders import T0, assistant, codex_rollout, jsonl, user
from tests.sessions.test_dedup import STREAMS, real


def parse(raw: bytes, session: str = "s", start: bool = True) -> list[tuple[Any, ...]]:
    rows = transcripts.claude_entries(raw, session, at_file_start=start)
    return [
        (r.input, r.output, r.cache_5m, r.cache_1h, r.cache_read, r.model, r.session, r.sidechain)
        for r in rows
    ]


def mutate(**changes: Any) -> bytes:
    line = assistant()
    for path, value in changes.items():
        target = line
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[leaf]
        else:
            target[leaf] = value
    return jsonl(line)


ONE = [(3, 100, 0, 0, 0, "claude-opus-4-6", "s", False)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(jsonl(assistant()), ONE, id="an assistant line with usage is one row"),
        pytest.param(jsonl(user(), assistant(), user()), ONE, id="lines without usage are skipped"),
        pytest.param(jsonl(assistant()).replace(b"\n", b"\r\n"), ONE, id="CRLF line ends"),
        pytest.param(b"\xef\xbb\xbf" + jsonl(assistant()), ONE, id="a byte-order mark at the file start"),
        pytest.param(
            jsonl(assistant())[:-40] + b"\n" + jsonl(assistant()), ONE, id="a truncated line is skipped"
        ),
        pytest.param(
            b'{"message":{"usage":{ nonsense\n' + jsonl(assistant()), ONE, id="a malformed line is skipped"
        ),
        pytest.param(mutate(message__usage__cache_read_input_tokens=None), ONE, id="null counts as absent"),
        pytest.param(mutate(requestId=None), ONE, id="a null requestId is absent, not a rejection"),
        pytest.param(mutate(message__usage__output_tokens=...), [], id="output_tokens is required"),
        pytest.param(mutate(version="main"), [], id="a version that is not semver is rejected"),
        pytest.param(mutate(requestId=""), [], id="an empty request id is rejected"),
        pytest.param(mutate(timestamp="yesterday"), [], id="an unreadable timestamp is rejected"),
        pytest.param(
            mutate(message__model="<synthetic>", message__usage__output_tokens=0),
            [(3, 0, 0, 0, 0, "<synthetic>", "s", False)],
            id="a synthetic reply keeps its tokens",
        ),
        pytest.param(
            jsonl(assistant(sidechain=True, session="parent")),
            [(3, 100, 0, 0, 0, "claude-opus-4-6", "s", True)],
            id="a sidechain line is flagged and belongs to the file's session",
        ),
    ],
)
def test_claude_lines(raw: bytes, expected: list[tuple[Any, ...]]) -> None:
    assert parse(raw) == expected


def test_flat_subagent_files_take_each_line_session() -> None:
    rows = transcripts.claude_entries(jsonl(assistant(session="parent-1")), "")
    assert [r.session for r in rows] == ["parent-1"]


def test_legacy_cost_and_fast_speed_are_kept() -> None:
    (row,) = transcripts.claude_entries(jsonl(assistant(cost=0.12, speed="fast")), "s")
    assert (row.cost_usd, row.speed) == (0.12, "fast")


def test_timestamps_are_utc_milliseconds() -> None:
    (row,) = transcripts.claude_entries(jsonl(assistant()), "s")
    assert row.ts == int(T0.timestamp() * 1000)


def test_codex_rollout_reads_last_usage_then_growth_of_totals() -> None:
    state = transcripts.CodexState()
    rows = transcripts.codex_entries(jsonl(*codex_rollout("sess-9", "/w")), "file-id", state)
    assert [(r.input, r.cache_read, r.output, r.model, r.session) for r in rows] == [
        (400, 600, 50, "gpt-5.3-codex", "sess-9"),
        (600, 1400, 100, "gpt-5.3-codex", "sess-9"),
    ]
    assert (state.cwd, state.totals) == ("/w", (3000, 2000, 150, 60))


def test_codex_state_carries_across_passes() -> None:
    lines = codex_rollout("sess-9", "/w")
    state = transcripts.CodexState()
    first = transcripts.codex_entries(jsonl(*lines[:4]), "f", state)
    second = transcripts.codex_entries(jsonl(*lines[4:]), "f", state)
    whole = transcripts.codex_entries(jsonl(*lines), "f", transcripts.CodexState())
    assert first + second == whole


@real
def test_real_codex_rollout() -> None:
    assert STREAMS is not None
    raw = (STREAMS / "codex-session" / "ccusage-fixture-codex-rollout.HANDWRITTEN.jsonl").read_bytes()
    rows = transcripts.codex_entries(raw, "f", transcripts.CodexState())
    assert [(r.input + r.cache_read, r.cache_read, r.output, r.model) for r in rows] == [
        (1000, 250, 125, "gpt-5.2-codex"),
        (2500, 500, 300, "gpt-5.3-codex"),
    ]


@real
def test_real_ccusage_fixture_keeps_cost_usd_and_fast() -> None:
    assert STREAMS is not None
    raw = (STREAMS / "claude-transcript" / "ccusage-fixture-session-alpha.HANDWRITTEN.jsonl").read_bytes()
    rows = transcripts.claude_entries(raw, "", at_file_start=True)
    assert [(r.cost_usd, r.speed, r.session) for r in rows] == [
        (0.12, "", "session-alpha"),
        (0.34, "fast", "session-alpha"),
        (0.56, "", "session-alpha"),
    ]
    assert json.loads(raw.splitlines()[0])["requestId"] == "req-alpha-1"
