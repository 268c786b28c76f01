"""Gathering the facts one dispatch pass decides on, from GitHub and Prefect, without writing anything.

The dispatch flow reads through these (each wrapped in a Prefect task for visibility), and so do
`k3sc dispatch --dry-run`, `k3sc scan` and `k3sc up`'s idle check, so every one of them decides on
exactly the same reads. All requests are reads; GitHub lists are paginated and conditional.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from k3sc import decide, workflow
from k3sc.config import Config
from k3sc.errors import K3scError, NotFound
from k3sc.github import outcomes
from k3sc.labels import State
from k3sc.models import AgentRun, Intent, ReadFailure, Repo, Snapshot
from k3sc.orchestration import controls, dispatch_state, ledger, runs

if TYPE_CHECKING:
    from k3sc.github import GitHubClient
    from k3sc.orchestration.api import PrefectAPI

# Issue states whose decisions depend on run history (eligibility, attempts, implementer, orphans).
_HISTORY_STATES = frozenset({State.READY, State.NEEDS_REVIEW, State.OWNED, State.INCONSISTENT})


async def snapshot(gh: GitHubClient, repos: Sequence[Repo]) -> Snapshot:
    """Every workflow issue and open PR of `repos`; a repo that could not be read is named in `failures`."""
    issues = await gh.workflow_issues(repos)
    pulls = await gh.open_pulls(repos)
    # A repo that cannot be read usually fails both lists; report it once, with the first error.
    failed = {f.repo.key: f for f in (*pulls.failures, *issues.failures)}
    failures = tuple(
        ReadFailure(f.repo, str(f.error)) for f in sorted(failed.values(), key=lambda f: f.repo.key)
    )
    return Snapshot(issues.items, pulls.items, failures)


async def agent_runs(api: PrefectAPI, config: Config, seen: Snapshot) -> list[AgentRun]:
    """Runs still pending hand-off, plus the whole history of every issue a decision depends on.

    Only runs of configured repositories count: a repo dropped from the config is no longer ours to
    hand off. `needs-human` issues are done, so their history is not read.
    """
    pending = await runs.pending_runs(api)
    relevant = [i.key for i in seen.issues if workflow.read_labels(i.labels).state in _HISTORY_STATES]
    history = await runs.runs_for_issues(api, relevant)
    by_id = {r.id: r for r in (*history, *pending) if config.repo_config(r.repo) is not None}
    return sorted(by_id.values(), key=lambda r: r.created_at)


async def finished(
    gh: GitHubClient, config: Config, recorded: Iterable[AgentRun], held: frozenset[str] = frozenset()
) -> list[decide.Finished]:
    """The evidence of every attempt that ended and awaits its hand-off (except `held` ones)."""
    found = []
    for run in recorded:
        if run.handed_off or run.phase.active or run.id in held:
            continue
        evidence = await outcomes.evidence(gh, run, config.safety.branch_for(run.issue))
        try:
            current = await gh.get_issue(run.repo, run.issue)
            found.append(decide.Finished(run, evidence, current.labels, current.open))
        except NotFound:
            found.append(decide.Finished(run, evidence, None, False))
    return found


async def intents(gh: GitHubClient, api: PrefectAPI, in_flight: Sequence[Intent]) -> list[decide.IntentCheck]:
    """What Prefect and GitHub say now about claims a dispatcher left in flight."""
    if not in_flight:
        return []
    created = await runs.run_by_key(api, [i.key for i in in_flight])
    checks = []
    for intent in in_flight:
        if intent.key in created:
            checks.append(decide.IntentCheck(intent, run_created=True))
            continue
        try:
            current = await gh.get_issue(Repo.parse(intent.repo), intent.issue)
        except NotFound:
            checks.append(decide.IntentCheck(intent, run_created=False))
        except (K3scError, ValueError) as exc:
            checks.append(decide.IntentCheck(intent, run_created=False, unreadable=str(exc)))
        else:
            checks.append(decide.IntentCheck(intent, False, current.issue, current.open))
    return checks


async def gather(
    gh: GitHubClient,
    api: PrefectAPI,
    config: Config,
    memory: dispatch_state.DispatchState,
    *,
    held: frozenset[str] = frozenset(),
    repos: Sequence[Repo] | None = None,
) -> decide.Facts:
    """All facts of one pass (over every configured repo unless `repos` narrows it)."""
    set_by_operator = await controls.read(api)
    spent = await ledger.since(api, ledger.midnight(datetime.now(UTC)))
    checks = await intents(gh, api, memory.intents)
    seen = await snapshot(gh, repos if repos is not None else [r.repo for r in config.repos])
    recorded = await agent_runs(api, config, seen)
    ended = await finished(gh, config, recorded, held)
    return decide.Facts(
        snapshot=seen,
        runs=tuple(recorded),
        finished=tuple(ended),
        intents=tuple(checks),
        orphans_seen=dict(memory.orphans_seen),
        last_family=memory.last_family,
        paused=set_by_operator.paused,
        held=held,
        leases=set_by_operator.leases,
        disabled=set_by_operator.disabled_reasons,
        parks=set_by_operator.parks,
        spent_today=tuple(spent),
        max_slots=set_by_operator.max_slots,
    )
