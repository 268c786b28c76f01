"""Confine an agent run: the gh and git guards on its PATH and, on Linux, a bubblewrap sandbox.

Without a sandbox an agent runs as the worker's user and sees what that user sees: k3sc's home
(the Prefect database and the key to the blocks' secrets), other agents' workspaces, `~/.ssh`,
`~/.config/gh`, and the real gh and git by their absolute paths, which skip the guards. Under
bubblewrap (`agent.sandbox`):

* the whole filesystem is read-only, the workspace is writable, `/tmp` is private;
* k3sc's home, the workspace root (except this workspace), the config file, the App key and
  the usual credential stores are hidden (an empty tmpfs over a directory, /dev/null over a file);
* the gh and git wrappers are mounted over every path of the real gh and git; the real ones sit
  at a path inside the read-only `.git/k3sc-bin` that only the wrappers use, and the hooks and
  the wrappers themselves are read-only, so neither `--no-verify` nor an absolute path skips them;
* the agent gets its own PID namespace (it cannot see or signal other processes, nor read their
  environment) and no capabilities (root inside cannot unmount what hides k3sc's files);
* the network is the host's: the agent needs its model API and GitHub.

What stays possible, by design of any same-user sandbox: the agent holds a GitHub token (git
needs it), so it can call the GitHub API directly; a narrow per-run App token and branch
protection are the controls there (`k3sc.github.credentials.agent_token`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from k3sc.agent import gh_guard, git_guard

Mode = Literal["auto", "on", "off"]
REAL_DIR = "real"  # under the wrapper directory: where the sandbox mounts the real gh and git

# Relative to HOME: credential stores and tool state an agent has no business reading.
HIDDEN_HOME_DIRS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".prefect",
    ".config/gh",
    ".config/gcloud",
    ".config/hub",
    ".cache/k3sc",
)
HIDDEN_HOME_FILES = (
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".pypirc",
    ".npmrc",
    ".k3sc.yaml",
)
# The agent CLIs' own state (their login, sessions): the agent must be able to write these.
AGENT_HOME_STATE = (".claude", ".claude.json", ".codex")
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Decision:
    """Whether this run is sandboxed; `warning` is for the run's log, `error` fails the run."""

    sandboxed: bool
    warning: str | None = None
    error: str | None = None
    bwrap: str | None = None  # the launcher, when sandboxed


def decide(mode: Mode, *, platform: str, bwrap: str | None, probe_error: str | None) -> Decision:
    """The sandbox decision for config `agent.sandbox` on this machine.

    Args:
        mode: `auto`, `on` or `off`.
        platform: `sys.platform`.
        bwrap: the bwrap executable, or None when it is not installed.
        probe_error: why a trial `bwrap` run failed (e.g. no user namespaces), or None.
    """
    # Turned off: the guards on PATH remain, nothing more.
    if mode == "off":
        return Decision(False)
    why = None
    if not platform.startswith("linux"):
        why = f"bubblewrap exists only on Linux (this is {platform})"
    elif bwrap is None:
        why = "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    elif probe_error is not None:
        why = f"bwrap cannot start a sandbox here: {probe_error}"
    if why is None:
        return Decision(True, bwrap=bwrap)
    # `on` means the user relies on it: never run unconfined.
    if mode == "on":
        return Decision(False, error=f"agent.sandbox is on, but {why}; install it or set agent.sandbox: off")
    return Decision(
        False,
        warning=f"agent runs without a sandbox: {why}. It can read everything this user can "
        "(set agent.sandbox: off to silence this)",
    )


def on_this_machine(mode: Mode) -> Decision:
    """`decide` for this machine: finds bwrap and tries it (blocking: a subprocess, up to 10 s)."""
    if mode == "off":
        return Decision(False)
    bwrap = shutil.which("bwrap")
    probe_error = probe(bwrap) if bwrap else None
    return decide(mode, platform=sys.platform, bwrap=bwrap, probe_error=probe_error)


def probe(bwrap: str) -> str | None:
    """None if bwrap can start a minimal sandbox of the kind `command` builds, else why not."""
    try:
        proc = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--cap-drop", "ALL", "--", "true"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit code {proc.returncode}")


