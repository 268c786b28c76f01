"""`k3sc take`, `k3sc release`, `k3sc next`: review leases for a person's own agents.

`take` reserves the best eligible open PR for one worker (`claude-4`, `codex-1`): the worker's
record first, then the PR's, each an atomic create-if-absent, then the worker's owner label on the
PR as a mirror for people looking at GitHub. If the label cannot be written the lease is rolled
back. `release` removes a lease and the PR's owner label. The dispatcher removes leases that
expired, and never dispatches a review of an issue whose PR is under a live lease.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from k3sc import leases, workflow
from k3sc.config import Config
from k3sc.errors import K3scError, UsageError
from k3sc.github import GitHubClient
from k3sc.labels import State
from k3sc.leases import Lease
from k3sc.models import Pull, Repo
from k3sc.orchestration import controls, runs
from k3sc.orchestration.api import PrefectAPI


@dataclass(frozen=True)
class Taken:
    lease: Lease
    title: str

    def as_json(self) -> dict[str, Any]:
        value = controls.lease_value(self.lease)
        return {**value, "family": self.lease.family, "title": self.title}


async def take(config: Config, worker: str, repo: Repo | None) -> Taken | None:
    """Reserve the best eligible open PR for `worker`; None if no PR qualifies."""
    repos = [repo] if repo is not None else [r.repo for r in config.repos]
    now = datetime.now(UTC)
    async with PrefectAPI.from_env() as api, GitHubClient.from_config(config) as gh:
        current = await controls.held_by_worker(api, worker)
        if current is not None and current.expired(now):
            await controls.drop_lease(api, current)  # an expired lease never blocks its worker
            current = None
        if current is not None:
            raise K3scError(
                f"worker {worker} already has {current.pr_key} reserved (until "
                f"{current.expires_at:%Y-%m-%d %H:%M} UTC); release it first with "
                f"`k3sc release --repo {current.repo} --pr {current.pr}`."
            )
        pulls = await gh.open_pulls(repos)
        issues = await gh.workflow_issues(repos)
        held = await controls.read(api)
        pending = await runs.pending_runs(api)
        active = {r.issue_key for r in pending if r.phase.active}
        live = [lease for lease in held.leases if not lease.expired(now)]
        choices = leases.candidates(pulls.items, issues.items, live, active, repo=repo)
        if not choices:
            return None
        first = _lease(config, worker, choices[0], now)
        if not await controls.reserve_worker(api, first):
            raise K3scError(
                f"worker {worker} is taking a lease in another process at the same moment; try again."
            )
        try:
            for pull in choices:
                lease = _lease(config, worker, pull, now)
                if await controls.reserve_pr(api, lease):
                    await api.set_variable(
                        controls.worker_variable(worker), controls.lease_value(lease), controls.TAGS
                    )
                    await _mirror(gh, api, lease)
                    return Taken(lease, pull.title)
        except BaseException:
            await controls.free_worker(api, worker)
            raise
        await controls.free_worker(api, worker)
        return None


async def _mirror(gh: GitHubClient, api: PrefectAPI, lease: Lease) -> None:
    """The worker's owner label on the PR; without it, the lease is rolled back."""
    try:
        await gh.claim_pull(lease.repo, lease.pr, lease.worker)
    except BaseException:
        await controls.drop_lease(api, lease)
        raise


def _lease(config: Config, worker: str, pull: Pull, now: datetime) -> Lease:
    return Lease(
        repo=pull.repo,
        pr=pull.number,
        issue=pull.issue,
        worker=worker,
        branch=pull.branch,
        url=pull.url or f"{config.github_url.rstrip('/')}/{pull.repo.full_name}/pull/{pull.number}",
        taken_at=now,
        expires_at=now + config.leases.ttl,
    )


async def release(config: Config, pr: int, repo: Repo | None) -> str:
    """Remove the lease on PR `pr` and its owner label; an error if nobody holds the PR."""
    async with PrefectAPI.from_env() as api, GitHubClient.from_config(config) as gh:
        held = await controls.read(api)
        matches = [
            lease for lease in held.leases if lease.pr == pr and (repo is None or lease.repo.key == repo.key)
        ]
        if len(matches) > 1:
            where = ", ".join(sorted(lease.repo.full_name for lease in matches))
            raise UsageError(
                f"PR #{pr} is reserved in several repositories ({where}); say which with --repo."
            )
        if matches:
            lease = matches[0]
            await gh.release_pull(lease.repo, lease.pr)
            await controls.drop_lease(api, lease)
            return f"released {lease.repo} PR #{pr} (held by {lease.worker})"
        target = repo if repo is not None else _only(config, pr)
        snapshot = await gh.get_issue(target, pr)
        owners = [n for n in snapshot.labels if workflow.read_labels([n]).owner]
        if not snapshot.is_pull or not owners:
            raise K3scError(
                f"{target} PR #{pr} is not reserved by anyone: no lease and no owner label to remove."
            )
        await gh.release_pull(target, pr)
        return f"cleared owner label {', '.join(owners)} from {target} PR #{pr} (there was no lease)"


def _only(config: Config, pr: int) -> Repo:
    configured = [r.repo for r in config.repos]
    if len(configured) != 1:
        raise K3scError(
            f"PR #{pr} is not reserved by anyone in any configured repository (say which with --repo)."
        )
    return configured[0]


async def next_up(config: Config) -> dict[str, Any] | None:
    """A uniformly random `needs-human` issue or unreserved open PR for a person to look at."""
    repos = [r.repo for r in config.repos]
    async with GitHubClient.from_config(config) as gh:
        issues = await gh.workflow_issues(repos)
        pulls = await gh.open_pulls(repos)
    reserved: set[str] = set()
    if runs_available():
        async with PrefectAPI.from_env() as api:
            reserved = {lease.pr_key for lease in (await controls.read(api)).leases}
    pool: list[dict[str, Any]] = [
        {"kind": "needs-human", "repo": i.repo.full_name, "number": i.number, "title": i.title, "url": i.url}
        for i in issues.items
        if workflow.read_labels(i.labels).state is State.NEEDS_HUMAN
    ]
    pool += [
        {"kind": "pr", "repo": p.repo.full_name, "number": p.number, "title": p.title, "url": p.url}
        for p in pulls.items
        if f"{p.repo.key}#{p.number}" not in reserved and not p.owner
    ]
    return random.choice(pool) if pool else None


def runs_available() -> bool:
    from k3sc.orchestration.api import resolve_api_url

    return resolve_api_url() is not None
