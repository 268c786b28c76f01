"""Names and identities derived from (repo, issue, kind, agent, attempt).

Repository is part of every identity (invariant 7): issue #7 of two repos never collides in
run names, idempotency keys, tags, workspace directories or Kubernetes labels. The parsing
functions are the exact inverses of the builders, so runs can be read back from their tags.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from k3sc.labels import Kind
from k3sc.models import Repo

TAG_K3SC = "k3sc"
TAG_AGENT_RUN = "k3sc-agent-run"
TAG_HANDOFF_PENDING = "handoff:pending"
TAG_OUTCOME_PREFIX = "outcome:"
# Put on an issue's earlier attempts by `k3sc reset`: they stay visible but no longer count.
TAG_RESET = "k3sc-reset"

_K8S_VALUE_MAX = 63
_SAFE = re.compile(r"[^a-z0-9]+")


def issue_ref(repo: Repo, issue: int) -> str:
    """`acme/api#7`, lower-cased: the issue's identity everywhere."""
    return f"{repo.key}#{issue}"


def run_name(repo: Repo, issue: int, kind: Kind, agent: str) -> str:
    """A readable Prefect run name, e.g. `acme/api#7 implement claude-b`."""
    return f"{repo.full_name}#{issue} {kind.value} {agent}"


def idempotency_key(repo: Repo, issue: int, kind: Kind, attempt: int) -> str:
    """One key per attempt; keys are permanent in Prefect, so the attempt number is part of it."""
    return f"k3sc/{issue_ref(repo, issue)}/{kind.value}/{attempt}"


def run_tags(repo: Repo, issue: int, kind: Kind, agent: str, attempt: int) -> list[str]:
    """Tags of an agent run; Prefect filters runs by tags, not by parameters."""
    return [
        TAG_K3SC,
        TAG_AGENT_RUN,
        f"repo:{repo.key}",
        f"issue:{issue_ref(repo, issue)}",
        f"agent:{agent}",
        f"kind:{kind.value}",
        f"attempt:{attempt}",
        TAG_HANDOFF_PENDING,
    ]


@dataclass(frozen=True)
class RunIdentity:
    """What an agent run's tags say about it."""

    repo: Repo
    issue: int
    kind: Kind
    agent: str
    attempt: int
    handed_off: bool
    outcome: str | None
    reset: bool = False


def parse_run_tags(tags: list[str] | tuple[str, ...]) -> RunIdentity | None:
    """Read a run's identity back from its tags; None if they are not a k3sc agent run's."""
    values: dict[str, str] = {}
    for tag in tags:
        name, sep, value = tag.partition(":")
        if sep:
            values.setdefault(name, value)
    try:
        ref = values["issue"]
        repo_text, _, number = ref.rpartition("#")
        return RunIdentity(
            repo=Repo.parse(repo_text),
            issue=int(number),
            kind=Kind(values["kind"]),
            agent=values["agent"],
            attempt=int(values["attempt"]),
            handed_off=TAG_HANDOFF_PENDING not in tags,
            outcome=values.get("outcome"),
            reset=TAG_RESET in tags,
        )
    except (KeyError, ValueError):
        return None


def handed_off_tags(tags: list[str] | tuple[str, ...], outcome: str) -> list[str]:
    """The tag set after hand-off: `handoff:pending` replaced by `outcome:<outcome>`."""
    kept = [t for t in tags if t != TAG_HANDOFF_PENDING and not t.startswith(TAG_OUTCOME_PREFIX)]
    return [*kept, f"{TAG_OUTCOME_PREFIX}{outcome}"]


def slug(text: str) -> str:
    """Lower-case, runs of anything but [a-z0-9] become one `-`, trimmed."""
    return _SAFE.sub("-", text.lower()).strip("-")


def workspace_name(repo: Repo, agent: str) -> str:
    """One persistent clone per (repo, agent): `acme-api-claude-b` (owner included)."""
    return slug(f"{repo.owner}-{repo.name}-{agent}")


def k8s_value(text: str) -> str:
    """A valid Kubernetes label value: ≤63 chars of [a-z0-9-], alphanumeric at both ends.

    Long values keep a hash suffix so two different inputs never truncate to the same label.
    """
    value = slug(text)
    if len(value) <= _K8S_VALUE_MAX:
        return value
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{value[: _K8S_VALUE_MAX - 9].rstrip('-')}-{digest}"


def k8s_labels(repo: Repo, issue: int, kind: Kind, agent: str, attempt: int) -> dict[str, str]:
    """Labels for an agent's pod/Job; selecting by `k3sc.dev/attempt` picks exactly one attempt."""
    return {
        "app.kubernetes.io/name": "k3sc-agent",
        "k3sc.dev/repo-owner": k8s_value(repo.owner),
        "k3sc.dev/repo-name": k8s_value(repo.name),
        "k3sc.dev/issue": str(issue),
        "k3sc.dev/kind": kind.value,
        "k3sc.dev/agent": k8s_value(agent),
        "k3sc.dev/attempt": k8s_value(idempotency_key(repo, issue, kind, attempt)),
    }
