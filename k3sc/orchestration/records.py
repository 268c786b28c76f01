"""Typed views of what the Prefect REST API returns: flow runs, their states, deployments.

`PrefectAPI` parses every answer into these, so nothing above `k3sc.orchestration` indexes raw
JSON. Unknown fields are ignored (the server adds fields between versions); the ones k3sc reads
are typed, and a missing optional one is None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StateDetails(_Record):
    scheduled_time: datetime | None = None


class RunState(_Record):
    """A flow run's state: its type (SCHEDULED, RUNNING, …), display name and message."""

    type: str = "SCHEDULED"
    name: str | None = None
    message: str | None = None
    timestamp: datetime | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL

    @property
    def scheduled_time(self) -> datetime | None:
        return self.state_details.scheduled_time


class FlowRun(_Record):
    """One flow run as the server reports it."""

    id: str
    name: str = ""
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = Field(default_factory=dict)
    state: RunState | None = None
    created: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_run_time: float | None = None
    idempotency_key: str | None = None
    deployment_id: str | None = None
    next_scheduled_start_time: datetime | None = None

    @field_validator("id", "deployment_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @property
    def state_type(self) -> str:
        return self.state.type if self.state else "SCHEDULED"

    @property
    def scheduled_time(self) -> datetime | None:
        """When a scheduled run is due: the state's scheduled time, else the server's estimate."""
        if self.state and self.state.scheduled_time:
            return self.state.scheduled_time
        return self.next_scheduled_start_time

    @property
    def ended_or_created(self) -> datetime:
        """When the run reached its current state (for terminal runs, when it ended)."""
        return (self.state.timestamp if self.state else None) or self.created


class Deployment(_Record):
    id: str
    name: str

    @field_validator("id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return str(value)


class LogRecord(_Record):
    """One line of a flow run's log: who logged it (`name`), at what level, when, and the text."""

    id: str
    name: str = ""
    level: int = 20
    message: str = ""
    timestamp: datetime
    flow_run_id: str | None = None

    @field_validator("id", "flow_run_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value is None else str(value)
