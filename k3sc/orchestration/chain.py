"""The dispatcher's self-scheduling chain: exactly one scheduled scan follows every scan.

The `k3sc-dispatch` deployment runs one scan at a time (concurrency 1, CANCEL_NEW). Each scan makes
sure its successor is scheduled — first thing, at the pessimistic (idle) interval, so a crash
mid-scan never breaks the chain, then again at the end at the interval the scan's findings call
for. Triggers (an agent run ending, a label event) start extra scans; one that arrives while a scan
runs is cancelled by the concurrency limit, so the running scan looks for such collisions before it
ends (`missed_triggers`) and takes another pass instead of losing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from k3sc.config import Config
from k3sc.errors import OrchestrationError
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun

# Successors one dispatch run may create before giving up (each replaces one cancelled under it).
MAX_SUCCESSORS = 5
CHAIN_TAGS = ("k3sc", "k3sc-chain")
# A triggered scan the concurrency limit cancelled because a scan was already running.
COLLISION_TAG = "k3sc-collision"


@dataclass(frozen=True)
class Link:
    """The chain's next scheduled scan: its run id, when it is due, and what this call did."""

    run_id: str
    due: datetime | None
    action: str  # kept | moved | created


async def ensure_successor(
    api: PrefectAPI, current: str | None, own_run_id: str, due: datetime, *, move: bool
) -> Link:
    """Make sure exactly one scheduled scan follows run `own_run_id`, at `due` if `move`.

    `current` is the successor recorded earlier; it is reused while still scheduled, never doubled.
    The key `k3sc-next-after-<run id>` makes creation idempotent. A successor that is no longer
    scheduled (it came due while this run was still going and the concurrency limit cancelled it)
    is replaced under the next key, `k3sc-next-after-<run id>/2` and so on.
    """
    if current and current != own_run_id:
        chain = await api.flow_run(current)
        if chain is not None and chain.state_type == "SCHEDULED":
            if move and await _move(api, chain, due):
                return Link(chain.id, due, "moved")
            return Link(chain.id, due if move else chain.scheduled_time, "kept")
    for generation in range(1, MAX_SUCCESSORS + 1):
        suffix = "" if generation == 1 else f"/{generation}"
        created = await api.create_flow_run(
            runs.DISPATCH_DEPLOYMENT,
            parameters={"force": False},
            name=f"scan at {due:%H:%M:%S}",
            tags=CHAIN_TAGS,
            idempotency_key=f"k3sc-next-after-{own_run_id}{suffix}",
            scheduled_time=due,
        )
        if created.state_type == "SCHEDULED":
            break
    else:
        raise OrchestrationError(
            f"could not schedule the next scan: {MAX_SUCCESSORS} successors of run {own_run_id} "
            "were cancelled or started before this run ended"
        )
    if move:
        await _move(api, created, due)  # a repeated key returns the successor with its first time
    return Link(created.id, due, "created")


async def _move(api: PrefectAPI, flow_run: FlowRun, due: datetime) -> bool:
    """Reschedule a scheduled run to `due` unless it is already there (to the second)."""
    scheduled = flow_run.scheduled_time
    if scheduled is None or abs((scheduled - due).total_seconds()) <= 1:
        return False
    await api.set_state(flow_run.id, "SCHEDULED", scheduled_time=due, force=True)
    return True


def _by_the_limit(run: FlowRun) -> bool:
    return run.state is not None and "concurrency limit" in (run.state.message or "").lower()


async def missed_triggers(api: PrefectAPI, config: Config, since: datetime, held: frozenset[str]) -> bool:
    """Did anything ask for a scan since `since`? Then the running scan takes another pass.

    Two signs: an agent run of a configured repo ended and awaits its hand-off (except `held` ones,
    whose hand-off failed in this run), or a dispatch run was cancelled for colliding with this one.
    """
    pending = await runs.pending_runs(api)
    if any(
        not r.phase.active and r.id not in held and config.repo_config(r.repo) is not None for r in pending
    ):
        return True
    collided = await _collisions(api, since)
    await _mark_covered(api, collided, "scanned by the running scan")
    return bool(collided)


async def take_over_late_triggers(api: PrefectAPI, own_run_id: str, since: datetime) -> FlowRun | None:
    """Start a scan for triggers that collided with the end of run `own_run_id`, after its last look.

    A scan's last look for collisions (`missed_triggers`) comes a moment before its run ends and
    frees the deployment's slot; a trigger the limit cancelled in between would wait for the next
    scheduled scan, up to an hour when idle. Called once the run is terminal (an on-completion
    hook), when the slot is free: every collision that can still happen has happened, so nothing
    slips through, and the scan started here takes the slot.
    """
    late = [r for r in await _collisions(api, since) if COLLISION_TAG not in r.tags]
    if not late:
        return None
    successor = await api.create_flow_run(
        runs.DISPATCH_DEPLOYMENT,
        parameters={"force": True, "reason": "a trigger at the end of a scan"},
        name=f"scan for {late[0].name}",
        tags=("k3sc",),
        idempotency_key=f"k3sc-late-triggers-after-{own_run_id}",
    )
    await _mark_covered(api, late, f"scanned by {successor.name}")
    return successor


async def _collisions(api: PrefectAPI, since: datetime) -> list[FlowRun]:
    """Dispatch runs the concurrency limit cancelled since `since` (not those a person cancelled)."""
    deployment = await api.deployment_id(runs.DISPATCH_DEPLOYMENT)
    cancelled = await api.flow_runs(deployment_ids=[deployment], state_types=["CANCELLED"], limit=10)
    return [r for r in cancelled if r.ended_or_created >= since and _by_the_limit(r)]


async def _mark_covered(api: PrefectAPI, collided: list[FlowRun], by: str) -> None:
    for run in collided:
        if COLLISION_TAG not in run.tags:
            # Out of a person's way: the runs list can hide these by tag (README "Prefect UI").
            await api.set_tags(run.id, [*run.tags, COLLISION_TAG], name=f"{run.name} (collided: {by})")
