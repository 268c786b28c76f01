"""The fake cluster's Job controller and kubelet run a hardened Job's pod as Kubernetes would:
as uid 1000 on a read-only root with only its volumes writable, the PVC sub-path persistent,
env from Secrets resolved; a missing image sits in ImagePullBackOff; a deleted Job's pod dies."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from k3sc.sandbox.kube_cluster import Cluster
from tests.k8s.fake import NAMESPACE, client, running

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(os.geteuid() != 0, reason="the fake kubelet needs root (namespaces, mounts)"),
]


def job(name: str, image: str, script: str) -> dict[str, Any]:
    labels = {"prefect.io/flow-run-id": name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000},
                    "containers": [
                        {
                            "name": "prefect-job",
                            "image": image,
                            "args": ["sh", "-c", script],
                            "workingDir": "/workspace",
                            "env": [
                                {"name": "HOME", "value": "/home/agent"},
                                {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                            ],
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                            },
                            "volumeMounts": [
                                {"name": "home", "mountPath": "/home/agent"},
                                {"name": "ws", "mountPath": "/workspace", "subPath": "acme-api-claude-b"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "home", "emptyDir": {}},
                        {"name": "ws", "persistentVolumeClaim": {"claimName": "k3sc-workspaces"}},
                    ],
                },
            },
        },
    }


async def wait_for(condition: Any, within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_a_pod_runs_hardened_and_a_deleted_job_kills_it(tmp_path: Path) -> None:
    script = (
        "id -u; id -g; echo $HOME $SECRET; touch /etc/x 2>/dev/null || echo root-read-only; "
        "touch $HOME/ok && echo home-writable; echo data > /workspace/clone && echo workspace-writable; "
        "echo $$; sleep 1"
    )
    async with running() as (fake, url):
        cluster = Cluster(fake, images={"k3sc-agent:test"}, state_dir=tmp_path)
        cluster.start()
        try:
            async with await client(url, tmp_path) as kube:
                await fake.store(
                    "secrets",
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "s", "namespace": NAMESPACE},
                        "data": {"k": "czNjcjN0"},
                    },
                )
                await fake.store("jobs", job("ok", "k3sc-agent:test", script))
                await fake.store("jobs", job("pull", "registry.example/missing:1", "true"))
                await fake.store("jobs", job("long", "k3sc-agent:test", "sleep 300"))

                async def done() -> bool:
                    return any(
                        j["metadata"]["name"] == "ok" and (j.get("status") or {}).get("succeeded")
                        for j in fake.stored("jobs")
                    )

                await wait_for(done)
                log = await kube.run_pod_log("ok")
                assert log is not None
                assert log.splitlines()[:6] == [
                    "1000",
                    "1000",
                    "/home/agent s3cr3t",
                    "root-read-only",
                    "home-writable",
                    "workspace-writable",
                ]
                assert log.splitlines()[6] == "1"  # PID 1 of its own PID namespace
                assert (
                    tmp_path / "pvc" / "k3sc-workspaces" / "acme-api-claude-b" / "clone"
                ).read_text() == "data\n"
                assert not await asyncio.to_thread(Path("/etc/x").exists)

                assert (
                    await kube.start_problem("pull")
                    == 'ImagePullBackOff: Back-off pulling image "registry.example/missing:1"'
                )

                async def long_running() -> bool:
                    return "long" in {
                        p["metadata"]["labels"]["job-name"]
                        for p in fake.stored("pods")
                        if p["status"]["phase"] == "Running"
                    }

                await wait_for(long_running)
                (pod_name,) = [n for n in cluster.pods if n.startswith("long-")]
                process = cluster.pods[pod_name].process
                started = asyncio.get_running_loop().time()
                assert await kube.delete_run_jobs("long") == ["long"]
                await asyncio.wait_for(process.wait(), 10)
                assert asyncio.get_running_loop().time() - started < 10
        finally:
            await cluster.stop()
