"""What an operator sets while k3sc runs, kept in Prefect Variables: leases, disabled families, slots.

Every record is its own variable, so no command ever read-modify-writes a value another command
writes at the same time:

- `k3sc-lease-pr-<repo>-<pr>`: a review lease on one PR; `k3sc-lease-worker-<worker>`: the same
  lease under its worker's name. Both are created with the server's atomic create-if-absent (one
  POST wins, every other gets 409), the worker's first, so a worker never holds two leases and two
  workers never hold one PR, however they race.
- `k3sc-disabled-<family>`: present while `k3sc disable <family>` is in force.
- `k3sc-max-slots`: the slot count set by `k3sc scale` (absent: the config's `max_slots`).
- `k3sc-parked-<family>`: the last usage limit the family hit, with its reset time (`LimitHit`).

One filter request (`controls.read`) returns all of them for the dispatcher, `k3sc status` and `k3sc scan`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from k3sc import names
from k3sc.leases import Lease
from k3sc.models import Repo
from k3sc.orchestration.api import PrefectAPI
from k3sc.usage import LimitHit

PREFIX = "k3sc-"
LEASE_PR = "k3sc-lease-pr-"
LEASE_WORKER = "k3sc-lease-worker-"
DISABLED = "k3sc-disabled-"
MAX_SLOTS = "k3sc-max-slots"
PAUSED = "k3sc-paused"
PARKED = "k3sc-parked-"  # + family: the last usage limit it hit (written at hand-off)
TAGS = ("k3sc",)


def pr_variable(repo: Repo, pr: int) -> str:
    """A variable name per PR: readable, and unique even where two repo names slug alike."""
    digest = hashlib.sha256(repo.key.encode()).hexdigest()[:6]
    return f"{LEASE_PR}{names.slug(repo.full_name)[:180]}-{digest}-{pr}"


def worker_variable(worker: str) -> str:
    return f"{LEASE_WORKER}{names.slug(worker)}"


@dataclass(frozen=True)
class Controls:
    """Everything an operator has set, as read in one request."""

    leases: tuple[Lease, ...] = ()
    disabled: dict[str, dict[str, Any]] = field(default_factory=dict)  # family → who and when
    max_slots: int | None = None
    max_slots_set: dict[str, Any] = field(default_factory=dict)  # who set it and when
    paused: bool = False

    parks: tuple[LimitHit, ...] = ()  # the last usage limit each family hit

    @property
    def disabled_reasons(self) -> dict[str, str]:
        return {family: f"disabled via k3sc disable ({_who(info)})" for family, info in self.disabled.items()}


def _who(info: dict[str, Any]) -> str:
    by, at = info.get("by") or "someone", info.get("at") or "?"
    return f"by {by} at {at}"


async def read(api: PrefectAPI) -> Controls:
    values = await api.variables(PREFIX)
    leases = tuple(
        lease
        for name, value in sorted(values.items())
        if name.startswith(LEASE_PR) and (lease := _lease(value))
    )
    disabled = {
        name.removeprefix(DISABLED): value if isinstance(value, dict) else {}
        for name, value in values.items()
        if name.startswith(DISABLED)
    }
    slots = values.get(MAX_SLOTS)
    count = slots.get("slots") if isinstance(slots, dict) else None
    return Controls(
        leases=leases,
        disabled=disabled,
        max_slots=count if isinstance(count, int) and not isinstance(count, bool) else None,
        max_slots_set=slots if isinstance(slots, dict) else {},
        paused=bool(values.get(PAUSED)),
        parks=tuple(
            hit for name, value in sorted(values.items())
            if name.startswith(PARKED) and isinstance(value, str) and (hit := LimitHit.decode(value))
        ),
    )  # fmt: skip


def stamp(by: str, **extra: Any) -> dict[str, Any]:
    return {"by": by, "at": datetime.now(UTC).isoformat(timespec="seconds"), **extra}


# --------------------------------------------------------------------------- leases


def lease_value(lease: Lease) -> dict[str, Any]:
    return {
        "repo": lease.repo.full_name,
        "pr": lease.pr,
        "issue": lease.issue,
        "worker": lease.worker,
        "branch": lease.branch,
        "url": lease.url,
        "taken_at": lease.taken_at.isoformat(),
        "expires_at": lease.expires_at.isoformat(),
    }


def _lease(value: Any) -> Lease | None:
    if not isinstance(value, dict):
        return None
    try:
        return Lease(
            repo=Repo.parse(str(value["repo"])),
            pr=int(value["pr"]),
            issue=int(value["issue"]) if value.get("issue") is not None else None,
            worker=str(value["worker"]),
            branch=str(value.get("branch") or ""),
            url=str(value.get("url") or ""),
            taken_at=datetime.fromisoformat(str(value["taken_at"])),
            expires_at=datetime.fromisoformat(str(value["expires_at"])),
        )
    except (KeyError, TypeError, ValueError):
        return None


async def reserve_worker(api: PrefectAPI, lease: Lease) -> bool:
    """Claim the worker's single lease slot; False if the worker already holds one."""
    return await api.create_variable(worker_variable(lease.worker), lease_value(lease), TAGS)


async def reserve_pr(api: PrefectAPI, lease: Lease) -> bool:
    """Claim the PR; False if someone else holds it."""
    return await api.create_variable(pr_variable(lease.repo, lease.pr), lease_value(lease), TAGS)


async def held_by_worker(api: PrefectAPI, worker: str) -> Lease | None:
    return _lease(await api.variable(worker_variable(worker)))


async def lease_on(api: PrefectAPI, repo: Repo, pr: int) -> Lease | None:
    return _lease(await api.variable(pr_variable(repo, pr)))


async def drop_lease(api: PrefectAPI, lease: Lease) -> None:
    """Remove both records of a lease (PR first: the worker's record is what blocks a new take)."""
    await api.delete_variable(pr_variable(lease.repo, lease.pr))
    current = await held_by_worker(api, lease.worker)
    if current is None or current.pr_key == lease.pr_key:
        await api.delete_variable(worker_variable(lease.worker))


async def free_worker(api: PrefectAPI, worker: str) -> None:
    await api.delete_variable(worker_variable(worker))


# --------------------------------------------------------------------------- families and slots


async def disable(api: PrefectAPI, family: str, by: str) -> bool:
    """True if this call disabled it, False if it already was."""
    return await api.create_variable(f"{DISABLED}{family}", stamp(by), TAGS)


async def enable(api: PrefectAPI, family: str) -> bool:
    """True if this call enabled it, False if it was not disabled."""
    return await api.delete_variable(f"{DISABLED}{family}")


async def park(api: PrefectAPI, hit: LimitHit) -> None:
    """Record a family's usage limit (the dispatcher's hand-off is the only writer)."""
    await api.set_variable(f"{PARKED}{hit.family}", hit.encode(), TAGS)


async def slots(api: PrefectAPI, configured: int) -> int:
    """The agent slots in force: `k3sc scale`'s count while one is set (it outlives restarts),
    else the config's. Deploys size the agent pool's limit with it, so a restart keeps the scale."""
    held = await read(api)
    return held.max_slots if held.max_slots is not None else configured


async def set_max_slots(api: PrefectAPI, slots: int, by: str) -> None:
    await api.set_variable(MAX_SLOTS, stamp(by, slots=slots), TAGS)
