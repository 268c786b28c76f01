"""The k3sc configuration: `~/.k3sc.yaml` (or `$K3SC_CONFIG`) validated strictly.

Unlike the Go original, a malformed file, an unknown key, a wrong type or an out-of-range
value is an error naming the file, the key path and what was expected; only a *missing*
file means defaults. Every effective value remembers where it came from (default, file
or an environment variable) so `k3sc config show` can say so.
"""

from __future__ import annotations

import os
import re
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from k3sc.errors import ConfigError
from k3sc.labels import Family
from k3sc.models import Repo

ENV_CONFIG = "K3SC_CONFIG"
ENV_HOME = "K3SC_HOME"
ENV_MAX_SLOTS = "MAX_SLOTS"

# Environment variables whose values are secrets. k3sc's own processes (the Prefect server, the
# workers and so every flow run) never inherit them from `k3sc up`: flows read credentials from
# Prefect blocks, and an agent gets exactly the ones its run needs (`k3sc.agent.prompts.agent_env`).
SECRET_ENV_VARS = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "OPENAI_API_KEY",
        "CODEX_AUTH_JSON",
        "K3SC_WEBHOOK_SECRET",
        "K3SC_DATABASE_URL",
    }
)
ENV_API_URL = "K3SC_GITHUB_API_URL"
ENV_WEBHOOK_SECRET = "K3SC_WEBHOOK_SECRET"  # noqa: S105 (the variable's name)
ENV_DATABASE = "K3SC_DATABASE_URL"

MAX_SLOT_LETTERS = 26

# ---------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> timedelta:
    """Parse `90s`, `2m`, `1h`, `24h` or compounds like `1h30m` into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 2m, 1h or 24h")
    text = value.strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"expected a duration such as 90s, 2m, 1h or 24h, got {value!r}")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest of `1h`, `2m`, `90s` that spells the value exactly."""
    seconds = value.total_seconds()
    if seconds and seconds == int(seconds):
        whole = int(seconds)
        parts = []
        for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
            if whole >= size:
                parts.append(f"{whole // size}{unit}")
                whole %= size
        return "".join(parts)
    return f"{int(seconds * 1000)}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def _expand_path(value: Any) -> Any:
    return Path(os.path.expanduser(value)) if isinstance(value, (str, Path)) else value


ExpandedPath = Annotated[Path, BeforeValidator(_expand_path)]


def _reject_bool(value: Any) -> Any:
    # pydantic's lax int accepts True as 1, and YAML reads `yes`/`on`/`true` as True.
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a yes/no value")
    return value


WholeNumber = Annotated[int, BeforeValidator(_reject_bool)]


def k3sc_home() -> Path:
    """Where k3sc keeps its state (`$K3SC_HOME`, default `~/.k3sc`)."""
    return Path(os.path.expanduser(os.environ.get(ENV_HOME) or "~/.k3sc"))


# ---------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepoConfig(_Section):
    """One watched repository; `clone_url` and `default_branch` override what GitHub says."""

    owner: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    clone_url: str | None = None
    default_branch: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            try:
                repo = Repo.parse(data)
            except ValueError:
                raise ValueError(f"expected owner/name or {{owner, name}}, got {data!r}") from None
            return {"owner": repo.owner, "name": repo.name}
        return data

    @property
    def repo(self) -> Repo:
        return Repo(self.owner, self.name)


class ScanConfig(_Section):
    min_interval: Duration = timedelta(minutes=2)
    max_interval: Duration = timedelta(hours=1)
    task_ttl: Duration = timedelta(hours=24)
    # How long an issue may carry one of our slot labels with no agent run behind it before
    # the dispatcher hands it off as a failure (a lost claim, a deleted run).
    orphan_grace: Duration = timedelta(minutes=10)

    @field_validator("min_interval", "max_interval", "task_ttl", "orphan_grace")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ScanConfig:
        if self.max_interval < self.min_interval:
            raise ValueError("max_interval must not be shorter than min_interval")
        return self


