"""The write-point fault layer the e2e write-point suite launches dispatchers with
(`tests.e2e.write_faults`): where a write's point is, and when a fault strikes relative to it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from k3sc.errors import GitHubError, OrchestrationError
from k3sc.github.client import GitHubClient
from k3sc.orchestration.api import PrefectAPI
from tests.e2e import write_faults
from tests.e2e.write_faults import Fault, _Faults, github_kind

OUTSIDE = "outside a flow"


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("PUT", "/repos/acme/api/issues/7/labels", "github PUT issues/N/labels"),
        ("POST", "repos/acme/api/issues/12/comments", "github POST issues/N/comments"),
        ("DELETE", "/repos/acme/api/issues/7/labels/ready", "github DELETE issues/N/labels/ready"),
        ("PATCH", "/repos/acme/api2/pulls/3", "github PATCH pulls/N"),
    ],
)
def test_a_github_write_is_named_without_repo_or_numbers(method: str, path: str, kind: str) -> None:
    assert github_kind(method, path) == kind


class Write:
    """A write that records whether it ran."""

    def __init__(self) -> None:
        self.ran = 0

    async def __call__(self) -> str:
        self.ran += 1
        return "written"


def entries(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_a_failure_before_a_write_keeps_it_from_happening(tmp_path: Path) -> None:
    log, write = tmp_path / "writes.jsonl", Write()
    faults = _Faults(log, [Fault(f"{OUTSIDE} / k", "before", "fail")])
    with pytest.raises(GitHubError, match="injected fault: fail before"):
        await faults.around("k", write, GitHubError)
    assert write.ran == 0
    assert entries(log) == [
        {"point": f"{OUTSIDE} / k", "phase": "before", "action": "fail", "nth": 1, "fired": True}
    ]


async def test_a_failure_after_a_write_lets_it_land_and_strikes_once(tmp_path: Path) -> None:
    log, write = tmp_path / "writes.jsonl", Write()
    faults = _Faults(log, [Fault(f"{OUTSIDE} / k", "after", "fail")])
    with pytest.raises(GitHubError):
        await faults.around("k", write, GitHubError)
    assert write.ran == 1
    # The next write of the same point is the second: the fault (nth=1) is spent.
    assert await faults.around("k", write, GitHubError) == "written"
    assert [(e["phase"], e.get("n")) for e in entries(log)] == [("done", 1), ("after", None), ("done", 2)]


async def test_a_fault_strikes_at_the_nth_write_of_its_own_point_only(tmp_path: Path) -> None:
    log, write = tmp_path / "writes.jsonl", Write()
    faults = _Faults(log, [Fault(f"{OUTSIDE} / k", "before", "fail", nth=2)])
    await faults.around("other", write, GitHubError)
    await faults.around("k", write, GitHubError)
    with pytest.raises(GitHubError):
        await faults.around("k", write, GitHubError)
    assert write.ran == 2


async def test_installed_prefect_writes_are_named_by_method_and_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """set_state is named by its state, set_variable by its variable, its inner create is no second write."""
    for name in write_faults.PREFECT_WRITES:  # undone after the test
        monkeypatch.setattr(PrefectAPI, name, getattr(PrefectAPI, name))
    monkeypatch.setattr(GitHubClient, "request", GitHubClient.request)
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        if request.method == "PATCH":
            return httpx.Response(404)
        return httpx.Response(
            201 if request.url.path.endswith("/variables/") else 200, json={"status": "ACCEPT"}
        )

    log = tmp_path / "writes.jsonl"
    fault = Fault(f"{OUTSIDE} / prefect set_state CANCELLED", "after", "fail")
    write_faults.install(
        {write_faults.LOG_ENV: str(log), write_faults.FAULTS_ENV: json.dumps([asdict(fault)])}
    )
    async with PrefectAPI("http://prefect.test/api", transport=httpx.MockTransport(answer)) as api:
        await api.set_variable("k3sc-dispatch-state", {"intents": []})
        with pytest.raises(OrchestrationError, match="injected fault"):
            await api.set_state("run-1", "CANCELLED", force=True)
    assert sent == [
        "PATCH /api/variables/name/k3sc-dispatch-state",
        "POST /api/variables/",
        "POST /api/flow_runs/run-1/set_state",
    ]
    assert [(e["point"], e["phase"]) for e in entries(log)] == [
        (f"{OUTSIDE} / prefect set_variable k3sc-dispatch-state", "done"),
        (f"{OUTSIDE} / prefect set_state CANCELLED", "done"),
        (f"{OUTSIDE} / prefect set_state CANCELLED", "after"),
    ]
