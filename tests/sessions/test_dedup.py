"""ccusage's dedup rules, one table, each row named for the quirk it proves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from k3sc.sessions import transcripts
from k3sc.sessions.dedup import dedupe
from k3sc.sessions.usage import Entry
from tests.sessions.builders import T0, entry, hours

LATER = T0 + hours(0.01)


def kept(rows: list[Entry]) -> list[tuple[int, int, bool, str]]:
    return [(row.output, row.total, row.sidechain, row.speed) for row in dedupe(rows)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [entry(output=13, cache_read=500)] * 5,
            [(13, 513, False, "")],
            id="one reply written as five content-block lines counts once",
        ),
        pytest.param(
            [entry(output=1), entry(LATER, output=384)],
            [(384, 384, False, "")],
            id="a streamed partial is replaced by the final line with the larger total",
        ),
        pytest.param(
            [entry(output=384), entry(LATER, output=1)],
            [(384, 384, False, "")],
            id="a smaller total arriving later never replaces a larger one",
        ),
        pytest.param(
            [entry(output=10), entry(LATER, output=10, speed="fast")],
            [(10, 10, False, "fast")],
            id="on equal totals the line that carries speed wins",
        ),
        pytest.param(
            [entry(output=10, speed="standard"), entry(LATER, output=10)],
            [(10, 10, False, "standard")],
            id="on equal totals without a speed difference the first line stays",
        ),
        pytest.param(
            [entry(output=50), entry(LATER, request="req_btw", output=50, cache_read=9000, sidechain=True)],
            [(50, 50, False, "")],
            id="a sidechain replay of a parent message under a new request id counts once as the parent",
        ),
        pytest.param(
            [entry(request="req_btw", output=50, cache_read=9000, sidechain=True), entry(LATER, output=50)],
            [(50, 50, False, "")],
            id="the main-chain copy replaces a sidechain row seen first even with a smaller total",
        ),
        pytest.param(
            [
                entry(request="r1", output=5, sidechain=True),
                entry(LATER, request="r2", output=7, sidechain=True),
            ],
            [(7, 7, True, "")],
            id="two sidechain lines of one message dedupe across request ids and keep the larger",
        ),
        pytest.param(
            [entry(request=None, output=5), entry(LATER, request=None, output=9)],
            [(9, 9, False, "")],
            id="without a requestId the message id alone is the key",
        ),
        pytest.param(
            [entry(request=None, output=5), entry(LATER, request="req_01", output=9)],
            [(5, 5, False, ""), (9, 9, False, "")],
            id="a line without requestId and one with it are different requests",
        ),
        pytest.param(
            [entry(message=None, output=5), entry(LATER, message=None, output=5)],
            [(5, 5, False, ""), (5, 5, False, "")],
            id="without a message id nothing is deduplicated",
        ),
        pytest.param(
            [entry(message="a", output=1), entry(message="b", output=2), entry(LATER, message="a", output=3)],
            [(3, 3, False, ""), (2, 2, False, "")],
            id="a replacement keeps the row's first-seen position",
        ),
    ],
)
def test_dedup(rows: list[Entry], expected: list[tuple[int, int, bool, str]]) -> None:
    assert kept(rows) == expected


def _streams() -> Path | None:
    for candidate in (
        os.environ.get("K3SC_AGENT_STREAMS"),
        str(Path(__file__).resolve().parents[3] / "shared" / "reference" / "agent-streams"),
        "/work/shared/reference/agent-streams",
    ):
        if candidate and Path(candidate, "claude-transcript").is_dir():
            return Path(candidate)
    return None


STREAMS = _streams()
real = pytest.mark.skipif(STREAMS is None, reason="third-party agent-streams samples are not beside the repo")


@real
def test_a_real_reply_split_over_five_lines_counts_once() -> None:
    assert STREAMS is not None
    raw = (STREAMS / "claude-transcript" / "short-v2.1.38.spotter.jsonl").read_bytes()
    rows = transcripts.claude_entries(raw, "s", at_file_start=True)
    assert len(rows) == 5
    assert [(r.input, r.output, r.cache_1h, r.cache_5m, r.cache_read) for r in dedupe(rows)] == [
        (3, 13, 13835, 0, 11515)
    ]


@real
def test_a_real_streamed_reply_keeps_its_final_output_count() -> None:
    assert STREAMS is not None
    raw = (STREAMS / "claude-transcript" / "tool_heavy-v2.1.38.spotter.jsonl").read_bytes()
    rows = dedupe(transcripts.claude_entries(raw, "s", at_file_start=True))
    # msg_019BN3FR… is written with output 25 and later 173: the final count must survive.
    outputs = [r.output for r in rows]
    assert 173 in outputs and 25 not in outputs
    assert len(rows) == 4
