"""`k3sc up`: the whole loop on one machine, the embedded default.

Uses the Prefect server in `PREFECT_API_URL` if set, otherwise starts one (SQLite under the
k3sc home); creates the work pools, stores the secrets in blocks, deploys both flows, starts
a process worker per pool and the first scan of the self-scheduling chain, then watches
(a worker that dies is restarted; any other child's death stops it).
On Ctrl-C (or once idle with `--until-idle`) it stops everything it started, in order.
With `--sandbox` the same happens against a fake GitHub and the stub agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc import decide, evidence, workflow
from k3sc.config import Config
from k3sc.errors import ConfigError, OrchestrationError
from k3sc.orchestration import database as databases
from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI, server_file
from k3sc.orchestration.stack import LocalStack
from k3sc.services import dispatch

Say = Callable[[str], None]


@dataclass(frozen=True)
class UpOptions:
    sandbox: bool = False
    seed: Path | None = None
    until_idle: bool = False
    timeout: float = 900.0
    port: int | None = None
    database: SecretStr | None = None  # --database; else K3SC_DATABASE_URL or prefect.database


@dataclass
class Session:
    """What this `k3sc up` started, so shutdown stops exactly that."""

    home: Path
    config: Config
    config_path: Path
    stack: LocalStack
    api_url: str = ""
    owned_server: bool = False
    world: Any = None  # k3sc.sandbox.world.World in sandbox mode
    webhook_secret: SecretStr | None = None  # the receiver runs only with one
    webhook_url: str = ""
    started: float = field(default_factory=time.monotonic)
    restarts: dict[str, list[float]] = field(default_factory=dict)  # worker name -> when it was restarted

    def github_environ(self) -> dict[str, str]:
        """Where this process's own GitHub reads find their token and cache (the sandbox's own)."""
        environ = dict(os.environ)
        if self.world is not None:
            environ["GITHUB_TOKEN"] = self.world.token
            environ["K3SC_CACHE_DIR"] = str(self.world.root / "cache")
        return environ


def check_ready(config: Config, source: str) -> None:
    """Refuse to start a loop that could never dispatch anything (exit 2, saying what to set)."""
    if not config.repos:
        raise ConfigError(
            f"no repos to watch: add `repos: [owner/name, ...]` to {source} "
            "(or try `k3sc up --sandbox` to see the loop on demo repos)."
        )
    if not config.allowed_authors:
        raise ConfigError(
            f"no allowed_authors: add `allowed_authors: [your-login, ...]` to {source}; only issues "
            "by these GitHub logins are ever handed to an agent."
        )


def check_agent_host(config: Config) -> str | None:
    """Refuse agent settings this machine cannot honour (exit 2); return a warning worth showing.

    `k3sc up` runs agents as local processes: Kubernetes mode is deployed with `k3sc deploy`, and
    `agent.sandbox: on` needs a working bubblewrap here, found now rather than at the first run.
    """
    from k3sc.agent import confine

    if config.agent.pool == "kubernetes":
        raise ConfigError(
            "agent.pool is kubernetes: agent runs are Jobs in your cluster, which `k3sc deploy` sets up; "
            "`k3sc up` runs agents as local processes (set agent.pool: process to use it)."
        )
    decision = confine.on_this_machine(config.agent.sandbox)
    if decision.error:
        raise ConfigError(decision.error)
    return decision.warning


async def github_token(config: Config) -> SecretStr | None:
    """The token to store in the credentials block (App credentials are read by the flows)."""
    from k3sc.github import credentials

    resolved = await credentials.resolve(config)
    return resolved.token if isinstance(resolved, credentials.TokenCredentials) else None


def agent_env(environ: Mapping[str, str]) -> dict[str, SecretStr]:
    """The Claude and Codex credentials in this environment, for the agent credentials block."""
    from k3sc.agent import prompts
    from k3sc.labels import Family

    return {k: SecretStr(v) for k, v in environ.items() if v and any(prompts.belongs(k, f) for f in Family)}


def prepare(options: UpOptions, say: Say) -> tuple[Session, SecretStr | None]:
    """Build the session: sandbox world or the user's config, and where Prefect lives."""
    home = k3sc_config.k3sc_home()
    if options.sandbox:
        from k3sc.sandbox import world as sandbox

        suffix = secrets.token_hex(2)
        world = sandbox.build(
            home / "sandbox" / "worlds" / suffix, sandbox.load_seed(options.seed), suffix=suffix
        )
        loaded = k3sc_config.load(world.config_path, environ={})
        stack = LocalStack(home / "sandbox")
        session = Session(home, loaded.config, world.config_path, stack, world=world)
        # The sandbox's own hook secret: its fake GitHub signs with it, as GitHub would.
        session.webhook_secret = SecretStr(secrets.token_urlsafe(32))
        say(f"sandbox: fake GitHub at {world.fake.url}, repos {', '.join(str(r) for r in world.repos)}")
        return session, SecretStr(world.token)
    loaded = k3sc_config.load()
    check_ready(loaded.config, str(loaded.path))
    if warning := check_agent_host(loaded.config):
        say(f"warning: {warning}")
    token = asyncio.run(github_token(loaded.config))
    stack = LocalStack(home)
    session = Session(home, loaded.config, loaded.path, stack, webhook_secret=loaded.config.webhook.secret)
    return session, token


