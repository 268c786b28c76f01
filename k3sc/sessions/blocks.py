"""ccusage's 5-hour session blocks, burn rate, projection and limit status, as pure functions.

A block starts at its first request's time floored to the UTC hour and lasts five hours; a request
more than five hours after the block's start or after the previous request opens a new block, and
a silence longer than five hours is recorded as a gap block. A block is active while the last
request is less than five hours old and the block has not ended. The token limit is the largest
total of any completed block: a high-water mark, which the caller persists because Claude Code
deletes old transcripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from k3sc.sessions.usage import Entry, Totals, models_of, sum_entries

HOUR_MS = 3_600_000
BLOCK_MS = 5 * HOUR_MS
WARNING_SHARE = 0.8  # ccusage's BLOCKS_WARNING_THRESHOLD
HIGH_BURN, MODERATE_BURN = 1000, 500  # (input + output) tokens per minute for the indicator


@dataclass(frozen=True)
class Block:
    """A 5-hour window; `lo:hi` is its slice of the time-sorted entries (empty for a gap)."""

    start_ms: int
    end_ms: int
    lo: int
    hi: int
    first_ms: int | None = None
    last_ms: int | None = None
    tokens: int = 0
    gap: bool = False
    active: bool = False

    @property
    def id(self) -> str:
        stamp = datetime.fromtimestamp(self.start_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        return f"gap-{stamp}" if self.gap else stamp


def floor_to_hour(ms: int) -> int:
    return ms // HOUR_MS * HOUR_MS


def identify_blocks(entries: Sequence[Entry], now_ms: int, length_ms: int = BLOCK_MS) -> list[Block]:
    """Blocks of `entries`, which must be sorted by timestamp, as ccusage's identifySessionBlocks."""
    return identify([e.ts for e in entries], [e.total for e in entries], now_ms, length_ms)


def identify(
    times: Sequence[int], totals: Sequence[int], now_ms: int, length_ms: int = BLOCK_MS
) -> list[Block]:
    """`identify_blocks` over parallel columns of sorted request times and token totals."""
    blocks: list[Block] = []
    lo = 0
    start = last = tokens = 0
    # A plain loop over two columns: this runs over every request ever seen on each pass.
    for position, (ts, total) in enumerate(zip(times, totals, strict=True)):
        if position == lo:
            start, last, tokens = ts // HOUR_MS * HOUR_MS, ts, total
            continue
        since_gap = ts - last > length_ms
        if since_gap or ts - start > length_ms:
            blocks.append(_close(times, lo, position, start, tokens, now_ms, length_ms))
            if since_gap:
                blocks.append(Block(last + length_ms, ts, position, position, gap=True))
            lo = position
            start, last, tokens = ts // HOUR_MS * HOUR_MS, ts, total
            continue
        last = ts
        tokens += total
    if lo < len(times):
        blocks.append(_close(times, lo, len(times), start, tokens, now_ms, length_ms))
    return blocks


def at_time(found: Sequence[Block], now_ms: int, length_ms: int = BLOCK_MS) -> list[Block]:
    """The same blocks judged at `now_ms`: only `active` depends on the time, so blocks identified
    earlier over unchanged requests can be reused instead of identified again."""
    return [
        block
        if block.gap
        else replace(block, active=now_ms - (block.last_ms or 0) < length_ms and now_ms < block.end_ms)
        for block in found
    ]


def _close(
    times: Sequence[int], lo: int, hi: int, start: int, tokens: int, now_ms: int, length_ms: int
) -> Block:
    first, last = times[lo], times[hi - 1]
    end = start + length_ms
    active = now_ms - last < length_ms and now_ms < end
    return Block(start, end, lo, hi, first, last, tokens, gap=False, active=active)


def high_water_mark(blocks: Sequence[Block]) -> int:
    """The largest token total of a completed block (neither a gap nor active); 0 if none."""
    return max((b.tokens for b in blocks if not b.gap and not b.active), default=0)


class LimitStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    EXCEEDS = "exceeds"


@dataclass(frozen=True)
class BurnRate:
    tokens_per_minute: float  # every token, cache included
    indicator_per_minute: float  # input + output only: what the HIGH/MODERATE indicator uses
    cost_per_hour: float

    @property
    def indicator(self) -> str:
        if self.indicator_per_minute > HIGH_BURN:
            return "high"
        return "moderate" if self.indicator_per_minute > MODERATE_BURN else "normal"


@dataclass(frozen=True)
class Projection:
    tokens: int
    cost: float
    remaining_minutes: int


@dataclass(frozen=True)
class Limit:
    tokens: int
    status: LimitStatus
    used_percent: float
    projected_percent: float
    left: int
    projected_left: int


@dataclass(frozen=True)
class BlockReport:
    """What the dashboards show about the active block."""

    start_ms: int
    end_ms: int
    first_ms: int
    last_ms: int
    totals: Totals
    models: tuple[str, ...]
    burn: BurnRate | None
    projection: Projection | None
    limit: Limit | None


def burn_rate(first_ms: int, last_ms: int, totals: Totals) -> BurnRate | None:
    """Tokens per minute between the first and last request; None for a single instant."""
    minutes = (last_ms - first_ms) / 60_000
    if minutes <= 0:
        return None
    return BurnRate(
        tokens_per_minute=totals.total / minutes,
        indicator_per_minute=(totals.input + totals.output) / minutes,
        cost_per_hour=totals.cost / minutes * 60,
    )


def project(totals: Totals, burn: BurnRate, end_ms: int, now_ms: int) -> Projection:
    """Extrapolate the burn rate to the block's end."""
    remaining = round(max(0.0, (end_ms - now_ms) / 60_000))
    return Projection(
        tokens=round(totals.total + burn.tokens_per_minute * remaining),
        cost=round(totals.cost + burn.cost_per_hour / 60 * remaining, 2),
        remaining_minutes=remaining,
    )


def limit_status(current: int, projected: int, limit: int) -> Limit:
    """Status against a token limit, judged on the projected total."""
    if projected > limit:
        status = LimitStatus.EXCEEDS
    elif projected > WARNING_SHARE * limit:
        status = LimitStatus.WARNING
    else:
        status = LimitStatus.OK
    return Limit(
        tokens=limit,
        status=status,
        used_percent=current / limit * 100,
        projected_percent=projected / limit * 100,
        left=max(0, limit - current),
        projected_left=max(0, limit - projected),
    )


def report(
    block: Block, entries: Sequence[Entry], costs: Sequence[float], now_ms: int, limit: int | None
) -> BlockReport:
    """The dashboard view of one (normally the active) block; `costs` are its entries' costs."""
    own = entries[block.lo : block.hi]
    totals = sum_entries(own, costs)
    first = block.first_ms if block.first_ms is not None else block.start_ms
    last = block.last_ms if block.last_ms is not None else block.start_ms
    burn = burn_rate(first, last, totals)
    projection = project(totals, burn, block.end_ms, now_ms) if burn and block.active else None
    limit_view = None
    if limit:
        limit_view = limit_status(totals.total, projection.tokens if projection else totals.total, limit)
    return BlockReport(
        block.start_ms, block.end_ms, first, last, totals, tuple(models_of(own)), burn, projection, limit_view
    )
