"""k3sc's one retry policy: which failures are tried again, how long to wait, and when to give up.

Tried again: failures that can succeed if asked again — a dropped connection or a timeout, HTTP 429,
any 5xx (a busy SQLite-backed Prefect server answers 503 "database is locked" in bursts), and a rate
limit whose reset is at most `Policy.max_wait` away (then the wait is what the server asked for).
Never tried again: authentication, permission, validation and not-found answers, a rate limit whose
reset is further off (it raises at once, carrying the reset time), and a request that is not safe to
send twice (a GitHub POST). Waits grow exponentially from `initial`, are capped at `maximum` and
spread by ±`jitter`, so clients that failed together do not retry together.

Exactly one layer retries: the adapter that sends the request (`k3sc.github.GitHubClient.request`,
`k3sc.orchestration.api.PrefectAPI`). Prefect tasks and flows above them never add retries.
The adapters decide what is transient (`classify`); this module owns how retrying is done,
through tenacity.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import tenacity

Sleep = Callable[[float], Awaitable[None]]

# What `classify` answers for a failure: BACKOFF (retry after the policy's backoff), a number of
# seconds (retry after exactly that long, e.g. from Retry-After), or None (do not retry).
BACKOFF: Final = -1.0
Verdict = float | None
Classify = Callable[[BaseException], Verdict]


@dataclass(frozen=True)
class Policy:
    """How often and how patiently one adapter retries; `sleep` is the test seam (no real waits)."""

    attempts: int  # tries in all, the first included
    initial: float = 0.5  # seconds before the first retry
    maximum: float = 8.0  # cap of any backoff wait
    jitter: float = 0.25  # ± this fraction of each backoff wait
    max_wait: float = 60.0  # longest server-requested wait (Retry-After, rate-limit reset) honoured
    sleep: Sleep | None = None

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = min(self.initial * 2.0 ** (retry - 1), self.maximum)
        return base * random.uniform(1.0 - self.jitter, 1.0 + self.jitter) if self.jitter else base

    def wait_for(self, verdict: float, retry: int) -> float:
        return self.backoff(retry) if verdict == BACKOFF else min(max(verdict, 0.0), self.max_wait)

    def honours(self, seconds: float) -> bool:
        """Whether a server-requested wait this long is waited out rather than reported."""
        return seconds <= self.max_wait


# About 45 s of patience in all (0.5 + 1 + 2 + 4 + 8 + 8 + 8 + 8 s, ±25 %): long enough to ride out a
# burst of SQLite lock contention on the embedded Prefect server.
PREFECT: Final = Policy(attempts=9, initial=0.5, maximum=8.0)
# GitHub is either up or having an incident; three retries (1, 2, 4 s) and rate limits up to a minute.
GITHUB: Final = Policy(attempts=4, initial=1.0, maximum=8.0)


def attempts(policy: Policy, classify: Classify) -> tenacity.AsyncRetrying:
    """An async retry loop: `async for attempt in attempts(...): with attempt: ...`.

    The last failure is re-raised unchanged once `classify` says no or the attempts run out, so the
    adapter translates it into k3sc's own error exactly as it would a first failure.
    """

    def should_retry(state: tenacity.RetryCallState) -> bool:
        failure = state.outcome.exception() if state.outcome else None
        return failure is not None and classify(failure) is not None

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        verdict = classify(failure) if failure is not None else None
        return policy.wait_for(BACKOFF if verdict is None else verdict, state.attempt_number)

    return tenacity.AsyncRetrying(
        retry=should_retry,
        wait=wait,
        stop=tenacity.stop_after_attempt(policy.attempts),
        sleep=asyncio.sleep if policy.sleep is None else policy.sleep,
        reraise=True,
    )


class TransientStatus(Exception):
    """An HTTP answer worth asking again for (429, 5xx); raised inside an attempt, never past the adapter."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (the HTTP-date form is not used by GitHub or Prefect)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
