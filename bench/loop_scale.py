"""The loop at scale: 100 `ready` issues, max_slots 26, a stub agent that finishes at once.

    uv run python bench/loop_scale.py [--issues 100] [--slots 26]

All issues are labelled `ready` at t0 (as a person bulk-labelling would, each label change an
event); the clock stops when every issue is at `needs-human` (implemented, then reviewed by a
different agent). Reports the wall time, the peak of agent runs running at once, and requests
per issue: GitHub requests counted by the fake GitHub, Prefect API requests counted from the
server's access log (HTTP requests; websocket messages are not included). Also: the dispatcher's
scan time (its `gather-facts` task, which reads every open issue), the peak memory of the Prefect
server's processes, the GitHub rate limit spent per hour, and the invariants (every issue at
`needs-human`, no duplicate run or label write, every attempt handed off).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncio
import statistics
from typing import Any

import psutil
from _chaos import attempt_problems, duplicate_writes
from _loop import issue_runs_of, loop, machine, prefect_endpoints, prefect_requests, wait_for

from k3sc.models import Outcome
from k3sc.orchestration import database as databases
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.runs import peak_concurrency
from k3sc.services import up

GITHUB_ID = re.compile(r"(?<=/)\d+(?=/|$)")  # issue and PR numbers, comment ids
TOKEN_LIMIT = 5000  # GitHub's primary rate limit per hour for a user's token


def server_rss(session: up.Session) -> int:
    """Resident memory of the Prefect server's processes (the server and its children), bytes."""
    total = 0
    for process in session.stack.processes:
        if not process.name.startswith("prefect-") or not process.alive:
            continue
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(process.popen.pid)
            for each in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += each.memory_info().rss
    return total


