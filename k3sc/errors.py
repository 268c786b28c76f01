"""k3sc's error hierarchy, drawn once so every layer raises the same few types.

    K3scError                      base; the CLI prints it as one paragraph
    ├── ConfigError                bad config file, key or env value (exit 2); names file + key path
    ├── UsageError                 bad command-line input (exit 2)
    ├── GitHubError                anything GitHub said or failed to say
    │   ├── AuthError              missing or rejected credentials
    │   ├── NotFound               404 for a repo, issue, PR or branch
    │   ├── Conflict               a claim/label write lost a race (state or owner changed)
    │   ├── RateLimited            primary or secondary limit; carries the reset time
    │   └── Unprocessable          422: GitHub rejected the request body
    ├── OrchestrationError         Prefect server, deployment or run problems
    └── AgentError                 preparing or running an agent failed

Vendor exceptions (githubkit, httpx, prefect) are translated into these at the adapter
boundary and nowhere else. Messages never carry tokens, headers or whole bodies.
"""

from __future__ import annotations

from datetime import datetime


class K3scError(Exception):
    """Base of every error k3sc raises on purpose."""

    exit_code = 1


class ConfigError(K3scError):
    """The configuration is unusable; the message names the source, key path and what was expected."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.key = key


class UsageError(K3scError):
    """A command-line argument or option is invalid."""

    exit_code = 2


class GitHubError(K3scError):
    """GitHub answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(GitHubError):
    """No usable GitHub credentials, or GitHub rejected them."""

    exit_code = 2


class NotFound(GitHubError):
    """The repository, issue, pull request or branch does not exist (or is invisible to us)."""


class Conflict(GitHubError):
    """Someone else changed the issue between our read and our write; nothing of ours was left behind."""


class Unprocessable(GitHubError):
    """GitHub rejected the request as invalid (HTTP 422)."""


class RateLimited(GitHubError):
    """A GitHub rate limit is exhausted and its reset is further away than we are willing to wait."""

    def __init__(self, message: str, *, reset_at: datetime | None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.reset_at = reset_at


class OrchestrationError(K3scError):
    """The Prefect server, a deployment or a flow run could not be reached or used."""


class AgentError(K3scError):
    """Preparing the workspace or running the agent command failed."""
