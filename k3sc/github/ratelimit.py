"""GitHub's rate limits as k3sc sees them: the budget observed and when a limit lifts.

Separate from the client so `k3sc scan` can print the budget without knowing anything about HTTP.
How long k3sc is willing to wait for a limit is the retry policy's (`k3sc.retrying`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RateBudget:
    """A snapshot of the primary rate limit and of what this client spent.

    `requests` counts HTTP requests that reached GitHub (cache hits that needed no request are not
    requests); `not_modified` counts those answered 304, which GitHub does not charge.
    """

    remaining: int | None = None
    limit: int | None = None
    reset: datetime | None = None
    requests: int = 0
    not_modified: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "remaining": self.remaining,
            "limit": self.limit,
            "reset": self.reset.isoformat() if self.reset else None,
            "requests": self.requests,
            "not_modified": self.not_modified,
        }


@dataclass
class BudgetMeter:
    """Mutable tally behind `RateBudget`, fed by every response that came over the wire."""

    requests: int = 0
    not_modified: int = 0
    remaining: int | None = None
    limit: int | None = None
    reset: datetime | None = None

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Count one response; keep the lowest `remaining` seen in the newest reset window.

        Responses of concurrent requests arrive in any order, so "last one wins" would make the
        budget jump up and down; within one window the smallest remaining is the truth.
        """
        self.requests += 1
        if status == 304:
            self.not_modified += 1
        limit = _int_header(headers, "x-ratelimit-limit")
        remaining = _int_header(headers, "x-ratelimit-remaining")
        reset_epoch = _int_header(headers, "x-ratelimit-reset")
        if remaining is None or limit is None:
            return
        reset = datetime.fromtimestamp(reset_epoch, UTC) if reset_epoch is not None else None
        newer_window = reset is not None and (self.reset is None or reset > self.reset)
        if newer_window or self.remaining is None or remaining < self.remaining:
            self.remaining = remaining
        if newer_window:
            self.reset = reset
        self.limit = limit

    def snapshot(self) -> RateBudget:
        return RateBudget(self.remaining, self.limit, self.reset, self.requests, self.not_modified)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def reset_time(headers: Mapping[str, str], retry_after: timedelta, now: datetime) -> datetime:
    """When a limit lifts: `X-RateLimit-Reset` if GitHub sent it, else now + the computed wait."""
    epoch = _int_header(headers, "x-ratelimit-reset")
    if epoch is not None and "retry-after" not in headers:
        return datetime.fromtimestamp(epoch, UTC)
    return now + retry_after
