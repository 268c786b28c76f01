"""Claude Code's own register of running sessions: `<root>/sessions/<pid>.json`.

Claude Code writes one file per interactive process and removes it on a clean exit; a crash leaves
it behind, and the pid may since belong to another program. So a file counts only if its pid is
alive and is the *same* process: `procStart` (Linux start ticks since boot, macOS `ps -o lstart`
text, Windows FILETIME digits) must match the process's start time, or, without it, `startedAt`
must fall just after the process started. Only `pid` and `sessionId` are required; unknown fields
are ignored, because the format is Claude Code's and changes without notice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILETIME_EPOCH_OFFSET = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01
FILETIME_DIGITS = 10**16  # Linux start ticks never reach this; FILETIMEs since 1970 always do
TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Registration:
    pid: int
    session_id: str
    path: Path
    cwd: str | None = None
    started_at_ms: int | None = None
    proc_start: str | None = None
    kind: str | None = None
    entrypoint: str | None = None
    name: str | None = None
    status: str | None = None
    waiting_for: str | None = None
    version: str | None = None


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return str(value) if value not in (None, "") else None


def parse(raw: bytes, path: Path) -> Registration | str:
    """A registration, or the reason the file is unusable (the seed's wording)."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"read metadata: {exc}"
    if not isinstance(data, dict):
        return "read metadata: not a JSON object"
    session = _text(data, "sessionId")
    if session is None:
        return "session metadata missing sessionId"
    try:
        pid = int(data.get("pid", path.stem))
        started = data.get("startedAt")
        started_ms = int(started) if started is not None else None
    except (TypeError, ValueError):
        return "read metadata: pid or startedAt is not a number"
    return Registration(
        pid=pid,
        session_id=session,
        path=path,
        cwd=_text(data, "cwd"),
        started_at_ms=started_ms,
        proc_start=_text(data, "procStart"),
        kind=_text(data, "kind"),
        entrypoint=_text(data, "entrypoint"),
        name=_text(data, "name"),
        status=_text(data, "status"),
        waiting_for=_text(data, "waitingFor"),
        version=_text(data, "version"),
    )


def read(roots: Iterable[Path]) -> tuple[dict[int, Registration], dict[int, str]]:
    """Every registration under the roots by pid (the first root wins), and per-pid read errors."""
    found: dict[int, Registration] = {}
    errors: dict[int, str] = {}
    for root in roots:
        try:
            files = sorted((root / "sessions").glob("*.json"))
        except OSError:
            continue
        for path in files:
            if not path.stem.isdigit():
                continue
            try:
                parsed = parse(path.read_bytes(), path)
            except OSError as exc:
                parsed = f"read metadata: {exc.strerror or exc}"
            if isinstance(parsed, str):
                errors.setdefault(int(path.stem), parsed)
            elif parsed.pid == int(path.stem):
                found.setdefault(parsed.pid, parsed)
    return found, errors


def proc_start_epoch(proc_start: str, boot_time: float, clock_ticks: int) -> float | None:
    """Epoch seconds encoded by a `procStart` string; None if it cannot be read."""
    text = proc_start.strip()
    if text.isdigit():
        value = int(text)
        if value >= FILETIME_DIGITS:
            return value / 10_000_000 - FILETIME_EPOCH_OFFSET
        return boot_time + value / clock_ticks
    try:
        return time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y"))  # macOS lstart, local time
    except ValueError:
        return None


def same_process(reg: Registration, create_time: float, boot_time: float, clock_ticks: int) -> bool:
    """Whether the live process with this pid is the one that wrote the registration."""
    if reg.proc_start is not None:
        started = proc_start_epoch(reg.proc_start, boot_time, clock_ticks)
        if started is not None:
            return abs(started - create_time) <= max(TOLERANCE_S, 1 / clock_ticks)
    if reg.started_at_ms is None:
        return False
    registered = reg.started_at_ms / 1000
    return create_time - 5 <= registered <= create_time + 600
