"""The daily ledger: what today's agent runs used, read back from their usage artifacts.

Each agent run publishes one table artifact (key `k3sc-agent-usage`, one row, see `k3sc.usage`),
so the ledger lives in Prefect with the runs it counts: nothing local to lose or to disagree.
Reading it is one filter request per 200 runs, newest first, stopping at midnight UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from k3sc import usage
from k3sc.orchestration.api import PAGE, PrefectAPI


async def since(api: PrefectAPI, start: datetime) -> list[usage.UsageRecord]:
    """Usage of every agent run whose artifact was created at or after `start`."""
    records: list[usage.UsageRecord] = []
    async for artifact in artifacts(api, start):
        try:
            records.append(usage.UsageRecord.from_artifact_data(str(artifact.get("data") or "")))
        except ValueError:
            continue  # not one of ours, or written by an older k3sc: it counts nothing
    return records


async def artifacts(api: PrefectAPI, start: datetime | None) -> AsyncIterator[dict[str, Any]]:
    """The raw usage artifacts created at or after `start` (all for None), newest first, paged."""
    offset = 0
    while True:
        body: dict[str, Any] = {
            "artifacts": {"key": {"any_": [usage.USAGE_ARTIFACT_KEY]}},
            "sort": "CREATED_DESC",
            "limit": PAGE,
            "offset": offset,
        }
        batch = (await api.post_json("artifacts/filter", body)) or []
        for artifact in batch:
            created = datetime.fromisoformat(str(artifact["created"]).replace("Z", "+00:00"))
            if start is not None and created < start:
                return
            yield artifact
        if len(batch) < PAGE:
            return
        offset += len(batch)


def midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def totals(records: list[usage.UsageRecord]) -> dict[str, Any]:
    """The ledger as `k3sc status --json` shows it: runs, tokens and dollars, by family and model."""
    by_family: dict[str, dict[str, float]] = {}
    by_model: dict[str, dict[str, float]] = {}
    for record in records:
        tokens = float(record.usage.total_tokens) if record.usage else 0.0
        dollars = record.spent(usage.Unit.DOLLARS)
        family = record.agent.split("-", 1)[0]
        model = (record.usage.model if record.usage else None) or "unknown"
        for table, key in ((by_family, family), (by_model, model)):
            row = table.setdefault(key, {"runs": 0, "tokens": 0.0, "usd": 0.0})
            row["runs"] += 1
            row["tokens"] += tokens
            row["usd"] += dollars
    return {
        "runs": len(records),
        "tokens": sum(r["tokens"] for r in by_family.values()),
        "usd": round(sum(r["usd"] for r in by_family.values()), 4),
        "by_family": by_family,
        "by_model": by_model,
    }
