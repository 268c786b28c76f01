"""The budget meter and the stop sequence against real child processes.

The sequence is SIGINT → `interrupt_grace` → SIGTERM → `grace` → SIGKILL of the process group;
each test proves one rung by a child that ignores the earlier signals. The last test runs the
stub agent's `budget=<n>` mode under a per-run token cap and measures how long after the
crossing line the agent is gone (the issue's target: within 5 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from k3sc.agent import meter, process, streams
from k3sc.usage import Billing, BudgetStop, Caps, Unit
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

HANG_GUARD_S = 60
ENV = {"PATH": os.environ["PATH"]}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def assistant(msg_id: str, tokens: int, model: str = "claude-sonnet-4-6") -> str:
    usage = {
        "input_tokens": tokens,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "usage": usage,
    }
    return json.dumps({"type": "assistant", "message": message})


# --------------------------------------------------------------------------- the meter


def feed(meter_: meter.BudgetMeter, reader: streams.StreamReader, line: str) -> BudgetStop | None:
    reader.feed(line)
    return meter_.observe(line)


def test_the_meter_stops_once_when_the_token_cap_is_passed() -> None:
    reader = streams.StreamReader()
    clock = iter([42.0])
    budget = meter.BudgetMeter(
        reader, Billing.SUBSCRIPTION, Caps(per_run_tokens=1000), clock=lambda: next(clock)
    )
    assert feed(budget, reader, assistant("m1", 600)) is None
    # The same message id again with more usage is one message, counted once.
    assert feed(budget, reader, assistant("m1", 900)) is None
    assert not budget.stop.is_set()
    assert feed(budget, reader, assistant("m2", 200)) == BudgetStop(1100, 1000, Unit.TOKENS)
    assert (budget.stop.is_set(), budget.crossed_at) == (True, 42.0)
    # Later lines change nothing: the stop is already under way.
    assert feed(budget, reader, assistant("m3", 5000)) is None
    assert budget.stopped_by == BudgetStop(1100, 1000, Unit.TOKENS)


def test_an_api_key_run_is_priced_from_its_usage_until_the_result_says_more() -> None:
    reader = streams.StreamReader()
    budget = meter.BudgetMeter(reader, Billing.API_KEY, Caps(per_run_usd=1.0))
    # 300k input tokens of Sonnet at $3/M is $0.90; 400k is $1.20.
    assert feed(budget, reader, assistant("m1", 300_000)) is None
    stop = feed(budget, reader, assistant("m2", 100_000))
    assert stop is not None and (stop.unit, stop.cap) == (Unit.DOLLARS, 1.0)
    assert stop.spent == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("billing", "caps"),
    [
        pytest.param(Billing.SUBSCRIPTION, Caps(), id="no caps at all"),
        pytest.param(
            Billing.SUBSCRIPTION, Caps(per_run_usd=0.01), id="a subscription with only a dollar cap"
        ),
        pytest.param(Billing.API_KEY, Caps(per_run_tokens=1), id="an API key with only a token cap"),
    ],
)
def test_a_meter_without_a_cap_in_its_currency_never_stops(billing: Billing, caps: Caps) -> None:
    reader = streams.StreamReader()
    budget = meter.BudgetMeter(reader, billing, caps)
    assert not budget.active
    assert feed(budget, reader, assistant("m1", 10**9)) is None
    assert not budget.stop.is_set()


def test_codex_running_totals_are_metered() -> None:
    reader = streams.StreamReader()
    budget = meter.BudgetMeter(reader, Billing.SUBSCRIPTION, Caps(per_run_tokens=1000))
    turn = {
        "type": "turn.completed",
        "usage": {"input_tokens": 900, "cached_input_tokens": 0, "output_tokens": 200},
    }
    assert feed(budget, reader, json.dumps(turn)) == BudgetStop(1100, 1000, Unit.TOKENS)


# --------------------------------------------------------------------------- the stop sequence

# Says "ready" once its handlers are set, then idles; the handlers report each signal. Raw
# os.write, not print: a signal landing inside print's flush would make the handler's print fail.
CHILD = """
    import os, signal, sys, time
    def report(name, code):
        def handler(signum, frame):
            os.write(1, name.encode() + b"\\n")
            if code is not None:
                sys.exit(code)
        return handler
    signal.signal(signal.SIGINT, report("SIGINT", {on_int}))
    signal.signal(signal.SIGTERM, report("SIGTERM", {on_term}))
    os.write(1, b"ready\\n")
    while True:
        time.sleep(0.05)
