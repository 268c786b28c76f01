"""`k3sc logs` against the session's Prefect server: the listing, the newest run's log, following live.

Agent runs are made the way the dispatcher tags them (`names.run_tags`) and their log lines are
posted to the server's log API, as an agent flow's logger does; no worker runs. Following is
tested in a real `k3sc logs -f` process: the test writes a line and reads it back from the
process's stdout, and ends the run to see the exit code.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from k3sc import names
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.services import logs as service
from tests.cli_helpers import invoke

pytestmark = pytest.mark.prefect

# A fresh owner per test run: the session server is shared with other tests and other runs.
OWNER = f"logs{uuid.uuid4().hex[:6]}"
API = Repo(OWNER, "api")
WEB = Repo(OWNER, "web")


class Server:
    """Agent runs and their log lines, written straight to the Prefect REST API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/", timeout=30)
        self.flow_id = self.http.post("flows/", json={"name": "k3sc-agent"}).json()["id"]

    def run(self, repo: Repo, issue: int, kind: Kind, attempt: int, agent: str = "claude-a") -> str:
        body = {
            "flow_id": self.flow_id,
            "name": names.run_name(repo, issue, kind, agent),
            "tags": names.run_tags(repo, issue, kind, agent, attempt),
            "parameters": {"repo": repo.full_name, "issue": issue, "kind": kind.value, "attempt": attempt},
            "state": {"type": "SCHEDULED"},
        }
        response = self._post("flow_runs/", body)
        run_id: str = response.json()["id"]
        self.state(run_id, "RUNNING")
        return run_id

    def state(self, run_id: str, state_type: str) -> None:
        self._post(f"flow_runs/{run_id}/set_state", {"state": {"type": state_type}, "force": True})

    def _post(self, path: str, body: Any) -> httpx.Response:
        """POST, waiting out the SQLite-backed server's "database is locked" 503s as k3sc's client does."""
        for _ in range(10):
            response = self.http.post(path, json=body)
            if response.status_code != 503:
                break
            time.sleep(0.5)
        return response.raise_for_status()

    def log(self, run_id: str, *messages: str, name: str = "prefect.flow_runs") -> None:
        now = datetime.now(UTC)
        body = [
            {
                "name": name,
                "level": 20,
                "message": message,
                "timestamp": (now + timedelta(microseconds=i)).isoformat(),
                "flow_run_id": run_id,
            }
            for i, message in enumerate(messages)
        ]
        self._post("logs/", body)


@pytest.fixture
def server(prefect_api_url: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The session server as PREFECT_API_URL, and a config naming this test's two repos."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    (isolated_env / "k3sc.yaml").write_text(f"repos: [{API.full_name}, {WEB.full_name}]\n")
    made = Server(prefect_api_url)
    yield made
    made.http.close()


def test_the_listing_shows_runs_newest_first_with_their_last_meaningful_line(server: Server) -> None:
    first = server.run(API, 1, Kind.IMPLEMENT, 1)
    server.log(first, "Reading the issue.", "Tests pass now.", "[tool] Bash: git push")
    server.log(first, "Opening process...", name="prefect.flow_runs.worker")
    server.state(first, "COMPLETED")
    second = server.run(API, 1, Kind.REVIEW, 1, agent="codex-a")
    server.log(second, "Looks good to me.\n[result] success turns=3")

    rows = json.loads(invoke(["logs", "--json", "--limit", "50"]).stdout)
    ours = [r for r in rows if r["repo"] == API.full_name]
    assert [(r["id"], r["kind"], r["agent"], r["state"], r["last_output"]) for r in ours] == [
        (second, "review", "codex-a", "Running", "Looks good to me."),
        (first, "implement", "claude-a", "Completed", "Tests pass now."),
    ]
    assert ours[0]["issue"] == f"{API.key}#1"
    assert ours[1]["duration_s"] is not None and ours[1]["started"] is not None

    table = invoke(["logs", "--limit", "50"], contains=["last output", "Looks good to me.", "codex-a"]).stdout
    assert table.index("Looks good to me.") < table.index("Tests pass now.")


def test_a_settled_runs_last_line_is_remembered_not_read_again(server: Server) -> None:
    ended = server.run(API, 9, Kind.IMPLEMENT, 1)
    server.log(ended, "All done.")
    server.state(ended, "COMPLETED")
    running = server.run(API, 9, Kind.REVIEW, 1)
    server.log(running, "Still reading.")
    later = datetime.now(UTC) + timedelta(minutes=1)  # the ended run's log has settled by then

    def listed() -> dict[str, str]:
        rows = asyncio.run(service.recent(50, now=later))
        return {r.id: r.last_output for r in rows if r.id in (ended, running)}

    assert listed() == {ended: "All done.", running: "Still reading."}
    cache = service.cache_file()
    remembered = json.loads(cache.read_text())
    assert remembered[ended] == "All done." and running not in remembered
    # What the listing shows for a settled run now comes from the cache, not from its log.
    cache.write_text(json.dumps({**remembered, ended: "remembered"}))
    assert listed() == {ended: "remembered", running: "Still reading."}


def test_the_log_is_the_newest_matching_attempts(server: Server) -> None:
    for attempt in (1, 2):
        run_id = server.run(API, 2, Kind.IMPLEMENT, attempt)
        server.log(run_id, f"attempt {attempt} speaking")
        server.state(run_id, "FAILED")
    review = server.run(API, 2, Kind.REVIEW, 1)
    server.log(review, "the review speaking")

    invoke(
        ["logs", "2"], contains=["the review speaking"], absent=["attempt 1 speaking", "attempt 2 speaking"]
    )
    invoke(
        ["logs", "api", "2", "--kind", "implement"],
        contains=["attempt 2 speaking"],
        absent=["attempt 1 speaking", "review speaking"],
    )
    invoke(
        ["logs", API.full_name, "2", "--kind", "implement", "--attempt", "1"], contains=["attempt 1 speaking"]
    )
    shown = json.loads(invoke(["logs", "2", "--kind", "implement", "--json"]).stdout)
    assert shown["run"]["attempt"] == 2
    assert [line["message"] for line in shown["lines"]] == ["attempt 2 speaking"]


def test_an_issue_in_two_repos_needs_the_repo(server: Server) -> None:
    for repo in (API, WEB):
        server.log(server.run(repo, 3, Kind.IMPLEMENT, 1), f"{repo.name} speaking")
    invoke(
        ["logs", "3"],
        code=2,
        contains=[f"error: issue #3 has agent runs in several repos ({API.full_name}, {WEB.full_name})"],
    )
    invoke(["logs", "web", "3"], contains=["web speaking"], absent=["api speaking"])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["nope", "3"], 2, "error: repo nope is not a configured repository", id="unknown repo"),
        pytest.param(["x3"], 2, "error: invalid issue number: 'x3'", id="non-numeric issue"),
        pytest.param(["0"], 2, "error: invalid issue number: '0'", id="issue zero"),
        pytest.param(["3", "--kind", "fix"], 2, "error: --kind 'fix' is not a kind of run", id="bad kind"),
        pytest.param(["3", "--attempt", "two"], 2, "error: invalid attempt number: 'two'", id="bad attempt"),
        pytest.param(["-f"], 2, "error: --follow, --kind and --attempt need an ISSUE", id="follow what"),
        pytest.param(["3", "-f", "--json"], 2, "cannot be combined with --json", id="follow as json"),
        pytest.param(["api", "999"], 1, f"error: no agent run found for {API.full_name}#999.", id="no run"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    server: Server, args: list[str], code: int, message: str
) -> None:
    result = invoke(["logs", *args], code=code, contains=[message])
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1


