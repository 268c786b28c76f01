"""Synthetic transcript lines shaped like real Claude Code and Codex files (see the agent-streams
samples): one assistant line per content block, `message.id` + `requestId`, the 5 m / 1 h cache
split, sidechains, and the surrounding non-usage lines that the parser must skip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from k3sc.sessions.usage import Entry, id_hash

T0 = datetime(2026, 11, 27, 10, 12, 30, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def assistant(
    *,
    at: datetime = T0,
    session: str = "s-1",
    message: str | None = "msg_01",
    request: str | None = "req_01",
    model: str = "claude-opus-4-6",
    input: int = 3,
    output: int = 100,
    cache_5m: int = 0,
    cache_1h: int = 0,
    cache_read: int = 0,
    split: bool = True,
    sidechain: bool = False,
    speed: str | None = None,
    cost: float | None = None,
    text: str = "working on it",
    cwd: str = "/home/dev/app",
) -> dict[str, Any]:
    """One assistant transcript line (Claude Code 2.1.x shape)."""
    usage: dict[str, Any] = {
        "input_tokens": input,
        "cache_creation_input_tokens": cache_5m + cache_1h,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
        "service_tier": "standard",
    }
    if split:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": cache_5m,
            "ephemeral_1h_input_tokens": cache_1h,
        }
    if speed is not None:
        usage["speed"] = speed
    line: dict[str, Any] = {
        "parentUuid": "p",
        "isSidechain": sidechain,
        "userType": "external",
        "cwd": cwd,
        "sessionId": session,
        "version": "2.1.280",
        "gitBranch": "main",
        "message": {
            "model": model,
            "id": message,
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": None,
            "usage": usage,
        },
        "requestId": request,
        "type": "assistant",
        "uuid": "u",
        "timestamp": stamp(at),
    }
    if message is None:
        del line["message"]["id"]
    if request is None:
        del line["requestId"]
    if cost is not None:
        line["costUSD"] = cost
    return line


def user(at: datetime = T0, session: str = "s-1", size: int = 200) -> dict[str, Any]:
    """A user tool-result line: no usage, often large."""
    return {
        "type": "user",
        "sessionId": session,
        "timestamp": stamp(at),
        "message": {"role": "user", "content": [{"type": "tool_result", "content": "x" * size}]},
    }


def jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


def write(path: Path, *lines: dict[str, Any], append: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if append else "wb") as handle:
        handle.write(jsonl(*lines))
    return path


def entry(
    at: datetime = T0,
    *,
    message: str | None = "msg_01",
    request: str | None = "req_01",
    input: int = 0,
    output: int = 0,
    cache_5m: int = 0,
    cache_1h: int = 0,
    cache_read: int = 0,
    model: str = "claude-opus-4-6",
    session: str = "s-1",
    sidechain: bool = False,
    speed: str = "",
    cost: float | None = None,
) -> Entry:
    """An `Entry` as the parser would produce it, for the pure rules' tables."""
    return Entry(
        ts=int(at.timestamp() * 1000),
        input=input,
        output=output,
        cache_5m=cache_5m,
        cache_1h=cache_1h,
        cache_read=cache_read,
        model=model,
        session=session,
        key=id_hash(message, request) if message else 0,
        message=id_hash(message) if message else 0,
        sidechain=sidechain,
        speed=speed,
        cost_usd=cost,
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def codex_rollout(session: str, cwd: str, at: datetime = T0) -> list[dict[str, Any]]:
    """A Codex rollout: session_meta, turn_context, two token_count events (last and total usage)."""
    return [
        {
            "timestamp": stamp(at),
            "type": "session_meta",
            "payload": {"id": session, "cwd": cwd, "originator": "codex_cli_rs"},
        },
        {"timestamp": stamp(at), "type": "turn_context", "payload": {"cwd": cwd, "model": "gpt-5.3-codex"}},
        {
            "timestamp": stamp(at + timedelta(seconds=5)),
            "type": "response_item",
            "payload": {"type": "message", "content": "hi"},
        },
        {
            "timestamp": stamp(at + timedelta(seconds=9)),
            "type": "event_msg",
            "payload": {
                "type": "token_count",
                "info": {
                    "last_token_usage": {
                        "input_tokens": 1000,
                        "cached_input_tokens": 600,
                        "output_tokens": 50,
                        "reasoning_output_tokens": 20,
                        "total_tokens": 1050,
                    },
                    "total_token_usage": {
                        "input_tokens": 1000,
                        "cached_input_tokens": 600,
                        "output_tokens": 50,
                        "reasoning_output_tokens": 20,
                        "total_tokens": 1050,
                    },
                },
            },
        },
        {
            "timestamp": stamp(at + timedelta(seconds=30)),
            "type": "event_msg",
            "payload": {
                "type": "token_count",
                "info": {
                    "total_token_usage": {
                        "input_tokens": 3000,
                        "cached_input_tokens": 2000,
                        "output_tokens": 150,
                        "reasoning_output_tokens": 60,
                        "total_tokens": 3150,
                    },
                },
            },
        },
    ]
