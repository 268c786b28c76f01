"""The successor chain against a stateful stand-in for the Prefect runs API.

The e2e chain test proves backoff and single links on a real server; this one drives the race a
real server only shows under load: the successor comes due while its parent is still running,
the concurrency limit cancels it, and the parent must not end with a cancelled run as its chain.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from k3sc import retrying
from k3sc.errors import OrchestrationError
from k3sc.orchestration import chain
from k3sc.orchestration.api import PrefectAPI

API = "http://prefect.test/api"
DEPLOYMENT_ID = "dep-dispatch"


class FakeRuns:
    """Deployments and flow runs, with Prefect's idempotency: a repeated key returns the first run."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.state_calls: list[tuple[str, str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/")
        body = json.loads(request.content) if request.content else {}
        if path.startswith("deployments/name/"):
            return httpx.Response(200, json={"id": DEPLOYMENT_ID, "name": "k3sc-dispatch"})
        if path == f"deployments/{DEPLOYMENT_ID}/create_flow_run":
            key = body.get("idempotency_key")
            if key in self.keys:
                return httpx.Response(200, json=self.runs[self.keys[key]])
            run_id = str(uuid.uuid4())
            self.runs[run_id] = {"id": run_id, "created": datetime.now(UTC).isoformat(), **body}
            if key:
                self.keys[key] = run_id
            return httpx.Response(201, json=self.runs[run_id])
        if path.startswith("flow_runs/") and path.endswith("/set_state"):
            run_id = path.split("/")[1]
            self.runs[run_id]["state"] = body["state"]
            self.state_calls.append((run_id, body["state"]["type"]))
            return httpx.Response(201, json={"status": "ACCEPT", "state": body["state"]})
        if path == "flow_runs/filter":
            wanted = body["flow_runs"].get("state", {}).get("type", {}).get("any_")
            found = [r for r in self.runs.values() if wanted is None or r["state"]["type"] in wanted]
            return httpx.Response(200, json=found[body.get("offset", 0) :][: body.get("limit", 200)])
        if path.startswith("flow_runs/") and request.method == "PATCH":
            self.runs[path.split("/")[1]].update(body)
            return httpx.Response(204)
        if path.startswith("flow_runs/"):
            run = self.runs.get(path.split("/")[1])
            return httpx.Response(200, json=run) if run else httpx.Response(404, json={"detail": "nope"})
        return httpx.Response(500, json={"detail": f"unexpected {request.method} {path}"})

    def cancel(self, run_id: str) -> None:
        self.runs[run_id]["state"] = {"type": "CANCELLED", "name": "Cancelled"}

    def collide(self, name: str, at: datetime) -> str:
        """A triggered scan the deployment's limit cancelled at `at`, worded as Prefect words it."""
        run_id = str(uuid.uuid4())
        message = "Deployment concurrency limit reached."  # Prefect's CANCEL_NEW message
        state = {"type": "CANCELLED", "name": "Cancelled", "message": message, "timestamp": at.isoformat()}
        self.runs[run_id] = {
            "id": run_id,
            "name": name,
            "created": at.isoformat(),
            "tags": [],
            "state": state,
        }
        return run_id

    def created_scans(self) -> list[dict[str, Any]]:
        return [r for r in self.runs.values() if r["state"]["type"] == "SCHEDULED"]

    def scheduled(self) -> list[dict[str, Any]]:
        return [r for r in self.runs.values() if r["state"]["type"] == "SCHEDULED"]


def fake_api(fake: FakeRuns) -> PrefectAPI:
    return PrefectAPI(API, transport=httpx.MockTransport(fake.handler), retry=retrying.Policy(attempts=1))


