"""Writing labels: the only code that changes workflow and owner labels on GitHub.

A change is one `PUT …/issues/N/labels` carrying the whole set (workflow labels replaced, every
other label kept), then a re-read that confirms it. Claims are conditional: re-read, refuse with
`Conflict` if the issue moved on, write, re-read, and take our label back off if another owner
showed up in between. The Go original deleted labels one call at a time and never checked, which
left issues with no workflow label or two owners.

GitHub has no compare-and-swap for labels, so a label a human adds in the milliseconds between our
read and our PUT is lost; the re-read catches every change to workflow labels, which is what matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from k3sc import labels, workflow
from k3sc.errors import Conflict
from k3sc.github.scanning import IssueSnapshot, get_issue, repo_path
from k3sc.labels import State
from k3sc.models import Repo

if TYPE_CHECKING:
    from k3sc.github.client import GitHubClient


def _unique(names: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return list(seen.values())


def _folded(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names}


def _owners(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names if labels.is_owner_label(n)}


def _workflow(names: Iterable[str]) -> set[str]:
    return {n.lower() for n in names if labels.is_workflow_label(n)}


async def _put(gh: GitHubClient, repo: Repo, number: int, names: Sequence[str]) -> None:
    await gh.request("PUT", repo_path(repo, "issues", number, "labels"), json={"labels": list(names)})


def _where(repo: Repo, number: int) -> str:
    return f"{repo}#{number}"


def _show(names: Iterable[str]) -> str:
    shown = sorted(names)
    return ", ".join(shown) if shown else "(none)"


async def set_workflow_labels(
    gh: GitHubClient, repo: Repo, number: int, names: Iterable[str]
) -> tuple[str, ...]:
    """Make `names` the issue's workflow/owner labels, keeping every other label; return the new set.

    Raises:
        ValueError: `names` holds a label that is not a workflow or owner label.
        Conflict: the re-read shows different workflow labels (someone changed them meanwhile).
    """
    wanted = _unique(names)
    stray = [n for n in wanted if not labels.is_workflow_label(n)]
    if stray:
        raise ValueError(f"not workflow labels: {', '.join(stray)}")
    before = await get_issue(gh, repo, number)
    if _workflow(before.labels) == _folded(wanted):
        return before.labels  # already there: a re-run after a crash writes nothing
    await _put(gh, repo, number, labels.with_workflow(before.labels, wanted))
    after = await get_issue(gh, repo, number)
    if _workflow(after.labels) != _folded(wanted):
        raise Conflict(
            f"{_where(repo, number)}: set workflow labels to {_show(_folded(wanted))} but GitHub now has "
            f"{_show(_workflow(after.labels))}; someone else changed them at the same time"
        )
    return after.labels


async def claim(
    gh: GitHubClient, repo: Repo, number: int, agent: str, expected_state: State
) -> tuple[str, ...]:
    """Replace the issue's workflow labels with `agent`, only if it is still `expected_state` and unowned.

    Returns the labels after the claim. Claiming an issue that `agent` alone already owns returns
    its labels without writing (a dispatcher re-run after a crash).

    Raises:
        ValueError: `agent` is not an owner label.
        Conflict: the issue is closed, parked (`waiting`), in another state, or owned by someone else
            (before our write, or appeared between our write and the re-read; then our label is
            removed again and the state label we replaced is restored).
    """
    if not labels.is_owner_label(agent):
        raise ValueError(f"{agent!r} is not an owner label (claude-*, codex-*)")
    before = await get_issue(gh, repo, number)
    _check_claimable(before, agent, expected_state)
    owners = _owners(before.labels)
    if owners == {agent.lower()}:
        return before.labels
    await _put(gh, repo, number, labels.with_workflow(before.labels, [agent]))
    after = await get_issue(gh, repo, number)
    await _undo_if_contested(gh, repo, number, agent, before=before, after=after)
    return after.labels


def _check_claimable(snapshot: IssueSnapshot, agent: str, expected: State) -> None:
    where = _where(snapshot.issue.repo, snapshot.issue.number)
    state = workflow.read_labels(snapshot.labels)
    if not snapshot.open:
        raise Conflict(f"{where}: closed since the scan; not claimed")
    others = _owners(snapshot.labels) - {agent.lower()}
    if others:
        raise Conflict(f"{where}: already owned by {_show(others)}; not claimed")
    if state.owner == agent.lower():
        return
    if state.waiting:
        raise Conflict(f"{where}: labelled waiting since the scan; not claimed")
    if state.state is not expected:
        raise Conflict(f"{where}: state is {state.state.value}, expected {expected.value}; not claimed")


async def _undo_if_contested(
    gh: GitHubClient, repo: Repo, number: int, mine: str, *, before: IssueSnapshot, after: IssueSnapshot
) -> None:
    """After our write: if another owner is on the issue too, take ours off again and raise Conflict."""
    owners = _owners(after.labels)
    if owners == {mine.lower()}:
        return
    where = _where(repo, number)
    others = owners - {mine.lower()}
    if mine.lower() not in owners:
        # Someone replaced the whole set after us: nothing of ours is left to undo.
        raise Conflict(f"{where}: {mine}'s claim was overwritten (owners now {_show(others)})")
    # They added their label next to ours; put back what our write removed, minus our label.
    removed = [
        n for n in before.labels if labels.is_workflow_label(n) and n.lower() not in _folded(after.labels)
    ]
    restored = _unique([*(n for n in after.labels if n.lower() != mine.lower()), *removed])
    await _put(gh, repo, number, restored)
    raise Conflict(f"{where}: {_show(others)} claimed it at the same time as {mine}; {mine} withdrew")


async def claim_pull(gh: GitHubClient, repo: Repo, number: int, owner: str) -> tuple[str, ...]:
    """Put owner label `owner` on PR `number` (a review lease), unless someone else holds it.

    Workflow state labels on the PR are left alone. Holding it already is not an error.

    Raises:
        ValueError: `owner` is not an owner label.  NotFound: no such PR.
        Conflict: closed, not a PR, or another owner holds it (before or right after our write).
    """
    if not labels.is_owner_label(owner):
        raise ValueError(f"{owner!r} is not an owner label (claude-*, codex-*)")
    before = await get_issue(gh, repo, number)
    where = _where(repo, number)
    if not before.is_pull:
        raise Conflict(f"{where}: is an issue, not a pull request")
    if not before.open:
        raise Conflict(f"{where}: closed; not claimed")
    others = _owners(before.labels) - {owner.lower()}
    if others:
        raise Conflict(f"{where}: held by {_show(others)}; not claimed")
    if owner.lower() in _owners(before.labels):
        return before.labels
    await _put(gh, repo, number, _unique([*before.labels, owner]))
    after = await get_issue(gh, repo, number)
    await _undo_if_contested(gh, repo, number, owner, before=before, after=after)
    return after.labels


async def release_pull(
    gh: GitHubClient, repo: Repo, number: int, owner: str | None = None
) -> tuple[str, ...]:
    """Take `owner`'s label (or every owner label when None) off PR `number`; other labels stay.

    Raises:
        Conflict: the re-read still shows a label we removed.
    """
    before = await get_issue(gh, repo, number)
    drop = _owners(before.labels) if owner is None else _owners(before.labels) & {owner.lower()}
    if not drop:
        return before.labels
    await _put(gh, repo, number, [n for n in before.labels if n.lower() not in drop])
    after = await get_issue(gh, repo, number)
    back = _owners(after.labels) & drop
    if back:
        raise Conflict(f"{_where(repo, number)}: {_show(back)} is still on it after the release")
    return after.labels
