"""The agent run's steps that touch the outside world, as Prefect tasks."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from k3sc.agent import workspace
from k3sc.models import Repo
from tasks.context import Services


@task(name="prepare-workspace", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
async def prepare_workspace(svc: Services, repo: Repo, agent: str, issue: int) -> workspace.Workspace:
    """Clone or fetch the agent's persistent clone and check out the issue branch."""
    log = get_run_logger()
    config = svc.config
    configured = config.repo_config(repo)
    default_branch = configured.default_branch if configured else None
    token = svc.github_token.get_secret_value() if svc.github_token else None
    prepared = await workspace.prepare(
        root=config.workspace_root,
        repo=repo,
        agent=agent,
        issue=issue,
        clone_url=config.clone_url(repo),
        branch=config.safety.branch_for(issue),
        default_branch=default_branch,
        blocked_words=config.safety.blocked_commit_words,
        token=token,
        log=log.info,
    )
    log.info(
        "workspace %s on %s (from %s%s)",
        prepared.path,
        prepared.branch,
        prepared.base,
        ", existing remote branch" if prepared.reused_branch else "",
    )
    return prepared
