"""`k3sc rotate-auth`: which local credentials are read, how bad input fails (exit 2, one paragraph),
and that only key names are ever printed. The collection table reads real files in a temp home."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from k3sc.config import Config
from k3sc.errors import UsageError
from k3sc.services import rotate_auth
from tests.cli_helpers import invoke

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = int((NOW + timedelta(days=30)).timestamp() * 1000)
EARLIER = int((NOW - timedelta(hours=1)).timestamp() * 1000)


def oauth(token: str = "sk-ant-oat-TOKEN", expires: int | None = LATER) -> str:
    return json.dumps({"claudeAiOauth": {"accessToken": token, "expiresAt": expires}})


def collect(
    home: Path,
    files: dict[str, str],
    environ: dict[str, str] | None = None,
    config: Config | None = None,
    export: str | None = None,
) -> rotate_auth.Collected:
    for name, text in files.items():
        path = home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return rotate_auth.collect(
        config or Config(),
        environ=environ or {},
        home=home,
        now=NOW,
        aws_export=lambda profile: export,
        github_token=SecretStr("ghp_x"),
        github_source="GITHUB_TOKEN",
    )


CODEX = {".codex/auth.json": json.dumps({"tokens": {"id_token": "t"}})}

FOUND = [
    pytest.param(
        {".claude/.credentials.json": oauth(), **CODEX},
        {},
        None,
        {"CLAUDE_CODE_OAUTH_TOKEN", "CODEX_AUTH_JSON"},
        "valid until 2026-12-31",
        id="a valid Claude OAuth token and Codex's auth.json",
    ),
    pytest.param(
        {".claude/.credentials.json": oauth(expires=EARLIER), **CODEX},
        {},
        None,
        {"CLAUDE_CODE_OAUTH_TOKEN", "CODEX_AUTH_JSON"},
        "expired 2026-12-01 11:00",
        id="an expired OAuth token is stored with a warning",
    ),
    pytest.param(
        {".codex/auth.json": json.dumps({"OPENAI_API_KEY": "sk-o"})},
        {"ANTHROPIC_API_KEY": "sk-ant"},
        None,
        {"ANTHROPIC_API_KEY", "CODEX_AUTH_JSON", "OPENAI_API_KEY"},
        "no OAuth credentials",
        id="an API key from the environment; Codex's key from its auth.json",
    ),
    pytest.param(
        CODEX,
        {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"},
        None,
        {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "CLAUDE_CODE_USE_BEDROCK",
            "CODEX_AUTH_JSON",
        },
        "no OAuth credentials",
        id="Bedrock from the environment when asked for",
    ),
    pytest.param(
        {**CODEX, ".aws/credentials": "[default]\naws_access_key_id = AKIA\naws_secret_access_key = s\n"},
        {"CLAUDE_CODE_USE_BEDROCK": "1"},
        None,
        {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "CLAUDE_CODE_USE_BEDROCK",
            "CODEX_AUTH_JSON",
        },
        "no OAuth credentials",
        id="Bedrock from ~/.aws/credentials when asked for",
    ),
    pytest.param(
        CODEX,
        {},
        "AWS_ACCESS_KEY_ID=AKIA\nAWS_SECRET_ACCESS_KEY=s\nAWS_SESSION_TOKEN=t\nAWS_CREDENTIAL_EXPIRATION=2026-12-01T20:00:00Z\n",
        {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "CLAUDE_CODE_USE_BEDROCK",
            "CODEX_AUTH_JSON",
        },
        "valid until 2026-12-01T20:00:00Z",
        id="Bedrock from an SSO profile's exported credentials",
    ),
]


@pytest.mark.parametrize(("files", "environ", "export", "keys", "said"), FOUND)
def test_credentials_found_on_this_machine(
    tmp_path: Path,
    files: dict[str, str],
    environ: dict[str, str],
    export: str | None,
    keys: set[str],
    said: str,
) -> None:
    config = Config.model_validate({"aws_profile": "sso"}) if export else Config()
    found = collect(tmp_path, files, environ, config, export)
    assert set(found.agent) == keys
    assert any(said in line for line in found.notes + found.warnings), (found.notes, found.warnings)


def test_aws_keys_alone_never_switch_claude_to_bedrock(tmp_path: Path) -> None:
    """The original stored any AWS keys it found and so silently moved every Claude run to Bedrock."""
    found = collect(
        tmp_path,
        {".claude/.credentials.json": oauth(), **CODEX},
        {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"},
    )
    assert not any(k.startswith("AWS_") or k == "CLAUDE_CODE_USE_BEDROCK" for k in found.agent)


BAD = [
    pytest.param(
        {".claude/.credentials.json": "{not json", **CODEX},
        {},
        "is not valid JSON",
        id="unparsable Claude credentials",
    ),
    pytest.param(
        {".claude/.credentials.json": oauth(token=""), **CODEX},
        {},
        "has no claudeAiOauth.accessToken",
        id="empty OAuth token",
    ),
    pytest.param(
        {".claude/.credentials.json": oauth(), ".codex/auth.json": "[1"},
        {},
        "auth.json is not valid JSON",
        id="unparsable Codex auth",
    ),
    pytest.param(
        {".claude/.credentials.json": oauth(), ".codex/auth.json": "[1]"},
        {},
        "must hold a JSON object",
        id="Codex auth not an object",
    ),
    pytest.param(CODEX, {}, "no credentials found for claude", id="no Claude credentials at all"),
    pytest.param(
        {".claude/.credentials.json": oauth()},
        {},
        "no credentials found for codex",
        id="no Codex credentials",
    ),
    pytest.param({}, {}, "claude (run `claude auth login`", id="nothing at all names both families"),
]


@pytest.mark.parametrize(("files", "environ", "expected"), BAD)
def test_bad_or_missing_credentials_are_a_usage_error(
    tmp_path: Path, files: dict[str, str], environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(UsageError) as caught:
        collect(tmp_path, files, environ)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2
    assert "sk-ant-oat-TOKEN" not in str(caught.value)


def test_only_configured_families_are_required(tmp_path: Path) -> None:
    found = collect(tmp_path, CODEX, config=Config.model_validate({"families": ["codex"]}))
    assert set(found.agent) == {"CODEX_AUTH_JSON"}


def test_the_cli_fails_with_one_paragraph_on_bad_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / ".credentials.json").write_text("{broken")
    result = invoke(["rotate-auth"], code=2, contains=["error:", "is not valid JSON"])
    assert result.stderr.count("\n") == 1


@pytest.mark.prefect
def test_the_cli_stores_the_blocks_and_prints_key_names_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api_url: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, text in {".claude/.credentials.json": oauth(), **CODEX}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    invoke(
        ["rotate-auth", "--prefect-url", prefect_api_url],
        contains=[
            "stored 3 key(s)",
            "k3sc-github: token (from GITHUB_TOKEN)",
            "k3sc-agents: CLAUDE_CODE_OAUTH_TOKEN",
            "k3sc-agents: CODEX_AUTH_JSON",
        ],
        absent=["sk-ant-oat-TOKEN", "ghp_rotated", "id_token"],
        env={
            "GITHUB_TOKEN": "ghp_rotated",
            "ANTHROPIC_API_KEY": None,
            "OPENAI_API_KEY": None,
            "CLAUDE_CONFIG_DIR": None,
            "CODEX_HOME": None,
        },
    )

    import asyncio

    from blocks.credentials import AgentCredentials
    from k3sc.services.deploy import prefect_session

    with prefect_session(prefect_api_url):
        block = asyncio.run(AgentCredentials.aload("k3sc-agents"))
    assert block.values()["CLAUDE_CODE_OAUTH_TOKEN"] == "sk-ant-oat-TOKEN"
