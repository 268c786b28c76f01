"""A usage limit, end to end on a real server: the family rests, the other works, it comes back.

Every issue's stub hits a Claude usage limit (exit 0, `subtype: success`, `is_error: true`, preceded
by a rejected `rate_limit_event`) until 20 s after the first Claude run met it; there is more work
than Codex's two slots finish in that time. The dispatcher must
read back a FAILED run named `Parked` whose message decodes to a `LimitHit`; park the Claude family
(no Claude run starts until the reset; Codex keeps working); wake at the reset instead of backing
off; and finish both issues at `needs-human` with the parked attempts uncounted. Every run leaves a
usage artifact that the ledger's one-call read (`POST /api/artifacts/filter`) turns back into a
`UsageRecord`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from k3sc import usage
from k3sc.usage import LimitHit, UsageRecord
from tests.e2e.helpers import issue, run_up

pytestmark = pytest.mark.e2e

RESET_AFTER_S = 20  # from the first hit: long enough to see the family rest, short enough to wait for
ISSUES = 5


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _flow_runs(api: httpx.Client, owner: str) -> list[dict[str, Any]]:
    found = api.post(
        "/flow_runs/filter",
        json={
            "flow_runs": {"tags": {"all_": ["k3sc-agent-run", f"repo:{owner}/api"]}},
            "sort": "START_TIME_ASC",
        },
    )
    found.raise_for_status()
    return list(found.json())


def test_a_usage_limit_parks_the_family_the_other_works_and_it_resumes_after_the_reset(
    tmp_path: Path, prefect_api_url: str
) -> None:
    seed = {
        "owner": "parked",
        "max_slots": 2,
        "allowed_authors": ["alice"],
        "repos": [
            {
                "name": "api",
                "issues": [
                    {"title": f"task {n}", "author": "alice", "stub": f"usage-limit={RESET_AFTER_S}"}
                    for n in range(1, ISSUES + 1)
                ],
            }
        ],
    }
    summary = run_up(tmp_path, prefect_api_url, seed)
    owner = summary["owner"].lower()
    for ref in (f"#{n}" for n in range(1, ISSUES + 1)):
        row = issue(summary, ref)
        assert row["labels"] == ["needs-human"], row
        # Parked attempts are not failures: nothing went to a human for them.
        assert [a["outcome"] for a in row["attempts"] if a["outcome"] != "parked"] == [
            "success",
            "success",
        ], row

    with httpx.Client(base_url=prefect_api_url, timeout=30) as api:
        flow_runs = _flow_runs(api, owner)
        claude = [r for r in flow_runs if any(t.startswith("agent:claude-") for t in r["tags"])]
        parked = [r for r in claude if r["state"]["name"] == usage.PARKED]
        assert parked, [
            (r["name"], r["start_time"], r["state"]["name"], r["state"]["message"]) for r in flow_runs
        ]
        hits = [LimitHit.decode(r["state"]["message"]) for r in parked]
        assert all(h is not None and h.family == "claude" and h.resets_at is not None for h in hits), hits
        resets = max(h.resets_at for h in hits if h is not None and h.resets_at is not None)
        first_park = min(_time(r["end_time"]) for r in parked)

        # The family rested: no Claude run started between its first park and the reset ...
        rested = [r for r in claude if first_park < _time(r["start_time"]) < resets]
        assert rested == [], [(r["name"], r["start_time"]) for r in rested]
        # ... and came back after it, successfully.
        resumed = [r for r in claude if _time(r["start_time"]) >= resets]
        assert resumed and all(r["state"]["type"] == "COMPLETED" for r in resumed), resumed
        for flow_run in flow_runs:
            if flow_run not in parked:
                assert flow_run["state"]["type"] == "COMPLETED", flow_run["state"]

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
        assert sorted(r.verdict for r in records) == sorted(
            "usage_limit" if r in parked else "success_claimed" for r in flow_runs
        )
        assert all(r.usage is not None and r.usage.total_tokens > 0 for r in records), records
