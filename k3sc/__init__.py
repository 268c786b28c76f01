"""k3sc: a fleet of AI coding agents (Claude Code, Codex) working GitHub issues, orchestrated by Prefect.

This module is the curated public surface, pinned by `tests/test_cli_imports.py`. It imports only the
dependency-free core (errors, labels, models) because every `k3sc` command imports it first; heavier
parts are imported as modules where they are needed, e.g. `from k3sc import config`.
"""

from __future__ import annotations

from k3sc.errors import (
    AgentError,
    AuthError,
    ConfigError,
    Conflict,
    GitHubError,
    K3scError,
    NotFound,
    OrchestrationError,
    RateLimited,
    Unprocessable,
    UsageError,
)
from k3sc.labels import Family, Kind, State
from k3sc.models import AgentRun, Issue, Outcome, Pull, Repo, RunPhase

# Kept literal (not importlib.metadata) so `k3sc --version` costs no import; a test checks it
# against the installed distribution's metadata, which comes from pyproject.toml.
__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "AgentRun",
    "AuthError",
    "ConfigError",
    "Conflict",
    "Family",
    "GitHubError",
    "Issue",
    "K3scError",
    "Kind",
    "NotFound",
    "OrchestrationError",
    "Outcome",
    "Pull",
    "RateLimited",
    "Repo",
    "RunPhase",
    "State",
    "Unprocessable",
    "UsageError",
    "__version__",
]
