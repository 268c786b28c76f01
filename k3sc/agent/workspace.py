"""The agent's git workspace: one persistent clone per (repo, agent), made safe for each run.

A clone is expensive and the agent's caches inside it are worth keeping, so it is reused
across runs; but a killed run may have left a rebase, a merge, stale lock files or junk, so
every `prepare` starts from a clean tree on the right branch. The git hooks and the
credential helper installed here are the agent's guard-rails, as in the Go k3sc: pushes only to
its own branch, no auto-closing commit messages, and a token read from the environment at
run time so it never lands in argv, a URL, the git config or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from k3sc import names
from k3sc.errors import AgentError
from k3sc.models import Repo

# Network operations (clone, fetch, set-head) get this long before the git process group is
# killed: a hung remote must fail the run, not hold the slot forever.
GIT_TIMEOUT_S = 600.0

# Shell snippet git runs as a credential helper. It reads the token from the environment of
# whichever git process asks, so the secret is only ever in env, never in a file or argv.
# `cat` drains git's request so git never sees a broken pipe.
CREDENTIAL_HELPER = (
    '!f() { cat >/dev/null; test "$1" = get || exit 0; t="${GITHUB_TOKEN:-${GH_TOKEN:-}}"; '
    'test -n "$t" || exit 0; echo username=x-access-token; echo "password=$t"; }; f'
)

AGENT_GIT_MARKER = "K3SC_AGENT_WORKSPACE_GIT"

# Variables that would point git at some other repository or make it prompt a human.
_GIT_ENV_DROP = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
)

# Branch names end up inside the hook scripts, so they must be shell-inert as well as valid refs.
_SAFE_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_SAFE_WORD = re.compile(r"[A-Za-z][A-Za-z -]*")
_USERINFO = re.compile(r"(://)[^/@\s]+@")

# Leftovers of a git process killed mid-operation; with the workspace lock held no live git
# process of ours can own them.
_STALE_LOCKS = (
    "index.lock",
    "HEAD.lock",
    "ORIG_HEAD.lock",
    "config.lock",
    "packed-refs.lock",
    "shallow.lock",
)
_OPERATION_STATE = (
    "rebase-merge",
    "rebase-apply",
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "sequencer",
)
# What survives the config reset: the repository's on-disk format, which git cannot do without.
_FORMAT_KEYS = r"^(core\.repositoryformatversion|extensions\..*)$"


@dataclass(frozen=True)
class Workspace:
    """A prepared clone, checked out on `branch`; holds the workspace lock until released.

    Use it as a context manager (or call `release()`) around the agent run, so a second run
    of the same agent on the same repo fails fast instead of sharing the tree.
    """

    path: Path
    branch: str
    base: str
    reused_branch: bool
    head_sha: str
    lock: WorkspaceLock | None = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        """Give up the workspace lock (idempotent)."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class WorkspaceLock:
    """An exclusive `flock` on `<root>/<workspace>.lock`.

    flock, not a pid file: the kernel drops it when the holder dies, so a crashed run never
    leaves a stale lock behind, and two opens conflict even inside one process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, holder: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown holder"
            os.close(fd)
            raise AgentError(
                f"workspace {self.path.with_suffix('')} is in use by another run ({other}); "
                "one agent never works two runs in the same clone at once"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        # A safety net for callers that never release: the lock ends with its owner object.
        self.release()

    def __getstate__(self) -> dict[str, object]:
        # A pickled or copied Workspace (e.g. a Prefect task result) must not own, and later
        # close, the original's file descriptor.
        return {"path": self.path, "_fd": None}


async def prepare(
    *,
    root: Path,
    repo: Repo,
    agent: str,
    issue: int,
    clone_url: str,
    branch: str,
    default_branch: str | None,
    blocked_words: Sequence[str],
    token: str | None,
    log: Callable[[str], None],
) -> Workspace:
    """Clone or refresh the agent's workspace and check out `branch` cleanly.

    Args:
        root: directory holding every workspace (config `workspace_root`).
        repo, agent: identify the clone, `root / names.workspace_name(repo, agent)`.
        issue: only recorded in the lock file, to say who holds it.
        clone_url: the remote; https, ssh or a local path. Never embed the token in it.
        branch: the issue branch (`issue-N`); the pre-push hook allows pushes to it only.
        default_branch: the base to branch from; None asks the remote for its default.
        blocked_words: commit-message words that auto-close issues (`closes #N`).
        token: GitHub token, given to git only through the environment.
        log: receives one line per step, for the run's log.

    Returns:
        The prepared `Workspace`, holding the lock; release it when the run ends.

    Raises:
        AgentError: the workspace is busy, a git command failed or timed out, the base or
            branch name is unusable.
    """
    _check_branch(branch, "branch")
    if default_branch is not None:
        _check_branch(default_branch, "default branch")
    words = _check_words(blocked_words)
    name = names.workspace_name(repo, agent)
    path = root / name
    git = _Git(path, token)

    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    lock = WorkspaceLock(root / f"{name}.lock")
    holder = f"pid {os.getpid()} on {socket.gethostname()}, {agent} for {repo.full_name}#{issue}"
    await asyncio.to_thread(lock.acquire, holder)
    try:
        if await _usable_clone(git):
            await _reset_config(git)
            await _clean(git, log)
            await _configure(git, agent, clone_url)
            log("fetching origin")
            await git.run("fetch", "--prune", "origin", time_limit=GIT_TIMEOUT_S)
        else:
            await _clone(git, clone_url, log)
            await _configure(git, agent, clone_url)
        base = default_branch or await _remote_default(git)
        if not await git.has_ref(f"refs/remotes/origin/{base}"):
            raise AgentError(f"base branch {base!r} does not exist on the remote {_safe_url(clone_url)}")
        reused = await git.has_ref(f"refs/remotes/origin/{branch}")
        # The tree was cleaned above; -f also discards anything the previous branch left tracked.
        if reused:
            await git.run("checkout", "-f", "--track", "-B", branch, f"refs/remotes/origin/{branch}")
        else:
            await git.run("checkout", "-f", "--no-track", "-B", branch, f"refs/remotes/origin/{base}")
        head = (await git.run("rev-parse", "HEAD")).strip()
        await _install_hooks(path, branch, words)
        if reused:
            log(f"branch {branch}: reusing origin/{branch} at {head[:12]}")
        else:
            log(f"branch {branch}: new from origin/{base} at {head[:12]}")
        return Workspace(path=path, branch=branch, base=base, reused_branch=reused, head_sha=head, lock=lock)
    except BaseException:
        lock.release()
        raise


# ----------------------------------------------------------------------------- steps


async def _usable_clone(git: _Git) -> bool:
    if not await asyncio.to_thread((git.path / ".git").is_dir):
        return False
    return (await git.run("rev-parse", "--is-inside-work-tree", check=False)).strip() == "true"


async def _clone(git: _Git, clone_url: str, log: Callable[[str], None]) -> None:
    # Clone next to the target and rename, so a clone killed halfway never looks like a workspace.
    path = git.path
    staging = path.with_name(f".{path.name}.cloning")
    for leftover in (staging, path):
        if await asyncio.to_thread(leftover.exists):
            await asyncio.to_thread(shutil.rmtree, leftover)
    log(f"cloning {_safe_url(clone_url)} into {path}")
    await git.run(
        # An empty helper value resets any helper from the user's or system config first.
        *("-c", "credential.helper=", "-c", f"credential.helper={CREDENTIAL_HELPER}"),
        *("clone", "--origin", "origin", "--", clone_url, str(staging)),
        cwd=path.parent,
        time_limit=GIT_TIMEOUT_S,
    )
    await asyncio.to_thread(staging.rename, path)


async def _clean(git: _Git, log: Callable[[str], None]) -> None:
    """Undo whatever a killed run left: operations in progress, stale locks, edits, junk."""
    dot_git = git.path / ".git"
    removed = await asyncio.to_thread(_remove_debris, dot_git)
    if removed:
        log(f"cleaned leftovers of an earlier run: {', '.join(removed)}")
    await git.run("reset", "--hard", "--quiet")
    await git.run("clean", "-fdxq")


def _remove_debris(dot_git: Path) -> list[str]:
    # Deleting the state files is what `rebase --abort` / `merge --abort` amount to once the
    # worktree is reset anyway, and unlike them it cannot fail on a half-written state.
    removed: list[str] = []
    for name in (*_STALE_LOCKS, *_OPERATION_STATE):
        target = dot_git / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        removed.append(name)
    for stale in (dot_git / "refs").rglob("*.lock"):
        stale.unlink()
        removed.append(str(stale.relative_to(dot_git)))
    return removed


async def _reset_config(git: _Git) -> None:
    """Rewrite `.git/config` from scratch: a previous agent may have edited it (aliases,
    fsmonitor or filter commands, refspecs, hooksPath), and every run starts clean."""
    kept = await git.run("config", "--local", "--get-regexp", _FORMAT_KEYS, check=False)
    sections: dict[str, list[str]] = {"core": ["\tbare = false", "\tlogallrefupdates = true"]}
    for line in kept.splitlines():
        key, _, value = line.partition(" ")
        section, _, name = key.partition(".")
        sections.setdefault(section, []).append(f"\t{name} = {value}")
    text = "".join(f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items())
    await asyncio.to_thread((git.path / ".git" / "config").write_text, text, encoding="utf-8")


async def _configure(git: _Git, agent: str, clone_url: str) -> None:
    settings = [
        ("remote.origin.url", clone_url),
        ("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
        ("user.name", agent),
        ("user.email", f"{agent}@users.noreply.k3sc.dev"),
        # A developer's global hooksPath would silently bypass the safety hooks.
        ("core.hooksPath", str(git.path / ".git" / "hooks")),
        # A robot identity has no signing key; a global gpgsign would fail every commit.
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
        # A bare `git push` goes to the same-named branch, never to an upstream like main.
        ("push.default", "current"),
    ]
    for key, value in settings:
        await git.run("config", key, value)
    helper_key = _helper_key(clone_url)
    await git.run("config", "--unset-all", helper_key, check=False)
    await git.run("config", "--add", helper_key, "")
    await git.run("config", "--add", helper_key, CREDENTIAL_HELPER)


def _helper_key(clone_url: str) -> str:
    """Scope the helper to the remote's host so the token is never offered to another server."""
    parts = urlsplit(clone_url)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return f"credential.{parts.scheme}://{host}.helper"
    return "credential.helper"


