"""The receiver's two background loops: inbox → Prefect events, and Prefect's silent failures → the log.

The forwarder sends pending inbox rows to `POST /api/events` (no `import prefect`: 8–19 ms a
call) and marks them sent. While Prefect is down it waits with a doubling backoff and tries
again, so nothing accepted is lost; a wake-up from the receiver skips the idle wait, not the
backoff. The watcher polls for `prefect.automation.action.failed`, because a trigger whose
template or parameters fail creates no run and says so nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from k3sc.errors import OrchestrationError
from k3sc.orchestration.api import PrefectAPI
from k3sc.webhook.inbox import Inbox, Status

log = logging.getLogger("k3sc.webhook")

ACTION_FAILED = "prefect.automation.action.failed"


@dataclass(frozen=True)
class Pace:
    """How the loops wait; tests shorten these (real values are the defaults)."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    idle: float = 30.0  # re-check the inbox this often even without a wake-up
    watch: float = 10.0  # poll for failed automation actions this often
    batch: int = 50


async def forward(
    inbox: Inbox,
    api: PrefectAPI,
    wake: asyncio.Event,
    pace: Pace = Pace(),
    clock: Callable[[], float] = time.time,
) -> None:
    """Forever: send what is pending, mark it, wait for more (or back off while Prefect is away)."""
    delay = 0.0
    singles = 0  # after a refused batch, its rows go one by one so only the bad one is refused
    while True:
        wake.clear()
        entries = inbox.pending(1 if singles else pace.batch)
        singles = max(0, singles - 1)
        if not entries:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), pace.idle)
            continue
        now = datetime.fromtimestamp(clock(), UTC)
        # `occurred` is when Prefect learns of it: a hint forwarded late is still a hint for now.
        events = [{**e.event, "occurred": now.isoformat()} for e in entries if e.event]
        try:
            status = await api.emit_events(events)
        except OrchestrationError as exc:
            delay = min(max(delay * 2, pace.backoff_initial), pace.backoff_max)
            log.warning("Prefect unreachable (%s): %d waiting; retry in %.1fs", exc, len(entries), delay)
            await asyncio.sleep(delay)
            continue
        if delay:
            log.info("Prefect is back: forwarding the deliveries that waited")
        delay = 0.0
        ids = [e.delivery for e in entries]
        if status == 204:
            inbox.mark(ids, Status.SENT, clock())
            for entry in entries:
                log.info("forwarded %s %s (delivery %s)", entry.name, entry.subject, entry.delivery)
        elif len(entries) > 1:
            singles = len(entries)
        else:
            # Our own events are well-formed; a refusal is a bug to see in the log, not to retry.
            inbox.mark(ids, Status.REFUSED, clock(), reason=f"Prefect answered {status}")
            log.error("Prefect refused %d events (HTTP %d): %s", len(ids), status, ", ".join(ids))


async def watch_failures(
    api: PrefectAPI, since: datetime, pace: Pace = Pace(), report: Callable[[str], None] | None = None
) -> None:
    """Forever: log every failed automation action (a trigger that silently made no run)."""
    say = report or log.error
    seen: set[str] = set()
    failing = False
    while True:
        try:
            found = await api.events([ACTION_FAILED], since)
        except OrchestrationError as exc:
            if not failing:
                log.warning("cannot read Prefect events to watch automations: %s", exc)
            failing = True
        else:
            failing = False
            for event in found:
                if event["id"] in seen:
                    continue
                seen.add(event["id"])
                say(describe_failure(event))
                since = max(since, datetime.fromisoformat(event["occurred"]) - timedelta(seconds=1))
            if len(seen) > 10_000:
                seen.clear()
        await asyncio.sleep(pace.watch)


def describe_failure(event: dict[str, Any]) -> str:
    """One log line: which automation, which action, and Prefect's reason."""
    resource = event.get("resource") or {}
    payload = event.get("payload") or {}
    name = resource.get("prefect.resource.name") or resource.get("prefect.resource.id", "?")
    reason = str(payload.get("reason") or "no reason given")
    detail = payload.get("validation_error")
    action = payload.get("action_type") or f"action {payload.get('action_index', '?')}"
    extra = f" ({detail})" if detail else ""
    return f"automation {name!r} failed to {action}: {reason}{extra}"
