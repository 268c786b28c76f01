"""What the agent is told and given: its prompt, its command line and its environment.

The original relied on Claude Code skills mounted from the host (`/issue`, `/review`); here the
instructions ship with k3sc as two templates that a config file may replace, so any agent CLI
gets the same contract: own branch only, no labels, push, open the PR or post
`## Review by <agent>`. The environment is built from an allowlist rather than inherited, so
the orchestrator's settings and unrelated secrets never reach the agent.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from k3sc.config import SECRET_ENV_VARS
from k3sc.errors import AgentError
from k3sc.labels import Family, Kind
from k3sc.models import Repo

PROMPT_PLACEHOLDER = "{prompt}"

# Exactly these names are replaced; every other brace (code blocks, JSON, shell `${x}`) stays.
_PLACEHOLDER = re.compile(r"\{(repo|issue|pr|pr_ref|agent|branch|base)\}")

CLAUDE_AUTH_VARS = frozenset(
    {
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "CLAUDE_MODEL",
    }
)
CLAUDE_AUTH_PREFIXES = ("AWS_",)
CODEX_AUTH_VARS = frozenset({"OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_AUTH_JSON", "CODEX_HOME"})

# Inherited from the orchestrator: what a CLI, git and build tools need to work at all.
INHERITED_VARS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "RUSTUP_HOME",
        "GOPATH",
        "GOCACHE",
        "GOMODCACHE",
    }
)
INHERITED_PREFIXES = ("LC_",)


def render(
    kind: Kind,
    *,
    repo: Repo,
    issue: int,
    pr: int | None,
    agent: str,
    branch: str,
    base: str,
    override: Path | None,
) -> str:
    """The prompt for one run: the packaged template for `kind`, or `override` if configured.

    Placeholders `{repo} {issue} {pr} {pr_ref} {agent} {branch} {base}` are replaced; `{pr}` is
    empty and `{pr_ref}` names the branch's open PR when the PR number is unknown.

    Raises:
        AgentError: `override` is set but cannot be read.
    """
    if override is not None:
        try:
            template = override.read_text(encoding="utf-8")
        except OSError as exc:
            raise AgentError(
                f"prompt template {override} (agent.prompts.{kind.value}) cannot be read: {exc.strerror}"
            ) from None
    else:
        template = _packaged(kind)
    values = {
        "repo": repo.full_name,
        "issue": str(issue),
        "pr": "" if pr is None else str(pr),
        "pr_ref": f"pull request #{pr}" if pr is not None else f"the open pull request from branch {branch}",
        "agent": agent,
        "branch": branch,
        "base": base,
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@functools.cache
def _packaged(kind: Kind) -> str:
    # Read once per process; the templates are package data and never change at run time.
    return (resources.files("k3sc.agent") / "templates" / f"{kind.value}.md").read_text(encoding="utf-8")


def command_for(family: Family, prompt: str, command: Sequence[str] | None) -> list[str]:
    """The agent's argv: the family's CLI, or `command` (config `agent.command`) instead.

    In a configured command every `{prompt}` inside an argument is replaced by the prompt;
    without one the prompt reaches the command only as `$K3SC_PROMPT`.
    """
    if command:
        return [arg.replace(PROMPT_PLACEHOLDER, prompt) for arg in command]
    if family is Family.CODEX:
        return ["codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox", prompt]
    return [
        "claude",
        "--dangerously-skip-permissions",
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
    ]


def agent_env(
    *,
    family: Family,
    repo: Repo,
    issue: int,
    kind: Kind,
    pr: int | None,
    agent: str,
    branch: str,
    base: str,
    workspace: Path,
    attempt: int,
    prompt: str,
    github_api_url: str,
    github_url: str,
    token: str | None,
    family_secrets: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    inherit: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of the agent process.

    Args:
        family: decides which `family_secrets` pass (Claude's to Claude, Codex's to Codex).
        github_api_url, github_url: the GitHub API and web URLs; a web host other than
            github.com also gets `GH_HOST` and `GH_ENTERPRISE_TOKEN` for gh.
        token: the GitHub token, as `GITHUB_TOKEN` and `GH_TOKEN`.
        family_secrets: the agent CLI's credentials (CLAUDE_CODE_OAUTH_TOKEN, AWS_*,
            OPENAI_API_KEY, CODEX_AUTH_JSON, ...); names not belonging to `family` are dropped.
        extra: added last, verbatim (e.g. `CLAUDE_MODEL` chosen by the flow).
        inherit: the parent environment to pick the allowlisted basics from (default
            `os.environ`); a parameter so tests can pass their own.
    """
    parent = os.environ if inherit is None else inherit
    env = {k: v for k, v in parent.items() if k in INHERITED_VARS or k.startswith(INHERITED_PREFIXES)}
    env.update(
        {
            "K3SC_REPO": repo.full_name,
            "K3SC_ISSUE": str(issue),
            "K3SC_KIND": kind.value,
            "K3SC_PR": "" if pr is None else str(pr),
            "K3SC_AGENT": agent,
            "K3SC_FAMILY": family.value,
            "K3SC_BRANCH": branch,
            "K3SC_BASE": base,
            "K3SC_WORKSPACE": str(workspace),
            "K3SC_ATTEMPT": str(attempt),
            "K3SC_PROMPT": prompt,
            "K3SC_GITHUB_API_URL": github_api_url,
            # Nobody is there to answer a prompt.
            "GIT_TERMINAL_PROMPT": "0",
            "GH_PROMPT_DISABLED": "1",
            "GH_NO_UPDATE_NOTIFIER": "1",
        }
    )
    host = (urlsplit(github_url).netloc or "github.com").lower()
    env["GH_REPO"] = repo.full_name if host == "github.com" else f"{host}/{repo.full_name}"
    if token:
        env["GITHUB_TOKEN"] = token
        env["GH_TOKEN"] = token
        if host != "github.com":
            # gh reads GitHub Enterprise credentials from these.
            env["GH_HOST"] = host
            env["GH_ENTERPRISE_TOKEN"] = token
    env.update({k: v for k, v in (family_secrets or {}).items() if belongs(k, family)})
    env.update(extra or {})
    return env


def belongs(name: str, family: Family) -> bool:
    """Whether an environment variable is one of `family`'s credentials or settings."""
    if family is Family.CLAUDE:
        return name in CLAUDE_AUTH_VARS or name.startswith(CLAUDE_AUTH_PREFIXES)
    return name in CODEX_AUTH_VARS


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The secret values in an agent environment, for `process.run(secrets=...)`."""
    return [v for k, v in env.items() if k in SECRET_ENV_VARS and v]
