"""Fixtures' helpers: the fake Kubernetes API on a free port and a k3sc client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from k3sc.kube.client import Kube
from k3sc.sandbox import kube as fake_kube

NAMESPACE = "claude-agents"


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[tuple[fake_kube.FakeKubernetes, str]]:
    """The fake API serving on 127.0.0.1:<free port>; yields it and its URL."""
    async with fake_kube.FakeKubernetes(**options) as fake:
        server = await fake_kube.serve(fake)
        try:
            yield fake, str(server.url).rstrip("/")
        finally:
            await server.__aexit__(None, None, None)


async def client(url: str, tmp_path: Path, token: str = "admin", namespace: str = NAMESPACE) -> Kube:
    path = tmp_path / f"kubeconfig-{token}"
    path.write_text(yaml.safe_dump(fake_kube.kubeconfig(url, token, namespace)))
    return await Kube.connect(namespace, kubeconfig=str(path))


class FakeInThread:
    """The fake API on its own event loop in a thread, for code that runs `asyncio.run` itself
    (the CLI) or other processes (the worker)."""

    def __init__(self, **options: Any) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._options = options
        self.fake: fake_kube.FakeKubernetes
        self.url = ""
        self._server: Any = None

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> FakeInThread:
        async def start() -> None:
            self.fake = fake_kube.FakeKubernetes(**self._options)
            await self.fake.__aenter__()
            self._server = await fake_kube.serve(self.fake)
            self.url = str(self._server.url).rstrip("/")

        self.call(start())
        return self

    def kubeconfig(self, path: Path, token: str = "admin", namespace: str = NAMESPACE) -> Path:
        path.write_text(yaml.safe_dump(fake_kube.kubeconfig(self.url, token, namespace)))
        return path

    def stop(self) -> None:
        async def stop() -> None:
            await self._server.__aexit__(None, None, None)
            await self.fake.__aexit__(None, None, None)

        try:
            self.call(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
