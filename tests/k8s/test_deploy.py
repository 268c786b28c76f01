"""`k3sc deploy` against the fake Kubernetes API: dry-run prints everything and touches nothing;
a deploy applies every object (server-side apply), keeps the generated Secret across runs, and is
idempotent; the Prefect steps are skipped, and said so, without a reachable Prefect API.

Not shown here: the Prefect steps against a cluster's server (`--prefect-url`): pool creation
with the template is covered by the render contract; a real rollout needs a real cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from k3sc.kube import manifests
from tests.cli_helpers import invoke
from tests.k8s.fake import FakeInThread


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeInThread]:
    fake = FakeInThread().start()
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    try:
        yield fake
    finally:
        fake.stop()


def test_dry_run_prints_every_object_and_no_secret_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))  # it must not even connect
    (tmp_path / "k3sc.yaml").write_text(
        "namespace: team-a\nkubernetes: {image: 'ghcr.io/acme/k3sc-agent:2.0'}\n"
    )
    result = invoke(["deploy", "--dry-run", "--overlay", "cluster"])
    documents = list(yaml.safe_load_all(result.stdout))
    rendered = manifests.render(manifests.overlay_dir("cluster"))
    assert len(documents) == len(rendered) + 2  # + the k3sc ConfigMap and the Prefect Secret
    assert documents[0]["kind"] == "Namespace" and documents[0]["metadata"]["name"] == "team-a"
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    assert set(secret["stringData"]) == {"auth-string", "encryption-key", "postgres-password", "database-url"}
    assert set(secret["stringData"].values()) == {"<generated on first deploy, never shown>"}
    images = {
        c["image"]
        for d in documents
        for c in (d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []))
    }
    assert "ghcr.io/acme/k3sc-agent:2.0" in images and "k3sc-agent:latest" not in images


def test_an_unknown_overlay_is_exit_2(tmp_path: Path) -> None:
    invoke(
        ["deploy", "--dry-run", "--overlay", "staging"], code=2, contains=["overlay 'staging'", "single-node"]
    )


def test_deploy_applies_everything_and_a_second_deploy_changes_nothing(cluster: FakeInThread) -> None:
    first = invoke(
        ["deploy"], contains=["deployed to namespace claude-agents", "prefect: skipped (no --prefect-url)"]
    )
    stored = {
        (o["kind"], o["metadata"]["name"])
        for plural in (
            "deployments",
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
            "networkpolicies",
            "roles",
            "rolebindings",
            "serviceaccounts",
            "services",
        )
        for o in cluster.fake.stored(plural)
    }
    expected = {
        (o["kind"], o["metadata"]["name"])
        for o in manifests.render(manifests.overlay_dir("single-node"))
        if o["kind"] != "Namespace"
    }
    assert expected | {("ConfigMap", "k3sc-config"), ("Secret", "k3sc-prefect")} == stored
    secret = cluster.fake.stored("secrets")[0]["data"]
    invoke(["deploy"])
    assert cluster.fake.stored("secrets")[0]["data"] == secret  # the auth string and key survive redeploys
    assert cluster.fake.refused == [] and cluster.fake.warnings == []
    assert "Traceback" not in first.output
