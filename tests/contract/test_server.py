"""The fake as a server: lifecycle, concurrent clients (threads, asyncio, another process), caches that follow writes.

k3sc talks to the fake from Prefect tasks, async adapters and agent subprocesses at once, so it
must be safe under concurrency, reachable from other processes, and its response caches must
never serve a page that a write has made stale.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from k3sc.sandbox.github import FakeGitHub
from tests.contract.conftest import PushBranch
from tests.fixtures.github import ContractCheckedFakeGitHub


def _auth(fake: FakeGitHub) -> dict[str, str]:
    return {"Authorization": f"token {fake.token}"}


def test_start_is_idempotent_and_stop_ends_keep_alive_connections(tmp_path: Path) -> None:
    fake = FakeGitHub(tmp_path)
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.url

    with fake:
        assert fake.start() == fake.url
        with httpx.Client(base_url=fake.url, trust_env=False) as http:
            assert http.get("/rate_limit").status_code == 200
            fake.stop()
            with pytest.raises(httpx.TransportError):
                http.get("/rate_limit")
    fake.stop()  # a second stop is harmless


def test_another_process_can_use_the_fake(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    script = (
        "import sys, httpx;"
        "r = httpx.post(sys.argv[1] + '/repos/acme/api/issues', json={'title': 'from a subprocess'},"
        " headers={'Authorization': 'token ' + sys.argv[2]}, trust_env=False);"
        "print(r.status_code, r.json()['number'])"
    )

    done = subprocess.run(
        [sys.executable, "-c", script, fake_github.url, fake_github.token or ""],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout.split() == ["201", "1"]
    assert fake_github.issue_view("acme", "api", 1)["title"] == "from a subprocess"


def test_concurrent_label_writes_from_threads_all_land(fake_github: ContractCheckedFakeGitHub) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="contended", author="alice")

    def writer(worker: int) -> None:
        with httpx.Client(base_url=fake_github.url, headers=_auth(fake_github), trust_env=False) as http:
            for n in range(10):
                http.post(
                    "/repos/acme/api/issues/1/labels", json={"labels": [f"w{worker}-{n}"]}
                ).raise_for_status()

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake_github.issue_view("acme", "api", 1)["labels"]) == 60
    assert len(fake_github.label_history("acme", "api", 1)) == 61
    assert len(fake_github.requests) == 60


async def test_async_clients_can_fan_out(fake_github: ContractCheckedFakeGitHub) -> None:
    for name in ("api", "web", "ops"):
        fake_github.add_repo("acme", name)
        fake_github.add_issue("acme", name, title=f"{name} bug", author="alice", labels=["ready"])

    async with httpx.AsyncClient(
        base_url=fake_github.url, headers=_auth(fake_github), trust_env=False
    ) as http:
        pages = await asyncio.gather(
            *(
                http.get(f"/repos/acme/{name}/issues", params={"labels": "ready"})
                for name in ("api", "web", "ops") * 5
            )
        )

    assert {page.json()[0]["title"] for page in pages} == {"api bug", "web bug", "ops bug"}


def _write_label(fake: FakeGitHub, http: httpx.Client, push: PushBranch) -> None:
    fake.set_labels("acme", "api", 1, ["claude-a"])


def _comment(fake: FakeGitHub, http: httpx.Client, push: PushBranch) -> None:
    http.post("/repos/acme/api/issues/1/comments", json={"body": "hi"})


def _new_issue(fake: FakeGitHub, http: httpx.Client, push: PushBranch) -> None:
    fake.add_issue("acme", "api", title="another", author="bob")


def _close(fake: FakeGitHub, http: httpx.Client, push: PushBranch) -> None:
    http.patch("/repos/acme/api/issues/1", json={"state": "closed"})


def _push_to_the_pull_request(fake: FakeGitHub, http: httpx.Client, push: PushBranch) -> None:
    push(fake.remote_path("acme", "api"), "issue-1", {"more.txt": "more\n"}, base="issue-1")


@pytest.mark.parametrize(
    ("path", "write"),
    [
        pytest.param(
            "/repos/acme/api/issues?state=all", _write_label, id="a label change invalidates the issue list"
        ),
        pytest.param("/repos/acme/api/issues?state=all", _comment, id="a comment invalidates the issue list"),
        pytest.param(
            "/repos/acme/api/issues?state=all", _new_issue, id="a new issue invalidates the issue list"
        ),
        pytest.param("/repos/acme/api/issues?state=all", _close, id="closing invalidates the issue list"),
        pytest.param("/repos/acme/api/issues/1", _comment, id="a comment invalidates the issue"),
        pytest.param(
            "/repos/acme/api/pulls", _push_to_the_pull_request, id="a push invalidates the pull list"
        ),
        pytest.param(
            "/repos/acme/api/pulls/2", _push_to_the_pull_request, id="a push invalidates the pull request"
        ),
    ],
)
def test_a_write_changes_the_etag_of_what_it_touches(
    fake_github: ContractCheckedFakeGitHub,
    push_branch: PushBranch,
    path: str,
    write: Callable[[FakeGitHub, httpx.Client, PushBranch], None],
) -> None:
    fake_github.add_repo("acme", "api")
    fake_github.add_issue("acme", "api", title="ready-for-an-agent", author="alice", labels=["ready"])
    push_branch(fake_github.remote_path("acme", "api"), "issue-1")
    fake_github.add_pull("acme", "api", head="issue-1", title="Fix #1", author="k3sc")

    with httpx.Client(base_url=fake_github.url, headers=_auth(fake_github), trust_env=False) as http:
        before = http.get(path)
        unchanged = http.get(path, headers={"If-None-Match": before.headers["etag"]})
        write(fake_github, http, push_branch)
        after = http.get(path, headers={"If-None-Match": before.headers["etag"]})

    assert (before.status_code, unchanged.status_code, after.status_code) == (200, 304, 200)
    assert after.content != before.content


def test_max_recorded_keeps_the_newest_requests(tmp_path: Path) -> None:
    with (
        FakeGitHub(tmp_path, max_recorded=3) as fake,
        httpx.Client(base_url=fake.url, trust_env=False) as http,
    ):
        for _ in range(5):
            http.get("/rate_limit")
        http.get("/user")

        assert [r.path for r in fake.requests] == ["/rate_limit", "/rate_limit", "/user"]


def test_a_remote_left_on_disk_is_not_silently_reused(tmp_path: Path) -> None:
    FakeGitHub(tmp_path).add_repo("acme", "api")

    with pytest.raises(FileExistsError, match="fresh root"):
        FakeGitHub(tmp_path).add_repo("acme", "api")


@pytest.mark.parametrize(
    ("error", "reported"),
    [
        pytest.param(ConnectionResetError(104, "reset by peer"), False, id="client hung up: quiet"),
        pytest.param(BrokenPipeError(32, "broken pipe"), False, id="write after close: quiet"),
        pytest.param(KeyError("issue"), True, id="a bug in the fake: reported"),
    ],
)
def test_only_real_handler_errors_are_reported(
    fake_github: ContractCheckedFakeGitHub,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    reported: bool,
) -> None:
    server = fake_github._server
    assert server is not None
    try:
        raise error
    except Exception:
        server.handle_error(None, ("127.0.0.1", 1))
    err = capsys.readouterr().err
    assert ("Exception occurred during processing of request" in err) is reported
