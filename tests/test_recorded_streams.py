"""Every recorded real agent stream in the shared reference set, read by the real stream reader.

The recordings are third-party data (see their README): they are read where they lie at test
time — `$K3SC_AGENT_STREAMS`, `../shared/reference/agent-streams` beside the checkout, or
`/work/shared/reference/agent-streams` — never copied here, and every case skips when they are
absent. A new file in the set fails `test_every_recording_has_a_row` until it gets a row.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k3sc.agent import limits
from k3sc.agent.streams import StreamReader, Verdict
from k3sc.usage import Usage, Window

REPO_ROOT = Path(__file__).resolve().parent.parent
# 03:00 UTC: "resets 5am" and "try again at 9:01 AM" are later the same day.
NOW = datetime(2025, 11, 20, 3, 0, tzinfo=UTC)


def _streams_dir() -> Path | None:
    candidates = [
        os.environ.get("K3SC_AGENT_STREAMS"),
        str(REPO_ROOT.parent / "shared" / "reference" / "agent-streams"),
        "/work/shared/reference/agent-streams",
    ]
    for candidate in candidates:
        if candidate and Path(candidate, "README.md").is_file():
            return Path(candidate)
    return None


STREAMS = _streams_dir()
needs_streams = pytest.mark.skipif(
    STREAMS is None, reason="the recorded agent streams are not on this machine"
)


@dataclass(frozen=True)
class Case:
    """What the reader must make of one recording, given how the CLI exited."""

    verdict: Verdict
    usage: Usage | None
    exit_code: int | None = 0
    resets_at: datetime | None = None
    window: Window | None = None


def _margin(when: datetime) -> datetime:
    return when + limits.TEXT_RESET_MARGIN


CASES: dict[str, Case] = {
    "claude-stream/success-simple-v2.1.7.gleam.jsonl": Case(
        Verdict.SUCCESS_CLAIMED, Usage(10, 25, 21570, 0, 21605, 0.1354875, ("claude-opus-4-5-20251101",), 1)
    ),
    "claude-stream/success-tooluse-2025-10-13.hive-mind.jsonl": Case(
        Verdict.SUCCESS_CLAIMED,
        # modelUsage covers the small fast model too, so input/output exceed `result.usage`.
        Usage(
            41023,
            17998,
            40920,
            1389148,
            1489089,
            0.8610610000000001,
            ("claude-3-5-haiku-20241022", "claude-sonnet-4-5-20250929"),
            116,
        ),
    ),
    "claude-stream/success-tooluse-v2.0.55.excerpt.hive-mind.jsonl": Case(
        Verdict.SUCCESS_CLAIMED,
        Usage(
            58327,
            10300,
            54641,
            1830420,
            1953688,
            0.9584707500000001,
            ("claude-haiku-4-5-20251001", "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929"),
            54,
        ),
    ),
    # Exit 0, subtype success, is_error true: a limit, resetting at the next 5am local (UTC here).
    "claude-stream/usage-limit-weekly-exit0.hive-mind.jsonl": Case(
        Verdict.USAGE_LIMIT,
        Usage(
            8067,
            4517,
            19624,
            58446,
            90654,
            0.14746179999999998,
            ("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"),
            10,
        ),
        resets_at=_margin(datetime(2025, 11, 20, 5, 0, tzinfo=UTC)),
        window=Window.WEEKLY,
    ),
    # The wrapper saw exit 0 through a pipe; Codex itself exits 1 on a failed turn. Either way.
    "codex-exec/usage-limit-2025-11-13.hive-mind.jsonl": Case(
        Verdict.USAGE_LIMIT,
        None,
        exit_code=1,
        resets_at=_margin(datetime(2025, 11, 20, 9, 1, tzinfo=UTC)),
        window=Window.UNKNOWN,  # Codex does not say which window
    ),
    # Five "Reconnecting..." errors are not the end; the 401 after them is.
    "codex-exec/error-401-retry-exhausted-2025-11-11.hive-mind.jsonl": Case(Verdict.AUTH, None, exit_code=1),
    "codex-exec/success-tooluse-2025-11-01.hive-mind.jsonl": Case(
        Verdict.SUCCESS_CLAIMED, Usage(13296, 2836, 0, 163840, 179972, None, (), 1)
    ),
    # Transcripts and rollouts are files, not stdout; the reader takes their usage all the same.
    "claude-transcript/short-v2.1.38.spotter.jsonl": Case(
        Verdict.UNKNOWN, Usage(3, 13, 13835, 11515, 25366, None, ("claude-opus-4-6",), 1), exit_code=None
    ),
    "claude-transcript/tool_heavy-v2.1.38.spotter.jsonl": Case(
        Verdict.UNKNOWN, Usage(54, 212, 17696, 88231, 106193, None, ("claude-opus-4-6",), 4), exit_code=None
    ),
    "codex-session/ccusage-fixture-codex-rollout.HANDWRITTEN.jsonl": Case(
        Verdict.UNKNOWN,
        Usage(2750, 425, 0, 750, 3925, None, ("gpt-5.2-codex", "gpt-5.3-codex"), None),
        exit_code=None,
    ),
}

# Recordings that are not streams of any kind the reader is fed, and why.
NOT_STREAMS = {
    "claude-transcript/ccusage-fixture-session-alpha.HANDWRITTEN.jsonl": "ccusage's minimal shape: no `type` field",
    "claude-transcript/ccusage-fixture-session-beta.HANDWRITTEN.jsonl": "ccusage's minimal shape: no `type` field",
}

# Single pretty-printed messages, fed in this order as one run.
GLEAM = "claude-stream/gleam-v2.1.3-messages"
GLEAM_RUNS = {
    "result_success": Case(
        Verdict.SUCCESS_CLAIMED,
        Usage(38, 765, 31159, 28775, 60737, 0.24722425, ("claude-opus-4-5-20251101",), 2),
    ),
    # HANDWRITTEN by its authors ("synthetic"): an error_during_execution result.
    "result_error": Case(
        Verdict.AGENT_FAILED, Usage(50, 10, 0, 0, 60, 0.005, ("claude-opus-4-5-20251101",), 1), exit_code=1
    ),
}


def _check(reader: StreamReader, case: Case) -> None:
    summary = reader.summary(exit_code=case.exit_code, now=NOW)
    assert (summary.verdict, summary.resets_at, summary.window) == (
        case.verdict,
        case.resets_at,
        case.window,
    ), summary.reason
    assert summary.usage == case.usage


@needs_streams
@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_stream(name: str) -> None:
    assert STREAMS is not None
    reader = StreamReader()
    with (STREAMS / name).open(encoding="utf-8") as lines:
        for text in lines:
            reader.feed(text.rstrip("\n"))
    _check(reader, CASES[name])


@needs_streams
@pytest.mark.parametrize("final", sorted(GLEAM_RUNS))
def test_recorded_single_messages_as_one_run(final: str) -> None:
    assert STREAMS is not None
    reader = StreamReader()
    for message in ("system_message", "assistant_message", "user_message", final):
        reader.feed(json.dumps(json.loads((STREAMS / GLEAM / f"{message}.json").read_text(encoding="utf-8"))))
    _check(reader, GLEAM_RUNS[final])


@needs_streams
def test_the_weekly_limit_recording_is_a_limit_for_any_exit_code_and_clock() -> None:
    assert STREAMS is not None
    lines = (STREAMS / "claude-stream/usage-limit-weekly-exit0.hive-mind.jsonl").read_text(encoding="utf-8")
    for exit_code in (0, 1, None):
        for now in (NOW, NOW + timedelta(hours=3)):
            reader = StreamReader()
            for text in lines.splitlines():
                reader.feed(text)
            summary = reader.summary(exit_code=exit_code, now=now)
            assert summary.verdict is Verdict.USAGE_LIMIT
            assert summary.resets_at is not None and summary.resets_at > now
            hit = summary.limit_hit("claude")
            assert hit is not None and hit.window is Window.WEEKLY


@needs_streams
def test_every_recording_has_a_row() -> None:
    assert STREAMS is not None
    found = {str(p.relative_to(STREAMS)) for p in STREAMS.rglob("*.jsonl")}
    assert found == set(CASES) | set(NOT_STREAMS)
