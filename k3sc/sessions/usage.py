"""One priced request as read from a transcript, and token sums over many of them.

`Entry` is what the incremental index stores per deduplicated request, so it is a compact
msgspec struct (array-like on disk); dedup keys are 64-bit hashes of the ids, not the ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

SYNTHETIC_MODEL = "<synthetic>"  # Claude Code's locally generated replies (errors, interruptions)


class Entry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One API request's usage; Codex rows put cached input in `cache_read` and leave writes at 0."""

    ts: int  # epoch milliseconds, UTC
    input: int
    output: int
    cache_5m: int
    cache_1h: int
    cache_read: int
    model: str  # "" when the line named none
    session: str
    key: int = 0  # hash of message.id + requestId; 0 = not deduplicated (no message.id)
    message: int = 0  # hash of message.id alone, for the sidechain replay rule
    sidechain: bool = False
    speed: str = ""  # "", "standard" or "fast"
    cost_usd: float | None = None  # legacy `costUSD` written by old Claude Code versions

    @property
    def cache_create(self) -> int:
        return self.cache_5m + self.cache_1h

    @property
    def total(self) -> int:
        """Every token of the request, cache included (ccusage's `totalTokens`)."""
        return self.input + self.output + self.cache_5m + self.cache_1h + self.cache_read

    @property
    def prompt(self) -> int:
        """Tokens sent to the model: what a long-context tier's threshold is compared with."""
        return self.input + self.cache_5m + self.cache_1h + self.cache_read


def id_hash(*parts: str | None) -> int:
    """A stable signed 64-bit hash of the ids (never 0, which means "no key")."""
    text = "\x00".join("\x01" if part is None else part for part in parts)
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)
    return value or 1


@dataclass(frozen=True)
class Totals:
    """Summed tokens and cost of a set of entries."""

    input: int = 0
    output: int = 0
    cache_create: int = 0
    cache_read: int = 0
    cost: float = 0.0
    count: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_create + self.cache_read

    @property
    def cached(self) -> int:
        return self.cache_create + self.cache_read

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.input + other.input,
            self.output + other.output,
            self.cache_create + other.cache_create,
            self.cache_read + other.cache_read,
            self.cost + other.cost,
            self.count + other.count,
        )


def sum_entries(entries: Iterable[Entry], costs: Iterable[float]) -> Totals:
    """Totals of `entries`, with `costs` the matching per-entry costs in the same order."""
    i = o = cc = cr = n = 0
    cost = 0.0
    for entry, price in zip(entries, costs, strict=True):
        i += entry.input
        o += entry.output
        cc += entry.cache_5m + entry.cache_1h
        cr += entry.cache_read
        cost += price
        n += 1
    return Totals(i, o, cc, cr, cost, n)


def models_of(entries: Iterable[Entry]) -> list[str]:
    """Distinct display models in first-seen order; fast requests get a `-fast` suffix, synthetic none."""
    seen: dict[str, None] = {}
    for entry in entries:
        if entry.model and entry.model != SYNTHETIC_MODEL:
            seen.setdefault(entry.model + ("-fast" if entry.speed == "fast" else ""), None)
    return list(seen)
