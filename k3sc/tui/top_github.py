"""`k3sc top`'s GitHub sections: workflow issues coloured by state, and open PRs numbered for the
copy keys (`/review <repo> <pr>`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, tzinfo

from k3sc import workflow
from k3sc.config import Config
from k3sc.labels import State
from k3sc.tui import top_rows
from k3sc.tui.top_rows import PR_KEYS, TITLE_WIDTH, Inputs, Row, Section, clip

ISSUE_STYLES = {State.NEEDS_HUMAN: "magenta", State.NEEDS_REVIEW: "cyan", State.READY: "green"}


def issues(inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None) -> Section:
    """Issues with workflow labels, oldest first, coloured by state (owned ones yellow)."""
    fed = top_rows.fed_by(inputs, ("github",), now, zone)
    columns = ("Issue", "Repo", "State", "Owner", "Title")
    facts = inputs.github.data
    base = Section("issues", "GitHub issues", columns, empty="(no issues with workflow labels)", **fed)
    if facts is None:
        return top_rows.unread(base)
    errors = (*base.errors, *facts.failures)
    rows = []
    for issue in facts.issues:
        read = workflow.read_labels(issue.labels)
        owned = read.owner is not None and read.state not in (State.NEEDS_HUMAN, State.NEEDS_REVIEW)
        style = "yellow" if owned else ISSUE_STYLES.get(read.state, "")
        state = str(read.state) + (" (waiting)" if read.waiting else "")
        values = {
            "repo": issue.repo.full_name,
            "number": issue.number,
            "state": str(read.state),
            "owner": read.owner,
            "waiting": read.waiting,
            "title": issue.title,
        }
        cells = (f"#{issue.number}", issue.repo.name, state, read.owner or "", clip(issue.title, TITLE_WIDTH))
        rows.append(
            Row(
                cells,
                values,
                style,
                issue.url or top_rows.url(config, issue.repo.full_name, "issues", issue.number),
            )
        )
    status = f"{base.status}  ({facts.requests} requests, {facts.not_modified} not modified)"
    return dataclasses.replace(base, rows=tuple(rows), errors=errors, status=status)


def pulls(inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None) -> Section:
    """Open PRs, numbered 1-9 for the copy keys; owned or leased ones yellow."""
    fed = top_rows.fed_by(inputs, ("github",), now, zone)
    columns = ("#", "PR", "Repo", "Owner", "Issue", "Branch", "Title")
    base = Section("pulls", "Pull requests", columns, empty="(no open pull requests)", **fed)
    facts = inputs.github.data
    if facts is None:
        return top_rows.unread(base)
    leased = {
        lease.pr_key: lease.worker
        for lease in (inputs.fleet.data.controls.leases if inputs.fleet.data else ())
    }
    rows = []
    for position, pull in enumerate(facts.pulls, 1):
        owner = pull.owner or leased.get(f"{pull.repo.key}#{pull.number}") or ""
        values = {
            "repo": pull.repo.full_name,
            "number": pull.number,
            "owner": owner or None,
            "issue": pull.issue,
            "branch": pull.branch,
            "title": pull.title,
            "review_command": review_command(pull.repo.name, pull.number),
        }
        cells = (
            str(position) if position <= PR_KEYS else "",
            f"#{pull.number}",
            pull.repo.name,
            owner,
            f"#{pull.issue}" if pull.issue else "",
            clip(pull.branch, 20),
            clip(pull.title, TITLE_WIDTH),
        )
        link = pull.url or top_rows.url(config, pull.repo.full_name, "pull", pull.number)
        rows.append(Row(cells, values, "yellow" if owner else "cyan", link))
    return dataclasses.replace(base, rows=tuple(rows))


def review_command(repo_name: str, pr: int) -> str:
    return f"/review {repo_name} {pr}"
