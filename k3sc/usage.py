"""What an agent run used and why it stopped, as values that cross from the run to the dispatcher.

Pure (no I/O, no clock): the agent flow builds these from the stream, the dispatcher reads them
back from Prefect, and both sides share the encodings here so neither parses the other's prose.

* A run that hit a usage limit ends as Prefect state type FAILED, state name `Parked`, message
  `LimitHit.encode()`; the dispatcher parks the family (or account) until `resets_at` and does not
  count a failure.
* A run stopped by the budget meter ends FAILED, name `BudgetStopped`, message
  `BudgetStop.encode()`; the dispatcher records "stopped by budget" and does not retry it.
* Every run publishes its `Usage` as a table artifact with key `k3sc-agent-usage` (one row,
  `usage_row()`), linked to its flow run. The daily ledger reads them back with one call:
  `POST /api/artifacts/filter` with body
  `{"artifacts": {"key": {"any_": ["k3sc-agent-usage"]}, "flow_run_id": {"any_": [<run ids>]}},
  "sort": "CREATED_DESC", "limit": 200}` (or without `flow_run_id`, paging until `created` is
  before midnight); each artifact's `data` is a JSON string of a one-row list, and
  `UsageRecord.from_artifact_data(data)` turns it back into values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k3sc.config import BudgetConfig

PARKED = "Parked"
BUDGET_STOPPED = "BudgetStopped"
USAGE_ARTIFACT_KEY = "k3sc-agent-usage"

_SOURCE_MAX = 200
_SEPARATOR = " | "


class Window(StrEnum):
    """Which quota window a limit hit exhausted."""

    FIVE_HOUR = "five_hour"
    WEEKLY = "weekly"
    OPUS = "opus"
    SONNET = "sonnet"
    OVERAGE = "overage"
    UNKNOWN = "unknown"


# Claude's `rate_limit_event.rate_limit_info.rateLimitType` values.
_RATE_LIMIT_TYPES = {
    "five_hour": Window.FIVE_HOUR,
    "seven_day": Window.WEEKLY,
    "seven_day_opus": Window.OPUS,
    "seven_day_sonnet": Window.SONNET,
    "overage": Window.OVERAGE,
}


def window_of(rate_limit_type: str | None, text: str = "") -> Window:
    """The window from Claude's `rateLimitType`, else from the wording ("Weekly limit reached")."""
    if rate_limit_type and rate_limit_type in _RATE_LIMIT_TYPES:
        return _RATE_LIMIT_TYPES[rate_limit_type]
    lowered = text.lower()
    if "opus" in lowered:
        return Window.OPUS
    if "sonnet" in lowered:
        return Window.SONNET
    if "weekly" in lowered or "week" in lowered:
        return Window.WEEKLY
    if "session limit" in lowered or "5-hour" in lowered or "5 hour" in lowered:
        return Window.FIVE_HOUR
    if "extra usage" in lowered:
        return Window.OVERAGE
    return Window.UNKNOWN


class Unit(StrEnum):
    """The currency of a budget: dollars for API-key accounts, tokens for subscriptions."""

    DOLLARS = "dollars"
    TOKENS = "tokens"


class Billing(StrEnum):
    """How an agent account pays: per token (API key) or from a plan's windows (subscription)."""

    API_KEY = "api_key"
    SUBSCRIPTION = "subscription"

    @property
    def unit(self) -> Unit:
        # On a subscription the CLI's dollar figures are list-price estimates, never charges.
        return Unit.DOLLARS if self is Billing.API_KEY else Unit.TOKENS


# Credential variables that mean "pay per token"; anything else (an OAuth token, a ChatGPT login)
# is a subscription.
_API_KEY_VARS = frozenset({"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY"})


def billing_of(credential_names: frozenset[str] | set[str]) -> Billing:
    """API key if the family's credentials include a per-token key, else subscription."""
    if credential_names & _API_KEY_VARS or any(n.startswith("AWS_") for n in credential_names):
        return Billing.API_KEY
    return Billing.SUBSCRIPTION


