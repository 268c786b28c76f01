"""`k3sc top`'s screen-side cost: first paint and the CPU a refresh costs with a large fleet.

Runs the live view headless (Textual's test driver) on stand-in sources that answer at once with
26 running agents, 40 finished runs, 200 issues and 30 PRs, so only the dashboard's own work is
measured: time until all six sources are on screen, CPU to rebuild and redraw after an answer
that changes nothing (an idle tick) and after one that changes every table, and the pure build.
What a tick costs on the wire is pinned by tests/test_top_prefect.py (8 Prefect requests a steady
tick; GitHub every 30 s, all 304 when idle).

    uv run python bench/top.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from zoneinfo import ZoneInfo

from k3sc.models import Pull, RunPhase
from k3sc.services.top import GitHubFacts, RunFacts
from k3sc.tui import top_dashboard
from k3sc.tui.top_app import TopApp
from tests.builders import API
from tests.top import fakes

AGENTS, FINISHED, ISSUES, PULLS = 26, 40, 200, 30


class Fleet(fakes.FakeSource):
    """The fixed fake fleet, scaled up."""

    async def runs(self) -> RunFacts:
        active = tuple(
            fakes.run(100 + i, RunPhase.RUNNING, agent=f"claude-{chr(97 + i)}", minutes_ago=i + 1, ran=0)
            for i in range(AGENTS)
        )
        done = tuple(
            fakes.run(300 + i, RunPhase.COMPLETED, minutes_ago=60 + i, ran=5) for i in range(FINISHED)
        )
        return RunFacts(active + done, {r.id: "  ↳ 14 passed in 2.31s" for r in active})

    async def github(self) -> GitHubFacts:
        issues = tuple(fakes.issue(n, ("ready",), f"issue number {n}") for n in range(1, ISSUES + 1))
        pulls = tuple(Pull(API, 500 + n, f"issue-{n}", n, None, False, title=f"pr {n}") for n in range(PULLS))
        return GitHubFacts(issues, pulls, requests=2, not_modified=2)


async def measure(rounds: int) -> dict[str, float]:
    app = TopApp(
        Fleet(),
        fakes.CONFIG,
        prefect_seconds=3600,
        github_seconds=3600,
        zone=ZoneInfo("UTC"),
        clock=lambda: fakes.NOW,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    async with app.run_test(size=(200, 50)) as pilot:
        while app.loads < 6:
            await pilot.pause(0.002)
        await pilot.pause()
        first, first_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        idle, changed, build = [], [], []
        for _ in range(rounds):
            cpu = time.process_time()
            app._render()
            idle.append(time.process_time() - cpu)
            app.shown.clear()  # as if every table's rows had changed
            cpu = time.process_time()
            app._render()
            changed.append(time.process_time() - cpu)
            cpu = time.process_time()
            top_dashboard.build(app.inputs, fakes.CONFIG, fakes.NOW, None)
            build.append(time.process_time() - cpu)
        await pilot.pause()
    return {
        "first": first,
        "first_cpu": first_cpu,
        "idle": statistics.median(idle),
        "changed": statistics.median(changed),
        "build": statistics.median(build),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(measure(args.rounds))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"fleet: {AGENTS} running agents, {FINISHED} finished runs, {ISSUES} issues, {PULLS} PRs")
    print(
        f"all six sources on screen after: {result['first'] * 1000:.0f} ms wall, "
        f"{result['first_cpu'] * 1000:.0f} ms CPU (headless, sources answer at once)"
    )
    print(f"redraw after an answer that changes no rows: {result['idle'] * 1000:.1f} ms CPU (median)")
    print(f"redraw after an answer that changes every table: {result['changed'] * 1000:.1f} ms CPU (median)")
    print(f"of which the pure build of all sections: {result['build'] * 1000:.1f} ms CPU (median)")


if __name__ == "__main__":
    main()
