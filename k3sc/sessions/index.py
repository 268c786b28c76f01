"""The incremental usage index: byte offsets per transcript, so a warm pass reads only what was appended.

Every pass stats each `*.jsonl` under the Claude `projects/` and Codex `sessions/` roots. An
unchanged file is skipped; a grown one (same inode, same first KiB) is read from its stored
offset; a new one from 0. A file that shrank or was replaced forces a cold rebuild, because its
old rows may have won dedup collisions that must now be replayed. Only complete lines are
consumed; a line still being written waits for the next pass. Rows of deleted transcripts are
kept: the 5-hour history outlives Claude Code's 30-day cleanup.

The index is saved (msgpack, written to a temp file and renamed) only when something changed; on
any decode or version error it is thrown away and rebuilt. Two k3sc processes writing it at once
are harmless: last writer wins, and it is only a cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from k3sc.sessions import transcripts
from k3sc.sessions.blocks import Block, identify
from k3sc.sessions.dedup import Deduper
from k3sc.sessions.table import Columns, Table, columns_of, table_of
from k3sc.sessions.usage import Entry

VERSION = 2
CHUNK = 16 * 1024 * 1024
HEAD = 1024
PARALLEL_BYTES = 64 * 1024 * 1024  # below this, starting worker processes costs more than it saves
CLAUDE, CODEX = "claude", "codex"


class FileState(msgspec.Struct, array_like=True):
    size: int
    mtime_ns: int
    ino: int
    offset: int  # just after the last complete line consumed
    head: int  # hash of the first `head_len` bytes: a different one means the file was rewritten
    head_len: int
    kind: str
    session: str  # "" for flat subagent files, whose lines name their session
    first_ts: int = 0
    cwd: str = ""
    codex_model: str = ""
    codex_session: str = ""
    codex_totals: tuple[int, int, int, int] | None = None


class _Stored(msgspec.Struct):
    version: int
    roots: list[str]
    files: dict[str, FileState]
    claude: Columns
    codex: list[Entry]
    blocks: list[Block] | None = None  # identified over `claude`; reused while it is unchanged


@dataclass
class PassStats:
    """What one pass cost: the figures behind `--timings`."""

    load_ms: float = 0.0
    walk_ms: float = 0.0
    parse_ms: float = 0.0
    save_ms: float = 0.0
    files: int = 0
    parsed_files: int = 0
    parsed_bytes: int = 0
    cold: bool = False
    workers: int = 0


@dataclass(frozen=True)
class Root:
    path: Path  # the dir walked: `<claude root>/projects` or `<codex home>/sessions`
    kind: str


@dataclass
class _Job:
    path: str
    kind: str
    session: str
    offset: int
    state: FileState  # the new stat result, offset still the old one


@dataclass
class UsageIndex:
    """Deduplicated Claude rows and Codex rows of every transcript under `roots`."""

    roots: Sequence[Root]
    cache_file: Path | None
    files: dict[str, FileState] = field(default_factory=dict)
    codex: list[Entry] = field(default_factory=list)
    stats: PassStats = field(default_factory=PassStats)
    _loaded: bool = False
    workers: int | None = None  # None: one per core for a big cold parse
    parallel_bytes: int = PARALLEL_BYTES
    # The Claude rows live in one of two forms: the table as loaded (cheap, read-only), or, once new
    # lines must be merged, a Deduper of Entry objects. Each is derived from the other on demand.
    _table: Table | None = None
    _deduper: Deduper | None = None
    _stored: Columns | None = None  # the columns as loaded, saved again as they are if unchanged
    _blocks: list[Block] | None = None

    @property
    def claude(self) -> Deduper:
        """The rows as a Deduper (built from the loaded table the first time new lines arrive)."""
        if self._deduper is None:
            self._deduper = Deduper(self._table.entries() if self._table is not None else ())
            self._table = None
        return self._deduper

    def claude_table(self) -> Table:
        """The rows sorted by time, column-wise."""
        if self._table is None:
            self._table = table_of(self._deduper.entries if self._deduper is not None else [])
        return self._table

    def blocks(self, now_ms: int) -> list[Block]:
        """The 5-hour blocks of the Claude rows (judged active at `now_ms` by the caller)."""
        if self._blocks is None:
            table = self.claude_table()
            self._blocks = identify(table.ts, table.totals(), now_ms)
        return self._blocks

    def _reset(self) -> None:
        self._blocks = None
        self.files, self.codex, self._table, self._deduper, self._stored = {}, [], None, Deduper(), None

    # ------------------------------------------------------------ persistence

    def _root_names(self) -> list[str]:
        return [f"{root.kind}:{root.path}" for root in self.roots]

    def load(self) -> None:
        started = time.perf_counter()
        self._loaded = True
        if self.cache_file is None or not self.cache_file.is_file():
            return
        try:
            stored = msgspec.msgpack.decode(self.cache_file.read_bytes(), type=_Stored)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return  # a corrupt or old cache is rebuilt, never trusted
        if stored.version != VERSION or stored.roots != self._root_names():
            return
        self.files, self.codex = stored.files, stored.codex
        self._table, self._deduper, self._stored = Table(stored.claude), None, stored.claude
        self._blocks = stored.blocks
        self.stats.load_ms = (time.perf_counter() - started) * 1000

    def save(self) -> None:
        if self.cache_file is None:
            return
        started = time.perf_counter()
        if self._deduper is not None:
            rows = columns_of(self._deduper.entries)
            self._table = Table(rows)  # valid until the next new line; spares the caller a rebuild
            self._stored = rows
        else:
            rows = self._stored if self._stored is not None else columns_of([])
        stored = _Stored(VERSION, self._root_names(), self.files, rows, self.codex, self.blocks(0))
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.cache_file.parent, prefix=".sessions-index-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(msgspec.msgpack.encode(stored))
            os.replace(temp, self.cache_file)
        except OSError:
            Path(temp).unlink(missing_ok=True)
            raise
        self.stats.save_ms = (time.perf_counter() - started) * 1000

    # ------------------------------------------------------------ one pass

    def refresh(self) -> PassStats:
        """Bring the index up to date with the files on disk; save it if anything changed."""
        self.stats = PassStats()
        if not self._loaded:
            self.load()
        started = time.perf_counter()
        seen: dict[str, tuple[os.stat_result, Root]] = dict(_walk(self.roots))
        self.stats.walk_ms = (time.perf_counter() - started) * 1000
        self.stats.files = len(seen)
        jobs, rebuild = self._plan(seen)
        if rebuild:
            self._reset()
            jobs, _ = self._plan(seen)
            self.stats.cold = True
        elif not self.files and jobs:
            self.stats.cold = True
        vanished = set(self.files) - set(seen)
        for path in vanished:
            del self.files[path]  # its rows stay: history outlives the transcript
        started = time.perf_counter()
        if jobs:
            self._run(jobs)
        self.stats.parse_ms = (time.perf_counter() - started) * 1000
        touched = [
            path
            for path, (st, _) in seen.items()
            if path in self.files and self.files[path].mtime_ns != st.st_mtime_ns
        ]
        for path in touched:
            self.files[path].mtime_ns = seen[path][0].st_mtime_ns
        if jobs or vanished or touched:
            # A read-only cache dir costs speed next time, not correctness now.
            with contextlib.suppress(OSError):
                self.save()
        return self.stats

    def _plan(self, seen: dict[str, tuple[os.stat_result, Root]]) -> tuple[list[_Job], bool]:
        jobs: list[_Job] = []
        for path in sorted(seen):
            st, root = seen[path]
            old = self.files.get(path)
            if old is not None and old.size == st.st_size and old.ino == st.st_ino:
                continue  # nothing appended (a touch only updates the stored mtime)
            if old is not None and (
                st.st_size < old.size
                or st.st_ino != old.ino
                or (old.head_len and _head(path, old.head_len) != old.head)
            ):
                return [], True
            session = session_of(root, Path(path))
            state = FileState(
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                ino=st.st_ino,
                offset=old.offset if old else 0,
                head=old.head if old else 0,
                head_len=old.head_len if old else 0,
                kind=root.kind,
                session=session,
                first_ts=old.first_ts if old else 0,
                cwd=old.cwd if old else "",
                codex_model=old.codex_model if old else "",
                codex_session=old.codex_session if old else "",
                codex_totals=old.codex_totals if old else None,
            )
            jobs.append(_Job(path, root.kind, session, state.offset, state))
        return jobs, False

    def _run(self, jobs: list[_Job]) -> None:
        pending = sum(job.state.size - job.offset for job in jobs)
        workers = self.workers if self.workers is not None else (os.cpu_count() or 1)
        results: list[tuple[FileState, list[Entry], int]]
        if pending >= self.parallel_bytes and workers > 1 and len(jobs) > 1:
            results = _parse_parallel(jobs, workers)
            self.stats.workers = workers
        else:
            results = [parse_file(job) for job in jobs]
        for job, (state, rows, consumed) in zip(jobs, results, strict=True):
            self.files[job.path] = state
            self.stats.parsed_bytes += consumed
            self.stats.parsed_files += 1
            if job.kind == CLAUDE:
                if rows:
                    self.claude.extend(rows)
                    self._table = self._blocks = None
            else:
                self.codex.extend(rows)


# ------------------------------------------------------------------ files


def session_of(root: Root, path: Path) -> str:
    """The session a transcript belongs to, from its place under the root (ccusage's rule)."""
    if root.kind == CODEX:
        stem = path.stem
        return stem[-36:] if len(stem) >= 36 else stem  # rollout-<time>-<uuid>.jsonl
    parts = path.relative_to(root.path).parts
    if len(parts) == 2:
        return "" if parts[1].startswith("agent-") else path.stem
    if len(parts) >= 4 and parts[-2] == "subagents":
        return parts[-3]
    return path.parent.name


def _walk(roots: Sequence[Root]) -> Iterator[tuple[str, tuple[os.stat_result, Root]]]:
    for root in roots:
        stack = [str(root.path)]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    for item in listing:
                        if item.is_dir(follow_symlinks=False):
                            stack.append(item.path)
                        elif item.name.endswith(".jsonl") and item.is_file():
                            try:
                                yield item.path, (item.stat(), root)
                            except OSError:
                                continue
            except OSError:
                continue


def _head(path: str, length: int) -> int:
    try:
        with open(path, "rb") as handle:
            data = handle.read(length)
    except OSError:
        return -1
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def parse_file(job: _Job) -> tuple[FileState, list[Entry], int]:
    """Read a file from the job's offset to its last complete line; return the new state, the rows
    and the bytes consumed."""
    state = job.state
    rows: list[Entry] = []
    codex = transcripts.CodexState(state.codex_model, state.cwd, state.codex_session, state.codex_totals)
    consumed = 0
    try:
        with open(job.path, "rb") as handle:
            handle.seek(job.offset)
            carry = b""
            at_start = job.offset == 0
            while True:
                chunk = handle.read(CHUNK)
                if not chunk:
                    break
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                complete, carry = data[:cut], data[cut:]
                if job.kind == CLAUDE:
                    rows.extend(transcripts.claude_entries(complete, job.session, at_file_start=at_start))
                else:
                    rows.extend(transcripts.codex_entries(complete, job.session, codex))
                at_start = False
                consumed += cut
    except OSError:
        pass  # vanished or unreadable mid-pass: keep what was read, retry the rest next pass
    state.offset = job.offset + consumed
    if state.head_len < HEAD and state.offset > state.head_len:
        state.head_len = min(HEAD, state.offset)
        state.head = _head(job.path, state.head_len)
    if rows and (state.first_ts == 0 or rows[0].ts < state.first_ts):
        state.first_ts = min(row.ts for row in rows)
    state.cwd, state.codex_model, state.codex_session = codex.cwd, codex.model, codex.session
    state.codex_totals = codex.totals
    return state, rows, consumed


def _parse_chunk(jobs: list[_Job]) -> bytes:
    """Worker body: parse files, return the results msgpack-encoded (cheaper than pickling structs)."""
    return msgspec.msgpack.encode([parse_file(job) for job in jobs])


def _parse_parallel(jobs: list[_Job], workers: int) -> list[tuple[FileState, list[Entry], int]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Balance by bytes still to read, largest first, as ccusage does; merge back in path order so
    # dedup sees the same order as a serial pass.
    buckets: list[list[int]] = [[] for _ in range(min(workers, len(jobs)))]
    loads = [0] * len(buckets)
    for index in sorted(range(len(jobs)), key=lambda i: jobs[i].offset - jobs[i].state.size):
        target = loads.index(min(loads))
        buckets[target].append(index)
        loads[target] += jobs[index].state.size - jobs[index].offset
    decode = msgspec.msgpack.Decoder(list[tuple[FileState, list[Entry], int]])
    results: list[tuple[FileState, list[Entry], int] | None] = [None] * len(jobs)
    # spawn, not fork: the TUI calls this from a worker thread, and forking a threaded process is unsafe.
    with ProcessPoolExecutor(len(buckets), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_parse_chunk, [jobs[i] for i in bucket]) for bucket in buckets]
        for bucket, future in zip(buckets, futures, strict=True):
            for index, result in zip(bucket, decode.decode(future.result()), strict=True):
                results[index] = result
    return [result for result in results if result is not None]
