"""Every GitHub label string k3sc reads or writes, and the closed sets built on them.

Only this module spells label names; everything else uses these constants.
"""

from __future__ import annotations

import re
from enum import StrEnum


class State(StrEnum):
    """Workflow state of an issue as derived from its labels."""

    READY = "ready"
    NEEDS_REVIEW = "needs-review"
    NEEDS_HUMAN = "needs-human"
    OWNED = "owned"  # an owner label and no state label: an agent holds it
    INCONSISTENT = "inconsistent"  # more than one state label
    NONE = "none"  # no workflow label at all


class Kind(StrEnum):
    """What an agent run does."""

    IMPLEMENT = "implement"
    REVIEW = "review"


class Family(StrEnum):
    """Agent families k3sc can run."""

    CLAUDE = "claude"
    CODEX = "codex"


READY = "ready"
NEEDS_REVIEW = "needs-review"
NEEDS_HUMAN = "needs-human"
WAITING = "waiting"

STATE_LABELS: tuple[str, ...] = (READY, NEEDS_REVIEW, NEEDS_HUMAN)
WORKFLOW_LABELS: tuple[str, ...] = (*STATE_LABELS, WAITING)
OWNER_PREFIXES: tuple[str, ...] = tuple(f"{f.value}-" for f in Family)

# A person's claim (`k3sc claim --owner human`, or `human-<login>`): an owner the dispatcher leaves alone.
HUMAN = "human"

# Owner labels k3sc itself hands out: a family and one slot letter (claude-a .. codex-z).
# Human-launched agents use numbers (claude-1) and are owners too, but never ours.
_SLOT_OWNER = re.compile(r"^(claude|codex)-([a-z])$")
_HUMAN_OWNER = re.compile(r"^human(-[a-z0-9][a-z0-9-]*)?$")


def is_owner_label(label: str) -> bool:
    """True for any `claude-*` / `codex-*` label (ours or a human-launched agent's) and human claims."""
    name = label.lower()
    return any(name.startswith(p) and len(name) > len(p) for p in OWNER_PREFIXES) or is_human_owner(name)


def is_human_owner(label: str) -> bool:
    """True for `human` and `human-<login>`: a person holds the issue."""
    return _HUMAN_OWNER.match(label.lower()) is not None


def is_slot_owner(label: str) -> bool:
    """True only for owner labels k3sc assigns itself (`claude-a` .. `codex-z`)."""
    return _SLOT_OWNER.match(label.lower()) is not None


def is_workflow_label(label: str) -> bool:
    """True for labels k3sc manages: the state labels, `waiting` and owner labels."""
    return label.lower() in WORKFLOW_LABELS or is_owner_label(label)


def with_workflow(current: tuple[str, ...], wanted: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """An issue's labels after its workflow and owner labels are replaced by `wanted`.

    Every other label is kept, in order; names are unique case-insensitively (first spelling wins).
    """
    seen: dict[str, str] = {}
    for name in (*(n for n in current if not is_workflow_label(n)), *wanted):
        seen.setdefault(name.lower(), name)
    return tuple(seen.values())
