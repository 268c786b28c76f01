"""The real `prefect worker start --type kubernetes` (prefect-kubernetes 0.8.0, its observer included)
against the fake Kubernetes API with the fake cluster's controller and kubelet, on the session
Prefect server, with the shipped job template and the shipped Role enforced on the worker.

Proves, with the real worker and observer: a run with k3sc's per-run job variables becomes a
hardened Job that runs the flow as uid 1000 on a read-only root (writing only to its emptyDirs and PVC), with repository-qualified
labels and its own workspace sub-path, and completes; a pod that exits before Python starts
crashes the run, and its pod log (the only trace) is read back by k3sc.kube; a Job deleted by
k3sc.kube is gone at once and the run is Crashed, never re-run (SIGTERM behaviour `crash`); an
image that cannot be pulled leaves the run pending, k3sc.kube names the reason and reaps it.
The worker never needed a call the shipped Role does not grant. What only a real cluster shows:
admission, scheduling, image pulls, network policy, real kubelet semantics.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3sc import names
from k3sc.config import Config
from k3sc.kube import jobs, manifests
from k3sc.kube.client import Kube
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.orchestration.stack import WORKER_SETTINGS, child_env, spawn
from k3sc.sandbox import kube as fake_kube
from k3sc.sandbox.kube_cluster import Cluster
from tests.k8s.fake import NAMESPACE, FakeInThread

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("unshare"), reason="the fake kubelet needs root"
    ),
]

IMAGE = "k3sc-agent:e2e"
CONFIG = Config.model_validate({"agent": {"pool": "kubernetes"}, "kubernetes": {"image": IMAGE}})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeInThread, Cluster]]:
    objects = manifests.fit(manifests.render(manifests.overlay_dir("single-node")), CONFIG)
    rules = fake_kube.role_rules(objects)
    fake = FakeInThread(
        tokens={
            "worker": rules[f"{NAMESPACE}/k3sc-agent-worker"],
            "dispatch": rules[f"{NAMESPACE}/k3sc-dispatch"],
        },
        admin_tokens={"admin"},
    ).start()
    state = tmp_path / "cluster"
    state.mkdir()
    runtime = Cluster(fake.fake, images={IMAGE}, state_dir=state)

    async def setup() -> None:
        runtime.start()
        secret = manifests.prefect_secret(CONFIG, {}, database=False)
        for obj in [*objects, manifests.config_map(CONFIG), secret]:
            plural = {"Namespace": "namespaces"}.get(obj["kind"])
            if plural or obj["kind"] in ("ConfigMap", "Secret"):
                await fake.fake.store(plural or obj["kind"].lower() + "s", obj)

    fake.call(setup())
    try:
        yield fake, runtime
    finally:
        fake.call(runtime.stop())
        fake.stop()


async def deployment(api_url: str, pool: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from k3sc.sandbox.kube_flows import probe

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        async with get_client() as client:
            await client.create_work_pool(
                WorkPoolCreate(name=pool, type="kubernetes", base_job_template=jobs.base_job_template(CONFIG))
            )
            flow_id = await client.create_flow(probe)
            deployment_id = await client.create_deployment(
                flow_id=flow_id,
                name=pool,
                entrypoint="k3sc.sandbox.kube_flows:probe",
                work_pool_name=pool,
                pull_steps=[],
            )
    return str(deployment_id)


async def submit(api_url: str, deployment_id: str, mode: str, job_variables: dict[str, Any]) -> str:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        async with get_client() as client:
            run = await client.create_flow_run_from_deployment(
                uuid.UUID(deployment_id), parameters={"mode": mode}, job_variables=job_variables
            )
    return str(run.id)


async def state_of(api_url: str, run_id: str) -> str:
    from k3sc.orchestration.api import PrefectAPI

    async with PrefectAPI(api_url) as api:
        run = await api.flow_run(run_id)
    assert run is not None and run.state is not None
    return run.state.type


def wait(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {within:.0f}s: {what}")


def test_the_real_worker_runs_k3sc_jobs_on_the_fake_cluster(
    tmp_path: Path, prefect_api_url: str, cluster: tuple[FakeInThread, Cluster]
) -> None:
    fake, runtime = cluster
    pool = f"k3sc-agents-e2e-{uuid.uuid4().hex[:6]}"
    deployment_id = asyncio.run(deployment(prefect_api_url, pool))
    env = child_env(
        {
            **WORKER_SETTINGS,
            "PREFECT_API_URL": prefect_api_url,
            "PREFECT_HOME": str(tmp_path / "worker-home"),
            "KUBECONFIG": str(fake.kubeconfig(tmp_path / "worker-kubeconfig", token="worker")),
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES": NAMESPACE,
            "PREFECT_WORKER_ENABLE_CANCELLATION": "false",
        }
    )
    env.pop("KUBERNETES_SERVICE_HOST", None)
    argv = [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "kubernetes",
        "--name",
        pool,
    ]
    worker = spawn("worker", argv, env, tmp_path / "worker.log")
    dispatch_config = fake.kubeconfig(tmp_path / "dispatch-kubeconfig", token="dispatch")

    def kube_call(coro_fn: Any) -> Any:
        async def go() -> Any:
            async with await Kube.connect(NAMESPACE, kubeconfig=str(dispatch_config)) as kube:
                return await coro_fn(kube)

        return asyncio.run(go())

    def state(run_id: str) -> str:
        return asyncio.run(state_of(prefect_api_url, run_id))

    try:
        repo = Repo("acme", "api")
        ok = submit_run = asyncio.run(
            submit(
                prefect_api_url,
                deployment_id,
                "ok",
                jobs.run_job_variables(repo, 7, Kind.IMPLEMENT, "claude-b", 1),
            )
        )
        early = asyncio.run(
            submit(
                prefect_api_url, deployment_id, "ok", {"command": "sh -c 'echo no python here >&2; exit 3'"}
            )
        )
        sleeper = asyncio.run(
            submit(
                prefect_api_url,
                deployment_id,
                "sleep",
                jobs.run_job_variables(Repo("other", "api"), 7, Kind.REVIEW, "codex-a", 1),
            )
        )
        unpullable = asyncio.run(
            submit(prefect_api_url, deployment_id, "ok", {"image": "registry.example/k3sc-agent:missing"})
        )
        assert submit_run

        wait(lambda: state(ok) == "COMPLETED", 240, f"run ok completed\n{worker.log_tail(40)}")
        (job,) = [
            j for j in fake.fake.stored("jobs") if j["metadata"]["labels"].get("prefect.io/flow-run-id") == ok
        ]
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert labels.items() >= names.k8s_labels(repo, 7, Kind.IMPLEMENT, "claude-b", 1).items()
        assert (runtime.state_dir / "pvc" / "k3sc-workspaces" / "acme-api-claude-b").is_dir()
        # The engine sets Completed before it prints "Finished in state", so the line can trail the state.
        wait(
            lambda: "Finished in state Completed()" in (kube_call(lambda kube: kube.run_pod_log(ok)) or ""),
            10,
            "the pod's log ends with the run's final state",
        )
        ok_log = kube_call(lambda kube: kube.run_pod_log(ok)) or ""
        # `prefect flow-run execute` runs the flow in a scratch directory under /tmp (an emptyDir).
        assert "probe running as uid 1000 in /tmp/" in ok_log and "HOME=/home/agent" in ok_log, ok_log

        wait(lambda: state(sleeper) == "RUNNING", 120, "sleeper running")
        started = time.monotonic()
        assert kube_call(lambda kube: kube.delete_run_jobs(sleeper))
        wait(
            lambda: not [p for p in runtime.pods if p.startswith("api-7-review-codex-a")],
            10,
            "sleeper pod gone",
        )
        assert time.monotonic() - started < 10

        problem = kube_call(lambda kube: kube.start_problem(unpullable))
        assert problem is not None and problem.startswith("ImagePullBackOff"), problem
        assert state(unpullable) in ("PENDING", "SCHEDULED")
        assert kube_call(lambda kube: kube.delete_run_jobs(unpullable))

        wait(lambda: state(early) == "CRASHED", 120, "run that died before Python crashed")
        early_log = kube_call(lambda kube: kube.run_pod_log(early)) or ""
        assert "no python here" in early_log
        wait(lambda: state(sleeper) == "CRASHED", 90, "deleted Job crashed its run")
        time.sleep(15)  # a `reschedule` would have made a new Job by now (12 s in the reference run)
        assert state(sleeper) == "CRASHED"
        sleeper_jobs = [
            j
            for j in fake.fake.stored("jobs")
            if j["metadata"]["labels"].get("prefect.io/flow-run-id") == sleeper
        ]
        assert sleeper_jobs == []
        assert fake.fake.denied == [], fake.fake.denied  # the shipped Role was enough
        assert fake.fake.refused == []
    finally:
        worker.stop(grace=10)
