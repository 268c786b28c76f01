"""Shared set-up for the loop benchmarks: a sandbox world on a real Prefect server and real workers.

Exactly what `k3sc up --sandbox` starts (k3sc.services.up), with default settings, in-process so
the benchmark can label issues on the fake GitHub and time what follows.
"""

from __future__ import annotations

import asyncio
import collections
import os
import platform
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc.labels import Kind
from k3sc.models import AgentRun
from k3sc.orchestration import database as databases
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.stack import LocalStack
from k3sc.sandbox import world as sandbox
from k3sc.services import up

ACCESS_LINE = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) /api/')


def machine() -> str:
    python = platform.python_version()
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {python}"


@contextmanager
def loop(
    seed: dict[str, Any], *, record_requests: bool = False, database: str | None = None
) -> Iterator[up.Session]:
    """Start server (unless PREFECT_API_URL), world, deployments and workers; stop them after.

    With `database` (a postgresql:// URL) the server runs on that PostgreSQL database, created
    here and dropped after, as `k3sc up --database` runs it.
    """
    with tempfile.TemporaryDirectory(prefix="k3sc-bench-") as tmp:
        root = Path(tmp)
        os.environ["K3SC_HOME"] = str(root / "home")
        world = sandbox.build(root / "world", sandbox.WorldSeed.model_validate(seed))
        if record_requests:
            world.fake.record_all(bodies=False)  # count every request of the run
        stack = LocalStack(root / "stack")
        # INFO makes uvicorn write one access-log line per API request: the Prefect request count.
        stack.extra_env = {"PREFECT_SERVER_LOGGING_LEVEL": "INFO"}
        config = k3sc_config.load(world.config_path, environ={}).config
        session = up.Session(root / "home", config, world.config_path, stack, world=world)
        # As `k3sc up --sandbox`: label changes reach the loop as signed webhook deliveries.
        session.webhook_secret = SecretStr(secrets.token_urlsafe(32))
        try:
            options = up.UpOptions(sandbox=True, database=SecretStr(database) if database else None)
            up.start(session, SecretStr(world.token), options, lambda line: None)
            time.sleep(8)  # let the start-up scan finish: it finds nothing and is not measured
            yield session
        finally:
            up.shutdown(session, lambda line: None)
            if database:
                asyncio.run(drop_database(database))


async def drop_database(url: str) -> None:
    """Drop the bench's PostgreSQL database (connected to `postgres` on the same server)."""
    import asyncpg

    name = databases.database_name(SecretStr(url))
    admin = url.rsplit("/", 1)[0].replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    connection = await asyncpg.connect(admin, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def prefect_requests(session: up.Session) -> int:
    log = session.stack.log_dir / "server.log"
    try:
        return sum(1 for line in log.read_text(errors="replace").splitlines() if ACCESS_LINE.search(line))
    except OSError:
        return 0


ACCESS_REQUEST = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) /api/([^ ?"]*)')
ID_IN_PATH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<=/name/)[^/]+")


def prefect_endpoints(session: up.Session, skip: int = 0) -> collections.Counter[str]:
    """The server's access log after its first `skip` requests, by method and path ({id} for ids)."""
    found: collections.Counter[str] = collections.Counter()
    try:
        lines = (session.stack.log_dir / "server.log").read_text(errors="replace").splitlines()
    except OSError:
        return found
    for match in [m for line in lines if (m := ACCESS_REQUEST.search(line))][skip:]:
        found[f"{match.group(1)} /{ID_IN_PATH.sub('{id}', match.group(2))}"] += 1
    return found


def issue_runs_of(session: up.Session, refs: list[str]) -> list[AgentRun]:
    """Every agent run Prefect recorded for these issues (`owner/name#N`)."""

    async def read() -> list[AgentRun]:
        async with PrefectAPI(session.api_url) as api:
            return await runs.runs_for_issues(api, [ref.lower() for ref in refs])

    return asyncio.run(read())


def implement_run(
    session: up.Session, ref: str, *, started: bool = False, ended: bool = False
) -> AgentRun | None:
    """The issue's first implementation run once it has started (or ended), else None."""
    for run in issue_runs_of(session, [ref]):
        if run.kind is Kind.IMPLEMENT and (run.started_at if started else run.ended_at if ended else True):
            return run
    return None


def wait_for(predicate: Any, timeout: float, poll: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"condition not met within {timeout}s")