class LeasesConfig(_Section):
    # How long a `k3sc take` review lease holds its PR before the dispatcher frees it.
    ttl: Duration = timedelta(hours=12)

    @field_validator("ttl")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value


_GH_RULE = re.compile(r"^[a-z-]+:[a-z-]+(,[a-z-]+)*$")


class SafetyConfig(_Section):
    branch_pattern: str = "issue-{N}"
    # The Go original's default lacked `comment`, which refused the review and hand-off
    # comments its own agent instructions ask for; this default allows them.
    gh_allowed: tuple[str, ...] = (
        "auth:status",
        "issue:view,list,edit,comment",
        "pr:create,view,list,diff,checks,comment",
        "repo:view,list,clone",
    )
    blocked_commit_words: tuple[str, ...] = ("fixes", "closes", "resolves")

    @field_validator("branch_pattern")
    @classmethod
    def _has_number(cls, value: str) -> str:
        if value.count("{N}") != 1:
            raise ValueError("must contain {N} exactly once, e.g. issue-{N}")
        if not re.fullmatch(r"[A-Za-z0-9._/{}-]+", value):
            raise ValueError("may hold only letters, digits, . _ / - and {N}")
        return value

    @field_validator("gh_allowed")
    @classmethod
    def _rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for rule in value:
            if not _GH_RULE.match(rule):
                raise ValueError(f"rule {rule!r} must look like command:sub1,sub2")
        return value

    def branch_for(self, issue: int) -> str:
        return self.branch_pattern.replace("{N}", str(issue))

    def issue_for_branch(self, branch: str) -> int | None:
        """The issue number a branch name encodes under the pattern, or None."""
        before, _, after = self.branch_pattern.partition("{N}")
        match = re.fullmatch(re.escape(before) + r"([1-9][0-9]*)" + re.escape(after), branch)
        return int(match.group(1)) if match else None


class PromptsConfig(_Section):
    implement: ExpandedPath | None = None
    review: ExpandedPath | None = None


class AgentConfig(_Section):
    """How an agent is started; `command` replaces the family's default CLI (argv list).

    `pool` picks where agent runs execute: `process` (a local process per run, the embedded
    default) or `kubernetes` (a Job per run from the agent image, see the `kubernetes` section).
    """

    pool: Literal["process", "kubernetes"] = "process"
    command: tuple[str, ...] | None = None
    timeout: Duration = timedelta(hours=1)
    # How long a run may wait to start (InfrastructurePending: image pull, scheduling) before
    # it is reaped as never-started; Kubernetes itself would wait forever.
    start_timeout: Duration = timedelta(minutes=10)
    prompts: PromptsConfig = PromptsConfig()
    # Linux: run agents under bubblewrap. auto = when bwrap is installed (warn when not); on =
    # always (a run fails when bwrap is missing); off = never.
    sandbox: Literal["auto", "on", "off"] = "auto"

    @field_validator("timeout", "start_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("must be a list of arguments, e.g. [python, -m, my_agent]")
        if value is not None and len(value) == 0:
            raise ValueError("must not be empty")
        return value


_TOKEN_COUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([km]?)", re.IGNORECASE)


def _token_count(value: Any) -> Any:
    # `2M` and `500k` read better than 2000000 in a budget.
    if isinstance(value, bool):
        raise ValueError("expected a number of tokens such as 500000, 500k or 2M, not a yes/no value")
    if isinstance(value, str):
        match = _TOKEN_COUNT.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"expected a number of tokens such as 500000, 500k or 2M, got {value!r}")
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
        amount = float(match.group(1)) * scale
        if amount != int(amount):
            raise ValueError(f"expected a whole number of tokens, got {value!r}")
        return int(amount)
    return value


TokenCount = Annotated[int, BeforeValidator(_token_count)]


