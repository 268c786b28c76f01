"""The real agent flow, `flows.agent.agent`, run for tests in a process of its own.

A worker runs each agent attempt as a fresh flow-run process; this does the same, minus the
worker: one long-lived child process (`python -m tests.agent_flow`) takes one run request per
line on stdin and calls the flow, so a test pays Prefect's import once per module, not per run.
The child is separate because Prefect's client leaves sockets unclosed in the process that runs
a flow, which pytest would report as errors in whichever test happens to collect them.

What a run did is then read back the way k3sc reads it: the final state from the Prefect API,
the usage artifact the flow publishes, and the log lines it relayed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from k3sc import usage
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Ended:
    """One agent run as Prefect recorded it."""

    run: FlowRun
    usage: usage.UsageRecord
    lines: tuple[str, ...]  # the flow's log messages, oldest first

    @property
    def state(self) -> tuple[str, str | None, str]:
        """(type, name, message) of the final state."""
        state = self.run.state
        assert state is not None
        return state.type, state.name, state.message or ""


class AgentFlowProcess:
    """The child process that runs agent flows; `run` one, `close` when done."""

    def __init__(self, api_url: str, env: Mapping[str, str]) -> None:
        self.api_url = api_url
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.agent_flow"],
            cwd=ROOT,
            env={**os.environ, **env, "PREFECT_API_URL": api_url},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, env: Mapping[str, str], github_token: str, **parameters: Any) -> Ended:
        """Run the agent flow with `parameters` (repo, issue, kind, agent, attempt, pr), the
        per-test `env` (K3SC_CONFIG, K3SC_HOME, ...) and `github_token` in the `k3sc-github`
        block, as `k3sc up` stores it; return what Prefect recorded."""
        child_in, child_out = self._pipes()
        request = {"env": dict(env), "github_token": github_token, "parameters": parameters}
        child_in.write(json.dumps(request) + "\n")
        child_in.flush()
        answer = child_out.readline()
        if not answer:
            raise RuntimeError(f"the agent flow process ended (exit {self._child.wait(timeout=10)})")
        run_id = json.loads(answer)["run_id"]
        return asyncio.run(self._read(run_id))

    async def _read(self, run_id: str) -> Ended:
        async with PrefectAPI(self.api_url) as api:
            run = await api.flow_run(run_id)
            assert run is not None, f"no flow run {run_id}"
            body = {"artifacts": {"key": {"any_": [usage.USAGE_ARTIFACT_KEY]},
                                  "flow_run_id": {"any_": [run_id]}}}  # fmt: skip
            (artifact,) = await api.post_json("artifacts/filter", body)
            record = usage.UsageRecord.from_artifact_data(str(artifact["data"]))
            lines = tuple(r.message for r in await api.logs(run_id))
        return Ended(run, record, lines)

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self._child.stdin is not None and self._child.stdout is not None
        return self._child.stdin, self._child.stdout

    def close(self) -> None:
        """End the child (its stdin closes) and release both pipes."""
        child_in, child_out = self._pipes()
        child_in.close()
        try:
            self._child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        child_out.close()


# --------------------------------------------------------------------------- the child


def serve() -> None:
    """Run one agent flow per request line; answer each with its flow run id once its logs and
    events have reached the server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler
    from pydantic import SecretStr

    from blocks.credentials import GITHUB_BLOCK, GitHubCredentials
    from flows.agent import agent

    async def one(request: dict[str, Any]) -> Any:
        token = GitHubCredentials(token=SecretStr(request["github_token"]))
        await token.asave(GITHUB_BLOCK, overwrite=True)
        return await agent(**request["parameters"], return_state=True)

    for line in sys.stdin:
        request = json.loads(line)
        os.environ.update(request["env"])
        state = asyncio.run(one(request))
        APILogHandler().flush()
        EventsWorker.drain_all(timeout=10)
        print(json.dumps({"run_id": str(state.state_details.flow_run_id)}), flush=True)


if __name__ == "__main__":
    serve()
