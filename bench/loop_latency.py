"""Latency of the loop, with k3sc's default settings, on this machine.

    uv run python bench/loop_latency.py [--samples 10]

(1) from a person labelling an issue `ready` to its agent run being *Running* in Prefect, and
(2) from an agent run's end to the label change on the issue. One issue at a time, on a quiet
system: label it, time both, wait until it has been reviewed too, next. The run's Running and
end times are Prefect's state timestamps; label changes are seen by polling the fake GitHub.
Uses PREFECT_API_URL if set, otherwise starts its own Prefect server (not counted).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loop import issue_runs, loop, machine, wait_for  # noqa: E402

from k3sc.labels import Kind  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    seed = {
        "owner": "latency",
        "max_slots": 26,
        "allowed_authors": ["alice"],
        "repos": [{"name": "api", "issues": [{"title": f"task {n}", "author": "alice", "labels": []}
                                              for n in range(1, args.samples + 1)]}],  # fmt: skip
    }
    to_running: list[float] = []
    to_label: list[float] = []
    with loop(seed) as session:
        world = session.world
        owner = world.owner
        time.sleep(8)  # let the start-up scan finish so it does not serve the first sample
        for number in range(1, args.samples + 1):
            ref = f"{owner}/api#{number}"
            labelled = datetime.now(UTC)
            world.fake.set_labels(owner, "api", number, ["ready"], actor="alice")
            run = wait_for(lambda: _running(session, ref), timeout=120)
            to_running.append((run.started_at - labelled).total_seconds())
            ended = wait_for(lambda: _ended(session, ref), timeout=300)
            seen = wait_for(lambda: _relabelled(world, owner, number), timeout=120, poll=0.05)
            to_label.append((seen - ended.ended_at).total_seconds())
            print(f"  #{number}: ready→Running {to_running[-1]:.1f}s, end→label {to_label[-1]:.1f}s", flush=True)
            wait_for(lambda: world.fake.issue_view(owner, "api", number)["labels"] == ["needs-human"], 300)
    print()
    print(f"machine: {machine()}")
    print(f"command: uv run python bench/loop_latency.py --samples {args.samples}")
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    for name, values in (("labelled ready → agent run Running", to_running), ("agent run end → label change", to_label)):
        print(f"| {name} | {statistics.median(values):.1f} s | {min(values):.1f} s | {max(values):.1f} s |")


def _running(session, ref):  # type: ignore[no-untyped-def]
    for run in issue_runs(session, ref):
        if run.kind is Kind.IMPLEMENT and run.started_at is not None:
            return run
    return None


def _ended(session, ref):  # type: ignore[no-untyped-def]
    for run in issue_runs(session, ref):
        if run.kind is Kind.IMPLEMENT and run.ended_at is not None:
            return run
    return None


def _relabelled(world, owner, number):  # type: ignore[no-untyped-def]
    labels = world.fake.issue_view(owner, "api", number)["labels"]
    if not any(label.startswith(("claude-", "codex-")) for label in labels):
        return datetime.now(UTC)
    return None


if __name__ == "__main__":
    main()