async def test_a_successor_cancelled_under_its_parent_is_replaced_not_reused() -> None:
    fake = FakeRuns()
    due = datetime.now(UTC) + timedelta(seconds=60)
    async with fake_api(fake) as api:
        # Chain first, with the pessimistic time.
        link = await chain.ensure_successor(api, None, "parent", due, move=False)
        first = link.run_id
        assert first and fake.scheduled()[0]["id"] == first
        # The run took longer than that: the successor came due and CANCEL_NEW cancelled it.
        fake.cancel(first)
        link = await chain.ensure_successor(api, link.run_id, "parent", due, move=True)
        assert link.run_id != first
        assert [r["id"] for r in fake.scheduled()] == [link.run_id]
        assert fake.keys["k3sc-next-after-parent/2"] == link.run_id
        # Again, idempotently: a second call in the same run reuses the live successor.
        again = await chain.ensure_successor(api, link.run_id, "parent", due, move=True)
        assert again.run_id == link.run_id and len(fake.scheduled()) == 1


async def test_a_live_successor_is_moved_not_doubled() -> None:
    fake = FakeRuns()
    now = datetime.now(UTC)
    async with fake_api(fake) as api:
        link = await chain.ensure_successor(api, None, "parent", now + timedelta(minutes=4), move=False)
        sooner = now + timedelta(minutes=2)
        link = await chain.ensure_successor(api, link.run_id, "parent", sooner, move=True)
        assert len(fake.scheduled()) == 1
        assert link.due == sooner
        assert fake.state_calls == [(link.run_id, "SCHEDULED")]


async def test_giving_up_after_every_successor_was_cancelled_is_an_error_not_a_silent_break() -> None:
    fake = FakeRuns()
    due = datetime.now(UTC) + timedelta(seconds=30)
    async with fake_api(fake) as api:
        for generation in range(1, chain.MAX_SUCCESSORS + 1):
            suffix = "" if generation == 1 else f"/{generation}"
            link = await chain.ensure_successor(api, None, "parent", due, move=False)
            assert fake.keys[f"k3sc-next-after-parent{suffix}"] == link.run_id
            assert link.run_id
            fake.cancel(link.run_id)
        with pytest.raises(OrchestrationError, match="could not schedule the next scan"):
            await chain.ensure_successor(api, None, "parent", due, move=False)


@pytest.mark.parametrize(
    ("collisions", "expect_scan"),
    [
        pytest.param([], False, id="nothing collided: no extra scan"),
        pytest.param([(-5, False)], False, id="collided before the last pass: that pass covered it"),
        pytest.param([(2, True)], False, id="collided after, but the last look saw it (tagged)"),
        pytest.param([(2, False)], True, id="collided after the last look: one scan takes it over"),
        pytest.param([(1, False), (3, False)], True, id="two late collisions: still one scan"),
    ],
)
async def test_triggers_that_collide_with_a_scans_end_start_one_scan_after_it(
    collisions: list[tuple[int, bool]], expect_scan: bool
) -> None:
    fake = FakeRuns()
    last_pass = datetime.now(UTC) - timedelta(seconds=10)
    late = []
    for offset, seen in collisions:
        run_id = fake.collide(
            f"scan on github.issues.labeled {offset}", last_pass + timedelta(seconds=offset)
        )
        if seen:
            fake.runs[run_id]["tags"] = [chain.COLLISION_TAG]
        late.append(run_id)
    async with fake_api(fake) as api:
        started = await chain.take_over_late_triggers(api, "ending", last_pass)
        again = await chain.take_over_late_triggers(api, "ending", last_pass)  # a repeated hook
    scans = fake.created_scans()
    assert len(scans) == (1 if expect_scan else 0)
    if expect_scan:
        assert started is not None and scans[0]["id"] == started.id
        assert scans[0]["parameters"] == {"force": True, "reason": "a trigger at the end of a scan"}
        assert again is None  # the late ones are marked covered: no second scan
        # Each late collision now says which scan covered it, and is out of a person's way.
        assert all(chain.COLLISION_TAG in fake.runs[r]["tags"] for r in late)
    else:
        assert started is None
