"""What Claude Code and Codex print when a limit or an error ends a run, and when it resets.

Kept apart from `streams` because these are vendor texts that change under our feet (Claude's
"usage limit reached|<epoch>" and "You've hit your limit · resets 3pm", Codex's
"usage_limit_reached" and "try again at 9:01 AM" have all appeared): one place to add a new
wording, with table tests beside it.
The patterns are only ever applied to error positions (synthetic API-error messages, error
results, the CLI's plain-text tail), never to the model's prose, which may quote them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A reset time read from "resets 4pm (Asia/Tokyo)" is rounded by the CLI; wait a little longer.
TEXT_RESET_MARGIN = timedelta(minutes=5)

QUOTA = re.compile(
    r"You[’']ve hit your (?:[\w-]+ )?limit|Claude AI usage limit reached|You[’']re out of extra usage"
    r"|usage_limit_reached|\b(?:weekly|session|opus|sonnet|daily|5-hour) limit reached",
    re.IGNORECASE,
)
TRANSIENT = re.compile(
    r"overloaded|temporarily limiting requests|Rate limit reached for|Please try again in \d"
    r"|Internal server error",
    re.IGNORECASE,
)
AUTH = re.compile(
    r"Invalid API key|Please run /login|OAuth token (?:has )?expired|authentication_failed"
    r"|oauth_org_not_allowed|Quota exceeded\. Check your plan and billing|credit balance is too low"
    r"|billing_error|401 Unauthorized",
    re.IGNORECASE,
)
BUDGET = re.compile(r"token budget exhausted|Reached max turns", re.IGNORECASE)

# Claude's typed `error` values on assistant messages and `result.subtype`s, by verdict.
AUTH_ERRORS = frozenset({"authentication_failed", "oauth_org_not_allowed", "billing_error"})
TRANSIENT_ERRORS = frozenset({"server_error", "overloaded_error", "rate_limit"})
BUDGET_SUBTYPES = frozenset({"error_max_budget_usd", "error_max_turns"})

_EPOCH = re.compile(r"usage limit reached\|(\d{9,13})", re.IGNORECASE)
# The zone is optional: "Weekly limit reached ∙ resets 5am" is in the CLI's local zone, which is
# the zone of the machine it ran on, i.e. of the `now` the caller passes.
_RESETS = re.compile(
    r"resets (?:at )?(?:(?P<month>[A-Z][a-z]{2,8})\.? (?P<day>\d{1,2}),? (?:at )?)?"
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>[ap]m)\b(?:\s*\((?P<tz>[^)]+)\))?",
    re.IGNORECASE,
)
_TRY_AGAIN = re.compile(
    r"try again at (?P<month>[A-Z][a-z]{2,8})\.? (?P<day>\d{1,2})(?:st|nd|rd|th)?,? (?P<year>\d{4}),? "
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*(?P<ampm>[AP]M)",
    re.IGNORECASE,
)
# Codex without a date ("try again at 9:01 AM."): the next such time in the local zone.
_TRY_AGAIN_CLOCK = re.compile(
    r"try again at (?P<hour>\d{1,2}):(?P<minute>\d{2})\s*(?P<ampm>[AP]M)", re.IGNORECASE
)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}  # noqa: SIM905


def from_epoch(value: float | None) -> datetime | None:
    """An aware UTC datetime from epoch seconds (or milliseconds, which some CLIs print)."""
    if value is None or value <= 0:
        return None
    if value > 1e12:
        value /= 1000
    return datetime.fromtimestamp(value, UTC)


def resets_from_text(text: str, now: datetime | None) -> datetime | None:
    """Best-effort reset time from a limit message, in UTC; None if it cannot be read.

    `Claude AI usage limit reached|<epoch>` is exact. "resets 4pm (Asia/Tokyo)" and Codex's
    "try again at Apr 28th, 2026 10:03 PM", "resets 5am" and "try again at 9:01 AM" (no zone:
    read in `now`'s zone, which should be the machine's local one, as the CLI's is) need `now`
    and get `TEXT_RESET_MARGIN` added.
    """
    if match := _EPOCH.search(text):
        return from_epoch(float(match.group(1)))
    if now is None:
        return None
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if match := _RESETS.search(text):
        when = _next_clock_time(match, now)
    elif match := _TRY_AGAIN.search(text):
        when = _absolute_time(match, now)
    elif match := _TRY_AGAIN_CLOCK.search(text):
        when = _next_clock_time(match, now)
    else:
        return None
    return None if when is None else when.astimezone(UTC) + TEXT_RESET_MARGIN


def _next_clock_time(match: re.Match[str], now: datetime) -> datetime | None:
    """The first moment at or after `now` showing the matched wall-clock time in its zone
    (the named zone, else `now`'s own)."""
    groups = match.groupdict()
    local_now = now
    if groups.get("tz"):
        try:
            local_now = now.astimezone(ZoneInfo(groups["tz"].strip()))
        except (ZoneInfoNotFoundError, ValueError):
            return None
    hour = _hour24(int(match["hour"]), match["ampm"])
    minute = int(match["minute"] or 0)
    if hour is None or minute > 59:
        return None
    if not groups.get("month"):
        when = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return when if when > local_now else when + timedelta(days=1)
    month = _MONTHS.get(match["month"][:3].lower())
    if month is None:
        return None
    try:
        when = local_now.replace(
            month=month, day=int(match["day"]), hour=hour, minute=minute, second=0, microsecond=0
        )
    except ValueError:
        return None
    # "resets Jan 2" read on Dec 30 is next year's January.
    return when if when > local_now - timedelta(days=1) else when.replace(year=when.year + 1)


def _absolute_time(match: re.Match[str], now: datetime) -> datetime | None:
    month = _MONTHS.get(match["month"][:3].lower())
    hour = _hour24(int(match["hour"]), match["ampm"])
    if month is None or hour is None:
        return None
    try:
        when = datetime(int(match["year"]), month, int(match["day"]), hour, int(match["minute"]))
    except ValueError:
        return None
    return when.replace(tzinfo=now.tzinfo)


def _hour24(hour: int, ampm: str) -> int | None:
    if not 1 <= hour <= 12:
        return None
    return hour % 12 + (12 if ampm.lower() == "pm" else 0)
