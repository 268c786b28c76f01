"""Render agent Jobs exactly as prefect-kubernetes' worker would POST them, offline."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from k3sc.config import Config
from k3sc.kube import jobs
from k3sc.labels import Kind
from k3sc.models import Repo

# What the shipped worker Deployment sets, so the Job carries the auth string only as a reference.
AUTH_SECRET = ("k3sc-prefect", "auth-string")
WORKER_SETTINGS = {
    "PREFECT_API_URL": "http://prefect-server.claude-agents.svc:4200/api",
    "PREFECT_API_AUTH_STRING": "admin:s3cret-auth-value",
    "PREFECT_HOME": "/home/prefect/.prefect",
}


async def render_job(
    config: Config,
    repo: Repo,
    issue: int,
    kind: Kind,
    agent: str,
    attempt: int = 1,
    *,
    template: dict[str, Any] | None = None,
    deployment_variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Job manifest for one flow run: Prefect's own templating, preparation and secret swap.

    The worker's Prefect settings are in force while rendering, because the worker copies every
    one of them into the Job (its PREFECT_API_AUTH_STRING included, until swapped for a reference).
    """
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import Flow, FlowRun, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_HOME,
        temporary_settings,
    )
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    base = template if template is not None else jobs.base_job_template(config)
    flow = Flow(id=uuid.uuid4(), name="k3sc-agent")
    pool = WorkPool(name="k3sc-agents", type="kubernetes", base_job_template=base)
    deployment = DeploymentResponse(
        id=uuid.uuid4(), name="k3sc-agent", flow_id=flow.id, job_variables=deployment_variables or {}
    )
    flow_run = FlowRun(
        id=uuid.uuid4(),
        name=f"{repo.full_name}#{issue} {kind.value} {agent}",
        flow_id=flow.id,
        deployment_id=deployment.id,
        job_variables=jobs.run_job_variables(repo, issue, kind, agent, attempt),
    )
    # The worker's own merge (resolve_for_flow_run): deployment variables, then the run's.
    values = copy.deepcopy(deployment.job_variables)
    values.update(flow_run.job_variables or {})
    settings = {
        PREFECT_API_URL: WORKER_SETTINGS["PREFECT_API_URL"],
        PREFECT_API_AUTH_STRING: WORKER_SETTINGS["PREFECT_API_AUTH_STRING"],
        PREFECT_HOME: WORKER_SETTINGS["PREFECT_HOME"],
    }
    with temporary_settings(updates=settings):
        # A client that is never called: the template has no block or variable references.
        configuration = await KubernetesWorkerJobConfiguration.from_template_and_values(
            base, values, client=PrefectClient(api="http://127.0.0.1:9/api")
        )
        configuration.prepare_for_flow_run(
            flow_run, deployment=deployment, flow=flow, work_pool=pool, worker_name="k3sc-agents-worker"
        )
    # What `_create_job` does with the worker's *_API_AUTH_STRING_SECRET_NAME/KEY settings.
    worker = KubernetesWorker.__new__(KubernetesWorker)
    await worker._replace_env_variable_with_secret(
        env_variable_name="PREFECT_API_AUTH_STRING",
        configuration=configuration,
        secret_name=AUTH_SECRET[0],
        secret_key=AUTH_SECRET[1],
    )
    manifest: dict[str, Any] = configuration.job_manifest
    return manifest