# ---------------------------------------------------------------------- usage


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one run; `total_tokens` is the sum of the four token counts.

    `cost_usd` is what the CLI reported (Claude) or the price table's estimate; on a
    subscription it is an API-equivalent figure, not money spent.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    models: tuple[str, ...] = ()
    turns: int | None = None

    @classmethod
    def of(
        cls,
        tokens: tuple[int, int, int, int],
        *,
        cost: float | None,
        models: tuple[str, ...],
        turns: int | None,
    ) -> Usage | None:
        """A Usage from (input, output, cache creation, cache read), or None when nothing was used."""
        if sum(tokens) <= 0 and not cost:
            return None
        return cls(*tokens, total_tokens=sum(tokens), cost_usd=cost, models=models, turns=turns)

    @property
    def model(self) -> str | None:
        """The main model (the first one the run used)."""
        return self.models[0] if self.models else None

    def as_dict(self) -> dict[str, Any]:
        """The snake_case keys of the original `[usage] {json}` line, for artifacts and ledgers."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "models": list(self.models),
            "turns": self.turns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Inverse of `as_dict`; `models` may also be a comma-separated string (table cells)."""
        models = data.get("models") or ()
        if isinstance(models, str):
            models = tuple(m.strip() for m in models.split(",") if m.strip())
        cost = data.get("cost_usd")
        turns = data.get("turns")
        return cls(
            input_tokens=_whole(data.get("input_tokens")),
            output_tokens=_whole(data.get("output_tokens")),
            cache_creation_tokens=_whole(data.get("cache_creation_tokens")),
            cache_read_tokens=_whole(data.get("cache_read_tokens")),
            total_tokens=_whole(data.get("total_tokens")),
            cost_usd=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
            models=tuple(str(m) for m in models),
            turns=turns if isinstance(turns, int) and not isinstance(turns, bool) else None,
        )


# List prices in dollars per million tokens: input, output, cache write, cache read. Matched by
# model-name prefix, longest first; an unknown model is priced at the dearest row, so an API-key
# budget errs towards stopping early rather than late.
PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-4-5": (5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-6": (5.0, 25.0, 6.25, 0.5),
    "claude-opus": (15.0, 75.0, 18.75, 1.5),
    "claude-sonnet": (3.0, 15.0, 3.75, 0.3),
    "claude-3-5-haiku": (0.8, 4.0, 1.0, 0.08),
    "claude-haiku": (1.0, 5.0, 1.25, 0.1),
    "gpt-5": (1.25, 10.0, 0.0, 0.125),
}
_DEAREST = max(PRICES.values(), key=lambda row: row[1])


def price_of(model: str | None) -> tuple[float, float, float, float]:
    """Dollars per million tokens for `model` (see PRICES)."""
    name = (model or "").lower()
    for prefix in sorted(PRICES, key=len, reverse=True):
        if name.startswith(prefix):
            return PRICES[prefix]
    return _DEAREST


def estimate_cost(usage: Usage) -> float:
    """The list-price cost of `usage` at its main model's prices."""
    rates = price_of(usage.model)
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_creation_tokens, usage.cache_read_tokens)
    return sum(c * r for c, r in zip(counts, rates, strict=True)) / 1_000_000


