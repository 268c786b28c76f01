"""A column-wise, time-sorted copy of the deduplicated rows: what the index stores on disk.

Decoding a few arrays is an order of magnitude faster than building one object per request, and a
warm pass needs only the time and token-total columns (for the 5-hour blocks) plus the handful of
rows of the active block and the running sessions, which are turned back into `Entry`s on demand.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

import msgspec

from k3sc.sessions.usage import Entry

_SIDECHAIN, _COST = 1, 2


class Columns(msgspec.Struct, array_like=True):
    """The stored form: each field is the bytes of an `array('q')` (`cost`: `'d'`, NaN = absent)."""

    ts: bytes
    input: bytes
    output: bytes
    cache_5m: bytes
    cache_1h: bytes
    cache_read: bytes
    model: bytes
    session: bytes
    speed: bytes
    key: bytes
    message: bytes
    flags: bytes
    cost: bytes
    models: list[str]
    sessions: list[str]
    speeds: list[str]


def _ints(data: bytes) -> array[int]:
    column = array("q")
    column.frombytes(data)
    return column


class Table:
    """Rows sorted by time, column by column."""

    def __init__(self, columns: Columns) -> None:
        self.ts = _ints(columns.ts)
        self.input = _ints(columns.input)
        self.output = _ints(columns.output)
        self.cache_5m = _ints(columns.cache_5m)
        self.cache_1h = _ints(columns.cache_1h)
        self.cache_read = _ints(columns.cache_read)
        self.model = _ints(columns.model)
        self.session = _ints(columns.session)
        self.speed = _ints(columns.speed)
        self.key = _ints(columns.key)
        self.message = _ints(columns.message)
        self.flags = _ints(columns.flags)
        self.cost = array("d")
        self.cost.frombytes(columns.cost)
        self.models, self.sessions, self.speeds = columns.models, columns.sessions, columns.speeds

    def __len__(self) -> int:
        return len(self.ts)

    def totals(self) -> list[int]:
        """Every row's token total (input + output + cache writes + cache reads)."""
        return [
            a + b + c + d + e
            for a, b, c, d, e in zip(
                self.input, self.output, self.cache_5m, self.cache_1h, self.cache_read, strict=True
            )
        ]

    def row(self, i: int) -> Entry:
        cost = self.cost[i]
        return Entry(
            ts=self.ts[i],
            input=self.input[i],
            output=self.output[i],
            cache_5m=self.cache_5m[i],
            cache_1h=self.cache_1h[i],
            cache_read=self.cache_read[i],
            model=self.models[self.model[i]],
            session=self.sessions[self.session[i]],
            key=self.key[i],
            message=self.message[i],
            sidechain=bool(self.flags[i] & _SIDECHAIN),
            speed=self.speeds[self.speed[i]],
            cost_usd=None if math.isnan(cost) else cost,
        )

    def rows(self, positions: Iterable[int]) -> list[Entry]:
        return [self.row(i) for i in positions]

    def entries(self) -> list[Entry]:
        return self.rows(range(len(self)))

    def positions_of(self, sessions: set[str]) -> dict[str, list[int]]:
        """Row positions per session, for the sessions asked about."""
        wanted = {index: name for index, name in enumerate(self.sessions) if name in sessions}
        found: dict[str, list[int]] = {}
        if not wanted:
            return found
        for position, index in enumerate(self.session):
            if index in wanted:
                found.setdefault(wanted[index], []).append(position)
        return found


def _intern(values: Iterable[str]) -> tuple[list[int], list[str]]:
    table: dict[str, int] = {}
    return [table.setdefault(value, len(table)) for value in values], list(table)


def columns_of(entries: Sequence[Entry]) -> Columns:
    """The stored form of `entries`, sorted by time (ties keep their order)."""
    ordered = sorted(entries, key=lambda e: e.ts)
    models, model_names = _intern(e.model for e in ordered)
    sessions, session_names = _intern(e.session for e in ordered)
    speeds, speed_names = _intern(e.speed for e in ordered)

    def ints(values: Iterable[int]) -> bytes:
        return array("q", values).tobytes()

    return Columns(
        ts=ints(e.ts for e in ordered),
        input=ints(e.input for e in ordered),
        output=ints(e.output for e in ordered),
        cache_5m=ints(e.cache_5m for e in ordered),
        cache_1h=ints(e.cache_1h for e in ordered),
        cache_read=ints(e.cache_read for e in ordered),
        model=ints(models),
        session=ints(sessions),
        speed=ints(speeds),
        key=ints(e.key for e in ordered),
        message=ints(e.message for e in ordered),
        flags=ints(
            (_SIDECHAIN if e.sidechain else 0) | (_COST if e.cost_usd is not None else 0) for e in ordered
        ),
        cost=array("d", (math.nan if e.cost_usd is None else e.cost_usd for e in ordered)).tobytes(),
        models=model_names,
        sessions=session_names,
        speeds=speed_names,
    )


def table_of(entries: Sequence[Entry]) -> Table:
    return Table(columns_of(entries))
