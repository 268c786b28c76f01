"""The webhook receiver against the session's real Prefect server.

A real uvicorn serves the receiver on a thread; Prefect "goes away" and "comes back" through a
TCP relay on a port that is closed first and later relays to the real server, so the forwarder
sees exactly what it would see if the server stopped and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc import deliveries, retrying
from k3sc.errors import ConfigError
from k3sc.orchestration import deploy
from k3sc.orchestration.api import PrefectAPI
from k3sc.webhook import forwarding, serving
from k3sc.webhook.app import Settings
from k3sc.webhook.inbox import Entry, Inbox, Status
from tests.cli_helpers import invoke

pytestmark = pytest.mark.prefect

SECRET = "hook-secret"
FAST = forwarding.Pace(backoff_initial=0.05, backoff_max=0.3, idle=1.0, watch=0.3)


def wait_until(check: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {within:.0f}s: {what}")


@contextlib.contextmanager
def relay(port: int, upstream: tuple[str, int]) -> Iterator[None]:
    """Listen on `port` and pipe every connection to `upstream` (Prefect "coming back")."""
    server = socket.create_server(("127.0.0.1", port), reuse_port=False)
    server.settimeout(0.1)
    stop = threading.Event()
    opened: list[socket.socket] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            remote = socket.create_connection(upstream)
            opened.extend((client, remote))
            for a, b in ((client, remote), (remote, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def signed_post(url: str, payload: dict[str, Any], delivery: str, event: str = "issues") -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        url,
        content=body,
        headers={
            deliveries.EVENT_HEADER: event,
            deliveries.DELIVERY_HEADER: delivery,
            deliveries.SIGNATURE_HEADER: deliveries.sign(SECRET.encode(), body),
            "Content-Type": "application/json",
        },
    )


async def stored_events(api_url: str, name: str, since: datetime) -> list[dict[str, Any]]:
    async with PrefectAPI(api_url) as api:
        return await api.events([name], since)


def test_deliveries_wait_while_prefect_is_down_and_reach_it_when_it_returns(
    tmp_path: Path, prefect_api_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="k3sc.webhook")
    upstream = httpx.URL(prefect_api_url)
    with socket.socket() as probe:  # a port nothing listens on, yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        secret=SecretStr(SECRET),
        repos=frozenset({"acme/api"}),
        api_url=f"http://127.0.0.1:{port}/api",
        pace=FAST,
    )
    delivery = str(uuid.uuid4())
    since = datetime.now(UTC) - timedelta(seconds=5)
    payload = {"action": "labeled", "repository": {"full_name": "acme/api"},
               "issue": {"number": 7}, "label": {"name": "ready"}}  # fmt: skip
    with serving.running(settings, tmp_path / "inbox.sqlite3") as url:
        started = time.monotonic()
        response = signed_post(url, payload, delivery)
        assert response.status_code == 202
        assert time.monotonic() - started < 1.0  # answered at once, Prefect or not
        wait_until(lambda: "Prefect unreachable" in caplog.text, 10, "the forwarder notices Prefect is down")
        inbox = Inbox(tmp_path / "inbox.sqlite3")
        assert inbox.status(delivery) is Status.PENDING

        with relay(port, (upstream.host, upstream.port or 80)):
            wait_until(lambda: inbox.status(delivery) is Status.SENT, 20, "the waiting delivery is forwarded")
        inbox.close()
    assert "Prefect is back" in caplog.text
    found = wait_until(
        lambda: [e for e in asyncio.run(stored_events(prefect_api_url, "github.issues.labeled", since))
                 if e["id"] == delivery],
        30, "Prefect stored the event",
    )  # fmt: skip
    assert found[0]["resource"]["prefect.resource.id"] == "github.issue.acme/api#7"
    assert found[0]["payload"]["delivery"] == delivery


async def _delete_secret_block(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url + "/") as client:
        found = await client.get(f"block_types/slug/secret/block_documents/name/{serving.SECRET_BLOCK}")
        if found.status_code == 200:
            await client.delete(f"block_documents/{found.json()['id']}")


async def _save_secret(api_url: str, secret: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        await deploy.save_webhook_secret(SecretStr(secret))


def test_the_secret_comes_from_the_config_or_the_prefect_block_and_is_required(
    isolated_env: Path, prefect_api_url: str
) -> None:
    asyncio.run(_delete_secret_block(prefect_api_url))
    config = k3sc_config.load(environ={}).config
    with pytest.raises(ConfigError) as caught:
        serving.settings_for(config, "k3sc.yaml", api_url=prefect_api_url)
    assert caught.value.key == "webhook.secret"
    invoke(["webhook"], code=2, contains=["error: no webhook secret", "K3SC_WEBHOOK_SECRET"],
           env={"PREFECT_API_URL": prefect_api_url})  # fmt: skip

    asyncio.run(_save_secret(prefect_api_url, "from-the-block"))
    settings = serving.settings_for(config, "k3sc.yaml", api_url=prefect_api_url)
    assert settings.secret.get_secret_value() == "from-the-block"
    assert "from-the-block" not in repr(settings)
    with_env = k3sc_config.load(environ={"K3SC_WEBHOOK_SECRET": "from-env"}).config
    assert serving.settings_for(with_env, "k3sc.yaml", api_url=prefect_api_url).secret.get_secret_value() == (
        "from-env"
    )
    asyncio.run(_delete_secret_block(prefect_api_url))


async def test_a_failed_automation_action_is_reported(prefect_api_url: str) -> None:
    """A trigger whose action cannot run (here: its deployment is gone) fails silently in Prefect."""
    marker = f"k3sc.test.boom-{uuid.uuid4().hex[:8]}"
    automation = {
        "name": f"k3sc-test-{marker}",
        "trigger": {"type": "event", "posture": "Reactive", "expect": [marker], "threshold": 1, "within": 0},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": str(uuid.uuid4()),
                     "parameters": {}}],
    }  # fmt: skip
    reports: list[str] = []
    async with PrefectAPI(prefect_api_url) as api:
        created = await api.post_json("automations/", automation)
        try:
            watcher = asyncio.create_task(
                forwarding.watch_failures(api, datetime.now(UTC) - timedelta(seconds=1), FAST, reports.append)
            )
            try:
                await asyncio.sleep(1.0)  # the automations service loads the new automation
                event = {"id": str(uuid.uuid4()), "occurred": datetime.now(UTC).isoformat(), "event": marker,
                         "resource": {"prefect.resource.id": "k3sc.test"}}  # fmt: skip
                assert await api.emit_events([event]) == 204
                for _ in range(300):
                    if any(automation["name"] in line for line in reports):
                        break
                    await asyncio.sleep(0.1)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        finally:
            async with httpx.AsyncClient(base_url=prefect_api_url + "/") as client:
                await client.delete(f"automations/{created['id']}")
    line = next(line for line in reports if automation["name"] in line)
    assert line.startswith(f"automation {automation['name']!r} failed to run-deployment:"), line


async def test_an_event_prefect_refuses_is_set_aside_and_the_rest_still_go(
    tmp_path: Path, prefect_api_url: str
) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    good = {"id": str(uuid.uuid4()), "event": "github.ping",
            "resource": {"prefect.resource.id": "github.repo.acme/api"}}  # fmt: skip
    bad = {"id": "not-a-uuid", "event": "github.ping", "resource": {}}
    for delivery, event in (("bad", bad), ("good", good)):
        inbox.add(Entry(delivery, "ping", "acme/api", time.time(), event))
    async with PrefectAPI(prefect_api_url, retry=retrying.Policy(attempts=1)) as api:
        task = asyncio.create_task(forwarding.forward(inbox, api, asyncio.Event(), FAST))
        try:
            for _ in range(100):
                if not inbox.pending():
                    break
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert (inbox.status("bad"), inbox.status("good")) == (Status.REFUSED, Status.SENT)
    inbox.close()