def start(session: Session, token: SecretStr | None, options: UpOptions, say: Say) -> None:
    """Server (unless PREFECT_API_URL), pools, blocks, deployments, workers, first scan."""
    stack = session.stack
    stack.extra_env.update({"K3SC_CONFIG": str(session.config_path), "K3SC_HOME": str(session.home)})
    if session.world is not None:
        # The sandbox's HTTP cache must not mix with a real one.
        stack.extra_env["K3SC_CACHE_DIR"] = str(session.world.root / "cache")
    external = os.environ.get("PREFECT_API_URL", "").strip()
    if external:
        stack.api_url = session.api_url = external.rstrip("/")
        say(f"prefect: using the server at {session.api_url}")
        if options.database is not None:
            say("prefect: --database ignored: PREFECT_API_URL names a server k3sc does not start")
    else:
        database = server_database(session, options, os.environ)
        where = databases.redact(database.get_secret_value()) if database else stack.home / "prefect"
        say(f"prefect: starting a local server (data in {where}) ...")
        session.api_url = stack.start_server(port=options.port or default_port(session), database=database)
        session.owned_server = True
        server_file().parent.mkdir(parents=True, exist_ok=True)
        server_file().write_text(json.dumps({"api_url": session.api_url, "pid": os.getpid()}))
    os.environ.update({"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    say("prefect: creating pools, blocks, deployments and automations ...")
    asyncio.run(deploy_all(session, token))
    reaped = asyncio.run(reap_stale_runs(session.api_url, everything=session.owned_server))
    if reaped:
        say(f"prefect: marked {reaped} run(s) left running by an earlier k3sc as crashed")
    for pool in ("k3sc-dispatch", "k3sc-agents"):
        stack.start_worker(pool)
    start_webhook(session, say)
    # The first scan now; it schedules the next one itself (the chain).
    asyncio.run(dispatch.trigger(session.api_url, reason="k3sc up"))


def server_database(session: Session, options: UpOptions, environ: Mapping[str, str]) -> SecretStr | None:
    """The PostgreSQL database for the local server: `--database`, else (the sandbox does not
    read the user's config) K3SC_DATABASE_URL or the config's `prefect.database`; None is SQLite."""
    if options.database is not None:
        return options.database
    if session.world is not None:
        from_env = environ.get(k3sc_config.ENV_DATABASE, "").strip()
        return SecretStr(from_env) if from_env else None
    return session.config.prefect.database


def start_webhook(session: Session, say: Say, timeout: float = 60.0) -> None:
    """The webhook receiver as a child (`k3sc webhook`), when there is a secret to verify with.

    The child reads the secret from the Prefect Secret block `deploy_all` stored, never from its
    environment or argv. In the sandbox the fake GitHub is hooked to it, so label changes travel
    the real path: signed delivery, inbox, Prefect event, trigger, scan.
    """
    from k3sc.orchestration.stack import free_port, spawn, wait_healthy

    if session.webhook_secret is None:
        say(
            "webhook: no secret (K3SC_WEBHOOK_SECRET or webhook.secret), so no receiver: "
            "label changes reach k3sc by polling"
        )
        return
    stack, hook = session.stack, session.config.webhook
    port = free_port() if session.world is not None else hook.port
    env = stack.worker_env({"K3SC_HOME": str(stack.home)})
    env.pop(k3sc_config.ENV_WEBHOOK_SECRET, None)
    argv = [sys.executable, "-m", "k3sc", "webhook", "--host", hook.host, "--port", str(port)]
    process = spawn("webhook", argv, env, stack.log_dir / "webhook.log")
    stack.processes.append(process)
    base = f"http://{hook.host}:{port}"
    wait_healthy(base, timeout, process, path="/healthz")
    session.webhook_url = base + hook.path
    say(f"webhook: receiving GitHub deliveries at {session.webhook_url}")
    if session.world is not None:
        session.world.fake.hook_to(session.webhook_url, session.webhook_secret.get_secret_value())


def default_port(session: Session) -> int | None:
    """Prefect's usual 4200 for the real loop when it is free (a stable UI address); the sandbox
    and a busy 4200 get any free port."""
    import socket

    if session.world is not None:
        return None
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 4200))
        except OSError:
            return None
    return 4200


