"""Render contract: the Job prefect-kubernetes' worker would POST for a k3sc agent run.

Prefect's own `KubernetesWorkerJobConfiguration.from_template_and_values` and
`prepare_for_flow_run` render the shipped template (k8s/job-template.json) with the defaults
`k3sc deploy` puts in and the per-run variables the dispatcher passes; the result is strictly
schema-validated for Kubernetes 1.33 and 1.37 and every hardening invariant is asserted.
What only a real cluster can show: admission (Pod Security `restricted`), that the kubelet
honours it, image pulls, PVC binding and scheduling.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

import jsonschema
import pytest

from k3sc import names
from k3sc.config import Config
from k3sc.kube import jobs
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.sandbox import kube_schema
from tests.k8s.render import AUTH_SECRET, WORKER_SETTINGS, render_job

API = Repo("acme", "api")
# The only schema errors allowed: prefect-kubernetes rejects a template without these two
# fields in the pod spec (where Kubernetes does not know them).
WORKER_MANDATED = [
    "/spec/template/spec: Additional properties are not allowed ('completions', 'parallelism' were unexpected)"
]
WRITABLE_ENV = ("HOME", "PREFECT_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "K3SC_HOME", "TMPDIR")

CONFIGS = [
    pytest.param(Config(), id="the default config"),
    pytest.param(
        Config.model_validate(
            {
                "namespace": "agents",
                "agent": {"pool": "kubernetes", "timeout": "2h", "start_timeout": "5m"},
                "kubernetes": {
                    "image": "registry.example:5000/team/k3sc-agent:1.2.3",
                    "image_pull_policy": "Always",
                    "resources": {"cpu_request": "1", "cpu_limit": "4", "memory_limit": "8Gi"},
                    "deadline_margin": "20m",
                    "finished_job_ttl": "1h",
                },
            }
        ),
        id="a custom config",
    ),
]


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(job)["containers"]
    result: dict[str, Any] = only
    return result


def env_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container(job)["env"]}


@pytest.fixture(scope="module", params=CONFIGS)
def rendered_once(request: pytest.FixtureRequest) -> tuple[Config, str]:
    config: Config = request.param
    job = asyncio.run(render_job(config, API, 7, Kind.IMPLEMENT, "claude-b", attempt=2))
    return config, json.dumps(job)


@pytest.fixture
def rendered(rendered_once: tuple[Config, str]) -> tuple[Config, dict[str, Any]]:
    """A fresh copy per test (rendering imports and runs Prefect's worker code: ~1 s)."""
    config, job = rendered_once
    return config, json.loads(job)


@pytest.mark.parametrize("version", kube_schema.VERSIONS)
def test_the_only_schema_errors_are_the_two_fields_the_worker_insists_on(
    rendered: tuple[Config, dict[str, Any]], version: str
) -> None:
    _, job = rendered
    assert kube_schema.errors(job, version) == WORKER_MANDATED
    del pod(job)["completions"], pod(job)["parallelism"]
    assert kube_schema.errors(job, version) == []


async def test_the_worker_refuses_a_template_without_those_fields_or_with_another_container_name() -> None:
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    for edit, complaint in (
        (lambda spec: spec.pop("completions"), "/spec/template/spec/completions"),
        (lambda spec: spec["containers"][0].update(name="agent"), "must have value 'prefect-job'"),
    ):
        template = jobs.base_job_template(Config())
        edit(template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"])
        with pytest.raises(ValueError, match=complaint):
            await render_job(Config(), API, 7, Kind.IMPLEMENT, "claude-b", template=template)
    assert KubernetesWorkerJobConfiguration  # the class the worker itself validates with


def test_an_attempt_is_never_rerun_by_kubernetes_or_by_prefect(
    rendered: tuple[Config, dict[str, Any]],
) -> None:
    _, job = rendered
    assert job["spec"]["backoffLimit"] == 0
    assert pod(job)["restartPolicy"] == "Never"
    # The worker would set `reschedule` here (a SIGTERM re-runs the flow from scratch).
    assert [e for e in container(job)["env"] if e["name"] == "PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == [
        {"name": "PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR", "value": "crash"}
    ]


def test_the_deadline_lies_above_k3scs_own_timeout_and_finished_jobs_expire(
    rendered: tuple[Config, dict[str, Any]],
) -> None:
    config, job = rendered
    deadline = job["spec"]["activeDeadlineSeconds"]
    expected = config.agent.timeout + config.agent.start_timeout + config.kubernetes.deadline_margin
    assert deadline == int(expected.total_seconds())
    assert timedelta(seconds=deadline) - config.agent.timeout >= timedelta(minutes=10)
    assert job["spec"]["ttlSecondsAfterFinished"] == int(config.kubernetes.finished_job_ttl.total_seconds())


def test_the_pod_runs_non_root_read_only_without_capabilities_or_a_token(
    rendered: tuple[Config, dict[str, Any]],
) -> None:
    _, job = rendered
    spec, main = pod(job), container(job)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (1000, 1000)
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec.get("hostNetwork") is None and spec.get("hostPID") is None
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["name"] == "prefect-job"
    assert main["args"] == ["prefect", "flow-run", "execute"]  # the image's entrypoint exec's these
    assert "command" not in main


def test_every_writable_path_is_an_emptydir_and_the_workspace_a_pvc_subpath_per_repo_and_agent(
    rendered: tuple[Config, dict[str, Any]],
) -> None:
    config, job = rendered
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    mounts = {m["mountPath"]: m for m in container(job)["volumeMounts"]}
    scratch = {path for path, m in mounts.items() if "emptyDir" in volumes[m["name"]]}
    env = env_of(job)
    for name in WRITABLE_ENV:
        path = PurePosixPath(env[name]["value"])
        assert any(path == PurePosixPath(s) or PurePosixPath(s) in path.parents for s in scratch), name
    for path in scratch:
        assert (
            volumes[mounts[path]["name"]]["emptyDir"]["sizeLimit"]
            == config.kubernetes.resources.scratch_limit
        )
    workspace = mounts["/workspace"]
    assert (
        volumes[workspace["name"]]["persistentVolumeClaim"]["claimName"] == config.kubernetes.workspace_claim
    )
    assert workspace["subPath"] == names.workspace_name(API, "claude-b") == "acme-api-claude-b"
    assert container(job)["workingDir"] == "/workspace"
    # The config file (K3SC_CONFIG) comes from a ConfigMap, read-only.
    config_mount = mounts["/etc/k3sc"]
    assert config_mount["readOnly"] is True and "configMap" in volumes[config_mount["name"]]
    assert env["K3SC_CONFIG"]["value"] == "/etc/k3sc/config.yaml"
    kinds = {next(k for k in v if k != "name") for v in volumes.values()}
    assert kinds == {"emptyDir", "persistentVolumeClaim", "configMap"}  # no hostPath, no secret volume


def test_resources_and_image_come_from_the_config(rendered: tuple[Config, dict[str, Any]]) -> None:
    config, job = rendered
    resources, kube = container(job)["resources"], config.kubernetes.resources
    assert resources == {
        "requests": {"cpu": kube.cpu_request, "memory": kube.memory_request},
        "limits": {"cpu": kube.cpu_limit, "memory": kube.memory_limit},
    }
    assert container(job)["image"] == config.kubernetes.image
    assert container(job)["imagePullPolicy"] == config.kubernetes.image_pull_policy
    assert job["metadata"]["namespace"] == config.namespace
    assert pod(job)["serviceAccountName"] == config.kubernetes.service_account


def test_job_and_pod_carry_repository_qualified_labels_and_the_flow_run_id(
    rendered: tuple[Config, dict[str, Any]],
) -> None:
    _, job = rendered
    expected = names.k8s_labels(API, 7, Kind.IMPLEMENT, "claude-b", 2)
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels.items() >= expected.items()
        uuid.UUID(labels["prefect.io/flow-run-id"])
    # The NetworkPolicy selects agent pods by these, whatever a run passes as its own labels.
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["k3sc.dev/role"] == "agent"
    assert job["metadata"]["generateName"] == "api-7-implement-claude-b-"


async def test_the_same_issue_number_in_two_repositories_gives_different_jobs() -> None:
    one = await render_job(Config(), Repo("acme", "api"), 7, Kind.IMPLEMENT, "claude-b")
    two = await render_job(Config(), Repo("other", "api"), 7, Kind.IMPLEMENT, "claude-b")
    labels = [j["spec"]["template"]["metadata"]["labels"] for j in (one, two)]
    assert labels[0]["k3sc.dev/attempt"] != labels[1]["k3sc.dev/attempt"]
    assert labels[0]["k3sc.dev/repo-owner"] != labels[1]["k3sc.dev/repo-owner"]
    subpaths = [next(m for m in container(j)["volumeMounts"] if m["name"] == "workspace") for j in (one, two)]
    assert subpaths[0]["subPath"] != subpaths[1]["subPath"]


def test_no_secret_is_in_any_env_value(rendered: tuple[Config, dict[str, Any]]) -> None:
    _, job = rendered
    env = env_of(job)
    # The worker's auth string reaches the pod only as a reference to a Kubernetes Secret.
    assert env["PREFECT_API_AUTH_STRING"] == {
        "name": "PREFECT_API_AUTH_STRING",
        "valueFrom": {"secretKeyRef": {"name": AUTH_SECRET[0], "key": AUTH_SECRET[1]}},
    }
    assert WORKER_SETTINGS["PREFECT_API_AUTH_STRING"] not in json.dumps(job)
    for name, entry in env.items():
        if any(word in name for word in ("TOKEN", "KEY", "SECRET", "PASSWORD", "AUTH")):
            assert "value" not in entry, name
    # The worker's settings do reach the Job; ours win where both set a path.
    assert env["PREFECT_API_URL"]["value"] == WORKER_SETTINGS["PREFECT_API_URL"]
    assert env["PREFECT_HOME"]["value"] == "/home/agent/.prefect"


def test_per_run_variables_are_valid_for_the_pools_variables_schema() -> None:
    """The server validates a flow run's job_variables against this schema on creation."""
    template = jobs.base_job_template(Config())
    validator = jsonschema.Draft202012Validator(template["variables"])
    validator.validate(jobs.run_job_variables(Repo("Acme.Corp", "API_v2"), 12345, Kind.REVIEW, "codex-z", 3))
    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
    validator.validate(defaults)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"workspace_subpath": "../other-agent"})


def test_a_long_repository_name_still_gives_a_valid_job_name_prefix() -> None:
    name = jobs.job_name(Repo("acme", "a-very-long-repository-name-" * 3), 123456, Kind.IMPLEMENT, "claude-b")
    assert len(name) <= jobs.NAME_MAX and name[-1].isalnum() and name[0].isalnum()
