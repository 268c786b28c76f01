"""A tiny flow for the Kubernetes worker tests: it runs inside a fake-cluster pod as the agent would."""

from __future__ import annotations

import asyncio
import os

from prefect import flow, get_run_logger


@flow(name="k3sc-kube-probe", retries=0)
async def probe(mode: str = "ok") -> str:
    """`ok`: report where it runs and finish; `sleep`: stay running until killed."""
    log = get_run_logger()
    log.info("probe running as uid %s in %s, HOME=%s", os.getuid(), os.getcwd(), os.environ.get("HOME"))
    if mode == "sleep":
        await asyncio.sleep(600)
    return f"uid={os.getuid()} cwd={os.getcwd()}"