async def _remote_default(git: _Git) -> str:
    # Ask the remote every time: a repository's default branch can be renamed (master → main).
    await git.run("remote", "set-head", "origin", "--auto", time_limit=GIT_TIMEOUT_S)
    ref = (await git.run("symbolic-ref", "--short", "refs/remotes/origin/HEAD")).strip()
    base = ref.removeprefix("origin/")
    _check_branch(base, "remote default branch")
    return base


async def _install_hooks(path: Path, branch: str, words: str) -> None:
    hooks = path / ".git" / "hooks"
    scripts = {"pre-push": pre_push_hook(branch), "commit-msg": commit_msg_hook(words)}

    def write() -> None:
        hooks.mkdir(parents=True, exist_ok=True)
        # Only k3sc's hooks: whatever an earlier run left there would run in the next one.
        for stale in hooks.iterdir():
            if stale.name in scripts:
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        for name, text in scripts.items():
            target = hooks / name
            target.write_text(text, encoding="utf-8")
            target.chmod(0o755)

    await asyncio.to_thread(write)


def pre_push_hook(branch: str) -> str:
    """A pre-push hook that allows pushing `refs/heads/<branch>` and nothing else."""
    return f"""#!/bin/sh
# Installed by k3sc: this workspace may push only its own issue branch.
allowed='{branch}'
zero='0000000000000000000000000000000000000000'
status=0
while read -r local_ref local_sha remote_ref remote_sha; do
  b="${{remote_ref#refs/heads/}}"
  if [ "$remote_ref" != "refs/heads/$allowed" ]; then
    echo "[security] push to '$b' blocked (only '$allowed' allowed)" >&2
    status=1
  elif [ "$local_sha" = "$zero" ]; then
    echo "[security] deleting '$b' blocked (agents never delete remote branches)" >&2
    status=1
  fi
done
exit $status
"""


