"""Table tests for the values that cross from an agent run to the dispatcher (k3sc.usage)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from k3sc import usage
from k3sc.usage import Billing, BudgetStop, Caps, LimitHit, Unit, Usage, UsageRecord, Window

RESET = datetime(2026, 12, 1, 5, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "hit",
    [
        pytest.param(
            LimitHit("claude", None, RESET, Window.WEEKLY, "Weekly limit reached ∙ resets 5am"),
            id="weekly claude hit with a reset survives the round trip",
        ),
        pytest.param(
            LimitHit("codex", "codex-pro-1", None, Window.UNKNOWN, "You've hit your usage limit."),
            id="a hit without a reset time keeps None",
        ),
        pytest.param(
            LimitHit("claude", "max | 2", RESET, Window.FIVE_HOUR, 'text with " | " and {json} inside'),
            id="separators and quotes in the wording do not confuse the decoder",
        ),
        pytest.param(
            LimitHit(
                "claude",
                None,
                datetime(2026, 12, 1, 16, 0, tzinfo=timezone(timedelta(hours=9))),
                Window.OPUS,
                "x",
            ),
            id="a reset in another zone keeps its offset",
        ),
    ],
)
def test_limit_hit_round_trip(hit: LimitHit) -> None:
    message = hit.encode()
    assert "\n" not in message
    assert LimitHit.decode(message) == hit


def test_limit_hit_message_reads_as_a_sentence() -> None:
    hit = LimitHit("claude", None, RESET, Window.WEEKLY, "Weekly limit reached ∙ resets 5am")
    assert hit.encode().startswith("usage limit: claude weekly window until 2026-12-01 05:05 UTC | {")


def test_a_long_wording_is_cut_to_one_short_line() -> None:
    hit = LimitHit("claude", None, None, Window.UNKNOWN, "word\n" * 200)
    decoded = LimitHit.decode(hit.encode())
    assert decoded is not None
    assert len(decoded.source) == 200
    assert "\n" not in decoded.source


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(BudgetStop(5.1234, 5.0, Unit.DOLLARS), id="dollars survive the round trip"),
        pytest.param(BudgetStop(1_200_000, 1_000_000, Unit.TOKENS), id="tokens survive the round trip"),
    ],
)
def test_budget_stop_round_trip(stop: BudgetStop) -> None:
    assert BudgetStop.decode(stop.encode()) == stop


def test_budget_stop_message_reads_as_a_sentence() -> None:
    assert (
        BudgetStop(1_200_000, 1_000_000, Unit.TOKENS)
        .encode()
        .startswith("stopped by budget: 1,200,000 tokens of a 1,000,000 tokens per-run cap | ")
    )
    assert (
        BudgetStop(4.1, 4, Unit.DOLLARS)
        .encode()
        .startswith("stopped by budget: $4.10 of a $4.00 per-run cap")
    )


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(None, id="no message"),
        pytest.param("", id="an empty message"),
        pytest.param("exit code 1 after 3.0s: agent failed", id="an ordinary failure"),
        pytest.param("usage limit: claude weekly window", id="the sentence without its data"),
        pytest.param("usage limit: x | not json", id="broken data"),
        pytest.param('usage limit: x | {"window": "weekly"}', id="data without a family"),
        pytest.param('usage limit: x | {"family": "claude", "window": "monthly"}', id="an unknown window"),
        pytest.param('stopped by budget: x | {"spent": 1, "cap": 2, "unit": "euros"}', id="an unknown unit"),
        pytest.param("stopped by budget: x | [1, 2]", id="data that is not an object"),
    ],
)
def test_messages_that_are_not_encodings_decode_to_none(message: str | None) -> None:
    assert LimitHit.decode(message) is None
    assert BudgetStop.decode(message) is None


def test_limit_and_budget_encodings_are_not_mistaken_for_each_other() -> None:
    assert BudgetStop.decode(LimitHit("claude", None, None, Window.UNKNOWN, "x").encode()) is None
    assert LimitHit.decode(BudgetStop(2, 1, Unit.TOKENS).encode()) is None


@pytest.mark.parametrize(
    ("rate_limit_type", "text", "expected"),
    [
        pytest.param("five_hour", "", Window.FIVE_HOUR, id="five_hour is the five-hour window"),
        pytest.param("seven_day", "", Window.WEEKLY, id="seven_day is the weekly window"),
        pytest.param("seven_day_opus", "", Window.OPUS, id="seven_day_opus is the opus window"),
        pytest.param("seven_day_sonnet", "", Window.SONNET, id="seven_day_sonnet is the sonnet window"),
        pytest.param("overage", "", Window.OVERAGE, id="overage is the overage window"),
        pytest.param(None, "Weekly limit reached ∙ resets 5am", Window.WEEKLY, id="weekly wording"),
        pytest.param(None, "You've hit your session limit · resets 3:50pm", Window.FIVE_HOUR, id="session"),
        pytest.param(None, "You've hit your Opus limit", Window.OPUS, id="opus wording"),
        pytest.param(None, "You're out of extra usage · resets 4pm", Window.OVERAGE, id="extra usage"),
        pytest.param(None, "You've hit your limit · resets 4pm", Window.UNKNOWN, id="plain limit is unknown"),
        pytest.param("monthly", "", Window.UNKNOWN, id="an unknown type is unknown"),
    ],
)
def test_window_of(rate_limit_type: str | None, text: str, expected: Window) -> None:
    assert usage.window_of(rate_limit_type, text) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param({"CLAUDE_CODE_OAUTH_TOKEN"}, Billing.SUBSCRIPTION, id="a Claude OAuth token is a plan"),
        pytest.param({"ANTHROPIC_API_KEY"}, Billing.API_KEY, id="an Anthropic key is per token"),
        pytest.param({"CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"}, Billing.API_KEY, id="a key wins"),
        pytest.param({"AWS_ACCESS_KEY_ID"}, Billing.API_KEY, id="Bedrock is per token"),
        pytest.param({"CODEX_AUTH_JSON"}, Billing.SUBSCRIPTION, id="a ChatGPT login is a plan"),
        pytest.param({"OPENAI_API_KEY"}, Billing.API_KEY, id="an OpenAI key is per token"),
        pytest.param(set(), Billing.SUBSCRIPTION, id="no credentials means the CLI's own login"),
    ],
)
def test_billing_of(names: set[str], expected: Billing) -> None:
    assert usage.billing_of(names) == expected


def test_subscriptions_are_budgeted_in_tokens_and_api_keys_in_dollars() -> None:
    assert Billing.SUBSCRIPTION.unit is Unit.TOKENS
    assert Billing.API_KEY.unit is Unit.DOLLARS


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param("claude-sonnet-4-5-20250929", (3.0, 15.0, 3.75, 0.3), id="sonnet by prefix"),
        pytest.param("claude-opus-4-5-20251101", (5.0, 25.0, 6.25, 0.5), id="opus 4.5 by the longer prefix"),
        pytest.param("claude-opus-4-1", (15.0, 75.0, 18.75, 1.5), id="older opus"),
        pytest.param("claude-3-5-haiku-20241022", (0.8, 4.0, 1.0, 0.08), id="haiku 3.5"),
        pytest.param("mystery-model", (15.0, 75.0, 18.75, 1.5), id="an unknown model is priced dearest"),
        pytest.param(None, (15.0, 75.0, 18.75, 1.5), id="no model is priced dearest"),
    ],
)
def test_price_of(model: str | None, expected: tuple[float, float, float, float]) -> None:
    assert usage.price_of(model) == expected


def test_estimate_cost_uses_the_main_models_prices() -> None:
    used = Usage(1_000_000, 100_000, 0, 1_000_000, 2_100_000, None, ("claude-sonnet-4-6",), 3)
    assert usage.estimate_cost(used) == pytest.approx(3.0 + 1.5 + 0.3)


TOKENS_ONLY = Caps(per_run_tokens=1000, per_day_tokens=10_000)
DOLLARS_ONLY = Caps(per_run_usd=1.0, per_day_usd=10.0)


def used(tokens: int, cost: float | None = None) -> Usage:
    return Usage(tokens, 0, 0, 0, tokens, cost, ("claude-sonnet-4-6",), 1)


@pytest.mark.parametrize(
    ("live", "billing", "caps", "expected"),
    [
        pytest.param(used(999), Billing.SUBSCRIPTION, TOKENS_ONLY, None, id="under the token cap runs on"),
        pytest.param(used(1000), Billing.SUBSCRIPTION, TOKENS_ONLY, None, id="exactly at the cap runs on"),
        pytest.param(
            used(1001),
            Billing.SUBSCRIPTION,
            TOKENS_ONLY,
            BudgetStop(1001, 1000, Unit.TOKENS),
            id="past the token cap stops",
        ),
        pytest.param(
            used(10**9, cost=500.0),
            Billing.SUBSCRIPTION,
            DOLLARS_ONLY,
            None,
            id="a subscription is never stopped for dollars",
        ),
        pytest.param(
            used(10, cost=1.5),
            Billing.API_KEY,
            DOLLARS_ONLY,
            BudgetStop(1.5, 1.0, Unit.DOLLARS),
            id="an API key past its dollar cap stops",
        ),
        pytest.param(
            used(400_000),
            Billing.API_KEY,
            DOLLARS_ONLY,
            BudgetStop(1.2, 1.0, Unit.DOLLARS),
            id="without a reported cost the price table decides",
        ),
        pytest.param(
            used(10**9), Billing.API_KEY, TOKENS_ONLY, None, id="an API key is never stopped for tokens"
        ),
        pytest.param(None, Billing.SUBSCRIPTION, TOKENS_ONLY, None, id="no usage yet runs on"),
    ],
)
def test_over_run_cap(live: Usage | None, billing: Billing, caps: Caps, expected: BudgetStop | None) -> None:
    stop = usage.over_run_cap(live, billing, caps)
    if expected is None or stop is None:
        assert stop == expected
    else:
        assert (stop.unit, stop.cap) == (expected.unit, expected.cap)
        assert stop.spent == pytest.approx(expected.spent)


@pytest.mark.parametrize(
    ("spent", "estimate", "billing", "caps", "expected"),
    [
        pytest.param(0, 500, Billing.SUBSCRIPTION, Caps(), None, id="no caps admits everything"),
        pytest.param(9000, 500, Billing.SUBSCRIPTION, TOKENS_ONLY, None, id="room left admits"),
        pytest.param(
            9500, 500, Billing.SUBSCRIPTION, TOKENS_ONLY, None, id="landing exactly on the cap admits"
        ),
        pytest.param(
            9600,
            500,
            Billing.SUBSCRIPTION,
            TOKENS_ONLY,
            "daily budget: 9,600 tokens spent + 500 tokens expected would pass 10,000 tokens",
            id="a run that would pass the daily token cap waits",
        ),
        pytest.param(
            10_000,
            0,
            Billing.SUBSCRIPTION,
            TOKENS_ONLY,
            "daily budget spent: 10,000 tokens of 10,000 tokens",
            id="a spent budget admits nothing more today",
        ),
        pytest.param(
            9.5,
            1.0,
            Billing.API_KEY,
            DOLLARS_ONLY,
            "daily budget: $9.50 spent + $1.00 expected would pass $10.00",
            id="an API-key run that would pass the daily dollar cap waits",
        ),
        pytest.param(
            10**9, 10**6, Billing.SUBSCRIPTION, DOLLARS_ONLY, None, id="dollar caps never hold a subscription"
        ),
        pytest.param(
            10**3, 10**2, Billing.API_KEY, TOKENS_ONLY, None, id="token caps never hold an API-key account"
        ),
    ],
)
def test_admit(spent: float, estimate: float, billing: Billing, caps: Caps, expected: str | None) -> None:
    assert usage.admit(spent, estimate, billing, caps) == expected


RECORD = UsageRecord(
    repo="acme/api",
    issue=7,
    kind="implement",
    agent="claude-a",
    attempt=2,
    billing=Billing.SUBSCRIPTION,
    started=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    duration_s=12.3,
    verdict="success_claimed",
    exit_code=0,
    usage=Usage(10, 20, 30, 40, 100, 0.25, ("claude-sonnet-4-6", "claude-haiku-4-5"), 3),
)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(RECORD, id="a run with usage"),
        pytest.param(
            UsageRecord(**{**RECORD.__dict__, "usage": None, "exit_code": None}), id="a run that used nothing"
        ),
    ],
)
def test_usage_record_round_trips_through_the_artifact_data(record: UsageRecord) -> None:
    # Prefect stores a table artifact's data as the JSON text of its rows.
    data = json.dumps([record.usage_row()])
    assert UsageRecord.from_artifact_data(data) == record


def test_the_usage_row_is_flat_for_the_prefect_ui() -> None:
    row = RECORD.usage_row()
    assert row["models"] == "claude-sonnet-4-6, claude-haiku-4-5"
    assert all(not isinstance(value, (dict, list)) for value in row.values())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("not json", id="not json"),
        pytest.param("[]", id="no rows"),
        pytest.param('[{"repo": "acme/api"}]', id="a row missing columns"),
        pytest.param('{"repo": "acme/api"}', id="an object instead of a table"),
    ],
)
def test_artifact_data_that_is_not_a_usage_row_is_refused(data: str) -> None:
    with pytest.raises(ValueError, match="usage"):
        UsageRecord.from_artifact_data(data)


@pytest.mark.parametrize(
    ("unit", "expected_tokens", "expected_dollars"),
    [
        pytest.param(Unit.TOKENS, 100.0, None, id="tokens count all four"),
        pytest.param(Unit.DOLLARS, None, 0.25, id="dollars are the reported cost"),
    ],
)
def test_spent(unit: Unit, expected_tokens: float | None, expected_dollars: float | None) -> None:
    assert RECORD.spent(unit) == (expected_tokens if unit is Unit.TOKENS else expected_dollars)
