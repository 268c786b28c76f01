"""Reading the evidence of an attempt from GitHub: the branch, the PR, the review comment.

Kept beside the other GitHub reads so the dispatcher's hand-off and `k3sc dispatch --dry-run`
judge attempts from exactly the same requests; the judgement itself is `k3sc.handoff`'s.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from k3sc import handoff
from k3sc.labels import Kind
from k3sc.models import AgentRun, RunPhase

if TYPE_CHECKING:
    from k3sc.github.client import GitHubClient


async def evidence(gh: GitHubClient, run: AgentRun, branch: str) -> handoff.Evidence:
    """What GitHub shows for `run`: nothing is read for a run that did not complete."""
    if run.phase is not RunPhase.COMPLETED:
        return handoff.Evidence(branch)  # a failed run fails whatever it left behind
    pull = await gh.pull_for_issue(run.repo, run.issue)
    pr = pull.number if pull else None
    if run.kind is Kind.IMPLEMENT:
        exists = await gh.branch_exists(run.repo, branch)
        return handoff.Evidence(branch, branch_exists=exists, pr=pr)
    pr = pr or run.pr
    if pr is None:
        return handoff.Evidence(branch, pr=None)
    started = run.started_at or run.created_at
    comments = await gh.comments(run.repo, pr, since=started - timedelta(minutes=1))
    posted = any(handoff.is_review_by(c.body, run.agent, c.created_at, started) for c in comments)
    return handoff.Evidence(branch, pr=pr, review_posted=posted)
