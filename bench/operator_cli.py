"""Wall time of the operator's everyday commands, beside a Prefect CLI command, on this machine.

    uv run python bench/operator_cli.py [--runs 10]

Starts its own local Prefect server (as `k3sc up` does, `k3sc.orchestration.stack`) and a sandbox
world on the loopback fake GitHub (`k3sc.sandbox.world`) with open PRs to lease and 20 finished
agent runs with logs to list; no worker or dispatcher runs, so nothing else loads the server.
Each command runs as its own process (as a person types it), once to warm up and then `--runs`
times; the table gives the median, min and max wall time, and each median as a ratio of
`prefect flow-run ls`'s measured in the same run, and the median CPU time (user + system) of the
process, which other load on the machine barely moves. Set-up (~30-60 s: the server migrates) is not
counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from k3sc import names
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.stack import LocalStack, prefect_executable
from k3sc.sandbox import world as sandbox

BIN = Path(sys.executable).parent  # the venv this script runs in (`uv run` → .venv/bin)
PRS = 12
RUNS_LISTED = 20
BUDGET_S = 0.6  # the issue's target for these commands


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (after one warm-up)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k3sc-bench-") as tmp:
        root = Path(tmp)
        print("starting a Prefect server and a sandbox world (not timed)...", file=sys.stderr, flush=True)
        world = sandbox.build(root / "world", sandbox.WorldSeed.model_validate(seed()))
        stack = LocalStack(root / "stack")
        try:
            api_url = stack.start_server(timeout=240.0)
            repo = world.repos[0]
            open_pulls(world, repo)
            asyncio.run(agent_runs(api_url, repo))
            env = {
                **os.environ,
                "PREFECT_API_URL": api_url,
                "K3SC_CONFIG": str(world.config_path),
                "K3SC_HOME": str(root / "home"),
                "K3SC_CACHE_DIR": str(root / "cache"),
                "GITHUB_TOKEN": world.token,
                "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            }
            load_before = os.getloadavg()[0]
            results = measure(env, args.runs)
            load = (load_before, os.getloadavg()[0])
        finally:
            stack.stop()
            world.stop()
    report(results, args.runs, load)


def seed() -> dict[str, object]:
    issues: list[dict[str, object]] = [
        {"title": f"done {n}", "author": "alice", "labels": ["needs-human"]} for n in range(1, PRS + 1)
    ]
    issues += [{"title": "to implement", "author": "alice", "labels": ["ready"]}]
    return {"owner": "bench", "allowed_authors": ["alice"], "repos": [{"name": "api", "issues": issues}]}


def open_pulls(world: sandbox.World, repo: Repo) -> None:
    """An open PR per done issue, on its `issue-N` branch: what `take` and `next` choose from."""
    remote = world.fake.remote_path(repo.owner, repo.name)
    git = ["git", "--git-dir", str(remote)]
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for n in range(1, PRS + 1):
        subprocess.run([*git, "branch", f"issue-{n}", head], check=True)
        world.fake.add_pull(repo.owner, repo.name, head=f"issue-{n}", title=f"fix {n}", author="alice")


async def agent_runs(api_url: str, repo: Repo) -> None:
    """Finished agent runs with a few dozen log lines each, tagged as the dispatcher tags them."""
    async with PrefectAPI(api_url) as api:
        flow = await api.post_json("flows/", {"name": "k3sc-agent"})
        now = datetime.now(UTC)
        for n in range(RUNS_LISTED):
            issue, kind = n % PRS + 1, Kind.IMPLEMENT if n % 3 else Kind.REVIEW
            tags = names.run_tags(repo, issue, kind, "claude-a", n // PRS + 1)
            body = {"flow_id": flow["id"], "tags": tags, "state": {"type": "SCHEDULED"}}
            run = await api.post_json("flow_runs/", body)
            await api.set_state(run["id"], "RUNNING", force=True)
            lines = [f"[tool] Bash: step {i}" if i % 2 else f"working on step {i}" for i in range(40)]
            await api.post_json(
                "logs/",
                [
                    {
                        "name": "prefect.flow_runs",
                        "level": 20,
                        "message": line,
                        "timestamp": (now + timedelta(milliseconds=i)).isoformat(),
                        "flow_run_id": run["id"],
                    }
                    for i, line in enumerate(lines)
                ],
            )
            await api.set_state(run["id"], "COMPLETED", force=True)


Command = tuple[str, list[str]]


@dataclass
class Sample:
    wall: float  # seconds, what a person waits
    cpu: float  # user + system seconds of the process: barely moved by others competing for the cores


Result = tuple[str, list[Sample]]


def measure(env: dict[str, str], runs: int) -> list[Result]:
    k3sc = [str(BIN / "k3sc")]
    plain: list[Command] = [
        ("prefect flow-run ls", [*prefect_executable(), "flow-run", "ls", "--limit", "5"]),
        # Python and k3sc's start-up alone: the floor under every k3sc row.
        ("k3sc --version", [*k3sc, "--version"]),
        ("k3sc status", [*k3sc, "status"]),
        ("k3sc logs", [*k3sc, "logs"]),
        ("k3sc logs <issue>", [*k3sc, "logs", "1"]),
        ("k3sc next --json", [*k3sc, "next", "--json"]),
    ]
    results = [(label, timed(argv, env, runs)) for label, argv in plain]
    # take and release alternate: each take leases a PR that the following release frees again.
    takes: list[Sample] = []
    releases: list[Sample] = []
    for i in range(runs + 1):
        took, out = run_once([*k3sc, "take", "--worker", "claude-1", "--json"], env)
        pr = json.loads(out)["pr"]
        released, _ = run_once([*k3sc, "release", "--pr", str(pr)], env)
        if i:  # the first pair warms up
            takes.append(took)
            releases.append(released)
    results += [("k3sc take --worker claude-1", takes), ("k3sc release --pr N", releases)]
    return results


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[Sample]:
    run_once(argv, env)  # warm the file cache
    return [run_once(argv, env)[0] for _ in range(runs)]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[Sample, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(elapsed, cpu), done.stdout


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def report(results: list[Result], runs: int, load: tuple[float, float]) -> None:
    baseline = statistics.median(s.wall for s in results[0][1])
    python = platform.python_version()
    print(f"machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {python}")
    print(f"command: uv run python bench/operator_cli.py --runs {runs}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"1-min load average: {load[0]:.1f} before, {load[1]:.1f} after")
    print()
    print("| command | median wall | min | max | vs `prefect flow-run ls` | median CPU |")
    print("|---|---|---|---|---|---|")
    for label, samples in results:
        walls = [s.wall for s in samples]
        median = statistics.median(walls)
        measured = not label.startswith("prefect") and "--version" not in label
        mark = " (over 0.6 s)" if measured and median > BUDGET_S else ""
        print(
            f"| `{label}` | {seconds(median)}{mark} | {seconds(min(walls))} | {seconds(max(walls))} "
            f"| {median / baseline:.2f}x | {seconds(statistics.median(s.cpu for s in samples))} |"
        )


if __name__ == "__main__":
    main()
