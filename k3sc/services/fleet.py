"""`k3sc status`, `scale`, `pause`/`resume`, `disable`/`enable`: steering the whole fleet while it runs.

Each writes one Prefect record the dispatcher reads on its next pass (`k3sc.orchestration.controls`),
and asks for that pass now, so the change shows within seconds. Nothing needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from k3sc import decide, usage, workflow
from k3sc.config import MAX_SLOT_LETTERS, Config
from k3sc.errors import OrchestrationError, UsageError
from k3sc.labels import Family, State
from k3sc.models import RunPhase
from k3sc.orchestration import controls, dispatch_state, ledger, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.services import targets

AGENT_POOL = "k3sc-agents"


def family(text: str) -> str:
    value = text.strip().lower()
    if value not in {f.value for f in Family}:
        raise UsageError(f'unknown family "{text}" (use claude or codex).')
    return value


def slot_count(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SLOT_LETTERS:
        raise UsageError(f"slots must be a whole number from 1 to {MAX_SLOT_LETTERS}, got: {text}")
    return value


async def _scan_soon(api: PrefectAPI, why: str) -> None:
    """Ask for a dispatch pass now so the change shows at once (the chain would find it anyway)."""
    # Without a deployment yet (k3sc up never ran) the record is read by the first scan.
    with contextlib.suppress(OrchestrationError):
        await api.create_flow_run(
            runs.DISPATCH_DEPLOYMENT, parameters={"force": True}, name=why, tags=["k3sc"]
        )


async def pause(paused: bool) -> str:
    async with PrefectAPI.from_env() as api:
        before = (await controls.read(api)).paused
        await dispatch_state.set_paused(api, paused)
        if not paused and before:
            await _scan_soon(api, "k3sc resume")
    if paused:
        return "dispatch paused: running agents finish and are handed off; nothing new is claimed"
    return "dispatch resumed" if before else "dispatch was not paused"


async def set_family(name: str, enabled: bool) -> str:
    async with PrefectAPI.from_env() as api:
        if enabled:
            changed = await controls.enable(api, name)
            if changed:
                await _scan_soon(api, f"k3sc enable {name}")
            return f"{name} dispatch enabled" if changed else f"{name} dispatch already enabled"
        changed = await controls.disable(api, name, targets.operator())
        return f"{name} dispatch disabled" if changed else f"{name} dispatch already disabled"


def effective_slots(config: Config, held: controls.Controls, config_source: str) -> tuple[int, str]:
    """The slot count the dispatcher plans with, and where it comes from."""
    if held.max_slots is not None:
        info = held.max_slots_set
        return held.max_slots, f"k3sc scale (by {info.get('by', '?')} at {info.get('at', '?')})"
    return config.max_slots, f"max_slots ({config_source})"


async def scale(config: Config, source: str, slots: int | None) -> dict[str, Any]:
    """Show, or set, the number of agent slots: the dispatcher's plan and the agent pool's limit."""
    async with PrefectAPI.from_env() as api:
        held = await controls.read(api)
        current, came_from = effective_slots(config, held, source)
        if slots is None:
            return {"slots": current, "source": came_from}
        await controls.set_max_slots(api, slots, targets.operator())
        await api.set_pool_concurrency(AGENT_POOL, slots)
        if slots > current:
            await _scan_soon(api, f"k3sc scale {slots}")
    return {"slots": slots, "previous": current, "source": "k3sc scale"}


async def status(config: Config, max_slots_source: str) -> dict[str, Any]:
    """The fleet in one line's worth of numbers: agents, issues by state, PRs, slots, pause, families."""
    from k3sc.github import GitHubClient

    repos = [r.repo for r in config.repos]
    async with PrefectAPI.from_env() as api, GitHubClient.from_config(config) as gh:
        now = datetime.now(UTC)
        held, pending, spent, issues, pulls = await asyncio.gather(
            controls.read(api),
            runs.pending_runs(api),
            ledger.since(api, ledger.midnight(now)),
            gh.workflow_issues(repos),
            gh.open_pulls(repos),
        )
        budget = gh.budget
    ours = [r for r in pending if config.repo_config(r.repo) is not None]
    states = Counter(workflow.read_labels(i.labels).state for i in issues.items)
    slots, came_from = effective_slots(config, held, max_slots_source)
    over_budget = usage.admission(spent, usage.Caps.of(config.budget))
    off = decide.availability(held.disabled_reasons, list(held.parks), now, over_budget)
    return {
        "running": sum(1 for r in ours if r.phase is RunPhase.RUNNING),
        "queued": sum(1 for r in ours if r.phase is RunPhase.WAITING),
        "awaiting_handoff": sum(1 for r in ours if not r.phase.active),
        "ready": states[State.READY],
        "needs_review": states[State.NEEDS_REVIEW],
        "needs_human": states[State.NEEDS_HUMAN],
        "owned": states[State.OWNED],
        "prs": len(pulls.items),
        "slots": slots,
        "slots_source": came_from,
        "paused": held.paused,
        "families": {str(f): off[f].detail if f in off else "available" for f in config.families},
        "leases": [controls.lease_value(lease) for lease in held.leases],
        "ledger": {"day": ledger.midnight(now).date().isoformat(), **ledger.totals(spent)},
        "rate": budget.as_json(),
        "errors": [f"{f.repo}: {f.error}" for f in (*issues.failures, *pulls.failures)],
    }


def status_line(report: dict[str, Any]) -> str:
    """`2 running, 3 ready, 1 needs-review, 4 prs | max 5` — zero counts left out, as the original did."""
    parts = [f"{report['running']} running"]
    for key, label in (("queued", "queued"), ("ready", "ready"), ("needs_review", "needs-review"),
                       ("needs_human", "needs-human"), ("prs", "prs")):  # fmt: skip
        if report[key]:
            parts.append(f"{report[key]} {label}")
    tail = f"max {report['slots']}"
    if report["paused"]:
        tail += " | PAUSED"
    off = [f for f, why in report["families"].items() if why != "available"]
    if off:
        tail += f" | {', '.join(off)} off"
    return f"{', '.join(parts)} | {tail}"
