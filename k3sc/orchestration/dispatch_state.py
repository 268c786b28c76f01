"""The dispatcher's small persistent memory, kept in Prefect Variables.

`k3sc-dispatch-state` holds the backoff counter, the family rotation, the link to the next
scheduled scan of the self-scheduling chain, claims in flight (intents) and first sightings of
orphaned issues. Only the dispatcher writes it, and only one dispatcher runs at a time
(deployment concurrency 1). The pause flag is a separate variable because the CLI writes it
while a dispatcher may be running, and a read-modify-write of one shared value would lose it.
"""

from __future__ import annotations

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


async def load(api: PrefectAPI) -> DispatchState:
    """The stored state; an unreadable value starts fresh rather than stopping dispatch."""
    raw: Any = await api.variable(STATE_VARIABLE)
    if not isinstance(raw, dict):
        return DispatchState()
    try:
        return DispatchState.model_validate(raw)
    except ValidationError:
        return DispatchState()


async def save(api: PrefectAPI, state: DispatchState) -> None:
    await api.set_variable(STATE_VARIABLE, state.model_dump(mode="json"), tags=["k3sc"])


async def paused(api: PrefectAPI) -> bool:
    return bool(await api.variable(PAUSE_VARIABLE))


async def set_paused(api: PrefectAPI, value: bool) -> None:
    await api.set_variable(PAUSE_VARIABLE, value, tags=["k3sc"])