@dataclass(frozen=True)
class Guards:
    """The wrapper directory (first on PATH) and the real tools the wrappers exec."""

    directory: Path
    real_git: str | None
    real_gh: str | None
    # Every path the real tools answer to: under the sandbox, the wrappers are mounted there.
    git_paths: tuple[str, ...] = ()
    gh_paths: tuple[str, ...] = ()

    def hidden(self, tool: str) -> Path:
        """Where the sandbox mounts the real `tool` for its wrapper."""
        return self.directory / REAL_DIR / tool


def install_guards(workspace: Path, rules: Sequence[str], path: str, *, sandboxed: bool) -> Guards:
    """Write the gh and git wrappers into `<workspace>/.git/k3sc-bin`.

    `path` is the PATH the agent would otherwise get; the real tools are looked up there. Under
    the sandbox the wrappers exec the real tools at their hidden mount points (placeholders are
    created for bwrap to mount over), otherwise at their real paths.
    """
    directory = workspace / ".git" / gh_guard.WRAPPER_DIR
    search = os.pathsep.join(p for p in path.split(os.pathsep) if p and Path(p) != directory)
    real_git = shutil.which("git", path=search)
    real_gh = shutil.which("gh", path=search)
    guards = Guards(
        directory=directory,
        real_git=real_git,
        real_gh=real_gh,
        git_paths=_aliases("git", real_git, search, extra=_git_exec_path(real_git)),
        gh_paths=_aliases("gh", real_gh, search),
    )
    gh_target = str(guards.hidden("gh")) if sandboxed and real_gh else real_gh
    gh_guard.install(workspace, rules, path, real=gh_target)
    if real_git is not None:
        git_target = str(guards.hidden("git")) if sandboxed else real_git
        git_guard.install(directory, git_target, workspace / ".git" / "hooks")
    if sandboxed:
        (directory / REAL_DIR).mkdir(exist_ok=True)
        for tool, real in (("git", real_git), ("gh", real_gh)):
            if real is not None:
                guards.hidden(tool).touch(exist_ok=True)
    return guards


