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
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loop import implement_run, loop, machine, wait_for

from k3sc.sandbox.world import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    numbers = range(1, args.samples + 1)
    seed = {
        "owner": "latency",
        "max_slots": 26,
        "allowed_authors": ["alice"],
        "repos": [
            {
                "name": "api",
                "issues": [{"title": f"task {n}", "author": "alice", "labels": []} for n in numbers],
            }
        ],
    }
    to_running: list[float] = []
    to_label: list[float] = []
    with loop(seed) as session:
        world = session.world
        for number in numbers:
            ref = f"{world.owner}/api#{number}"
            labelled = datetime.now(UTC)
            world.fake.set_labels(world.owner, "api", number, ["ready"], actor="alice")
            run = wait_for(lambda ref=ref: implement_run(session, ref, started=True), timeout=120)
            to_running.append((run.started_at - labelled).total_seconds())
            ended = wait_for(lambda ref=ref: implement_run(session, ref, ended=True), timeout=300)
            seen = wait_for(lambda n=number: unclaimed_at(world, n), timeout=120, poll=0.05)
            to_label.append((seen - ended.ended_at).total_seconds())
            print(
                f"  #{number}: ready→Running {to_running[-1]:.1f}s, end→label {to_label[-1]:.1f}s", flush=True
            )
            wait_for(lambda n=number: labels(world, n) == ["needs-human"], timeout=300)
    print()
    print(f"machine: {machine()}")
    print(f"command: uv run python bench/loop_latency.py --samples {args.samples}")
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    for name, values in (
        ("labelled ready → agent run Running", to_running),
        ("agent run end → label change", to_label),
    ):
        print(f"| {name} | {statistics.median(values):.1f} s | {min(values):.1f} s | {max(values):.1f} s |")


def labels(world: World, number: int) -> list[str]:
    found: list[str] = world.fake.issue_view(world.owner, "api", number)["labels"]
    return found


def unclaimed_at(world: World, number: int) -> datetime | None:
    """Now, if the issue no longer carries an owner label (the hand-off wrote its labels)."""
    if not any(label.startswith(("claude-", "codex-")) for label in labels(world, number)):
        return datetime.now(UTC)
    return None


if __name__ == "__main__":
    main()
