"""Helpers for end-to-end tests: run `k3sc up --sandbox` for real and read what happened."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc.models import AgentRun
from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.stack import LocalStack
from k3sc.sandbox import world as sandbox
from k3sc.services import up


def run_up(
    tmp_path: Path, prefect_api_url: str | None, seed: dict[str, Any] | None, *, timeout: float = 600.0
) -> dict[str, Any]:
    """`k3sc up --sandbox [--seed] --until-idle --json` in a subprocess; returns its summary.

    With `prefect_api_url` the session's server is used (as a user's PREFECT_API_URL would be);
    without, `k3sc up` starts and stops its own, exactly as the README's quick start does.
    """
    argv = [
        sys.executable,
        "-m",
        "k3sc",
        "up",
        "--sandbox",
        "--until-idle",
        "--json",
        "--timeout",
        str(timeout),
    ]
    if seed is not None:
        seed_path = tmp_path / "world.yaml"
        seed_path.write_text(yaml.safe_dump(seed))
        argv += ["--seed", str(seed_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN", "PREFECT_API_URL")}
    env["K3SC_HOME"] = str(tmp_path / "k3sc-home")
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout + 180, check=False)
    if proc.returncode != 0:
        logs = ""
        for log in sorted((tmp_path / "k3sc-home").rglob("worker-*.log")):
            logs += f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"k3sc up exited {proc.returncode}\nstderr:\n{proc.stderr[-4000:]}{logs}")
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def agent_runs(api_url: str, summary: dict[str, Any]) -> list[AgentRun]:
    """Every agent run Prefect recorded for the summary's issues."""

    async def read() -> list[AgentRun]:
        async with PrefectAPI(api_url) as api:
            return await runs.runs_for_issues(api, [i["issue"].lower() for i in summary["issues"]])

    return asyncio.run(read())


def issue(summary: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(i for i in summary["issues"] if i["issue"].endswith(ref))


@dataclass
class Deployed:
    """A sandbox world on the session's Prefect server with k3sc deployed, but no worker started.

    `env` is what a dispatcher or worker process for this world needs; `session` is the same
    object `k3sc up` works with, so tests reuse its idle check, summary and deploy steps.
    """

    world: sandbox.World
    session: up.Session
    env: dict[str, str]

    def stop(self) -> None:
        self.session.stack.stop()
        self.world.stop()


async def reset_dispatch(api_url: str) -> None:
    """A clean slate: no dispatch state, no scheduled or pending dispatch or agent runs."""
    async with PrefectAPI(api_url) as api:
        await api.delete_variable(dispatch_state.STATE_VARIABLE)
        for name in (runs.DISPATCH_DEPLOYMENT, runs.AGENT_DEPLOYMENT):
            deployment = await api.deployment_id(name)
            for flow_run in await api.flow_runs(
                deployment_ids=[deployment], state_types=["SCHEDULED", "PENDING"]
            ):
                await api.set_state(flow_run.id, "CANCELLED", force=True)


def deployed_world(
    tmp_path: Path, prefect_api_url: str, seed: dict[str, Any], *, webhook_secret: str | None = None
) -> Deployed:
    """Build the world, deploy pools, blocks, flows and automations for it (`k3sc up`'s own steps).

    With `webhook_secret` it is stored in the receiver's Secret block, as `k3sc up` does.
    """
    world = sandbox.build(tmp_path / "world", sandbox.WorldSeed.model_validate(seed))
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api_url,
        "K3SC_CONFIG": str(world.config_path),
        "K3SC_CACHE_DIR": str(tmp_path / "cache"),
        "GITHUB_TOKEN": world.token,
    }
    stack = LocalStack(tmp_path / "stack", api_url=prefect_api_url)
    stack.extra_env = {k: env[k] for k in ("K3SC_CONFIG", "K3SC_CACHE_DIR")}
    config = k3sc_config.load(world.config_path, environ={}).config
    session = up.Session(tmp_path, config, world.config_path, stack, api_url=prefect_api_url, world=world)
    session.webhook_secret = SecretStr(webhook_secret) if webhook_secret else None
    try:
        asyncio.run(up.deploy_all(session, SecretStr(world.token)))
    except BaseException:
        world.stop()
        raise
    return Deployed(world, session, env)
