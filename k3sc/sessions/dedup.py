"""ccusage's deduplication of Claude Code usage lines, exactly.

Claude Code writes one transcript line per content block of a reply, each repeating the reply's
usage; streamed partial lines carry smaller counts than the final one; `--continue` copies history
into a new file; a `/btw` sidechain replays parent messages under new request ids. So a request is
keyed on `message.id` + `requestId` (the message id alone when there is no request id, no dedup
without a message id), a sidechain line also matches any stored line of the same message, and on
a collision the stored row is replaced, in place, iff the candidate is the main-chain copy of a
sidechain row, or else has the larger token total, or on equal totals carries `speed` and the
stored one does not. Anything else keeps the row already stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from k3sc.sessions.usage import Entry


def should_replace(candidate: Entry, stored: Entry) -> bool:
    """Whether `candidate` wins over the `stored` row it collides with."""
    if candidate.sidechain != stored.sidechain:
        return stored.sidechain  # the main-chain copy beats a sidechain replay
    if candidate.total != stored.total:
        return candidate.total > stored.total  # a streamed partial loses to the final count
    return bool(candidate.speed) and not stored.speed


class Deduper:
    """An append-only table of deduplicated entries; its lookup indexes are built on first use.

    The indexes are only needed when new lines arrive, so a warm run that read nothing new never
    pays for them.
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries: list[Entry] = list(entries)
        self._by_key: dict[int, int] | None = None
        self._by_message: dict[int, list[int]] = {}

    def _index(self) -> dict[int, int]:
        if self._by_key is None:
            self._by_key = {}
            for position, entry in enumerate(self.entries):
                self._remember(entry, position)
        return self._by_key

    def _remember(self, entry: Entry, position: int) -> None:
        assert self._by_key is not None
        if entry.key:
            self._by_key[entry.key] = position
            positions = self._by_message.setdefault(entry.message, [])
            if position not in positions:
                positions.append(position)

    def _find(self, entry: Entry) -> int | None:
        position = self._index().get(entry.key)
        if position is not None and self.entries[position].key == entry.key:
            return position
        for position in self._by_message.get(entry.message, ()):
            stored = self.entries[position]
            if stored.message == entry.message and (entry.sidechain or stored.sidechain):
                return position
        return None

    def add(self, entry: Entry) -> None:
        """Merge one entry: append it, replace the row it collides with, or drop it."""
        if not entry.key:
            self.entries.append(entry)
            return
        position = self._find(entry)
        if position is None:
            self.entries.append(entry)
            self._remember(entry, len(self.entries) - 1)
        elif should_replace(entry, self.entries[position]):
            self.entries[position] = entry
            self._remember(entry, position)

    def extend(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.add(entry)


def dedupe(entries: Iterable[Entry]) -> list[Entry]:
    """The deduplicated rows of `entries`, in the order each request was first seen."""
    table = Deduper()
    table.extend(entries)
    return table.entries
