"""Finding sessions: the registry's identity check, the process classifier, the transcript mapping."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from k3sc.sessions import mapping, registry
from k3sc.sessions.mapping import Confidence, Live, Mapped, Transcript
from k3sc.sessions.processes import Agent, classify

# ------------------------------------------------------------------ registry


def test_a_registry_file_reads_tolerantly(tmp_path: Path) -> None:
    raw = (
        b'\xef\xbb\xbf{"pid":50224,"sessionId":"c172","cwd":"/u/src","startedAt":1781214817047,'
        b'"procStart":"Thu Jun 11 21:53:36 2026","kind":"interactive","entrypoint":"cli","status":"waiting",'
        b'"waitingFor":"approve Bash","peerProtocol":1,"someFutureField":{"x":1}}'
    )
    parsed = registry.parse(raw, tmp_path / "50224.json")
    assert isinstance(parsed, registry.Registration)
    assert (parsed.pid, parsed.session_id, parsed.status, parsed.waiting_for) == (
        50224,
        "c172",
        "waiting",
        "approve Bash",
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(b'{"pid": 1}', "session metadata missing sessionId", id="no sessionId"),
        pytest.param(b"{not json", "read metadata: ", id="not JSON"),
        pytest.param(
            b'{"pid":"x","sessionId":"s"}', "read metadata: pid or startedAt is not a number", id="bad pid"
        ),
    ],
)
def test_unusable_registry_files_say_why(raw: bytes, error: str, tmp_path: Path) -> None:
    parsed = registry.parse(raw, tmp_path / "1.json")
    assert isinstance(parsed, str) and parsed.startswith(error)


BOOT = 1_780_000_000.0


@pytest.mark.parametrize(
    ("proc_start", "expected"),
    [
        pytest.param("123456", BOOT + 1234.56, id="Linux start ticks since boot"),
        pytest.param(
            "134313811658518463", 134313811658518463 / 1e7 - 11_644_473_600, id="a Windows FILETIME"
        ),
        pytest.param(
            "Thu Jun 11 21:53:36 2026",
            time.mktime(time.strptime("Thu Jun 11 21:53:36 2026", "%a %b %d %H:%M:%S %Y")),
            id="macOS lstart in local time",
        ),
        pytest.param("soon", None, id="anything else is unreadable"),
    ],
)
def test_proc_start_is_read_per_platform(proc_start: str, expected: float | None) -> None:
    assert registry.proc_start_epoch(proc_start, BOOT, 100) == (pytest.approx(expected) if expected else None)


def reg(**fields: object) -> registry.Registration:
    return registry.Registration(pid=1, session_id="s", path=Path("1.json"), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("registration", "create_time", "same"),
    [
        pytest.param(reg(proc_start="123456"), BOOT + 1234.56, True, id="matching start ticks"),
        pytest.param(reg(proc_start="123456"), BOOT + 4000, False, id="a reused pid has another start time"),
        pytest.param(
            reg(started_at_ms=int((BOOT + 10) * 1000)), BOOT + 8, True, id="registered just after start"
        ),
        pytest.param(
            reg(started_at_ms=int((BOOT + 10) * 1000)),
            BOOT + 20,
            False,
            id="registered before the process existed",
        ),
        pytest.param(reg(), BOOT, False, id="nothing to check against"),
    ],
)
def test_identity_check(registration: registry.Registration, create_time: float, same: bool) -> None:
    assert registry.same_process(registration, create_time, BOOT, 100) is same


def test_a_stale_registry_file_of_the_test_process_is_rejected(tmp_path: Path) -> None:
    import os

    import psutil

    me = psutil.Process(os.getpid())
    stale = reg(started_at_ms=int((me.create_time() - 3600) * 1000))
    assert not registry.same_process(stale, me.create_time(), psutil.boot_time(), 100)


# ------------------------------------------------------------------ classifier

V = "/home/u/.local/share/claude/versions/2.1.196"


@pytest.mark.parametrize(
    ("name", "exe", "cmdline", "registered", "windows", "agent"),
    [
        pytest.param(
            "claude",
            "/usr/bin/node",
            ("claude",),
            False,
            False,
            Agent.CLAUDE,
            id="linux npm install titled claude",
        ),
        pytest.param(
            "2.1.196",
            V,
            (V, "--resume"),
            False,
            False,
            Agent.CLAUDE,
            id="native installer named by its version",
        ),
        pytest.param(
            "claude",
            "/opt/homebrew/lib/node_modules/@anthropic-ai/claude-code/bin/claude",
            ("claude",),
            False,
            False,
            Agent.CLAUDE,
            id="npm native binary on macOS",
        ),
        pytest.param(
            "node",
            "/usr/bin/node",
            ("node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p", "hi"),
            False,
            False,
            Agent.CLAUDE,
            id="old JS install under node",
        ),
        pytest.param(
            "Claude.exe",
            r"C:\Users\u\.local\bin\claude.exe",
            (r"C:\Users\u\.local\bin\claude.exe",),
            False,
            True,
            Agent.CLAUDE,
            id="windows names ignore case",
        ),
        pytest.param(
            "Claude.exe",
            r"C:\Users\u\AppData\Local\AnthropicClaude\app-1.0\Claude.exe",
            ("Claude.exe",),
            False,
            True,
            None,
            id="the Claude Desktop app on Windows",
        ),
        pytest.param(
            "Claude",
            "/Applications/Claude.app/Contents/MacOS/Claude",
            ("Claude",),
            False,
            False,
            None,
            id="the Claude Desktop app on macOS",
        ),
        pytest.param("claude", V, (V, "--bg-pty-host"), False, False, None, id="the PTY host"),
        pytest.param("claude", V, (V, "--bg-spare"), False, False, None, id="an unclaimed spare"),
        pytest.param(
            "claude", V, (V, "--bg-spare"), True, False, Agent.CLAUDE, id="a registered spare hosts a session"
        ),
        pytest.param("claude", V, (V, "mcp", "serve"), False, False, None, id="claude mcp serve"),
        pytest.param("claude", V, (V, "doctor"), False, False, None, id="claude doctor"),
        pytest.param("codex", "/usr/local/bin/codex", ("codex",), False, False, Agent.CODEX, id="codex"),
        pytest.param(
            "codex",
            "/usr/local/bin/codex",
            ("codex", "exec", "--json", "fix it"),
            False,
            False,
            Agent.CODEX,
            id="codex exec",
        ),
        pytest.param(
            "codex", "/usr/local/bin/codex", ("codex", "login"), False, False, None, id="codex login"
        ),
        pytest.param(
            "node",
            "/usr/bin/node",
            ("node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"),
            False,
            False,
            Agent.CODEX,
            id="codex under node",
        ),
        pytest.param(
            "bash",
            "/bin/bash",
            ("bash", "-c", "claude"),
            False,
            False,
            None,
            id="a shell that mentions claude",
        ),
        pytest.param(
            "claude-helper",
            "/usr/bin/claude-helper",
            ("claude-helper",),
            False,
            False,
            None,
            id="a look-alike name",
        ),
    ],
)
def test_classify(
    name: str, exe: str, cmdline: tuple[str, ...], registered: bool, windows: bool, agent: Agent | None
) -> None:
    assert classify(name, exe, cmdline, registered=registered, windows=windows) is agent


# ------------------------------------------------------------------ mapping

ROOT = "/home/u/.claude"
FOLDER = f"{ROOT}/projects/-home-u-app"
START = 1_000_000_000


def t(session: str, mtime: int, first: int | None = None) -> Transcript:
    return Transcript(f"{FOLDER}/{session}.jsonl", session, mtime, START + 1 if first is None else first)


@pytest.mark.parametrize(
    ("processes", "files", "expected"),
    [
        pytest.param(
            [Live(1, "/home/u/app", START, registered_session="a")],
            [t("a", START + 50)],
            {1: Mapped("a", ("a",), Confidence.REGISTRY)},
            id="the registry's transcript is the active one",
        ),
        pytest.param(
            [Live(1, "/home/u/app", START, registered_session="a")],
            [t("a", START + 50), t("b", START + 90)],
            {1: Mapped("b", ("a", "b"), Confidence.REGISTRY_DETECTED)},
            id="after /clear the newer transcript is active and both count",
        ),
        pytest.param(
            [Live(1, "/home/u/app", START, registered_session="new-id")],
            [t("old", START + 90, first=START - 10_000)],
            {1: Mapped("old", ("new-id", "old"), Confidence.REGISTRY_DETECTED)},
            id="after --continue the old transcript written since start is active",
        ),
        pytest.param(
            [
                Live(1, "/home/u/app", START, registered_session="a"),
                Live(2, "/home/u/app", START, registered_session="b"),
            ],
            [t("a", START + 50), t("b", START + 90)],
            {1: Mapped("a", ("a",), Confidence.REGISTRY), 2: Mapped("b", ("b",), Confidence.REGISTRY)},
            id="a transcript claimed by another live process is not taken",
        ),
        pytest.param(
            [
                Live(1, "/home/u/app", START, registered_session="a"),
                Live(2, "/home/u/app", START, registered_session="b"),
            ],
            [t("a", START + 50), t("b", START + 60), t("c", START + 90), t("d", START + 95)],
            {1: Mapped("a", ("a",), Confidence.AMBIGUOUS), 2: Mapped("b", ("b",), Confidence.AMBIGUOUS)},
            id="two processes in one folder with several fresh unclaimed transcripts are ambiguous",
        ),
        pytest.param(
            [Live(1, "/home/u/app", START, registered_session="a")],
            [t("a", START + 50), t("z", START - 60_000)],
            {1: Mapped("a", ("a",), Confidence.REGISTRY)},
            id="a transcript untouched since before the start is someone else's",
        ),
        pytest.param(
            [Live(1, "/home/u/app", START, cmdline_session="c")],
            [t("c", START + 50)],
            {1: Mapped("c", ("c",), Confidence.CMDLINE)},
            id="without a registry file the --session-id flag names the session",
        ),
        pytest.param(
            [Live(1, "/home/u/app", START)],
            [t("h", START + 50)],
            {1: Mapped("h", ("h",), Confidence.CWD)},
            id="without registry or flag the freshest transcript in the folder",
        ),
        pytest.param(
            [Live(1, "/elsewhere", START)],
            [t("h", START + 50)],
            {1: Mapped(None, (), Confidence.NONE)},
            id="nothing found",
        ),
    ],
)
def test_map_processes(processes: list[Live], files: list[Transcript], expected: dict[int, Mapped]) -> None:
    assert mapping.map_processes(processes, [ROOT], {FOLDER: files}) == expected


@pytest.mark.parametrize(
    ("args", "session"),
    [
        pytest.param(
            ["--session-id", "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70"],
            "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70",
            id="--session-id",
        ),
        pytest.param(
            ["-r", "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70"], "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70", id="-r"
        ),
        pytest.param(
            ["--resume=3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70"],
            "3f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a70",
            id="--resume=",
        ),
        pytest.param(["--resume"], None, id="--resume without an id opens a picker"),
    ],
)
def test_cmdline_session(args: list[str], session: str | None) -> None:
    assert mapping.cmdline_session(args) == session
