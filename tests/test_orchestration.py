"""Unit tests for the Prefect adapter: the REST client, runs from tags, events, dispatch state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from k3sc import names, retrying
from k3sc.errors import OrchestrationError
from k3sc.labels import Kind
from k3sc.models import Intent, Outcome, Repo, RunPhase
from k3sc.orchestration import dispatch_state, events, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun

API = "http://prefect.test/api"


# The Prefect policy's patience without its waits.
NO_WAIT = retrying.Policy(attempts=retrying.PREFECT.attempts, initial=0.0, jitter=0.0)


def client(handler: Any, retry: retrying.Policy = NO_WAIT) -> PrefectAPI:
    return PrefectAPI(API, transport=httpx.MockTransport(handler), retry=retry)


def flow_run(tags: list[str], state: str = "COMPLETED", **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("id", "run-1"),
        "name": "acme/api#7 implement claude-b",
        "tags": tags,
        "state": {"type": state, "message": extra.pop("message", "")},
        "created": "2026-11-27T10:00:00Z",
        "start_time": "2026-11-27T10:00:05+00:00",
        "end_time": None,
        "parameters": extra.pop("parameters", {"pr": None}),
        **extra,
    }


# --------------------------------------------------------------------------- the REST client


async def test_transient_failures_are_retried_then_succeed() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"value": {"idle_scans": 2}})

    async with client(handler) as api:
        assert await api.variable("k3sc-dispatch-state") == {"idle_scans": 2}
    assert calls == ["/api/variables/name/k3sc-dispatch-state"] * 3


async def test_connection_errors_exhaust_retries_into_one_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with client(handler, retry=retrying.Policy(attempts=3, initial=0.0)) as api:
        with pytest.raises(OrchestrationError, match="unreachable"):
            await api.variable("x")


async def test_client_errors_name_the_endpoint_and_are_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(422, json={"detail": "bad filter"})

    async with client(handler) as api:
        with pytest.raises(OrchestrationError, match=r"POST /flow_runs/filter → 422"):
            await api.flow_runs(tags_all=["k3sc"])
    assert calls == 1


async def test_flow_runs_follow_pages_of_200() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        size = 200 if body["offset"] < 400 else 7
        runs_ = [{"id": f"{body['offset']}-{i}", "created": "2026-11-27T10:00:00Z"} for i in range(size)]
        return httpx.Response(200, json=runs_)

    async with client(handler) as api:
        found = await api.flow_runs(
            tags_all=["k3sc-agent-run"], tags_any=["issue:acme/api#7"], state_types=["RUNNING"]
        )
    assert len(found) == 407
    assert [b["offset"] for b in bodies] == [0, 200, 400]
    assert bodies[0]["flow_runs"] == {
        "tags": {"all_": ["k3sc-agent-run"], "any_": ["issue:acme/api#7"]},
        "state": {"type": {"any_": ["RUNNING"]}},
    }


async def test_create_variable_is_atomic_create_if_absent() -> None:
    answers = iter([httpx.Response(201, json={}), httpx.Response(409, json={})])

    async with client(lambda request: next(answers)) as api:
        assert await api.create_variable("lease", {"worker": "claude-a"}) is True
        assert await api.create_variable("lease", {"worker": "codex-b"}) is False


async def test_missing_deployment_says_how_to_fix_it() -> None:
    async with client(lambda request: httpx.Response(404, json={})) as api:
        with pytest.raises(OrchestrationError, match="k3sc up"):
            await api.deployment_id("k3sc-agent/k3sc-agent")


def test_from_env_without_a_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(OrchestrationError, match="PREFECT_API_URL"):
        PrefectAPI.from_env()


# --------------------------------------------------------------------------- runs from tags

TAGS = names.run_tags(Repo("acme", "api"), 7, Kind.IMPLEMENT, "claude-b", 2)


@pytest.mark.parametrize(
    ("state", "tags", "phase", "handed_off", "outcome"),
    [
        pytest.param("SCHEDULED", TAGS, RunPhase.WAITING, False, None, id="scheduled is waiting"),
        pytest.param("PENDING", TAGS, RunPhase.WAITING, False, None, id="pending is waiting"),
        pytest.param("RUNNING", TAGS, RunPhase.RUNNING, False, None, id="running"),
        pytest.param("CANCELLING", TAGS, RunPhase.RUNNING, False, None, id="cancelling still holds its slot"),
        pytest.param("FAILED", TAGS, RunPhase.FAILED, False, None, id="failed awaiting hand-off"),
        pytest.param("CRASHED", TAGS, RunPhase.CRASHED, False, None, id="crashed"),
        pytest.param("COMPLETED", names.handed_off_tags(TAGS, "success"), RunPhase.COMPLETED, True,
                     Outcome.SUCCESS, id="handed off with its outcome"),
    ],
)  # fmt: skip
def test_to_agent_run(
    state: str, tags: list[str], phase: RunPhase, handed_off: bool, outcome: Outcome | None
) -> None:
    run = runs.to_agent_run(
        FlowRun.model_validate(flow_run(tags, state, parameters={"pr": 12}, message="exit 0"))
    )
    assert run is not None
    assert (run.repo, run.issue, run.kind, run.agent, run.attempt) == (
        Repo("acme", "api"),
        7,
        Kind.IMPLEMENT,
        "claude-b",
        2,
    )
    assert (run.phase, run.handed_off, run.outcome, run.pr, run.message) == (
        phase,
        handed_off,
        outcome,
        12,
        "exit 0",
    )
    assert run.issue_key == "acme/api#7"


def test_a_run_that_never_ran_is_recognised() -> None:
    crashed = runs.to_agent_run(
        FlowRun.model_validate(flow_run(TAGS, "CRASHED", total_run_time=0.0, end_time="2026-11-27T10:00:05Z"))
    )
    ran = runs.to_agent_run(FlowRun.model_validate(flow_run(TAGS, "CRASHED", total_run_time=31.2)))
    assert crashed is not None and crashed.never_started
    assert ran is not None and not ran.never_started


def test_runs_without_k3sc_tags_are_not_agent_runs() -> None:
    assert runs.to_agent_run(FlowRun.model_validate(flow_run(["k3sc", "k3sc-chain"]))) is None


def test_agent_run_parameters_carry_no_secret() -> None:
    from datetime import UTC, datetime

    from k3sc.models import Issue
    from k3sc.workflow import Dispatch

    issue = Issue(Repo("acme", "api"), 7, "t", "alice", datetime(2026, 1, 1, tzinfo=UTC), ("ready",))
    assert runs.parameters_for(Dispatch(issue, Kind.REVIEW, "codex-a", 1, 12)) == {
        "repo": "acme/api",
        "issue": 7,
        "kind": "review",
        "agent": "codex-a",
        "attempt": 1,
        "pr": 12,
    }


# --------------------------------------------------------------------------- dispatch state


async def test_unreadable_dispatch_state_starts_fresh() -> None:
    async with client(lambda request: httpx.Response(200, json={"value": {"idle_scans": "lots"}})) as api:
        assert await dispatch_state.load(api) == dispatch_state.DispatchState()


async def test_dispatch_state_round_trips_through_the_variable() -> None:
    stored: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            stored.update(json.loads(request.content))
            return httpx.Response(204)
        return httpx.Response(200, json={"value": stored.get("value")})

    state = dispatch_state.DispatchState(
        idle_scans=3,
        last_family="codex",
        intents=[
            Intent(
                key="k3sc/acme/api#7/implement/1", repo="acme/api", issue=7, kind="implement", agent="claude-a",
                attempt=1, origin="ready",
            )
        ],
    )  # fmt: skip
    async with client(handler) as api:
        await dispatch_state.save(api, state)
        assert await dispatch_state.load(api) == state


def big_state(orphans: int, idle: int = 0) -> dispatch_state.DispatchState:
    """A big fleet's memory: 26 claims in flight and `orphans` first sightings (far past 5,000 chars)."""
    seen = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    return dispatch_state.DispatchState(
        idle_scans=idle,
        intents=[
            Intent(key=f"k3sc/acme/api#{n}/implement/1", repo="acme/api", issue=n, kind="implement",
                   agent=f"claude-{chr(97 + n)}", attempt=1, origin="ready")
            for n in range(26)
        ],
        orphans_seen={f"acme/web#{n}": seen for n in range(orphans)},
    )  # fmt: skip


