"""Small parts of `k3sc up`: which secrets it stores, the credential blocks' masking, which
database its Prefect server gets, and how it supervises the processes it started."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.credentials import AgentCredentials, GitHubCredentials
from k3sc.config import Config
from k3sc.errors import OrchestrationError
from k3sc.orchestration import runs
from k3sc.orchestration.stack import LocalStack, ManagedProcess
from k3sc.services import up


def test_only_agent_credentials_are_copied_into_the_block() -> None:
    environ = {
        "CLAUDE_CODE_OAUTH_TOKEN": "oauth",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "OPENAI_API_KEY": "openai",
        "GITHUB_TOKEN": "gh",  # stored in its own block, never handed to agents this way
        "HOME": "/root",
        "ANTHROPIC_API_KEY": "",  # empty means unset
    }
    stored = up.agent_env(environ)
    assert sorted(stored) == ["AWS_SECRET_ACCESS_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY"]
    assert all(isinstance(v, SecretStr) for v in stored.values())


def test_blocks_never_show_their_secrets() -> None:
    github = GitHubCredentials(token=SecretStr("ghp_secret"))
    agents = AgentCredentials(env={"OPENAI_API_KEY": SecretStr("sk-secret")})
    for shown in (
        repr(github),
        str(github),
        repr(agents),
        github.model_dump_json(),
        agents.model_dump_json(),
    ):
        assert "secret" not in shown.replace("SecretStr", "").lower(), shown
    assert agents.values() == {"OPENAI_API_KEY": "sk-secret"}


FLAG, ENV, FILE = (SecretStr(f"postgresql://u@h/{name}") for name in ("flag", "env", "file"))


@pytest.mark.parametrize(
    ("flag", "sandbox", "expected"),
    [
        pytest.param(FLAG, False, FLAG, id="--database wins over the config"),
        pytest.param(FLAG, True, FLAG, id="--database wins over the environment in the sandbox"),
        pytest.param(None, False, FILE, id="the config (K3SC_DATABASE_URL already applied by load)"),
        pytest.param(None, True, ENV, id="the sandbox reads the environment, not the user's config"),
    ],
)
def test_which_database_the_local_server_gets(
    tmp_path: Path, flag: SecretStr | None, sandbox: bool, expected: SecretStr
) -> None:
    config = Config(prefect={"database": FILE.get_secret_value()})
    session = up.Session(
        tmp_path, config, tmp_path / "k3sc.yaml", LocalStack(tmp_path), world=object() if sandbox else None
    )
    environ = {"K3SC_DATABASE_URL": ENV.get_secret_value()}
    assert up.server_database(session, up.UpOptions(sandbox=sandbox, database=flag), environ) == expected


def test_without_a_database_the_server_stays_on_sqlite(tmp_path: Path) -> None:
    session = up.Session(tmp_path, Config(), tmp_path / "k3sc.yaml", LocalStack(tmp_path))
    assert up.server_database(session, up.UpOptions(), {}) is None


@pytest.mark.parametrize(
    ("started", "skips_handshakes"),
    [
        pytest.param(True, True, id="the server k3sc started: no CSRF token, no version check"),
        pytest.param(False, False, id="a server someone else runs: Prefect's client defaults"),
    ],
)
def test_clients_skip_handshakes_only_with_the_server_k3sc_started(
    tmp_path: Path, started: bool, skips_handshakes: bool
) -> None:
    stack = LocalStack(tmp_path, api_url="http://127.0.0.1:4200/api", started_server=started)
    env = stack.worker_env()
    assert (env.get("PREFECT_CLIENT_CSRF_SUPPORT_ENABLED") == "false") is skips_handshakes
    assert (env.get("PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED") == "false") is skips_handshakes


# ------------------------------------------------------------------ the supervisor


def _child(name: str, tmp_path: Path, *, alive: bool) -> ManagedProcess:
    """A child as `LocalStack` records it: a live one sleeps, a dead one has exited with code 137."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)" if alive else "raise SystemExit(137)"]
    popen = subprocess.Popen(argv)
    if not alive:
        popen.wait()
    return ManagedProcess(name, popen, tmp_path / f"{name}.log")


