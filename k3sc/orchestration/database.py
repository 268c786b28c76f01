"""The PostgreSQL database a local Prefect server runs on, when SQLite is not enough.

Separate from `stack` because the URL is a secret: it only ever travels as a `SecretStr`, into
the server's environment (never its command line), and is shown with its password replaced.
The database is created when absent, through the `postgres` maintenance database, with asyncpg
(the driver Prefect's server itself uses for PostgreSQL).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

from k3sc.errors import OrchestrationError

_SCHEME = re.compile(r"^postgres(ql)?(\+asyncpg)?$")
_MAINTENANCE_DB = "postgres"


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (for messages and banners)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def server_url(url: SecretStr) -> SecretStr:
    """The SQLAlchemy URL Prefect's server needs: `postgresql+asyncpg://`, whatever was written."""
    text = url.get_secret_value()
    scheme, rest = text.split("://", 1)
    if not _SCHEME.match(scheme):
        raise OrchestrationError(f"database {redact(text)}: expected a postgresql:// URL")
    return SecretStr(f"postgresql+asyncpg://{rest}")


def database_name(url: SecretStr) -> str:
    name = unquote(urlsplit(url.get_secret_value()).path.lstrip("/"))
    if not name:
        raise OrchestrationError(
            f"database {redact(url.get_secret_value())}: name the database, e.g. postgresql://host/k3sc"
        )
    return name


async def ensure(url: SecretStr) -> bool:
    """Create the URL's database if it does not exist; True if it was created.

    Raises:
        OrchestrationError: the server cannot be reached or refuses (the message is redacted).
    """
    import asyncpg  # type: ignore[import-untyped]  # no stubs in the lock

    text = url.get_secret_value()
    parts = urlsplit(text)
    name = database_name(url)
    try:
        connection = await asyncpg.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            database=_MAINTENANCE_DB,
            timeout=10,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = _reason(exc, text)
        raise OrchestrationError(f"cannot connect to PostgreSQL at {redact(text)}: {reason}") from None
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await connection.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False  # another k3sc created it meanwhile
        return True
    except asyncpg.PostgresError as exc:
        raise OrchestrationError(f"cannot create database {name!r}: {_reason(exc, text)}") from None
    finally:
        await connection.close()


def _reason(exc: BaseException, url: str) -> str:
    """The driver's message, with the password removed should it quote the URL."""
    message = str(exc) or type(exc).__name__
    password = urlsplit(url).password
    return message.replace(password, "***") if password else message
