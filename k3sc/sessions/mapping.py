"""Which transcripts a running session process wrote: pure, given the processes and the files.

The registry's `sessionId` goes stale after `/clear` (a new transcript, same registry entry) and
`--continue` (a new id, the old transcript), so the active transcript is the newest one in the
process's project folder written since it started and not claimed by another live process's
registry entry. A process's lifetime usage covers every transcript it started since then. When
two live processes share a folder and more than one unclaimed transcript is fresh, the answer is
ambiguous and the registry's id is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from k3sc.sessions.roots import slug

FRESH_SLACK_MS = 2_000  # a transcript may be created just before the registry entry
_SESSION_FLAG = re.compile(r"^[0-9a-fA-F-]{36}$")


class Confidence(StrEnum):
    REGISTRY = "registry"
    REGISTRY_DETECTED = "registry+detected"
    CMDLINE = "cmdline"
    CWD = "cwd-heuristic"
    AMBIGUOUS = "ambiguous"
    NONE = "none"


@dataclass(frozen=True)
class Transcript:
    path: str
    session: str  # from the path; "" for flat subagent files
    mtime_ms: int
    first_ms: int  # first usage line's time; 0 if none yet


@dataclass(frozen=True)
class Live:
    """A running session process as the mapping needs it."""

    pid: int
    cwd: str | None
    started_ms: int
    registered_session: str | None = None
    cmdline_session: str | None = None


@dataclass(frozen=True)
class Mapped:
    active_session: str | None
    session_ids: tuple[str, ...]
    confidence: Confidence


def cmdline_session(args: Sequence[str]) -> str | None:
    """The session id given with `--session-id`, `--resume` or `-r` (as the next or `=` value)."""
    for index, arg in enumerate(args):
        flag, _, value = arg.partition("=")
        if flag in ("--session-id", "--resume", "-r"):
            candidate = value or (args[index + 1] if index + 1 < len(args) else "")
            if _SESSION_FLAG.match(candidate):
                return candidate
    return None


def _candidates(
    process: Live, roots: Sequence[str], by_folder: Mapping[str, Sequence[Transcript]]
) -> list[Transcript]:
    if not process.cwd:
        return []
    found: list[Transcript] = []
    for root in roots:
        for transcript in by_folder.get(str(PurePath(root) / "projects" / slug(process.cwd)), ()):
            if not transcript.session or PurePath(transcript.path).name.startswith("agent-"):
                continue
            fresh = transcript.mtime_ms >= process.started_ms - FRESH_SLACK_MS
            if fresh or transcript.session == process.registered_session:
                found.append(transcript)
    return found


def map_processes(
    processes: Sequence[Live], roots: Sequence[str], by_folder: Mapping[str, Sequence[Transcript]]
) -> dict[int, Mapped]:
    """The mapping of every process, keyed by pid."""
    claimed = {p.registered_session for p in processes if p.registered_session}
    folders = {pid: slug(p.cwd) if p.cwd else None for pid, p in ((p.pid, p) for p in processes)}
    result: dict[int, Mapped] = {}
    for process in processes:
        own = process.registered_session or process.cmdline_session
        others = claimed - {own}
        unclaimed = [t for t in _candidates(process, roots, by_folder) if t.session not in others]
        fresh = [t for t in unclaimed if t.mtime_ms >= process.started_ms - FRESH_SLACK_MS]
        shared = sum(1 for pid, folder in folders.items() if folder and folder == folders[process.pid]) > 1
        lifetime = {t.session for t in unclaimed if t.first_ms >= process.started_ms - FRESH_SLACK_MS}
        if own is not None:
            lifetime.add(own)
        if shared and len({t.session for t in fresh}) > 1:
            result[process.pid] = Mapped(own, tuple(sorted({own} if own else set())), Confidence.AMBIGUOUS)
            continue
        newest = max(unclaimed, key=lambda t: t.mtime_ms).session if unclaimed else None
        active = newest or own
        if active is not None:
            lifetime.add(active)
        if process.registered_session:
            plain = active == own and lifetime == {own}
            confidence = Confidence.REGISTRY if plain else Confidence.REGISTRY_DETECTED
        elif process.cmdline_session:
            confidence = Confidence.CMDLINE
        elif active is not None:
            confidence = Confidence.CWD
        else:
            confidence = Confidence.NONE
        result[process.pid] = Mapped(active, tuple(sorted(lifetime)), confidence)
    return result
