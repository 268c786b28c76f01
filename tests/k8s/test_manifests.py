"""Manifest contract: every overlay of k8s/ renders with `kubectl kustomize`, every object (and
what `k3sc deploy` adds) validates strictly for Kubernetes 1.33 and 1.37, every pod spec meets
the `restricted` Pod Security Standard plus k3sc's hardening, the agents' NetworkPolicy allows
exactly DNS, HTTPS and the Prefect API, and the RBAC grants exactly the API calls that
prefect-kubernetes' worker and observer were seen to make (and k3sc's own), namespaced only.

What only a real cluster can show: that admission accepts these (PSA, quotas), that the CNI
enforces the NetworkPolicy, storage classes bind the PVCs, and the images start.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from k3sc.config import Config
from k3sc.kube import jobs, manifests
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.orchestration import deploy
from k3sc.sandbox import kube_schema
from tests.k8s import policy
from tests.k8s.render import AUTH_SECRET, render_job

OVERLAYS = ("single-node", "cluster")

# Every Kubernetes API call prefect-kubernetes 0.8.0's worker and its observer (kopf) made in a
# full run against a logged API (create, crash, cancel, delete): (API group, resource, verb).
WORKER_CALLS = {
    ("batch", "jobs", "create"),  # create_namespaced_job
    ("batch", "jobs", "delete"),  # delete_namespaced_job (kill_infrastructure)
    ("batch", "jobs", "list"),  # list_namespaced_job
    ("batch", "jobs", "get"),  # read_namespaced_job
    ("batch", "jobs", "watch"),  # kopf watch
    ("", "pods", "list"),  # list_namespaced_pod, kopf list
    ("", "pods", "watch"),  # kopf watch
    ("", "pods/log", "get"),  # read_namespaced_pod_log
}
# k3sc.kube's calls from the dispatcher: reap / kill a run's Job, read a dead pod's log.
DISPATCH_CALLS = {
    ("batch", "jobs", "list"),
    ("batch", "jobs", "delete"),
    ("", "pods", "list"),
    ("", "pods/log", "get"),
}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    name: str = request.param
    return name, manifests.render(manifests.overlay_dir(name))


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container_env(obj: dict[str, Any], container: str) -> dict[str, dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    (found,) = [c for c in spec["containers"] if c["name"] == container]
    return {e["name"]: e for e in found.get("env") or []}


@pytest.mark.parametrize("version", kube_schema.VERSIONS)
def test_every_object_and_what_deploy_adds_validates_strictly(
    rendered: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    _, objects = rendered
    config = Config()
    added = [
        manifests.config_map(config),
        manifests.prefect_secret(config, {}, database=manifests.needs_database_secret(objects)),
    ]
    for obj in [*objects, *added]:
        assert kube_schema.errors(obj, version) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_every_object_lives_in_the_namespace_and_it_enforces_restricted(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    (namespace,) = by_kind(objects, "Namespace").values()
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["name"] == manifests.SHIPPED_NAMESPACE
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == manifests.SHIPPED_NAMESPACE, obj["metadata"]["name"]


def test_every_pod_spec_is_hardened(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    specs = {o["metadata"]["name"]: policy.pod_spec(o) for o in objects}
    workloads = {name: spec for name, spec in specs.items() if spec is not None}
    assert {"prefect-server", "k3sc-agent-worker", "k3sc-dispatch-worker"} <= set(workloads)
    for name, spec in workloads.items():
        assert policy.violations(spec) == [], name


def test_the_agent_job_meets_the_same_policy() -> None:
    job = asyncio.run(render_job(Config(), Repo("acme", "api"), 7, Kind.IMPLEMENT, "claude-b"))
    spec = policy.pod_spec(job)
    assert spec is not None and policy.violations(spec) == []


def test_the_policy_check_catches_what_it_must() -> None:
    """The checker itself: a root, privileged, host-mounting pod without limits fails every rule."""
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "bad",
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}],
            }
        ],
    }
    found = " ".join(policy.violations(bad))
    for expected in (
        "hostNetwork",
        "hostPath",
        "runAsNonRoot",
        "privileged",
        "allowPrivilegeEscalation",
        "root filesystem",
        "capabilities not dropped",
        "SYS_ADMIN",
        "seccomp",
        "no cpu request",
        "no memory limit",
        "hostPort",
    ):
        assert expected in found, expected


def test_the_agent_networkpolicy_allows_only_dns_https_and_the_prefect_api(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    policy_ = by_kind(objects, "NetworkPolicy")["k3sc-agent"]["spec"]
    # It selects exactly the pods the job template makes.
    pod_labels = jobs.raw_template()["job_configuration"]["job_manifest"]["spec"]["template"]["metadata"][
        "labels"
    ]
    assert policy_["podSelector"] == {"matchLabels": pod_labels}
    assert sorted(policy_["policyTypes"]) == ["Egress", "Ingress"]
    assert policy_.get("ingress") in ([], None)  # nothing may connect to an agent
    rules = {
        (
            json.dumps(rule.get("to"), sort_keys=True),
            tuple(sorted((p["protocol"], p["port"]) for p in rule["ports"])),
        )
        for rule in policy_["egress"]
    }
    server = by_kind(objects, "Deployment")["prefect-server"]
    server_labels = server["spec"]["template"]["metadata"]["labels"]
    server_port = by_kind(objects, "Service")["prefect-server"]["spec"]["ports"][0]["port"]
    assert rules == {
        ("null", (("TCP", 53), ("UDP", 53))),
        ("null", (("TCP", 443),)),
        (
            json.dumps([{"podSelector": {"matchLabels": server_labels}}], sort_keys=True),
            (("TCP", server_port),),
        ),
    }


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_grants_exactly_the_calls_seen_namespaced_only(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = by_kind(objects, "Role")
    bindings = by_kind(objects, "RoleBinding")
    for name, calls in (("k3sc-agent-worker", WORKER_CALLS), ("k3sc-dispatch", DISPATCH_CALLS)):
        assert rules_of(roles[name]) == calls, name
        assert not any("*" in part for rule in rules_of(roles[name]) for part in rule)
        assert bindings[name]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert bindings[name]["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": manifests.SHIPPED_NAMESPACE}
        ]
    deployments = by_kind(objects, "Deployment")
    assert (
        deployments["k3sc-agent-worker"]["spec"]["template"]["spec"]["serviceAccountName"]
        == "k3sc-agent-worker"
    )
    assert (
        deployments["k3sc-dispatch-worker"]["spec"]["template"]["spec"]["serviceAccountName"]
        == "k3sc-dispatch"
    )
    # Agents have no Role at all and never see a token.
    accounts = by_kind(objects, "ServiceAccount")
    assert accounts[manifests.SHIPPED_AGENT_ACCOUNT]["automountServiceAccountToken"] is False
    assert all(s["name"] != manifests.SHIPPED_AGENT_ACCOUNT for b in bindings.values() for s in b["subjects"])


def test_the_workers_serve_k3scs_pools_and_hold_no_secret_value(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    agent = deployments["k3sc-agent-worker"]
    args = agent["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        args[args.index("--pool") + 1] == deploy.AGENT_POOL and args[args.index("--type") + 1] == "kubernetes"
    )
    assert agent["spec"]["replicas"] == 1  # one observer
    env = container_env(agent, "worker")
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    # The Jobs get the auth string as the same secretKeyRef the render contract test checks.
    assert (
        (
            env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_NAME"]["value"],
            env["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_KEY"]["value"],
        )
        == AUTH_SECRET
        == (manifests.PREFECT_SECRET, manifests.AUTH_KEY)
    )
    dispatch = deployments["k3sc-dispatch-worker"]
    args = dispatch["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        args[args.index("--pool") + 1] == deploy.DISPATCH_POOL and args[args.index("--type") + 1] == "process"
    )
    # A secret only ever arrives as a secretKeyRef; plain values may name a Secret, never hold one.
    for obj in objects:
        for container in (policy.pod_spec(obj) or {}).get("containers", []):
            for entry in container.get("env") or []:
                secretish = any(w in entry["name"] for w in ("TOKEN", "KEY", "SECRET", "PASSWORD", "AUTH"))
                names_a_secret = entry["name"].endswith(("_SECRET_NAME", "_SECRET_KEY"))
                assert not (secretish and "value" in entry and not names_a_secret), entry


def test_every_secret_key_referenced_is_one_deploy_generates(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    secret = manifests.prefect_secret(Config(), {}, database=manifests.needs_database_secret(objects))
    referenced = {
        (ref["name"], ref["key"])
        for obj in objects
        for container in (policy.pod_spec(obj) or {}).get("containers", [])
        for entry in container.get("env") or []
        if (ref := (entry.get("valueFrom") or {}).get("secretKeyRef"))
    }
    generated = {(secret["metadata"]["name"], key) for key in secret["stringData"]}
    assert referenced == generated
    # The agents' PVC and account exist for the job template's defaults.
    defaults = jobs.base_job_template(Config())["variables"]["properties"]
    assert defaults["workspace_claim"]["default"] in by_kind(objects, "PersistentVolumeClaim")
    assert defaults["service_account_name"]["default"] in by_kind(objects, "ServiceAccount")


def test_only_the_cluster_overlay_runs_postgresql_with_persistence(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    server = container_env(by_kind(objects, "Deployment")["prefect-server"], "prefect-server")
    url = server["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    if name == "single-node":
        assert url["value"].startswith("sqlite+aiosqlite:////data/")
        assert "prefect-data" in by_kind(objects, "PersistentVolumeClaim")
        assert not by_kind(objects, "StatefulSet")
    else:
        assert url["valueFrom"]["secretKeyRef"]["key"] == manifests.DATABASE_URL_KEY
        postgres = by_kind(objects, "StatefulSet")["prefect-postgres"]
        assert postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        assert by_kind(objects, "PersistentVolumeClaim")["k3sc-workspaces"]["spec"]["accessModes"] == [
            "ReadWriteMany"
        ]


def test_the_webhook_component_renders_and_is_hardened(tmp_path: Path) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(manifests.k8s_dir(), tree)
    overlay = tree / "overlays" / "with-webhook"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../single-node]\ncomponents: [../../components/webhook]\n", encoding="utf-8"
    )
    objects = manifests.render(overlay)
    service = by_kind(objects, "Service")["k3sc-webhook"]
    assert service["spec"]["ports"][0]["port"] == 8420
    webhook = by_kind(objects, "Deployment")["k3sc-webhook"]
    # The inbox (dedupe memory and deliveries waiting for Prefect) outlives the pod.
    assert "k3sc-webhook-inbox" in by_kind(objects, "PersistentVolumeClaim")
    spec = policy.pod_spec(webhook)
    assert spec is not None and policy.violations(spec) == []
    for version in kube_schema.VERSIONS:
        assert kube_schema.errors(webhook, version) == [] and kube_schema.errors(service, version) == []


def test_fit_moves_everything_to_the_configured_namespace_image_and_names() -> None:
    objects = manifests.render(manifests.overlay_dir("single-node"))
    config = Config.model_validate(
        {
            "namespace": "team-a",
            "kubernetes": {
                "image": "ghcr.io/acme/k3sc-agent:2.0",
                "image_pull_policy": "Always",
                "service_account": "agents",
                "workspace_claim": "team-ws",
            },
        }
    )
    fitted = manifests.fit(objects, config)
    assert by_kind(fitted, "Namespace").keys() == {"team-a"}
    assert all(o["metadata"].get("namespace") in (None, "team-a") for o in fitted)
    assert all(
        s["namespace"] == "team-a" for b in by_kind(fitted, "RoleBinding").values() for s in b["subjects"]
    )
    images = {
        (c["image"], c["imagePullPolicy"])
        for o in fitted
        for c in (policy.pod_spec(o) or {}).get("containers", [])
    }
    assert images == {("ghcr.io/acme/k3sc-agent:2.0", "Always")}
    assert "team-ws" in by_kind(fitted, "PersistentVolumeClaim")
    assert "agents" in by_kind(fitted, "ServiceAccount")
    for obj in fitted:
        assert kube_schema.errors(obj) == []


def test_the_in_cluster_config_loads_and_runs_agents_as_jobs_on_the_pvc() -> None:
    config = Config.model_validate(
        {
            "repos": ["acme/api"],
            "allowed_authors": ["alice"],
            "agent": {"timeout": "2h", "prompts": {"review": "/home/me/review.md"}},
            "github_app": {"app_id": 1, "installation_id": 2, "private_key": "PEM-SECRET"},
            "webhook": {"port": 9000, "secret": "HOOK-SECRET"},
        }
    )
    document = manifests.config_map(config)
    import yaml

    loaded = Config.model_validate(yaml.safe_load(document["data"]["config.yaml"]))
    assert loaded.agent.pool == "kubernetes"
    assert str(loaded.workspace_root) == manifests.IN_CLUSTER_WORKSPACE
    assert loaded.agent.timeout == config.agent.timeout and loaded.repos == config.repos
    assert loaded.agent.prompts.review is None and loaded.github_app is None
    assert "PEM-SECRET" not in json.dumps(document)
    # The receiver reads its secret from the Prefect block; a masked copy here would break every signature.
    assert loaded.webhook.port == 9000 and loaded.webhook.secret is None
    assert "HOOK-SECRET" not in json.dumps(document) and "***" not in json.dumps(document)


def test_an_unknown_overlay_is_a_usage_error_naming_the_choices() -> None:
    from k3sc.errors import ConfigError

    with pytest.raises(ConfigError, match="single-node"):
        manifests.overlay_dir("nope")


def test_the_generated_secret_keeps_what_exists() -> None:
    kept = manifests.prefect_secret(Config(), {"auth-string": "k3sc:old"}, database=True)["stringData"]
    assert kept["auth-string"] == "k3sc:old"
    assert kept["database-url"].endswith(f":{kept['postgres-password']}@prefect-postgres:5432/prefect")
    again = manifests.prefect_secret(Config(), kept, database=True)["stringData"]
    assert again == kept
