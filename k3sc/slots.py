"""Slot letters and agent names: `claude-a` .. `codex-z`.

A slot is the unit of concurrency and of the workspace directory; either family can use any
letter. Letters come from the active runs the dispatcher reads, never from a counter.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

from k3sc.labels import Family

LETTERS = string.ascii_lowercase


def letter(slot: int) -> str:
    """1 → a … 26 → z; anything else → `?` (as the original)."""
    return LETTERS[slot - 1] if 1 <= slot <= len(LETTERS) else "?"


def letter_of(agent: str) -> str:
    """The slot letter of an agent name (`codex-c` → `c`)."""
    return agent.rpartition("-")[2]


def family_of(agent: str) -> Family:
    """The family of an agent name; anything not `codex-*` is Claude (as the original)."""
    return Family.CODEX if agent.lower().startswith("codex-") else Family.CLAUDE


def free_letters(used: Iterable[str], max_slots: int) -> list[str]:
    """Letters within the first `max_slots` not taken by an active run, lowest first."""
    taken = set(used)
    return [c for c in LETTERS[:max_slots] if c not in taken]


def rotation(families: Sequence[str], last: str | None) -> list[str]:
    """Families in the order to try next: the one after `last` first, cycling."""
    names = [str(f) for f in families]
    if last not in names:
        return names
    start = names.index(last) + 1
    return names[start:] + names[:start]


def choose_agent(
    free: Sequence[str], families: Sequence[str], last_family: str | None, *, avoid: str | None = None
) -> tuple[str, str] | None:
    """Pick (agent, family): the lowest free letter, families alternating, never `avoid`.

    `avoid` is the implementer when choosing a reviewer. At the lowest letter another family is
    preferred to another letter; only with a single family does the letter move on.
    """
    for slot in free:
        for family in rotation(families, last_family):
            agent = f"{family}-{slot}"
            if agent != avoid:
                return agent, family
    return None
