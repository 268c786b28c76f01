"""The config file's contract: defaults equal the Go original's, and anything malformed is
a ConfigError naming the file, the key path and what was expected, never silently a default.

Every table reads a real YAML file through `config.load(path, environ)`; the environment is passed in
explicitly, so no test depends on the developer's shell.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest

from k3sc import config
from k3sc.errors import ConfigError
from k3sc.labels import Family
from k3sc.models import Repo


def load(tmp_path: Path, text: str | None, environ: dict[str, str] | None = None) -> config.LoadedConfig:
    """Write `text` to a config file (None: no file at all) and load it under `environ` only."""
    path = tmp_path / "k3sc.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    return config.load(path=path, environ=environ or {})


def load_error(tmp_path: Path, text: str | None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, environ)
    return caught.value


def get(cfg: config.Config, dotted: str) -> Any:
    return functools.reduce(getattr, dotted.split("."), cfg)


def home(*parts: str) -> Callable[[], Path]:
    return lambda: Path.home().joinpath(*parts)


def k3sc_home(*parts: str) -> Callable[[], Path]:
    return lambda: Path(os.environ["K3SC_HOME"]).joinpath(*parts)


# ------------------------------------------------------------------------------------------ defaults

DEFAULTS = [
    pytest.param("namespace", "claude-agents", id="namespace defaults to claude-agents"),
    pytest.param("max_slots", 5, id="max_slots defaults to 5"),
    pytest.param("launch_dir", home("code"), id="launch_dir defaults to ~/code"),
    pytest.param("image_dir", None, id="image_dir defaults to unset (= <repo>/image)"),
    pytest.param("github_url", "https://github.com", id="github_url defaults to github.com"),
    pytest.param("github_api_url", "https://api.github.com", id="github_api_url defaults to api.github.com"),
    pytest.param("families", (Family.CLAUDE, Family.CODEX), id="families default to claude and codex"),
    pytest.param("aws_profile", "", id="aws_profile defaults to empty"),
    pytest.param("claude_root", home(".claude"), id="claude_root defaults to ~/.claude"),
    pytest.param("repos", (), id="repos default to none"),
    pytest.param("allowed_authors", (), id="allowed_authors default to none, so nothing is dispatched"),
    pytest.param("scan.min_interval", timedelta(minutes=2), id="scan.min_interval defaults to 2m"),
    pytest.param("scan.max_interval", timedelta(hours=1), id="scan.max_interval defaults to 1h"),
    pytest.param("scan.task_ttl", timedelta(hours=24), id="scan.task_ttl defaults to 24h"),
    pytest.param("scan.orphan_grace", timedelta(minutes=10), id="scan.orphan_grace defaults to 10m"),
    pytest.param("safety.branch_pattern", "issue-{N}", id="safety.branch_pattern defaults to issue-{N}"),
    pytest.param(
        "safety.gh_allowed",
        (
            "auth:status",
            "issue:view,list,edit,comment",
            "pr:create,view,list,diff,checks,comment",
            "repo:view,list,clone",
        ),
        id="safety.gh_allowed defaults to the original's four rules plus comment (section 11)",
    ),
    pytest.param(
        "safety.blocked_commit_words",
        ("fixes", "closes", "resolves"),
        id="safety.blocked_commit_words default to fixes closes resolves",
    ),
    pytest.param("agent.pool", "process", id="agent.pool defaults to local processes (the embedded default)"),
    pytest.param("agent.command", None, id="agent.command defaults to the family's own CLI"),
    pytest.param(
        "agent.start_timeout", timedelta(minutes=10), id="agent.start_timeout defaults to 10m before reaping"
    ),
    pytest.param(
        "agent.timeout", timedelta(hours=1), id="agent.timeout defaults to 1h like the Job deadline"
    ),
    pytest.param(
        "agent.prompts.implement", None, id="agent.prompts.implement defaults to the built-in prompt"
    ),
    pytest.param("agent.prompts.review", None, id="agent.prompts.review defaults to the built-in prompt"),
    pytest.param("agent.sandbox", "auto", id="agent.sandbox defaults to auto (bubblewrap when installed)"),
    pytest.param("leases.ttl", timedelta(hours=12), id="leases.ttl defaults to 12h"),
    pytest.param("budget.per_run_usd", None, id="budget.per_run_usd defaults to no cap"),
    pytest.param("budget.per_day_usd", None, id="budget.per_day_usd defaults to no cap"),
    pytest.param("budget.per_run_tokens", None, id="budget.per_run_tokens defaults to no cap"),
    pytest.param("budget.per_day_tokens", None, id="budget.per_day_tokens defaults to no cap"),
    pytest.param(
        "budget.interrupt_grace", timedelta(seconds=30), id="budget.interrupt_grace defaults to 30s"
    ),
    pytest.param(
        "workspace_root", k3sc_home("workspaces"), id="workspace_root defaults to K3SC_HOME/workspaces"
    ),
    pytest.param("github_app", None, id="github_app defaults to unset (token auth)"),
    pytest.param("prefect.database", None, id="prefect.database defaults to unset (SQLite under K3SC_HOME)"),
    pytest.param(
        "kubernetes.image", "k3sc-agent:latest", id="kubernetes.image defaults to k3sc-agent:latest"
    ),
    pytest.param(
        "kubernetes.image_pull_policy",
        "IfNotPresent",
        id="kubernetes.image_pull_policy defaults to IfNotPresent",
    ),
    pytest.param("kubernetes.service_account", "k3sc-agent", id="kubernetes.service_account defaults"),
    pytest.param("kubernetes.workspace_claim", "k3sc-workspaces", id="kubernetes.workspace_claim defaults"),
    pytest.param("kubernetes.resources.cpu_request", "500m", id="agent cpu request defaults to half a core"),
    pytest.param("kubernetes.resources.cpu_limit", "2", id="agent cpu limit defaults to 2 cores"),
    pytest.param("kubernetes.resources.memory_request", "1Gi", id="agent memory request defaults to 1Gi"),
    pytest.param("kubernetes.resources.memory_limit", "4Gi", id="agent memory limit defaults to 4Gi"),
    pytest.param("kubernetes.resources.scratch_limit", "4Gi", id="agent scratch space defaults to 4Gi"),
    pytest.param(
        "kubernetes.deadline_margin", timedelta(minutes=30), id="kubernetes.deadline_margin defaults to 30m"
    ),
    pytest.param(
        "kubernetes.finished_job_ttl",
        timedelta(hours=24),
        id="finished Jobs are kept 24h like the original's",
    ),
    pytest.param("kubernetes.overlay", "single-node", id="kubernetes.overlay defaults to single-node"),
    pytest.param("webhook.host", "127.0.0.1", id="the webhook receiver listens on loopback by default"),
    pytest.param("webhook.port", 8420, id="webhook.port defaults to 8420 (the k8s Service's)"),
    pytest.param("webhook.path", "/github", id="webhook.path defaults to /github"),
    pytest.param("webhook.secret", None, id="webhook.secret defaults to unset (no receiver)"),
]


@pytest.mark.parametrize(("key", "expected"), DEFAULTS)
def test_missing_file_gives_the_default(tmp_path: Path, key: str, expected: Any) -> None:
    loaded = load(tmp_path, None)
    assert get(loaded.config, key) == (expected() if callable(expected) else expected)
    assert loaded.source_of(key) == "default"


def test_defaults_table_covers_every_leaf_field() -> None:
    """A new config field must get a row in DEFAULTS (and so a documented default)."""

    def leaves(model: type[Any], prefix: str = "") -> set[str]:
        keys: set[str] = set()
        for name, field in model.model_fields.items():
            section = field.annotation
            if isinstance(section, type) and issubclass(section, pydantic.BaseModel):
                keys |= leaves(section, f"{prefix}{name}.")
            else:
                keys.add(f"{prefix}{name}")
        return keys

    assert leaves(config.Config) == {param.values[0] for param in DEFAULTS}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(None, id="missing file"),
        pytest.param("", id="empty file"),
        pytest.param("# only a comment\n", id="file with only comments"),
    ],
)
def test_no_settings_means_all_defaults(tmp_path: Path, text: str | None) -> None:
    loaded = load(tmp_path, text)
    assert loaded.config == config.Config()
    assert loaded.file_exists is (text is not None)
    assert loaded.sources == {}
    assert loaded.path == tmp_path / "k3sc.yaml"


# ------------------------------------------------------------------------------------- valid values

VALID = [
    pytest.param("namespace: agents-2", "namespace", "agents-2", id="namespace accepts a DNS label"),
    pytest.param("max_slots: 1", "max_slots", 1, id="max_slots accepts the lower bound 1"),
    pytest.param("max_slots: 26", "max_slots", 26, id="max_slots accepts 26, one per letter"),
    pytest.param("launch_dir: ~/src", "launch_dir", home("src"), id="launch_dir expands ~"),
    pytest.param("image_dir: /opt/image", "image_dir", Path("/opt/image"), id="image_dir takes a path"),
    pytest.param(
        "github_url: https://ghe.example.com/",
        "github_url",
        "https://ghe.example.com",
        id="github_url drops a trailing slash",
    ),
    pytest.param("families: [codex]", "families", (Family.CODEX,), id="families may name one family"),
    pytest.param("aws_profile: sso-dev", "aws_profile", "sso-dev", id="aws_profile takes a profile name"),
    pytest.param("claude_root: /c/.claude", "claude_root", Path("/c/.claude"), id="claude_root takes a path"),
    pytest.param(
        "allowed_authors: [abix-, 'dependabot[bot]', Some-One]",
        "allowed_authors",
        ("abix-", "dependabot[bot]", "Some-One"),
        id="allowed_authors accepts old trailing-hyphen logins and bots",
    ),
    pytest.param(
        "scan: {min_interval: 30s}", "scan.min_interval", timedelta(seconds=30), id="scan.min_interval"
    ),
    pytest.param("scan: {max_interval: 2h}", "scan.max_interval", timedelta(hours=2), id="scan.max_interval"),
    pytest.param("scan: {task_ttl: 12h}", "scan.task_ttl", timedelta(hours=12), id="scan.task_ttl"),
    pytest.param(
        "scan: {orphan_grace: 5m}", "scan.orphan_grace", timedelta(minutes=5), id="scan.orphan_grace"
    ),
    pytest.param(
        "safety: {branch_pattern: 'agent/{N}-work'}",
        "safety.branch_pattern",
        "agent/{N}-work",
        id="safety.branch_pattern may put {N} anywhere",
    ),
    pytest.param(
        "safety: {gh_allowed: ['issue:view', 'pr:view,diff']}",
        "safety.gh_allowed",
        ("issue:view", "pr:view,diff"),
        id="safety.gh_allowed replaces the default rules",
    ),
    pytest.param(
        "safety: {blocked_commit_words: [fixes]}",
        "safety.blocked_commit_words",
        ("fixes",),
        id="safety.blocked_commit_words replaces the default words",
    ),
    pytest.param(
        "agent: {command: [python, -m, stub_agent]}",
        "agent.command",
        ("python", "-m", "stub_agent"),
        id="agent.command is an argv list",
    ),
    pytest.param("agent: {timeout: 30m}", "agent.timeout", timedelta(minutes=30), id="agent.timeout"),
    pytest.param("agent: {sandbox: 'off'}", "agent.sandbox", "off", id="agent.sandbox can be turned off"),
    pytest.param("budget: {per_run_usd: 2.5}", "budget.per_run_usd", 2.5, id="budget.per_run_usd in dollars"),
    pytest.param(
        "budget: {per_day_usd: '$20'}", "budget.per_day_usd", 20.0, id="budget.per_day_usd with a dollar sign"
    ),
    pytest.param(
        "budget: {per_run_tokens: 2M}", "budget.per_run_tokens", 2_000_000, id="budget.per_run_tokens as 2M"
    ),
    pytest.param(
        "budget: {per_day_tokens: 500k}", "budget.per_day_tokens", 500_000, id="budget.per_day_tokens as 500k"
    ),
    pytest.param(
        "budget: {per_day_tokens: 1500000}",
        "budget.per_day_tokens",
        1_500_000,
        id="budget tokens as a number",
    ),
    pytest.param(
        "budget: {interrupt_grace: 5s}",
        "budget.interrupt_grace",
        timedelta(seconds=5),
        id="budget.interrupt_grace",
    ),
    pytest.param("agent: {pool: kubernetes}", "agent.pool", "kubernetes", id="agent.pool kubernetes"),
    pytest.param(
        "agent: {start_timeout: 90s}", "agent.start_timeout", timedelta(seconds=90), id="agent.start_timeout"
    ),
    pytest.param(
        "kubernetes: {image: 'registry.example:5000/team/k3sc-agent:1.2.3'}",
        "kubernetes.image",
        "registry.example:5000/team/k3sc-agent:1.2.3",
        id="kubernetes.image with a registry port and a tag",
    ),
    pytest.param(
        f"kubernetes: {{image: 'k3sc-agent@sha256:{'a' * 64}'}}",
        "kubernetes.image",
        f"k3sc-agent@sha256:{'a' * 64}",
        id="kubernetes.image pinned by digest",
    ),
    pytest.param(
        "kubernetes: {image_pull_policy: Never}",
        "kubernetes.image_pull_policy",
        "Never",
        id="kubernetes.image_pull_policy Never for an image built into the node",
    ),
    pytest.param(
        "kubernetes: {resources: {cpu_request: 2, cpu_limit: 2}}",
        "kubernetes.resources.cpu_request",
        "2",
        id="a whole-number cpu is read as the quantity 2",
    ),
    pytest.param(
        "kubernetes: {resources: {memory_request: 512Mi, memory_limit: 0.5Gi}}",
        "kubernetes.resources.memory_limit",
        "0.5Gi",
        id="a memory request may equal its limit in other units",
    ),
    pytest.param(
        "kubernetes: {workspace_claim: team-ws}",
        "kubernetes.workspace_claim",
        "team-ws",
        id="kubernetes.workspace_claim",
    ),
    pytest.param(
        "kubernetes: {deadline_margin: 1h}",
        "kubernetes.deadline_margin",
        timedelta(hours=1),
        id="kubernetes.deadline_margin",
    ),
    pytest.param("kubernetes: {overlay: cluster}", "kubernetes.overlay", "cluster", id="kubernetes.overlay"),
    pytest.param(
        "agent: {prompts: {review: /p/review.md}}",
        "agent.prompts.review",
        Path("/p/review.md"),
        id="agent.prompts.review takes a path",
    ),
    pytest.param("workspace_root: /w", "workspace_root", Path("/w"), id="workspace_root takes a path"),
    pytest.param(
        "github_app: {app_id: 12, installation_id: 34, private_key_path: /k.pem}",
        "github_app.private_key_path",
        Path("/k.pem"),
        id="github_app with a private key file",
    ),
    pytest.param(
        "github_app: {app_id: '12', installation_id: 34, private_key: PEM}",
        "github_app.app_id",
        12,
        id="github_app.app_id may be quoted",
    ),
]


@pytest.mark.parametrize(("text", "key", "expected"), VALID)
def test_valid_value_is_read_from_the_file(tmp_path: Path, text: str, key: str, expected: Any) -> None:
    loaded = load(tmp_path, text)
    assert get(loaded.config, key) == (expected() if callable(expected) else expected)
    assert loaded.source_of(key) == "file"


# ------------------------------------------------------------------------------------ invalid values

INVALID = [
    pytest.param(
        "namespace: Bad_NS", "namespace", "should match pattern", id="namespace must be a DNS label"
    ),
    pytest.param(
        f"namespace: {'a' * 64}", "namespace", "at most 63", id="namespace is at most 63 characters"
    ),
    pytest.param("namespace: 123", "namespace", "valid string", id="namespace must be a string"),
    pytest.param("max_slots: 0", "max_slots", "greater than or equal to 1", id="max_slots below 1"),
    pytest.param("max_slots: 27", "max_slots", "less than or equal to 26", id="max_slots above 26 letters"),
    pytest.param("max_slots: -1", "max_slots", "greater than or equal to 1", id="max_slots negative"),
    pytest.param("max_slots: lots", "max_slots", "valid integer", id="max_slots not a number"),
    pytest.param("max_slots: 2.5", "max_slots", "valid integer", id="max_slots fractional"),
    pytest.param("max_slots: yes", "max_slots", "not a yes/no value", id="max_slots yes is not 1"),
    pytest.param("launch_dir: [a]", "launch_dir", "valid path", id="launch_dir must be a path"),
    pytest.param("github_url: ftp://x.example", "github_url", "http(s) URL", id="github_url must be http(s)"),
    pytest.param("github_url: github.com", "github_url", "http(s) URL", id="github_url needs a scheme"),
    pytest.param("github_api_url: nope", "github_api_url", "http(s) URL", id="github_api_url must be a URL"),
    pytest.param("families: []", "families", "at least one family", id="families must not be empty"),
    pytest.param("families: [claude, claude]", "families", "must not repeat", id="families must not repeat"),
    pytest.param("families: [gemini]", "families.0", "'claude' or 'codex'", id="families only known ones"),
    pytest.param("aws_profile: [a]", "aws_profile", "valid string", id="aws_profile must be a string"),
    pytest.param(
        "allowed_authors: ['not a login']",
        "allowed_authors",
        "not a GitHub login",
        id="allowed_authors logins",
    ),
    pytest.param("allowed_authors: abix-", "allowed_authors", "a list", id="allowed_authors must be a list"),
    pytest.param(
        "scan: {min_interval: 2h}",
        "scan",
        "max_interval must not be shorter than min_interval",
        id="scan.max_interval below min_interval",
    ),
    pytest.param("scan: {task_ttl: 0s}", "scan.task_ttl", "at least 1s", id="scan.task_ttl of zero"),
    pytest.param("leases: {ttl: 0s}", "leases.ttl", "at least 1s", id="leases.ttl of zero"),
    pytest.param(
        "scan: {orphan_grace: 0s}", "scan.orphan_grace", "at least 1s", id="scan.orphan_grace of zero"
    ),
    pytest.param(
        "scan: {min_interval: 500ms}", "scan.min_interval", "at least 1s", id="scan below one second"
    ),
    pytest.param("scan: 5m", "scan", "valid dictionary", id="scan must be a mapping"),
    pytest.param(
        "safety: {branch_pattern: feature}",
        "safety.branch_pattern",
        "{N} exactly once",
        id="branch without {N}",
    ),
    pytest.param(
        "safety: {branch_pattern: 'i-{N}-{N}'}",
        "safety.branch_pattern",
        "{N} exactly once",
        id="branch {N} twice",
    ),
    pytest.param(
        "safety: {branch_pattern: 'issue {N}'}",
        "safety.branch_pattern",
        "may hold only",
        id="branch with space",
    ),
    pytest.param(
        "safety: {gh_allowed: ['rm -rf']}", "safety.gh_allowed", "command:sub1,sub2", id="gh rule shape"
    ),
    pytest.param(
        "safety: {blocked_commit_words: fixes}",
        "safety.blocked_commit_words",
        "a list",
        id="commit words list",
    ),
    pytest.param(
        "agent: {command: 'python x'}", "agent.command", "list of arguments", id="agent.command string"
    ),
    pytest.param("agent: {command: []}", "agent.command", "must not be empty", id="agent.command empty"),
    pytest.param("agent: {timeout: 0s}", "agent.timeout", "at least 1s", id="agent.timeout of zero"),
    pytest.param("agent: {pool: docker}", "agent.pool", "'process' or 'kubernetes'", id="agent.pool unknown"),
    pytest.param(
        "agent: {start_timeout: 0s}", "agent.start_timeout", "at least 1s", id="agent.start_timeout of zero"
    ),
    pytest.param(
        "kubernetes: {image: 'K3SC Agent'}", "kubernetes.image", "image reference", id="image with a space"
    ),
    pytest.param(
        "kubernetes: {image_pull_policy: Sometimes}",
        "kubernetes.image_pull_policy",
        "'IfNotPresent', 'Always' or 'Never'",
        id="image pull policy unknown",
    ),
    pytest.param(
        "kubernetes: {service_account: Agent_SA}",
        "kubernetes.service_account",
        "should match pattern",
        id="service account must be a DNS name",
    ),
    pytest.param(
        "kubernetes: {workspace_claim: ''}",
        "kubernetes.workspace_claim",
        "should match pattern",
        id="workspace claim must not be empty",
    ),
    pytest.param(
        "kubernetes: {resources: {cpu_limit: two}}",
        "kubernetes.resources.cpu_limit",
        "Kubernetes quantity",
        id="cpu limit must be a quantity",
    ),
    pytest.param(
        "kubernetes: {resources: {memory_limit: 4GB}}",
        "kubernetes.resources.memory_limit",
        "Kubernetes quantity",
        id="memory in GB is not a Kubernetes unit (G or Gi)",
    ),
    pytest.param(
        "kubernetes: {resources: {memory_limit: yes}}",
        "kubernetes.resources.memory_limit",
        "not a yes/no value",
        id="memory limit yes is not a quantity",
    ),
    pytest.param(
        "kubernetes: {resources: {cpu_request: '4', cpu_limit: 2}}",
        "kubernetes.resources",
        "cpu_request 4 is above cpu_limit 2",
        id="a cpu request above its limit would never schedule",
    ),
    pytest.param(
        "kubernetes: {resources: {memory_request: 2Gi, memory_limit: 1500Mi}}",
        "kubernetes.resources",
        "memory_request 2Gi is above memory_limit 1500Mi",
        id="a memory request above its limit, in different units",
    ),
    pytest.param(
        "kubernetes: {deadline_margin: 30s}",
        "kubernetes.deadline_margin",
        "at least 1m",
        id="deadline margin under a minute",
    ),
    pytest.param(
        "kubernetes: {finished_job_ttl: 10s}",
        "kubernetes.finished_job_ttl",
        "at least 1m",
        id="finished job ttl under a minute",
    ),
    pytest.param(
        "agent: {sandbox: maybe}", "agent.sandbox", "'auto', 'on' or 'off'", id="agent.sandbox mode"
    ),
    pytest.param("budget: {per_run_usd: 0}", "budget.per_run_usd", "greater than 0", id="a zero dollar cap"),
    pytest.param(
        "budget: {per_run_usd: lots}", "budget.per_run_usd", "amount of dollars", id="dollars not a number"
    ),
    pytest.param(
        "budget: {per_run_usd: .nan}", "budget.per_run_usd", "greater than 0", id="dollars not a number (nan)"
    ),
    pytest.param(
        "budget: {per_run_tokens: 2G}", "budget.per_run_tokens", "500k or 2M", id="an unknown token suffix"
    ),
    pytest.param(
        "budget: {per_run_tokens: 1.5k5}", "budget.per_run_tokens", "500k or 2M", id="tokens garbled"
    ),
    pytest.param(
        "budget: {per_run_tokens: 0.5}", "budget.per_run_tokens", "fractional part", id="half a token"
    ),
    pytest.param(
        "budget: {per_run_tokens: yes}", "budget.per_run_tokens", "yes/no", id="tokens not a boolean"
    ),
    pytest.param(
        "budget: {per_run_tokens: 2M, per_day_tokens: 1M}",
        "budget",
        "per_run_tokens (2000000) must not exceed per_day_tokens (1000000)",
        id="a run cap above the day cap",
    ),
    pytest.param(
        "budget: {interrupt_grace: 1h}", "budget.interrupt_grace", "between 0s and 10m", id="grace too long"
    ),
    pytest.param(
        "agent: {prompts: {implement: 5}}", "agent.prompts.implement", "path", id="prompt path type"
    ),
    pytest.param(
        "workspace_root: {a: 1}", "workspace_root", "valid path", id="workspace_root must be a path"
    ),
    pytest.param(
        "github_app: {app_id: 1, installation_id: 2}",
        "github_app",
        "exactly one of private_key_path and private_key",
        id="github_app without a key",
    ),
    pytest.param(
        "github_app: {app_id: 1, installation_id: 2, private_key: k, private_key_path: /k}",
        "github_app",
        "exactly one of private_key_path and private_key",
        id="github_app with both keys",
    ),
    pytest.param(
        "github_app: {app_id: 0, installation_id: 2, private_key: k}",
        "github_app.app_id",
        "greater than 0",
        id="github_app.app_id positive",
    ),
    pytest.param(
        "github_app: {app_id: 1, installation_id: true, private_key: k}",
        "github_app.installation_id",
        "not a yes/no value",
        id="github_app.installation_id not a boolean",
    ),
]


@pytest.mark.parametrize(("text", "key", "expected"), INVALID)
def test_invalid_value_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    error = load_error(tmp_path, text)
    message = str(error)
    assert error.key == key
    assert error.exit_code == 2
    assert error.source == str(tmp_path / "k3sc.yaml")
    assert message.startswith(f"config file {tmp_path / 'k3sc.yaml'} is invalid: '{key}'")
    assert expected in message
    assert "\n" not in message


def test_every_problem_in_a_file_is_named_at_once(tmp_path: Path) -> None:
    message = str(load_error(tmp_path, "max_slots: 0\nnamespace: Bad\nscan: {task_ttl: soon}"))
    for key in ("'max_slots'", "'namespace'", "'scan.task_ttl'"):
        assert key in message


def test_secret_values_are_never_echoed_in_errors(tmp_path: Path) -> None:
    message = str(load_error(tmp_path, "github_app: {app_id: 1, installation_id: 2, private_key: 987654321}"))
    assert "'github_app.private_key'" in message
    assert "987654321" not in message


# ---------------------------------------------------------------------------------------- durations

DURATIONS = [
    pytest.param("90s", timedelta(seconds=90), "1m30s", id="seconds"),
    pytest.param("2m", timedelta(minutes=2), "2m", id="minutes"),
    pytest.param("1h", timedelta(hours=1), "1h", id="an hour"),
    pytest.param("24h", timedelta(hours=24), "24h", id="a day in hours"),
    pytest.param("1h30m", timedelta(minutes=90), "1h30m", id="hours and minutes compound"),
    pytest.param("1.5h", timedelta(minutes=90), "1h30m", id="fractional hours"),
    pytest.param("1d", timedelta(days=1), "24h", id="days"),
    pytest.param(" 2M ", timedelta(minutes=2), "2m", id="case and surrounding spaces are forgiven"),
]


@pytest.mark.parametrize(("text", "expected", "shown"), DURATIONS)
def test_duration_is_parsed_and_shown_shortest(
    tmp_path: Path, text: str, expected: timedelta, shown: str
) -> None:
    loaded = load(tmp_path, f"scan: {{task_ttl: '{text}'}}")
    assert loaded.config.scan.task_ttl == expected
    assert loaded.config.model_dump(mode="json")["scan"]["task_ttl"] == shown


def test_sub_second_durations_format_as_milliseconds() -> None:
    assert config.parse_duration("500ms") == timedelta(milliseconds=500)
    assert config.format_duration(timedelta(milliseconds=500)) == "500ms"


BAD_DURATIONS = [
    pytest.param("soon", "got 'soon'", id="a word"),
    pytest.param("5", "(got 5)", id="a bare number has no unit"),
    pytest.param("'5'", "got '5'", id="a quoted bare number has no unit"),
    pytest.param("-1m", "got '-1m'", id="negative"),
    pytest.param("''", "got ''", id="empty"),
    pytest.param("2 m", "got '2 m'", id="space between number and unit"),
    pytest.param("1x", "got '1x'", id="unknown unit"),
    pytest.param("1h junk", "got '1h junk'", id="trailing garbage"),
]


@pytest.mark.parametrize(("text", "shown"), BAD_DURATIONS)
def test_bad_duration_is_an_error(tmp_path: Path, text: str, shown: str) -> None:
    error = load_error(tmp_path, f"scan: {{min_interval: {text}}}")
    assert error.key == "scan.min_interval"
    assert "expected a duration such as 90s, 2m, 1h or 24h" in str(error)
    assert shown in str(error)


# ----------------------------------------------------------------------------- max_slots and MAX_SLOTS


@pytest.mark.parametrize(
    ("file", "env", "expected", "source"),
    [
        pytest.param("", "7", 7, "env:MAX_SLOTS", id="MAX_SLOTS sets max_slots"),
        pytest.param("max_slots: 3", "7", 7, "env:MAX_SLOTS", id="MAX_SLOTS wins over the file"),
        pytest.param("max_slots: 3", " 12 ", 12, "env:MAX_SLOTS", id="MAX_SLOTS ignores surrounding spaces"),
        pytest.param("max_slots: 3", "", 3, "file", id="an empty MAX_SLOTS is ignored"),
        pytest.param("", "26", 26, "env:MAX_SLOTS", id="MAX_SLOTS accepts the upper bound"),
        pytest.param("", "1", 1, "env:MAX_SLOTS", id="MAX_SLOTS accepts the lower bound"),
    ],
)
def test_max_slots_env_override(tmp_path: Path, file: str, env: str, expected: int, source: str) -> None:
    loaded = load(tmp_path, file, {"MAX_SLOTS": env})
    assert loaded.config.max_slots == expected
    assert loaded.source_of("max_slots") == source


@pytest.mark.parametrize(
    "env",
    [
        pytest.param("0", id="zero"),
        pytest.param("27", id="more than 26 letters"),
        pytest.param("-3", id="negative"),
        pytest.param("lots", id="a word"),
        pytest.param("2.5", id="fractional"),
        pytest.param("²", id="a non-ASCII digit"),
    ],
)
def test_invalid_max_slots_env_is_an_error_even_with_a_valid_file(tmp_path: Path, env: str) -> None:
    error = load_error(tmp_path, "max_slots: 3", {"MAX_SLOTS": env})
    assert error.key == "max_slots"
    assert error.source == "env:MAX_SLOTS"
    assert str(error) == (
        f"environment variable MAX_SLOTS={env!r} is invalid: expected a whole number from 1 to 26."
    )


# ---------------------------------------------------------------------------------- github_api_url


@pytest.mark.parametrize(
    ("file", "env", "expected", "source"),
    [
        pytest.param("", None, "https://api.github.com", "default", id="default is api.github.com"),
        pytest.param(
            "github_url: https://github.com",
            None,
            "https://api.github.com",
            "derived from github_url",
            id="github.com derives api.github.com",
        ),
        pytest.param(
            "github_url: https://www.github.com/",
            None,
            "https://api.github.com",
            "derived from github_url",
            id="www.github.com derives api.github.com",
        ),
        pytest.param(
            "github_url: https://ghe.example.com",
            None,
            "https://ghe.example.com/api/v3",
            "derived from github_url",
            id="GitHub Enterprise derives <url>/api/v3",
        ),
        pytest.param(
            "github_url: https://ghe.example.com/\ngithub_api_url: https://api.ghe.example.com/",
            None,
            "https://api.ghe.example.com",
            "file",
            id="an explicit github_api_url wins over derivation",
        ),
        pytest.param(
            "github_api_url: https://from-file.example.com",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080",
            "env:K3SC_GITHUB_API_URL",
            id="K3SC_GITHUB_API_URL wins over the file",
        ),
        pytest.param(
            "github_url: https://ghe.example.com",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080",
            "env:K3SC_GITHUB_API_URL",
            id="K3SC_GITHUB_API_URL wins over derivation",
        ),
    ],
)
def test_github_api_url(tmp_path: Path, file: str, env: str | None, expected: str, source: str) -> None:
    loaded = load(tmp_path, file, {"K3SC_GITHUB_API_URL": env} if env else {})
    assert loaded.config.github_api_url == expected
    assert loaded.source_of("github_api_url") == source


def test_invalid_github_api_url_env_names_the_variable(tmp_path: Path) -> None:
    error = load_error(tmp_path, None, {"K3SC_GITHUB_API_URL": "nope"})
    assert error.key == "github_api_url"
    assert error.source == "env:K3SC_GITHUB_API_URL"
    assert str(error) == (
        "the configuration from the environment is invalid: 'github_api_url' (from environment variable "
        "K3SC_GITHUB_API_URL): expected an http(s) URL, got 'nope'."
    )


# -------------------------------------------------------------------------------------------- repos


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "repos: [abix-/endless]",
            (config.RepoConfig(owner="abix-", name="endless"),),
            id="owner/name string",
        ),
        pytest.param(
            "repos: [{owner: abix-, name: k3sc}]",
            (config.RepoConfig(owner="abix-", name="k3sc"),),
            id="owner and name mapping",
        ),
        pytest.param(
            "repos:\n- owner: o\n  name: r.js\n  clone_url: https://mirror.example/o/r.git\n  default_branch: dev",
            (
                config.RepoConfig(
                    owner="o", name="r.js", clone_url="https://mirror.example/o/r.git", default_branch="dev"
                ),
            ),
            id="mapping with clone_url and default_branch",
        ),
        pytest.param(
            "repos: [a/one, {owner: a, name: two}]",
            (config.RepoConfig(owner="a", name="one"), config.RepoConfig(owner="a", name="two")),
            id="both forms mixed, order kept",
        ),
    ],
)
def test_repos(tmp_path: Path, text: str, expected: tuple[config.RepoConfig, ...]) -> None:
    assert load(tmp_path, text).config.repos == expected


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        pytest.param("repos: [endless]", "repos.0", "expected owner/name", id="no owner"),
        pytest.param("repos: [a/b/c]", "repos.0", "expected owner/name", id="too many slashes"),
        pytest.param("repos: ['a b/c']", "repos.0", "expected owner/name", id="space in the name"),
        pytest.param("repos: [{owner: a}]", "repos.0.name", "Field required", id="mapping without name"),
        pytest.param(
            "repos: [{owner: 'a b', name: c}]",
            "repos.0.owner",
            "should match pattern",
            id="bad owner characters",
        ),
        pytest.param("repos: [42]", "repos.0", "valid dictionary", id="a number"),
        pytest.param("repos: abix-/endless", "repos", "a list", id="a single string instead of a list"),
        pytest.param(
            "repos: [a/b, x/y, A/B]", "repos", "repository A/B is listed twice", id="duplicate repos"
        ),
        pytest.param(
            "repos: [a/b, {owner: a, name: b}]", "repos", "is listed twice", id="duplicate across both forms"
        ),
    ],
)
def test_bad_repos(tmp_path: Path, text: str, key: str, expected: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == key
    assert expected in str(error)


def test_repo_queries_are_case_insensitive_and_clone_urls_follow_github_url(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "github_url: https://ghe.example.com\nallowed_authors: [Abix-]\n"
        "repos: [o/plain, {owner: o, name: mirrored, clone_url: 'git@m:o/m.git'}]",
    ).config
    assert cfg.repo_config(Repo("O", "PLAIN")) == config.RepoConfig(owner="o", name="plain")
    assert cfg.repo_config(Repo("o", "absent")) is None
    assert cfg.clone_url(Repo("o", "plain")) == "https://ghe.example.com/o/plain.git"
    assert cfg.clone_url(Repo("o", "mirrored")) == "git@m:o/m.git"
    assert cfg.is_allowed_author("abix-")
    assert not cfg.is_allowed_author("mallory")


@pytest.mark.parametrize(
    ("pattern", "issue", "branch"),
    [
        pytest.param("issue-{N}", 7, "issue-7", id="default pattern"),
        pytest.param("agent/{N}-work", 12, "agent/12-work", id="custom pattern"),
    ],
)
def test_branch_pattern_round_trips(pattern: str, issue: int, branch: str) -> None:
    safety = config.SafetyConfig(branch_pattern=pattern)
    assert safety.branch_for(issue) == branch
    assert safety.issue_for_branch(branch) == issue
    assert safety.issue_for_branch(branch + "x") is None
    assert safety.issue_for_branch(branch.replace(str(issue), f"0{issue}")) is None


# -------------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        pytest.param(
            "alowed_authors: [x]", "alowed_authors", "(did you mean 'allowed_authors'?)", id="top level"
        ),
        pytest.param("max_slot: 3", "max_slot", "(did you mean 'max_slots'?)", id="top level singular"),
        pytest.param(
            "scan: {min_intervall: 2m}", "scan.min_intervall", "(did you mean 'min_interval'?)", id="in scan"
        ),
        pytest.param(
            "safety: {gh_allow: []}", "safety.gh_allow", "(did you mean 'gh_allowed'?)", id="in safety"
        ),
        pytest.param("agent: {timout: 1h}", "agent.timout", "(did you mean 'timeout'?)", id="in agent"),
        pytest.param(
            "agent: {prompts: {implment: x}}",
            "agent.prompts.implment",
            "(did you mean 'implement'?)",
            id="in agent.prompts",
        ),
        pytest.param(
            "repos: [{owner: a, name: b, branch: dev}]",
            "repos.0.branch",
            "(did you mean 'default_branch'?)",
            id="in a repo mapping",
        ),
        pytest.param(
            "github_app: {app_id: 1, installation_id: 2, private_key: k, privat_key: x}",
            "github_app.privat_key",
            "(did you mean 'private_key'?)",
            id="in github_app",
        ),
        pytest.param(
            "budget: {per_run_dollars: 5}",
            "budget.per_run_dollars",
            "(did you mean 'per_run_usd'?)",
            id="in budget",
        ),
        pytest.param(
            "kubernetes: {resources: {cpu_limt: 2}}",
            "kubernetes.resources.cpu_limt",
            "(did you mean 'cpu_limit'?)",
            id="in kubernetes.resources",
        ),
        pytest.param(
            "zzz: 1",
            "zzz",
            "(known keys: namespace, max_slots, launch_dir",
            id="no close match lists known keys",
        ),
        pytest.param(
            "scan: {zzz: 1}",
            "scan.zzz",
            "(known keys: min_interval, max_interval, task_ttl",
            id="no close match lists the section's keys",
        ),
    ],
)
def test_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path, text: str, key: str, hint: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == key
    assert f"unknown key '{key}' {hint}" in str(error)


# ------------------------------------------------------------------------- malformed or unreadable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("max_slots: [", "is not valid YAML at line 1, column 13", id="unclosed flow sequence"),
        pytest.param("a: b: c", "is not valid YAML at line 1", id="nested mapping on one line"),
        pytest.param("allowed_authors: [dependabot[bot]]", "is not valid YAML", id="unquoted brackets"),
        pytest.param(
            "- a\n- b", "must hold a mapping of keys (namespace, repos, ...), not a list", id="a list"
        ),
        pytest.param("just text", "not a str", id="a bare string"),
        pytest.param("42", "not a int", id="a bare number"),
    ],
)
def test_malformed_file_is_an_error_not_defaults(tmp_path: Path, text: str, expected: str) -> None:
    error = load_error(tmp_path, text)
    assert str(error).startswith(f"config file {tmp_path / 'k3sc.yaml'} ")
    assert expected in str(error)
    assert error.exit_code == 2


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "k3sc.yaml").mkdir()
    error = load_error(tmp_path, None)
    assert str(error) == f"cannot read config file {tmp_path / 'k3sc.yaml'}: Is a directory."


def test_yaml_alias_cycle_is_an_error_not_a_crash(tmp_path: Path) -> None:
    error = load_error(tmp_path, "scan: &loop {again: *loop}")
    assert error.key == "scan.again"


# ------------------------------------------------------------------------------------- provenance


def test_sources_name_file_env_and_derived_values(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        "max_slots: 3\ngithub_url: https://ghe.example.com\nscan: {min_interval: 1m}\n"
        "agent: {prompts: {implement: /p.md}}\n"
        "github_app: {app_id: 1, installation_id: 2, private_key: k}",
        {"MAX_SLOTS": "4"},
    )
    assert loaded.sources == {
        "max_slots": "env:MAX_SLOTS",
        "github_url": "file",
        "github_api_url": "derived from github_url",
        "scan.min_interval": "file",
        "agent.prompts.implement": "file",
        "github_app.app_id": "file",
        "github_app.installation_id": "file",
        "github_app.private_key": "file",
    }
    assert loaded.source_of("scan.max_interval") == "default"


@pytest.mark.parametrize(
    ("environ_path", "expected"),
    [
        pytest.param("{tmp}/custom.yaml", "{tmp}/custom.yaml", id="K3SC_CONFIG names the file"),
        pytest.param("~/custom.yaml", "{home}/custom.yaml", id="K3SC_CONFIG expands ~"),
        pytest.param("", "{home}/.k3sc.yaml", id="without K3SC_CONFIG the file is ~/.k3sc.yaml"),
    ],
)
def test_config_path_comes_from_k3sc_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ_path: str, expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # never the developer's ~/.k3sc.yaml

    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, home=Path.home())

    loaded = config.load(environ={"K3SC_CONFIG": fill(environ_path)})
    assert loaded.path == Path(fill(expected))


def test_config_path_reads_the_process_environment(tmp_path: Path) -> None:
    # The autouse isolated_env fixture points K3SC_CONFIG into tmp_path.
    assert config.config_path() == tmp_path / "k3sc.yaml"
    assert config.load().path == tmp_path / "k3sc.yaml"