async def deploy_all(session: Session, token: SecretStr | None) -> None:
    """Pools, credential blocks, both deployments and the zombie automation; unpause dispatch."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from k3sc.orchestration import controls, deploy

    async with PrefectAPI(session.api_url) as api:
        slots = await controls.slots(api, session.config.max_slots)
    with temporary_settings(updates={PREFECT_API_URL: session.api_url}):
        await deploy.ensure_pools(slots)
        await deploy.save_credentials(token, agent_env(os.environ))
        if session.webhook_secret is not None:
            await deploy.save_webhook_secret(session.webhook_secret)
        await asyncio.to_thread(deploy.deploy_flows, session.stack.worker_env())
        await deploy.ensure_zombie_automation()
    async with PrefectAPI(session.api_url) as api:
        await dispatch_state.set_paused(api, False)


async def reap_stale_runs(
    api_url: str,
    *,
    everything: bool,
    stale_after: float = 600.0,
    deployments: tuple[str, ...] = (runs.DISPATCH_DEPLOYMENT, runs.AGENT_DEPLOYMENT),
    why: str = "left running by a k3sc that stopped",
) -> int:
    """Crash k3sc runs whose process is gone, so they free their slot and get handed off.

    On a server this `k3sc up` just started, every run still marked running was left by a k3sc
    that stopped (its processes died with it). On a shared server only dispatch runs older than
    `stale_after` are certain to be dead (a scan takes seconds); agent runs are left to the
    heartbeat automation.
    """
    now = datetime.now(UTC)
    reaped = 0
    async with PrefectAPI(api_url) as api:
        for deployment in deployments:
            if not everything and deployment == runs.AGENT_DEPLOYMENT:
                continue
            deployment_id = await api.deployment_id(deployment)
            live = await api.flow_runs(
                deployment_ids=[deployment_id], state_types=["PENDING", "RUNNING", "CANCELLING"]
            )
            for flow_run in live:
                since = flow_run.start_time or flow_run.created
                if everything or (now - since).total_seconds() > stale_after:
                    await api.set_state(flow_run.id, "CRASHED", message=why, force=True)
                    reaped += 1
    return reaped


def ui_url(api_url: str) -> str:
    return api_url.removesuffix("/api")


def banner(session: Session) -> list[str]:
    config = session.config
    return [
        f"k3sc is up. Prefect UI: {ui_url(session.api_url)}",
        f"watching {len(config.repos)} repo(s): {', '.join(r.repo.full_name for r in config.repos)}",
        f"trusted authors: {', '.join(config.allowed_authors)}; up to {config.max_slots} agents at once",
        f"logs: {session.stack.log_dir}; config: {session.config_path}",
    ]


# --------------------------------------------------------------------------- waiting


async def is_idle(session: Session) -> bool:
    """Nothing in flight and nothing the dispatcher would do now (the same decision it makes)."""
    from k3sc.github import GitHubClient

    config = session.config
    async with PrefectAPI(session.api_url) as api:
        pending = [r for r in await runs.pending_runs(api) if config.repo_config(r.repo) is not None]
        if pending:
            return False
        async with GitHubClient.from_config(config, environ=session.github_environ()) as gh:
            memory = await dispatch_state.load(api)
            facts = await evidence.gather(gh, api, config, memory)
    return decide.decide(facts, config, datetime.now(UTC)).settled


def wait_idle(session: Session, timeout: float, say: Say, poll: float = 3.0) -> bool:
    """Block until two consecutive idle checks, or the timeout; True if idle."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        check_children(session, say)
        streak = streak + 1 if asyncio.run(is_idle(session)) else 0
        if streak >= 2:
            return True
        time.sleep(poll)
    say(f"not idle after {timeout:.0f}s")
    return False


