"""`k3sc rotate-auth`: copy this machine's agent credentials into the Prefect blocks.

Reads, portably (no WSL, no kubectl): the Claude OAuth token from Claude Code's credentials file
(its expiry checked), the GitHub token k3sc itself would use, Codex's auth.json, an Anthropic or
OpenAI key from the environment, and Bedrock credentials — only when Bedrock is asked for
(`aws_profile` set, or `CLAUDE_CODE_USE_BEDROCK=1`), never silently because some AWS keys exist.
Everything goes into the blocks `k3sc-github` and `k3sc-agents` as secrets; the output names the
keys stored, never a value. Agents read the blocks when they start, so rotation affects new runs.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from k3sc.config import Config
from k3sc.errors import UsageError
from k3sc.labels import Family

# `aws configure export-credentials` in env format; injectable for tests.
AwsExport = Callable[[str], str | None]


@dataclass
class Collected:
    """What was found: agent variables (for `k3sc-agents`), the GitHub token and what to tell the user."""

    agent: dict[str, SecretStr] = field(default_factory=dict)
    github_token: SecretStr | None = None
    github_source: str = ""
    webhook_secret: SecretStr | None = None  # webhook.secret / K3SC_WEBHOOK_SECRET, for the receiver
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def claude_credentials_file(environ: Mapping[str, str], home: Path) -> Path:
    """Claude Code keeps its OAuth credentials in `$CLAUDE_CONFIG_DIR/.credentials.json` (else ~/.claude)."""
    root = environ.get("CLAUDE_CONFIG_DIR") or str(home / ".claude")
    return Path(root) / ".credentials.json"


def codex_auth_file(environ: Mapping[str, str], home: Path) -> Path:
    return Path(environ.get("CODEX_HOME") or str(home / ".codex")) / "auth.json"


def read_claude_oauth(path: Path, now: datetime, found: Collected) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        found.warnings.append(f"claude: no OAuth credentials at {path} (run `claude auth login`)")
        return
    try:
        oauth = json.loads(text).get("claudeAiOauth") or {}
        token = str(oauth.get("accessToken") or "").strip()
    except (ValueError, AttributeError):
        raise UsageError(
            f"{path} is not valid JSON with a claudeAiOauth.accessToken; run `claude auth login`."
        ) from None
    if not token:
        raise UsageError(f"{path} has no claudeAiOauth.accessToken; run `claude auth login`.")
    found.agent["CLAUDE_CODE_OAUTH_TOKEN"] = SecretStr(token)
    expires = oauth.get("expiresAt")
    if isinstance(expires, (int, float)) and not isinstance(expires, bool):
        when = datetime.fromtimestamp(expires / 1000, UTC)
        if when <= now:
            found.warnings.append(
                f"claude: OAuth token expired {when:%Y-%m-%d %H:%M} UTC (run `claude auth login`, "
                "or `claude setup-token` for a long-lived one)"
            )
        else:
            found.notes.append(f"claude: OAuth token valid until {when:%Y-%m-%d %H:%M} UTC")


def read_codex_auth(path: Path, found: Collected) -> None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return
    try:
        document = json.loads(text)
    except ValueError:
        raise UsageError(f"{path} is not valid JSON; run `codex login` again.") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path} must hold a JSON object; run `codex login` again.")
    found.agent["CODEX_AUTH_JSON"] = SecretStr(text)
    key = str(document.get("OPENAI_API_KEY") or "").strip()
    if key:
        found.agent["OPENAI_API_KEY"] = SecretStr(key)


def read_bedrock(
    config: Config, environ: Mapping[str, str], home: Path, aws_export: AwsExport, found: Collected
) -> None:
    """Bedrock credentials, when asked for: the profile's exported credentials, else the environment,
    else `[default]` of ~/.aws/credentials."""
    if not config.aws_profile and environ.get("CLAUDE_CODE_USE_BEDROCK") != "1":
        return
    values: dict[str, str] = {}
    if config.aws_profile:
        exported = aws_export(config.aws_profile)
        if exported is None:
            profile = config.aws_profile
            found.warnings.append(
                f"aws: no credentials for profile {profile} (run `aws sso login --profile {profile}`)"
            )
        else:
            for line in exported.splitlines():
                name, sep, value = line.strip().partition("=")
                if sep and name.startswith("AWS_") and value:
                    values[name] = value.strip().strip("'\"")
    elif environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        values = {
            k: environ[k]
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
            if environ.get(k)
        }
    else:
        parser = configparser.ConfigParser()
        parser.read(home / ".aws" / "credentials")
        default = dict(parser["default"]) if parser.has_section("default") else {}
        names = {
            "aws_access_key_id": "AWS_ACCESS_KEY_ID",
            "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
            "aws_session_token": "AWS_SESSION_TOKEN",
            "region": "AWS_REGION",
        }
        values = {env_name: default[key] for key, env_name in names.items() if default.get(key)}
    if not values.get("AWS_ACCESS_KEY_ID") or not values.get("AWS_SECRET_ACCESS_KEY"):
        return
    values["AWS_REGION"] = environ.get("AWS_REGION") or values.get("AWS_REGION") or "us-east-1"
    if expiry := values.pop("AWS_CREDENTIAL_EXPIRATION", None):
        found.notes.append(f"aws: credentials valid until {expiry}")
    values["CLAUDE_CODE_USE_BEDROCK"] = "1"
    found.agent.update({k: SecretStr(v) for k, v in values.items()})


def collect(
    config: Config,
    *,
    environ: Mapping[str, str],
    home: Path,
    now: datetime,
    aws_export: AwsExport,
    github_token: SecretStr | None,
    github_source: str = "",
) -> Collected:
    """Every credential found on this machine; UsageError (exit 2) when a family could not run."""
    found = Collected(
        github_token=github_token, github_source=github_source, webhook_secret=config.webhook.secret
    )
    read_claude_oauth(claude_credentials_file(environ, home), now, found)
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        if environ.get(name, "").strip():
            found.agent[name] = SecretStr(environ[name].strip())
    read_codex_auth(codex_auth_file(environ, home), found)
    read_bedrock(config, environ, home, aws_export, found)
    missing = []
    if Family.CLAUDE in config.families and not found.agent.keys() & {
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_USE_BEDROCK",
    }:
        missing.append(
            "claude (run `claude auth login`, set ANTHROPIC_API_KEY, or set aws_profile for Bedrock)"
        )
    if Family.CODEX in config.families and not found.agent.keys() & {"CODEX_AUTH_JSON", "OPENAI_API_KEY"}:
        missing.append("codex (run `codex login` or set OPENAI_API_KEY)")
    if missing:
        raise UsageError(
            "no credentials found for " + " and for ".join(missing) + "; or drop the family from `families`."
        )
    if github_token is None:
        found.warnings.append(
            "github: no token found (set GITHUB_TOKEN or run `gh auth login`); the block keeps none"
        )
    return found


def aws_cli_export(profile: str) -> str | None:
    """`aws configure export-credentials --profile P --format env-no-export`, or None on failure."""
    try:
        result = subprocess.run(
            ["aws", "configure", "export-credentials", "--profile", profile, "--format", "env-no-export"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


async def gather(config: Config, environ: Mapping[str, str] | None = None) -> Collected:
    """`collect` on this machine: its home, environment, clock, aws CLI and k3sc's GitHub credentials."""
    from k3sc.errors import AuthError
    from k3sc.github import credentials

    env = dict(os.environ if environ is None else environ)
    token: SecretStr | None = None
    source = ""
    try:
        resolved = await credentials.resolve(config, environ=env)
    except AuthError:
        resolved = None
    if isinstance(resolved, credentials.TokenCredentials):
        token, source = resolved.token, resolved.source
    # Files and the aws CLI block: read them off the event loop.
    return await asyncio.to_thread(
        collect,
        config,
        environ=env,
        home=Path.home(),
        now=datetime.now(UTC),
        aws_export=aws_cli_export,
        github_token=token,
        github_source=source,
    )


async def store(found: Collected) -> list[str]:
    """Write the blocks (on the server in PREFECT_API_URL); returns the key names stored."""
    from k3sc.orchestration import deploy

    await deploy.save_credentials(found.github_token, found.agent)
    stored = [f"k3sc-agents: {name}" for name in sorted(found.agent)]
    if found.github_token is not None:
        stored.insert(0, f"k3sc-github: token (from {found.github_source or 'the environment'})")
    if found.webhook_secret is not None:
        await deploy.save_webhook_secret(found.webhook_secret)
        stored.append(f"{deploy.WEBHOOK_BLOCK}: the webhook secret")
    return stored
