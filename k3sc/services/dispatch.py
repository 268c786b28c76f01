"""`k3sc dispatch`: scan now (a forced run of the dispatch deployment), or show what it would do.

The dry run reads exactly what the dispatcher reads (GitHub through `k3sc.github`, run history
and dispatch state through the Prefect API) and asks the same core functions, so its plan is
the plan, minus the writes. Without a reachable Prefect server it still plans from labels
alone and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from k3sc import handoff, labels, workflow
from k3sc.config import Config
from k3sc.errors import K3scError, NotFound
from k3sc.models import AgentRun
from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI, resolve_api_url


@dataclass(frozen=True)
class PlanRow:
    """One line of the plan: what the next scan does with one issue."""

    issue: str
    action: str  # hand-off | orphan | implement | review | skip
    agent: str | None
    reason: str
    attempt: int | None = None
    pr: int | None = None


async def trigger(api_url: str | None = None, name: str = "scan now (k3sc dispatch)") -> dict[str, Any]:
    """Start a forced dispatch run on `api_url` (else the known server); its id, name and UI address."""
    async with PrefectAPI(api_url) if api_url else PrefectAPI.from_env() as api:
        created = await api.create_flow_run(
            runs.DISPATCH_DEPLOYMENT, parameters={"force": True}, name=name, tags=["k3sc"]
        )
        url = api.url.removesuffix("/api")
    return {"id": created["id"], "name": created["name"], "url": f"{url}/runs/flow-run/{created['id']}"}


async def dry_run(config: Config) -> dict[str, Any]:
    """The plan the next scan would carry out, without writing anything anywhere."""
    from k3sc.github import GitHubClient, outcomes

    notes: list[str] = []
    repos = [r.repo for r in config.repos]
    async with GitHubClient.from_config(config) as gh:
        issues = await gh.workflow_issues(repos)
        pulls = await gh.open_pulls(repos)
        notes += [f"{f.repo} not scanned: {f.error}" for f in (*issues.failures, *pulls.failures)]
        all_runs: list[AgentRun] = []
        last_family: str | None = None
        paused = False
        if resolve_api_url():
            try:
                async with PrefectAPI.from_env() as api:
                    pending = await runs.pending_runs(api)
                    history = await runs.runs_for_issues(api, [i.key for i in issues.items])
                    all_runs = list({r.id: r for r in (*history, *pending)}.values())
                    state = await dispatch_state.load(api)
                    last_family = state.last_family
                    paused = await dispatch_state.paused(api)
            except K3scError as exc:
                notes.append(f"run history not consulted: {exc}")
        else:
            notes.append("run history not consulted: no Prefect server (PREFECT_API_URL or `k3sc up`)")
        rows = await _handoff_rows(gh, config, all_runs, outcomes)
    rows += _orphan_rows(issues.items, all_runs)
    if paused:
        notes.append("dispatch is paused: finished runs are handed off, nothing new is claimed")
    else:
        plan = workflow.plan(
            issues.items, all_runs, pulls.items, config, now=datetime.now(UTC), last_family=last_family
        )
        rows += [_plan_row(d) for d in plan.decisions]
    return {"rows": [asdict(r) for r in rows], "notes": notes}


async def _handoff_rows(gh: Any, config: Config, all_runs: list[AgentRun], outcomes: Any) -> list[PlanRow]:
    rows = []
    history = workflow.histories(all_runs)
    now = datetime.now(UTC)
    for run in all_runs:
        if run.handed_off or run.phase.active:
            continue
        evidence = await outcomes.evidence(gh, run, config.safety.branch_for(run.issue))
        try:
            current = await gh.get_issue(run.repo, run.issue)
            found: tuple[str, ...] | None = current.labels
            is_open = current.open
        except NotFound:
            found, is_open = None, False
        past = history.get(run.issue_key, workflow.History())
        prior = past.failures(since=now - config.scan.task_ttl)
        decision = handoff.decide(run, evidence, found, is_open, prior, past.errors(run.kind))
        target = f"→ {decision.transition.label}" if decision.write_labels else f"({decision.note})"
        rows.append(
            PlanRow(
                run.issue_key,
                "hand-off",
                run.agent,
                f"{run.kind.value} {decision.outcome.value}: {decision.reason} {target}",
                run.attempt,
            )
        )
    return rows


def _orphan_rows(issues: tuple[Any, ...], all_runs: list[AgentRun]) -> list[PlanRow]:
    history = workflow.histories(all_runs)
    rows = []
    for issue in issues:
        owner = workflow.read_labels(issue.labels).owner
        if (
            owner
            and labels.is_slot_owner(owner)
            and history.get(issue.key, workflow.History()).active is None
        ):
            rows.append(
                PlanRow(issue.key, "orphan", owner, "claimed with no agent run (handed off after grace)")
            )
    return rows


def _plan_row(decision: workflow.Decision) -> PlanRow:
    issue = decision.issue
    if isinstance(decision, workflow.Dispatch):
        return PlanRow(
            issue.key,
            decision.kind.value,
            decision.agent,
            f"claim and submit attempt {decision.attempt}",
            decision.attempt,
            decision.pr,
        )
    return PlanRow(issue.key, "skip", None, f"{decision.refusal.value}: {decision.detail}")
