"""GitHub activity as Prefect events, so a label change starts a scan in seconds.

Every event here means "go and look": it matches the trigger on the dispatch deployment
(prefect.yaml: `github.issues.*`, `github.pull_request.*`, `github.ping`) and starts a forced
scan, which re-reads GitHub. The event carries only what identifies the issue, never a state
to apply (deliveries can repeat, arrive late or out of order). Which deliveries are worth a
look is `k3sc.deliveries.triage`; the webhook receiver (`k3sc.webhook`) feeds these to Prefect.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from k3sc import deliveries

LABELED = "github.issues.labeled"

# Event ids must be UUIDs; a delivery GUID that is not one (a hand-made redelivery, a relay)
# still maps to the same id every time, so Prefect's own id dedup keeps working.
_DELIVERY_NAMESPACE = uuid.UUID("5b0e8a52-6f0b-4b8e-9d0c-4b3c2a1f6e11")


def event_id(delivery: str) -> str:
    """The Prefect event id for an `X-GitHub-Delivery` GUID (itself when it is a UUID)."""
    try:
        return str(uuid.UUID(delivery))
    except ValueError:
        return str(uuid.uuid5(_DELIVERY_NAMESPACE, delivery))


def from_github(
    event: str, payload: dict[str, Any], delivery: str | None = None, *, now: datetime | None = None
) -> dict[str, Any] | None:
    """The Prefect event for an `issues`, `pull_request` or `ping` delivery, else None.

    `delivery` (the X-GitHub-Delivery GUID) becomes the event id, so a quick redelivery is also
    deduplicated by Prefect's event pipeline (the receiver's inbox dedupes durably).
    """
    action = str(payload.get("action") or "")
    repo = str(deliveries.field(payload, "repository", "full_name") or "")
    if event == "ping":
        owner = repo or str(deliveries.field(payload, "organization", "login") or "")
        if not owner:
            return None
        kind = "repo" if repo else "org"
        resource = {"prefect.resource.id": f"github.{kind}.{owner.lower()}", "prefect.resource.name": owner}
        return _event(delivery, now, "github.ping", resource, {"owner": owner})
    if event not in ("issues", "pull_request") or not action:
        return None
    number = deliveries.field(payload, "issue" if event == "issues" else "pull_request", "number")
    if not repo or not isinstance(number, int) or isinstance(number, bool):
        return None
    resource = {
        # PRs share the issue number space, so one id per issue or PR across both event kinds.
        "prefect.resource.id": f"github.issue.{repo.lower()}#{number}",
        "prefect.resource.name": f"{repo}#{number}",
        "github.repo": repo.lower(),
        "github.number": str(number),
    }
    body: dict[str, Any] = {"repo": repo, "issue": number, "action": action}
    label = str(deliveries.field(payload, "label", "name") or "")
    if label:
        resource["github.label"] = label.lower()
        body["label"] = label
    if sender := str(deliveries.field(payload, "sender", "login") or ""):
        body["sender"] = sender
    return _event(delivery, now, f"github.{event}.{action}", resource, body)


SECURITY_BLOCKED = "k3sc.security.blocked"


def security_blocked(
    run_id: str,
    repo: str,
    issue: int,
    kind: str,
    agent: str,
    attempt: int,
    detail: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A guard's refusal in an agent run (`git push blocked (push to main)`), as a Prefect event.

    Unlike every other event here it records something that happened, for people and automations
    (a notification on `k3sc.security.*`); nothing in k3sc acts on it. Related to the flow run,
    so the Prefect UI shows it on the run's page.
    """
    resource = {
        "prefect.resource.id": f"k3sc.agent-run.{run_id}",
        "prefect.resource.name": f"{repo}#{issue} {kind} attempt {attempt} by {agent}",
        "github.repo": repo.lower(),
        "github.number": str(issue),
        "k3sc.agent": agent,
    }
    event = _event(
        None, now, SECURITY_BLOCKED, resource, {"detail": detail, "kind": kind, "attempt": attempt}
    )
    event["related"] = [
        {"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.role": "flow-run"}
    ]
    return event


def _event(
    delivery: str | None,
    now: datetime | None,
    name: str,
    resource: dict[str, str],
    payload: dict[str, Any],
) -> dict[str, Any]:
    if delivery:
        payload = {**payload, "delivery": delivery}
    return {
        "id": event_id(delivery) if delivery else str(uuid.uuid4()),
        "occurred": (now or datetime.now(UTC)).isoformat(),
        "event": name,
        "resource": resource,
        "related": [],
        "payload": payload,
    }
