"""The loop at scale: 100 `ready` issues, max_slots 26, a stub agent that finishes at once.

    uv run python bench/loop_scale.py [--issues 100] [--slots 26]

All issues are labelled `ready` at t0 (as a person bulk-labelling would, each label change an
event); the clock stops when every issue is at `needs-human` (implemented, then reviewed by a
different agent). Reports the wall time, the peak of agent runs running at once, and requests
per issue: GitHub requests counted by the fake GitHub, Prefect API requests counted from the
server's access log (HTTP requests; websocket messages are not included).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loop import issue_runs_of, loop, machine, prefect_endpoints, prefect_requests, wait_for

from k3sc.models import Outcome
from k3sc.orchestration import database as databases
from k3sc.orchestration.runs import peak_concurrency

GITHUB_ID = re.compile(r"(?<=/)\d+(?=/|$)")  # issue and PR numbers, comment ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--slots", type=int, default=26)
    parser.add_argument("--breakdown", action="store_true", help="Requests per issue by endpoint.")
    parser.add_argument(
        "--database",
        help="Run the server on PostgreSQL: a postgresql:// URL of a database to create and drop "
        "(e.g. postgresql://postgres@127.0.0.1/k3sc_bench); default SQLite.",
    )
    args = parser.parse_args()
    numbers = range(1, args.issues + 1)
    seed = {
        "owner": "scale",
        "max_slots": args.slots,
        "allowed_authors": ["alice"],
        "repos": [
            {
                "name": "api",
                "issues": [{"title": f"task {n}", "author": "alice", "labels": []} for n in numbers],
            }
        ],
    }
    with loop(seed, record_requests=True, database=args.database) as session:
        world = session.world
        github_before, prefect_before = len(world.fake.requests), prefect_requests(session)
        started = last_report = time.monotonic()
        for number in numbers:
            world.fake.set_labels(world.owner, "api", number, ["ready"], actor="alice")

        def done() -> bool:
            nonlocal last_report
            finished = sum(
                world.fake.issue_view(world.owner, "api", n)["labels"] == ["needs-human"] for n in numbers
            )
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(f"  {last_report - started:5.0f}s: {finished}/{args.issues} at needs-human", flush=True)
            return finished == args.issues

        wait_for(done, timeout=3600, poll=1.0)
        elapsed = time.monotonic() - started
        github = len(world.fake.requests) - github_before
        charged = sum(1 for r in world.fake.requests[github_before:] if r.status != 304)
        prefect = prefect_requests(session) - prefect_before
        endpoints = prefect_endpoints(session, skip=prefect_before)
        github_endpoints = collections.Counter(
            f"{r.method} {GITHUB_ID.sub('{n}', r.path.partition('?')[0])}"
            for r in world.fake.requests[github_before:]
        )
        recorded = issue_runs_of(session, [f"{world.owner}/api#{n}" for n in numbers])
    print()
    print(f"machine: {machine()}")
    backend = f" --database {databases.redact(args.database)}" if args.database else ""
    print(f"command: uv run python bench/loop_scale.py --issues {args.issues} --slots {args.slots}{backend}")
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| issues ready → all at needs-human | {elapsed:.0f} s ({elapsed / args.issues:.1f} s per issue) |"
    )
    print(f"| agent runs | {len(recorded)} (peak {peak_concurrency(recorded)} at once) |")
    print(f"| GitHub requests per issue | {github / args.issues:.1f} ({github} in all) |")
    # Conditional reads answered 304 cost no rate limit; everything else does.
    print(f"| GitHub requests per issue counted against the rate limit | {charged / args.issues:.1f} |")
    print(f"| Prefect API requests per issue | {prefect / args.issues:.1f} ({prefect} in all) |")
    unsuccessful = collections.Counter(str(r.outcome) for r in recorded if r.outcome is not Outcome.SUCCESS)
    print(f"| attempts not successful | {dict(unsuccessful) or 'none'} |")
    if args.breakdown:
        for name, counts in (("Prefect", endpoints), ("GitHub", github_endpoints)):
            print(f"\n{name} requests per issue, by endpoint (top 15):")
            for endpoint, count in counts.most_common(15):
                print(f"  {count / args.issues:6.1f}  {endpoint}")
    for run in recorded:
        if run.outcome is not Outcome.SUCCESS:
            what = f"{run.issue_key} {run.kind.value} {run.attempt} {run.agent}"
            print(f"{run.outcome}: {what}: {run.message[:160]}")


if __name__ == "__main__":
    main()