def _dollars(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected an amount of dollars such as 5 or 2.50, not a yes/no value")
    if isinstance(value, str):
        try:
            return float(value.strip().removeprefix("$"))
        except ValueError:
            raise ValueError(f"expected an amount of dollars such as 5 or 2.50, got {value!r}") from None
    return value


Dollars = Annotated[float, BeforeValidator(_dollars)]


class BudgetConfig(_Section):
    """Spending caps: dollars for API-key accounts, tokens for subscription accounts.

    On a subscription the CLI's dollar figures are list-price estimates, so subscriptions are
    capped in tokens; API keys are charged per token, so they are capped in dollars.
    """

    per_run_usd: Dollars | None = Field(None, gt=0, allow_inf_nan=False)
    per_day_usd: Dollars | None = Field(None, gt=0, allow_inf_nan=False)
    per_run_tokens: TokenCount | None = Field(None, gt=0)
    per_day_tokens: TokenCount | None = Field(None, gt=0)
    interrupt_grace: Duration = timedelta(seconds=30)

    @field_validator("interrupt_grace")
    @classmethod
    def _grace(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 0 or value.total_seconds() > 600:
            raise ValueError("must be between 0s and 10m")
        return value

    @model_validator(mode="after")
    def _run_within_day(self) -> BudgetConfig:
        for unit, run, day in (
            ("usd", self.per_run_usd, self.per_day_usd),
            ("tokens", self.per_run_tokens, self.per_day_tokens),
        ):
            if run is not None and day is not None and run > day:
                raise ValueError(f"per_run_{unit} ({run}) must not exceed per_day_{unit} ({day})")
        return self


# A Kubernetes resource quantity (`500m`, `2`, `1Gi`, `1.5G`, `1e3`).
_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_QUANTITY_SCALE = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def quantity_value(text: str) -> float:
    """The numeric value of a Kubernetes quantity; ValueError if it is not one."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"expected a Kubernetes quantity such as 500m, 2, 512Mi or 4Gi, got {text!r}")
    number, suffix = float(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * 10.0 ** int(suffix[1:])
    return number * _QUANTITY_SCALE[suffix]


def _quantity(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a Kubernetes quantity such as 500m, 2 or 4Gi, not a yes/no value")
    if isinstance(value, (int, float)):
        value = str(value)
    if isinstance(value, str):
        quantity_value(value)
    return value


Quantity = Annotated[str, BeforeValidator(_quantity)]


class ResourcesConfig(_Section):
    """CPU and memory of one agent container; a request may not exceed its limit."""

    cpu_request: Quantity = "500m"
    cpu_limit: Quantity = "2"
    memory_request: Quantity = "1Gi"
    memory_limit: Quantity = "4Gi"
    # The emptyDirs an agent writes (home with its tool caches, /tmp); exceeding it evicts the pod.
    scratch_limit: Quantity = "4Gi"

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourcesConfig:
        for kind in ("cpu", "memory"):
            request, limit = getattr(self, f"{kind}_request"), getattr(self, f"{kind}_limit")
            if quantity_value(request) > quantity_value(limit):
                raise ValueError(f"{kind}_request {request} is above {kind}_limit {limit}")
        return self


_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# registry/path:tag or @sha256:digest; no spaces, no upper case in the repository part.
_IMAGE = re.compile(
    r"^[a-z0-9]+([._/:-]+[a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)


class KubernetesConfig(_Section):
    """Kubernetes mode (`agent.pool: kubernetes`): what `k3sc deploy` applies and each agent Job uses.

    The namespace is the top-level `namespace` key (the original's), so there is one place for it.
    """

    image: str = "k3sc-agent:latest"
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    service_account: str = Field("k3sc-agent", pattern=_DNS_SUBDOMAIN, max_length=253)
    workspace_claim: str = Field("k3sc-workspaces", pattern=_DNS_SUBDOMAIN, max_length=253)
    resources: ResourcesConfig = ResourcesConfig()
    # Added to agent.timeout and agent.start_timeout for the Job's activeDeadlineSeconds, so
    # k3sc's own in-flow timeout always fires first; covers clone/fetch and the hand-off writes.
    deadline_margin: Duration = timedelta(minutes=30)
    finished_job_ttl: Duration = timedelta(hours=24)
    overlay: str = Field("single-node", min_length=1)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"expected an image reference such as ghcr.io/org/k3sc-agent:1.0, got {value!r}")
        return value

    @field_validator("deadline_margin", "finished_job_ttl")
    @classmethod
    def _at_least_a_minute(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError("must be at least 1m")
        return value


class GitHubAppConfig(_Section):
    """GitHub App credentials, used instead of a token when present."""

    app_id: WholeNumber = Field(gt=0)
    installation_id: WholeNumber = Field(gt=0)
    private_key_path: ExpandedPath | None = None
    private_key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_key(self) -> GitHubAppConfig:
        if (self.private_key_path is None) == (self.private_key is None):
            raise ValueError("set exactly one of private_key_path and private_key")
        return self


class WebhookConfig(_Section):
    """The GitHub webhook receiver (`k3sc webhook`, and `k3sc up` when a secret is set).

    The secret is the one set on the GitHub hook; `K3SC_WEBHOOK_SECRET` overrides the file.
    """

    host: str = Field("127.0.0.1", min_length=1, pattern=r"^[A-Za-z0-9.:-]+$")
    port: WholeNumber = Field(8420, ge=1, le=65535)
    path: str = Field("/github", pattern=r"^/[A-Za-z0-9._~/-]*$")
    secret: SecretStr | None = None

    @field_validator("secret")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (leave it out to run without a receiver)")
        return value


class PrefectConfig(_Section):
    """The local Prefect server `k3sc up` starts."""

    # PostgreSQL instead of SQLite under the k3sc home; the URL may hold a password.
    database: SecretStr | None = None

    @field_validator("database")
    @classmethod
    def _postgresql(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^postgres(ql)?(\+asyncpg)?://", value.get_secret_value()):
            raise ValueError("expected a postgresql://user[:password]@host[:port]/database URL")
        return value


def _default_launch_dir() -> Path:
    return Path(os.path.expanduser("~/code"))


def _default_claude_root() -> Path:
    return Path(os.path.expanduser("~/.claude"))


def _default_workspace_root() -> Path:
    return k3sc_home() / "workspaces"


class Config(_Section):
    """Every field of the Go original's `~/.k3sc.yaml`, with its defaults, plus k3sc's own additions."""

    namespace: str = Field("claude-agents", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    max_slots: WholeNumber = Field(5, ge=1, le=MAX_SLOT_LETTERS)
    launch_dir: ExpandedPath = Field(default_factory=_default_launch_dir)
    image_dir: ExpandedPath | None = None
    github_url: str = "https://github.com"
    github_api_url: str = ""  # derived from github_url when empty
    families: tuple[Family, ...] = (Family.CLAUDE, Family.CODEX)
    aws_profile: str = ""
    claude_root: ExpandedPath = Field(default_factory=_default_claude_root)
    repos: tuple[RepoConfig, ...] = ()
    allowed_authors: tuple[str, ...] = ()
    scan: ScanConfig = ScanConfig()
    safety: SafetyConfig = SafetyConfig()
    agent: AgentConfig = AgentConfig()
    leases: LeasesConfig = LeasesConfig()
    budget: BudgetConfig = BudgetConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    webhook: WebhookConfig = WebhookConfig()
    workspace_root: ExpandedPath = Field(default_factory=_default_workspace_root)
    prefect: PrefectConfig = PrefectConfig()
    github_app: GitHubAppConfig | None = None

    @field_validator("github_url", "github_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("families")
    @classmethod
    def _families(cls, value: tuple[Family, ...]) -> tuple[Family, ...]:
        if not value:
            raise ValueError("must name at least one family (claude, codex)")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a family")
        return value

    @field_validator("allowed_authors")
    @classmethod
    def _authors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for login in value:
            # Older accounts may end in or repeat a hyphen (the original author is `abix-`).
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?", login):
                raise ValueError(f"{login!r} is not a GitHub login")
        return value

    @field_validator("repos")
    @classmethod
    def _unique_repos(cls, value: tuple[RepoConfig, ...]) -> tuple[RepoConfig, ...]:
        seen: set[str] = set()
        for repo in value:
            if repo.repo.key in seen:
                raise ValueError(f"repository {repo.repo.full_name} is listed twice")
            seen.add(repo.repo.key)
        return value

    @model_validator(mode="after")
    def _derive_api_url(self) -> Config:
        if not self.github_api_url:
            object.__setattr__(self, "github_api_url", api_url_for(self.github_url))
        return self

    # ------------------------------------------------------------ queries

    def repo_config(self, repo: Repo) -> RepoConfig | None:
        return next((r for r in self.repos if r.repo.key == repo.key), None)

    def is_allowed_author(self, login: str) -> bool:
        return login.lower() in {a.lower() for a in self.allowed_authors}

    def clone_url(self, repo: Repo) -> str:
        configured = self.repo_config(repo)
        if configured and configured.clone_url:
            return configured.clone_url
        return f"{self.github_url}/{repo.full_name}.git"


def api_url_for(github_url: str) -> str:
    """github.com → api.github.com; GitHub Enterprise → `<url>/api/v3`."""
    url = github_url.rstrip("/")
    if re.fullmatch(r"https?://(www\.)?github\.com", url):
        return "https://api.github.com"
    return f"{url}/api/v3"


# ---------------------------------------------------------------- loading

Source = Literal["default", "file"] | str  # or "env:NAME"


@dataclass(frozen=True)
class LoadedConfig:
    """The effective config, the file it came from and the source of every leaf value."""

    config: Config
    path: Path
    file_exists: bool
    sources: dict[str, str]

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "default")


def config_path() -> Path:
    """`$K3SC_CONFIG` if set, else `~/.k3sc.yaml`."""
    return Path(os.path.expanduser(os.environ.get(ENV_CONFIG) or "~/.k3sc.yaml"))


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> LoadedConfig:
    """Read, validate and return the configuration, or raise ConfigError naming the problem."""
    env = dict(os.environ) if environ is None else environ
    path = path or Path(os.path.expanduser(env.get(ENV_CONFIG) or "~/.k3sc.yaml"))
    data, exists = _read_yaml(path)
    sources = {key: "file" for key in _leaf_keys(data)}

    overrides: dict[str, Any] = {}
    if env.get(ENV_MAX_SLOTS, "").strip():
        raw = env[ENV_MAX_SLOTS].strip()
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_SLOT_LETTERS:
            raise ConfigError(
                f"environment variable {ENV_MAX_SLOTS}={raw!r} is invalid: "
                f"expected a whole number from 1 to {MAX_SLOT_LETTERS}.",
                source=f"env:{ENV_MAX_SLOTS}",
                key="max_slots",
            )
        overrides["max_slots"] = int(raw)
        sources["max_slots"] = f"env:{ENV_MAX_SLOTS}"
    if env.get(ENV_API_URL, "").strip():
        overrides["github_api_url"] = env[ENV_API_URL].strip()
        sources["github_api_url"] = f"env:{ENV_API_URL}"
    elif "github_api_url" not in sources and "github_url" in sources:
        sources["github_api_url"] = "derived from github_url"

    if env.get(ENV_WEBHOOK_SECRET, "").strip():
        section = data.get("webhook")
        section = section if isinstance(section, dict) else {}
        overrides["webhook"] = {**section, "secret": env[ENV_WEBHOOK_SECRET]}
        sources["webhook.secret"] = f"env:{ENV_WEBHOOK_SECRET}"
    if env.get(ENV_DATABASE, "").strip():
        written = data.get("prefect")
        prefect_section: dict[str, Any] = written if isinstance(written, dict) else {}
        overrides["prefect"] = {**prefect_section, "database": env[ENV_DATABASE].strip()}
        sources["prefect.database"] = f"env:{ENV_DATABASE}"

    try:
        config = Config.model_validate({**data, **overrides})
    except ValidationError as exc:
        raise _config_error(exc, path, overrides) from None
    return LoadedConfig(config=config, path=path, file_exists=exists, sources=sources)


def _read_yaml(path: Path) -> tuple[dict[str, Any], bool]:
    import yaml  # lazily: only commands that need config pay for it

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, False
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}.", source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"config file {path} is not valid YAML{where}: {problem}.", source=str(path)
        ) from None
    if data is None:
        return {}, True
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys (namespace, repos, ...), "
            f"not a {type(data).__name__}.",
            source=str(path),
        )
    return data, True


# Deeper than any section nests (agent.prompts.implement is 3); only guards YAML alias cycles.
_MAX_KEY_DEPTH = 8


def _leaf_keys(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict) and prefix.count(".") < _MAX_KEY_DEPTH:
        keys: list[str] = []
        for key, value in data.items():
            path = f"{prefix}{key}"
            nested = _leaf_keys(value, f"{path}.") if isinstance(value, dict) else []
            keys.extend(nested or [path])
        return keys
    return [prefix.rstrip(".")] if prefix else []


def _config_error(exc: ValidationError, path: Path, overrides: dict[str, Any]) -> ConfigError:
    """One paragraph naming every bad key (file or env) and what was expected."""
    problems: list[str] = []
    first_key: str | None = None
    from_file = False
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        key = loc or "(top level)"
        first_key = first_key or key
        env_name = _override_env(key, overrides)
        from_file = from_file or env_name is None
        if err["type"] == "extra_forbidden":
            hint = _did_you_mean(str(err["loc"][-1]), err["loc"][:-1])
            problems.append(f"unknown key '{key}'{hint}")
            continue
        # Users write YAML lists; "tuple" is our storage type, not their vocabulary.
        message = str(err["msg"]).removeprefix("Value error, ").replace("a valid tuple", "a list")
        got = err.get("input")
        scalar = isinstance(got, (str, int, float, bool)) and not _is_secret(err["loc"])
        shown = f" (got {got!r})" if scalar and repr(got) not in message else ""
        where = f" (from environment variable {env_name})" if env_name else ""
        problems.append(f"'{key}'{where}: {message}{shown}")
    origin = f"config file {path}" if from_file else "the configuration from the environment"
    source = str(path) if from_file else f"env:{_override_env(first_key or '', overrides)}"
    return ConfigError(f"{origin} is invalid: " + "; ".join(problems) + ".", source=source, key=first_key)


# Which environment variable an override in `load` came from, to name it in errors.
_OVERRIDE_ENV = {
    "max_slots": ENV_MAX_SLOTS,
    "github_api_url": ENV_API_URL,
    "webhook.secret": ENV_WEBHOOK_SECRET,
    "prefect": ENV_DATABASE,
}


def _override_env(key: str, overrides: dict[str, Any]) -> str | None:
    """The variable behind `key` if an environment override set it (the key or its section)."""
    section = key.split(".", maxsplit=1)[0]
    if section not in overrides:
        return None
    return _OVERRIDE_ENV.get(key) or _OVERRIDE_ENV.get(section)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model behind a field: `RepoConfig` for `tuple[RepoConfig, ...]`, `X` for `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_model(arg)
        if found is not None:
            return found
    return None


def _model_at(parent: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model an error location points into (`("repos", 0)` → RepoConfig), if any."""
    model: type[BaseModel] = Config
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        section = _section_model(getattr(field, "annotation", None))
        if section is None:
            return None
        model = section
    return model


def _is_secret(loc: tuple[Any, ...]) -> bool:
    """True if the value at `loc` is a SecretStr field, whose input must never be echoed."""
    model = _model_at(loc[:-1]) if loc else None
    field = model.model_fields.get(str(loc[-1])) if model else None
    annotation = getattr(field, "annotation", None)
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _did_you_mean(name: str, parent: tuple[Any, ...]) -> str:
    import difflib

    model = _model_at(parent) or Config
    close = difflib.get_close_matches(name, list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(model.model_fields)})"
