"""The receiver's durable inbox: one SQLite row per GitHub delivery, keyed by its GUID.

GitHub redelivers with the same `X-GitHub-Delivery` for days, and Prefect's own event-id
dedup lives in memory for 30 minutes, so the primary key here is what makes a redelivery
harmless across restarts. A row is written (and fsynced) before the receiver answers, so an
accepted delivery survives a crash; the forwarder sends `pending` rows to Prefect and marks
them `sent`. Rows are kept for `RETENTION` (GitHub Enterprise redelivers up to 7 days).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

RETENTION_SECONDS = 8 * 86400


class Status(StrEnum):
    PENDING = "pending"  # accepted, not yet in Prefect
    SENT = "sent"  # Prefect has the event
    IGNORED = "ignored"  # verified, but nothing to look at (unknown repository or event, ...)
    REFUSED = "refused"  # Prefect answered 4xx for its event: kept for the log, never resent


@dataclass(frozen=True)
class Entry:
    delivery: str
    name: str  # `issues.labeled`
    subject: str  # `owner/name#7`
    received: float  # epoch seconds
    event: dict[str, Any] | None  # the Prefect event to send (pending rows)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    delivery TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    received REAL NOT NULL,
    sent REAL,
    event TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (status, received);
"""


class Inbox:
    """The SQLite file; used from one thread (the receiver's event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL: readers never block the writer; FULL: an answered delivery is on disk.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        entry: Entry,
        *,
        status: Status = Status.PENDING,
        reason: str = "",
    ) -> bool:
        """Record a delivery; False if its GUID was seen before (a redelivery: nothing to do)."""
        event = json.dumps(entry.event) if entry.event is not None else None
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO deliveries (delivery, name, subject, status, reason, received, event) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.delivery, entry.name, entry.subject, status.value, reason, entry.received, event),
        )
        return cursor.rowcount == 1

    def pending(self, limit: int = 50) -> list[Entry]:
        """The oldest deliveries not yet in Prefect."""
        rows = self._db.execute(
            "SELECT delivery, name, subject, received, event FROM deliveries "
            "WHERE status = ? ORDER BY received LIMIT ?",
            (Status.PENDING.value, limit),
        ).fetchall()
        return [Entry(d, n, s, r, json.loads(e) if e else None) for d, n, s, r, e in rows]

    def mark(self, deliveries: list[str], status: Status, at: float, reason: str = "") -> None:
        self._db.executemany(
            "UPDATE deliveries SET status = ?, sent = ?, reason = ? WHERE delivery = ?",
            [(status.value, at, reason, d) for d in deliveries],
        )

    def status(self, delivery: str) -> Status | None:
        row = self._db.execute("SELECT status FROM deliveries WHERE delivery = ?", (delivery,)).fetchone()
        return Status(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    def prune(self, now: float, keep: float = RETENTION_SECONDS) -> int:
        """Forget deliveries older than `keep` that are done with; returns how many."""
        cursor = self._db.execute(
            "DELETE FROM deliveries WHERE received < ? AND status != ?", (now - keep, Status.PENDING.value)
        )
        return cursor.rowcount
