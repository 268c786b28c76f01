"""`k3sc logs`: agent runs and their logs, read from Prefect (the decisions are `k3sc.runlogs`).

An agent flow relays every line the agent prints into its run's Prefect log, so the log of any
attempt, finished or live, is one paginated `POST /logs/filter` away. Following polls that
endpoint (and the run's state) every half second: the server's websocket log stream needs
settings a user's server may not have, and polling needs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from k3sc import runlogs
from k3sc.config import Config
from k3sc.models import AgentRun
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import TERMINAL, LogRecord
from k3sc.sessions import roots

# At most this many log reads at once when listing (each reads one run's last lines).
_CONCURRENT_READS = 8
# Last lines of settled runs remembered between listings (each costs a request otherwise).
_REMEMBERED = 1000
# Poll period while following: a line reaches the screen within this plus the client's batching.
POLL_S = 0.5
# After a run ends its process still flushes its last log batch: keep reading this long.
SETTLE_S = 2.5


async def recent(limit: int, now: datetime | None = None) -> list[runlogs.Row]:
    """The `limit` latest agent runs, newest first, each with its last meaningful output line.

    One log read per run, except for settled runs whose line an earlier listing remembered.
    """
    moment = now or datetime.now(UTC)
    async with PrefectAPI.from_env() as api:
        latest = runlogs.newest_first(await runs.recent_runs(api, limit))
        remembered = await asyncio.to_thread(_recall, cache_file())
        gate = asyncio.Semaphore(_CONCURRENT_READS)

        async def last_line(run: AgentRun) -> str:
            if run.id in remembered:
                return remembered[run.id]
            async with gate:
                tail = await api.logs(run.id, newest_first=True, limit=runlogs.TAIL)
            return runlogs.last_meaningful(reversed(tail))

        lines = await asyncio.gather(*(last_line(run) for run in latest))
    fresh = {
        run.id: line
        for run, line in zip(latest, lines, strict=True)
        if run.id not in remembered and runlogs.settled(run, moment)
    }
    if fresh:
        await asyncio.to_thread(_remember, cache_file(), {**remembered, **fresh})
    return [runlogs.row(run, line, moment) for run, line in zip(latest, lines, strict=True)]


def cache_file() -> Path:
    """Where listings remember settled runs' last lines (k3sc's cache directory)."""
    return roots.cache_dir(os.environ) / "last-output.json"


def _recall(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: read the logs
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def _remember(path: Path, lines: dict[str, str]) -> None:
    kept = dict(list(lines.items())[-_REMEMBERED:])  # insertion order: the oldest go first
    # A cache that cannot be written only makes the next listing read the logs again.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(kept), encoding="utf-8")
        partial.replace(path)


async def candidates(api: PrefectAPI, config: Config, wanted: runlogs.Wanted) -> list[AgentRun]:
    """The runs `wanted` can mean: of its repo, else of every configured repo, else of any repo."""
    repos = [wanted.repo] if wanted.repo is not None else [r.repo for r in config.repos]
    if repos:
        return await runs.runs_for_issues(api, [f"{repo.key}#{wanted.issue}" for repo in repos])
    return [r for r in await runs.recent_runs(api) if r.issue == wanted.issue]


@dataclass(frozen=True)
class RunLog:
    run: AgentRun
    lines: list[LogRecord]


async def show(config: Config, wanted: runlogs.Wanted) -> RunLog:
    """The whole log so far of the newest run matching `wanted`."""
    async with PrefectAPI.from_env() as api:
        run = runlogs.pick(await candidates(api, config, wanted), wanted)
        return RunLog(run, await api.logs(run.id))


async def follow(
    config: Config,
    wanted: runlogs.Wanted,
    emit: Callable[[LogRecord], None],
    *,
    announce: Callable[[AgentRun], None] = lambda run: None,
    poll: float = POLL_S,
    settle: float = SETTLE_S,
) -> str:
    """Emit the newest matching run's log as it grows, until the run has ended.

    Returns:
        The run's final state type (`COMPLETED`, `FAILED`, …; `GONE` if it was deleted).
    """
    async with PrefectAPI.from_env() as api:
        run = runlogs.pick(await candidates(api, config, wanted), wanted)
        announce(run)
        return await tail(api, run.id, emit, poll=poll, settle=settle)


async def tail(
    api: PrefectAPI, run_id: str, emit: Callable[[LogRecord], None], *, poll: float, settle: float
) -> str:
    """Poll the run's state and new log lines every `poll` s; stop `settle` s after it ended."""
    cursor = runlogs.Cursor()
    ended: float | None = None
    while True:
        # State first, then lines: whatever was logged before the end is in this read or the
        # reads of the settle period.
        current = await api.flow_run(run_id)
        state = current.state_type if current is not None else "GONE"
        for record in cursor.take(await api.logs(run_id, after=cursor.after())):
            emit(record)
        if state in TERMINAL or state == "GONE":
            end_time = current.end_time if current is not None else None
            if ended is None:
                ended = time.monotonic()
                if end_time is not None and datetime.now(UTC) - end_time > timedelta(seconds=settle):
                    return state  # it ended a while ago: its log is complete
            if time.monotonic() - ended >= settle:
                return state
        await asyncio.sleep(poll)
