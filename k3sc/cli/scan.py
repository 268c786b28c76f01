"""`k3sc scan`: what k3sc sees on GitHub right now, and what the dispatcher would decide about it.

Thin on purpose: read through `k3sc.github`, decide with `workflow.plan` (the same call the
dispatch flow makes, so a reason shown here is the reason the dispatcher has), render. githubkit,
the config, the core and rich load inside the command, never at `k3sc --help` time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from k3sc.cli import _output
from k3sc.errors import UsageError
from k3sc.models import AgentRun, Issue, Pull, Repo

if TYPE_CHECKING:
    from k3sc.config import Config
    from k3sc.github import RateBudget, RepoFailure
    from k3sc.workflow import Plan


def scan(
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    repo: Annotated[
        str | None, typer.Option("--repo", metavar="OWNER/NAME", help="Scan only this configured repository.")
    ] = None,
) -> None:
    """Show every workflow issue with its state, owner and whether k3sc would dispatch it (and why not),
    then the open pull requests and the GitHub rate budget."""
    from k3sc import config as k3sc_config
    from k3sc import workflow

    config = k3sc_config.load().config
    repos = select_repos(config, repo)
    seen = _output.run(read_github(config, repos))
    runs = load_runs(config, seen.issues)
    plan = workflow.plan(seen.issues, runs, seen.pulls, config, now=datetime.now(UTC))
    report = build_report(plan, seen)
    for failure in seen.failures:
        _output.warn(f"{failure.repo} was not scanned: {failure.error}")
    if json_:
        _output.print_json(report)
    else:
        _render(report)
    if seen.failures:
        raise typer.Exit(1)


def select_repos(config: Config, wanted: str | None) -> list[Repo]:
    """The configured repos, or the one `--repo` names (which must be configured)."""
    configured = [r.repo for r in config.repos]
    if wanted is None:
        return configured
    try:
        chosen = Repo.parse(wanted)
    except ValueError:
        raise UsageError(f"--repo expects owner/name, got {wanted!r}.") from None
    match = next((r for r in configured if r.key == chosen.key), None)
    if match is None:
        known = ", ".join(r.full_name for r in configured) or "none"
        raise UsageError(f"--repo {wanted} is not a configured repository (configured: {known}).")
    return [match]


@dataclass(frozen=True)
class Seen:
    """One scan's GitHub reads: issues, PRs, the repos that failed, and the rate budget after."""

    issues: tuple[Issue, ...]
    pulls: tuple[Pull, ...]
    failures: tuple[RepoFailure, ...]
    budget: RateBudget


async def read_github(config: Config, repos: Sequence[Repo]) -> Seen:
    from k3sc.github import GitHubClient

    async with GitHubClient.from_config(config) as gh:
        issues = await gh.workflow_issues(repos)
        pulls = await gh.open_pulls(repos)
        budget = gh.budget
    # A repo that cannot be read usually fails both lists; report it once, with the first error.
    failures = {f.repo.key: f for f in (*pulls.failures, *issues.failures)}
    return Seen(issues.items, pulls.items, tuple(sorted(failures.values(), key=lambda f: f.repo.key)), budget)


def load_runs(config: Config, issues: Sequence[Issue]) -> list[AgentRun]:
    """Recorded agent runs for `issues` (active attempts, failures), from the Prefect server.

    The seam between the scan and run history: without `PREFECT_API_URL` there is no history and
    eligibility is decided from labels alone, which the note on stderr says. A server that cannot
    be read is reported the same way rather than hiding what GitHub shows.
    """
    from k3sc.orchestration.api import resolve_api_url

    if not resolve_api_url():
        _output.warn("run history not consulted: no Prefect server (set PREFECT_API_URL or run `k3sc up`)")
        return []
    from k3sc.errors import K3scError

    try:
        return _output.run(_runs_from_prefect([i.key for i in issues]))
    except K3scError as exc:
        _output.warn(f"run history not consulted: {exc}")
        return []


async def _runs_from_prefect(issue_keys: list[str]) -> list[AgentRun]:
    from k3sc.orchestration import runs
    from k3sc.orchestration.api import PrefectAPI

    async with PrefectAPI.from_env() as api:
        history = await runs.runs_for_issues(api, issue_keys)
        pending = await runs.pending_runs(api)
    return list({r.id: r for r in (*history, *pending)}.values())


def build_report(plan: Plan, seen: Seen) -> dict[str, Any]:
    """The `--json` document: one entry per issue in the plan's order, the PRs, the budget, failures."""
    from k3sc import workflow

    issues: list[dict[str, Any]] = []
    for decision in plan.decisions:
        issue = decision.issue
        state = workflow.read_labels(issue.labels)
        skip = decision if isinstance(decision, workflow.Skip) else None
        issues.append(
            {
                "repo": issue.repo.full_name,
                "number": issue.number,
                "title": issue.title,
                "author": issue.author,
                "state": state.state.value,
                "owner": state.owner,
                "eligible": skip is None,
                "reason": skip.refusal.value if skip else None,
                "detail": skip.detail if skip else None,
                "url": issue.url,
            }
        )
    pulls = [
        {
            "repo": p.repo.full_name,
            "number": p.number,
            "branch": p.branch,
            "issue": p.issue,
            "owner": p.owner,
            "waiting": p.waiting,
            "url": p.url,
        }
        for p in seen.pulls
    ]
    errors = [{"repo": f.repo.full_name, "error": str(f.error)} for f in seen.failures]
    return {"issues": issues, "pulls": pulls, "rate": seen.budget.as_json(), "errors": errors}


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _output.console()
    issues = Table(
        "repo", "#", "title", "author", "state", "owner", "eligible", "why not", box=None, pad_edge=False
    )
    for row in report["issues"]:
        why = f"{row['reason']}: {row['detail']}" if row["reason"] else ""
        issues.add_row(
            *(
                Text(str(v))
                for v in (row["repo"], row["number"], _clip(row["title"]), row["author"], row["state"])
            ),
            Text(row["owner"] or "-"),
            Text("yes" if row["eligible"] else "no"),
            Text(why),
        )
    console.print(Text(f"workflow issues: {len(report['issues'])}", style="bold"))
    console.print(issues)
    pulls = Table("repo", "#", "branch", "issue", "owner", box=None, pad_edge=False)
    for row in report["pulls"]:
        owner = "waiting" if row["waiting"] else (row["owner"] or "-")
        issue = f"#{row['issue']}" if row["issue"] else "-"
        pulls.add_row(*(Text(str(v)) for v in (row["repo"], row["number"], row["branch"], issue, owner)))
    console.print(Text(f"open pull requests: {len(report['pulls'])}", style="bold"))
    console.print(pulls)
    rate = report["rate"]
    reset = rate["reset"] or "unknown"
    console.print(
        Text(
            f"rate: {rate['remaining']}/{rate['limit']} left, resets {reset}; this scan sent "
            f"{rate['requests']} requests, {rate['not_modified']} answered 304 (free)"
        )
    )


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
