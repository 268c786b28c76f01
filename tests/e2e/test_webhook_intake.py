"""Intake by webhook: a `ready` label is claimed in seconds with no polling scan behind it.

The sandbox's fake GitHub posts a signed `issues.labeled` delivery to a real `k3sc webhook`
child (started as `k3sc up` starts it, its secret read from the Prefect Secret block); the
receiver's event matches the dispatch deployment's trigger, a dispatch worker runs the scan,
and the scan claims the issue. The chain's interval is 1 h and no scan is started by hand, so
only the webhook path can have done it. Redeliveries of the same GUID start nothing more, also
after the receiver process is replaced (the inbox file remembers it).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from k3sc.labels import is_owner_label
from k3sc.orchestration import runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import FlowRun
from k3sc.services import up
from tests.e2e.helpers import deployed_world, reset_dispatch

pytestmark = pytest.mark.e2e


async def _webhook_scans(api_url: str, reason: str) -> list[FlowRun]:
    async with PrefectAPI(api_url) as api:
        deployment = await api.deployment_id(runs.DISPATCH_DEPLOYMENT)
        found = await api.flow_runs(deployment_ids=[deployment], limit=50)
    return [r for r in found if r.parameters.get("reason") == reason]


def test_a_signed_label_delivery_gets_the_issue_claimed_without_polling(
    tmp_path: Path, prefect_api_url: str
) -> None:
    deployed = deployed_world(
        tmp_path,
        prefect_api_url,
        {
            "owner": "hook",
            "allowed_authors": ["alice"],
            "repos": [{"name": "api", "issues": [{"title": "later", "author": "alice", "labels": []}]}],
            "config": {"scan": {"min_interval": "1h", "max_interval": "1h"}},
        },
        webhook_secret="e2e-hook-secret",
    )
    world, repo = deployed.world, deployed.world.repos[0]
    lines: list[str] = []
    try:
        asyncio.run(reset_dispatch(prefect_api_url))
        up.start_webhook(deployed.session, lines.append)
        assert world.fake.hook is not None and lines == [
            f"webhook: receiving GitHub deliveries at {deployed.session.webhook_url}"
        ]
        worker = deployed.session.stack.start_worker("k3sc-dispatch")
        # Time the intake path, not the worker's start-up (importing Prefect on a busy box).
        deadline = time.monotonic() + 120
        while "started" not in worker.log_tail() and time.monotonic() < deadline:
            time.sleep(0.2)

        labelled, labelled_at = time.monotonic(), datetime.now(UTC)
        world.fake.set_labels(repo.owner, repo.name, 1, ["ready"], actor="alice")
        deadline = labelled + 120
        while time.monotonic() < deadline:
            owners = [
                x for x in world.fake.issue_view(repo.owner, repo.name, 1)["labels"] if is_owner_label(x)
            ]
            if owners:
                break
            time.sleep(0.2)
        claimed_after = time.monotonic() - labelled
        assert owners, (
            f"not claimed within 120 s; receiver log:\n{deployed.session.stack.processes[0].log_tail()}"
        )

        delivery = next(d for d in world.fake.hook.deliveries if d.event == "issues" and b'"ready"' in d.body)
        assert delivery.status == 202
        reason = f"github.issues.labeled on {repo.full_name}#1"
        for _ in range(4):  # GitHub's "Redeliver": the same GUID again
            world.fake.hook.redeliver(delivery.id)
        assert world.fake.hook.wait()
        time.sleep(3)  # room for a (wrong) second trigger firing to show up
        scans = asyncio.run(_webhook_scans(prefect_api_url, reason))
        assert len(scans) == 1, [(s.name, s.parameters) for s in scans]

        # A new receiver process (the inbox file is the same) still knows the GUID.
        first = next(p for p in deployed.session.stack.processes if p.name == "webhook")
        first.stop()
        deployed.session.stack.processes.remove(first)
        up.start_webhook(deployed.session, lines.append)
        world.fake.hook.redeliver(delivery.id)
        assert world.fake.hook.wait() and (delivery.status, delivery.attempts) == (202, 6)
        time.sleep(3)
        assert len(asyncio.run(_webhook_scans(prefect_api_url, reason))) == 1
        history = world.fake.label_history(repo.owner, repo.name, 1)  # one claim, by one owner
        assert len({x for step in history for x in step if is_owner_label(x)}) == 1, history
        scan = scans[0]
        running = (scan.start_time - labelled_at).total_seconds() if scan.start_time else float("nan")
        print(
            f"labelled ready → scan created {(scan.created - labelled_at).total_seconds():.1f} s, "
            f"running {running:.1f} s, issue claimed {claimed_after:.1f} s (load {os.getloadavg()[0]:.1f})"
        )
    finally:
        asyncio.run(reset_dispatch(prefect_api_url))
        deployed.stop()
