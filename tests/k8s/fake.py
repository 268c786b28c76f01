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
