"""One look at this machine's agent sessions: running processes, their usage, and the 5-hour block.

`Collector` keeps the usage index between calls, so the live view pays only for what was appended
since its last refresh; `collect()` joins the registry, the process scan, the transcript mapping,
per-session totals and the active block into a `Snapshot`, timing each step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from k3sc.sessions import blocks, mapping, processes, registry, roots
from k3sc.sessions.index import CLAUDE, CODEX, Root, UsageIndex
from k3sc.sessions.pricing import CostMode, PriceTable, bundled
from k3sc.sessions.usage import Entry, Totals, models_of, sum_entries

INDEX_FILE = "sessions-index-v1-{key}.msgpack"
LIMIT_FILE = "block-limit.json"


@dataclass(frozen=True)
class SessionView:
    agent: str
    pid: int
    session_id: str | None
    active_session_id: str | None = None
    session_ids: tuple[str, ...] = ()
    mapping: str = mapping.Confidence.NONE.value
    cwd: str | None = None
    started_ms: int | None = None
    name: str | None = None
    kind: str | None = None
    entrypoint: str | None = None
    status: str | None = None
    waiting_for: str | None = None
    version: str | None = None
    exe: str | None = None
    totals: Totals | None = None
    models: tuple[str, ...] = ()
    last_ms: int | None = None
    metadata_error: str | None = None
    usage_error: str | None = None
    usage_ms: float = 0.0


@dataclass(frozen=True)
class Timings:
    total_ms: float = 0.0
    process_ms: float = 0.0
    metadata_ms: float = 0.0
    usage_wall_ms: float = 0.0
    usage_sum_ms: float = 0.0
    block_ms: float = 0.0
    cache_load_ms: float = 0.0
    walk_ms: float = 0.0
    files: int = 0
    parse_ms: float = 0.0
    parsed_bytes: int = 0
    parsed_files: int = 0
    blocks_ms: float = 0.0
    workers: int = 0
    cold: bool = False


@dataclass(frozen=True)
class Snapshot:
    generated_ms: int
    sessions: tuple[SessionView, ...]
    block: blocks.BlockReport | None
    block_error: str | None
    high_water: int
    claude_roots: tuple[str, ...]
    codex_root: str | None
    pricing_version: str
    unpriced_models: tuple[str, ...] = ()
    fallback_models: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    timings: Timings = field(default_factory=Timings)

    @property
    def totals(self) -> Totals:
        total = Totals()
        for session in self.sessions:
            if session.totals is not None:
                total += session.totals
        return total

    @property
    def metadata_count(self) -> int:
        """Claude sessions whose registry file was found and read."""
        return sum(1 for s in self.sessions if s.agent == CLAUDE and s.metadata_error is None)

    @property
    def usage_count(self) -> int:
        return sum(1 for s in self.sessions if s.totals is not None and s.usage_error is None)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class Collector:
    """Collects snapshots for one environment; reuse it so later calls read only appended bytes."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        mode: CostMode = CostMode.AUTO,
        prices: PriceTable | None = None,
        workers: int | None = None,
    ) -> None:
        env = dict(os.environ if environ is None else environ)
        self.claude_roots = roots.claude_roots(env)
        self.registry_roots = roots.registry_roots(env)
        codex = roots.codex_home(env) / "sessions"
        self.codex_root = codex if codex.is_dir() else None
        walked = [Root(path / "projects", CLAUDE) for path in self.claude_roots]
        if self.codex_root is not None:
            walked.append(Root(self.codex_root, CODEX))
        key = format(abs(hash_roots(walked)), "x")
        self.index = UsageIndex(walked, roots.cache_dir(env) / INDEX_FILE.format(key=key), workers=workers)
        self.limit_file = roots.state_dir(env) / LIMIT_FILE
        self.mode = mode
        self.prices = prices or bundled()

    # ------------------------------------------------------------ the pass

    def collect(self, now_ms: int | None = None) -> Snapshot:
        started = time.perf_counter()
        now = now_ms if now_ms is not None else _ms(time.time())
        stats = self.index.refresh()

        t = time.perf_counter()
        registrations, registry_errors = registry.read(self.registry_roots)
        metadata_ms = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        found, behind = processes.scan(set(registrations) | set(registry_errors))
        boot, ticks = processes.boot_time(), processes.clock_ticks()
        process_ms = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        claude_views = self._claude_sessions(found, behind, registrations, registry_errors, boot, ticks)
        codex_views = self._codex_sessions([info for agent, info in found if agent is processes.Agent.CODEX])
        views = claude_views + codex_views
        usage_wall = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        report, high_water, block_error, blocks_ms = self._block(now)
        block_ms = (time.perf_counter() - t) * 1000

        views.sort(key=lambda v: (-(v.last_ms or v.started_ms or 0), v.pid))
        seen_models = [m for v in views for m in v.models] + (list(report.models) if report else [])
        unpriced, fallback = self._pricing_notes(seen_models)
        timings = Timings(
            total_ms=(time.perf_counter() - started) * 1000,
            process_ms=process_ms,
            metadata_ms=metadata_ms,
            usage_wall_ms=usage_wall,
            usage_sum_ms=sum(v.usage_ms for v in views),
            block_ms=block_ms,
            cache_load_ms=stats.load_ms,
            walk_ms=stats.walk_ms,
            files=stats.files,
            parse_ms=stats.parse_ms,
            parsed_bytes=stats.parsed_bytes,
            parsed_files=stats.parsed_files,
            blocks_ms=blocks_ms,
            workers=stats.workers,
            cold=stats.cold,
        )
        return Snapshot(
            generated_ms=now,
            sessions=tuple(views),
            block=report,
            block_error=block_error,
            high_water=high_water,
            claude_roots=tuple(str(p) for p in self.claude_roots),
            codex_root=str(self.codex_root) if self.codex_root else None,
            pricing_version=self.prices.version,
            unpriced_models=tuple(unpriced),
            fallback_models=tuple(fallback),
            timings=timings,
        )

    # ------------------------------------------------------------ Claude

    def _claude_sessions(
        self,
        found: Sequence[tuple[processes.Agent, processes.ProcessInfo]],
        behind: Mapping[int, processes.ProcessInfo],
        registrations: Mapping[int, registry.Registration],
        registry_errors: Mapping[int, str],
        boot: float,
        ticks: int,
    ) -> list[SessionView]:
        live: dict[int, tuple[mapping.Live, processes.ProcessInfo, registry.Registration | None]] = {}
        for pid, entry in registrations.items():
            info = behind.get(pid)
            if info is not None and registry.same_process(entry, info.create_time, boot, ticks):
                started = entry.started_at_ms if entry.started_at_ms is not None else _ms(info.create_time)
                cwd = info.cwd or entry.cwd
                live[pid] = (
                    mapping.Live(pid, cwd, started, registered_session=entry.session_id),
                    info,
                    entry,
                )
        for agent, info in found:
            if agent is processes.Agent.CLAUDE and info.pid not in live:
                flagged = mapping.cmdline_session(info.cmdline[1:])
                process = mapping.Live(info.pid, info.cwd, _ms(info.create_time), cmdline_session=flagged)
                live[info.pid] = (process, info, None)
        transcripts = self._transcripts_by_folder()
        mapped = mapping.map_processes(
            [entry[0] for entry in live.values()], [str(p) for p in self.claude_roots], transcripts
        )
        wanted = {sid for m in mapped.values() for sid in m.session_ids}
        table = self.index.claude_table()
        rows = {sid: table.rows(positions) for sid, positions in table.positions_of(wanted).items()}
        known = {t.session for group in transcripts.values() for t in group}
        views = []
        for pid, (process, info, reg) in live.items():
            t = time.perf_counter()
            m = mapped[pid]
            own = [row for sid in m.session_ids for row in rows.get(sid, ())]
            usage_error = None
            if m.active_session and m.active_session not in known and not own:
                usage_error = f"no JSONL files found for session {m.active_session}"
            elif m.active_session is None:
                usage_error = "no transcript found for this process"
            metadata_error = None
            if reg is None:
                metadata_error = registry_errors.get(pid, "missing Claude session metadata")
            views.append(
                SessionView(
                    agent=CLAUDE,
                    pid=pid,
                    session_id=reg.session_id if reg else process.cmdline_session,
                    active_session_id=m.active_session,
                    session_ids=m.session_ids,
                    mapping=m.confidence.value,
                    cwd=process.cwd,
                    started_ms=process.started_ms,
                    name=reg.name if reg else None,
                    kind=reg.kind if reg else None,
                    entrypoint=reg.entrypoint if reg else None,
                    status=reg.status if reg else None,
                    waiting_for=reg.waiting_for if reg else None,
                    version=reg.version if reg else None,
                    exe=info.exe or None,
                    totals=self._totals(own),
                    models=tuple(models_of(own)),
                    last_ms=max((row.ts for row in own), default=None),
                    metadata_error=metadata_error,
                    usage_error=usage_error,
                    usage_ms=(time.perf_counter() - t) * 1000,
                )
            )
        return views

    def _transcripts_by_folder(self) -> dict[str, list[mapping.Transcript]]:
        folders: dict[str, list[mapping.Transcript]] = {}
        for path, state in self.index.files.items():
            if state.kind != CLAUDE:
                continue
            folders.setdefault(str(PurePath(path).parent), []).append(
                mapping.Transcript(path, state.session, state.mtime_ns // 1_000_000, state.first_ts)
            )
        return folders

    # ------------------------------------------------------------ Codex

    def _codex_sessions(self, found: Sequence[processes.ProcessInfo]) -> list[SessionView]:
        views = []
        rollouts = [state for state in self.index.files.values() if state.kind == CODEX]
        wanted: dict[int, list[str]] = {}
        for info in found:
            started = _ms(info.create_time) - mapping.FRESH_SLACK_MS
            mine = [s for s in rollouts if s.cwd and s.cwd == info.cwd and s.mtime_ns // 1_000_000 >= started]
            mine.sort(key=lambda s: s.mtime_ns, reverse=True)
            wanted[info.pid] = [s.codex_session or s.session for s in mine]
        rows = _bucket(self.index.codex, {sid for sids in wanted.values() for sid in sids})
        shared_cwds = [info.cwd for info in found]
        for info in found:
            t = time.perf_counter()
            sids = wanted[info.pid]
            own = [row for sid in sids for row in rows.get(sid, ())]
            if not sids:
                confidence = mapping.Confidence.NONE
            elif shared_cwds.count(info.cwd) > 1:
                confidence = mapping.Confidence.AMBIGUOUS
            else:
                confidence = mapping.Confidence.CWD
            views.append(
                SessionView(
                    agent=CODEX,
                    pid=info.pid,
                    session_id=sids[0] if sids else None,
                    active_session_id=sids[0] if sids else None,
                    session_ids=tuple(sorted(sids)),
                    mapping=confidence.value,
                    cwd=info.cwd,
                    started_ms=_ms(info.create_time),
                    exe=info.exe or None,
                    totals=self._totals(own),
                    models=tuple(models_of(own)),
                    last_ms=max((row.ts for row in own), default=None),
                    usage_error=None if sids else "no rollout file found for this process",
                    usage_ms=(time.perf_counter() - t) * 1000,
                )
            )
        return views

    # ------------------------------------------------------------ block

    def _block(self, now_ms: int) -> tuple[blocks.BlockReport | None, int, str | None, float]:
        if not self.claude_roots:
            return None, self._high_water(0, None), "no Claude Code data found (no projects/ folder)", 0.0
        t = time.perf_counter()
        table = self.index.claude_table()  # sorted by time
        found = blocks.at_time(self.index.blocks(now_ms), now_ms)
        blocks_ms = (time.perf_counter() - t) * 1000
        completed = [b for b in found if not b.gap and not b.active]
        best = max(completed, key=lambda b: b.tokens, default=None)
        high_water = self._high_water(best.tokens if best else 0, best.id if best else None)
        active = next((b for b in reversed(found) if b.active), None)
        if active is None:
            return None, high_water, None, blocks_ms
        own = table.rows(range(active.lo, active.hi))
        costs = [self.prices.cost(entry, self.mode) for entry in own]
        shifted = dataclasses.replace(active, lo=0, hi=len(own))
        return blocks.report(shifted, own, costs, now_ms, high_water or None), high_water, None, blocks_ms

    def _high_water(self, seen: int, block_id: str | None) -> int:
        """The persisted largest completed block, raised to `seen` if that is larger; never lowered."""
        stored = 0
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            stored = int(json.loads(self.limit_file.read_text(encoding="utf-8")).get("maxCompletedTokens", 0))
        if seen > stored:
            document = {"maxCompletedTokens": seen, "blockId": block_id, "savedAt": _ms(time.time())}
            with contextlib.suppress(OSError):
                self.limit_file.parent.mkdir(parents=True, exist_ok=True)
                temp = self.limit_file.with_suffix(".tmp")
                temp.write_text(json.dumps(document), encoding="utf-8")
                os.replace(temp, self.limit_file)
            return seen
        return stored

    # ------------------------------------------------------------ money

    def _totals(self, rows: Sequence[Entry]) -> Totals:
        return sum_entries(rows, (self.prices.cost(row, self.mode) for row in rows))

    def _pricing_notes(self, models: Iterable[str]) -> tuple[list[str], list[str]]:
        unpriced: dict[str, None] = {}
        fallback: dict[str, None] = {}
        for model in models:
            name = model.removesuffix("-fast")
            resolution = self.prices.resolve(name)
            if resolution is None:
                unpriced.setdefault(name, None)
            elif resolution.estimated:
                fallback.setdefault(name, None)
        return list(unpriced), list(fallback)


def _bucket(entries: Iterable[Entry], sessions: set[str]) -> dict[str, list[Entry]]:
    rows: dict[str, list[Entry]] = {}
    if not sessions:
        return rows
    for entry in entries:
        if entry.session in sessions:
            rows.setdefault(entry.session, []).append(entry)
    return rows


def hash_roots(walked: Sequence[Root]) -> int:
    from k3sc.sessions.usage import id_hash

    return id_hash(*(f"{root.kind}:{Path(root.path).resolve()}" for root in walked))
