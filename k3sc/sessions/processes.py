"""Which running processes are Claude Code or Codex sessions, found with psutil on every OS.

`classify` is the pure rule, table-tested on (name, exe, cmdline) samples from Linux, macOS and
Windows; `scan` feeds it from psutil, reading the expensive attributes (exe, cmdline) only for
processes whose name could match. Housekeeping subcommands (`claude doctor`, `codex login`, …),
the PTY host, unclaimed spare processes and the Claude Desktop app are not sessions.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Agent(StrEnum):
    CLAUDE = "claude"
    CODEX = "codex"


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    exe: str
    cmdline: tuple[str, ...]
    create_time: float
    cwd: str | None = None


_CLAUDE_HOUSEKEEPING = {
    "doctor", "update", "install", "config", "agents", "logs", "attach", "stop", "auth", "plugin",
    "setup-token", "migrate-installer", "mcp",
}  # fmt: skip
_CODEX_HOUSEKEEPING = {"login", "logout", "completion", "mcp", "mcp-server", "debug", "apply", "help"}
_VERSION_EXE = re.compile(r"[/\\]claude[/\\]versions[/\\]\d+\.\d+\.\d+[^/\\]*$")
_NPM_NATIVE = re.compile(r"@anthropic-ai[/\\]claude-code[/\\]bin[/\\]claude(\.exe)?$", re.IGNORECASE)
_DESKTOP_BUNDLED = re.compile(r"claude\.app/Contents/MacOS/claude$")  # Desktop's bundled CLI (lower-case)
_NODE_CLAUDE = re.compile(r"@anthropic-ai[/\\]claude-code[/\\](cli\.m?js$|)")
_NODE_CODEX = re.compile(r"@openai[/\\]codex[/\\]bin[/\\]codex\.js$")
_RUNTIMES = {"node", "node.exe", "bun", "bun.exe"}


def _base(path: str) -> str:
    return re.split(r"[/\\]", path)[-1] if path else ""


def _is_desktop(exe: str) -> bool:
    return "AnthropicClaude" in exe or "Claude.app/Contents/MacOS/Claude" in exe


def _names(name: str, exe: str, cmdline: tuple[str, ...], windows: bool) -> set[str]:
    names = {name, _base(exe), _base(cmdline[0]) if cmdline else ""} - {""}
    return {n.lower() for n in names} if windows else names


def _subcommand(args: tuple[str, ...]) -> str | None:
    return next((arg for arg in args if not arg.startswith("-")), None)


def classify(
    name: str, exe: str, cmdline: tuple[str, ...], *, registered: bool = False, windows: bool = False
) -> Agent | None:
    """The agent a process is a session of, or None."""
    if _is_desktop(exe):
        return None
    names = _names(name, exe, cmdline, windows)
    args = cmdline[1:]
    claude = bool(names & {"claude", "claude.exe"}) or bool(
        _VERSION_EXE.search(exe) or _NPM_NATIVE.search(exe) or _DESKTOP_BUNDLED.search(exe)
    )
    if not claude and names & _RUNTIMES:
        script = next((i for i, arg in enumerate(args) if _NODE_CLAUDE.search(arg)), None)
        if script is not None:
            claude, args = True, args[script + 1 :]
    if claude:
        if "--bg-pty-host" in args or ("--bg-spare" in args and not registered):
            return None
        return None if _subcommand(args) in _CLAUDE_HOUSEKEEPING else Agent.CLAUDE
    codex = bool(names & {"codex", "codex.exe"})
    if not codex and names & _RUNTIMES:
        script = next((i for i, arg in enumerate(args) if _NODE_CODEX.search(arg)), None)
        if script is not None:
            codex, args = True, args[script + 1 :]
    if codex:
        return None if _subcommand(args) in _CODEX_HOUSEKEEPING else Agent.CODEX
    return None


def _may_match(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(("claude", "node", "bun", "codex")) or bool(re.match(r"\d+\.\d+\.\d+", name))


def describe(process: Any) -> ProcessInfo | None:
    """Read one psutil process; None if it vanished or cannot be read at all."""
    import psutil

    try:
        with process.oneshot():
            info = ProcessInfo(
                pid=process.pid,
                name=process.name(),
                exe=_safe(process.exe) or "",
                cmdline=tuple(_safe(process.cmdline) or ()),
                create_time=process.create_time(),
                cwd=_safe(process.cwd),
            )
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return info


def _safe(read: Any) -> Any:
    import psutil

    try:
        return read()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


def scan(registered: set[int]) -> tuple[list[tuple[Agent, ProcessInfo]], dict[int, ProcessInfo]]:
    """Session processes found by their look, and the live processes behind registered pids
    (whatever they look like: the registry is authoritative once its identity check passes)."""
    import psutil

    windows = sys.platform == "win32"
    found: list[tuple[Agent, ProcessInfo]] = []
    behind_registry: dict[int, ProcessInfo] = {}
    own = os.getpid()
    for process in psutil.process_iter(["name"]):
        name = process.info.get("name") or ""
        if process.pid == own or (process.pid not in registered and not _may_match(name)):
            continue
        info = describe(process)
        if info is None:
            continue
        if info.pid in registered:
            behind_registry[info.pid] = info
        agent = classify(
            info.name, info.exe, info.cmdline, registered=info.pid in registered, windows=windows
        )
        if agent is not None:
            found.append((agent, info))
    return found, behind_registry


def lookup(pid: int) -> ProcessInfo | None:
    """The live process with this pid, or None."""
    import psutil

    try:
        return describe(psutil.Process(pid))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def boot_time() -> float:
    import psutil

    return float(psutil.boot_time())


def clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100
