"""Turn transcript bytes into `Entry` rows: Claude Code `projects/**.jsonl` and Codex rollouts.

Only complete lines are given here (the index keeps a partial last line for the next pass). The
Claude hot path jumps from one `"usage":{` marker to the next and decodes just that line with a
typed msgspec struct that names only the fields costing needs; a line that fails to decode or
validate is skipped, as after a crash. `null` counts as absent rather than invalidating a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from k3sc.sessions.usage import Entry, id_hash

_USAGE = b'"usage":{'
_BOM = b"\xef\xbb\xbf"
_SEMVER = re.compile(r"^\d+\.\d+\.\d")


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    speed: str | None = None


class _Message(msgspec.Struct):
    usage: _Usage
    id: str | None = None
    model: str | None = None


class _Line(msgspec.Struct):
    timestamp: datetime
    message: _Message
    sessionId: str | None = None
    requestId: str | None = None
    costUSD: float | None = None
    isSidechain: bool | None = None
    version: str | None = None


_claude = msgspec.json.Decoder(_Line)


def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def claude_entry(line: _Line, session: str) -> Entry | None:
    """The row of one decoded line, or None when ccusage would reject it."""
    message, usage = line.message, line.message.usage
    if line.version is not None and not _SEMVER.match(line.version):
        return None
    if "" in (line.sessionId, line.requestId, message.id, message.model):
        return None
    if usage.cache_creation is not None:
        # The split, when present, is the cache-write count: 1 h writes cost more than 5 m ones.
        cache_5m = usage.cache_creation.ephemeral_5m_input_tokens or 0
        cache_1h = usage.cache_creation.ephemeral_1h_input_tokens or 0
    else:
        cache_5m, cache_1h = usage.cache_creation_input_tokens or 0, 0
    key = message_key = 0
    if message.id is not None:
        key = id_hash(message.id, line.requestId)
        message_key = id_hash(message.id)
    return Entry(
        ts=epoch_ms(line.timestamp),
        input=usage.input_tokens,
        output=usage.output_tokens,
        cache_5m=cache_5m,
        cache_1h=cache_1h,
        cache_read=usage.cache_read_input_tokens or 0,
        model=message.model or "",
        session=session or line.sessionId or "",
        key=key,
        message=message_key,
        sidechain=bool(line.isSidechain),
        speed=usage.speed or "",
        cost_usd=line.costUSD,
    )


def claude_entries(buf: bytes, session: str, *, at_file_start: bool = False) -> list[Entry]:
    """Rows of the complete lines in `buf`. An empty `session` takes each line's own `sessionId`
    (the flat `agent-*.jsonl` subagent files, whose lines carry their parent session's id)."""
    rows: list[Entry] = []
    view = memoryview(buf)
    position = buf.find(_USAGE)
    while position != -1:
        start = buf.rfind(b"\n", 0, position) + 1
        end = buf.find(b"\n", position)
        if end == -1:
            end = len(buf)
        if start == 0 and at_file_start and buf.startswith(_BOM):
            start = len(_BOM)
        try:
            line = _claude.decode(view[start:end])
        except (msgspec.DecodeError, msgspec.ValidationError):
            line = None
        if line is not None:
            entry = claude_entry(line, session)
            if entry is not None:
                rows.append(entry)
        position = buf.find(_USAGE, end)
    return rows


# ------------------------------------------------------------------ Codex rollouts


class _CodexUsage(msgspec.Struct):
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_output_tokens: int | None = None


class _CodexInfo(msgspec.Struct):
    last_token_usage: _CodexUsage | None = None
    total_token_usage: _CodexUsage | None = None
    model: str | None = None


class _CodexPayload(msgspec.Struct):
    type: str | None = None
    info: _CodexInfo | None = None
    model: str | None = None
    cwd: str | None = None
    id: str | None = None


class _CodexLine(msgspec.Struct):
    type: str | None = None
    timestamp: datetime | None = None
    payload: _CodexPayload | None = None


_codex = msgspec.json.Decoder(_CodexLine)
_CODEX_MARKERS = (b'"token_count"', b'"turn_context"', b'"session_meta"')


@dataclass
class CodexState:
    """What a rollout's earlier lines tell its later ones; kept per file between passes."""

    model: str = ""
    cwd: str = ""
    session: str = ""
    totals: tuple[int, int, int, int] | None = None  # input, cached, output, reasoning so far


def _counts(usage: _CodexUsage) -> tuple[int, int, int, int]:
    return (
        usage.input_tokens or 0,
        usage.cached_input_tokens or 0,
        usage.output_tokens or 0,
        usage.reasoning_output_tokens or 0,
    )


def codex_entries(buf: bytes, session: str, state: CodexState) -> list[Entry]:
    """Rows of a rollout's complete lines, as ccusage reads them: a `token_count` event's
    `last_token_usage`, else the growth of `total_token_usage`; the model from the event or the
    last `turn_context`. Cached input is part of input in Codex's counts; here it moves to
    `cache_read`, and reasoning is already part of output."""
    rows: list[Entry] = []
    for raw in buf.split(b"\n"):
        if not any(marker in raw for marker in _CODEX_MARKERS):
            continue
        try:
            line = _codex.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        payload = line.payload
        if payload is None:
            continue
        if line.type == "session_meta":
            state.cwd = payload.cwd or state.cwd
            state.session = payload.id or state.session
            continue
        if line.type == "turn_context":
            state.model = payload.model or state.model
            continue
        if line.type != "event_msg" or payload.type != "token_count" or line.timestamp is None:
            continue
        info = payload.info
        totals = _counts(info.total_token_usage) if info and info.total_token_usage else None
        if info and info.last_token_usage:
            counts = _counts(info.last_token_usage)
        elif totals is not None:
            before = state.totals or (0, 0, 0, 0)
            counts = tuple(max(0, now - was) for now, was in zip(totals, before, strict=True))  # type: ignore[assignment]
        else:
            continue
        if totals is not None:
            state.totals = totals
        if not any(counts):
            continue
        model = payload.model or (info.model if info else None) or state.model
        given, cached, output, _reasoning = counts
        cached = min(cached, given)
        rows.append(
            Entry(
                ts=epoch_ms(line.timestamp),
                input=given - cached,
                output=output,
                cache_5m=0,
                cache_1h=0,
                cache_read=cached,
                model=model,
                session=state.session or session,
            )
        )
    return rows
