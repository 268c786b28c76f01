"""Synthetic sessions data for the Textual tests: a fixed `Snapshot`, no processes, no clock.

Built from the same dataclasses the collector returns, with numbers chosen to exercise every
part of the view: a waiting session, a Codex session, a session without metadata, a limit in
warning.
"""

from __future__ import annotations

from datetime import UTC, datetime

from k3sc.sessions import blocks
from k3sc.sessions.snapshot import SessionView, Snapshot, Timings
from k3sc.sessions.usage import Totals

NOW = datetime(2026, 11, 27, 13, 40, tzinfo=UTC)


def ms(hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 11, 27, hour, minute, tzinfo=UTC).timestamp() * 1000)


def block_report() -> blocks.BlockReport:
    totals = Totals(
        input=12_400, output=310_250, cache_create=1_904_112, cache_read=18_220_400, cost=31.27, count=412
    )
    burn = blocks.burn_rate(ms(10, 2), ms(13, 38), totals)
    assert burn is not None
    projection = blocks.project(totals, burn, ms(15), ms(13, 40))
    limit = blocks.limit_status(totals.total, projection.tokens, 25_000_000)
    return blocks.BlockReport(
        ms(10),
        ms(15),
        ms(10, 2),
        ms(13, 38),
        totals,
        ("claude-opus-4-6", "claude-sonnet-4-5"),
        burn,
        projection,
        limit,
    )


def sessions() -> tuple[SessionView, ...]:
    return (
        SessionView(
            agent="claude",
            pid=48213,
            session_id="3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70",
            active_session_id="3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70",
            session_ids=("3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70",),
            mapping="registry",
            cwd="/home/dev/src/k3sc",
            started_ms=ms(9, 55),
            name="k3sc",
            status="waiting",
            waiting_for="approve Bash",
            totals=Totals(8_100, 190_400, 1_200_000, 11_800_000, 19.82, 240),
            models=("claude-opus-4-6",),
            last_ms=ms(13, 38),
        ),
        SessionView(
            agent="claude",
            pid=50117,
            session_id="c172c2e6-0d4f-4b8a-8e55-1f2d3c4b5a69",
            active_session_id="9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6",
            session_ids=("9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6", "c172c2e6-0d4f-4b8a-8e55-1f2d3c4b5a69"),
            mapping="registry+detected",
            cwd="/home/dev/src/endless",
            started_ms=ms(11, 10),
            status="busy",
            totals=Totals(4_300, 119_850, 704_112, 6_420_400, 11.45, 172),
            models=("claude-sonnet-4-5",),
            last_ms=ms(13, 31),
        ),
        SessionView(
            agent="codex",
            pid=61002,
            session_id="0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            active_session_id="0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            session_ids=("0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",),
            mapping="cwd-heuristic",
            cwd="/home/dev/src/api",
            started_ms=ms(12, 5),
            totals=Totals(52_000, 8_400, 0, 310_000, 0.34, 31),
            models=("gpt-5.3-codex",),
            last_ms=ms(13, 20),
        ),
        SessionView(
            agent="claude",
            pid=7141,
            session_id=None,
            mapping="none",
            cwd="/home/dev/scratch",
            started_ms=ms(13, 30),
            metadata_error="missing Claude session metadata",
            usage_error="no transcript found for this process",
        ),
    )


def snapshot(*, with_sessions: bool = True) -> Snapshot:
    return Snapshot(
        generated_ms=int(NOW.timestamp() * 1000),
        sessions=sessions() if with_sessions else (),
        block=block_report(),
        block_error=None,
        high_water=25_000_000,
        claude_roots=("/home/dev/.claude",),
        codex_root="/home/dev/.codex/sessions",
        pricing_version="2026-11-27",
        timings=Timings(),
    )
