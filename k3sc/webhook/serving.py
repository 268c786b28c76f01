"""Running the receiver: where its secret, repositories and Prefect come from, and uvicorn around it.

The secret is the hook's: `K3SC_WEBHOOK_SECRET` or `webhook.secret` in the config, else the
Prefect Secret block `k3sc-webhook` that `k3sc up` (or an operator) stored. Without one the
receiver refuses to start: an unsigned hook would let anyone on the network start scans.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from k3sc.config import Config, k3sc_home
from k3sc.errors import ConfigError, OrchestrationError
from k3sc.orchestration import deploy
from k3sc.orchestration.api import PrefectAPI, resolve_api_url
from k3sc.stopping import stop_signals
from k3sc.webhook.app import Settings, create_app
from k3sc.webhook.inbox import Inbox

SECRET_BLOCK = deploy.WEBHOOK_BLOCK


def inbox_path() -> Path:
    return k3sc_home() / "webhook" / "inbox.sqlite3"


def settings_for(config: Config, source: str, api_url: str | None = None) -> Settings:
    """The receiver's settings from the config, the environment and Prefect (exit 2 without a secret)."""
    url = api_url or resolve_api_url()
    if not url:
        raise ConfigError(
            "no Prefect server known for the webhook receiver: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api) or start one with `k3sc up`."
        )
    auth = os.environ.get("PREFECT_API_AUTH_STRING") or None
    secret = config.webhook.secret or asyncio.run(_block_secret(url, auth))
    if secret is None:
        raise ConfigError(
            f"no webhook secret: set K3SC_WEBHOOK_SECRET or webhook.secret in {source} (the secret "
            f"of the GitHub hook), or store it in the Prefect Secret block {SECRET_BLOCK!r} (`k3sc up` "
            "does); the receiver never runs unsigned.",
            key="webhook.secret",
        )
    repos = frozenset(r.repo.key for r in config.repos)
    return Settings(
        secret=secret,
        repos=repos,
        api_url=url,
        path=config.webhook.path,
        auth_string=SecretStr(auth) if auth else None,
    )


async def _block_secret(url: str, auth: str | None) -> SecretStr | None:
    try:
        async with PrefectAPI(url, auth_string=auth, timeout=10.0) as api:
            return await api.secret_block(SECRET_BLOCK)
    except OrchestrationError as exc:
        raise OrchestrationError(f"cannot read the webhook secret from Prefect: {exc}") from exc


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free one); a taken port is an operational error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it each 202 waits ~40 ms for a delayed ACK (uvicorn writes headers and body separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OrchestrationError(f"webhook receiver cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (`serve` stops it instead).

    After a graceful stop uvicorn raises the signal again with the handler it found, so SIGTERM
    would end the process by that signal and SIGHUP was not handled at all.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(settings: Settings, inbox: Inbox) -> uvicorn.Server:
    app = create_app(settings, inbox)
    return _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))


def serve(settings: Settings, sock: socket.socket, path: Path | None = None) -> None:
    """Run until a stop signal (`k3sc.stopping`): requests in flight finish, the inbox is closed,
    and the process exits 0. A second signal skips waiting for open connections."""
    inbox = Inbox(path or inbox_path())
    server = _server(settings, inbox)

    def stop(signum: int, frame: object) -> None:
        server.force_exit = server.should_exit
        server.should_exit = True

    previous = {signum: signal.signal(signum, stop) for signum in stop_signals()}
    try:
        server.run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        inbox.close()


@contextlib.contextmanager
def running(settings: Settings, path: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """A receiver on a thread of this process; yields its webhook URL (tests, benches)."""
    sock = bind(host, port)
    inbox = Inbox(path)
    server = _server(settings, inbox)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise OrchestrationError("the webhook receiver stopped while starting")
            threading.Event().wait(0.02)
        bound = sock.getsockname()
        yield f"http://{host}:{bound[1]}{settings.path}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        inbox.close()