def _aliases(tool: str, real: str | None, search: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Every existing path that runs the same binary as `real`: PATH hits, their targets, `extra`."""
    if real is None:
        return ()
    target = os.path.realpath(real)
    found = {real, target}
    for directory in search.split(os.pathsep):
        candidate = Path(directory) / tool
        if candidate.exists() and os.path.realpath(candidate) == target:
            found.add(str(candidate))
    found.update(p for p in extra if os.path.exists(p))
    # Symlinks resolve to a listed file, and a bind over a symlink would replace its target anyway.
    return tuple(sorted(p for p in found if not os.path.islink(p)))


def _git_exec_path(real_git: str | None) -> tuple[str, ...]:
    """git's own copy under its exec-path (`/usr/lib/git-core/git`), which git runs for itself."""
    if real_git is None:
        return ()
    try:
        out = subprocess.run(
            [real_git, "--exec-path"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return (str(Path(out.stdout.strip()) / "git"),)


@dataclass(frozen=True)
class Layout:
    """Everything `command` needs to know about the filesystem, gathered by `layout()`."""

    workspace: Path
    hide_dirs: tuple[Path, ...] = ()
    hide_files: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    guards: Guards | None = None
    # Under /tmp, which the sandbox replaces with its own: the agent's own program, shown read-only.
    readable: tuple[Path, ...] = ()


def command(argv: Sequence[str], bwrap: str, layout: Layout) -> list[str]:
    """`argv` wrapped in bwrap as the module docstring describes; pure, so it is table-tested.

    Order matters: a later mount covers an earlier one, so the read-only root comes first, then
    what hides, then what is writable again, and the read-only guards last of all.
    """
    args = [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--cap-drop", "ALL",
        "--die-with-parent",
    ]  # fmt: skip
    for path in layout.readable:
        args += ["--ro-bind", str(path), str(path)]
    for directory in layout.hide_dirs:
        args += ["--tmpfs", str(directory)]
    for file in layout.hide_files:
        args += ["--ro-bind", "/dev/null", str(file)]
    for path in (*layout.writable, layout.workspace):
        args += ["--bind", str(path), str(path)]
    guards = layout.guards
    if guards is not None:
        hooks = layout.workspace / ".git" / "hooks"
        # The wrapper directory before the real tools inside it: a later bind would cover them.
        args += [
            "--ro-bind",
            str(hooks),
            str(hooks),
            "--ro-bind",
            str(guards.directory),
            str(guards.directory),
        ]
        for tool, real, targets in (
            ("git", guards.real_git, guards.git_paths),
            ("gh", guards.real_gh, guards.gh_paths),
        ):
            if real is None:
                continue
            wrapper = guards.directory / tool
            args += ["--ro-bind", os.path.realpath(real), str(guards.hidden(tool))]
            for target in targets:
                args += ["--ro-bind", str(wrapper), target]
    args += ["--chdir", str(layout.workspace), "--", *argv]
    return args


def layout(
    workspace: Path,
    *,
    home: Path,
    k3sc_home: Path,
    workspace_root: Path,
    secret_files: Iterable[Path] = (),
    writable: Iterable[Path] = (),
    guards: Guards | None = None,
    program: Sequence[str] = (),
    exists: Mapping[str, str] | None = None,
) -> Layout:
    """What to hide and what to keep writable for one run, from the paths that exist.

    Args:
        workspace: the agent's clone (writable).
        home: the user's home; its credential stores are hidden, the agent CLIs' state kept writable.
        k3sc_home: k3sc's state (Prefect database, blocks' key, logs): hidden.
        workspace_root: every agent's workspaces: hidden except `workspace`.
        secret_files: more files to hide (the config file, the GitHub App key).
        writable: more paths the agent must write (a local bare remote in the sandbox world).
        guards: the gh and git wrappers to mount over the real tools.
        program: the agent command's argv; where it lives under /tmp stays readable.
        exists: a seam for tests, path → "dir" or "file" for what exists; None looks at the
            filesystem.
    """

    def there(path: Path) -> bool:
        return str(path) in exists if exists is not None else path.exists()

    def is_dir(path: Path) -> bool:
        return exists.get(str(path)) == "dir" if exists is not None else path.is_dir()

    # Hidden whole, even when the workspace is inside: its own bind comes back on top.
    hide_dirs = [p for p in (k3sc_home, workspace_root) if is_dir(p)]
    hide_dirs += [home / d for d in HIDDEN_HOME_DIRS if is_dir(home / d)]
    # A directory already hidden needs no second tmpfs inside it.
    hide_dirs = [d for d in hide_dirs if not any(_inside(d, o) for o in hide_dirs if o != d)]
    hide_files = [home / f for f in HIDDEN_HOME_FILES if there(home / f) and not is_dir(home / f)]
    hide_files += [f for f in secret_files if there(f) and not is_dir(f)]
    hide_files = [f for f in hide_files if not any(_inside(f, d) for d in hide_dirs)]
    keep = [home / s for s in AGENT_HOME_STATE if there(home / s)]
    keep += [p for p in writable if there(p)]
    return Layout(
        workspace=workspace,
        hide_dirs=tuple(dict.fromkeys(hide_dirs)),
        hide_files=tuple(dict.fromkeys(hide_files)),
        writable=tuple(dict.fromkeys(keep)),
        guards=guards,
        readable=under_tmp(program[:1]),
    )


def under_tmp(paths: Iterable[str]) -> tuple[Path, ...]:
    """The top directories under /tmp that hold `paths` (as given and resolved, found on PATH).

    The sandbox's private /tmp would hide a program installed there (a project checked out in a
    temporary directory runs its venv's python from it), so its directory comes back read-only;
    hidden paths inside it are hidden again after it.
    """
    tmp = Path("/tmp")
    roots: list[Path] = []
    for given in paths:
        found = shutil.which(given) or given
        for path in (Path(found).absolute(), Path(os.path.realpath(found))):
            if _inside(path, tmp):
                roots.append(tmp / path.relative_to(tmp).parts[0])
    return tuple(dict.fromkeys(roots))


def _inside(path: Path, parent: Path, *, strict: bool = True) -> bool:
    """Whether `path` is `parent` or below it (strictly below with `strict`)."""
    if path == parent:
        return not strict
    return parent in path.parents