def test_without_a_known_server_it_says_how_to_start_one(isolated_env: Path) -> None:
    invoke(
        ["logs"],
        code=1,
        contains=["error: no Prefect server known: set PREFECT_API_URL", "k3sc up"],
        env={"PREFECT_API_URL": None},
    )


# --------------------------------------------------------------------------- --follow


class Follower:
    """A `k3sc logs -f` process whose stdout lines arrive on a queue as they are printed."""

    def __init__(self, *args: str) -> None:
        # A shell's background job (`pytest … &`, some CI runners) ignores SIGINT and a child inherits
        # that, so Python would install no Ctrl-C handler; a handled SIGINT resets to default on exec.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "k3sc", "logs", "-f", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONFAULTHANDLER": "1"},
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        self._pumping = threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True)
        self._pumping.start()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._pumping.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            stream.close()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no line within {timeout}s; stderr: {self.proc.communicate()[1]}") from None

    def wait_ready(self) -> None:
        """Until it has printed what was already logged (it is polling from then on)."""
        assert self.next_line(timeout=30).endswith("started")

    def end(self, timeout: float = 15) -> tuple[int, str]:
        """Its exit code and stderr; on timeout it is killed and the failure shows both streams."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints where it hangs
            self.proc.wait(timeout=10)
            assert self.proc.stderr is not None
            stderr = self.proc.stderr.read()
            shown = [self.lines.get_nowait() for _ in range(self.lines.qsize())]
            raise AssertionError(f"still running after {timeout}s; stdout {shown}; stderr {stderr}") from None
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@pytest.mark.parametrize(
    ("final", "code"),
    [pytest.param("COMPLETED", 0, id="a run that succeeds exits 0"), pytest.param("FAILED", 1, id="fails 1")],
)
def test_follow_shows_new_lines_within_two_seconds_and_exits_with_the_outcome(
    server: Server, final: str, code: int
) -> None:
    run_id = server.run(API, 4 if code == 0 else 5, Kind.IMPLEMENT, 1)
    server.log(run_id, "started")
    with Follower("api", "4" if code == 0 else "5") as follower:
        _follow_to_the_end(server, follower, run_id, final, code)


def _follow_to_the_end(server: Server, follower: Follower, run_id: str, final: str, code: int) -> None:
    follower.wait_ready()
    for n in range(3):
        written = time.monotonic()
        server.log(run_id, f"line {n}")
        assert follower.next_line(timeout=5).endswith(f" line {n}")
        # The test's own clock bounds the latency from above (it includes the pipe and the pump).
        assert time.monotonic() - written <= 2.0
    server.state(run_id, final)
    server.log(run_id, "last words")  # logged as the run ends: still shown
    exit_code, stderr = follower.end()
    assert exit_code == code, stderr
    assert follower.next_line(timeout=1).endswith(" last words")
    assert f"run ended: {final.lower()}" in stderr
    assert "Traceback" not in stderr


def test_ctrl_c_stops_following_not_the_run(server: Server, prefect_api_url: str) -> None:
    run_id = server.run(API, 6, Kind.IMPLEMENT, 1)
    server.log(run_id, "started")
    with Follower("api", "6") as follower:
        follower.wait_ready()
        follower.proc.send_signal(signal.SIGINT)
        exit_code, stderr = follower.end()
    assert exit_code == 130
    assert "Traceback" not in stderr
    assert "stopped following (the run goes on)" in stderr
    state = server.http.get(f"flow_runs/{run_id}").json()["state"]["type"]
    assert state == "RUNNING"
    server.state(run_id, "CANCELLED")
