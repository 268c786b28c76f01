"""How an agent run's ending becomes its Prefect state: the names and messages the dispatcher reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prefect.client.schemas.objects import StateType

from flows.agent import final_state
from k3sc import usage
from k3sc.agent.process import ProcessResult
from k3sc.agent.streams import StreamSummary, Verdict
from k3sc.usage import BudgetStop, LimitHit, Unit, Window

RESET = datetime(2026, 12, 1, 5, 5, tzinfo=UTC)


def ended(code: int | None = 0, *, timed_out: bool = False, stopped: bool = False) -> ProcessResult:
    return ProcessResult(
        exit_code=code, timed_out=timed_out, duration_s=3.0, lines=10, tail=(), stopped=stopped
    )


LIMIT = StreamSummary(Verdict.USAGE_LIMIT, "usage limit: Weekly limit reached ∙ resets 5am", resets_at=RESET,
                      window=Window.WEEKLY)  # fmt: skip


@pytest.mark.parametrize(
    ("result", "summary", "budget", "expected"),
    [
        pytest.param(ended(0), StreamSummary(Verdict.SUCCESS_CLAIMED, "done"), None,
                     (StateType.COMPLETED, "Completed", "exit 0 after 3.0s"), id="a clean exit completes"),
        pytest.param(ended(0), LIMIT, None,
                     (StateType.FAILED, "Parked",
                      LimitHit("claude", None, RESET, Window.WEEKLY, LIMIT.reason).encode()),
                     id="a usage limit exiting 0 is Parked with the LimitHit"),
        pytest.param(ended(1), LIMIT, None,
                     (StateType.FAILED, "Parked",
                      LimitHit("claude", None, RESET, Window.WEEKLY, LIMIT.reason).encode()),
                     id="a usage limit exiting 1 is Parked too"),
        pytest.param(ended(130, stopped=True), StreamSummary(Verdict.AGENT_FAILED, "interrupted"),
                     BudgetStop(10_500, 10_000, Unit.TOKENS),
                     (StateType.FAILED, "BudgetStopped", BudgetStop(10_500, 10_000, Unit.TOKENS).encode()),
                     id="a budget stop is BudgetStopped with the BudgetStop"),
        pytest.param(ended(None, timed_out=True), StreamSummary(Verdict.BUDGET_STOPPED, "timeout"), None,
                     (StateType.FAILED, "Failed", "timed out after 60s"), id="a timeout fails"),
        pytest.param(ended(1), StreamSummary(Verdict.AGENT_FAILED, "boom"), None,
                     (StateType.FAILED, "Failed", "exit code 1 after 3.0s: boom"), id="a failure fails"),
    ],
)  # fmt: skip
def test_final_state(
    result: ProcessResult,
    summary: StreamSummary,
    budget: BudgetStop | None,
    expected: tuple[StateType, str, str],
) -> None:
    state = final_state(result, summary, 60, family="claude", budget=budget)
    assert (state.type, state.name, state.message) == expected


def test_the_dispatcher_decodes_what_the_states_carry() -> None:
    parked = final_state(ended(0), LIMIT, 60, family="claude")
    assert parked.name == usage.PARKED
    assert LimitHit.decode(parked.message) == LimitHit("claude", None, RESET, Window.WEEKLY, LIMIT.reason)
    stopped = final_state(ended(130), LIMIT, 60, family="claude", budget=BudgetStop(2.5, 2.0, Unit.DOLLARS))
    assert (stopped.name, BudgetStop.decode(stopped.message)) == (
        usage.BUDGET_STOPPED,
        BudgetStop(2.5, 2.0, Unit.DOLLARS),
    )
