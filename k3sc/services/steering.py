"""`k3sc kill`, `k3sc reset`, `k3sc claim`: a person takes an issue out of the dispatcher's hands.

- kill: the issue's active attempts are recorded as stopped by the operator (`outcome:stopped`, so
  the dispatcher never hands them off as failures and never retries them), cancelled through
  Prefect (the worker terminates the agent process), and the issue moves to `--to` with a comment.
- reset: the issue's earlier attempts are tagged `k3sc-reset` (they stay visible in Prefect but no
  longer count towards the failure cap) and its labels become exactly `--to`.
- claim: a person's owner label (`human`, `human-<login>`, or a numbered agent such as `claude-1`);
  the dispatcher leaves human-claimed issues alone and `k3sc scan` shows them as owned.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from k3sc import labels, names, workflow
from k3sc.config import Config
from k3sc.errors import K3scError, UsageError
from k3sc.github import GitHubClient
from k3sc.models import AgentRun, Outcome, Repo, RunPhase
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.services import targets

# Where kill and reset may send an issue.
DESTINATIONS = (labels.READY, labels.NEEDS_REVIEW, labels.NEEDS_HUMAN, labels.WAITING)


def destination(text: str, option: str = "--to") -> str:
    value = text.strip().lower()
    if value not in DESTINATIONS:
        raise UsageError(f"{option} {text!r} is not a workflow label: use one of {', '.join(DESTINATIONS)}.")
    return value


def human_owner(text: str) -> str:
    """An owner label a person may put on an issue: `human`, `human-<login>`, or `claude-1`-style."""
    value = text.strip().lower()
    if labels.is_slot_owner(value):
        raise UsageError(
            f"--owner {text}: claude-a … codex-z are k3sc's own slot labels (the dispatcher would reap the "
            "issue as an orphan); use human, human-<login> or a numbered agent such as claude-1."
        )
    if not labels.is_owner_label(value):
        raise UsageError(
            f"--owner {text!r} is not an owner label: use human, human-<login> or claude-1 / codex-1."
        )
    return value


@dataclass
class Killed:
    issue: str
    to: str
    stopped: list[dict[str, Any]] = field(default_factory=list)  # run, agent, final state, seconds
    previous_owner: str | None = None


async def kill(config: Config, issue: int, repo: Repo | None, to: str, *, wait: float = 20.0) -> Killed:
    """Stop every active attempt on the issue, then move it to `to` with a comment saying who and when."""
    by, when = targets.operator(), datetime.now(UTC)
    async with PrefectAPI.from_env() as api, GitHubClient.from_config(config) as gh:
        found = await targets.find_issue(gh, config, issue, repo)
        ref = found.issue.key
        active = [r for r in await runs.runs_for_issues(api, [ref]) if r.phase.active]
        for run in active:
            # Recorded first: from here on the dispatcher treats the attempt as handed off.
            await runs.mark_handed_off(api, run, Outcome.STOPPED)
            # A running attempt is cancelled by its worker, which terminates the agent process; one
            # that has not started is simply cancelled.
            target = "CANCELLING" if run.phase is RunPhase.RUNNING else "CANCELLED"
            await api.set_state(
                run.id, target, message=f"stopped by {by} with k3sc kill", force=target == "CANCELLED"
            )
        result = Killed(ref, to, previous_owner=workflow.read_labels(found.labels).owner)
        for run in active:
            state, took = await _until_ended(api, run, wait)
            what = {"run": run.id, "agent": run.agent, "kind": run.kind.value, "attempt": run.attempt}
            result.stopped.append({**what, "state": state, "seconds": round(took, 1)})
        attempts = (
            ", ".join(f"{r.kind.value} attempt {r.attempt} by {r.agent}" for r in active) or "no agent run"
        )
        body = (
            f"Stopped by {by} with `k3sc kill` at {when:%Y-%m-%d %H:%M} UTC ({attempts}); moved to `{to}`. "
            "The stopped attempt is not retried automatically and does not count towards the failure cap."
        )
        await gh.comment_once(found.issue.repo, issue, f"kill:{when.isoformat()}", body)
        await gh.set_workflow_labels(found.issue.repo, issue, [to])
    return result


async def _delete_jobs(config: Config, run_ids: list[str]) -> None:
    from k3sc.kube.client import Kube

    async with await Kube.connect(config.namespace) as kube:
        for run_id in run_ids:
            await kube.delete_run_jobs(run_id)


async def _until_ended(api: PrefectAPI, run: AgentRun, wait: float) -> tuple[str, float]:
    """Poll the run until it is no longer running (the worker kills the process), up to `wait` s."""
    started = time.monotonic()
    while True:
        current = await api.flow_run(run.id)
        state = current.state_type if current else "GONE"
        if (
            state not in ("RUNNING", "CANCELLING", "PENDING", "SCHEDULED")
            or time.monotonic() - started > wait
        ):
            return state, time.monotonic() - started
        await asyncio.sleep(0.5)


async def reset(config: Config, issue: int, repo: Repo | None, to: str) -> dict[str, Any]:
    """Make earlier attempts stop counting and set the issue's workflow labels to exactly `to`."""
    async with PrefectAPI.from_env() as api, GitHubClient.from_config(config) as gh:
        found = await targets.find_issue(gh, config, issue, repo)
        ref = found.issue.key
        history = await runs.runs_for_issues(api, [ref])
        if live := [r for r in history if r.phase.active]:
            busy = ", ".join(f"{r.kind.value} attempt {r.attempt} by {r.agent}" for r in live)
            raise K3scError(
                f"{ref} has an active agent run ({busy}): stop it first with `k3sc kill {issue}`."
            )
        counted = [r for r in history if not r.reset]
        for run in counted:
            await api.set_tags(run.id, [*run.tags, names.TAG_RESET])
        owner = workflow.read_labels(found.labels).owner
        await gh.set_workflow_labels(found.issue.repo, issue, [to])
    return {"issue": ref, "from": owner or "unclaimed", "to": to, "attempts_reset": len(counted)}


async def claim(config: Config, issue: int, repo: Repo | None, owner: str) -> dict[str, Any]:
    """Put a person's owner label on an unowned issue (every other workflow label goes)."""
    async with GitHubClient.from_config(config) as gh:
        found = await targets.find_issue(gh, config, issue, repo)
        current = workflow.read_labels(found.labels).owner
        if current is not None:
            raise K3scError(f"{found.issue.key} is already claimed by {current}.")
        if not found.open:
            raise K3scError(f"{found.issue.key} is closed.")
        await gh.set_workflow_labels(found.issue.repo, issue, [owner])
    return {"issue": found.issue.key, "owner": owner}
