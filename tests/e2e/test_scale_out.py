"""Prefect scaled out on its own means: k3sc's invariants hold across two API servers.

Prefect's documented high-availability shape (README "Scaling out"): two `prefect server start
--no-services` API servers and one `prefect server services start` process on one fresh
PostgreSQL database, sharing events, causal ordering, concurrency leases and Docket through one
Redis database (prefect-redis). A dispatch worker and an agent worker talk to server A, another
of each to server B, so scans and agent runs, their state changes and the events those emit
go through both. The sandbox loop runs to idle, then:

- one dispatcher at a time: no two dispatch runs were ever Running at once (from the state
  history in PostgreSQL, not from any one server's view);
- no duplicate claims: one agent run per (issue, kind, attempt), each issue claimed once per
  step on GitHub, and every issue at needs-human;
- review leases are atomic across servers: `k3sc take` processes racing through A and B for the
  loop's PRs reserve each PR at most once and each worker at most once;
- an event posted to server B fires the dispatch deployment's trigger, evaluated by the services
  process (which serves no HTTP), and the scan it starts is visible through server A.

PostgreSQL (127.0.0.1:5432, user postgres, trust) and Redis (127.0.0.1:6379) run on the
machines this runs on; a fresh database and an empty Redis database are taken for this test
and dropped or flushed afterwards. Without either server the test is skipped, saying which.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis
from pydantic import SecretStr

from k3sc.labels import is_owner_label
from k3sc.orchestration import controls, events, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun
from k3sc.orchestration.stack import LocalStack, ManagedProcess, RedisBus
from k3sc.services import dispatch, up
from tests.e2e.helpers import Deployed, agent_runs, deployed_world

pytestmark = pytest.mark.e2e

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS = ("127.0.0.1", 6379)
CLAIM = "k3sc:e2e-claim"  # the first key in an empty Redis database marks it as this test's
ISSUES_PER_REPO = 3
SLOTS = 4
OPEN_TO_TAKE = 3  # PRs left eligible for `k3sc take` (the others are marked waiting)
TAKERS_PER_SERVER = 3  # twice as many takers as PRs: some must lose the race


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


async def _sql(query: str, *args: Any, database: str = "postgres") -> list[Any]:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", database=database, timeout=10
    )
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


@pytest.fixture
def database() -> Iterator[tuple[str, SecretStr]]:
    """A fresh database name and its URL (the stack creates it), dropped afterwards."""
    if not _reachable(PG_HOST, PG_PORT):
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    name = f"k3sc_scale_{secrets.token_hex(4)}"
    try:
        yield name, SecretStr(f"postgresql://postgres@127.0.0.1:5432/{name}")
    finally:
        asyncio.run(_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_bus() -> Iterator[RedisBus]:
    """An empty Redis database (1-15), claimed with a marker key, flushed afterwards."""
    if not _reachable(*REDIS):
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    token = secrets.token_hex(8)
    for db in random.sample(range(1, 16), 15):
        client = redis.Redis(host=REDIS[0], port=REDIS[1], db=db, socket_connect_timeout=2)
        if client.set(CLAIM, token, nx=True):
            if client.dbsize() == 1:
                break
            client.delete(CLAIM)  # someone else's data is there: not ours to use
        client.close()
    else:
        pytest.skip("no empty Redis database among 1-15")
    try:
        yield RedisBus(host=REDIS[0], port=REDIS[1], db=db)
    finally:
        client.flushdb()
        client.close()


@dataclass
class Scaled:
    stack: LocalStack  # the API servers and the services process
    deployed: Deployed  # the sandbox world, k3sc deployed, and the workers
    a: str
    b: str
    database: str
    workers: dict[str, ManagedProcess]


@pytest.fixture
def scaled(
    tmp_path: Path, database: tuple[str, SecretStr], redis_bus: RedisBus, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scaled]:
    name, url = database
    # The services process logs each event a trigger covers at INFO: evidence when a trigger fails.
    monkeypatch.setenv("PREFECT_LOGGING_SERVER_LEVEL", "INFO")
    stack = LocalStack(tmp_path / "prefect")
    try:
        began = time.monotonic()
        a, b = stack.start_scaled(url, redis_bus, servers=2, timeout=240.0)
        print(f"two API servers and the services process up in {time.monotonic() - began:.1f} s")
        seed = {
            "owner": "scale",
            "max_slots": SLOTS,
            "allowed_authors": ["alice"],
            "repos": [
                {
                    "name": repo,
                    "issues": [
                        {"title": f"{repo} {n}", "author": "alice"} for n in range(1, ISSUES_PER_REPO + 1)
                    ],
                }
                for repo in ("north", "south")
            ],
        }
        deployed = deployed_world(tmp_path, a, seed)
    except BaseException:
        stack.stop()
        raise
    try:
        workers = {
            f"{pool}-{side}": deployed.session.stack.start_worker(
                f"k3sc-{pool}", api_url=api, name=f"k3sc-{pool}-{side}"
            )
            for side, api in (("a", a), ("b", b))
            for pool in ("dispatch", "agents")
        }
        yield Scaled(stack, deployed, a, b, name, workers)
    finally:
        deployed.stop()
        stack.stop()


def test_two_api_servers_one_services_process_keep_every_invariant(scaled: Scaled) -> None:
    deployed, session = scaled.deployed, scaled.deployed.session
    _wait_started(scaled.workers.values())  # a worker still importing Prefect would get no work
    began = time.monotonic()
    asyncio.run(dispatch.trigger(scaled.b, reason="scale-out test"))  # the first scan, through B
    assert up.wait_idle(session, timeout=300, say=print), "the loop did not settle"
    looped = time.monotonic() - began
    summary = asyncio.run(up.summary(session))

    assert len(summary["issues"]) == 2 * ISSUES_PER_REPO
    for row in summary["issues"]:
        assert row["labels"] == ["needs-human"], row
        assert [(a["kind"], a["attempt"], a["outcome"]) for a in row["attempts"]] == [
            ("implement", 1, "success"),
            ("review", 1, "success"),
        ], row
        owners = [step for step in row["history"] if any(is_owner_label(x) for x in step)]
        assert len(owners) == 2, row["history"]  # claimed once to implement, once to review

    # No duplicate claims, read back through the other server than the one the loop watched.
    recorded = agent_runs(scaled.b, summary)
    attempts = collections.Counter((r.issue_key, r.kind, r.attempt) for r in recorded)
    assert len(recorded) == 2 * len(summary["issues"])
    assert max(attempts.values()) == 1, "an attempt ran twice"
    assert runs.peak_concurrency(recorded) <= SLOTS

    # The work really was spread over both servers' workers (which of a pool's two workers
    # gets a run is a race), and where two reached for the same run the server let one have
    # it: the other's submission was aborted, no run was started twice.
    started = {name: _started(worker) for name, worker in scaled.workers.items()}
    for side in ("a", "b"):
        assert started[f"dispatch-{side}"] | started[f"agents-{side}"], started
    assert sum(len(ids) for ids in started.values()) == len(set().union(*started.values()))
    assert {r.id for r in recorded} == started["agents-a"] | started["agents-b"]
    lost = sum(_aborted(worker) for worker in scaled.workers.values())

    # One dispatcher at a time, from the state history in the shared database.
    intervals = asyncio.run(_dispatch_running_intervals(scaled.database))
    overlaps = [
        (x, y) for i, x in enumerate(intervals) for y in intervals[i + 1 :] if x[1] < y[2] and y[1] < x[2]
    ]
    assert len(intervals) >= 2 and overlaps == [], overlaps
    cancelled = asyncio.run(_dispatch_runs_cancelled(scaled.database))

    # Review leases: takers through A and B race for a few of the loop's PRs.
    for row in summary["issues"][OPEN_TO_TAKE:]:
        owner, name = row["issue"].split("#")[0].split("/")
        deployed.world.fake.set_labels(owner, name, row["pr"], ["waiting"])
    taken, raced = _race_takers(deployed, scaled.a, scaled.b)
    assert len(taken) == OPEN_TO_TAKE, taken
    assert len({(t["repo"], t["pr"]) for t in taken}) == len(taken), "a PR was reserved twice"
    assert len({t["worker"] for t in taken}) == len(taken)
    held = asyncio.run(_leases(scaled.a))
    assert held == sorted((t["repo"], t["pr"], t["worker"]) for t in taken)

    # An event posted to B starts a scan: the services process evaluated the trigger.
    triggered = _trigger_through(
        scaled.b, scaled.a, deployed.world.owner, scaled.stack.log_dir, scaled.database
    )

    print(
        f"loop to idle {looped:.1f} s; {len(recorded)} agent runs; runs started per worker "
        f"{ {name: len(ids) for name, ids in started.items()} }, {lost} submissions lost to another worker; "
        f"{len(intervals)} dispatch runs ran, none overlapping, {cancelled} cancelled as collisions; "
        f"{len(taken)} leases from {2 * TAKERS_PER_SERVER} racing takers in {raced:.1f} s; "
        f"event on B to scan created {triggered:.1f} s"
    )


def _wait_started(workers: Iterable[ManagedProcess], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        while "started!" not in worker.log_path.read_text(errors="replace"):
            assert worker.alive, worker.log_tail()
            assert time.monotonic() < deadline, f"{worker.name} not started within {timeout:.0f} s"
            time.sleep(0.2)


def _started(worker: ManagedProcess) -> set[str]:
    """Ids of the runs a worker submitted and the server did not take back."""
    log = worker.log_path.read_text(errors="replace")
    submitted = set(re.findall(r"submitting flow run '([0-9a-f-]+)'", log))
    return submitted - set(re.findall(r"Aborted submission of flow run '([0-9a-f-]+)'", log))


def _aborted(worker: ManagedProcess) -> int:
    return len(re.findall(r"Aborted submission of flow run", worker.log_path.read_text(errors="replace")))


async def _dispatch_running_intervals(database: str) -> list[tuple[str, datetime, datetime]]:
    """(run, Running since, left Running) for every dispatch run that ran, from its state history."""
    rows = await _sql(
        "SELECT s.flow_run_id, s.type, s.timestamp FROM flow_run_state s "
        "JOIN flow_run r ON r.id = s.flow_run_id JOIN deployment d ON d.id = r.deployment_id "
        "WHERE d.name = 'k3sc-dispatch' ORDER BY s.flow_run_id, s.timestamp",
        database=database,
    )
    history: dict[str, list[tuple[str, datetime]]] = collections.defaultdict(list)
    for row in rows:
        history[str(row["flow_run_id"])].append((row["type"], row["timestamp"]))
    intervals = []
    for run_id, states in history.items():
        for (kind, since), following in zip(states, [*states[1:], None], strict=True):
            if kind == "RUNNING":
                intervals.append((run_id, since, following[1] if following else datetime.now(UTC)))
    return sorted(intervals, key=lambda interval: interval[1])


async def _dispatch_runs_cancelled(database: str) -> int:
    rows = await _sql(
        "SELECT count(*) FROM flow_run r JOIN deployment d ON d.id = r.deployment_id "
        "WHERE d.name = 'k3sc-dispatch' AND r.state_type = 'CANCELLED'",
        database=database,
    )
    return int(rows[0][0])


def _race_takers(deployed: Deployed, a: str, b: str) -> tuple[list[dict[str, Any]], float]:
    """`k3sc take` processes, half through A and half through B, started together."""
    argv = [sys.executable, "-m", "k3sc", "take", "--json", "--worker"]
    takers = [
        (f"{family}-{n}", api)
        for n in range(1, TAKERS_PER_SERVER + 1)
        for api, family in ((a, "claude"), (b, "codex"))
    ]
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [*argv, worker],
            env={**deployed.env, "PREFECT_API_URL": api},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker, api in takers
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    raced = time.monotonic() - began
    assert all(code == 0 for code, _, _ in results), results
    return [json.loads(out) for _, out, _ in results if json.loads(out) is not None], raced


async def _leases(api_url: str) -> list[tuple[str, int, str]]:
    async with PrefectAPI(api_url) as api:
        held = await controls.read(api)
    return sorted((lease.repo.full_name, lease.pr, lease.worker) for lease in held.leases)


def _trigger_through(post_to: str, read_from: str, owner: str, logs: Path, database: str) -> float:
    """Post a `github.ping` event to one server; seconds until the scan it triggers exists on the other."""
    event = events.from_github("ping", {"organization": {"login": owner}}, str(uuid.uuid4()))
    assert event is not None
    reason = f"github.ping on {owner}"
    posted = time.monotonic()

    async def post() -> int:
        async with PrefectAPI(post_to) as api:
            return await api.emit_events([event])

    assert asyncio.run(post()) == 204
    patience = 180  # typically a few seconds; generous because busy CI hosts have run 3x slower
    deadline = posted + patience
    while time.monotonic() < deadline:
        if [r for r in asyncio.run(_scans(read_from)) if r.parameters.get("reason") == reason]:
            return time.monotonic() - posted
        time.sleep(0.5)
    stored = asyncio.run(_stored(read_from, event["id"], since=datetime.now(UTC) - timedelta(hours=1)))
    services = (logs / "prefect-services.log").read_text(errors="replace").splitlines()
    # A services process stuck on a lock shows here: sessions that are not idle, and what they wait on.
    busy = asyncio.run(
        _sql(
            "select pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 120) "
            "from pg_stat_activity where datname = $1 and state <> 'idle'",
            database,
        )
    )
    raise AssertionError(
        f"no scan for {reason!r} within {patience} s of posting the event to {post_to}; the event was "
        f"{'stored' if stored else 'not stored'}; busy database sessions: {[tuple(row) for row in busy]}; "
        "the services process's lines about it and its last lines:\n"
        + "\n".join(
            [line for line in services if "github.ping" in line or "ERROR" in line][-20:] + services[-30:]
        )
    )


async def _stored(api_url: str, event_id: str, since: datetime) -> bool:
    async with PrefectAPI(api_url) as api:
        return any(e.get("id") == event_id for e in await api.events(["github.ping"], since, limit=50))


async def _scans(api_url: str) -> list[FlowRun]:
    async with PrefectAPI(api_url) as api:
        deployment = await api.deployment_id(runs.DISPATCH_DEPLOYMENT)
        return await api.flow_runs(deployment_ids=[deployment], limit=50)
