"""`k3sc top`'s Prefect-side sections: the fleet header, families, review leases, agent runs and
security events, from the operator's records, the dispatcher's memory, runs and usage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from k3sc import decide, usage, workflow
from k3sc.config import Config
from k3sc.models import AgentRun, RunPhase
from k3sc.orchestration import ledger
from k3sc.services import fleet
from k3sc.services.top import UsageEntry
from k3sc.tui import top_rows
from k3sc.tui.top_rows import OUTPUT_WIDTH, Inputs, Row, Section, clip, duration, money, stamp, tokens


def run_counts(runs: Iterable[AgentRun]) -> dict[str, int]:
    counts = {"running": 0, "waiting": 0, "done": 0, "failed": 0}
    for run in runs:
        if run.phase is RunPhase.RUNNING:
            counts["running"] += 1
        elif run.phase is RunPhase.WAITING:
            counts["waiting"] += 1
        elif run.phase is RunPhase.COMPLETED:
            counts["done"] += 1
        elif run.phase in (RunPhase.FAILED, RunPhase.CRASHED):
            counts["failed"] += 1
    return counts


def fleet_header(
    inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None, slots_source: str
) -> tuple[str, dict[str, Any]]:
    """` Agents: 2 running, 1 waiting, 5 done, 1 failed | Slots: 3 (max_slots) | PAUSED | scan …`."""
    values: dict[str, Any] = {}
    parts: list[str] = []
    if inputs.runs.data is not None:
        counts = run_counts(inputs.runs.data.runs)
        values.update(counts)
        parts.append(
            f"Agents: {counts['running']} running, {counts['waiting']} waiting, "
            f"{counts['done']} done, {counts['failed']} failed (recent runs)"
        )
    else:
        parts.append("Agents: ?")
    facts = inputs.fleet.data
    if facts is not None:
        slots, came_from = fleet.effective_slots(config, facts.controls, slots_source)
        values.update(slots=slots, slots_source=came_from, paused=facts.controls.paused)
        parts.append(f"Slots: {slots} ({came_from})")
        if facts.controls.paused:
            parts.append("PAUSED")
        memory = facts.memory
        values.update(last_scan=top_rows.iso(memory.last_scan), next_scan=top_rows.iso(memory.next_due))
        parts.append(
            f"Scan: last {stamp(memory.last_scan, now, zone) or 'never'}, "
            f"next {stamp(memory.next_due, now, zone) or 'not scheduled'}"
        )
    else:
        parts.append("Slots: ?")
    return " | ".join(parts), values


AVAILABILITY_LABELS = {
    workflow.Refusal.FAMILY_DISABLED: "DISABLED",
    workflow.Refusal.FAMILY_PARKED: "PARKED",
    workflow.Refusal.DAILY_BUDGET: "BUDGET",
}


def families(inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None) -> Section:
    """Each family: OK, or DISABLED / PARKED / BUDGET with the dispatcher's own reason."""
    fed = top_rows.fed_by(inputs, ("fleet", "usage"), now, zone)
    facts = inputs.fleet.data
    base = Section("families", "Families", ("Family", "Status", "Reason"), empty="(not read yet)", **fed)
    if facts is None:
        return top_rows.unread(base)
    held = facts.controls
    today = [e.record for e in inputs.usage.data or () if e.created >= ledger.midnight(now)]
    over_budget = (
        usage.admission(today, usage.Caps.of(config.budget)) if inputs.usage.data is not None else {}
    )
    off = decide.availability(held.disabled_reasons, list(held.parks), now, over_budget)
    rows = []
    for family in config.families:
        name = str(family)
        if name in off:
            label, why, style = AVAILABILITY_LABELS.get(off[name].refusal, "OFF"), off[name].detail, "red"
        else:
            label, why, style = "OK", "available", "green"
            if inputs.usage.data is None:
                why = "available (today's budget not read yet)"
        rows.append(Row((name, label, why), {"family": name, "status": label.lower(), "reason": why}, style))
    return dataclasses.replace(base, rows=tuple(rows))


