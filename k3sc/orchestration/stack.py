"""Start and stop the local pieces of the embedded default: a Prefect server and process workers.

`k3sc up`, the test suite and the benchmarks all run the same real processes this module
starts, with telemetry off (Prefect otherwise reports usage to its vendor), a 1 s worker poll (the
default 10 s poll would add up to 10 s to every hand-off) and flow heartbeats so a killed run is detected.
Each child gets its own session so Ctrl-C in a terminal reaches k3sc first, and k3sc stops
them in order: workers (one signal, a bounded wait, then SIGKILL of all they started), then
server. Each runs under `k3sc.orchestration.guard`, which ends it and everything it started
when `k3sc up` dies without stopping them (SIGKILL, OOM): the next `k3sc up` finds its port free.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from k3sc.config import SECRET_ENV_VARS
from k3sc.errors import OrchestrationError
from k3sc.orchestration import database as databases
from k3sc.orchestration import guard

TELEMETRY_OFF = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

# Settings every process k3sc starts shares (server, workers, and through them the flow runs).
COMMON_SETTINGS = {
    **TELEMETRY_OFF,
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "1",
}

SERVER_SETTINGS = {
    # Live log following (`k3sc logs -f`, `k3sc top`) needs both.
    "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
    # SQLite under a burst of flow runs: wait for locks longer before answering 503.
    "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
    # Deployment concurrency leases survive a server restart.
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
    # Prefect's default, pinned: OWN_SERVER_CLIENT relies on it.
    "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "false",
}

# For workers and flow runs talking to the server k3sc started itself: no CSRF token to fetch (its
# protection is off) and no version handshake (same installation). Each costs a request per client
# a flow run opens, about 12 of the ~135 Prefect requests an issue took (bench/loop_scale.py).
OWN_SERVER_CLIENT = {
    "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
    "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false",
}

WORKER_SETTINGS = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "10",
    # Heartbeats let the zombie automation crash runs whose process died (k3sc's deploy step).
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "PREFECT_WORKER_ENABLE_CANCELLATION": "true",
    "PREFECT_WORKER_CANCELLATION_POLL_SECONDS": "5",
}


@dataclass(frozen=True)
class RedisBus:
    """The Redis that lets several Prefect server processes act as one (prefect-redis).

    With more than one server process, what a single server keeps in memory must be shared:
    events (an event posted to any API server reaches the one services process that evaluates
    automations), the automations' causal ordering, deployment concurrency leases (the
    dispatcher's single slot), Docket's background work and the worker cleanup queue. One
    Redis database holds all of it; Docket and prefect-redis use distinct key prefixes.
    No password: this is the loopback Redis of one machine (a URL with one would be a secret).
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    def settings(self) -> dict[str, str]:
        """What every server process (API and services alike) needs to share this Redis."""
        endpoint = {"HOST": self.host, "PORT": str(self.port), "DB": str(self.db)}
        return {
            "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
            "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
            "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE": "prefect_redis.cleanup_queue",
            "PREFECT_SERVER_DOCKET_URL": self.url,
            **{f"PREFECT_REDIS_MESSAGING_{k}": v for k, v in endpoint.items()},
            **{f"PREFECT_REDIS_WORKER_CLEANUP_QUEUE_{k}": v for k, v in endpoint.items()},
        }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def prefect_executable() -> list[str]:
    """The `prefect` CLI of this interpreter's environment."""
    return [sys.executable, "-m", "prefect"]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process k3sc starts: this one's, minus secrets, plus Prefect's settings.

    Credentials reach flows through Prefect blocks, never through the environment, so no server,
    worker or flow-run process shows them in /proc/<pid>/environ.
    """
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV_VARS}
    env.update(COMMON_SETTINGS)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let the flow subprocesses reuse compiled modules
    env.update(extra or {})
    return env


@dataclass
class ManagedProcess:
    """A child process k3sc started and must stop."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """One polite signal, a bounded wait, then SIGKILL of everything it started."""
        stop_all([self], grace, sig)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all(processes: list[ManagedProcess], grace: float, sig: int = signal.SIGTERM) -> None:
    """Stop `processes` together, so their waits overlap: the sum of graces could pass 30 s.

    Only the process itself gets the first signal (through its guard): a Prefect worker then
    stops polling and lets the flow runs it started finish (a signal to the whole group would
    kill them mid-state-write and leave them Running in Prefect, holding the dispatcher's
    concurrency slot). After `grace`, the guard kills all it watches; SIGKILL of the process
    group is the last resort, should the guard itself not answer.
    """
    alive = [p for p in processes if p.alive]
    for process in alive:
        process.signal(sig)
    _wait_all(alive, grace)
    for process in alive:
        process.signal(guard.KILL_NOW)
    _wait_all(alive, 10.0)
    for process in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)
    _wait_all(alive, 10.0)


def _wait_all(processes: list[ManagedProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=max(deadline - time.monotonic(), 0.0))


def spawn(
    name: str, argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> ManagedProcess:
    """Start `argv` under a guard, in its own session, with output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", guard.__name__, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**env, guard.PARENT_ENV: str(os.getpid())},
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    return ManagedProcess(name, popen, log_path)


