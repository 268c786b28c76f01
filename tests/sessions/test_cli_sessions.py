"""`k3sc sessions --once/--json` end to end: real child processes registered the way Claude Code
registers itself, synthetic transcripts, a fixed `--now`, compared with a golden text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from k3sc.sessions import processes
from tests.cli_helpers import invoke
from tests.sessions.builders import assistant, codex_rollout, hours, user, write

GOLDEN = Path(__file__).parent / "golden"
NOW = "2026-11-27T13:40:00Z"
DAY = datetime(2026, 11, 27, tzinfo=UTC)
FIRST = "aaaaaaaa-1111-4111-8111-111111111111"
CLEARED = "bbbbbbbb-2222-4222-8222-222222222222"
CODEX_ID = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute) + hours(24 * day)


def proc_start(pid: int) -> str:
    """What Claude Code writes as `procStart` for this pid on this platform."""
    created = psutil.Process(pid).create_time()
    if sys.platform == "win32":
        return str(int((created + 11_644_473_600) * 10_000_000))
    if sys.platform == "darwin":
        return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(created))
    return str(round((created - psutil.boot_time()) * os.sysconf("SC_CLK_TCK")))


def sleeper(cwd: Path, name: str | None = None) -> subprocess.Popen[bytes]:
    """A child process that lives for the test; `name` gives it that executable name (a symlink)."""
    exe = sys.executable
    if name is not None:
        link = cwd.parent / name
        link.symlink_to(sys.executable)
        exe = str(link)
    return subprocess.Popen([exe, "-c", "import time; time.sleep(120)"], cwd=cwd)


@dataclass
class World:
    root: Path
    env: dict[str, str]
    claude_pid: int
    codex_pid: int | None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """One registered Claude session that ran /clear (two transcripts), a subagent, an old completed
    block elsewhere (the high-water mark), and, off Windows, a Codex process with its rollout."""
    if processes.scan(set())[0]:
        pytest.skip("real Claude Code or Codex processes run on this machine and would change the output")
    claude = tmp_path / "claude"
    app = tmp_path / "work" / "app"
    app.mkdir(parents=True)
    project = claude / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(app))
    write(
        project / f"{FIRST}.jsonl",
        user(at(10, 5), FIRST),
        assistant(at=at(10, 6), session=FIRST, message="m1", request="r1", output=1, cache_1h=20_000),
        assistant(at=at(10, 6), session=FIRST, message="m1", request="r1", output=380, cache_1h=20_000),
        assistant(
            at=at(11, 30),
            session=FIRST,
            message="m2",
            request="r2",
            output=900,
            cache_read=40_000,
            cache_5m=2_000,
        ),
    )
    write(
        project / FIRST / "subagents" / "agent-x1.jsonl",
        assistant(
            at=at(11, 0),
            session=FIRST,
            message="m-sub",
            request="r-sub",
            model="claude-haiku-4-5-20251001",
            output=300,
            input=5_000,
            sidechain=True,
        ),
    )
    write(
        project / f"{CLEARED}.jsonl",
        assistant(
            at=at(12, 40), session=CLEARED, message="m3", request="r3", output=1_200, cache_read=60_000
        ),
        assistant(
            at=at(13, 10),
            session=CLEARED,
            message="m4",
            request="r4",
            model="claude-sonnet-4-5-20250929",
            output=2_000,
            cache_read=80_000,
        ),
    )
    os.utime(project / f"{FIRST}.jsonl", (at(11, 30).timestamp(),) * 2)
    os.utime(project / f"{CLEARED}.jsonl", (at(13, 10).timestamp(),) * 2)
    old = claude / "projects" / "-elsewhere" / "old.jsonl"
    write(
        old,
        *(
            assistant(at=at(9, m, day=-1), session="old", message=f"o{m}", request=f"q{m}", output=100_000)
            for m in range(3)
        ),
    )
    os.utime(old, (at(10, day=-1).timestamp(),) * 2)

    child = sleeper(app)
    started_ms = int(at(10).timestamp() * 1000)
    (claude / "sessions").mkdir()
    (claude / "sessions" / f"{child.pid}.json").write_text(
        json.dumps(
            {
                "pid": child.pid,
                "sessionId": FIRST,
                "cwd": str(app),
                "startedAt": started_ms,
                "procStart": proc_start(child.pid),
                "kind": "interactive",
                "entrypoint": "cli",
                "name": "app",
                "status": "waiting",
                "waitingFor": "approve Bash",
                "version": "2.1.280",
            }
        )
    )
    # A crashed session's leftover file: its pid is gone.
    (claude / "sessions" / "999999.json").write_text(
        json.dumps({"pid": 999999, "sessionId": "gone", "startedAt": 1})
    )

    codex_home = tmp_path / "codex"
    codex_child = None
    if sys.platform != "win32":
        api = tmp_path / "work" / "api"
        api.mkdir()
        codex_child = sleeper(api, name="codex")
        rollout = (
            codex_home / "sessions" / "2026" / "11" / "27" / f"rollout-2026-11-27T12-00-00-{CODEX_ID}.jsonl"
        )
        write(rollout, *codex_rollout(CODEX_ID, str(api), at=at(12)))
    env = {
        "CLAUDE_CONFIG_DIR": str(claude),
        "CODEX_HOME": str(codex_home),
        "K3SC_CLAUDE_EXTRA_DIRS": None,
        "HOME": str(tmp_path / "home"),
    }
    try:
        yield World(tmp_path, env, child.pid, codex_child.pid if codex_child else None)  # type: ignore[arg-type]
    finally:
        for process in (child, codex_child):
            if process is not None:
                process.kill()
                process.wait()


def normalised(output: str, world: World) -> str:
    text = output.replace(str(world.root), "<TMP>").replace(f"PID {world.claude_pid} ", "PID <CLAUDE> ")
    if world.codex_pid is not None:
        text = text.replace(f"PID {world.codex_pid} ", "PID <CODEX> ")
        started = datetime.fromtimestamp(
            round(psutil.Process(world.codex_pid).create_time() * 1000) / 1000, UTC
        )
        text = text.replace(started.strftime("%Y-%m-%d %I:%M:%S %p"), "<CODEX START>")
    return text


def test_once_matches_the_golden_snapshot(world: World) -> None:
    result = invoke(["sessions", "--once", "--now", NOW, "--timezone", "UTC"], env=world.env)
    if world.codex_pid is None:
        pytest.skip("the Codex stand-in is a symlink named codex, which Windows does not allow unprivileged")
    expected = (GOLDEN / "sessions_once.txt").read_text(encoding="utf-8")
    assert normalised(result.stdout, world) == expected


def test_json_carries_the_same_snapshot(world: World) -> None:
    result = invoke(["sessions", "--json", "--now", NOW], env=world.env)
    document = json.loads(result.stdout)
    claude = next(s for s in document["sessions"] if s["agent"] == "claude")
    assert (claude["sessionId"], claude["activeSessionId"], claude["mappingConfidence"]) == (
        FIRST,
        CLEARED,
        "registry+detected",
    )
    assert claude["sessionIds"] == [FIRST, CLEARED]
    assert claude["usage"]["outputTokens"] == 380 + 900 + 300 + 1_200 + 2_000
    assert claude["waitingFor"] == "approve Bash"
    block = document["activeBlock"]
    assert (block["startTime"], block["source"], block["limit"]["tokens"]) == (
        "2026-11-27T10:00:00.000Z",
        "local",
        300_000 + 3 * 3,
    )
    assert document["roots"]["claude"] == [world.env["CLAUDE_CONFIG_DIR"]]
    assert document["pricing"]["unpricedModels"] == []
    if world.codex_pid:
        codex = next(s for s in document["sessions"] if s["agent"] == "codex")
        assert (codex["sessionId"], codex["usage"]["outputTokens"]) == (CODEX_ID, 150)


def test_timings_say_where_the_time_went_and_a_warm_run_parses_nothing(world: World) -> None:
    cold = invoke(["sessions", "--timings", "--now", NOW], env=world.env)
    assert "=== TIMINGS ===" in cold.stdout and "(cold)" in cold.stdout
    warm = invoke(["sessions", "--timings", "--now", NOW], env=world.env)
    assert "Parsed        : 0.0 MB in 0 files" in warm.stdout
    assert "    Timing  : usage " in warm.stdout


def test_no_running_session_exits_0_and_still_shows_the_block(tmp_path: Path) -> None:
    if processes.scan(set())[0]:
        pytest.skip("real Claude Code or Codex processes run on this machine")
    claude = tmp_path / "claude"
    write(claude / "projects" / "-p" / "s.jsonl", assistant(at=at(13), output=500))
    env = {"CLAUDE_CONFIG_DIR": str(claude), "CODEX_HOME": str(tmp_path / "none"), "HOME": str(tmp_path)}
    result = invoke(["sessions", "--once", "--now", NOW, "--timezone", "UTC"], env=env)
    assert "Sessions: 0 |" in result.stdout
    assert "Started : 2026-11-27 01:00:00 PM" in result.stdout
    assert "No live sessions: no running claude processes found." in result.stdout


def test_the_high_water_mark_outlives_deleted_transcripts(tmp_path: Path) -> None:
    claude = tmp_path / "claude"
    old = write(claude / "projects" / "-p" / "old.jsonl", assistant(at=at(2, day=-2), output=777_000))
    write(claude / "projects" / "-p" / "new.jsonl", assistant(at=at(13), message="n", output=500))
    env = {"CLAUDE_CONFIG_DIR": str(claude), "CODEX_HOME": str(tmp_path / "none"), "HOME": str(tmp_path)}
    assert "limit=777,003" in invoke(["sessions", "--once", "--now", NOW], env=env).stdout
    old.unlink()
    env["K3SC_CACHE_DIR"] = str(tmp_path / "fresh-cache")  # the index forgets the rows too
    assert "limit=777,003" in invoke(["sessions", "--once", "--now", NOW], env=env).stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(
            ["--once", "--refresh", "0"],
            {},
            "--refresh must be between 1 and 60 seconds",
            id="refresh out of range",
        ),
        pytest.param(
            ["--once", "--timezone", "Mars/Base"],
            {},
            "--timezone 'Mars/Base' is not a known IANA time zone",
            id="unknown zone",
        ),
        pytest.param(
            ["--once", "--mode", "guess"],
            {},
            "--mode must be one of auto, calculate, display",
            id="unknown cost mode",
        ),
        pytest.param(
            ["--once", "--now", "noon"], {}, "--now 'noon' is not an ISO 8601 time", id="unreadable --now"
        ),
        pytest.param(
            ["--once"],
            {"CLAUDE_CONFIG_DIR": "/nonexistent/a,/nonexistent/b"},
            "No Claude data directory found in CLAUDE_CONFIG_DIR",
            id="CLAUDE_CONFIG_DIR without projects",
        ),
        pytest.param([], {}, "the live view needs a terminal", id="live view without a terminal"),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_2(args: list[str], env: dict[str, str], message: str) -> None:
    result = invoke(["sessions", *args], code=2, contains=[message], env=env)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