class Supervised:
    """A session whose stack starts sleeping stand-ins for workers and records what it was asked."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, owned_server: bool) -> None:
        self.tmp_path = tmp_path
        self.stack = LocalStack(tmp_path, api_url="http://127.0.0.1:1/api")
        self.session = up.Session(
            tmp_path,
            Config(),
            tmp_path / "k3sc.yaml",
            self.stack,
            api_url=self.stack.api_url or "",
            owned_server=owned_server,
        )
        self.started: list[str] = []
        self.reaped: list[tuple[str, ...]] = []
        self.said: list[str] = []
        monkeypatch.setattr(LocalStack, "start_worker", self._start_worker)
        monkeypatch.setattr(up, "reap_stale_runs", self._reap)

    def _start_worker(self, pool: str, *, env: object = None) -> ManagedProcess:
        self.started.append(pool)
        worker = _child(f"worker {pool}", self.tmp_path, alive=True)
        self.stack.processes.append(worker)
        return worker

    async def _reap(self, api_url: str, *, everything: bool, deployments: tuple[str, ...], why: str) -> int:
        assert everything and why == "its worker died (exit code 137)"
        self.reaped.append(deployments)
        return 1

    def check(self) -> None:
        up.check_children(self.session, self.said.append)

    def close(self) -> None:
        for process in self.stack.processes:
            process.popen.kill()
            process.popen.wait()


@pytest.fixture
def supervised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Supervised]:
    world = Supervised(tmp_path, monkeypatch, owned_server=True)
    yield world
    world.close()


def test_a_dead_worker_is_restarted_after_its_runs_are_marked_crashed(supervised: Supervised) -> None:
    server = _child("prefect-server", supervised.tmp_path, alive=True)
    dispatch = _child("worker k3sc-dispatch", supervised.tmp_path, alive=True)
    dead = _child("worker k3sc-agents", supervised.tmp_path, alive=False)
    supervised.stack.processes += [server, dispatch, dead]

    supervised.check()

    assert supervised.started == ["k3sc-agents"]
    assert supervised.reaped == [(runs.AGENT_DEPLOYMENT,)]
    names = [p.name for p in supervised.stack.processes]
    assert names == ["prefect-server", "worker k3sc-dispatch", "worker k3sc-agents"]
    assert all(p.alive for p in supervised.stack.processes)
    assert supervised.said[0] == "worker k3sc-agents exited (code 137); restarting it"
    supervised.check()  # all alive now: nothing more happens
    assert supervised.started == ["k3sc-agents"]


def test_on_a_server_k3sc_does_not_own_other_runs_are_left_to_the_heartbeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = Supervised(tmp_path, monkeypatch, owned_server=False)
    try:
        world.stack.processes.append(_child("worker k3sc-dispatch", tmp_path, alive=False))
        world.check()
        assert world.started == ["k3sc-dispatch"] and world.reaped == []
    finally:
        world.close()


@pytest.mark.parametrize("name", ["prefect-server", "webhook"])
def test_any_other_child_dying_stops_k3sc_up(supervised: Supervised, name: str) -> None:
    supervised.stack.processes.append(_child(name, supervised.tmp_path, alive=False))
    with pytest.raises(OrchestrationError, match=f"{name} exited unexpectedly"):
        supervised.check()
    assert supervised.started == []


def test_a_worker_that_keeps_dying_stops_k3sc_up(supervised: Supervised) -> None:
    supervised.stack.processes.append(_child("worker k3sc-agents", supervised.tmp_path, alive=False))
    for _ in range(up.RESTART_LIMIT):
        supervised.check()
        for process in supervised.stack.processes:  # the restarted one dies too
            process.popen.kill()
            process.popen.wait()
    assert len(supervised.started) == up.RESTART_LIMIT
    with pytest.raises(OrchestrationError, match=f"restarted {up.RESTART_LIMIT} times"):
        supervised.check()
