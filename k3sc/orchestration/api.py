"""A small async client for the Prefect REST API, on plain httpx.

Why not `prefect.client`: importing prefect costs ~2 s and ~1000 modules, and the CLI's hot
paths (`k3sc scan`, `k3sc dispatch`) and the dispatcher only need a dozen endpoints. Inside
flows the same client is used, so there is one way k3sc reads and writes runs and variables.
Answers are parsed into the typed records of `k3sc.orchestration.records`. Transient failures
(connection errors, 429, 5xx) are retried under `k3sc.retrying.PREFECT`; everything else becomes
an `OrchestrationError` that names the endpoint, never a raw httpx exception.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr

from k3sc import retrying, tls
from k3sc.config import k3sc_home
from k3sc.errors import OrchestrationError
from k3sc.orchestration.records import Deployment, FlowRun, LogRecord

PAGE = 200  # the server rejects larger flow-run pages with 422


def server_file() -> Path:
    """Where `k3sc up` records the local server it started, so other commands find it."""
    return k3sc_home() / "prefect-server.json"


def resolve_api_url(environ: dict[str, str] | None = None) -> str | None:
    """`PREFECT_API_URL`, else the server `k3sc up` recorded, else None."""
    env = os.environ if environ is None else environ
    if url := env.get("PREFECT_API_URL", "").strip():
        return url.rstrip("/")
    try:
        data = json.loads(server_file().read_text())
    except (OSError, ValueError):
        return None
    recorded = data.get("api_url") if isinstance(data, dict) else None
    return str(recorded).rstrip("/") if recorded else None


class PrefectAPI:
    """The endpoints k3sc needs: deployments, flow runs, states, tags, logs and variables."""

    def __init__(
        self,
        url: str,
        *,
        auth_string: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: retrying.Policy = retrying.PREFECT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json"}
        auth: httpx.BasicAuth | None = None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        elif auth_string and ":" in auth_string:
            user, _, password = auth_string.partition(":")
            auth = httpx.BasicAuth(user, password)
        self.url = url.rstrip("/")
        self._retry = retry
        self._client = httpx.AsyncClient(
            base_url=self.url + "/",
            headers=headers,
            auth=auth,
            timeout=timeout,
            transport=transport,
            verify=tls.verify(self.url),
        )
        self._deployment_ids: dict[str, str] = {}

    @classmethod
    def from_env(cls, **kwargs: Any) -> PrefectAPI:
        """A client for the server in `PREFECT_API_URL` (or the one `k3sc up` started)."""
        url = resolve_api_url()
        if not url:
            raise OrchestrationError(
                "no Prefect server known: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) "
                "or start one with `k3sc up`."
            )
        return cls(
            url,
            auth_string=os.environ.get("PREFECT_API_AUTH_STRING") or None,
            api_key=os.environ.get("PREFECT_API_KEY") or None,
            **kwargs,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ transport

    async def _request(
        self, method: str, path: str, *, body: Any = None, ok: Sequence[int] = (200, 201, 204)
    ) -> httpx.Response:
        """One call under the retry policy; what still fails raises OrchestrationError."""
        content = None if body is None else json.dumps(body, default=str)
        where = f"{method} /{path.lstrip('/')}"
        try:
            async for attempt in retrying.attempts(self._retry, self._classify):
                with attempt:
                    response = await self._client.request(method, path.lstrip("/"), content=content)
                    if response.status_code not in ok and retrying.is_transient_status(response.status_code):
                        after = retrying.retry_after_seconds(response.headers.get("Retry-After"))
                        raise retrying.TransientStatus(response.status_code, after)
        except httpx.TransportError as exc:
            raise OrchestrationError(f"Prefect API at {self.url} unreachable ({type(exc).__name__})") from exc
        except retrying.TransientStatus as exc:
            raise OrchestrationError(f"Prefect API {where} → {exc.status} after retries") from exc
        if response.status_code in ok:
            return response
        detail = response.text[:300].replace("\n", " ")
        raise OrchestrationError(f"Prefect API {where} → {response.status_code}: {detail}")

    async def _pages(self, path: str, body: dict[str, Any], limit: int | None) -> list[Any]:
        """A filter endpoint's answers, following pages of 200 until `limit` (None = all)."""
        found: list[Any] = []
        while True:
            page = PAGE if limit is None else min(PAGE, limit - len(found))
            if page <= 0:
                return found
            batch = (
                await self._request("POST", path, body={**body, "limit": page, "offset": len(found)})
            ).json()
            found.extend(batch)
            if len(batch) < page:
                return found

    def _classify(self, failure: BaseException) -> retrying.Verdict:
        if isinstance(failure, httpx.TransportError):
            return retrying.BACKOFF
        if isinstance(failure, retrying.TransientStatus):
            return failure.retry_after if failure.retry_after is not None else retrying.BACKOFF
        return None

    # ------------------------------------------------------------------ deployments

    async def deployment(self, name: str) -> Deployment:
        """Read a deployment by `flow-name/deployment-name`."""
        flow, _, deployment = name.partition("/")
        response = await self._request("GET", f"deployments/name/{flow}/{deployment}", ok=(200, 404))
        if response.status_code == 404:
            raise OrchestrationError(f"deployment {name!r} not found; run `k3sc up` to deploy the flows")
        found = Deployment.model_validate(response.json())
        self._deployment_ids[name] = found.id
        return found

    async def deployment_id(self, name: str) -> str:
        if name not in self._deployment_ids:
            await self.deployment(name)
        return self._deployment_ids[name]

    async def create_flow_run(
        self,
        deployment: str,
        *,
        parameters: dict[str, Any],
        name: str | None = None,
        tags: Iterable[str] = (),
        idempotency_key: str | None = None,
        scheduled_time: datetime | None = None,
        job_variables: dict[str, Any] | None = None,
    ) -> FlowRun:
        """Create a run of `deployment`; with an idempotency key a repeat returns the same run.

        `job_variables` are this run's own additions to the work pool's job template.
        """
        body: dict[str, Any] = {"parameters": parameters, "tags": list(tags)}
        if job_variables:
            body["job_variables"] = job_variables
        if name:
            body["name"] = name
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        state: dict[str, Any] = {"type": "SCHEDULED", "name": "Scheduled"}
        if scheduled_time is not None:
            state["state_details"] = {"scheduled_time": scheduled_time.isoformat()}
        body["state"] = state
        deployment_id = await self.deployment_id(deployment)
        response = await self._request("POST", f"deployments/{deployment_id}/create_flow_run", body=body)
        return FlowRun.model_validate(response.json())

    # ------------------------------------------------------------------ flow runs

    async def flow_runs(
        self,
        *,
        tags_all: Sequence[str] = (),
        tags_any: Sequence[str] = (),
        state_types: Sequence[str] = (),
        idempotency_keys: Sequence[str] = (),
        deployment_ids: Sequence[str] = (),
        sort: str = "EXPECTED_START_TIME_DESC",
        limit: int | None = None,
    ) -> list[FlowRun]:
        """Filter flow runs, following pages of 200 until `limit` (None = all)."""
        runs_filter: dict[str, Any] = {}
        tags: dict[str, Any] = {}
        if tags_all:
            tags["all_"] = list(tags_all)
        if tags_any:
            tags["any_"] = list(tags_any)
        if tags:
            runs_filter["tags"] = tags
        if state_types:
            runs_filter["state"] = {"type": {"any_": list(state_types)}}
        if idempotency_keys:
            runs_filter["idempotency_key"] = {"any_": list(idempotency_keys)}
        if deployment_ids:
            runs_filter["deployment_id"] = {"any_": list(deployment_ids)}
        body = {"flow_runs": runs_filter, "sort": sort}
        return [FlowRun.model_validate(r) for r in await self._pages("flow_runs/filter", body, limit)]

    async def flow_run(self, run_id: str) -> FlowRun | None:
        response = await self._request("GET", f"flow_runs/{run_id}", ok=(200, 404))
        if response.status_code == 404:
            return None
        return FlowRun.model_validate(response.json())

    async def set_tags(self, run_id: str, tags: Sequence[str], *, name: str | None = None) -> None:
        """Replace a run's tags (and its name, if given)."""
        body: dict[str, Any] = {"tags": list(tags)}
        if name is not None:
            body["name"] = name
        await self._request("PATCH", f"flow_runs/{run_id}", body=body)

    async def set_state(
        self,
        run_id: str,
        state_type: str,
        *,
        name: str | None = None,
        message: str | None = None,
        scheduled_time: datetime | None = None,
        force: bool = False,
    ) -> str:
        """Propose a state; returns the orchestration status (ACCEPT, REJECT, ABORT, WAIT)."""
        state: dict[str, Any] = {"type": state_type}
        if name:
            state["name"] = name
        if message:
            state["message"] = message
        if scheduled_time is not None:
            state["state_details"] = {"scheduled_time": scheduled_time.isoformat()}
        body = {"state": state, "force": force}
        response = await self._request("POST", f"flow_runs/{run_id}/set_state", body=body)
        return str(response.json().get("status", ""))

    # ------------------------------------------------------------------ logs

    async def logs(
        self,
        flow_run_id: str,
        *,
        after: datetime | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """A flow run's log records from `after` on (inclusive), pages of 200 until `limit` (None = all).

        Oldest first, or `newest_first` (the listing reads only a run's last few lines).
        """
        logs_filter: dict[str, Any] = {"flow_run_id": {"any_": [flow_run_id]}}
        if after is not None:
            logs_filter["timestamp"] = {"after_": after.isoformat()}
        sort = "TIMESTAMP_DESC" if newest_first else "TIMESTAMP_ASC"
        body = {"logs": logs_filter, "sort": sort}
        return [LogRecord.model_validate(r) for r in await self._pages("logs/filter", body, limit)]

    # ------------------------------------------------------------------ variables

    async def variable(self, name: str) -> Any:
        """The value of a variable, or None if it does not exist."""
        response = await self._request("GET", f"variables/name/{name}", ok=(200, 404))
        return response.json().get("value") if response.status_code == 200 else None

    async def create_variable(self, name: str, value: Any, tags: Sequence[str] = ()) -> bool:
        """Atomic create-if-absent: True if we created it, False if it already existed."""
        body = {"name": name, "value": value, "tags": list(tags)}
        response = await self._request("POST", "variables/", body=body, ok=(200, 201, 409))
        return response.status_code != 409

    async def set_variable(self, name: str, value: Any, tags: Sequence[str] = ()) -> None:
        """Write a variable, creating it if needed (last writer wins)."""
        response = await self._request(
            "PATCH", f"variables/name/{name}", body={"value": value}, ok=(204, 404)
        )
        if response.status_code == 404 and not await self.create_variable(name, value, tags):
            await self._request("PATCH", f"variables/name/{name}", body={"value": value}, ok=(204,))

    async def delete_variable(self, name: str) -> bool:
        """Delete a variable; True if it existed."""
        response = await self._request("DELETE", f"variables/name/{name}", ok=(204, 404))
        return response.status_code == 204

    async def variables(self, containing: str) -> dict[str, Any]:
        """Every variable whose name contains `containing`, by name (one request per 200)."""
        found: dict[str, Any] = {}
        offset = 0
        while True:
            body = {"variables": {"name": {"like_": containing}}, "limit": PAGE, "offset": offset}
            batch = (await self._request("POST", "variables/filter", body=body)).json()
            found.update({str(v["name"]): v.get("value") for v in batch})
            if len(batch) < PAGE:
                return found
            offset += len(batch)

    async def post_json(self, path: str, body: Any) -> Any:
        """A read-only POST (the API's filter endpoints) and its JSON answer."""
        return (await self._request("POST", path, body=body)).json()

    # ------------------------------------------------------------------ events and blocks

    async def emit_events(self, events: Sequence[dict[str, Any]]) -> int:
        """POST events; the status: 204 once the server's messaging has them, 4xx if refused."""
        response = await self._request("POST", "events", body=list(events), ok=(204, 400, 413, 422))
        return response.status_code

    async def events(self, names: Sequence[str], since: datetime, limit: int = 50) -> list[dict[str, Any]]:
        """Stored events with one of `names` that occurred at or after `since`, oldest first."""
        wanted = {"event": {"name": list(names)}, "occurred": {"since": since.isoformat()}, "order": "ASC"}
        response = await self._request("POST", "events/filter", body={"filter": wanted, "limit": limit})
        found: list[dict[str, Any]] = response.json()["events"]
        return found

    async def secret_block(self, name: str) -> SecretStr | None:
        """The value of Prefect's Secret block `name`, or None when there is none."""
        path = f"block_types/slug/secret/block_documents/name/{name}?include_secrets=true"
        response = await self._request("GET", path, ok=(200, 404))
        value = response.json().get("data", {}).get("value") if response.status_code == 200 else None
        return SecretStr(value) if isinstance(value, str) and value else None

    # ------------------------------------------------------------------ work pools

    async def set_pool_concurrency(self, pool: str, limit: int | None) -> None:
        """Set a work pool's concurrency limit (None lifts it)."""
        await self._request("PATCH", f"work_pools/{pool}", body={"concurrency_limit": limit}, ok=(204,))
