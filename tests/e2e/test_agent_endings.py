"""What the dispatcher reads back from Prefect about an agent run's ending, on a real server.

A stub agent printing the weekly-limit stream (exit 0) must leave a FAILED run named `Parked`
whose message decodes to a `LimitHit`, and every run must leave a usage artifact that the
documented one-call read (`POST /api/artifacts/filter`) turns back into a `UsageRecord`.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from k3sc import usage
from k3sc.usage import LimitHit, UsageRecord, Window
from tests.e2e.helpers import issue, run_up

pytestmark = pytest.mark.e2e


def test_a_usage_limit_run_is_parked_and_every_run_leaves_its_usage(
    tmp_path: Path, prefect_api_url: str
) -> None:
    seed = {
        "owner": "parked",
        "max_slots": 1,
        "allowed_authors": ["alice"],
        "repos": [
            {
                "name": "api",
                "issues": [{"title": "hits the weekly limit", "author": "alice", "stub": "usage-limit"}],
            }
        ],
    }
    summary = run_up(tmp_path, prefect_api_url, seed)
    ref = issue(summary, "#1")["issue"].lower()

    with httpx.Client(base_url=prefect_api_url, timeout=30) as api:
        found = api.post(
            "/flow_runs/filter",
            json={"flow_runs": {"tags": {"all_": ["k3sc", f"issue:{ref}"]}}, "sort": "START_TIME_ASC"},
        )
        found.raise_for_status()
        flow_runs = found.json()
        claude = [r for r in flow_runs if any(t.startswith("agent:claude-") for t in r["tags"])]
        # The stub's limit is a Claude account's: Codex runs of the same issue are not held.
        assert claude, [r["tags"] for r in flow_runs]
        for flow_run in flow_runs:
            state = flow_run["state"]
            if flow_run not in claude:
                assert state["type"] == "COMPLETED", state
                continue
            assert (state["type"], state["name"]) == ("FAILED", usage.PARKED), state
            hit = LimitHit.decode(state["message"])
            assert hit is not None and (hit.family, hit.window) == ("claude", Window.WEEKLY), state["message"]
            assert hit.resets_at is not None

        # The ledger's read: one call for the runs' usage artifacts.
        artifacts = api.post(
            "/artifacts/filter",
            json={
                "artifacts": {
                    "key": {"any_": [usage.USAGE_ARTIFACT_KEY]},
                    "flow_run_id": {"any_": [r["id"] for r in flow_runs]},
                },
                "sort": "CREATED_DESC",
                "limit": 200,
            },
        )
        artifacts.raise_for_status()
        records = [UsageRecord.from_artifact_data(a["data"]) for a in artifacts.json()]
        assert len(records) == len(flow_runs)
        for record in records:
            assert (record.repo, record.issue) == (ref.split("#")[0], 1)
            expected = "usage_limit" if record.agent.startswith("claude-") else "success_claimed"
            assert record.verdict == expected, record
            assert record.usage is not None and record.usage.total_tokens > 0