# Which deployment's runs a worker of each pool started (k3sc up starts one worker per pool).
POOL_DEPLOYMENTS = {"k3sc-dispatch": runs.DISPATCH_DEPLOYMENT, "k3sc-agents": runs.AGENT_DEPLOYMENT}
# A worker that dies this often within the window is not coming back: stop rather than spin.
RESTART_LIMIT = 5
RESTART_WINDOW_S = 600.0


def check_children(session: Session, say: Say) -> None:
    """Restart a worker that died (a crash, the OOM killer, a kill); any other child's death is fatal.

    The dead worker's guard ended the flow runs it had started; on a server this `k3sc up` owns
    they are marked crashed before the new worker starts, so they are handed off now instead of
    after the heartbeat automation's 90 s. A worker dying RESTART_LIMIT times within
    RESTART_WINDOW_S stops `k3sc up`, as any other child's death does.
    """
    for process in list(session.stack.processes):
        if process.alive:
            continue
        died = (
            f"{process.name} exited unexpectedly (code {process.popen.returncode}); "
            f"last lines of {process.log_path}:\n{process.log_tail()}"
        )
        pool = process.name.removeprefix("worker ")
        if pool not in POOL_DEPLOYMENTS:
            raise OrchestrationError(died)
        now = time.monotonic()
        recent = [t for t in session.restarts.get(process.name, []) if now - t < RESTART_WINDOW_S]
        if len(recent) >= RESTART_LIMIT:
            raise OrchestrationError(f"{died}\n(restarted {len(recent)} times in {RESTART_WINDOW_S:.0f}s)")
        session.restarts[process.name] = [*recent, now]
        say(f"{process.name} exited (code {process.popen.returncode}); restarting it")
        session.stack.processes.remove(process)
        if session.owned_server:
            try:
                reaped = asyncio.run(
                    reap_stale_runs(
                        session.api_url,
                        everything=True,
                        deployments=(POOL_DEPLOYMENTS[pool],),
                        why=f"its worker died (exit code {process.popen.returncode})",
                    )
                )
            except Exception as exc:  # the heartbeat automation crashes them later instead
                say(f"prefect: could not mark the runs of the dead {process.name}: {exc}")
            else:
                if reaped:
                    say(f"prefect: marked {reaped} run(s) of the dead {process.name} as crashed")
        session.stack.start_worker(pool)


