"""The PostgreSQL URL for the local Prefect server: shown only redacted, turned into the server's
driver URL, and read from `--database`, K3SC_DATABASE_URL or `prefect.database`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from k3sc import config
from k3sc.errors import ConfigError, OrchestrationError
from k3sc.orchestration import database
from tests.cli_helpers import invoke

CANARY = "canary-pw-7f3a"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            f"postgresql://postgres:{CANARY}@db:5432/k3sc",
            "postgresql://postgres:***@db:5432/k3sc",
            id="a password is replaced",
        ),
        pytest.param(
            "postgresql://postgres@127.0.0.1/k3sc",
            "postgresql://postgres@127.0.0.1/k3sc",
            id="no password, as is",
        ),
        pytest.param(
            f"postgresql://:{CANARY}@db/k3sc", "postgresql://:***@db/k3sc", id="a password without a user"
        ),
        pytest.param(
            "postgresql://u:p%40ss@db/k3sc?sslmode=require",
            "postgresql://u:***@db/k3sc?sslmode=require",
            id="an escaped password and a query",
        ),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert database.redact(url) == shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("postgresql://u@h/k3sc", "postgresql+asyncpg://u@h/k3sc", id="postgresql"),
        pytest.param("postgres://u@h/k3sc", "postgresql+asyncpg://u@h/k3sc", id="postgres shorthand"),
        pytest.param("postgresql+asyncpg://u@h/k3sc", "postgresql+asyncpg://u@h/k3sc", id="already asyncpg"),
    ],
)
def test_the_server_gets_the_asyncpg_driver(url: str, expected: str) -> None:
    assert database.server_url(SecretStr(url)).get_secret_value() == expected


def test_a_url_without_a_database_name_is_refused_without_its_password() -> None:
    with pytest.raises(OrchestrationError, match="name the database") as raised:
        database.database_name(SecretStr(f"postgresql://u:{CANARY}@h:5432/"))
    assert CANARY not in str(raised.value)


def test_the_environment_names_the_database_over_the_file(isolated_env: Path) -> None:
    path = isolated_env / "k3sc.yaml"
    path.write_text("prefect:\n  database: postgresql://file@h/k3sc\n")
    assert config.load(path, environ={}).config.prefect.database == SecretStr("postgresql://file@h/k3sc")
    loaded = config.load(path, environ={config.ENV_DATABASE: f"postgresql://u:{CANARY}@h/k3sc"})
    assert loaded.config.prefect.database == SecretStr(f"postgresql://u:{CANARY}@h/k3sc")
    assert loaded.source_of("prefect.database") == "env:K3SC_DATABASE_URL"
    assert CANARY not in repr(loaded.config)


def test_a_bad_database_url_is_a_config_error_that_does_not_echo_it() -> None:
    with pytest.raises(ConfigError, match="K3SC_DATABASE_URL") as raised:
        config.load(Path("/nonexistent.yaml"), environ={config.ENV_DATABASE: f"mysql://u:{CANARY}@h/db"})
    assert "'prefect.database'" in str(raised.value)
    assert CANARY not in str(raised.value)


def test_up_refuses_a_database_that_is_not_postgresql_without_showing_the_password() -> None:
    invoke(
        ["up", "--sandbox", "--database", f"mysql://u:{CANARY}@h/db"],
        code=2,
        contains=["--database mysql://u:***@h/db: expected a postgresql://"],
        absent=[CANARY],
    )


def test_up_says_it_cannot_reach_the_database_without_showing_the_password() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    invoke(
        ["up", "--sandbox", "--database", f"postgresql://postgres:{CANARY}@127.0.0.1:1/k3sc_x"],
        code=1,
        contains=["cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/k3sc_x"],
        absent=[CANARY],
    )
