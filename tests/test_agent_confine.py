"""Table tests for the sandbox decision and the bwrap command line (no bwrap needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from k3sc.agent import confine
from k3sc.agent.confine import Decision, Guards, Layout

UNAVAILABLE = "agent runs without a sandbox: {why}. It can read everything this user can (set agent.sandbox: off to silence this)"
NO_BWRAP = "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"


@pytest.mark.parametrize(
    ("mode", "platform", "bwrap", "probe_error", "expected"),
    [
        pytest.param("auto", "linux", "/usr/bin/bwrap", None, Decision(True, bwrap="/usr/bin/bwrap"), id="auto with bwrap sandboxes"),
        pytest.param("on", "linux", "/usr/bin/bwrap", None, Decision(True, bwrap="/usr/bin/bwrap"), id="on with bwrap sandboxes"),
        pytest.param("off", "linux", "/usr/bin/bwrap", None, Decision(False), id="off never sandboxes"),
        pytest.param("off", "darwin", None, None, Decision(False), id="off says nothing anywhere"),
        pytest.param("auto", "linux", None, None, Decision(False, warning=UNAVAILABLE.format(why=NO_BWRAP)),
                     id="auto without bwrap warns"),
        pytest.param("on", "linux", None, None,
                     Decision(False, error=f"agent.sandbox is on, but {NO_BWRAP}; install it or set agent.sandbox: off"),
                     id="on without bwrap is an error"),
        pytest.param("auto", "darwin", None, None,
                     Decision(False, warning=UNAVAILABLE.format(why="bubblewrap exists only on Linux (this is darwin)")),
                     id="auto elsewhere than Linux warns"),
        pytest.param("on", "linux", "/usr/bin/bwrap", "No permissions to create new namespace",
                     Decision(False, error="agent.sandbox is on, but bwrap cannot start a sandbox here: No permissions "
                              "to create new namespace; install it or set agent.sandbox: off"),
                     id="on with a bwrap that cannot start is an error"),
    ],
)  # fmt: skip
def test_decide(
    mode: confine.Mode, platform: str, bwrap: str | None, probe_error: str | None, expected: Decision
) -> None:
    assert confine.decide(mode, platform=platform, bwrap=bwrap, probe_error=probe_error) == expected


HOME = Path("/home/u")
K3SC = HOME / ".k3sc"
ROOT = K3SC / "workspaces"
WS = ROOT / "acme-api-claude-a"


def test_layout_hides_k3sc_credentials_and_other_workspaces_and_keeps_agent_state() -> None:
    dirs = (K3SC, ROOT, HOME / ".ssh", HOME / ".config/gh", HOME / ".claude")
    exists = {str(p): "dir" for p in dirs} | {str(HOME / ".netrc"): "file", "/keys/app.pem": "file"}
    layout = confine.layout(
        WS,
        home=HOME,
        k3sc_home=K3SC,
        workspace_root=ROOT,
        secret_files=[Path("/keys/app.pem"), HOME / ".k3sc.yaml"],
        writable=[Path("/srv/remote.git")],
        exists=exists,
    )
    assert layout == Layout(
        workspace=WS,
        # The workspace root is inside k3sc's home: one tmpfs covers both.
        hide_dirs=(K3SC, HOME / ".ssh", HOME / ".config/gh"),
        hide_files=(HOME / ".netrc", Path("/keys/app.pem")),
        writable=(HOME / ".claude",),
    )


def test_a_workspace_root_outside_k3scs_home_is_hidden_on_its_own() -> None:
    root = Path("/srv/ws")
    exists = {str(K3SC): "dir", str(root): "dir"}
    layout = confine.layout(root / "x", home=HOME, k3sc_home=K3SC, workspace_root=root, exists=exists)
    assert layout.hide_dirs == (K3SC, root)


def test_the_command_mounts_in_an_order_where_later_covers_earlier() -> None:
    guards = Guards(
        directory=WS / ".git/k3sc-bin",
        real_git="/usr/bin/git",
        real_gh=None,
        git_paths=("/usr/bin/git", "/usr/lib/git-core/git"),
    )
    layout = Layout(
        workspace=WS,
        hide_dirs=(K3SC,),
        hide_files=(HOME / ".netrc",),
        writable=(HOME / ".claude",),
        guards=guards,
    )
    argv = confine.command(["claude", "-p", "x"], "/usr/bin/bwrap", layout)
    bin_dir = f"{WS}/.git/k3sc-bin"
    assert argv == [
        "/usr/bin/bwrap",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL", "--die-with-parent",
        "--tmpfs", str(K3SC),
        "--ro-bind", "/dev/null", f"{HOME}/.netrc",
        "--bind", f"{HOME}/.claude", f"{HOME}/.claude",
        "--bind", str(WS), str(WS),
        "--ro-bind", f"{WS}/.git/hooks", f"{WS}/.git/hooks",
        "--ro-bind", bin_dir, bin_dir,
        "--ro-bind", "/usr/bin/git", f"{bin_dir}/real/git",
        "--ro-bind", f"{bin_dir}/git", "/usr/bin/git",
        "--ro-bind", f"{bin_dir}/git", "/usr/lib/git-core/git",
        "--chdir", str(WS), "--", "claude", "-p", "x",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        pytest.param(["/tmp/ci.x1/.venv/bin/python", "-m", "stub"], (Path("/tmp/ci.x1"),),
                     id="a program in a checkout under /tmp stays readable"),
        pytest.param(["/usr/bin/env", "claude"], (), id="a program outside /tmp needs nothing"),
        pytest.param([], (), id="the default CLIs need nothing"),
    ],
)  # fmt: skip
def test_the_agents_own_program_under_tmp_stays_readable(
    program: list[str], expected: tuple[Path, ...]
) -> None:
    found = confine.layout(ROOT / "claude-a" / "acme-api", home=HOME, k3sc_home=K3SC, workspace_root=ROOT,
                           program=program, exists={})  # fmt: skip
    assert found.readable == expected
    argv = confine.command(["true"], "/usr/bin/bwrap", found)
    for path in expected:
        bind = argv.index(str(path)) - 1
        # Shown read-only after the private /tmp and before anything hides: secrets inside stay hidden.
        assert argv[bind : bind + 3] == ["--ro-bind", str(path), str(path)]
        assert argv.index("/tmp") < bind


def test_a_program_under_tmp_runs_in_the_sandbox(tmp_path: Path) -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None or confine.probe(bwrap) is not None:
        pytest.skip("no working bwrap here (apt-get install bubblewrap)")
    program = tmp_path / "bin" / "agent"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho agent ran\n")
    program.chmod(0o755)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    found = confine.layout(workspace, home=tmp_path / "home", k3sc_home=tmp_path / "k3sc",
                           workspace_root=tmp_path / "workspaces", program=[str(program)])  # fmt: skip
    done = subprocess.run(
        confine.command([str(program)], bwrap, found), capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, "agent ran\n"), done.stderr
