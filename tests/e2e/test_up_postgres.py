"""`k3sc up --database postgresql://…`: the local Prefect server on PostgreSQL instead of SQLite.

The sandbox loop runs to idle on a database the command creates, the runs are in PostgreSQL,
and the password (a canary: trust authentication accepts any) shows up nowhere: not in the
output, not on any child's command line, not in the logs.
PostgreSQL 15 listens on 127.0.0.1:5432 (user postgres, trust) on the machines this runs on;
the database is unique to this test and dropped after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psutil
import pytest

from k3sc import names

pytestmark = pytest.mark.e2e

SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


async def _sql(query: str, *, database: str = "postgres") -> list[Any]:
    connection = await asyncpg.connect(**SERVER, database=database, timeout=10)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


@pytest.fixture
def database_name() -> Iterator[str]:
    """A fresh name (the command must create it), dropped afterwards whatever happened."""
    name = f"k3sc_test_{secrets.token_hex(4)}"
    yield name
    asyncio.run(_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_up_runs_the_sandbox_loop_on_postgresql(tmp_path: Path, database_name: str) -> None:
    canary = f"pw-{secrets.token_hex(6)}"
    url = f"postgresql://postgres:{canary}@127.0.0.1:5432/{database_name}"
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GITHUB_TOKEN", "GH_TOKEN"))}
    env["K3SC_HOME"] = str(home)
    argv = [sys.executable, "-m", "k3sc", "up", "--sandbox", "--until-idle", "--json", "--timeout", "600"]
    out, err = tmp_path / "stdout", tmp_path / "stderr"  # files: a full pipe would block the loop
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        up = subprocess.Popen([*argv, "--database", url], env=env, stdout=stdout_file, stderr=stderr_file)
    command_lines: set[str] = set()
    while up.poll() is None:
        # Every process k3sc started (its own command line holds what the user typed), sampled
        # while the loop runs.
        try:
            for child in psutil.Process(up.pid).children(recursive=True):
                command_lines.add(" ".join(child.cmdline()))
        except psutil.Error:
            pass
        time.sleep(1.0)
    stdout, stderr = out.read_text(), err.read_text()
    assert up.returncode == 0, stderr[-4000:]
    assert "warning: --database holds a password" in stderr
    summary = json.loads(stdout)
    assert sum(1 for issue in summary["issues"] if issue["labels"] == ["needs-human"]) >= 4, stdout
    assert f"data in postgresql://postgres:***@127.0.0.1:5432/{database_name}" in stderr

    query = f"SELECT name FROM flow_run WHERE tags ? '{names.TAG_AGENT_RUN}'"
    agent_runs = asyncio.run(_sql(query, database=database_name))
    attempts = sum(len(issue["attempts"]) for issue in summary["issues"])
    assert len(agent_runs) == attempts > 0

    assert any("prefect server start" in line for line in command_lines), command_lines
    leaks = [line for line in command_lines if canary in line]
    leaks += [str(log) for log in home.rglob("*.log") if canary in log.read_text(errors="replace")]
    assert canary not in stdout + stderr
    assert leaks == []