# --------------------------------------------------------------------------- summary


async def summary(session: Session) -> dict[str, Any]:
    """Per issue: labels now and over time, attempts, agents and PR."""
    world = session.world
    entries: dict[str, dict[str, Any]] = {}
    for repo in session.config.repos if world is not None else ():
        owner, name = repo.owner, repo.name
        views = [world.fake.issue_view(owner, name, n) for n in world.fake.numbers(owner, name)]
        pulls = {v["head"]: v["number"] for v in views if v["is_pull"]}  # ascending: the newest wins
        for view in (v for v in views if not v["is_pull"]):
            number = view["number"]
            entries[f"{owner}/{name}#{number}".lower()] = {
                "issue": f"{owner}/{name}#{number}",
                "title": view["title"],
                "author": view["author"],
                "labels": view["labels"],
                "history": [list(h) for h in world.fake.label_history(owner, name, number)],
                "comments": [{"author": c["author"], "body": c["body"]} for c in view["comments"]],
                "pr": pulls.get(session.config.safety.branch_for(number)),
            }
    async with PrefectAPI(session.api_url) as api:
        histories = workflow.histories(await runs.runs_for_issues(api, list(entries)))
    for ref, entry in entries.items():
        attempts = histories.get(ref, workflow.History()).runs
        entry["attempts"] = [
            {
                "kind": r.kind.value,
                "attempt": r.attempt,
                "agent": r.agent,
                "state": r.phase.value,
                "outcome": r.outcome.value if r.outcome else None,
                "message": r.message,
            }
            for r in attempts
        ]
        entry["agents"] = sorted({r.agent for r in attempts})
    return {
        "owner": world.owner if world else None,
        "prefect_ui": ui_url(session.api_url),
        "elapsed_s": round(time.monotonic() - session.started, 1),
        "issues": list(entries.values()),
    }


# --------------------------------------------------------------------------- shutdown


async def _active_agents(session: Session) -> list[str]:
    """Ids of this session's agent runs still waiting or running."""
    async with PrefectAPI(session.api_url) as api:
        repos = {r.repo.key for r in session.config.repos}
        return [r.id for r in await runs.pending_runs(api) if r.phase.active and r.repo.key in repos]


async def _cancel_agents(session: Session, say: Say, patience: float) -> int:
    """Ask Prefect to cancel this session's in-flight agent runs and wait, up to `patience`
    seconds, for the worker to end them (it polls cancellations every few seconds); returns
    how many are still active."""
    active = await _active_agents(session)
    if active:
        say(f"cancelling {len(active)} agent run(s) ...")
    async with PrefectAPI(session.api_url) as api:
        for run_id in active:
            await api.set_state(run_id, "CANCELLING", message="k3sc up is shutting down")
    deadline = time.monotonic() + patience
    while active and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        active = await _active_agents(session)
    return len(active)


def shutdown(session: Session, say: Say) -> None:
    """Stop what we started: agents, workers, server, fake GitHub, within about 30 s.

    Runs the workers could not finish are marked crashed before the server goes, so the next
    `k3sc up` neither waits for a dead dispatcher's concurrency slot nor forgets a hand-off.
    """
    try:
        if session.api_url:
            left = asyncio.run(_cancel_agents(session, say, patience=12.0))
            if left:
                say(f"{left} agent run(s) did not stop in time; they are marked crashed")
    except Exception as exc:
        say(f"could not cancel agent runs: {exc}")
    session.stack.stop_workers(grace=8.0)
    try:
        if session.api_url:
            asyncio.run(reap_stale_runs(session.api_url, everything=True))
    except Exception as exc:
        say(f"could not mark interrupted runs: {exc}")
    session.stack.stop(grace=8.0)
    if session.owned_server:
        server_file().unlink(missing_ok=True)
    if session.world is not None:
        session.world.stop()
    say("k3sc stopped.")
