"""`k3sc launch`: slot choice, PID locks checked with psutil (a stale pid frees its slot), two
launches racing for one slot, clone on first use, and how the agent is started."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k3sc.services import launch
from tests.cli_helpers import invoke


@pytest.mark.parametrize(
    ("existing", "taken", "slot"),
    [
        pytest.param([], set(), 1, id="the first slot is 1"),
        pytest.param([1, 2], {1}, 2, id="the lowest free existing slot"),
        pytest.param([1, 2], {1, 2}, 3, id="all taken: one past the highest"),
        pytest.param([2, 5], {2}, 5, id="gaps are not filled, existing folders are reused"),
        pytest.param([21], set(), 22, id="slots past 20 are never reused"),
    ],
)
def test_choose_slot(existing: list[int], taken: set[int], slot: int) -> None:
    assert launch.choose_slot(existing, taken) == slot


def test_slot_numbers_read_only_this_agents_folders() -> None:
    assert launch.slot_numbers(
        ["claude-1", "claude-10", "codex-2", "claude-x", "claude-3.bak"], "claude"
    ) == [1, 10]


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_a_live_lock_holds_its_slot_and_a_stale_one_is_cleared(tmp_path: Path) -> None:
    (tmp_path / "claude-1").mkdir()
    (tmp_path / "claude-2").mkdir()
    launch.write_lock(tmp_path / "claude-1", os.getpid())  # alive: this test
    stale = dead_pid()
    launch.write_lock(tmp_path / "claude-2", stale)
    slot = launch.claim(tmp_path, "claude", 4242, alive=launch.is_alive)
    assert slot.number == 2
    assert launch.lock_holder(tmp_path / "claude-2") == 4242
    assert launch.lock_holder(tmp_path / "claude-1") == os.getpid()


def test_a_lock_with_garbage_is_free(tmp_path: Path) -> None:
    (tmp_path / "codex-1").mkdir()
    (tmp_path / "codex-1" / launch.LOCK_NAME).write_text("not a pid")
    assert launch.claim(tmp_path, "codex", 7, alive=lambda pid: True).number == 1


RACER = """
import sys, time
from pathlib import Path
from k3sc.services import launch
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
slot = launch.claim(Path(sys.argv[1]), "claude", int(sys.argv[3]), alive=lambda pid: pid > 1000000)
print(slot.number)
"""


def test_two_launches_racing_for_one_free_slot_get_different_slots(tmp_path: Path) -> None:
    base = tmp_path / "code"
    (base / "claude-1").mkdir(parents=True)
    go = tmp_path / "go"
    # The holders' pids (above a million) count as alive, so each lock taken stays taken.
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(base), str(go), str(2_000_000 + i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    slots = sorted(int(racer.communicate(timeout=60)[0]) for racer in racers)
    assert slots == [1, 2]
    assert {launch.lock_holder(base / f"claude-{n}") for n in (1, 2)} == {2_000_000, 2_000_001}


# ------------------------------------------------------------------ terminals


def which_of(*names: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in names else None


SLOT = Path("/code/claude-1")


@pytest.mark.parametrize(
    ("environ", "platform", "found", "kind", "head"),
    [
        pytest.param(
            {"TMUX": "/tmp/tmux-0/default,1,0"},
            "linux",
            ("tmux",),
            "tmux",
            ["tmux", "new-window", "-c", str(SLOT)],
            id="inside tmux a new window",
        ),
        pytest.param(
            {"TMUX": "x", "DISPLAY": ":0"},
            "linux",
            ("xterm",),
            "terminal",
            ["xterm", "-e"],
            id="tmux without its binary falls through",
        ),
        pytest.param(
            {"DISPLAY": ":0"},
            "linux",
            ("kitty", "xterm"),
            "terminal",
            ["kitty", "--directory", str(SLOT)],
            id="a desktop terminal on Linux",
        ),
        pytest.param({}, "linux", ("kitty",), None, None, id="no display on Linux: print the command"),
        pytest.param({}, "darwin", (), "terminal", ["osascript", "-e"], id="Terminal.app on macOS"),
        pytest.param({}, "win32", (), "console", ["claude", "/obey"], id="a new console on Windows"),
    ],
)
def test_opener(
    environ: dict[str, str], platform: str, found: tuple[str, ...], kind: str | None, head: list[str] | None
) -> None:
    chosen = launch.opener(SLOT, ["claude", "/obey"], environ, platform, which_of(*found))
    if kind is None:
        assert chosen is None
        return
    assert chosen is not None and chosen.kind == kind
    assert list(chosen.argv[: len(head or [])]) == head
    if kind != "console":
        assert "echo $$ > .k3sc.lock" in " ".join(chosen.argv)  # the terminal's shell writes the agent's pid


# ------------------------------------------------------------------ end to end


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare git repository with one commit on `trunk`, standing in for GitHub."""
    work = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(work)], check=True)
    (work / "README").write_text("hello\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "seed"], check=True)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def configure(tmp_path: Path, origin: Path) -> Path:
    base = tmp_path / "code"
    (tmp_path / "k3sc.yaml").write_text(
        f"launch_dir: {base}\nrepos: [{{owner: acme, name: app, clone_url: '{origin}'}}]\n"
    )
    return base


def test_without_a_terminal_it_clones_and_prints_the_command(tmp_path: Path, origin: Path) -> None:
    base = configure(tmp_path, origin)
    result = invoke(
        ["launch", "codex"],
        env={"TMUX": None, "DISPLAY": None, "WAYLAND_DISPLAY": None},
        contains=["codex slot 1 -> ", f"cloning {origin} into"],
    )
    assert result.stdout.strip().endswith(f"cd {base / 'codex-1'} && codex")
    assert (base / "codex-1" / "README").read_text() == "hello\n"
    branch = subprocess.run(
        ["git", "-C", str(base / "codex-1"), "branch", "--show-current"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert branch.stdout.strip() == "trunk"
    assert launch.lock_holder(base / "codex-1") is None  # nothing runs there, so nothing holds it
    again = invoke(["launch", "codex"], env={"TMUX": None, "DISPLAY": None, "WAYLAND_DISPLAY": None})
    assert "cloning" not in again.stdout and "codex slot 1 ->" in again.stdout


FAKE_TMUX = """#!/bin/sh
# Stand-in for `tmux new-window -c DIR -n NAME -- CMD...`: run CMD in DIR in the background.
shift; dir="$2"; shift 5
cd "$dir" && ("$@" > /dev/null 2>&1 &)
"""
FAKE_AGENT = "#!/bin/sh\nsleep 30\n"


def test_inside_tmux_the_agent_holds_the_lock_for_its_lifetime(tmp_path: Path, origin: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("tmux is POSIX-only")
    base = configure(tmp_path, origin)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("tmux", FAKE_TMUX), ("claude", FAKE_AGENT)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755 | stat.S_IEXEC)
    env = {"TMUX": "/tmp/fake,1,0", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    first = invoke(
        ["launch", "claude"], env=env, contains=["claude slot 1 ->", "started in a new tmux window"]
    )
    holder = launch.lock_holder(base / "claude-1")
    assert holder is not None and launch.is_alive(holder) and f"pid {holder}" in first.stdout
    try:
        invoke(["launch", "claude"], env=env, contains=["claude slot 2 ->"])
        second = launch.lock_holder(base / "claude-2")
        assert second is not None and second != holder
        os.kill(second, 9)
        deadline = time.monotonic() + 10
        while launch.is_alive(second) and time.monotonic() < deadline:
            time.sleep(0.05)
        invoke(["launch", "claude"], env=env, contains=["claude slot 2 ->"])  # its holder died: free again
    finally:
        for folder in base.glob("claude-*"):
            pid = launch.lock_holder(folder)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)


def test_bad_agent_is_exit_2() -> None:
    invoke(["launch", "gemini"], code=2, contains=["agent must be claude or codex, got 'gemini'"])


def test_no_repo_to_clone_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "k3sc.yaml").write_text(f"launch_dir: {tmp_path / 'code'}\n")
    invoke(["launch"], code=2, contains=["none is configured", "--repo owner/name"])
