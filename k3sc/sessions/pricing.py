"""The bundled, date-effective price table and the cost of one request.

Prices ship with k3sc (`prices.json`, USD per million tokens) so costing never needs the network.
A model can have several rows ordered by the date they took effect; a request is priced with the
row in force at its own timestamp, so a price change re-costs history correctly. Names from
transcripts are normalised (provider prefixes, Bedrock/Vertex spellings, dates) before lookup, and
an unknown member of a known family is priced as that family's newest model and flagged estimated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from k3sc.sessions.usage import SYNTHETIC_MODEL, Entry

PER_TOKEN = 1e-6  # the table is per million tokens


class CostMode(StrEnum):
    """ccusage's modes: `auto` uses a line's own `costUSD` when present, `calculate` never, `display` only."""

    AUTO = "auto"
    CALCULATE = "calculate"
    DISPLAY = "display"


@dataclass(frozen=True)
class Rates:
    input: float
    cw5m: float
    cw1h: float
    cr: float
    output: float


@dataclass(frozen=True)
class PriceRow:
    since_ms: int  # when this row took effect; the first row of a model applies since forever
    rates: Rates
    tier_threshold: int | None = None
    tier: Rates | None = None
    fast: float = 1.0


@dataclass(frozen=True)
class Resolution:
    """Which table entry a model name was priced with, and whether that was a family guess."""

    key: str
    estimated: bool


@dataclass
class PriceTable:
    version: str
    rows: dict[str, list[PriceRow]]  # normalised id or alias → rows by `since_ms`
    aliases: dict[str, str] = field(default_factory=dict)
    family_fallback: dict[str, str] = field(default_factory=dict)
    source: str = "bundled"
    _resolved: dict[str, Resolution | None] = field(default_factory=dict, repr=False, compare=False)

    def resolve(self, model: str) -> Resolution | None:
        """The table key for a transcript's model name, or None if it cannot be priced."""
        if model not in self._resolved:
            self._resolved[model] = _resolve(self, model)
        return self._resolved[model]

    def cost(self, entry: Entry, mode: CostMode = CostMode.AUTO) -> float:
        """USD for one request under `mode`; unpriced and synthetic models cost 0."""
        if mode is CostMode.DISPLAY or (mode is CostMode.AUTO and entry.cost_usd is not None):
            return entry.cost_usd or 0.0
        if not entry.model or entry.model == SYNTHETIC_MODEL:
            return 0.0
        resolution = self.resolve(entry.model)
        if resolution is None:
            return 0.0
        return request_cost(self.row_at(resolution.key, entry.ts), entry)

    def row_at(self, key: str, ts_ms: int) -> PriceRow:
        rows = self.rows[key]
        for row in reversed(rows):
            if row.since_ms <= ts_ms:
                return row
        return rows[0]


def request_cost(row: PriceRow, entry: Entry) -> float:
    """Cost of one request: a cliff tier prices *every* token of a request whose prompt exceeds it."""
    rates = row.tier if row.tier is not None and entry.prompt > (row.tier_threshold or 0) else row.rates
    usd = (
        entry.input * rates.input
        + entry.output * rates.output
        + entry.cache_5m * rates.cw5m
        + entry.cache_1h * rates.cw1h
        + entry.cache_read * rates.cr
    ) * PER_TOKEN
    return usd * row.fast if entry.speed == "fast" else usd


# ------------------------------------------------------------------ names

_PREFIXES = ("openrouter/anthropic/", "anthropic/", "bedrock/", "vertex_ai/", "openai/")
_REGIONS = ("us.", "eu.", "apac.", "global.")
_DATE_SUFFIX = re.compile(r"-(\d{8})$")


def normalise(model: str) -> str:
    """Lower-case, strip provider prefixes and suffixes, and write versions with dashes."""
    name = model.strip().lower()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    for region in _REGIONS:
        if name.startswith(region):
            name = name[len(region) :]
    name = name.removeprefix("anthropic.")
    name = re.sub(r"-v\d+:\d+$", "", name)
    name = name.removesuffix("[1m]")
    name = re.sub(r"@(\d{8})$", r"-\1", name)
    return name.replace(".", "-")


def _resolve(table: PriceTable, model: str) -> Resolution | None:
    if model == SYNTHETIC_MODEL:
        return None
    name = normalise(model)
    # Exact, then without a release date, then the longest known id it extends on a `-` boundary
    # (claude-opus-4-6-x → claude-opus-4-6, never claude-opus-4), then the alias table.
    for candidate in (name, _DATE_SUFFIX.sub("", name)):
        if candidate in table.rows:
            return Resolution(candidate, estimated=False)
        if candidate in table.aliases:
            return Resolution(table.aliases[candidate], estimated=False)
    stripped = _DATE_SUFFIX.sub("", name)
    prefixes = [key for key in table.rows if stripped.startswith(key + "-")]
    if prefixes:
        return Resolution(max(prefixes, key=len), estimated=False)
    for family, key in table.family_fallback.items():
        if family in name:
            return Resolution(key, estimated=True)
    return None


# ------------------------------------------------------------------ loading


def _ms(day: str | None) -> int:
    if day is None:
        return -(2**62)
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def _rates(data: dict[str, Any]) -> Rates:
    return Rates(
        float(data["input"]),
        float(data["cw5m"]),
        float(data["cw1h"]),
        float(data["cr"]),
        float(data["output"]),
    )


def parse_table(document: dict[str, Any], source: str = "bundled") -> PriceTable:
    """Build a table from the `prices.json` shape (used for the bundled file and by tests)."""
    rows: dict[str, list[PriceRow]] = {}
    for model in document["models"]:
        built = []
        for row in model["rows"]:
            tier = row.get("tier")
            built.append(
                PriceRow(
                    since_ms=_ms(row.get("from")),
                    rates=_rates(row),
                    tier_threshold=int(tier["threshold"]) if tier else None,
                    tier=_rates(tier) if tier else None,
                    fast=float(row.get("fast", 1.0)),
                )
            )
        built.sort(key=lambda r: r.since_ms)
        for name in (model["id"], *model.get("aliases", ())):
            rows[normalise(name)] = built
    meta = document.get("meta", {})
    aliases = {normalise(k): normalise(v) for k, v in meta.get("aliases", {}).items()}
    fallback = {k: normalise(v) for k, v in meta.get("familyFallback", {}).items()}
    return PriceTable(str(meta.get("version", "unknown")), rows, aliases, fallback, source)


@cache
def bundled() -> PriceTable:
    """The table shipped in the package (read once per process)."""
    text = resources.files("k3sc.sessions").joinpath("prices.json").read_text(encoding="utf-8")
    return parse_table(json.loads(text))
