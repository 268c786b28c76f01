"""Where Claude Code and Codex keep their files, and where k3sc keeps the sessions index.

Claude roots follow ccusage: `CLAUDE_CONFIG_DIR` (comma-separated, `~` expanded, an entry may
point at `projects/` itself) replaces the defaults `$XDG_CONFIG_HOME/claude` and `~/.claude`; each
root counts only if it has a `projects/` dir. `K3SC_CLAUDE_EXTRA_DIRS` (same syntax) adds roots
on top, for WSL or several installs. Codex keeps rollouts under `$CODEX_HOME/sessions` (default
`~/.codex`). Everything takes the environment as an argument so tests never see the real home.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from k3sc.errors import ConfigError

ENV_CLAUDE = "CLAUDE_CONFIG_DIR"
ENV_EXTRA = "K3SC_CLAUDE_EXTRA_DIRS"
ENV_CODEX = "CODEX_HOME"
ENV_CACHE_DIR = "K3SC_CACHE_DIR"  # the same variable and default as the GitHub HTTP cache
ENV_HOME = "K3SC_HOME"  # the same variable and default as k3sc.config.k3sc_home()


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or environ.get("USERPROFILE") or Path.home())


def _expand(entry: str, environ: Mapping[str, str]) -> Path:
    if entry == "~" or entry.startswith(("~/", "~\\")):
        return _home(environ) / entry[2:]
    return Path(entry)


def _entries(value: str, environ: Mapping[str, str]) -> list[Path]:
    found: list[Path] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        path = _expand(entry, environ)
        if path.name == "projects":
            path = path.parent
        found.append(path)
    return found


def claude_roots(environ: Mapping[str, str]) -> list[Path]:
    """Claude Code data roots that have a `projects/` dir, deduplicated, in order."""
    configured = environ.get(ENV_CLAUDE, "").strip()
    if configured:
        candidates = _entries(configured, environ)
        valid = [path for path in candidates if (path / "projects").is_dir()]
        if not valid:
            raise ConfigError(
                f"No Claude data directory found in {ENV_CLAUDE}={configured!r}: none of its entries has a "
                "projects/ folder. Point it at Claude Code's config dir (the one holding projects/ and "
                "sessions/), or unset it to use ~/.config/claude and ~/.claude.",
                source=f"env:{ENV_CLAUDE}",
                key=ENV_CLAUDE,
            )
    else:
        xdg = environ.get("XDG_CONFIG_HOME", "").strip()
        config_home = _expand(xdg, environ) if xdg else _home(environ) / ".config"
        candidates = [config_home / "claude", _home(environ) / ".claude"]
        valid = [path for path in candidates if (path / "projects").is_dir()]
    extra = [path for path in _entries(environ.get(ENV_EXTRA, ""), environ) if (path / "projects").is_dir()]
    return _unique([*valid, *extra])


def registry_roots(environ: Mapping[str, str]) -> list[Path]:
    """Roots whose `sessions/` registry may list running processes (a fresh install may have no
    `projects/` yet while a session already runs)."""
    configured = environ.get(ENV_CLAUDE, "").strip()
    if configured:
        candidates = _entries(configured, environ)
    else:
        xdg = environ.get("XDG_CONFIG_HOME", "").strip()
        config_home = _expand(xdg, environ) if xdg else _home(environ) / ".config"
        candidates = [config_home / "claude", _home(environ) / ".claude"]
    candidates += _entries(environ.get(ENV_EXTRA, ""), environ)
    return _unique([path for path in candidates if (path / "sessions").is_dir()])


def codex_home(environ: Mapping[str, str]) -> Path:
    configured = environ.get(ENV_CODEX, "").strip()
    return _expand(configured, environ) if configured else _home(environ) / ".codex"


def cache_dir(environ: Mapping[str, str]) -> Path:
    """`$K3SC_CACHE_DIR`, else `$XDG_CACHE_HOME/k3sc`, else `~/.cache/k3sc`."""
    configured = environ.get(ENV_CACHE_DIR, "").strip()
    if configured:
        return _expand(configured, environ)
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    return (_expand(xdg, environ) if xdg else _home(environ) / ".cache") / "k3sc"


def state_dir(environ: Mapping[str, str]) -> Path:
    """`$K3SC_HOME/sessions` (default `~/.k3sc/sessions`): state that must survive a cache wipe."""
    configured = environ.get(ENV_HOME, "").strip()
    return (_expand(configured, environ) if configured else _home(environ) / ".k3sc") / "sessions"


def slug(cwd: str) -> str:
    """Claude Code's project folder name for a working directory: every non-alphanumeric → `-`."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


def _unique(paths: list[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(os.path.normcase(os.path.abspath(path)), path)
    return list(seen.values())
