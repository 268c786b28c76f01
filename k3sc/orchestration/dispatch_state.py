"""The dispatcher's small persistent memory, kept in Prefect Variables.

`k3sc-dispatch-state` holds the backoff counter, the family rotation, the link to the next
scheduled scan of the self-scheduling chain, claims in flight (intents) and first sightings of
orphaned issues. Only the dispatcher writes it, and only one dispatcher runs at a time
(deployment concurrency 1). Prefect refuses a variable over 5,000 characters, and a big fleet's
intents and orphan sightings pass that, so a state too big for one variable is written in parts
(`save`). The pause flag is a separate variable because the CLI writes it
while a dispatcher may be running, and a read-modify-write of one shared value would lose it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from k3sc.models import Intent
from k3sc.orchestration.api import PrefectAPI

STATE_VARIABLE = "k3sc-dispatch-state"
PAUSE_VARIABLE = "k3sc-paused"


class DispatchState(BaseModel):
    """Backoff, rotation and crash-recovery records; missing fields take defaults."""

    model_config = ConfigDict(extra="ignore")

    idle_scans: int = 0
    last_family: str | None = None
    chain_run_id: str | None = None
    next_due: datetime | None = None
    last_scan: datetime | None = None
    intents: list[Intent] = Field(default_factory=list)
    orphans_seen: dict[str, datetime] = Field(default_factory=dict)


# Prefect's limit is 5,000 bytes of a value's compact JSON; a part is a JSON string of at most
# PART_CHARS characters, which escaping can at most double, plus its quotes.
VALUE_LIMIT = 5000
PART_CHARS = 2400


async def load(api: PrefectAPI) -> DispatchState:
    """The stored state; an unreadable value starts fresh rather than stopping dispatch."""
    raw: Any = await api.variable(STATE_VARIABLE)
    if isinstance(raw, dict) and "parts" in raw:
        raw = await _joined(api, raw)
    if not isinstance(raw, dict):
        return DispatchState()
    try:
        return DispatchState.model_validate(raw)
    except ValidationError:
        return DispatchState()


async def save(api: PrefectAPI, state: DispatchState) -> None:
    """Write the state; one too big for a variable goes in parts, the head variable last.

    Parts alternate between two sets by generation, so a dispatcher killed while writing leaves
    the head pointing at the previous generation's parts, which it did not touch.
    """
    value = state.model_dump(mode="json")
    text = json.dumps(value, separators=(",", ":"))
    if len(text.encode()) <= VALUE_LIMIT:
        await api.set_variable(STATE_VARIABLE, value, tags=["k3sc"])
        return
    head: Any = await api.variable(STATE_VARIABLE)
    generation = (head.get("generation", 0) if isinstance(head, dict) else 0) + 1
    chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    for index, chunk in enumerate(chunks):
        await api.set_variable(_part(generation, index), chunk, tags=["k3sc"])
    await api.set_variable(STATE_VARIABLE, {"generation": generation, "parts": len(chunks)}, tags=["k3sc"])


def _parts(generation: int) -> str:
    """The name prefix of a generation's parts (two sets, alternating)."""
    return f"{STATE_VARIABLE}-part-{generation % 2}-"  # Prefect allows [a-z0-9_-]


def _part(generation: int, index: int) -> str:
    return f"{_parts(generation)}{index:03d}"


async def _joined(api: PrefectAPI, head: dict[str, Any]) -> Any:
    """The state a parted head describes, or None if a part is missing (start fresh)."""
    generation, count = head.get("generation"), head.get("parts")
    if not isinstance(generation, int) or not isinstance(count, int):
        return None
    found = await api.variables(_parts(generation))
    chunks = [found.get(_part(generation, index)) for index in range(count)]
    if not all(isinstance(chunk, str) for chunk in chunks):
        return None
    try:
        return json.loads("".join(str(chunk) for chunk in chunks))
    except ValueError:
        return None


async def paused(api: PrefectAPI) -> bool:
    return bool(await api.variable(PAUSE_VARIABLE))


async def set_paused(api: PrefectAPI, value: bool) -> None:
    await api.set_variable(PAUSE_VARIABLE, value, tags=["k3sc"])
