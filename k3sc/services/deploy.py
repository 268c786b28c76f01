"""`k3sc deploy`: put k3sc into a Kubernetes cluster, idempotently.

1. Render the overlay (`kubectl kustomize`, rendering only) and fit it to the config; add the
   ConfigMap `k3sc-config` and the Secret `k3sc-prefect` (existing keys kept, missing generated).
2. Server-side apply everything through the Kubernetes API (namespace first), wait for rollouts.
3. Through the in-cluster Prefect API (`--prefect-url`, e.g. after `kubectl port-forward`): the
   pools (`k3sc-agents` as a Kubernetes pool with the hardened job template, image from the
   config), the credential blocks (as `k3sc rotate-auth`), both deployments, the automation,
   and the dispatch chain unpaused. Without a reachable Prefect API step 3 is skipped and said so.
`--dry-run` prints every object step 2 would apply (secret values never) and touches nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from k3sc.config import Config
from k3sc.errors import UsageError
from k3sc.kube import jobs, manifests

Say = Callable[[str], None]
HIDDEN = "<generated on first deploy, never shown>"


@dataclass(frozen=True)
class DeployOptions:
    dry_run: bool = False
    overlay: str | None = None
    context: str | None = None
    prefect_url: str | None = None
    rollout_timeout: float = 600.0


def desired(config: Config, overlay: str | None) -> list[dict[str, Any]]:
    """Every object of the overlay fitted to the config, plus the k3sc ConfigMap (blocking)."""
    objects = manifests.fit(
        manifests.render(manifests.overlay_dir(overlay or config.kubernetes.overlay)), config
    )
    return [*objects, manifests.config_map(config)]


def ordered(objects: list[dict[str, Any]], secret: dict[str, Any]) -> list[dict[str, Any]]:
    """Namespace, then the Secret, then the rest as rendered (pods need both to start)."""
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    return [*namespaces, secret, *(o for o in objects if o["kind"] != "Namespace")]


def dry_run_text(config: Config, objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream; the Secret shows its keys with no values."""
    import yaml

    secret = manifests.prefect_secret(config, {}, database=manifests.needs_database_secret(objects))
    secret["stringData"] = dict.fromkeys(secret["stringData"], HIDDEN)
    return yaml.safe_dump_all(ordered(objects, secret), sort_keys=False)


async def apply(config: Config, options: DeployOptions, say: Say) -> dict[str, str]:
    """Steps 1 and 2; returns the Prefect Secret's values (for the auth string)."""
    from k3sc.kube.client import Kube

    objects = await asyncio.to_thread(desired, config, options.overlay)
    async with await Kube.connect(config.namespace, context=options.context) as kube:
        existing = await kube.read_secret(manifests.PREFECT_SECRET) or {}
        secret = manifests.prefect_secret(config, existing, database=manifests.needs_database_secret(objects))
        say(f"kubernetes: applying {len(objects) + 1} objects to namespace {config.namespace} ...")
        await kube.apply_all(ordered(objects, secret))
        say("kubernetes: waiting for rollouts ...")
        await kube.wait_rollouts(objects, within=options.rollout_timeout)
    values: dict[str, str] = secret["stringData"]
    return values


@contextlib.contextmanager
def prefect_session(url: str | None, auth: str | None = None) -> Iterator[str]:
    """Point this process's Prefect client (and children) at `url` for the duration."""
    from k3sc.orchestration.api import resolve_api_url

    api_url = (url or resolve_api_url() or "").rstrip("/")
    if not api_url:
        raise UsageError(
            "no Prefect API: pass --prefect-url (for a cluster: `kubectl port-forward -n <namespace> "
            "svc/prefect-server 4200`, then --prefect-url http://127.0.0.1:4200/api) or set PREFECT_API_URL."
        )
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates: dict[Any, Any] = {PREFECT_API_URL: api_url}
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING")}
    os.environ["PREFECT_API_URL"] = api_url
    if auth:
        updates[PREFECT_API_AUTH_STRING] = auth
        os.environ["PREFECT_API_AUTH_STRING"] = auth
    try:
        with temporary_settings(updates=updates):
            yield api_url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def prefect_steps(config: Config, api_url: str, auth: str | None, say: Say) -> list[str]:
    """Step 3 (inside `prefect_session`): pools, blocks, deployments, automation, unpause."""
    from k3sc.orchestration import controls, deploy, dispatch_state
    from k3sc.orchestration.api import PrefectAPI
    from k3sc.orchestration.stack import child_env
    from k3sc.services import rotate_auth

    say("prefect: pools (k3sc-agents on Kubernetes), blocks, deployments, automation ...")
    async with PrefectAPI(api_url, auth_string=auth) as api:
        slots = await controls.slots(api, config.max_slots)
    await deploy.ensure_pools(slots, agent_template=jobs.base_job_template(config))
    stored: list[str] = []
    try:
        stored = await rotate_auth.store(await rotate_auth.gather(config))
    except UsageError as exc:
        say(f"prefect: credential blocks not updated ({exc}); run `k3sc rotate-auth` once they exist")
    env = child_env({"PREFECT_API_URL": api_url, **({"PREFECT_API_AUTH_STRING": auth} if auth else {})})
    await asyncio.to_thread(deploy.deploy_flows, env)
    await deploy.ensure_zombie_automation()
    async with PrefectAPI(api_url, auth_string=auth) as api:
        await dispatch_state.set_paused(api, False)
    return stored


async def run(config: Config, options: DeployOptions, say: Say) -> dict[str, Any]:
    """The whole deploy; a summary of what happened."""
    secret = await apply(config, options, say)
    summary: dict[str, Any] = {
        "namespace": config.namespace,
        "image": config.kubernetes.image,
        "prefect": None,
    }
    url = options.prefect_url or os.environ.get("PREFECT_API_URL")
    if not url:
        say(
            "prefect: skipped (no --prefect-url). Next: `kubectl port-forward -n "
            f"{config.namespace} svc/prefect-server 4200` and `k3sc deploy --prefect-url http://127.0.0.1:4200/api`."
        )
        return summary
    auth = secret.get(manifests.AUTH_KEY)
    with prefect_session(url, auth) as api_url:
        summary["stored"] = await prefect_steps(config, api_url, auth, say)
        summary["prefect"] = api_url
    return summary
