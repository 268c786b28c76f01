"""`k3sc up` as a person or a supervisor runs it: the UI it prints works, and it stops cleanly.

- The Prefect UI on the port `k3sc up` printed (never Prefect's 4200 in the sandbox) lists
  k3sc's runs in a real headless browser.
- SIGINT, SIGTERM and SIGHUP stop it the same way: the running agent cancelled, workers and
  server stopped, exit 0 within 30 s, no process left. A SIGKILL takes its children with it,
  and the next `k3sc up` starts on the same port and marks what the killed one left running.

The tests share one k3sc home and one port, so the Prefect database is migrated once (a fresh
one costs ~20 s) and every `k3sc up` here starts where the previous test's one stopped, which
is the point: each must find the port free, whatever ended the one before.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from k3sc.names import TAG_AGENT_RUN
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.stack import free_port
from tests.e2e.up_process import UpProcess, marked, start_up

pytestmark = pytest.mark.e2e

# One issue whose stub agent works for two minutes: a signal always finds it running.
SLOW_WORLD = {
    "repos": [{"name": "svc", "issues": [{"title": "Take your time", "author": "alice", "stub": "slow=120"}]}]
}
IDLE_WORLD: dict[str, object] = {"repos": [{"name": "quiet"}]}
# A desktop-sized window: at chromium's default headless size the runs list is not rendered.
PAGE = ["--window-size=1400,1000", "--virtual-time-budget=15000", "--dump-dom"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's k3sc home (see the module docstring for why it is shared)."""
    return tmp_path_factory.mktemp("up-home")


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture
def ups() -> Iterator[list[UpProcess]]:
    """Every `k3sc up` a test starts; whatever happens, none of them outlives the test."""
    started: list[UpProcess] = []
    yield started
    for up in started:
        up.kill()


def test_ui_settings_name_the_server_that_was_started(prefect_api_url: str) -> None:
    """The session's server listens on a free port, never 4200; the UI must be sent there."""
    settings = httpx.get(prefect_api_url.removesuffix("/api") + "/ui-settings", timeout=10).json()
    assert settings["api_url"] == prefect_api_url


def browse(url: str) -> str:
    """The page's DOM after its scripts ran, as Debian's chromium renders it headless."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    proc = subprocess.run(
        # --no-sandbox: chromium refuses to run as root with its sandbox.
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", *PAGE, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_prefect_ui_of_a_sandbox_on_its_own_port_lists_k3scs_runs(
    home: Path, port: int, ups: list[UpProcess]
) -> None:
    """`k3sc up --sandbox --port P`, exactly as the issue was found: the runs page at P shows runs."""
    up = start_up(home, port, seed=IDLE_WORLD)
    ups.append(up)
    up.wait_for(f"k3sc is up. Prefect UI: http://127.0.0.1:{port}", timeout=180)
    done = up.wait_until(
        "a finished run",
        lambda: [r["name"] for r in up.flow_runs() if r["state_type"] in ("COMPLETED", "FAILED")],
        timeout=120,
    )
    dom = browse(f"http://127.0.0.1:{port}/runs")
    assert "Can't connect to Server API" not in dom
    assert any(name in dom for name in done), (done, dom[-3000:])
    assert up.signal(signal.SIGINT, timeout=60) == 0


def running_agent(up: UpProcess) -> list[psutil.Process]:
    found = []
    for process in up.family():
        try:
            if "k3sc.sandbox.stub_agent" in process.cmdline():
                found.append(process)
        except psutil.Error:
            continue
    return found


def survivors(family: list[psutil.Process], marker: str, patience: float) -> list[str]:
    """Processes of `family` (or carrying `marker`) still alive after up to `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        alive += [p for p in marked(marker) if p not in alive]
        if not alive or time.monotonic() >= deadline:
            return [f"{p.pid} {' '.join(p.cmdline()[:6])}" for p in alive if p.is_running()]
        time.sleep(0.5)


def start_with_an_agent_running(home: Path, port: int, ups: list[UpProcess]) -> UpProcess:
    up = start_up(home, port, seed=SLOW_WORLD)
    ups.append(up)
    up.wait_for(f"k3sc is up. Prefect UI: http://127.0.0.1:{port}", timeout=180)
    up.wait_until("a running agent", lambda: running_agent(up), timeout=120)
    return up


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGINT, id="Ctrl-C"),
        pytest.param(signal.SIGTERM, id="SIGTERM from a supervisor"),
        pytest.param(signal.SIGHUP, id="SIGHUP from a closed terminal"),
    ],
)
def test_a_stop_signal_stops_everything_and_exits_0(
    home: Path, port: int, ups: list[UpProcess], sig: signal.Signals
) -> None:
    up = start_with_an_agent_running(home, port, ups)
    family = up.family()
    started = time.monotonic()
    assert up.signal(sig, timeout=60) == 0
    assert time.monotonic() - started < 30, up.stderr
    assert survivors(family, up.marker, patience=0) == []
    assert "cancelling 1 agent run(s)" in up.stderr
    assert "k3sc stopped." in up.stderr


def test_a_killed_up_takes_its_children_and_the_next_one_reconciles(
    home: Path, port: int, ups: list[UpProcess]
) -> None:
    up = start_with_an_agent_running(home, port, ups)
    family = up.family()
    up.popen.kill()
    assert up.popen.wait(timeout=10) == -signal.SIGKILL
    assert survivors(family, up.marker, patience=20) == []
    following = start_up(home, port, seed=IDLE_WORLD)
    ups.append(following)
    following.wait_for(f"k3sc is up. Prefect UI: http://127.0.0.1:{port}", timeout=180)
    if "left running by an earlier k3sc as crashed" not in following.stderr:
        # Prefect's crash-zombies automation (90 s without a heartbeat) got there first: the
        # restart took longer than its window. Either way, the earlier agent run ended Crashed.
        assert agent_runs_in(port, "CRASHED") and not agent_runs_in(port, "RUNNING"), following.stderr
    assert following.signal(signal.SIGTERM, timeout=60) == 0


def agent_runs_in(port: int, state_type: str) -> list[str]:
    """Ids of the agent runs in `state_type` on the server at `port`."""

    async def read() -> list[str]:
        async with PrefectAPI(f"http://127.0.0.1:{port}/api") as api:
            found = await api.flow_runs(tags_all=[TAG_AGENT_RUN], state_types=[state_type])
        return [run.id for run in found]

    return asyncio.run(read())
