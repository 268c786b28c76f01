"""Issue comments: reading a thread (every page) and posting one comment.

Kept apart from labelling because comments are content, not state: nothing here is conditional or
re-read, and a comment is never retried after a 5xx (a retried POST could post it twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from k3sc.errors import GitHubError
from k3sc.github.scanning import parse_time, repo_path
from k3sc.models import Repo

if TYPE_CHECKING:
    from k3sc.github.client import GitHubClient


@dataclass(frozen=True)
class Comment:
    """One issue or PR conversation comment."""

    author: str
    body: str
    created_at: datetime
    url: str = ""


def comment_from_json(repo: Repo, item: Any) -> Comment:
    try:
        return Comment(
            author=str((item.get("user") or {}).get("login") or "ghost"),
            body=str(item.get("body") or ""),
            created_at=parse_time(item["created_at"]),
            url=str(item.get("html_url") or ""),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise GitHubError(f"{repo}: a comment in GitHub's answer lacks {exc}") from None


async def comments(gh: GitHubClient, repo: Repo, number: int, since: datetime | None = None) -> list[Comment]:
    """Every comment on issue/PR `number`, oldest first; `since` keeps those updated at or after it."""
    params: dict[str, str | int] = {}
    if since is not None:
        params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    found: list[Comment] = []
    async for page in gh.pages(repo_path(repo, "issues", number, "comments"), params):
        found.extend(comment_from_json(repo, item) for item in page)
    return sorted(found, key=lambda c: c.created_at)


async def comment(gh: GitHubClient, repo: Repo, number: int, body: str) -> Comment:
    """Post `body` as a comment on issue/PR `number` and return it as GitHub stored it."""
    response = await gh.request("POST", repo_path(repo, "issues", number, "comments"), json={"body": body})
    return comment_from_json(repo, response.json())


# Marker in every comment k3sc posts for a hand-off, so a re-run never posts it twice.
COMMENT_MARKER = "<!-- k3sc:{key} -->"


async def comment_once(gh: GitHubClient, repo: Repo, number: int, key: str, body: str) -> bool:
    """Post `body` unless a comment carrying `key`'s marker is already there; True if posted."""
    marker = COMMENT_MARKER.format(key=key)
    if any(marker in c.body for c in await comments(gh, repo, number)):
        return False
    await comment(gh, repo, number, f"{body}\n\n{marker}")
    return True
