"""`k3sc sessions --once` text and `--json` document, rendered from a `Snapshot`.

The text keeps the original tool's layout (`=== CLAUDE SESSIONS ===`, `=== ACTIVE BLOCK ===`, one
`[i] PID …` paragraph per session, `=== TIMINGS ===`) so scripts written against it keep working;
times are shown in the zone given (the local one by default), computed in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from k3sc.sessions.blocks import BlockReport
from k3sc.sessions.snapshot import SessionView, Snapshot
from k3sc.sessions.usage import Totals

NO_SESSIONS = "no running claude processes found"
SOURCE = "local estimate (this machine's transcripts only; limit = high-water mark)"


def short_model(model: str) -> str:
    """`claude-opus-4-1-20250805` → `opus-4-1`, as ccusage shows model names."""
    name = model.removeprefix("anthropic/").removeprefix("claude-")
    return re.sub(r"-\d{8}(?=$|-fast$)", "", name)


def when(ms: int | None, zone: tzinfo | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %I:%M:%S %p")


def clock(ms: int | None, zone: tzinfo | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%H:%M:%S")


def remaining(minutes: float) -> str:
    whole = max(0, int(minutes))
    hours, mins = divmod(whole, 60)
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def number(value: int | float) -> str:
    return f"{round(value):,}"


def compact(value: int) -> str:
    """`13198500` → `13.2M`: short enough for a table column."""
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def money(value: float, places: int = 4) -> str:
    return f"${value:,.{places}f}"


# ------------------------------------------------------------------ text


def text(snapshot: Snapshot, zone: tzinfo | None, *, timings: bool = False) -> str:
    """The whole `--once` output, newline-terminated."""
    lines = ["=== CLAUDE SESSIONS ==="]
    total = snapshot.totals
    lines.append(
        f"Sessions: {len(snapshot.sessions)} | Metadata: {snapshot.metadata_count} "
        f"| Usage: {snapshot.usage_count} | Cost: {money(total.cost)} "
        f"| Tokens: total={number(total.total)} cached={number(total.cached)} output={number(total.output)}"
    )
    lines += ["", "=== ACTIVE BLOCK ===", *block_lines(snapshot, zone)]
    if not snapshot.sessions:
        lines += ["", f"No live sessions: {NO_SESSIONS}."]
    for position, session in enumerate(snapshot.sessions, 1):
        lines += ["", *session_lines(position, session, zone, timings=timings)]
    for warning in snapshot.warnings:
        lines.append(f"Warning : {warning}")
    if timings:
        lines += ["", *timing_lines(snapshot)]
    return "\n".join(lines) + "\n"


def block_lines(snapshot: Snapshot, zone: tzinfo | None) -> list[str]:
    if snapshot.block_error:
        return [f"Error   : {snapshot.block_error}"]
    block = snapshot.block
    if block is None:
        lines = ["No active block data."]
        if snapshot.high_water:
            lines.append(f"Max     : limit={number(snapshot.high_water)} (high-water mark)")
        return lines
    t = block.totals
    lines = [
        f"Started : {when(block.start_ms, zone)}",
        f"Ends    : {when(block.end_ms, zone)}",
        f"Remain  : {remaining((block.end_ms - snapshot.generated_ms) / 60_000)}",
        f"Usage   : total={number(t.total)} input={number(t.input)} output={number(t.output)} "
        f"cache-create={number(t.cache_create)} cache-read={number(t.cache_read)} cost={money(t.cost, 2)}",
    ]
    if block.burn is not None:
        rate, hourly = number(block.burn.tokens_per_minute), money(block.burn.cost_per_hour, 2)
        burn = f"Burn    : {rate} tok/min | {hourly}/hr"
        if block.projection is not None:
            burn += (
                f" | projected total={number(block.projection.tokens)} cost={money(block.projection.cost, 2)}"
            )
        lines.append(burn)
    if block.limit is not None:
        limit = block.limit
        lines.append(
            f"Max     : limit={number(limit.tokens)} current={limit.used_percent:.1f}% "
            f"left={number(limit.left)} "
            f"projected={limit.projected_percent:.1f}% projected-left={number(limit.projected_left)} "
            f"status={limit.status.value}"
        )
    if block.models:
        lines.append(f"Models  : {', '.join(short_model(m) for m in block.models)}")
    lines.append(f"Source  : {SOURCE}")
    return lines


def session_lines(position: int, session: SessionView, zone: tzinfo | None, *, timings: bool) -> list[str]:
    t = session.totals or Totals()
    agent = "" if session.agent == "claude" else f" ({session.agent})"
    lines = [
        f"[{position}] PID {session.pid}{agent} | Cost {money(t.cost)} | Total {number(t.total)} "
        f"| Cached {number(t.cached)} | Output {number(t.output)} | Last {when(session.last_ms, zone)}"
    ]
    ident = session.session_id or "-"
    if session.active_session_id and session.active_session_id != session.session_id:
        ident += f" (active {session.active_session_id})"
    lines.append(f"    Session : {ident} [{session.mapping}]")
    lines.append(f"    CWD     : {session.cwd or '-'}")
    lines.append(f"    Started : {when(session.started_ms, zone)}")
    if session.models:
        lines.append(f"    Models  : {', '.join(short_model(m) for m in session.models)}")
    if session.status:
        waiting = f": {session.waiting_for}" if session.waiting_for else ""
        lines.append(f"    Status  : {session.status}{waiting}")
    if timings:
        lines.append(f"    Timing  : usage {session.usage_ms:.1f} ms")
    if session.name:
        lines.append(f"    Name    : {session.name}")
    if session.metadata_error:
        lines.append(f"    Metadata: {session.metadata_error}")
    if session.usage_error:
        lines.append(f"    Usage   : {session.usage_error}")
    return lines


def timing_lines(snapshot: Snapshot) -> list[str]:
    t = snapshot.timings
    parsed = f"{t.parsed_bytes / 1e6:.1f} MB in {number(t.parsed_files)} files, {t.parse_ms:.1f} ms"
    if t.workers:
        parsed += f" ({t.workers} workers)"
    return [
        "=== TIMINGS ===",
        f"Total         : {t.total_ms:.1f} ms",
        f"Cache load    : {t.cache_load_ms:.1f} ms{' (cold)' if t.cold else ''}",
        f"Stat walk     : {t.walk_ms:.1f} ms ({number(t.files)} files)",
        f"Parsed        : {parsed}",
        f"Process scan  : {t.process_ms:.1f} ms",
        f"Metadata read : {t.metadata_ms:.1f} ms",
        f"Session usage : {t.usage_wall_ms:.1f} ms wall | {t.usage_sum_ms:.1f} ms summed",
        f"Active block  : {t.block_ms:.1f} ms (blocks {t.blocks_ms:.1f} ms)",
    ]


# ------------------------------------------------------------------ JSON


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _totals(t: Totals) -> dict[str, Any]:
    return {
        "totalCostUSD": round(t.cost, 6),
        "totalTokens": t.total,
        "inputTokens": t.input,
        "outputTokens": t.output,
        "cacheCreationTokens": t.cache_create,
        "cacheReadTokens": t.cache_read,
        "cachedTokens": t.cached,
    }


def _block(block: BlockReport | None, now_ms: int) -> dict[str, Any] | None:
    if block is None:
        return None
    return {
        "startTime": _iso(block.start_ms),
        "endTime": _iso(block.end_ms),
        "firstEntry": _iso(block.first_ms),
        "lastEntry": _iso(block.last_ms),
        "remainingMinutes": max(0, round((block.end_ms - now_ms) / 60_000)),
        **_totals(block.totals),
        "models": list(block.models),
        "burnRate": None
        if block.burn is None
        else {
            "tokensPerMinute": block.burn.tokens_per_minute,
            "tokensPerMinuteForIndicator": block.burn.indicator_per_minute,
            "indicator": block.burn.indicator,
            "costPerHour": block.burn.cost_per_hour,
        },
        "projection": None
        if block.projection is None
        else {
            "totalTokens": block.projection.tokens,
            "totalCostUSD": block.projection.cost,
            "remainingMinutes": block.projection.remaining_minutes,
        },
        "limit": None
        if block.limit is None
        else {
            "tokens": block.limit.tokens,
            "kind": "high-water mark",
            "status": block.limit.status.value,
            "usedPercent": round(block.limit.used_percent, 2),
            "projectedPercent": round(block.limit.projected_percent, 2),
            "remainingTokens": block.limit.left,
            "projectedRemainingTokens": block.limit.projected_left,
        },
        "source": "local",
        "confidence": "estimate",
    }


def _session(session: SessionView) -> dict[str, Any]:
    return {
        "agent": session.agent,
        "pid": session.pid,
        "sessionId": session.session_id,
        "activeSessionId": session.active_session_id,
        "sessionIds": list(session.session_ids),
        "mappingConfidence": session.mapping,
        "cwd": session.cwd,
        "startedAt": _iso(session.started_ms),
        "lastActivity": _iso(session.last_ms),
        "name": session.name,
        "kind": session.kind,
        "entrypoint": session.entrypoint,
        "status": session.status,
        "waitingFor": session.waiting_for,
        "version": session.version,
        "exe": session.exe,
        "models": list(session.models),
        "usage": None if session.totals is None else _totals(session.totals),
        "metadataError": session.metadata_error,
        "usageError": session.usage_error,
        "usageMs": round(session.usage_ms, 1),
    }


def document(snapshot: Snapshot) -> dict[str, Any]:
    """The `--json` document: the original's Snapshot shape plus roots, pricing and warnings."""
    t = snapshot.timings
    return {
        "generatedAt": _iso(snapshot.generated_ms),
        "sessionCount": len(snapshot.sessions),
        "metadataCount": snapshot.metadata_count,
        "usageCount": snapshot.usage_count,
        **_totals(snapshot.totals),
        "activeBlock": _block(snapshot.block, snapshot.generated_ms),
        "blockError": snapshot.block_error,
        "highWaterMarkTokens": snapshot.high_water,
        "roots": {"claude": list(snapshot.claude_roots), "codex": snapshot.codex_root},
        "pricing": {
            "source": "bundled",
            "version": snapshot.pricing_version,
            "unpricedModels": list(snapshot.unpriced_models),
            "fallbackModels": list(snapshot.fallback_models),
        },
        "warnings": list(snapshot.warnings),
        "timings": {
            "totalMs": round(t.total_ms, 1),
            "cacheLoadMs": round(t.cache_load_ms, 1),
            "statWalkMs": round(t.walk_ms, 1),
            "files": t.files,
            "parseMs": round(t.parse_ms, 1),
            "parsedBytes": t.parsed_bytes,
            "parsedFiles": t.parsed_files,
            "processScanMs": round(t.process_ms, 1),
            "metadataReadMs": round(t.metadata_ms, 1),
            "sessionUsageWallMs": round(t.usage_wall_ms, 1),
            "sessionUsageSumMs": round(t.usage_sum_ms, 1),
            "activeBlockMs": round(t.block_ms, 1),
            "blocksMs": round(t.blocks_ms, 1),
            "cold": t.cold,
        },
        "sessions": [_session(s) for s in snapshot.sessions],
    }