"""


async def run_and_stop(
    argv: list[str], tmp_path: Path, *, interrupt_grace: float = 1.0, grace: float = 1.0
) -> tuple[process.ProcessResult, list[str]]:
    stop = asyncio.Event()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":
            stop.set()

    result = await asyncio.wait_for(
        process.run(
            argv,
            cwd=tmp_path,
            env=ENV,
            timeout=30,
            on_line=on_line,
            grace=grace,
            stop=stop,
            interrupt_grace=interrupt_grace,
        ),
        HANG_GUARD_S,
    )
    return result, lines


async def test_a_stop_interrupts_and_an_agent_that_wraps_up_ends_there(tmp_path: Path) -> None:
    result, lines = await run_and_stop(python(CHILD.format(on_int=130, on_term=None)), tmp_path)
    assert (result.stopped, result.timed_out, result.exit_code) == (True, False, 130)
    assert lines == ["ready", "SIGINT"]


async def test_an_agent_that_ignores_the_interrupt_gets_sigterm_after_the_grace(tmp_path: Path) -> None:
    result, lines = await run_and_stop(python(CHILD.format(on_int=None, on_term=143)), tmp_path)
    assert (result.stopped, result.timed_out, result.exit_code) == (True, False, 143)
    assert lines == ["ready", "SIGINT", "SIGTERM"]


async def test_an_agent_that_ignores_both_is_killed(tmp_path: Path) -> None:
    result, lines = await run_and_stop(python(CHILD.format(on_int=None, on_term=None)), tmp_path)
    assert (result.stopped, result.timed_out, result.exit_code) == (True, False, -9)
    assert lines == ["ready", "SIGINT", "SIGTERM"]


async def test_the_interrupt_reaches_an_agent_even_when_k3sc_ignores_sigint(tmp_path: Path) -> None:
    # A worker started in the background (`k3sc up &`, nohup) ignores SIGINT, and an ignored
    # signal is inherited across exec: the agent must get the default back.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = python("import os, time; os.write(1, b'ready\\n'); time.sleep(30)")
        result, lines = await run_and_stop(child, tmp_path, interrupt_grace=10)
    finally:
        signal.signal(signal.SIGINT, previous)
    # Python's default SIGINT handling: KeyboardInterrupt, then death by SIGINT (not SIGTERM later).
    assert (result.stopped, result.exit_code, lines[0], lines[-1]) == (True, -2, "ready", "KeyboardInterrupt")


async def test_a_run_without_a_stop_request_is_not_stopped(tmp_path: Path) -> None:
    result = await process.run(
        python("print('done')"),
        cwd=tmp_path,
        env=ENV,
        timeout=30,
        on_line=lambda _: None,
        stop=asyncio.Event(),
    )
    assert (result.stopped, result.exit_code) == (False, 0)


# --------------------------------------------------------------------------- end to end with the stub


@pytest.fixture
def stub_issue(fake_github: ContractCheckedFakeGitHub) -> dict[str, str]:
    """A repository with one `stub: budget=60000` issue on the fake GitHub, as the stub's environment."""
    fake_github.add_repo("acme", "api")
    number = fake_github.add_issue("acme", "api", title="spend", author="alice", body="stub: budget=60000")
    return {
        **ENV,
        "K3SC_REPO": "acme/api",
        "K3SC_ISSUE": str(number),
        "K3SC_KIND": "implement",
        "K3SC_AGENT": "claude-a",
        "K3SC_FAMILY": "claude",
        "K3SC_BRANCH": f"issue-{number}",
        "K3SC_BASE": "main",
        "K3SC_GITHUB_API_URL": fake_github.url,
        "GITHUB_TOKEN": FAKE_GITHUB_TOKEN,
    }


async def test_a_stub_streaming_past_its_run_cap_is_stopped_within_5s(
    stub_issue: dict[str, str], fake_github: ContractCheckedFakeGitHub, tmp_path: Path
) -> None:
    reader = streams.StreamReader()
    # 10,000 tokens: crossed after about 8 budget messages (~0.8 s); unchecked it would run ~6 s.
    budget = meter.BudgetMeter(reader, Billing.SUBSCRIPTION, Caps(per_run_tokens=10_000))

    def on_line(line: str) -> None:
        reader.feed(line)
        budget.observe(line)

    started = time.monotonic()
    result = await asyncio.wait_for(
        process.run(
            [sys.executable, "-m", "k3sc.sandbox.stub_agent"],
            cwd=tmp_path,
            env=stub_issue,
            timeout=60,
            on_line=on_line,
            stop=budget.stop,
            # Bounded: SIGTERM 3 s after the interrupt, SIGKILL 1 s later, whatever the agent does.
            interrupt_grace=3,
            grace=1,
        ),
        HANG_GUARD_S,
    )
    ended = time.monotonic()
    assert budget.stopped_by is not None and budget.crossed_at is not None
    latency = ended - budget.crossed_at
    print(f"crossed {budget.crossed_at - started:.2f}s after start; stopped {latency:.3f}s later")
    assert result.stopped
    assert latency < 5.0
    # Normally the interrupt ends it (130, like Claude's interrupted turn); on a starved machine
    # SIGTERM may come first. Either way it never reached its pull request.
    assert result.exit_code in (130, -15), result
    assert budget.stopped_by.spent > 10_000
    assert not [entry for entry in fake_github.write_log if " pull #" in entry]
