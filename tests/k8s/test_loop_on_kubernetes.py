"""The whole loop in Kubernetes mode: every agent attempt is a Job that the real Kubernetes worker
(prefect-kubernetes) creates on the fake Kubernetes API, and the fake cluster's kubelet runs it as a
hardened pod (uid 1000, read-only root, the workspace on the PVC).

`k3sc deploy --prefect-url` puts k3sc onto the fake cluster and a local Prefect server of its own
(the session's server has `k3sc-agents` as a process pool), exactly as a person would against a
real cluster: manifests, the Kubernetes pool with the shipped job template, blocks, deployments,
the automation. The dispatcher runs as k3sc's process worker (in a cluster it is the
`k3sc-dispatch-worker` Deployment, which the fake does not run). Issues go ready → implemented by
one agent's Job → reviewed by another's → needs-human, through the real GitHub fake and stub agent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from k3sc import config as k3sc_config
from k3sc.kube import manifests
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.stack import LocalStack, child_env, prefect_executable, spawn
from k3sc.sandbox import kube as fake_kube
from k3sc.sandbox import world as sandbox
from k3sc.sandbox.kube_cluster import Cluster
from tests.cli_helpers import invoke
from tests.k8s.fake import NAMESPACE, FakeInThread

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("unshare"), reason="the fake kubelet needs root"
    ),
]

IMAGE = "k3sc-agent:loop"
SEED = {
    "owner": "kube",
    "max_slots": 2,
    "allowed_authors": ["alice"],
    "repos": [{"name": "api", "issues": [{"title": f"task {n}", "author": "alice"} for n in (1, 2)]}],
    # The agent image has no bubblewrap: in a cluster the pod is the agent's boundary.
    "config": {"agent": {"pool": "kubernetes", "sandbox": "off"}, "kubernetes": {"image": IMAGE}},
}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sandbox.World]:
    built = sandbox.build(tmp_path / "world", sandbox.WorldSeed.model_validate(SEED))
    # A pod cannot see the remotes' paths: agents clone through the fake's git-over-HTTP, at the
    # clone URL k3sc derives from github_url, as on github.com.
    written = yaml.safe_load(built.config_path.read_text())
    for repo in written["repos"]:
        repo.pop("clone_url", None)
    built.config_path.write_text(yaml.safe_dump(written, sort_keys=False))
    monkeypatch.setenv("K3SC_CONFIG", str(built.config_path))
    monkeypatch.setenv("GITHUB_TOKEN", built.token)
    # What `k3sc deploy` stores in the agents' block; the stub agent never uses them.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-k3sc-loop-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-k3sc-loop-test")
    try:
        yield built
    finally:
        built.stop()


def test_every_agent_attempt_runs_as_a_kubernetes_job(
    tmp_path: Path, world: sandbox.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = k3sc_config.load(world.config_path, environ={}).config
    assert config.namespace == NAMESPACE
    objects = manifests.fit(manifests.render(manifests.overlay_dir("single-node")), config)
    rules = fake_kube.role_rules(objects)
    fake = FakeInThread(
        tokens={"worker": rules[f"{NAMESPACE}/k3sc-agent-worker"]}, admin_tokens={"admin"}
    ).start()
    stack = LocalStack(tmp_path / "stack")
    state = tmp_path / "cluster"
    state.mkdir()
    runtime = Cluster(fake.fake, images={IMAGE}, state_dir=state)

    async def start_cluster() -> None:
        runtime.start()

    fake.call(start_cluster())
    try:
        api_url = stack.start_server(timeout=240.0)
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "admin-kubeconfig", token="admin")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        deployed = invoke(["deploy", "--prefect-url", api_url])
        assert "k3sc-github: token" in deployed.output and "Traceback" not in deployed.output, deployed.output

        env = {"K3SC_CONFIG": str(world.config_path), "K3SC_CACHE_DIR": str(tmp_path / "cache")}
        stack.extra_env = env
        stack.start_worker("k3sc-dispatch")
        worker_env = child_env(
            {
                **stack.worker_env(),
                "KUBECONFIG": str(fake.kubeconfig(tmp_path / "worker-kubeconfig", token="worker")),
                "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES": NAMESPACE,
            }
        )
        worker_env.pop("KUBERNETES_SERVICE_HOST", None)
        argv = [*prefect_executable(), "worker", "start", "--pool", "k3sc-agents", "--type", "kubernetes"]
        stack.processes.append(spawn("kube-worker", argv, worker_env, stack.log_dir / "kube-worker.log"))
        invoke(["dispatch"], env={"PREFECT_API_URL": api_url})

        def labels(number: int) -> list[str]:
            found: list[str] = world.fake.issue_view(world.owner, "api", number)["labels"]
            return found

        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and not all(labels(n) == ["needs-human"] for n in (1, 2)):
            time.sleep(2)
        logs = "\n".join(
            f"--- {p.name}\n" + p.log_path.read_text(errors="replace")[-3000:] for p in stack.processes
        )
        assert all(labels(n) == ["needs-human"] for n in (1, 2)), logs

        recorded = asyncio.run(_runs(api_url, [f"{world.owner}/api#{n}" for n in (1, 2)]))
        outcomes = [(r.issue_key, r.kind.value, r.attempt, str(r.outcome), r.message[:300]) for r in recorded]
        # Every attempt was a Job the real worker made from the shipped template, run as uid 1000.
        jobs = fake.fake.stored("jobs")
        pod_logs = [text[-2500:] for text in fake.fake.pod_logs.values()]
        assert len(jobs) == 4, (outcomes, pod_logs[-2:])
        for job in jobs:
            pod = job["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsUser"] == 1000, pod
            assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in pod["containers"])
            assert job["spec"]["template"]["metadata"]["labels"]["k3sc.dev/repo-name"] == "api", job[
                "metadata"
            ]
        kinds = sorted(j["spec"]["template"]["metadata"]["labels"]["k3sc.dev/kind"] for j in jobs)
        assert kinds == ["implement", "implement", "review", "review"]
        assert (state / "pvc").is_dir()
        for number in (1, 2):
            history = world.fake.label_history(world.owner, "api", number)
            owners = [
                step[0] for step in history if len(step) == 1 and step[0].startswith(("claude-", "codex-"))
            ]
            assert len(owners) == 2 and owners[0] != owners[1], history  # reviewed by another agent
        assert fake.fake.refused == []  # the worker never needed more than its Role grants
        print(yaml.safe_dump([j["metadata"]["name"] for j in jobs]))
    finally:
        stack.stop()
        fake.call(runtime.stop())
        fake.stop()


async def _runs(api_url: str, refs: list[str]) -> list[Any]:
    async with PrefectAPI(api_url) as api:
        return await runs.runs_for_issues(api, [ref.lower() for ref in refs])
