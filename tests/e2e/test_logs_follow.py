"""`k3sc logs -f` on a real agent run: the stub agent's lines show within 2 s, and it exits 0 when the
run succeeds.

The stub (`budget=60000`: sixty "Still working" messages, ten a second, then a real commit, push and
PR) is run by a real process worker from the `k3sc-agent` deployment; its flow relays each line into
Prefect's log as the agent prints it. The latency of a line is the moment the test read it from the
follower's stdout minus the log record's timestamp (when the flow logged it, on this machine's
clock): an upper bound that includes the follower's pipe and this test's reading thread.
"""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from k3sc.models import RunPhase
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from tests.e2e.helpers import deployed_world

pytestmark = pytest.mark.e2e

DISPATCH = [
    sys.executable,
    "-c",
    "import asyncio; from flows.dispatch import dispatch; asyncio.run(dispatch(force=True))",
]
MARK = "Still working ("


def test_follow_shows_the_agents_lines_within_two_seconds(tmp_path: Path, prefect_api_url: str) -> None:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "follow",
            "allowed_authors": ["alice"],
            "repos": [
                {"name": "api", "issues": [{"title": "chatty", "author": "alice", "stub": "budget=60000"}]}
            ],
        },
    )
    env = deployed.env
    ref = f"{deployed.world.repos[0].key}#1"
    try:
        deployed.session.stack.start_worker("k3sc-agents")
        subprocess.run(DISPATCH, env=env, check=True, capture_output=True, timeout=300)
        run_id = _wait_until_running(prefect_api_url, ref, within=240)
        follower = subprocess.Popen(
            [sys.executable, "-m", "k3sc", "logs", "-f", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        received: queue.Queue[tuple[float, str]] = queue.Queue()

        def pump(stream: Any) -> None:
            for line in stream:
                received.put((time.time(), line.rstrip("\n")))

        reader = threading.Thread(target=pump, args=(follower.stdout,), daemon=True)
        reader.start()
        try:
            code = follower.wait(timeout=300)
        finally:
            if follower.poll() is None:
                follower.kill()
            reader.join(timeout=10)
            assert follower.stdout is not None and follower.stderr is not None
            stderr = follower.stderr.read()
            follower.stdout.close()
            follower.stderr.close()
        assert code == 0, stderr
        assert "run ended: completed" in stderr

        shown = [received.get_nowait() for _ in range(received.qsize())]
        logged = {r.message: r.timestamp.timestamp() for r in asyncio.run(_log(prefect_api_url, run_id))}
        first_read = shown[0][0]
        # Lines logged before the follower's first read were there already; the rest came live.
        live = [
            (at - logged[text.split(" ", 1)[1]], text)
            for at, text in shown
            if MARK in text and logged[text.split(" ", 1)[1]] > first_read
        ]
        assert len(live) >= 10, f"too few lines seen live: {shown}"
        worst = max(latency for latency, _ in live)
        print(f"{len(live)} lines seen live; worst latency {worst:.2f} s")
        assert worst <= 2.0, sorted(live)[-5:]
    finally:
        deployed.stop()


def _wait_until_running(api_url: str, ref: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [r for r in asyncio.run(_history(api_url, ref)) if r.phase is RunPhase.RUNNING]
        if found:
            return found[0].id
        time.sleep(0.5)
    raise AssertionError(f"no running agent run for {ref} within {within} s")


async def _history(api_url: str, ref: str) -> list[Any]:
    async with PrefectAPI(api_url) as api:
        return await runs.runs_for_issues(api, [ref])


async def _log(api_url: str, run_id: str) -> list[Any]:
    async with PrefectAPI(api_url) as api:
        return await api.logs(run_id)
