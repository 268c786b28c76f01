"""`k3sc scan`: what k3sc sees on GitHub right now, and what the dispatcher would decide about it.

Thin on purpose: gather and decide through `k3sc.services.dispatch.plan` (the same facts and the
same `k3sc.decide.decide` the dispatch flow uses, so a reason shown here is the reason the
dispatcher has), render. githubkit, the config, the core and rich load inside the command, never
at `k3sc --help` time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from k3sc.cli import _output
from k3sc.errors import UsageError
from k3sc.models import Repo

if TYPE_CHECKING:
    from k3sc.config import Config
    from k3sc.github import RateBudget
    from k3sc.services.dispatch import Planned


def scan(
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    repo: Annotated[
        str | None, typer.Option("--repo", metavar="OWNER/NAME", help="Scan only this configured repository.")
    ] = None,
) -> None:
    """Show every workflow issue with its state, owner and whether k3sc would dispatch it (and why not),
    then the open pull requests and the GitHub rate budget."""
    from k3sc import config as k3sc_config

    config = k3sc_config.load().config
    repos = select_repos(config, repo)
    planned, budget = _output.run(_plan(config, repos))
    for note in planned.notes:
        _output.warn(note)
    failures = planned.facts.snapshot.failures
    for failure in failures:
        _output.warn(f"{failure.repo} was not scanned: {failure.error}")
    report = build_report(planned, budget)
    if json_:
        _output.print_json(report)
    else:
        _render(report)
    if failures:
        raise typer.Exit(1)


async def _plan(config: Config, repos: Sequence[Repo]) -> tuple[Planned, RateBudget]:
    from k3sc.github import GitHubClient
    from k3sc.services import dispatch

    async with GitHubClient.from_config(config) as gh:
        planned = await dispatch.plan(config, gh, repos)
        return planned, gh.budget


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


def build_report(planned: Planned, budget: RateBudget) -> dict[str, Any]:
    """The `--json` document: one entry per issue in the plan's order, pending actions, PRs, budget."""
    from k3sc import workflow

    seen = planned.facts.snapshot
    current = {i.key: i for i in seen.issues}
    issues: list[dict[str, Any]] = []
    for decision in planned.decisions.plan.decisions:
        issue = current.get(decision.issue.key, decision.issue)
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
    plan_actions = {"implement", "review", "skip"}
    pending = [asdict(r) for r in planned.decisions.rows() if r.action not in plan_actions]
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
    errors = [{"repo": f.repo.full_name, "error": f.error} for f in seen.failures]
    return {
        "issues": issues,
        "pending": pending,
        "pulls": pulls,
        **planned.decisions.controls(),
        "rate": budget.as_json(),
        "errors": errors,
    }


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
    if report["pending"]:
        pending = Table("issue", "action", "agent", "reason", box=None, pad_edge=False)
        for row in report["pending"]:
            pending.add_row(*(Text(str(row[k] or "-")) for k in ("issue", "action", "agent", "reason")))
        console.print(Text(f"before claiming, the next scan will: {len(report['pending'])}", style="bold"))
        console.print(pending)
    pulls = Table("repo", "#", "branch", "issue", "owner", box=None, pad_edge=False)
    for row in report["pulls"]:
        owner = "waiting" if row["waiting"] else (row["owner"] or "-")
        issue = f"#{row['issue']}" if row["issue"] else "-"
        pulls.add_row(*(Text(str(v)) for v in (row["repo"], row["number"], row["branch"], issue, owner)))
    console.print(Text(f"open pull requests: {len(report['pulls'])}", style="bold"))
    console.print(pulls)
    console.print(Text(_controls_line(report)))
    rate = report["rate"]
    reset = rate["reset"] or "unknown"
    console.print(
        Text(
            f"rate: {rate['remaining']}/{rate['limit']} left, resets {reset}; this scan sent "
            f"{rate['requests']} requests, {rate['not_modified']} answered 304 (free)"
        )
    )


def _controls_line(report: dict[str, Any]) -> str:
    """`dispatch: running, 3 slots; claude available, codex disabled via …; 1 review lease`."""
    families = "; ".join(f"{family} {why}" for family, why in report["families"].items())
    state = "PAUSED" if report["paused"] else "running"
    leases = ", ".join(f"{lease['pr']} by {lease['worker']}" for lease in report["leases"]) or "none"
    slots = f"{report['slots']} slots ({report['pool']} pool)"
    return f"dispatch: {state}, {slots}; {families}; review leases: {leases}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
