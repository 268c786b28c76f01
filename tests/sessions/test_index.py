"""The incremental index: a warm pass reads only appended bytes and agrees with a cold one."""

from __future__ import annotations

import os
from pathlib import Path

from k3sc.sessions.index import CLAUDE, CODEX, Root, UsageIndex
from tests.sessions.builders import T0, assistant, codex_rollout, hours, jsonl, user, write


def layout(tmp_path: Path) -> tuple[Path, list[Root]]:
    claude = tmp_path / "claude" / "projects"
    codex = tmp_path / "codex" / "sessions"
    claude.mkdir(parents=True)
    codex.mkdir(parents=True)
    return tmp_path, [Root(claude, CLAUDE), Root(codex, CODEX)]


def fill(claude: Path, codex: Path) -> None:
    project = claude / "-home-dev-app"
    write(project / "s-1.jsonl", user(), assistant(output=1), assistant(output=90), user(size=5000))
    write(
        project / "s-1" / "subagents" / "agent-a1.jsonl", assistant(message="m-sub", sidechain=True, output=7)
    )
    write(project / "agent-flat.jsonl", assistant(message="m-flat", session="s-1", output=3))
    write(project / "s-2.jsonl", assistant(message="m-2", at=T0 + hours(1), output=40))
    write(
        codex
        / "2026"
        / "11"
        / "27"
        / "rollout-2026-11-27T10-00-00-0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.jsonl",
        *codex_rollout("0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "/w"),
    )


def rows(index: UsageIndex) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    return (
        sorted((e.session, e.output) for e in index.claude.entries),
        sorted((e.session, e.output) for e in index.codex),
    )


def test_sessions_are_attributed_from_the_path(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    index = UsageIndex(roots, tmp_path / "cache.bin")
    index.refresh()
    assert rows(index) == (
        [("s-1", 3), ("s-1", 7), ("s-1", 90), ("s-2", 40)],
        [("0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 50), ("0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 100)],
    )


def test_a_warm_pass_with_nothing_new_parses_nothing(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    UsageIndex(roots, tmp_path / "cache.bin").refresh()
    warm = UsageIndex(roots, tmp_path / "cache.bin")
    stats = warm.refresh()
    assert (stats.files, stats.parsed_files, stats.parsed_bytes, stats.cold) == (5, 0, 0, False)
    assert len(warm.claude.entries) == 4


def test_a_warm_pass_reads_only_the_appended_lines_and_equals_a_cold_pass(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    cache = tmp_path / "cache.bin"
    UsageIndex(roots, cache).refresh()
    main = roots[0].path / "-home-dev-app" / "s-1.jsonl"
    appended = jsonl(
        assistant(message="m-3", at=T0 + hours(2), output=11), assistant(message="msg_01", output=95)
    )
    with main.open("ab") as handle:
        handle.write(appended)
    warm = UsageIndex(roots, cache)
    stats = warm.refresh()
    assert (stats.parsed_files, stats.parsed_bytes) == (1, len(appended))
    cold = UsageIndex(roots, None)
    cold.refresh()
    assert rows(warm) == rows(cold)
    assert ("s-1", 95) in rows(warm)[0] and ("s-1", 90) not in rows(warm)[
        0
    ]  # the larger total replaced in place


def test_a_line_still_being_written_waits_for_the_next_pass(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    main = roots[0].path / "-p" / "s-1.jsonl"
    line = jsonl(assistant(output=5))
    main.parent.mkdir(parents=True)
    main.write_bytes(line[:30])
    index = UsageIndex(roots, tmp_path / "cache.bin")
    assert index.refresh().parsed_bytes == 0
    with main.open("ab") as handle:
        handle.write(line[30:])
    index.refresh()
    assert rows(index)[0] == [("s-1", 5)]


def test_a_rewritten_file_forces_a_cold_rebuild(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    cache = tmp_path / "cache.bin"
    UsageIndex(roots, cache).refresh()
    write(roots[0].path / "-home-dev-app" / "s-2.jsonl", assistant(message="m-new", output=1))
    index = UsageIndex(roots, cache)
    assert index.refresh().cold
    assert ("s-2", 40) not in rows(index)[0] and ("s-2", 1) in rows(index)[0]


def test_rows_of_a_deleted_transcript_are_kept(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    cache = tmp_path / "cache.bin"
    UsageIndex(roots, cache).refresh()
    os.remove(roots[0].path / "-home-dev-app" / "s-2.jsonl")
    index = UsageIndex(roots, cache)
    index.refresh()
    assert ("s-2", 40) in rows(index)[0]
    assert index.stats.files == 4


def test_a_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    cache = tmp_path / "cache.bin"
    cache.write_bytes(b"\x00garbage")
    index = UsageIndex(roots, cache)
    assert index.refresh().parsed_files == 5
    assert len(index.claude.entries) == 4


def test_a_cache_for_other_roots_is_ignored(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    cache = tmp_path / "cache.bin"
    UsageIndex(roots, cache).refresh()
    only_claude = UsageIndex(roots[:1], cache)
    assert only_claude.refresh().parsed_files == 4


def test_worker_processes_give_the_serial_result(tmp_path: Path) -> None:
    _, roots = layout(tmp_path)
    fill(roots[0].path, roots[1].path)
    serial = UsageIndex(roots, None, workers=1)
    serial.refresh()
    parallel = UsageIndex(roots, None, workers=2, parallel_bytes=1)
    stats = parallel.refresh()
    assert stats.workers == 2
    assert parallel.claude.entries == serial.claude.entries and parallel.codex == serial.codex


def test_the_stored_columns_keep_every_field_and_sort_by_time() -> None:
    from k3sc.sessions.table import table_of
    from tests.sessions.builders import entry

    rows = [
        entry(T0 + hours(2), message="b", output=5, cost=0.25, speed="fast", sidechain=True, session="x"),
        entry(T0, message=None, request=None, cache_1h=7, model="<synthetic>"),
        entry(T0 + hours(1), message="c", cache_5m=3, cache_read=9, model="gpt-5.3-codex", session="y"),
    ]
    assert table_of(rows).entries() == sorted(rows, key=lambda e: e.ts)
