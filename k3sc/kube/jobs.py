"""The agent work pool's base job template and the per-run job variables (pure functions).

`k8s/job-template.json` is Prefect's default Kubernetes template hardened for k3sc: one attempt
per Job (`backoffLimit: 0`, SIGTERM crashes the run instead of re-running it), a deadline above
k3sc's own timeout, non-root with a read-only root filesystem and every capability dropped,
writable paths only on emptyDirs, and the workspace on a PVC sub-path per repository and agent.
`k3sc deploy` fills the template's variable defaults from the config; the dispatcher passes
`run_job_variables` with each flow run, so the Job carries repository-qualified labels.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from k3sc import names
from k3sc.config import Config
from k3sc.kube.manifests import k8s_dir
from k3sc.labels import Kind
from k3sc.models import Repo

TEMPLATE_FILE = "job-template.json"
CONTAINER = "prefect-job"  # the worker refuses any other name
# Prefect's worker appends a 5-character suffix to the generateName prefix (45 + 1 + 5 < 63).
NAME_MAX = 45


@cache
def _template_text() -> str:
    return (k8s_dir() / TEMPLATE_FILE).read_text(encoding="utf-8")


def raw_template() -> dict[str, Any]:
    """The template exactly as shipped in `k8s/job-template.json`."""
    template: dict[str, Any] = json.loads(_template_text())
    return template


def active_deadline_seconds(config: Config) -> int:
    """The Job's hard limit: the agent's own timeout fires first, with room to start and hand off."""
    total = config.agent.timeout + config.agent.start_timeout + config.kubernetes.deadline_margin
    return int(total.total_seconds())


def pool_defaults(config: Config) -> dict[str, Any]:
    """Variable defaults that come from the config (and so change with `k3sc deploy`)."""
    kube = config.kubernetes
    return {
        "namespace": config.namespace,
        "image": kube.image,
        "image_pull_policy": kube.image_pull_policy,
        "service_account_name": kube.service_account,
        "workspace_claim": kube.workspace_claim,
        "active_deadline_seconds": active_deadline_seconds(config),
        "finished_job_ttl": int(kube.finished_job_ttl.total_seconds()),
        "cpu_request": kube.resources.cpu_request,
        "cpu_limit": kube.resources.cpu_limit,
        "memory_request": kube.resources.memory_request,
        "memory_limit": kube.resources.memory_limit,
        "scratch_limit": kube.resources.scratch_limit,
    }


def base_job_template(config: Config) -> dict[str, Any]:
    """The base job template for the `k3sc-agents` pool, its defaults taken from `config`."""
    template = copy.deepcopy(raw_template())
    properties = template["variables"]["properties"]
    for name, value in pool_defaults(config).items():
        properties[name]["default"] = value
    return template


def job_name(repo: Repo, issue: int, kind: Kind, agent: str) -> str:
    """The Job's name prefix, e.g. `api-7-implement-claude-b` (Kubernetes adds a suffix)."""
    return names.slug(f"{repo.name}-{issue}-{kind.value}-{agent}")[:NAME_MAX].rstrip("-")


def run_job_variables(repo: Repo, issue: int, kind: Kind, agent: str, attempt: int) -> dict[str, Any]:
    """What one flow run adds to the template: name, labels and its workspace sub-path.

    Passed as `job_variables` when the run is created (they are per run; the deployment's are
    shared), so a Job can be found by repository, issue, agent or attempt.
    """
    return {
        "name": job_name(repo, issue, kind, agent),
        "labels": names.k8s_labels(repo, issue, kind, agent, attempt),
        "workspace_subpath": names.workspace_name(repo, agent),
    }