@dataclass
class LocalStack:
    """A local Prefect server (optional) and the workers serving k3sc's pools."""

    home: Path
    api_url: str | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    started_server: bool = False  # this stack started the server at api_url (start_server, start_scaled)
    database: SecretStr | None = None  # the server's PostgreSQL database, if not SQLite

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def start_server(
        self, *, port: int | None = None, timeout: float = 180.0, database: SecretStr | None = None
    ) -> str:
        """Start `prefect server start` on loopback; return the API URL.

        Its data lives in SQLite under `home`, or in the PostgreSQL `database` (created if absent),
        whose URL reaches the server through its environment, never its command line.
        """
        if database is not None:
            asyncio.run(databases.ensure(database))
        server, api_url = self._spawn_server("prefect-server", port, database)
        self.api_url, self.started_server, self.database = api_url, True, database
        wait_healthy(api_url, timeout, server)
        return api_url

    def start_scaled(
        self, database: SecretStr, redis: RedisBus, *, servers: int = 2, timeout: float = 180.0
    ) -> list[str]:
        """Prefect's own scale-out shape: `servers` API-only servers and one services process,
        all on one PostgreSQL `database` and one Redis; returns the API URLs (the first becomes
        this stack's).

        The first server migrates the database; the others start after it, with migrations
        off, so two never race on a fresh schema. The services process (scheduler, automations,
        event persister, lease repossessor, ...) serves no HTTP: it is started and kept alive.
        """
        asyncio.run(databases.ensure(database))
        shared = redis.settings()
        first, url = self._spawn_server("prefect-api-1", None, database, shared, api_only=True)
        wait_healthy(url, timeout, first)
        shared["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
        started = [(first, url)]
        for n in range(2, servers + 1):
            started.append(self._spawn_server(f"prefect-api-{n}", None, database, shared, api_only=True))
        env = self._server_env("prefect-services", None, database, shared)
        argv = [*prefect_executable(), "server", "services", "start"]
        self.processes.append(spawn("prefect-services", argv, env, self.log_dir / "prefect-services.log"))
        for process, api_url in started[1:]:
            wait_healthy(api_url, timeout, process)
        self.api_url, self.started_server = url, True
        return [api_url for _, api_url in started]

    def _server_env(
        self,
        name: str,
        api_url: str | None,
        database: SecretStr | None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """A server process's environment: its own PREFECT_HOME, the database URL (a secret: in
        the environment, never on the command line), `extra` over the defaults."""
        prefect_home = self.home / ("prefect" if name == "prefect-server" else name)
        prefect_home.mkdir(parents=True, exist_ok=True)
        env = child_env(
            {**SERVER_SETTINGS, "PREFECT_HOME": str(prefect_home), **(extra or {}), **self.extra_env}
        )
        env.pop("PREFECT_API_URL", None)
        # The UI asks /ui-settings where its API is; unset, Prefect answers with port 4200
        # whatever port the server listens on, and the UI shows no runs.
        env.pop("PREFECT_UI_API_URL", None)
        if api_url:
            env["PREFECT_SERVER_UI_API_URL"] = api_url
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
        if database is not None:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = databases.server_url(database).get_secret_value()
        return env

    def _spawn_server(
        self,
        name: str,
        port: int | None,
        database: SecretStr | None,
        extra: Mapping[str, str] | None = None,
        *,
        api_only: bool = False,
    ) -> tuple[ManagedProcess, str]:
        port = port or free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = self._server_env(name, api_url, database, extra)
        argv = [*prefect_executable(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        if api_only:
            argv.append("--no-services")
        log = "server.log" if name == "prefect-server" else f"{name}.log"
        server = spawn(name, argv, env, self.log_dir / log)
        self.processes.append(server)
        return server, api_url

    def restart_server(self, *, grace: float = 10.0, timeout: float = 180.0) -> str:
        """Stop the server started here and start it again on the same port and database.

        What an upgrade or a crash-and-restart does to the workers and flow runs: their API is
        gone for a while, then back at the same address with the same data.
        """
        server = next((p for p in self.processes if p.name == "prefect-server"), None)
        if server is None or not self.api_url:
            raise OrchestrationError("no Prefect server was started here to restart")
        stop_all([server], grace)
        self.processes.remove(server)
        port = urlsplit(self.api_url).port
        return self.start_server(port=port, timeout=timeout, database=self.database)

    def worker_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        if not self.api_url:
            raise OrchestrationError("no Prefect API URL: start or name a server first")
        own = OWN_SERVER_CLIENT if self.started_server else {}
        return child_env(
            {**WORKER_SETTINGS, **own, "PREFECT_API_URL": self.api_url, **self.extra_env, **(extra or {})}
        )

    def start_worker(
        self,
        pool: str,
        *,
        env: Mapping[str, str] | None = None,
        api_url: str | None = None,
        name: str | None = None,
    ) -> ManagedProcess:
        """Start a process worker polling `pool`, through `api_url` (else this stack's server).

        `name` tells apart several workers on one pool (Prefect keys a pool's workers by name).
        """
        label = f"worker {pool}" + (f" ({name})" if name else "")
        name = name or f"k3sc-{pool}"
        argv = [*prefect_executable(), "worker", "start", "--pool", pool, "--type", "process", "--name", name]
        extra = {**(env or {}), **({"PREFECT_API_URL": api_url} if api_url else {})}
        log = self.log_dir / ("worker-" + name.removeprefix("k3sc-") + ".log")
        worker = spawn(label, argv, self.worker_env(extra), log)
        self.processes.append(worker)
        return worker

    def stop_workers(self, grace: float = 10.0) -> None:
        """Stop the workers started here (the server keeps running)."""
        workers = [p for p in self.processes if p.name.startswith("worker")]
        stop_all(workers, grace)
        self.processes = [p for p in self.processes if p not in workers]

    def stop(self, grace: float = 10.0) -> None:
        """Stop everything started here: the workers, then the server."""
        self.stop_workers(grace)
        stop_all(self.processes, grace)
        self.processes.clear()


def wait_healthy(
    api_url: str, timeout: float, process: ManagedProcess | None = None, path: str = "/health"
) -> None:
    """Poll `path` (Prefect's `/health`) until it answers, the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive:
            raise OrchestrationError(
                f"{process.name} exited with code {process.popen.returncode}:\n{process.log_tail()}"
            )
        try:
            if httpx.get(f"{api_url}{path}", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise OrchestrationError(f"{api_url}{path} not healthy after {timeout:.0f}s")