def leases(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    fed = top_rows.fed_by(inputs, ("fleet",), now, zone)
    columns = ("Worker", "Repo", "PR", "Issue", "Taken", "Expires", "Branch")
    base = Section("leases", "Review leases", columns, empty="(no review leases)", **fed)
    if inputs.fleet.data is None:
        return top_rows.unread(base)
    rows = []
    for lease in inputs.fleet.data.controls.leases:
        expired = lease.expired(now)
        expires = stamp(lease.expires_at, now, zone) + (" (expired)" if expired else "")
        cells = (
            lease.worker,
            lease.repo.name,
            f"#{lease.pr}",
            f"#{lease.issue}" if lease.issue else "",
            stamp(lease.taken_at, now, zone),
            expires,
            lease.branch,
        )
        values = {
            "worker": lease.worker,
            "repo": lease.repo.full_name,
            "pr": lease.pr,
            "issue": lease.issue,
            "taken_at": top_rows.iso(lease.taken_at),
            "expires_at": top_rows.iso(lease.expires_at),
            "expired": expired,
            "branch": lease.branch,
        }
        rows.append(Row(cells, values, "dim" if expired else "yellow", lease.url))
    return dataclasses.replace(base, rows=tuple(rows))


PHASE_ORDER = {
    RunPhase.RUNNING: 0,
    RunPhase.WAITING: 0,
    RunPhase.COMPLETED: 1,
    RunPhase.FAILED: 2,
    RunPhase.CRASHED: 2,
    RunPhase.CANCELLED: 3,
}
RUN_STYLES = {
    RunPhase.RUNNING: "green",
    RunPhase.WAITING: "yellow",
    RunPhase.FAILED: "red",
    RunPhase.CRASHED: "red",
    RunPhase.CANCELLED: "dim",
}


def run_state(run: AgentRun) -> str:
    """`running`, `failed (Parked)`, `completed → success`: the phase, Prefect's name if it says
    more, and the hand-off's verdict once recorded."""
    text = run.phase.value
    if run.state_name and run.state_name.lower() not in (run.phase.value, "running", "scheduled", "late"):
        text += f" ({run.state_name})"
    if run.outcome is not None:
        text += f" → {run.outcome.value}"
    return text


def sort_runs(runs: Iterable[AgentRun]) -> list[AgentRun]:
    """Active first, then by how they ended; newest first within each; ties by higher issue."""
    floor = datetime.min.replace(tzinfo=UTC)

    def key(run: AgentRun) -> tuple[int, float, int]:
        moment = run.started_at or run.created_at or floor
        return (PHASE_ORDER.get(run.phase, 4), -moment.timestamp(), -run.issue)

    return sorted(runs, key=key)


def agent_runs(
    inputs: Inputs, usage_by_run: Mapping[str, UsageEntry], config: Config, now: datetime, zone: tzinfo | None
) -> Section:
    fed = top_rows.fed_by(inputs, ("runs", "usage"), now, zone)
    columns = (
        "Issue",
        "Repo",
        "Agent",
        "Kind",
        "Try",
        "State",
        "Started",
        "Duration",
        "Tokens",
        "Cost",
        "Last output",
    )
    base = Section("runs", "Agent runs", columns, empty="(no agent runs)", **fed)
    facts = inputs.runs.data
    if facts is None:
        return top_rows.unread(base)
    rows = []
    for run in sort_runs(facts.runs):
        started = run.started_at if run.ran_for != 0 or run.phase.active else None
        took = ((run.ended_at or now) - started).total_seconds() if started else None
        entry = usage_by_run.get(run.id)
        spent = entry.record.usage if entry else None
        cost = entry.record.spent(usage.Unit.DOLLARS) if entry and spent else None
        last = facts.last_lines.get(run.id) or run.message
        values = {
            "id": run.id,
            "repo": run.repo.full_name,
            "issue": run.issue,
            "agent": run.agent,
            "kind": run.kind.value,
            "attempt": run.attempt,
            "phase": run.phase.value,
            "state": run_state(run),
            "outcome": run.outcome.value if run.outcome else None,
            "started": top_rows.iso(started),
            "duration_s": round(took, 1) if took is not None else None,
            "tokens": spent.total_tokens if spent else None,
            "cost_usd": round(cost, 4) if cost is not None else None,
            "last_output": last,
        }
        cells = (
            f"#{run.issue}",
            run.repo.name,
            run.agent,
            run.kind.value,
            str(run.attempt),
            run_state(run),
            stamp(started, now, zone),
            duration(took) if took is not None else "",
            tokens(spent.total_tokens) if spent else "",
            money(cost) if cost is not None else "",
            clip(last, OUTPUT_WIDTH),
        )
        link = top_rows.url(config, run.repo.full_name, "issues", run.issue)
        rows.append(Row(cells, values, RUN_STYLES.get(run.phase, ""), link))
    return dataclasses.replace(base, rows=tuple(rows))


def security(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    """Guard refusals (`git push blocked …`) agent runs reported in the last day."""
    fed = top_rows.fed_by(inputs, ("security",), now, zone)
    note = "refusals by the git/gh guards as they reached agent run logs (last 24 h)"
    base = Section(
        "security",
        "Security events",
        ("Time", "Issue", "Agent", "Event"),
        empty="(no security events)",
        lines=(note,),
        **fed,
    )
    if inputs.security.data is None:
        return top_rows.unread(base)
    known = {r.id: r for r in (inputs.runs.data.runs if inputs.runs.data else ())}
    rows = []
    for event in inputs.security.data:
        run = known.get(event.run_id)
        values = {
            "at": top_rows.iso(event.at),
            "run_id": event.run_id,
            "issue": run.issue_key if run else None,
            "agent": run.agent if run else None,
            "event": event.text,
        }
        cells = (
            stamp(event.at, now, zone),
            f"#{run.issue}" if run else "-",
            run.agent if run else "-",
            clip(event.text, 100),
        )
        rows.append(Row(cells, values, "red"))
    return dataclasses.replace(base, rows=tuple(rows), title=f"Security events ({len(rows)})")
