"""The chaos run, small enough for CI: the sandbox loop on a real Prefect server and real workers while
the fake GitHub fails 20 % of k3sc's requests, the server is restarted once, the agents' worker is
killed with runs in flight (and restarted, as `k3sc up` does) and one agent process is killed.

Every issue must end at `needs-human`, with no duplicate claim, run or label write, one workflow
label per issue and every attempt ended and handed off (bench/_chaos.py checks them; bench/chaos.py
is the 30-issue version with the baseline).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from k3sc.sandbox.github import CHAOS_KINDS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _chaos import Plan, run

pytestmark = pytest.mark.e2e


def test_the_loop_survives_chaos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the run restarts its own server
    plan = Plan(
        issues=6,
        rate=0.2,
        seed=1,
        server_restarts=1,
        slots=4,
        slow_agent_s=8,
        timeout=900,  # a quiet machine finishes in ~150 s; a host 3x slower took 240 s for 2 of 6
        stall=240,  # but a loop that stops moving fails after 4 minutes (orphan grace is 2)
        keep_logs=tmp_path / "logs",
    )
    result = run(plan)

    print("\n".join([*result.events, *result.unsuccessful]))
    assert result.problems == [], "\n".join(result.problems)
    assert (result.server_restarts, result.worker_kills, result.agent_kills) == (1, 1, 1)
    assert result.worker_restarts == 1
    assert set(result.faults) == set(CHAOS_KINDS), result.faults
