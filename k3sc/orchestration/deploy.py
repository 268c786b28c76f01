"""Put k3sc onto a Prefect server: work pools, credential blocks, deployments, automations.

Everything here is idempotent, so `k3sc up` can run it on every start. The deployments come
from the project's `prefect.yaml` through Prefect's own `prefect deploy`, so the file stays
the single description of what runs where; the pools are created first because a deployment
on a missing pool is a trap. Prefect is imported inside the functions: only `k3sc up` pays.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from k3sc.errors import OrchestrationError

DISPATCH_POOL = "k3sc-dispatch"
AGENT_POOL = "k3sc-agents"
ZOMBIE_AUTOMATION = "k3sc-crash-zombies"
DEPLOYMENT_NAMES = ("k3sc-dispatch", "k3sc-agent")
WEBHOOK_BLOCK = "k3sc-webhook"  # a Prefect Secret block (k3sc.webhook.serving reads it)


def prefect_yaml() -> Path:
    """The project's prefect.yaml: beside the `flows` package in a checkout, else packaged.

    Located through the import system without importing `flows` (this adapter sits below it).
    """
    spec = importlib.util.find_spec("flows")
    if spec is not None and spec.origin:
        checkout = Path(spec.origin).resolve().parent.parent / "prefect.yaml"
        if checkout.is_file():
            return checkout
    packaged = Path(__file__).resolve().parent.parent / "data" / "prefect.yaml"
    if packaged.is_file():
        return packaged
    raise OrchestrationError("prefect.yaml not found beside the flows package or in k3sc/data")


async def ensure_pools(agent_slots: int, agent_template: dict[str, Any] | None = None) -> None:
    """The dispatch pool (process) and the agent pool, whose limit is max_slots.

    With `agent_template` the agent pool is a Kubernetes pool with that base job template
    (updated on every call, so `k3sc deploy` carries config changes); without, a process pool.
    A pool of the other type is an error: its deployments and workers would not match.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    process_template = ProcessWorker.get_default_base_job_template()
    wanted = (
        (DISPATCH_POOL, "process", process_template, None),
        (
            AGENT_POOL,
            "process" if agent_template is None else "kubernetes",
            process_template if agent_template is None else agent_template,
            agent_slots,
        ),
    )
    async with get_client() as client:
        for name, pool_type, template, limit in wanted:
            try:
                existing = await client.read_work_pool(name)
            except ObjectNotFound:
                await client.create_work_pool(
                    WorkPoolCreate(
                        name=name, type=pool_type, base_job_template=template, concurrency_limit=limit
                    )
                )
                continue
            if existing.type != pool_type:
                raise OrchestrationError(
                    f"work pool {name} is a {existing.type} pool, but agent.pool wants {pool_type}: "
                    f"delete it (`prefect work-pool delete {name}`) and deploy again"
                )
            update = WorkPoolUpdate(concurrency_limit=limit)
            if pool_type == "kubernetes":
                update = WorkPoolUpdate(concurrency_limit=limit, base_job_template=template)
            await client.update_work_pool(name, update)


async def save_credentials(github_token: SecretStr | None, agent_env: Mapping[str, SecretStr]) -> None:
    """Register the block types and store the secrets the flows load by name."""
    from blocks.credentials import AGENT_BLOCK, GITHUB_BLOCK, AgentCredentials, GitHubCredentials

    for block_type in (GitHubCredentials, AgentCredentials):
        await block_type.aregister_type_and_schema()
    await GitHubCredentials(token=github_token).asave(GITHUB_BLOCK, overwrite=True)
    await AgentCredentials(env=dict(agent_env)).asave(AGENT_BLOCK, overwrite=True)


async def save_webhook_secret(secret: SecretStr) -> None:
    """Store the GitHub hook's secret in the Prefect Secret block the receiver reads."""
    from prefect.blocks.system import Secret

    await Secret(value=secret).asave(WEBHOOK_BLOCK, overwrite=True)


def deploy_flows(env: Mapping[str, str], timeout: float = 180.0) -> str:
    """Run `prefect deploy --all` on prefect.yaml; returns its output (raises on failure)."""
    from k3sc.orchestration.stack import prefect_executable

    path = prefect_yaml()
    argv = [*prefect_executable(), "--no-prompt", "deploy", "--all", "--prefect-file", str(path)]
    try:
        result = subprocess.run(
            argv, cwd=path.parent, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise OrchestrationError(f"`prefect deploy` did not finish within {timeout:.0f}s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise OrchestrationError(f"`prefect deploy` failed (exit {result.returncode}):\n{tail}")
    return result.stdout


async def ensure_zombie_automation(within: timedelta = timedelta(seconds=90)) -> None:
    """Crash k3sc runs whose heartbeats stop, so a killed process frees its slot and is handed off.

    The clock starts at *Running* as well as at each heartbeat: the Running event is emitted by
    the server, so a process killed before its first heartbeat reached the server (a dispatch
    run is often that short) is caught too, and a dead dispatcher cannot hold the deployment's
    only concurrency slot.
    """
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        existing = await Automation.aread(name=ZOMBIE_AUTOMATION)
    except ValueError:
        existing = None
    if existing is not None:
        await existing.adelete()
    await Automation(
        name=ZOMBIE_AUTOMATION,
        description="Mark k3sc flow runs as crashed when their heartbeats stop.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat", "prefect.flow-run.Running"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
                "prefect.flow-run.TimedOut",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "deployment", "prefect.resource.name": list(DEPLOYMENT_NAMES)}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {within.total_seconds():.0f}s: process lost.",
            )
        ],
    ).acreate()
