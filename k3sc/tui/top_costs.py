"""`k3sc top`'s costs: the usage artifacts rolled up into today (from local midnight), this week
(from Sunday), all time, and all time by model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from k3sc import usage
from k3sc.services.top import UsageEntry
from k3sc.tui import top_rows
from k3sc.tui.top_rows import Inputs, Row, Section, money, tokens


@dataclass(frozen=True)
class Bucket:
    jobs: int = 0
    usd: float = 0.0
    tokens: int = 0

    def add(self, record: usage.UsageRecord) -> Bucket:
        spent = record.usage.total_tokens if record.usage else 0
        return Bucket(self.jobs + 1, self.usd + record.spent(usage.Unit.DOLLARS), self.tokens + spent)

    @property
    def average(self) -> float:
        return self.usd / self.jobs if self.jobs else 0.0


def local_midnight(now: datetime, zone: tzinfo | None) -> datetime:
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime, zone: tzinfo | None) -> datetime:
    """Local midnight of the most recent Sunday (today, if today is Sunday)."""
    midnight = local_midnight(now, zone)
    return midnight - timedelta(days=(midnight.weekday() + 1) % 7)


def roll_up(entries: Iterable[UsageEntry], now: datetime, zone: tzinfo | None) -> dict[str, Any]:
    """Today, this week (from Sunday), all time, and all time by model; each jobs, dollars, tokens."""
    today, week = local_midnight(now, zone), week_start(now, zone)
    buckets = {"today": Bucket(), "week": Bucket(), "all": Bucket()}
    models: dict[str, Bucket] = {}
    for entry in entries:
        record = entry.record
        if entry.created >= today:
            buckets["today"] = buckets["today"].add(record)
        if entry.created >= week:
            buckets["week"] = buckets["week"].add(record)
        buckets["all"] = buckets["all"].add(record)
        model = (record.usage.model if record.usage else None) or "unknown"
        models[model] = models.get(model, Bucket()).add(record)
    return {**buckets, "models": dict(sorted(models.items(), key=lambda kv: -kv[1].usd))}


COST_PERIODS = (("today", "Today"), ("week", "This week"), ("all", "All time"))


def costs(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    fed = top_rows.fed_by(inputs, ("usage",), now, zone)
    base = Section(
        "costs", "Costs", ("Period", "Jobs", "Cost", "Tokens", "Avg/job"), empty="(no cost data)", **fed
    )
    if inputs.usage.data is None:
        return top_rows.unread(base)
    if not inputs.usage.data:
        return base
    rolled = roll_up(inputs.usage.data, now, zone)
    total: Bucket = rolled["all"]
    summary = (
        f"Jobs: {total.jobs} | Total: {money(total.usd)} | Avg: {money(total.average)}/job | "
        f"Tokens: {tokens(total.tokens)}"
    )

    def row(label: str, bucket: Bucket, style: str = "", **extra: Any) -> Row:
        cells = (label, str(bucket.jobs), money(bucket.usd), tokens(bucket.tokens), money(bucket.average))
        values = {**extra, "jobs": bucket.jobs, "usd": round(bucket.usd, 4), "tokens": bucket.tokens}
        return Row(cells, values, style)

    rows = [row(label, rolled[key], period=key) for key, label in COST_PERIODS]
    rows += [
        row(f"  {model}", bucket, "dim", period="all", model=model)
        for model, bucket in rolled["models"].items()
    ]
    return dataclasses.replace(base, rows=tuple(rows), lines=(summary,))
