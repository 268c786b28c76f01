"""The agent process runner against real child processes: streaming, redaction, exit, timeout, kill."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import pytest

from k3sc.agent import process
from k3sc.errors import AgentError

# Generous bound so a regression that hangs fails the test instead of the whole run.
HANG_GUARD_S = 60
ENV = {"PATH": os.environ["PATH"]}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie (dead, not yet reaped by a container's init) counts as gone.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def alive(pid: int) -> bool:
    """True if `pid` still runs a few seconds from now.

    SIGKILL is asynchronous: the pipe can close a moment before the kernel marks the process
    dead, so give it time; an unkilled `sleep 300` is still there when the wait ends.
    """
    for _ in range(100):
        if not _running(pid):
            return False
        await asyncio.sleep(0.05)
    return True


async def run(
    argv: list[str], tmp_path: Path, *, limit: float = 30, grace: float = 5, secrets: tuple[str, ...] = ()
) -> tuple[process.ProcessResult, list[str]]:
    lines: list[str] = []
    result = await asyncio.wait_for(
        process.run(
            argv, cwd=tmp_path, env=ENV, timeout=limit, on_line=lines.append, secrets=secrets, grace=grace
        ),
        HANG_GUARD_S,
    )
    return result, lines


async def test_lines_arrive_while_the_process_runs(tmp_path: Path) -> None:
    # The child waits for a file that only the line callback creates: buffered output would
    # never reach the callback, and the child would report it.
    go = tmp_path / "go"
    argv = python(
        f"""
        import os, sys, time
        print("first", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        print("ready", flush=True)
        deadline = time.monotonic() + 20
        while not os.path.exists({str(go)!r}):
            if time.monotonic() > deadline:
                print("never streamed", flush=True)
                sys.exit(1)
            time.sleep(0.01)
        print("after", flush=True)
        """
    )
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":
            go.touch()

    result = await asyncio.wait_for(
        process.run(argv, cwd=tmp_path, env=ENV, timeout=30, on_line=on_line), HANG_GUARD_S
    )
    assert lines == ["first", "to stderr", "ready", "after"]
    assert (result.exit_code, result.timed_out, result.lines, result.tail) == (
        0,
        False,
        4,
        ("first", "to stderr", "ready", "after"),
    )


async def test_secrets_are_redacted_before_any_line_leaves(tmp_path: Path) -> None:
    auth_json = '{\n  "tokens": {\n    "access_token": "codex-access-0123456789"\n  }\n}'
    argv = python(
        """
        print("token ghp_abc123 and ghp_abc123 again")
        print("key sk-ant-XYZ inside a word: xsk-ant-XYZx")
        print('    "access_token": "codex-access-0123456789"')
        print("nothing secret")
        """
    )
    result, lines = await run(argv, tmp_path, secrets=("ghp_abc123", "sk-ant-XYZ", "", auth_json))
    assert lines == [
        "token *** and *** again",
        "key *** inside a word: x***x",
        "    ***",
        "nothing secret",
    ]
    assert result.tail == tuple(lines)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param("raise SystemExit(0)", 0, id="exit 0"),
        pytest.param("raise SystemExit(3)", 3, id="exit 3"),
        pytest.param("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9, id="killed by a signal"),
    ],
)
async def test_exit_codes(tmp_path: Path, code: str, expected: int) -> None:
    result, _ = await run(python(code), tmp_path)
    assert (result.exit_code, result.timed_out) == (expected, False)


async def test_tail_keeps_the_last_lines_and_the_last_line_needs_no_newline(tmp_path: Path) -> None:
    argv = python(
        """
        import sys
        for i in range(100):
            print(f"line {i}")
        sys.stdout.write("windows line\\r\\nno newline at the end")
        """
    )
    result, lines = await run(argv, tmp_path)
    assert lines[-2:] == ["windows line", "no newline at the end"]
    assert result.lines == 102
    assert result.tail == tuple(lines[-process.TAIL_LINES :])


async def test_huge_lines_are_delivered_whole_up_to_the_limit_then_in_pieces(tmp_path: Path) -> None:
    argv = python(
        f"""
        import sys
        sys.stdout.write("a" * 900_000 + "\\n")
        sys.stdout.write("b" * ({process.MAX_LINE_BYTES} + 10) + "\\n")
        sys.stdout.write("next\\n")
        """
    )
    _, lines = await run(argv, tmp_path)
    assert [(line[0], len(line)) for line in lines] == [
        ("a", 900_000),
        ("b", process.MAX_LINE_BYTES),
        ("b", 10),
        ("n", 4),
    ]


async def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    argv = python(
        """
        import sys
        sys.stdout.buffer.write(b"bad \\xff\\xfe bytes\\n" + "ok ✓\\n".encode())
        """
    )
    _, lines = await run(argv, tmp_path)
    assert lines == ["bad \ufffd\ufffd bytes", "ok ✓"]


async def test_only_the_given_environment_reaches_the_process(tmp_path: Path) -> None:
    argv = python(
        "import os; print(os.environ.get('ONLY'), os.environ.get('K3SC_HOME'), os.environ.get('HOME'))"
    )
    lines: list[str] = []
    await process.run(argv, cwd=tmp_path, env={**ENV, "ONLY": "x"}, timeout=30, on_line=lines.append)
    assert lines == ["x None None"]


# --------------------------------------------------------------------------- stopping


def spawns_grandchild(
    pidfile: Path, *, ignore_term: bool = False, then: str = "time.sleep(300)"
) -> list[str]:
    """A child that starts `sleep 300` (the grandchild), records both pids, then does `then`."""
    return python(
        f"""
        import os, signal, subprocess, time
        {"signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_term else ""}
        grandchild = subprocess.Popen(["sleep", "300"])
        with open({str(pidfile)!r}, "w") as f:
            f.write(f"{{os.getpid()}} {{grandchild.pid}}")
        print("started", flush=True)
        {then}
        """
    )


def pids(pidfile: Path) -> list[int]:
    return [int(p) for p in pidfile.read_text().split()]


@pytest.mark.parametrize("ignore_term", [False, True], ids=["SIGTERM is enough", "SIGTERM ignored, SIGKILL"])
async def test_timeout_kills_the_whole_process_group(tmp_path: Path, ignore_term: bool) -> None:
    pidfile = tmp_path / "pids"
    result, lines = await run(
        spawns_grandchild(pidfile, ignore_term=ignore_term), tmp_path, limit=1.5, grace=0.5
    )
    assert (result.exit_code, result.timed_out, lines) == (None, True, ["started"])
    assert [await alive(pid) for pid in pids(pidfile)] == [False, False]


async def test_what_the_agent_leaves_running_dies_when_it_exits(tmp_path: Path) -> None:
    # The grandchild keeps the output pipe open; the run must still end, and take it along.
    pidfile = tmp_path / "pids"
    result, _ = await run(spawns_grandchild(pidfile, then="raise SystemExit(0)"), tmp_path)
    assert (result.exit_code, result.timed_out) == (0, False)
    assert [await alive(pid) for pid in pids(pidfile)] == [False, False]


async def test_cancelling_the_run_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = asyncio.Event()

    def on_line(line: str) -> None:
        if line == "started":
            started.set()

    task = asyncio.create_task(
        process.run(spawns_grandchild(pidfile), cwd=tmp_path, env=ENV, timeout=300, on_line=on_line)
    )
    await asyncio.wait_for(started.wait(), HANG_GUARD_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [await alive(pid) for pid in pids(pidfile)] == [False, False]


async def test_an_error_in_the_line_callback_stops_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"

    def on_line(line: str) -> None:
        raise RuntimeError(f"cannot log {line!r}")

    with pytest.raises(RuntimeError, match="cannot log 'started'"):
        await asyncio.wait_for(
            process.run(spawns_grandchild(pidfile), cwd=tmp_path, env=ENV, timeout=300, on_line=on_line),
            HANG_GUARD_S,
        )
    assert [await alive(pid) for pid in pids(pidfile)] == [False, False]


# --------------------------------------------------------------------------- cannot start


@pytest.mark.parametrize(
    ("argv", "cwd", "message"),
    [
        pytest.param(
            ["no-such-agent-cli", "-p", "x"],
            None,
            "agent command 'no-such-agent-cli' not found",
            id="missing",
        ),
        pytest.param([], None, "the agent command is empty", id="empty argv"),
        pytest.param(
            [sys.executable], "missing-dir", "working directory .* does not exist", id="missing cwd"
        ),
        pytest.param(["/dev/null"], None, "is not executable", id="not executable"),
    ],
)
async def test_a_command_that_cannot_start_is_an_agent_error(
    tmp_path: Path, argv: list[str], cwd: str | None, message: str
) -> None:
    with pytest.raises(AgentError, match=message):
        await process.run(argv, cwd=tmp_path / cwd if cwd else tmp_path, env=ENV, timeout=5, on_line=print)
