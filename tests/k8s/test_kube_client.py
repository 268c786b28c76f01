"""k3sc.kube.client against the fake Kubernetes API (kmock's emulator + k3sc.sandbox.kube).

Proves the calls k3sc makes are well-formed and do what they must on an API that behaves like
Kubernetes for them (selectors, apply, deletes, logs, errors). What only a real API server can
show: server-side apply's field ownership and list merging, foreground/background garbage
collection timing, and admission.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k3sc.config import Config
from k3sc.errors import OrchestrationError
from k3sc.kube import client as kube_client
from k3sc.kube import manifests
from k3sc.sandbox import kube as fake_kube
from tests.k8s.fake import NAMESPACE, client, running


def job(run_id: str, name: str) -> dict[str, Any]:
    labels = {"prefect.io/flow-run-id": run_id, "k3sc.dev/role": "agent"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "prefect-job", "image": "x"}]},
            },
        },
    }


def pod(run_id: str, name: str, waiting: str | None = None) -> dict[str, Any]:
    state = (
        {"waiting": {"reason": waiting, "message": "Back-off pulling image"}} if waiting else {"running": {}}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"prefect.io/flow-run-id": run_id}},
        "spec": {"containers": [{"name": "prefect-job", "image": "x"}]},
        "status": {
            "phase": "Pending" if waiting else "Running",
            "containerStatuses": [
                {
                    "name": "prefect-job",
                    "image": "x",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        },
    }


async def test_apply_creates_then_updates_every_rendered_object_idempotently(tmp_path: Path) -> None:
    config = Config()
    objects = manifests.fit(manifests.render(manifests.overlay_dir("single-node")), config)
    objects += [manifests.config_map(config), manifests.prefect_secret(config, {}, database=False)]
    async with running() as (fake, url), await client(url, tmp_path) as kube:
        await kube.apply_all(objects)
        first = {
            (o["kind"], o["metadata"]["name"])
            for plural in ("deployments", "configmaps")
            for o in fake.stored(plural)
        }
        await kube.apply_all(objects)  # a second deploy changes nothing but the revision
        await kube.wait_rollouts(objects, within=10)
        secret = await kube.read_secret(manifests.PREFECT_SECRET)
    assert ("Deployment", "k3sc-agent-worker") in first and ("ConfigMap", "k3sc-config") in first
    assert len(fake.stored("deployments", NAMESPACE)) == 3
    assert secret is not None and set(secret) == {manifests.AUTH_KEY, manifests.ENCRYPTION_KEY}
    assert fake.refused == [] and fake.warnings == []
    applies = [r for r in fake.requests if r.method == "PATCH"]
    assert applies and all(r.params.get("fieldManager") == "k3sc" and r.params.get("force") for r in applies)


async def test_a_run_is_found_by_its_flow_run_label_only(tmp_path: Path) -> None:
    async with running() as (fake, url), await client(url, tmp_path) as kube:
        await fake.store("jobs", job("run-1", "api-7-implement-claude-b-abcde"))
        await fake.store("jobs", job("run-2", "api-7-implement-claude-b-fghij"))
        await fake.store("pods", pod("run-1", "api-7-implement-claude-b-abcde-xyz"))
        fake.pod_logs[(NAMESPACE, "api-7-implement-claude-b-abcde-xyz")] = (
            "line 1\nline 2\nexec: no such file\n"
        )
        assert await kube.run_jobs("run-1") == ["api-7-implement-claude-b-abcde"]
        assert await kube.run_pod_log("run-1", tail_lines=2) == "line 2\nexec: no such file\n"
        assert await kube.run_pod_log("run-2") is None  # no pod yet
        deleted = await kube.delete_run_jobs("run-1")
        assert deleted == ["api-7-implement-claude-b-abcde"]
        assert await kube.delete_run_jobs("run-1") == []  # idempotent
        remaining = [j["metadata"]["name"] for j in fake.stored("jobs")]
    assert remaining == ["api-7-implement-claude-b-fghij"]
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert [r.params.get("propagationPolicy") for r in deletes] == ["Background"]


async def test_why_a_run_has_not_started_is_read_from_its_pod(tmp_path: Path) -> None:
    async with running() as (fake, url), await client(url, tmp_path) as kube:
        await fake.store("pods", pod("run-1", "p1", waiting="ImagePullBackOff"))
        await fake.store("pods", pod("run-2", "p2"))
        assert await kube.start_problem("run-1") == "ImagePullBackOff: Back-off pulling image"
        assert await kube.start_problem("run-2") is None
        assert await kube.start_problem("run-3") is None


async def test_a_missing_secret_is_none_and_a_refused_call_names_itself(tmp_path: Path) -> None:
    async with (
        running(tokens={"nobody": set()}) as (fake, url),
        await client(url, tmp_path, token="nobody") as kube,
    ):
        with pytest.raises(OrchestrationError, match=r"Kubernetes list jobs of run r: 403"):
            await kube.run_jobs("r")
    assert fake.denied == [f"list jobs in {NAMESPACE}"]
    async with running() as (fake, url), await client(url, tmp_path) as kube:
        assert await kube.read_secret("absent") is None


async def test_transient_errors_are_retried_and_then_reported(tmp_path: Path) -> None:
    async with running() as (fake, url):
        kube = await client(url, tmp_path)
        kube._policy = kube_client.retrying.Policy(attempts=3, initial=0.01, maximum=0.01)
        fake.faults[("list", "jobs")] = 503
        async with kube:
            with pytest.raises(OrchestrationError, match="503"):
                await kube.run_jobs("r")
    lists = [r for r in fake.requests if r.method == "GET" and "jobs" in str(r.url)]
    assert len(lists) == 3


async def test_the_fake_refuses_invalid_objects_and_drops_unknown_fields(tmp_path: Path) -> None:
    async with running() as (fake, url), await client(url, tmp_path) as kube:
        bad = job("r", "bad")
        bad["spec"]["backoffLimit"] = "zero"
        with pytest.raises(OrchestrationError, match="422"):
            await kube.apply(bad)
        odd = job("r", "odd")
        odd["spec"]["template"]["spec"]["completions"] = 1
        await kube.apply(odd)
    assert "completions" not in fake.stored("jobs")[0]["spec"]["template"]["spec"]
    assert fake.warnings == ["Job/odd: unknown field spec/template/spec/completions"]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param("a=1", {"a": "1"}, True, id="equality"),
        pytest.param("a=1", {"a": "2"}, False, id="equality mismatch"),
        pytest.param("a==1,b!=2", {"a": "1", "b": "3"}, True, id="double equals and inequality"),
        pytest.param("a", {"a": "x"}, True, id="exists"),
        pytest.param("!a", {"a": "x"}, False, id="does not exist"),
        pytest.param("a in (1, 2),b notin (3)", {"a": "2", "b": "4"}, True, id="set based"),
        pytest.param("a in (1,2)", {}, False, id="set based on a missing label"),
    ],
)
def test_label_selectors_filter_like_kubernetes(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert fake_kube.matches(labels, selector) is expected


def test_rolled_out_needs_the_latest_generation_and_every_replica_ready() -> None:
    ready = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 1},
    }
    assert kube_client.rolled_out(ready)
    assert not kube_client.rolled_out({**ready, "status": {**ready["status"], "observedGeneration": 1}})
    assert not kube_client.rolled_out({**ready, "status": {**ready["status"], "readyReplicas": 0}})
