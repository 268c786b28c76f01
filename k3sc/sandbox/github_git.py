"""Bare git remotes behind the fake GitHub: create them, and read branches live.

Agents clone from and push to these paths for real, so the fake must answer branch and
pull-request questions from what is on disk *now*, not from a copy of its own. Refs are read
straight from the files (no subprocess) because list endpoints touch them on every request;
only the branch endpoint, which needs commit metadata, shells out to git.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The identity and config isolation every git call here uses, so the developer's
# ~/.gitconfig (signing, hooks, templates) cannot leak into the fake's repos.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "k3sc fake github",
    "GIT_AUTHOR_EMAIL": "fake-github@k3sc.invalid",
    "GIT_COMMITTER_NAME": "k3sc fake github",
    "GIT_COMMITTER_EMAIL": "fake-github@k3sc.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}

# check-ref-format's rules, enough to keep a branch name from escaping refs/heads.
_BAD_REF = re.compile(r"(^|/)\.|\.\.|[\x00-\x20~^:?*\[\\\x7f]|@\{|\.lock(/|$)|/$|^/|//|^@$|\.$")


@dataclass(frozen=True)
class Commit:
    """What the branch endpoint needs to know about a commit."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: int
    committer_name: str
    committer_email: str
    committer_date: int
    message: str


def _git(git_dir: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_DIR": str(git_dir)}
    done = subprocess.run(["git", *args], input=stdin, env=env, capture_output=True, check=True)
    return done.stdout.decode().strip()


def init_bare(path: Path, default_branch: str) -> str:
    """Create a bare repo at `path` whose `default_branch` holds one commit adding a README.

    The commit is built with plumbing (hash-object, mktree, commit-tree), so no work tree
    or temporary clone is needed. Returns the commit's sha.
    """
    if not valid_branch(default_branch):
        raise ValueError(f"invalid branch name {default_branch!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        check=True,
    )
    readme = _git(path, "hash-object", "-w", "--stdin", stdin=f"# {path.stem}\n".encode())
    tree = _git(path, "mktree", stdin=f"100644 blob {readme}\tREADME.md\n".encode())
    commit = _git(path, "commit-tree", tree, "-m", "Initial commit")
    _git(path, "update-ref", f"refs/heads/{default_branch}", commit)
    return commit


def valid_branch(name: str) -> bool:
    """True when `name` is a legal branch name (and so safe to join under refs/heads)."""
    return bool(name) and _BAD_REF.search(name) is None


def branch_sha(git_dir: Path, branch: str) -> str | None:
    """The sha `branch` points at, read from the ref files; None when there is no such branch."""
    if not valid_branch(branch):
        return None
    ref = f"refs/heads/{branch}"
    try:
        return (git_dir / ref).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    try:
        packed = (git_dir / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    return None


def read_commit(git_dir: Path, sha: str) -> Commit:
    """Parse `git cat-file commit` output for `sha`."""
    raw = _git(git_dir, "cat-file", "commit", sha)
    header, _, message = raw.partition("\n\n")
    fields: dict[str, list[str]] = {}
    for line in header.splitlines():
        key, _, value = line.partition(" ")
        fields.setdefault(key, []).append(value)

    def person(key: str) -> tuple[str, str, int]:
        who, _, when = fields[key][0].rpartition(">")
        name, _, email = who.partition(" <")
        return name, email, int(when.split()[0])

    author, committer = person("author"), person("committer")
    return Commit(
        sha=sha,
        tree=fields["tree"][0],
        parents=tuple(fields.get("parent", [])),
        author_name=author[0],
        author_email=author[1],
        author_date=author[2],
        committer_name=committer[0],
        committer_email=committer[1],
        committer_date=committer[2],
        message=message,
    )


def has_commits_beyond(git_dir: Path, head_sha: str, base_sha: str) -> bool:
    """True when `head_sha` holds a commit `base_sha` lacks (GitHub's "No commits between" rule)."""
    if head_sha == base_sha:
        return False
    env = {**os.environ, **GIT_ENV, "GIT_DIR": str(git_dir)}
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", head_sha, base_sha], env=env, capture_output=True, check=False
    )
    return done.returncode != 0


def diff_stats(git_dir: Path, base_sha: str, head_sha: str) -> tuple[int, int, int, int]:
    """(commits, additions, deletions, changed files) of base...head, as a pull request reports them."""
    try:
        count = _git(git_dir, "rev-list", "--count", f"{base_sha}..{head_sha}")
        numstat = _git(git_dir, "diff", "--numstat", f"{base_sha}...{head_sha}")
    except subprocess.CalledProcessError:
        return 0, 0, 0, 0  # a branch was deleted after the pull request was opened
    additions = deletions = files = 0
    for line in numstat.splitlines():
        added, removed, _ = line.split("\t", 2)
        files += 1
        additions += int(added) if added.isdigit() else 0  # "-" for binary files
        deletions += int(removed) if removed.isdigit() else 0
    return int(count), additions, deletions, files


# github.com's clone URL: https://github.com/<owner>/<name>.git, then git's smart-HTTP paths.
SMART_HTTP = re.compile(r"^/[^/]+/[^/]+\.git/(info/refs|git-upload-pack|git-receive-pack)$")


def smart_http(
    root: Path, method: str, path: str, query: str, headers: dict[str, str], body: bytes, user: str
) -> tuple[int, dict[str, str], bytes]:
    """Serve git's smart HTTP over the bare remotes under `root`, as `git http-backend` (CGI).

    What a client that cannot see the remotes' paths clones and pushes through, such as an agent
    in a pod of the fake cluster. `user` is the authenticated login (`git http-backend` allows a
    push only with one); empty for an anonymous fetch.
    """
    env = {
        **GIT_ENV,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
    }
    if user:
        env["REMOTE_USER"] = user
    if "git-protocol" in headers:
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    if headers.get("content-encoding"):
        env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
    done = subprocess.run(
        ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=300, check=False
    )
    head, separator, payload = done.stdout.partition(b"\r\n\r\n")
    if not separator:
        head, _, payload = done.stdout.partition(b"\n\n")
    status, out = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            out[name.strip()] = value.strip()
    if done.returncode != 0 and status == 200:
        status, payload = 500, done.stderr
    return status, out, payload
