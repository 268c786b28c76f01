"""`k3sc cargo-lock`: run cargo with one machine-wide build lock per target directory.

Agents sharing a Cargo target dir corrupt each other's builds when two cargos run at once. This
takes an exclusive OS file lock (filelock: fcntl on POSIX, msvcrt on Windows, released by the OS
if the process dies) on `<target>/.cargo-build.lock`, adds `--manifest-path` when the caller did
not give one and a `Cargo.toml` is found upwards, builds first for `run`/`test` so compile errors
surface before anything runs, and returns cargo's exit code unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from k3sc.errors import K3scError, UsageError

LOCK_NAME = ".cargo-build.lock"
USAGE = "usage: k3sc cargo-lock <cargo subcommand> [args...]"


def lock_path(environ: Mapping[str, str], cwd: Path) -> Path:
    """`$CARGO_TARGET_DIR`, else `./target`, else `./rust/target` if it exists, else the cwd."""
    target = environ.get("CARGO_TARGET_DIR", "").strip()
    if target:
        return Path(target) / LOCK_NAME
    for candidate in (cwd / "target", cwd / "rust" / "target"):
        if candidate.is_dir():
            return candidate / LOCK_NAME
    return cwd / LOCK_NAME


def find_manifest(cwd: Path) -> Path | None:
    """The nearest `Cargo.toml` (or `rust/Cargo.toml`) at or above `cwd`."""
    for folder in (cwd, *cwd.parents):
        for candidate in (folder / "Cargo.toml", folder / "rust" / "Cargo.toml"):
            if candidate.is_file():
                return candidate
    return None


def has_manifest(args: Sequence[str]) -> bool:
    head = args[: args.index("--")] if "--" in args else args
    return any(arg == "--manifest-path" or arg.startswith("--manifest-path=") for arg in head)


def with_manifest(args: Sequence[str], manifest: Path | None) -> list[str]:
    """`args` with `--manifest-path <manifest>` before the first `--` (or at the end)."""
    if manifest is None or has_manifest(args):
        return list(args)
    flag = ["--manifest-path", str(manifest)]
    if "--" in args:
        cut = args.index("--")
        return [*args[:cut], *flag, *args[cut:]]
    return [*args, *flag]


def build_first(args: Sequence[str]) -> list[str] | None:
    """The `cargo build …` to run before `run`/`test`: the flags up to the first `--`."""
    if not args or args[0] not in ("run", "test"):
        return None
    rest = args[1:]
    return ["build", *(rest[: rest.index("--")] if "--" in rest else rest)]


def run(
    args: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    err: TextIO,
    execute: Callable[[list[str]], int] | None = None,
) -> int:
    """Take the lock, run cargo, release; the exit code is cargo's. `execute` replaces the real
    cargo call (tests; it receives the full argv)."""
    from filelock import FileLock

    if not args:
        raise UsageError(USAGE)
    env = os.environ if environ is None else environ
    here = cwd or Path.cwd()
    cargo = "cargo"
    if execute is None:
        found = shutil.which("cargo", path=env.get("PATH"))
        if found is None:
            raise K3scError("cargo is not on PATH; install Rust (rustup) or fix PATH, then retry.")
        cargo = found
        execute = _execute
    full = with_manifest(args, find_manifest(here))
    path = lock_path(env, here)
    path.parent.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        err.write(f"[cargo-lock] {time.strftime('%H:%M:%S')} {message}\n")
        err.flush()

    say("waiting for build lock...")
    with FileLock(path):
        say(f"acquired lock, running: cargo {' '.join(full)}")
        build = build_first(full)
        code = 0
        if build is not None:
            say(f"running: cargo {' '.join(build)}")
            code = execute([cargo, *build])
            if code == 0:
                say(f"build ok, running: cargo {' '.join(full)}")
        if code == 0:
            code = execute([cargo, *full])
    say("released lock")
    return code


def _execute(argv: list[str]) -> int:
    return subprocess.run(argv, check=False).returncode
