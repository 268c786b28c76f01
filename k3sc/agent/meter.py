"""The budget meter: watches a run's live usage and asks for a stop once it passes its per-run cap.

It sits between the stream reader and the process runner: fed after every output line, it
reads the usage the stream has reported so far (Claude's per-message usage, Codex's running
total) and, the first time `k3sc.usage.over_run_cap` says the cap is passed, remembers the
`BudgetStop` and sets the stop event that `process.run` turns into SIGINT → grace → SIGTERM →
SIGKILL. Mid-run Claude reports no dollars, so an API-key run is priced from the usage by
`k3sc.usage`'s price table until the final result gives the CLI's own figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from k3sc import usage
from k3sc.agent import streams

# Only lines that can carry usage are worth re-reading the totals for.
_USAGE_KEYS = ('"usage"', '"total_token_usage"', "[usage] ")


class BudgetMeter:
    """One run's meter. `stop` is the event to hand to `process.run(stop=...)`.

    Args:
        reader: the run's stream reader, fed by the caller before `observe` is called.
        billing: how the account pays; it picks dollars or tokens (see `usage.Billing`).
        caps: the configured caps; only the per-run one in the billing's unit applies.
        clock: monotonic seconds, for `crossed_at` (a seam for tests; default `time.monotonic`).
    """

    def __init__(
        self,
        reader: streams.StreamReader,
        billing: usage.Billing,
        caps: usage.Caps,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._billing = billing
        self._caps = caps
        self._clock = clock
        self.stop = asyncio.Event()
        self.stopped_by: usage.BudgetStop | None = None
        self.crossed_at: float | None = None

    @property
    def active(self) -> bool:
        """Whether a per-run cap applies to this run at all."""
        return self._caps.per_run(self._billing.unit) is not None

    def observe(self, line: str) -> usage.BudgetStop | None:
        """Check the totals after `line` was fed to the reader; the BudgetStop the first time the
        cap is passed (and the stop event is set), otherwise None."""
        if self.stopped_by is not None or not self.active or not any(k in line for k in _USAGE_KEYS):
            return None
        stop = usage.over_run_cap(self._reader.usage(), self._billing, self._caps)
        if stop is None:
            return None
        self.stopped_by = stop
        self.crossed_at = self._clock()
        self.stop.set()
        return stop
