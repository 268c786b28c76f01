"""GitHub activity as Prefect events, so a label change starts a scan in seconds.

A `github.issues.labeled` event whose label is `ready` or `needs-review` matches the trigger on
the dispatch deployment (prefect.yaml) and starts a forced scan. The event carries only what
identifies the issue; the scan re-reads GitHub, because an event is a hint to go and look,
never a state change to apply (deliveries can repeat, arrive late or out of order). The
sandbox's fake GitHub feeds this directly; a webhook receiver for real GitHub feeds the same.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

LABELED = "github.issues.labeled"


def from_github(event: str, payload: dict[str, Any], delivery: str | None = None) -> dict[str, Any] | None:
    """A Prefect event for a GitHub webhook delivery k3sc cares about, else None.

    `delivery` (the X-GitHub-Delivery GUID) becomes the event id, so a redelivery is deduplicated
    by Prefect's event pipeline.
    """
    action = str(payload.get("action") or "")
    if event != "issues" or action != "labeled":
        return None
    repo = str((payload.get("repository") or {}).get("full_name") or "")
    number = (payload.get("issue") or {}).get("number")
    label = str((payload.get("label") or {}).get("name") or "")
    if not repo or not isinstance(number, int) or not label:
        return None
    return {
        "id": delivery or str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": LABELED,
        "resource": {
            "prefect.resource.id": f"github.issue.{repo.lower()}#{number}",
            "prefect.resource.name": f"{repo}#{number}",
            "github.repo": repo.lower(),
            "github.label": label.lower(),
        },
        "related": [],
        "payload": {"repo": repo, "issue": number, "label": label},
    }
