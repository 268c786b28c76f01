"""5-hour blocks exactly as ccusage draws them, with `now` injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from k3sc.sessions import blocks
from k3sc.sessions.usage import Entry, Totals
from tests.sessions.builders import entry

H = timedelta(hours=1)
MS = timedelta(milliseconds=1)
BASE = datetime(2026, 11, 27, 8, 23, 10, tzinfo=UTC)  # block starts at 08:00 UTC


def at(*offsets: timedelta) -> list[Entry]:
    return [entry(BASE + offset, message=f"m{i}", output=10) for i, offset in enumerate(offsets)]


def shape(found: list[blocks.Block]) -> list[tuple[str, int, bool, bool]]:
    return [
        (
            datetime.fromtimestamp(b.start_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3],
            b.hi - b.lo,
            b.gap,
            b.active,
        )
        for b in found
    ]


FAR = BASE + 48 * H


@pytest.mark.parametrize(
    ("offsets", "now", "expected"),
    [
        pytest.param(
            [timedelta(0)],
            FAR,
            [("08:00:00.000", 1, False, False)],
            id="a block starts at its first request floored to the UTC hour",
        ),
        pytest.param(
            [timedelta(0), 4 * H + 36 * timedelta(minutes=1) + 50 * timedelta(seconds=1)],
            FAR,
            [("08:00:00.000", 2, False, False)],
            id="a request exactly five hours after the block start stays in the block",
        ),
        pytest.param(
            [timedelta(0), 4 * H + 36 * timedelta(minutes=1) + 50 * timedelta(seconds=1) + MS],
            FAR,
            [("08:00:00.000", 1, False, False), ("13:00:00.000", 1, False, False)],
            id="one millisecond past the block's five hours opens a new block at the next floored hour",
        ),
        pytest.param(
            [timedelta(0), H, 2 * H, 3 * H, 4 * H, 5 * H],
            FAR,
            [("08:00:00.000", 5, False, False), ("13:00:00.000", 1, False, False)],
            id="steady work all day splits into consecutive blocks without gaps",
        ),
        pytest.param(
            [timedelta(0), 5 * H],
            FAR,
            [("08:00:00.000", 1, False, False), ("13:00:00.000", 1, False, False)],
            id="a silence of exactly five hours leaves no gap block",
        ),
        pytest.param(
            [timedelta(0), 5 * H + MS],
            FAR,
            [
                ("08:00:00.000", 1, False, False),
                ("13:23:10.000", 0, True, False),
                ("13:00:00.000", 1, False, False),
            ],
            id="a silence of five hours and a millisecond is recorded as a gap block starting five hours after the last request",
        ),
        pytest.param(
            [timedelta(0), H],
            BASE + 2 * H,
            [("08:00:00.000", 2, False, True)],
            id="a block with recent work is active",
        ),
        pytest.param(
            [timedelta(0)],
            BASE + 5 * H,
            [("08:00:00.000", 1, False, False)],
            id="a block is over five hours after its last request",
        ),
        pytest.param(
            [timedelta(0), 4 * H],
            BASE + 4 * H + 40 * timedelta(minutes=1),
            [("08:00:00.000", 2, False, False)],
            id="a block is over at its end even with recent work",
        ),
    ],
)
def test_identify_blocks(
    offsets: list[timedelta], now: datetime, expected: list[tuple[str, int, bool, bool]]
) -> None:
    assert shape(blocks.identify_blocks(at(*offsets), int(now.timestamp() * 1000))) == expected


def test_gap_block_spans_from_five_hours_after_the_last_request_to_the_next_one() -> None:
    found = blocks.identify_blocks(at(timedelta(0), 7 * H), int(FAR.timestamp() * 1000))
    gap = found[1]
    assert gap.gap and gap.id.startswith("gap-2026-11-27T13:23:10")
    assert gap.end_ms - gap.start_ms == 2 * 3_600_000


def test_high_water_mark_ignores_the_active_block_and_gaps() -> None:
    rows = [
        entry(BASE, message="a", output=500),
        entry(BASE + 8 * H, message="b", output=300),
        entry(BASE + 20 * H, message="c", output=9_999),
    ]
    found = blocks.identify_blocks(rows, int((BASE + 21 * H).timestamp() * 1000))
    assert [b.active for b in found if not b.gap] == [False, False, True]
    assert blocks.high_water_mark(found) == 500


def test_a_single_request_has_no_burn_rate() -> None:
    assert blocks.burn_rate(1000, 1000, Totals(output=5)) is None


@pytest.mark.parametrize(
    ("current", "projected", "status"),
    [
        pytest.param(10, 50, blocks.LimitStatus.OK, id="half the limit projected is ok"),
        pytest.param(10, 81, blocks.LimitStatus.WARNING, id="above 80 percent projected is a warning"),
        pytest.param(10, 101, blocks.LimitStatus.EXCEEDS, id="above the limit projected exceeds"),
    ],
)
def test_limit_status_is_judged_on_the_projection(
    current: int, projected: int, status: blocks.LimitStatus
) -> None:
    assert blocks.limit_status(current, projected, 100).status is status


def test_active_block_report_burns_and_projects_to_the_block_end() -> None:
    rows = [
        entry(BASE, message="a", input=100, output=900, cache_read=2000),
        entry(BASE + H, message="b", input=100, output=900, cache_read=2000),
    ]
    now = int((BASE + 2 * H).timestamp() * 1000)
    (block,) = blocks.identify_blocks(rows, now)
    report = blocks.report(block, rows, [1.0, 2.0], now, limit=20_000)
    assert report.totals == Totals(200, 1800, 0, 4000, 3.0, 2)
    assert report.burn == blocks.BurnRate(100.0, 2000 / 60, 3.0)
    # The block ends at 13:00 and now is 10:23:10: 157 minutes remain (rounded).
    assert report.projection == blocks.Projection(6000 + 100 * 157, round(3.0 + 3.0 / 60 * 157, 2), 157)
    assert report.limit is not None and report.limit.status is blocks.LimitStatus.EXCEEDS
    assert report.models == ("claude-opus-4-6",)


@pytest.mark.parametrize("hours_later", [0.5, 3, 4.9, 6, 30])
def test_blocks_identified_earlier_judged_now_equal_blocks_identified_now(hours_later: float) -> None:
    rows = at(timedelta(0), H, 7 * H, 8 * H, 20 * H)
    now = int((BASE + 20 * H + timedelta(hours=hours_later)).timestamp() * 1000)
    earlier = blocks.identify_blocks(rows, int(BASE.timestamp() * 1000))
    assert blocks.at_time(earlier, now) == blocks.identify_blocks(rows, now)
