"""k3sc's Kubernetes client (kubernetes_asyncio, which prefect-kubernetes already uses).

Server-side apply of rendered manifests (field manager `k3sc`, conflicts forced: k3sc owns what
it ships), the agent Job of a flow run found by the worker's `prefect.io/flow-run-id` label and
deleted at once, a run's pod log (the only trace of a pod that died before Python started),
why a run has not started, and rollout waits. Transient failures (connection errors, 429, 5xx)
are retried through k3sc's one retry policy; anything else is an `OrchestrationError` naming
the call, never a raw client exception.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from k3sc import retrying
from k3sc.errors import ConfigError, OrchestrationError

FIELD_MANAGER = "k3sc"
RUN_LABEL = "prefect.io/flow-run-id"
AGENT_CONTAINER = "prefect-job"
POLICY = retrying.Policy(attempts=5, initial=0.5, maximum=8.0)

T = TypeVar("T")


def classify(failure: BaseException) -> retrying.Verdict:
    """Retry connection failures, timeouts, 429 and 5xx; everything else is final."""
    import aiohttp
    from kubernetes_asyncio.client.exceptions import ApiException

    if isinstance(failure, ApiException):
        status = int(failure.status or 0)
        if not retrying.is_transient_status(status):
            return None
        headers: Any = failure.headers or {}
        retry_after = retrying.retry_after_seconds(headers.get("Retry-After"))
        return retry_after if retry_after is not None else retrying.BACKOFF
    if isinstance(failure, (aiohttp.ClientConnectionError, asyncio.TimeoutError)):
        return retrying.BACKOFF
    return None


class Kube:
    """One connection to one cluster, scoped to k3sc's namespace."""

    def __init__(self, api_client: Any, namespace: str, *, policy: retrying.Policy = POLICY) -> None:
        self._api = api_client
        self.namespace = namespace
        self._policy = policy
        self._dynamic: Any = None
        self._cache = Path(tempfile.gettempdir()) / f"k3sc-kube-discovery-{os.getuid()}-{id(self)}.json"

    @classmethod
    async def connect(
        cls, namespace: str, *, context: str | None = None, kubeconfig: str | None = None
    ) -> Kube:
        """In a pod: its service account (unless a context is named); else the kubeconfig
        (`$KUBECONFIG`, then ~/.kube/config) and its current or named context."""
        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        in_cluster = os.environ.get("KUBERNETES_SERVICE_HOST") and context is None and kubeconfig is None
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
                await config.load_kube_config(
                    config_file=path,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (config.ConfigException, FileNotFoundError, KeyError) as exc:
            where = (
                "the pod's service account" if in_cluster else f"kubeconfig context {context or '(current)'}"
            )
            raise ConfigError(f"cannot connect to Kubernetes with {where}: {exc}") from None
        return cls(client.ApiClient(configuration), namespace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._api.close()
        self._cache.unlink(missing_ok=True)

    # ------------------------------------------------------------------ transport

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One API call under the retry policy; a final failure becomes an OrchestrationError."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            async for attempt in retrying.attempts(self._policy, classify):
                with attempt:
                    return await call()
        except ApiException as exc:
            raise OrchestrationError(f"Kubernetes {what}: {exc.status} {_reason(exc)}") from None
        except OSError as exc:
            raise OrchestrationError(f"Kubernetes {what}: API unreachable ({type(exc).__name__})") from None
        except TimeoutError:
            raise OrchestrationError(f"Kubernetes {what}: timed out") from None
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _resources(self) -> Any:
        if self._dynamic is None:
            from kubernetes_asyncio.dynamic import DynamicClient

            self._dynamic = await self._call(
                "discovery", lambda: DynamicClient(self._api, cache_file=str(self._cache)).__aenter__()
            )
        return self._dynamic

    # ------------------------------------------------------------------ apply

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply one object; returns what the server stored."""
        dynamic = await self._resources()
        what = f"apply {obj['kind']}/{obj['metadata']['name']}"

        async def send() -> dict[str, Any]:
            resource = await dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            # The dynamic client raises DynamicApiError, an ApiException with the same status.
            stored = await dynamic.server_side_apply(
                resource,
                body=obj,
                namespace=obj["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            result: dict[str, Any] = stored.to_dict()
            if result.get("kind") == "Status" and result.get("status") == "Failure":
                # The dynamic client returns an error answer as a body instead of raising.
                from kubernetes_asyncio.client.exceptions import ApiException

                failure = ApiException(status=int(result.get("code") or 0), reason=str(result.get("message")))
                failure.body = None
                raise failure
            return result

        return await self._call(what, send)

    async def apply_all(self, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply in order (the namespace first, as rendered)."""
        return [await self.apply(obj) for obj in objects]

    async def read_secret(self, name: str) -> dict[str, str] | None:
        """A Secret's data decoded, or None if it does not exist."""
        import base64

        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        core = client.CoreV1Api(self._api)

        async def read() -> dict[str, str] | None:
            try:
                secret = await core.read_namespaced_secret(name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

        return await self._call(f"read secret {name}", read)

    # ------------------------------------------------------------------ agent runs

    async def run_jobs(self, flow_run_id: str) -> list[str]:
        """Names of the Jobs the worker created for a flow run."""
        from kubernetes_asyncio import client

        batch = client.BatchV1Api(self._api)
        selector = f"{RUN_LABEL}={flow_run_id}"
        found = await self._call(
            f"list jobs of run {flow_run_id}",
            lambda: batch.list_namespaced_job(self.namespace, label_selector=selector),
        )
        return [job.metadata.name for job in found.items]

    async def delete_run_jobs(self, flow_run_id: str) -> list[str]:
        """Delete a flow run's Jobs now (pods go with them); returns the names deleted.

        Background propagation: the Job disappears at once, so the worker's observer marks the
        run Crashed ("Kubernetes job was deleted") and the slot frees without waiting for Prefect's
        300 s cancellation cleanup.
        """
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        batch = client.BatchV1Api(self._api)
        deleted = []
        for name in await self.run_jobs(flow_run_id):

            async def delete(name: str = name) -> bool:
                try:
                    await batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
                except ApiException as exc:
                    if exc.status == 404:
                        return False  # gone already: the goal is met
                    raise
                return True

            if await self._call(f"delete job {name}", delete):
                deleted.append(name)
        return deleted

    async def run_pods(self, flow_run_id: str) -> list[Any]:
        """The pods of a flow run's Jobs, newest first."""
        from kubernetes_asyncio import client

        core = client.CoreV1Api(self._api)
        selector = f"{RUN_LABEL}={flow_run_id}"
        found = await self._call(
            f"list pods of run {flow_run_id}",
            lambda: core.list_namespaced_pod(self.namespace, label_selector=selector),
        )
        return sorted(found.items, key=lambda p: p.metadata.creation_timestamp or 0, reverse=True)

    async def run_pod_log(self, flow_run_id: str, tail_lines: int = 200) -> str | None:
        """The last lines the agent container of a run's newest pod wrote, or None without a pod."""
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        pods = await self.run_pods(flow_run_id)
        if not pods:
            return None
        core = client.CoreV1Api(self._api)
        name = pods[0].metadata.name

        async def read() -> str | None:
            try:
                text: str = await core.read_namespaced_pod_log(
                    name, self.namespace, container=AGENT_CONTAINER, tail_lines=tail_lines
                )
            except ApiException as exc:
                if exc.status in (400, 404):  # not started (ContainerCreating) or already gone
                    return None
                raise
            return text

        return await self._call(f"read log of pod {name}", read)

    async def start_problem(self, flow_run_id: str) -> str | None:
        """Why a run's pod has not started, when Kubernetes says so (`ImagePullBackOff: …`,
        `Unschedulable: …`), else None. For the reaper's message; it decides by time."""
        for pod in await self.run_pods(flow_run_id):
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state else None
                starting = ("ContainerCreating", "PodInitializing")
                if waiting and waiting.reason and waiting.reason not in starting:
                    return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.status == "False":
                    return f"{condition.reason or 'Unschedulable'}: {condition.message or ''}".rstrip(": ")
        return None

    # ------------------------------------------------------------------ rollouts

    async def wait_rollouts(
        self, objects: Iterable[dict[str, Any]], within: float = 300.0, poll: float = 2.0
    ) -> None:
        """Wait until every Deployment and StatefulSet among `objects` runs its current spec."""
        from kubernetes_asyncio import client

        apps = client.AppsV1Api(self._api)
        pending = [
            (o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] in ("Deployment", "StatefulSet")
        ]
        deadline = time.monotonic() + within
        while pending:
            waiting = []
            for kind, name in pending:

                async def read(kind: str = kind, name: str = name) -> Any:
                    if kind == "Deployment":
                        return await apps.read_namespaced_deployment(name, self.namespace)
                    return await apps.read_namespaced_stateful_set(name, self.namespace)

                current = await self._call(f"read {kind}/{name}", read)
                if not rolled_out(current.to_dict()):
                    waiting.append((kind, name))
            pending = waiting
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{k}/{n}" for k, n in pending)
                raise OrchestrationError(f"not rolled out after {within:.0f}s: {names}")
            await asyncio.sleep(poll)


def rolled_out(obj: dict[str, Any]) -> bool:
    """True once the controller saw the latest spec and every replica is updated and ready."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = spec.get("replicas", 1)
    generation = (obj.get("metadata") or {}).get("generation") or 0
    return bool(
        (status.get("observed_generation") or status.get("observedGeneration") or 0) >= generation
        and (status.get("updated_replicas") or status.get("updatedReplicas") or 0) >= wanted
        and (status.get("ready_replicas") or status.get("readyReplicas") or 0) >= wanted
    )


def _reason(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