def commit_msg_hook(words: str) -> str:
    """A commit-msg hook refusing `<word> #N` (and `owner/repo#N`), which would close issues."""
    # POSIX ERE so it behaves the same under every grep; [[:space:]] stands for \\s.
    pattern = f"(^|[^[:alnum:]_])({words}):?[[:space:]]+([[:alnum:]_.-]+/[[:alnum:]_.-]+)?#[0-9]+"
    return f"""#!/bin/sh
# Installed by k3sc: closing keywords would let a merge close the issue behind k3sc's back.
if grep -Eiq '{pattern}' "$1"; then
  echo "[security] commit blocked: message contains {words} #N (auto-closes issues)" >&2
  exit 1
fi
exit 0
"""


# ----------------------------------------------------------------------------- helpers


def _check_branch(name: str, what: str) -> None:
    if not _SAFE_BRANCH.fullmatch(name) or ".." in name or name.endswith((".lock", "/", ".")) or "//" in name:
        raise AgentError(f"{what} {name!r} is not a usable branch name")


def _check_words(words: Sequence[str]) -> str:
    cleaned = [w.strip() for w in words if w.strip()]
    if not cleaned:
        raise AgentError("safety.blocked_commit_words is empty; the commit-msg hook needs at least one word")
    for word in cleaned:
        if not _SAFE_WORD.fullmatch(word):
            raise AgentError(f"blocked commit word {word!r} may hold only letters, spaces and hyphens")
    return "|".join(cleaned)


