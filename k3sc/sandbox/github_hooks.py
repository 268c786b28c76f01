"""The fake GitHub's repository webhook: signed HTTP deliveries, the way GitHub's Hookshot sends them.

One daemon thread posts each event in order with GitHub's headers (`X-GitHub-Event`,
`X-GitHub-Delivery`, `X-Hub-Signature-256`, `User-Agent: GitHub-Hookshot/…`) and a 10 s
timeout, records the answer, and never retries by itself, as GitHub does not;
`redeliver` repeats a delivery with the same GUID, as the "Redeliver" button does.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from k3sc import deliveries

USER_AGENT = "GitHub-Hookshot/6b3e7f1"
HOOK_ID = "424242"
TIMEOUT = 10.0  # GitHub gives up on a hook after 10 s


@dataclass
class Delivery:
    """One delivery and what the receiver answered (`status` None while in flight or on error)."""

    id: str
    event: str
    body: bytes
    status: int | None = None
    error: str = ""
    attempts: int = 0


@dataclass
class _Marker:
    done: threading.Event


class Hookshot:
    """Delivers to one URL with one secret; `stop` ends the thread after what is queued."""

    def __init__(self, url: str, secret: str, past: list[Delivery] | None = None) -> None:
        self.url = url
        self._secret = secret.encode()
        self.deliveries: list[Delivery] = list(past or [])
        self._queue: queue.Queue[Delivery | _Marker | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-github-hookshot", daemon=True)
        self._thread.start()

    def send(self, event: str, payload: dict[str, Any]) -> Delivery:
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery = Delivery(str(uuid.uuid4()), event, body)
        with self._lock:
            self.deliveries.append(delivery)
        self._queue.put(delivery)
        return delivery

    def redeliver(self, delivery_id: str) -> None:
        """Send a past delivery again, with its GUID and body."""
        with self._lock:
            found = next(d for d in self.deliveries if d.id == delivery_id)
        self._queue.put(found)

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far has been attempted; False on timeout."""
        done = threading.Event()
        self._queue.put(_Marker(done))
        return done.wait(timeout)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=TIMEOUT + 2)

    def headers(self, delivery: Delivery) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            deliveries.EVENT_HEADER: delivery.event,
            deliveries.DELIVERY_HEADER: delivery.id,
            deliveries.SIGNATURE_HEADER: deliveries.sign(self._secret, delivery.body),
            "X-GitHub-Hook-ID": HOOK_ID,
            "X-GitHub-Hook-Installation-Target-Type": "repository",
        }

    def _run(self) -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            while (delivery := self._queue.get()) is not None:
                if isinstance(delivery, _Marker):
                    delivery.done.set()
                    continue
                delivery.attempts += 1
                try:
                    response = client.post(self.url, content=delivery.body, headers=self.headers(delivery))
                    delivery.status, delivery.error = response.status_code, ""
                except httpx.HTTPError as exc:
                    # GitHub records a failed delivery and moves on; polling is k3sc's backstop.
                    delivery.status, delivery.error = None, type(exc).__name__
