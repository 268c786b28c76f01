"""What an operator command points at: a configured repository, an issue number, a PR number.

Every command resolves its arguments here, before anything is read or written, so a typo is a
one-paragraph usage error (exit 2) that changed nothing.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from typing import TYPE_CHECKING

from k3sc.config import Config
from k3sc.errors import NotFound, UsageError
from k3sc.models import Repo

if TYPE_CHECKING:
    from k3sc.github import GitHubClient, IssueSnapshot


def repo(config: Config, text: str | None, *, option: str = "--repo") -> Repo | None:
    """The configured repo `text` names (`owner/name`, or `name` when unambiguous); None if not given."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    configured = [r.repo for r in config.repos]
    wanted = text.strip().lower()
    if "/" in wanted:
        match = [r for r in configured if r.key == wanted]
    else:
        match = [r for r in configured if r.name.lower() == wanted]
    if len(match) == 1:
        return match[0]
    known = ", ".join(r.full_name for r in configured) or "none"
    if len(match) > 1:
        raise UsageError(
            f"{option} {text} is ambiguous: it names {', '.join(r.full_name for r in match)}; use owner/name."
        )
    raise UsageError(f"{option} {text} is not a configured repository (configured: {known}).")


def number(text: str, what: str = "issue") -> int:
    """A positive issue or PR number."""
    try:
        value = int(text.strip().lstrip("#"))
    except ValueError:
        raise UsageError(
            f"invalid {what} number: {text!r} (expected a positive whole number such as 7)"
        ) from None
    if value <= 0:
        raise UsageError(f"invalid {what} number: {text!r} (expected a positive whole number such as 7)")
    return value


def only_repo(config: Config, chosen: Repo | None, what: str) -> Repo:
    """The repo a command acts on: the one given, else the only configured one, else a usage error."""
    if chosen is not None:
        return chosen
    configured = [r.repo for r in config.repos]
    if len(configured) == 1:
        return configured[0]
    if not configured:
        raise UsageError("no repositories are configured: add `repos:` to the k3sc config.")
    names = ", ".join(r.full_name for r in configured)
    raise UsageError(f"{what}: several repositories are configured ({names}); say which with --repo.")


async def find_issue(gh: GitHubClient, config: Config, issue: int, chosen: Repo | None) -> IssueSnapshot:
    """Issue `issue` of the repo given, else of whichever configured repo has it open.

    Without `--repo`, an issue number open in several configured repos is ambiguous: the error
    names them, sorted.
    """
    if chosen is not None:
        try:
            return await gh.get_issue(chosen, issue)
        except NotFound:
            raise UsageError(
                f"{chosen}#{issue} does not exist (or is not visible with this token)."
            ) from None
    configured = [r.repo for r in config.repos]
    if not configured:
        raise UsageError("no repositories are configured: add `repos:` to the k3sc config.")

    async def look(repo: Repo) -> IssueSnapshot | None:
        try:
            found = await gh.get_issue(repo, issue)
        except NotFound:
            return None
        return found if not found.is_pull else None

    found = [f for f in await asyncio.gather(*(look(r) for r in configured)) if f is not None]
    open_ones = [f for f in found if f.open] or found
    if len(open_ones) == 1:
        return open_ones[0]
    if not open_ones:
        raise UsageError(f"issue #{issue} exists in none of the configured repositories.")
    where = ", ".join(sorted(f.issue.repo.full_name for f in open_ones))
    raise UsageError(
        f"issue #{issue} exists in several repositories ({where}); rerun with --repo <owner/name>."
    )


def operator() -> str:
    """Who is running the command, for comments and records (never a secret)."""
    try:
        return os.environ.get("K3SC_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "an operator"