@dataclass(frozen=True)
class UsageRecord:
    """One run's row in the usage artifact: who ran what, how it ended, and its usage."""

    repo: str
    issue: int
    kind: str
    agent: str
    attempt: int
    billing: Billing
    started: datetime
    duration_s: float
    verdict: str
    exit_code: int | None
    usage: Usage | None

    def spent(self, unit: Unit) -> float:
        """What this run counts against a budget in `unit` (0 when it used nothing)."""
        if self.usage is None:
            return 0.0
        if unit is Unit.TOKENS:
            return float(self.usage.total_tokens)
        return self.usage.cost_usd if self.usage.cost_usd is not None else estimate_cost(self.usage)

    def usage_row(self) -> dict[str, Any]:
        """The artifact's one table row (flat, so the Prefect UI shows it as columns)."""
        row: dict[str, Any] = {
            "repo": self.repo,
            "issue": self.issue,
            "kind": self.kind,
            "agent": self.agent,
            "attempt": self.attempt,
            "billing": self.billing.value,
            "started": self.started.isoformat(timespec="seconds"),
            "duration_s": round(self.duration_s, 1),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
        }
        if self.usage is not None:
            row.update(self.usage.as_dict())
            row["models"] = ", ".join(self.usage.models)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UsageRecord:
        """Inverse of `usage_row`; ValueError when a required column is missing or malformed."""
        try:
            exit_code = row.get("exit_code")
            return cls(
                repo=str(row["repo"]),
                issue=int(row["issue"]),
                kind=str(row["kind"]),
                agent=str(row["agent"]),
                attempt=int(row["attempt"]),
                billing=Billing(row["billing"]),
                started=datetime.fromisoformat(str(row["started"])),
                duration_s=float(row["duration_s"]),
                verdict=str(row["verdict"]),
                exit_code=exit_code if isinstance(exit_code, int) else None,
                usage=Usage.from_dict(row) if "total_tokens" in row else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a k3sc usage row: {exc}") from None

    @classmethod
    def from_artifact_data(cls, data: str) -> UsageRecord:
        """From a usage artifact's `data` (a JSON list with one row); ValueError if it is not one."""
        try:
            rows = json.loads(data)
        except ValueError:
            raise ValueError("usage artifact data is not JSON") from None
        if not isinstance(rows, list) or len(rows) != 1 or not isinstance(rows[0], dict):
            raise ValueError("usage artifact data is not a one-row table")
        return cls.from_row(rows[0])


# ---------------------------------------------------------------------- limits and budgets


@dataclass(frozen=True)
class LimitHit:
    """A run ended at an account's usage limit; the family (or account) rests until `resets_at`.

    `resets_at` is None when the CLI gave no readable time; the dispatcher then picks a wait.
    `source` is the CLI's own wording (or the signal's name), for people reading the state.
    """

    family: str
    account: str | None
    resets_at: datetime | None
    window: Window
    source: str

    @property
    def headline(self) -> str:
        """The sentence for people: `usage limit: claude weekly window until 2026-12-01 05:05 UTC`."""
        who = f"{self.family}/{self.account}" if self.account else self.family
        until = f" until {self.resets_at:%Y-%m-%d %H:%M %Z}".rstrip() if self.resets_at else ""
        return f"usage limit: {who} {self.window.value} window{until}"

    def encode(self) -> str:
        """One line: the headline, then ` | ` and JSON for `decode`."""
        data = {
            "family": self.family,
            "account": self.account,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "window": self.window.value,
            "source": _one_line(self.source),
        }
        return self.headline + _SEPARATOR + json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, message: str | None) -> LimitHit | None:
        """The LimitHit `encode` wrote into `message`, or None if the message is not one."""
        data = _payload(message, "usage limit: ")
        if data is None:
            return None
        try:
            resets = data.get("resets_at")
            account = data.get("account")
            return cls(
                family=str(data["family"]),
                account=str(account) if account is not None else None,
                resets_at=datetime.fromisoformat(resets) if isinstance(resets, str) else None,
                window=Window(data.get("window", Window.UNKNOWN)),
                source=str(data.get("source", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class BudgetStop:
    """A run stopped by k3sc's budget meter: `spent` passed the per-run `cap`, both in `unit`."""

    spent: float
    cap: float
    unit: Unit

    @property
    def headline(self) -> str:
        """The sentence for people: `stopped by budget: $4.10 of a $4.00 per-run cap`."""
        spent, cap = format_amount(self.spent, self.unit), format_amount(self.cap, self.unit)
        return f"stopped by budget: {spent} of a {cap} per-run cap"

    def encode(self) -> str:
        """One line: the headline, then ` | ` and JSON for `decode`."""
        data = {"spent": self.spent, "cap": self.cap, "unit": self.unit.value}
        return self.headline + _SEPARATOR + json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, message: str | None) -> BudgetStop | None:
        """The BudgetStop `encode` wrote into `message`, or None if the message is not one."""
        data = _payload(message, "stopped by budget: ")
        if data is None:
            return None
        try:
            spent, cap = float(data["spent"]), float(data["cap"])
            return cls(spent=spent, cap=cap, unit=Unit(data["unit"]))
        except (KeyError, TypeError, ValueError):
            return None


def format_amount(amount: float, unit: Unit) -> str:
    """`$4.10` or `1,234,567 tokens`."""
    return f"${amount:,.2f}" if unit is Unit.DOLLARS else f"{amount:,.0f} tokens"


@dataclass(frozen=True)
class Caps:
    """Budget caps (config `budget`); None means no cap of that kind."""

    per_run_usd: float | None = None
    per_day_usd: float | None = None
    per_run_tokens: int | None = None
    per_day_tokens: int | None = None

    @classmethod
    def of(cls, budget: BudgetConfig) -> Caps:
        """The caps of config `budget`."""
        return cls(budget.per_run_usd, budget.per_day_usd, budget.per_run_tokens, budget.per_day_tokens)

    def per_run(self, unit: Unit) -> float | None:
        return self.per_run_usd if unit is Unit.DOLLARS else _float_or_none(self.per_run_tokens)

    def per_day(self, unit: Unit) -> float | None:
        return self.per_day_usd if unit is Unit.DOLLARS else _float_or_none(self.per_day_tokens)


def over_run_cap(usage: Usage | None, billing: Billing, caps: Caps) -> BudgetStop | None:
    """The BudgetStop for a run whose live usage has passed its per-run cap, else None."""
    unit = billing.unit
    cap = caps.per_run(unit)
    if cap is None or usage is None:
        return None
    if unit is Unit.TOKENS:
        spent = float(usage.total_tokens)
    else:
        spent = usage.cost_usd if usage.cost_usd is not None else estimate_cost(usage)
    return BudgetStop(spent=spent, cap=cap, unit=unit) if spent > cap else None


def admit(spent_today: float, estimate: float, billing: Billing, caps: Caps) -> str | None:
    """Whether a new run fits today's budget: None to admit it, else the reason it waits.

    Args:
        spent_today: what today's runs of this billing kind spent, in `billing.unit`.
        estimate: what the new run is expected to spend, in the same unit.
        billing: the account kind the run would use; it picks the currency.
        caps: the configured caps.
    """
    unit = billing.unit
    cap = caps.per_day(unit)
    # No daily cap in this currency: nothing to hold back.
    if cap is None:
        return None
    # Already at or past the cap: nothing more today, however small.
    if spent_today >= cap:
        return f"daily budget spent: {format_amount(spent_today, unit)} of {format_amount(cap, unit)}"
    # The next run would pass the cap.
    if spent_today + estimate > cap:
        return (
            f"daily budget: {format_amount(spent_today, unit)} spent + {format_amount(estimate, unit)} "
            f"expected would pass {format_amount(cap, unit)}"
        )
    return None


def admission(records: list[UsageRecord], caps: Caps) -> dict[str, str]:
    """Families whose next run would pass today's budget, with why (the dispatcher's refusal).

    `records` are today's runs. A family's billing is that of its latest run today (a family with
    no run today has spent nothing and is admitted); what it is expected to spend is the mean of
    its runs today. Spending is summed per currency across families, as the caps are per day.
    """
    spent: dict[Unit, float] = {}
    for record in records:
        spent[record.billing.unit] = spent.get(record.billing.unit, 0.0) + record.spent(record.billing.unit)
    held: dict[str, str] = {}
    for family in sorted({r.agent.split("-", 1)[0] for r in records}):
        own = sorted((r for r in records if r.agent.split("-", 1)[0] == family), key=lambda r: r.started)
        billing = own[-1].billing
        estimate = sum(r.spent(billing.unit) for r in own) / len(own)
        reason = admit(spent.get(billing.unit, 0.0), estimate, billing, caps)
        if reason is not None:
            held[family] = reason
    return held


# ---------------------------------------------------------------------- helpers


def _payload(message: str | None, prefix: str) -> dict[str, Any] | None:
    if not message or not message.startswith(prefix):
        return None
    # The sentence may hold the separator too (an account name); the data is the first suffix
    # after a separator that parses as a JSON object.
    start = message.find(_SEPARATOR)
    while start >= 0:
        try:
            data = json.loads(message[start + len(_SEPARATOR) :])
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        start = message.find(_SEPARATOR, start + 1)
    return None


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _SOURCE_MAX else line[: _SOURCE_MAX - 1] + "…"


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float_or_none(value: int | None) -> float | None:
    return None if value is None else float(value)


__all__ = [
    "BUDGET_STOPPED",
    "PARKED",
    "PRICES",
    "USAGE_ARTIFACT_KEY",
    "Billing",
    "BudgetStop",
    "Caps",
    "LimitHit",
    "Unit",
    "Usage",
    "UsageRecord",
    "Window",
    "admission",
    "admit",
    "billing_of",
    "estimate_cost",
    "format_amount",
    "over_run_cap",
    "price_of",
    "window_of",
]