def scan_times(session: up.Session, since: float) -> list[float]:
    """Run time of every dispatcher `gather-facts` task (the scan of GitHub and the run history)
    that started after `since` (epoch seconds), in start order."""

    async def read() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async with PrefectAPI(session.api_url) as api:
            while True:
                body = {"task_runs": {"name": {"like_": "gather-facts"}}, "sort": "EXPECTED_START_TIME_ASC",
                        "limit": 200, "offset": len(found)}  # fmt: skip
                page = await api.post_json("/task_runs/filter", body)
                found += page
                if len(page) < 200:
                    return found

    def started(run: dict[str, Any]) -> float:
        return datetime.fromisoformat(run["start_time"]).timestamp() if run.get("start_time") else 0.0

    runs = [r for r in asyncio.run(read()) if started(r) >= since and r.get("total_run_time")]
    return [float(r["total_run_time"]) for r in sorted(runs, key=started)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--slots", type=int, default=26)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=TOKEN_LIMIT,
        help="The fake GitHub's primary limit per hour (default 5000, a user token's).",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        help="Stop after this many minutes and report what was reached (figures per issue are then "
        "per issue that reached needs-human); default: wait until all are there.",
    )
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
        world.fake.set_rate_limit(args.rate_limit)
        peak_rss = server_rss(session)
        github_before, prefect_before = len(world.fake.requests), prefect_requests(session)
        started = last_report = time.monotonic()
        started_epoch = time.time()
        for number in numbers:
            world.fake.set_labels(world.owner, "api", number, ["ready"], actor="alice")

        def done() -> bool:
            nonlocal last_report, peak_rss
            peak_rss = max(peak_rss, server_rss(session))
            finished = sum(
                world.fake.issue_view(world.owner, "api", n)["labels"] == ["needs-human"] for n in numbers
            )
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(f"  {last_report - started:5.0f}s: {finished}/{args.issues} at needs-human", flush=True)
            return bool(finished == args.issues)

        try:
            wait_for(
                done, timeout=args.minutes * 60 if args.minutes else max(3600, 12 * args.issues), poll=1.0
            )
        except TimeoutError:
            if not args.minutes:
                raise
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
        scans = scan_times(session, started_epoch)
        end_rss = server_rss(session)
        labels = {n: world.fake.issue_view(world.owner, "api", n)["labels"] for n in numbers}
        duplicates = duplicate_writes(world.fake.write_log)
        run_duplicates, unaccounted = attempt_problems(recorded)
        limited = sum(1 for r in world.fake.requests[github_before:] if r.status in (403, 429))
    print()
    print(f"machine: {machine()}")
    limit = f" --rate-limit {args.rate_limit}" if args.rate_limit != TOKEN_LIMIT else ""
    limit += f" --minutes {args.minutes:g}" if args.minutes else ""
    backend = limit + (f" --database {databases.redact(args.database)}" if args.database else "")
    print(f"command: uv run python bench/loop_scale.py --issues {args.issues} --slots {args.slots}{backend}")
    reached = sum(at == ["needs-human"] for at in labels.values())
    per = max(reached, 1)  # figures per issue: per issue that got there
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| issues ready → at needs-human | {reached} of {args.issues} in {elapsed:.0f} s"
        f" ({elapsed / per:.1f} s per issue) |"
    )
    print(f"| agent runs | {len(recorded)} (peak {peak_concurrency(recorded)} at once) |")
    print(f"| GitHub requests per issue | {github / per:.1f} ({github} in all) |")
    # Conditional reads answered 304 cost no rate limit; everything else does.
    print(f"| GitHub requests per issue counted against the rate limit | {charged / per:.1f} |")
    print(f"| Prefect API requests per issue | {prefect / per:.1f} ({prefect} in all) |")
    per_hour = charged / elapsed * 3600
    print(
        f"| GitHub rate limit spent | {charged} charged in {elapsed / 60:.0f} min = {per_hour:.0f}/h"
        f" ({per_hour / TOKEN_LIMIT:.1f}× a user token's {TOKEN_LIMIT}/h; limit here {args.rate_limit}/h,"
        f" {limited} requests refused) |"
    )
    if scans:
        print(
            f"| dispatcher scan (gather-facts) at {args.issues} open issues | median"
            f" {statistics.median(scans):.2f} s, max {max(scans):.2f} s, first after labelling"
            f" {scans[0]:.2f} s ({len(scans)} scans) |"
        )
    memory = f"peak {peak_rss / 2**20:.0f} MiB, at the end {end_rss / 2**20:.0f} MiB"
    print(f"| Prefect server memory (RSS, all its processes) | {memory} |")
    lost = [n for n, at in labels.items() if at != ["needs-human"]]
    if args.minutes and lost:  # stopped by the clock: these are on their way, not lost
        states = collections.Counter(", ".join(at) or "(none)" for n, at in labels.items() if n in lost)
        print(f"| issues not yet at needs-human when stopped | {len(lost)}: {dict(states)} |")
    else:
        print(f"| issues not at needs-human (lost) | {len(lost)} {lost[:10] if lost else ''}|")
    print(f"| duplicate runs or label writes | {len(run_duplicates) + len(duplicates)} |")
    print(
        f"| attempts unended, not handed off or with gaps | {len(unaccounted)}"
        f"{' (with --minutes: those in flight when stopped)' if args.minutes else ''} |"
    )
    unsuccessful = collections.Counter(str(r.outcome) for r in recorded if r.outcome is not Outcome.SUCCESS)
    print(f"| attempts not successful | {dict(unsuccessful) or 'none'} |")
    if args.breakdown:
        for name, counts in (("Prefect", endpoints), ("GitHub", github_endpoints)):
            print(f"\n{name} requests per issue, by endpoint (top 15):")
            for endpoint, count in counts.most_common(15):
                print(f"  {count / per:6.1f}  {endpoint}")
    for problem in [*run_duplicates, *duplicates, *unaccounted][:20]:
        print(f"problem: {problem}")
    for run in recorded:
        if run.outcome is not Outcome.SUCCESS:
            what = f"{run.issue_key} {run.kind.value} {run.attempt} {run.agent}"
            print(f"{run.outcome}: {what}: {run.message[:160]}")


if __name__ == "__main__":
    main()
