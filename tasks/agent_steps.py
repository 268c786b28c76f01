"""The agent run's steps that touch the outside world, as Prefect tasks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from k3sc import config as k3sc_config
from k3sc.agent import confine, workspace
from k3sc.config import Config
from k3sc.errors import AgentError
from k3sc.github import credentials
from k3sc.models import Repo
from tasks.context import Services


@task(name="agent-token", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
async def agent_github_token(svc: Services, repo: Repo) -> SecretStr | None:
    """The GitHub token this run's agent gets: with `github_app`, one minted for this run alone
    (its repository, contents/pull_requests/issues write, metadata read, at most 1 h); else the
    configured token, which GitHub cannot narrow."""
    log = get_run_logger()
    config = svc.config
    if config.github_app is None:
        log.info(
            "the agent gets k3sc's own GitHub token: a personal token cannot be limited to one repository "
            "(configure github_app for per-run tokens)"
        )
        return svc.github_token
    app = await credentials.resolve(config)
    if not isinstance(app, credentials.AppCredentials):  # resolve() prefers github_app when set
        raise AgentError("github_app is configured but did not resolve to App credentials")
    minted = await credentials.agent_token(app, config.github_api_url, repo)
    log.info(
        "agent token for %s only (contents, pull_requests and issues write; metadata read), expires %s",
        minted.repository,
        minted.expires_at.isoformat(timespec="minutes"),
    )
    return minted.token


@task(name="prepare-workspace", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
async def prepare_workspace(
    svc: Services, repo: Repo, agent: str, issue: int, token: SecretStr | None
) -> workspace.Workspace:
    """Clone or fetch the agent's persistent clone and check out the issue branch."""
    log = get_run_logger()
    config = svc.config
    configured = config.repo_config(repo)
    default_branch = configured.default_branch if configured else None
    secret = token.get_secret_value() if token else None
    prepared = await workspace.prepare(
        root=config.workspace_root,
        repo=repo,
        agent=agent,
        issue=issue,
        clone_url=config.clone_url(repo),
        branch=config.safety.branch_for(issue),
        default_branch=default_branch,
        blocked_words=config.safety.blocked_commit_words,
        token=secret,
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


@dataclass(frozen=True)
class Confinement:
    """How this run's agent is confined: its guards, and the bwrap launcher when sandboxed."""

    guards: confine.Guards
    bwrap: str | None
    layout: confine.Layout | None

    def command(self, argv: list[str]) -> list[str]:
        """`argv`, inside the sandbox when there is one."""
        if self.bwrap is None or self.layout is None:
            return argv
        return confine.command(argv, self.bwrap, self.layout)

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None


async def confine_agent(config: Config, repo: Repo, prepared: workspace.Workspace, path: str) -> Confinement:
    """Install the gh and git guards and plan the sandbox (config `agent.sandbox`).

    Raises:
        AgentError: `agent.sandbox` is `on` but no sandbox can be made here.
    """
    log = get_run_logger()
    decision = await asyncio.to_thread(confine.on_this_machine, config.agent.sandbox)
    if decision.error:
        raise AgentError(decision.error)
    if decision.warning:
        log.warning(decision.warning)
    guards = await asyncio.to_thread(
        confine.install_guards, prepared.path, config.safety.gh_allowed, path, sandboxed=decision.sandboxed
    )
    if not decision.sandboxed:
        return Confinement(guards, None, None)
    secret_files = [k3sc_config.config_path()]
    if config.github_app is not None and config.github_app.private_key_path is not None:
        secret_files.append(config.github_app.private_key_path)
    clone_url = config.clone_url(repo)
    # A remote on this machine (the sandbox world's bare repositories) is written by the push.
    local_remote = [Path(clone_url)] if "://" not in clone_url and not clone_url.startswith("git@") else []
    layout = await asyncio.to_thread(
        confine.layout,
        prepared.path,
        home=Path.home(),
        k3sc_home=k3sc_config.k3sc_home(),
        workspace_root=config.workspace_root,
        secret_files=secret_files,
        writable=local_remote,
        guards=guards,
        program=config.agent.command or (),
    )
    log.info(
        "agent sandboxed by bubblewrap: workspace writable, k3sc's home and %s paths hidden",
        len(layout.hide_dirs) + len(layout.hide_files),
    )
    return Confinement(guards, decision.bwrap, layout)