@pytest.mark.prefect
async def test_a_dispatch_state_past_prefects_variable_limit_round_trips_in_parts(
    prefect_api_url: str,
) -> None:
    async with PrefectAPI(prefect_api_url) as api:
        small = dispatch_state.DispatchState(idle_scans=2)
        await dispatch_state.save(api, small)
        assert await dispatch_state.load(api) == small
        for generation, orphans in enumerate((400, 150, 600), start=1):
            state = big_state(orphans, idle=generation)
            assert len(state.model_dump_json()) > dispatch_state.VALUE_LIMIT
            await dispatch_state.save(api, state)
            assert await dispatch_state.load(api) == state
        # A dispatcher killed while writing the next generation's parts, before its head: the
        # previous state is still whole, because the parts alternate between two sets.
        last = big_state(600, idle=3)
        half = big_state(300, idle=4).model_dump_json()
        await api.set_variable(
            f"{dispatch_state.STATE_VARIABLE}-part-0-000", half[: dispatch_state.PART_CHARS]
        )
        assert await dispatch_state.load(api) == last
        # Back under the limit: one variable again, and it is what is read.
        await dispatch_state.save(api, small)
        assert await dispatch_state.load(api) == small


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("event", "payload", "expected_label"),
    [
        pytest.param("issues", {"action": "labeled", "repository": {"full_name": "Acme/API"},
                                "issue": {"number": 7}, "label": {"name": "Ready"}}, "ready", id="labeled ready"),
        pytest.param("issues", {"action": "unlabeled", "repository": {"full_name": "acme/api"},
                                "issue": {"number": 7}, "label": {"name": "ready"}}, "ready", id="unlabeled too"),
        pytest.param("issue_comment", {"action": "created"}, None, id="comments are ignored"),
        pytest.param("issues", {"action": "labeled", "repository": {"full_name": "acme/api"},
                                "issue": {"number": "7"}, "label": {"name": "ready"}}, None, id="malformed is ignored"),
    ],
)  # fmt: skip
def test_github_events_become_prefect_events(
    event: str, payload: dict[str, Any], expected_label: str | None
) -> None:
    result = events.from_github(event, payload, delivery="d-1")
    if expected_label is None:
        assert result is None
        return
    assert result is not None
    assert result["id"] == events.event_id("d-1")
    assert result["event"] == f"github.issues.{payload['action']}"
    assert result["resource"]["prefect.resource.id"] == "github.issue.acme/api#7"
    assert result["resource"]["github.label"] == expected_label
