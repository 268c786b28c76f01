"""Deterministic fault points for the dispatcher: fail, or SIGKILL it, right before or after a write.

Test-only, and off unless a test launches the dispatcher through `launcher()`: nothing in k3sc
imports this module, so production carries no fault checks. `install()` wraps, in that process
only, the one method every GitHub request goes through (`GitHubClient.request`) and `PrefectAPI`'s
write methods. Each write gets a *point*: the Prefect task it happens in plus what it writes,
e.g. `claim-and-submit / github PUT issues/N/labels` or `hand-off / prefect set_tags`.

Environment of the launched dispatcher:
- `K3SC_WRITE_LOG`: a JSON-lines file; every write appends `{"point", "phase": "done"}` once it
  returned, and a fault appends `{"point", "phase", "action": "fired"}` before it strikes.
- `K3SC_WRITE_FAULTS`: a JSON list of `Fault` dicts, all armed at once. Each strikes at the
  `nth` write of its point in this process (counted per point; of faults at the same write, the
  first listed). A kill ends the process there; a failure raises what the client raises for a
  failed request (GitHubError, OrchestrationError), and the process goes on.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

LOG_ENV = "K3SC_WRITE_LOG"
FAULTS_ENV = "K3SC_WRITE_FAULTS"

Phase = Literal["before", "after"]
Action = Literal["kill", "fail"]

# PrefectAPI methods that write, and which argument names the thing written (None: nothing).
PREFECT_WRITES: dict[str, str | None] = {
    "create_flow_run": "deployment",
    "set_state": "state_type",
    "set_tags": None,
    "create_variable": "name",
    "set_variable": "name",
    "delete_variable": "name",
    "emit_events": None,
    "set_pool_concurrency": None,
}
GITHUB_READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Fault:
    point: str
    phase: Phase = "before"
    action: Action = "kill"
    nth: int = 1

    @property
    def name(self) -> str:
        """How a test case is called: `kill before claim-and-submit / github PUT issues/N/labels`."""
        nth = f" #{self.nth}" if self.nth != 1 else ""
        return f"{self.action} {self.phase} {self.point}{nth}"


def launcher(code: str) -> list[str]:
    """`python -c` argv that installs the faults from the environment, then runs `code`."""
    return [sys.executable, "-c", f"import tests.e2e.write_faults as _f; _f.install()\n{code}"]


def github_kind(method: str, path: str) -> str:
    """`PUT /repos/o/r/issues/7/labels` → `github PUT issues/N/labels` (no repo, no numbers)."""
    shape = re.sub(r"^/?repos/[^/]+/[^/]+/", "", path)
    shape = re.sub(r"/\d+(?=/|$)", "/N", shape)
    return f"github {method} {shape}"


def point_of(kind: str) -> str:
    """The write point: the Prefect task (or flow) the write happens in, and the write."""
    from prefect.context import FlowRunContext, TaskRunContext

    task = TaskRunContext.get()
    if task is not None:
        return f"{task.task.name} / {kind}"
    flow = FlowRunContext.get()
    return f"{flow.flow.name if flow and flow.flow else 'outside a flow'} / {kind}"


class _Faults:
    """The armed faults and per-point counts of one dispatcher process."""

    def __init__(self, log: Path | None, faults: list[Fault]) -> None:
        self.log, self.faults = log, faults
        self.seen: dict[str, int] = {}

    def record(self, entry: dict[str, Any]) -> None:
        if self.log is None:
            return
        with self.log.open("a") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())  # a kill follows: the line must be on disk first

    async def around(
        self, kind: str, write: Callable[[], Awaitable[Any]], error: Callable[[str], Exception]
    ) -> Any:
        point = point_of(kind)
        count = self.seen[point] = self.seen.get(point, 0) + 1
        armed = [f for f in self.faults if f.point == point and f.nth == count]
        self._strike([f for f in armed if f.phase == "before"], error)
        result = await write()
        self.record({"point": point, "phase": "done", "n": count})
        self._strike([f for f in armed if f.phase == "after"], error)
        return result

    def _strike(self, faults: list[Fault], error: Callable[[str], Exception]) -> None:
        """The first of `faults` (in the order armed) strikes, if any; one at a point at a time."""
        if not faults:
            return
        fault = faults[0]
        self.record({**asdict(fault), "fired": True})
        if fault.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise error(f"injected fault: {fault.name}")


_inside = contextvars.ContextVar("write_faults_inside", default=False)


def install(environ: dict[str, str] | None = None) -> None:
    """Wrap the dispatcher's GitHub and Prefect writes in this process (see the module docstring)."""
    from k3sc.errors import GitHubError, OrchestrationError
    from k3sc.github.client import GitHubClient
    from k3sc.orchestration.api import PrefectAPI

    env = os.environ if environ is None else environ
    log = Path(env[LOG_ENV]) if env.get(LOG_ENV) else None
    faults = _Faults(log, [Fault(**f) for f in json.loads(env.get(FAULTS_ENV) or "[]")])

    request = GitHubClient.request

    @functools.wraps(request)
    async def github_request(self: GitHubClient, method: str, path: str, **kwargs: Any) -> Any:
        if method.upper() in GITHUB_READS:
            return await request(self, method, path, **kwargs)
        return await faults.around(
            github_kind(method.upper(), path), lambda: request(self, method, path, **kwargs), GitHubError
        )

    GitHubClient.request = github_request  # type: ignore[method-assign]

    for name, subject in PREFECT_WRITES.items():
        setattr(
            PrefectAPI,
            name,
            _prefect_write(faults, name, subject, getattr(PrefectAPI, name), OrchestrationError),
        )


def _prefect_write(
    faults: _Faults, name: str, subject: str | None, method: Any, error: Callable[[str], Exception]
) -> Any:
    signature = inspect.signature(method)

    @functools.wraps(method)
    async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():  # set_variable's own create_variable is part of the same write
            return await method(self, *args, **kwargs)
        kind = f"prefect {name}"
        if subject is not None:
            kind += f" {signature.bind(self, *args, **kwargs).arguments[subject]}"
        token = _inside.set(True)
        try:
            return await faults.around(kind, lambda: method(self, *args, **kwargs), error)
        finally:
            _inside.reset(token)

    return wrapped