def _safe_url(url: str) -> str:
    """The URL without any user:password part, for logs and errors."""
    return _USERINFO.sub(r"\1***@", url)


class _Git:
    """Runs git in one workspace with a prompt-free environment that carries the token."""

    def __init__(self, path: Path, token: str | None) -> None:
        self.path = path
        self._token = token
        env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GCM_INTERACTIVE"] = "never"
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        # No hook runs while k3sc itself drives git (with the token in the environment); the
        # agent's own git gets the safety hooks through the workspace config instead.
        env.update(
            {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": os.devnull}
        )
        if token:
            env["GITHUB_TOKEN"] = token
            # The agent's token, in the environment of git run for the agent's workspace only
            # (clone, fetch, set-head, and the upload-pack a local remote spawns): marked so an
            # audit of /proc (the secret canary test) can tell these from a leak.
            env[AGENT_GIT_MARKER] = "1"
        self.env = env

    async def has_ref(self, ref: str) -> bool:
        out = await self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return bool(out.strip())

    async def run(
        self, *args: str, cwd: Path | None = None, check: bool = True, time_limit: float = 120.0
    ) -> str:
        """Run `git <args>`; return stdout, or raise AgentError naming the command and stderr tail."""
        shown = "git " + " ".join(_shown(a) for a in args)
        where = cwd or self.path
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=where,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Own group: on timeout or cancellation remote helpers and ssh die with git.
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), time_limit)
        except TimeoutError:
            await _kill_and_reap(proc)
            raise AgentError(f"`{shown}` timed out after {time_limit:.0f}s in {where}") from None
        except BaseException:
            await _kill_and_reap(proc)
            raise
        if check and proc.returncode != 0:
            tail = self._redact(stderr.decode(errors="replace")).strip().splitlines()[-8:]
            raise AgentError(
                f"`{shown}` failed with exit code {proc.returncode} in {where}: " + " | ".join(tail)
            )
        return stdout.decode(errors="replace")

    def _redact(self, text: str) -> str:
        text = _safe_url(text)
        return text.replace(self._token, "***") if self._token else text


def _shown(arg: str) -> str:
    """An argument as it may appear in a log or error: no credentials, no helper script."""
    if arg in (CREDENTIAL_HELPER, f"credential.helper={CREDENTIAL_HELPER}"):
        return arg.replace(CREDENTIAL_HELPER, "<k3sc-credential-helper>")
    return _safe_url(arg)


async def _kill_and_reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Reap it so no zombie or unclosed transport outlives the call; SIGKILL makes this quick.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 10)
