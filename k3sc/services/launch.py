"""`k3sc launch`: a human-supervised agent session in its own clone, in a new terminal.

Slots are folders `<launch_dir>/<agent>-<n>`. A slot is taken while `<slot>/.k3sc.lock` names a
live process (psutil, so on every OS); a lock naming a dead pid is stale and the slot is free.
Choosing a slot and writing its lock happen under one file lock on the launch dir, so two
launches at once never pick the same slot. The agent starts in a new tmux window when inside
tmux, else in the platform's terminal; its shell writes the agent's own pid into the lock before
exec-ing it, so the lock lives exactly as long as the agent. Without a terminal the command is
printed instead.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from k3sc.errors import K3scError

LOCK_NAME = ".k3sc.lock"
GUARD_NAME = ".k3sc-launch.lock"
MAX_REUSED_SLOT = 20
AGENTS = ("claude", "codex")
LOCK_WAIT_S = 10.0
# Runs in the new terminal: record this shell's pid (kept by `exec`) as the slot's holder.
HOLD = 'echo $$ > .k3sc.lock && exec "$@"'


@dataclass(frozen=True)
class Slot:
    agent: str
    number: int
    path: Path

    @property
    def name(self) -> str:
        return f"{self.agent}-{self.number}"


def slot_numbers(names: Iterable[str], agent: str) -> list[int]:
    """Slot numbers among folder names `<agent>-<n>`, sorted."""
    pattern = re.compile(rf"^{re.escape(agent)}-(\d+)$")
    return sorted({int(m.group(1)) for m in map(pattern.match, names) if m})


def choose_slot(existing: Sequence[int], taken: set[int]) -> int:
    """The lowest existing free slot up to 20, else one past the highest (1 when there are none)."""
    for number in sorted(existing):
        if number <= MAX_REUSED_SLOT and number not in taken:
            return number
    return max(existing, default=0) + 1


def lock_holder(slot_dir: Path) -> int | None:
    """The pid in a slot's lock file, or None if there is none or it is unreadable."""
    try:
        text = (slot_dir / LOCK_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return psutil.pid_exists(pid)


def claim(base: Path, agent: str, holder: int, alive: Callable[[int], bool] = is_alive) -> Slot:
    """Pick a free slot, clear stale locks, and lock it for `holder`; atomic across processes."""
    from filelock import FileLock

    base.mkdir(parents=True, exist_ok=True)
    with FileLock(base / GUARD_NAME):
        names = [entry.name for entry in base.iterdir() if entry.is_dir()]
        numbers = slot_numbers(names, agent)
        taken: set[int] = set()
        for number in numbers:
            folder = base / f"{agent}-{number}"
            pid = lock_holder(folder)
            if pid is not None and alive(pid):
                taken.add(number)
            elif (folder / LOCK_NAME).exists():
                (folder / LOCK_NAME).unlink(missing_ok=True)  # stale: its holder is gone
        number = choose_slot(numbers, taken)
        slot = Slot(agent, number, base / f"{agent}-{number}")
        slot.path.mkdir(exist_ok=True)
        write_lock(slot.path, holder)
    return slot


def write_lock(slot_dir: Path, pid: int) -> None:
    temp = slot_dir / f"{LOCK_NAME}.{os.getpid()}"
    temp.write_text(f"{pid}\n", encoding="utf-8")
    os.replace(temp, slot_dir / LOCK_NAME)


def release(slot_dir: Path, holder: int) -> None:
    """Remove the lock if `holder` still owns it."""
    if lock_holder(slot_dir) == holder:
        (slot_dir / LOCK_NAME).unlink(missing_ok=True)


# ------------------------------------------------------------------ terminals


@dataclass(frozen=True)
class Opener:
    """How to open the agent: `argv` to start, and whether the new terminal writes the lock itself."""

    kind: str  # tmux | terminal | console
    argv: tuple[str, ...]
    writes_lock: bool = True


def held(agent_argv: Sequence[str]) -> list[str]:
    return ["sh", "-c", HOLD, "k3sc-launch", *agent_argv]


def opener(
    slot: Path,
    agent_argv: Sequence[str],
    environ: Mapping[str, str],
    platform: str,
    which: Callable[[str], str | None],
) -> Opener | None:
    """Pick a terminal for this machine, or None when none can be opened from here."""
    wrapped = held(agent_argv)
    if environ.get("TMUX") and which("tmux"):
        name = slot.name
        argv = ("tmux", "new-window", "-c", str(slot), "-n", name, "--", *wrapped)
        return Opener("tmux", argv)
    if platform == "win32":
        return Opener("console", tuple(agent_argv), writes_lock=False)
    if platform == "darwin":
        script = f"cd {shlex.quote(str(slot))} && exec {shlex.join(wrapped)}"
        apple = f'tell application "Terminal" to do script "{_applescript(script)}"'
        return Opener("terminal", ("osascript", "-e", apple, "-e", 'tell application "Terminal" to activate'))
    if not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return None
    for candidate, build in _LINUX_TERMINALS:
        if which(candidate):
            return Opener("terminal", tuple(build(str(slot), wrapped)))
    return None


def _applescript(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


_LINUX_TERMINALS: list[tuple[str, Callable[[str, list[str]], list[str]]]] = [
    ("wezterm", lambda d, c: ["wezterm", "start", "--cwd", d, "--", *c]),
    ("kitty", lambda d, c: ["kitty", "--directory", d, *c]),
    ("alacritty", lambda d, c: ["alacritty", "--working-directory", d, "-e", *c]),
    ("gnome-terminal", lambda d, c: ["gnome-terminal", f"--working-directory={d}", "--", *c]),
    ("konsole", lambda d, c: ["konsole", "--workdir", d, "-e", *c]),
    ("xfce4-terminal", lambda d, c: ["xfce4-terminal", f"--working-directory={d}", "-x", *c]),
    ("x-terminal-emulator", lambda d, c: ["x-terminal-emulator", "-e", *c]),
    ("xterm", lambda d, c: ["xterm", "-e", *c]),
]


# ------------------------------------------------------------------ the command


@dataclass(frozen=True)
class Launched:
    slot: Slot
    cloned: bool
    opener: str | None  # None: printed the command instead
    command: str
    pid: int | None


def clone(url: str, target: Path, say: Callable[[str], None]) -> None:
    """Clone `url` into the slot folder, which already holds the lock (so `git clone` would refuse
    it), and keep the lock out of `git status`."""
    say(f"cloning {url} into {target}...")
    git = ["git", "-C", str(target)]
    _git(["git", "init", "-q", str(target)])
    _git([*git, "remote", "add", "origin", url])
    _git([*git, "fetch", "-q", "origin"])
    _git([*git, "remote", "set-head", "origin", "--auto"])
    head = _git([*git, "symbolic-ref", "--short", "refs/remotes/origin/HEAD"])  # origin/<default>
    branch = head.removeprefix("origin/")
    _git([*git, "checkout", "-q", "-B", branch, "--track", head])
    exclude = target / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a", encoding="utf-8") as handle:
        handle.write(f"\n{LOCK_NAME}\n")


def _git(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise K3scError(f"{shlex.join(argv)} failed: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout.strip()


def launch(
    base: Path,
    agent: str,
    agent_argv: Sequence[str],
    clone_url: str,
    say: Callable[[str], None],
    *,
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    which: Callable[[str], str | None] | None = None,
) -> Launched:
    """Claim a slot, clone on first use, and start the agent (or print how to)."""
    import shutil

    env = os.environ if environ is None else environ
    find = which or (lambda name: shutil.which(name, path=env.get("PATH")))
    me = os.getpid()
    slot = claim(base, agent, me)
    try:
        say(f"{agent} slot {slot.number} -> {slot.path}")
        cloned = not (slot.path / ".git").exists()
        if cloned:
            clone(clone_url, slot.path, say)
        command = f"cd {shlex.quote(str(slot.path))} && {shlex.join(agent_argv)}"
        how = opener(slot.path, agent_argv, env, platform, find)
        if how is None:
            release(slot.path, me)
            say("no terminal can be opened from here; run:")
            return Launched(slot, cloned, None, command, None)
        pid = _start(how, slot.path)
        if not how.writes_lock and pid is not None:
            write_lock(slot.path, pid)
        else:
            pid = _await_holder(slot.path, me)
        return Launched(slot, cloned, how.kind, command, pid)
    except BaseException:
        release(slot.path, me)
        raise


_DETACHED: list[subprocess.Popen[bytes]] = []  # terminal windows we started and do not wait for


def _start(how: Opener, cwd: Path) -> int | None:
    """Start the opener; tmux and osascript hand over and exit, a terminal window or console stays."""
    flags = getattr(subprocess, "CREATE_NEW_CONSOLE", 0) if how.kind == "console" else 0
    try:
        process = subprocess.Popen(
            list(how.argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            creationflags=flags,
            start_new_session=how.kind != "console",
        )
    except OSError as exc:
        raise K3scError(f"could not start {how.argv[0]}: {exc.strerror or exc}") from exc
    if how.argv[0] in ("tmux", "osascript"):
        _, err = process.communicate(timeout=30)
        if process.returncode != 0:
            reason = err.decode(errors="replace").strip() or f"exit {process.returncode}"
            raise K3scError(f"{how.argv[0]} failed: {reason}")
    else:
        if process.stderr is not None:
            process.stderr.close()
        _DETACHED.append(process)
    return process.pid


def _await_holder(slot: Path, me: int) -> int | None:
    """Wait until the new terminal's shell has replaced our claim with the agent's pid."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while time.monotonic() < deadline:
        holder = lock_holder(slot)
        if holder is not None and holder != me:
            return holder
        time.sleep(0.05)
    release(slot, me)
    raise K3scError(
        f"the terminal did not start the agent in {slot} within {LOCK_WAIT_S:g} s; the slot is free again."
    )
