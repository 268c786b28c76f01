"""The receiver's ASGI app: verify a GitHub delivery, write it to the inbox, answer 202 at once.

GitHub gives a hook 10 s and never retries by itself, so the request path does only what must
happen before the answer: size check, signature over the raw bytes, JSON parse, triage and one
inbox insert. Talking to Prefect happens behind it (`forwarding`), so a slow or stopped
Prefect never costs a delivery. Answers: 202 accepted / duplicate / ignored (unknown repository
or event, logged), 400 not JSON or no event headers, 401 missing or wrong signature, 413 over 1 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from k3sc import deliveries, retrying
from k3sc.orchestration import events
from k3sc.orchestration.api import PrefectAPI
from k3sc.webhook import forwarding
from k3sc.webhook.inbox import Entry, Inbox, Status

log = logging.getLogger("k3sc.webhook")


@dataclass(frozen=True)
class Settings:
    """What one receiver needs; `repos` are lower-cased `owner/name`s from the k3sc config."""

    secret: SecretStr
    repos: frozenset[str]
    api_url: str
    path: str = "/github"
    auth_string: SecretStr | None = None
    pace: forwarding.Pace = field(default_factory=forwarding.Pace)
    clock: Callable[[], float] = time.time  # a seam for tests of retention


def create_app(settings: Settings, inbox: Inbox) -> Starlette:
    """The receiver; its lifespan runs the forwarder and the failed-automation watcher."""
    wake = asyncio.Event()
    secret = settings.secret.get_secret_value().encode()

    async def receive(request: Request) -> JSONResponse:
        body = await _read_limited(request, deliveries.MAX_BODY)
        if body is None:
            return _answer(413, "body over 1 MiB")
        name = request.headers.get(deliveries.EVENT_HEADER, "")
        delivery = request.headers.get(deliveries.DELIVERY_HEADER, "")
        if not name or not delivery:
            return _answer(400, f"missing {deliveries.EVENT_HEADER} or {deliveries.DELIVERY_HEADER}")
        if not deliveries.verify(secret, body, request.headers.get(deliveries.SIGNATURE_HEADER)):
            log.warning("delivery %s: missing or wrong signature, rejected", delivery[:80])
            return _answer(401, "missing or wrong X-Hub-Signature-256")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        if not isinstance(payload, dict):
            return _answer(400, "not a JSON object: set the hook's content type to application/json")
        return _accept(name, delivery, payload)

    def _accept(name: str, delivery: str, payload: dict[str, Any]) -> JSONResponse:
        verdict = deliveries.triage(name, payload, settings.repos)
        action = str(payload.get("action") or "")
        label = f"{name}.{action}" if action else name
        event = events.from_github(name, payload, delivery) if verdict.look else None
        entry = Entry(delivery, label, verdict.subject, settings.clock(), event)
        if event is None:
            reason = verdict.reason if not verdict.look else "no issue to look at"
            if inbox.add(entry, status=Status.IGNORED, reason=reason):
                log.info("ignored %s %s (delivery %s): %s", label, verdict.subject, delivery, reason)
            return _answer(202, f"ignored: {reason}")
        if not inbox.add(entry):
            log.info("duplicate delivery %s (%s %s): already handled", delivery, label, verdict.subject)
            return _answer(202, "duplicate")
        wake.set()
        log.info("accepted %s %s (delivery %s)", label, verdict.subject, delivery)
        return _answer(202, "accepted")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "inbox": inbox.counts()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One try per call: the forwarder owns the backoff, so the inbox never waits on retries.
        api = PrefectAPI(
            settings.api_url,
            auth_string=settings.auth_string.get_secret_value() if settings.auth_string else None,
            timeout=10.0,
            retry=retrying.Policy(attempts=1),
        )
        inbox.prune(settings.clock())
        started = datetime.fromtimestamp(settings.clock(), UTC)
        tasks = [
            asyncio.create_task(forwarding.forward(inbox, api, wake, settings.pace, settings.clock)),
            asyncio.create_task(forwarding.watch_failures(api, started, settings.pace)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await api.aclose()

    routes = [
        Route(settings.path, receive, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it is over `limit` (declared or streamed: chunked has no length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)
