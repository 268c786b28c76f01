"""GitHub webhook deliveries: the signature on them and whether k3sc should look because of one.

Pure and shared by both ends: the receiver (`k3sc.webhook`) verifies with `verify`, and the
sandbox's fake GitHub signs with `sign`, so the sandbox exercises the very check real GitHub
deliveries meet. `triage` is the one rule for which deliveries become a "go and look" hint;
a delivery is never applied as a state change (it may repeat, arrive late or out of order).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from k3sc import labels

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
MAX_BODY = 1024 * 1024  # GitHub's issue and PR payloads are a few KiB; 1 MiB leaves a wide margin
_PREFIX = "sha256="

ISSUE_ACTIONS = frozenset({"labeled", "unlabeled", "opened", "reopened", "closed"})
# Pushes (`synchronize`), edits, assignments and review requests change nothing k3sc decides on.
PULL_ACTIONS = frozenset({"labeled", "unlabeled", "opened", "reopened", "closed", "ready_for_review"})


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if `header` is the signature of exactly these bytes (constant-time compare)."""
    if not secret or not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


@dataclass(frozen=True)
class Triage:
    """What a verified delivery means to k3sc: `look` (a scan now) or not, and why."""

    look: bool
    reason: str
    subject: str  # `owner/name#7`, `owner/name` or `org owner` (for the log)


def triage(event: str, payload: dict[str, Any], repos: frozenset[str]) -> Triage:
    """Whether a delivery for `event` is a reason to scan; `repos` holds lower-cased `owner/name`s.

    Unknown events and repositories are not errors (GitHub sends what the hook subscribes to),
    they are ignored with a reason the receiver logs.
    """
    action = str(payload.get("action") or "")
    name = f"{event}.{action}" if action else event
    repo = str(field(payload, "repository", "full_name") or "")
    number = field(payload, "issue", "number") or field(payload, "pull_request", "number")
    subject = f"{repo}#{number}" if repo and number else repo
    # Rung 1: only what k3sc handles; GitHub keeps adding events and actions.
    if event not in ("issues", "pull_request", "ping"):
        return Triage(False, f"event {event!r} is not one k3sc handles", subject)
    # Rung 2: a ping from an organization hook names no repository, only the owner.
    if event == "ping" and not repo:
        org = str(field(payload, "organization", "login") or "")
        known = bool(org) and any(r.split("/")[0] == org.lower() for r in repos)
        return Triage(known, "a new hook: look at everything" if known else f"unknown owner {org!r}", org)
    if repo.lower() not in repos:
        return Triage(False, f"unknown repository {repo!r}", subject)
    if event == "ping":
        return Triage(True, "a new hook: look at everything", subject)
    # Rung 3: the actions that can change what k3sc would do.
    if action not in (ISSUE_ACTIONS if event == "issues" else PULL_ACTIONS):
        return Triage(False, f"{name} changes nothing k3sc decides on", subject)
    if not isinstance(number, int):
        return Triage(False, f"{name} without an issue number", subject)
    # Rung 4: label changes that only record a claim, its release or work taken away would start
    # a scan that finds nothing new. k3sc's own writes come back this way: a claim swaps `ready`
    # for an owner, a hand-off swaps the owner for the next state, whose `labeled` event is the
    # one that says to look.
    label = str(field(payload, "label", "name") or "")
    if labels.is_owner_label(label):
        verb = "claimed" if action == "labeled" else "released"
        return Triage(False, f"{label} was {verb}: nothing new", subject)
    if action == "unlabeled" and label.lower() in (labels.READY, labels.NEEDS_REVIEW):
        return Triage(False, f"{label} removed: no new work", subject)
    return Triage(True, name, subject)


def field(payload: dict[str, Any], section: str, key: str) -> Any:
    """`payload[section][key]`, or None when either is missing or not a mapping."""
    value = payload.get(section)
    return value.get(key) if isinstance(value, dict) else None
