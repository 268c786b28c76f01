"""Scan cost on the fake GitHub over loopback: cold, warm (all 304) and after one change.

    uv run python bench/scan.py [--repos 50] [--issues 200]

The bench process starts the fake GitHub and seeds it (per repo: `--issues` workflow issues plus
non-workflow issues and PRs so the issues list is three pages of 100); each scan then runs in a NEW
Python process (`python bench/scan.py --child ...`) the way two `k3sc scan` invocations would, sharing
only the on-disk cache directory. Requests and 304s are counted by the fake, rate-limit use is read
from the fake's counter before and after. Prints a table with the command and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghp_benchToken00000000000000000000000000"
OTHER_ISSUES = 40  # bug reports etc.: on the issues list, not workflow issues
PULLS = 10  # GitHub lists PRs among issues too


def child(url: str, cache: str, repos: list[str]) -> None:
    """One scan in this process: workflow issues + open PRs of every repo, like `k3sc scan`."""
    started = time.perf_counter()
    from k3sc.config import Config
    from k3sc.github import GitHubClient
    from k3sc.models import Repo

    config = Config(github_api_url=url, repos=repos)  # type: ignore[arg-type]
    environ = {"GITHUB_TOKEN": TOKEN, "K3SC_CACHE_DIR": cache}

    async def scan() -> dict[str, Any]:
        began = time.perf_counter()
        async with GitHubClient.from_config(config, environ=environ, gh_cli=None) as gh:
            targets = [Repo.parse(r) for r in repos]
            issues = await gh.workflow_issues(targets)
            pulls = await gh.open_pulls(targets)
            budget = gh.budget
        return {
            "scan_s": time.perf_counter() - began,
            "issues": len(issues.items),
            "pulls": len(pulls.items),
            "failures": len(issues.failures) + len(pulls.failures),
            "requests": budget.requests,
            "not_modified": budget.not_modified,
        }

    result = asyncio.run(scan())
    result["process_s"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    # CPU seconds of the whole child: unlike wall time, not inflated when other work shares the cores.
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(result))


def run_child(url: str, cache: Path, repos: list[str]) -> dict[str, Any]:
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(cache), *repos],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - began
    return result


def seed(fake: Any, repos: int, issues: int) -> list[str]:
    names = []
    for r in range(repos):
        owner, name = "bench", f"repo{r:02d}"
        remote = fake.add_repo(owner, name)
        head = subprocess.run(
            ["git", "-C", str(remote), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
        refs = "".join(f"create refs/heads/issue-{n} {head.stdout.strip()}\n" for n in range(1, PULLS + 1))
        subprocess.run(["git", "-C", str(remote), "update-ref", "--stdin"], input=refs, text=True, check=True)
        for n in range(issues):
            labels = ["ready"] if n % 3 else ["needs-review", "p1"]
            fake.add_issue(owner, name, title=f"workflow {n}", author="alice", labels=labels)
        for n in range(OTHER_ISSUES):
            fake.add_issue(owner, name, title=f"other {n}", author="alice", labels=["bug"])
        for n in range(1, PULLS + 1):
            fake.add_pull(owner, name, head=f"issue-{n}", title=f"pr {n}", author="alice")
        names.append(f"{owner}/{name}")
    return names


def summarize(fake: Any, used_before: int) -> dict[str, Any]:
    statuses = Counter(r.status for r in fake.requests)
    repos_200 = sorted({r.path.split("/")[3] for r in fake.requests if r.status == 200})
    return {
        "fake_requests": len(fake.requests),
        "fake_200": statuses.get(200, 0),
        "fake_304": statuses.get(304, 0),
        "conditional": sum("if-none-match" in r.headers for r in fake.requests),
        "charged": fake.rate_limit_status()[1] - used_before,
        "repos_answered_200": repos_200,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--issues", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from k3sc.sandbox.github import FakeGitHub

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeGitHub(Path(tmp) / "remotes", token=TOKEN, rate_limit=100_000, users=("k3sc", "alice"))
        url = fake.start()
        t = time.perf_counter()
        repos = seed(fake, args.repos, args.issues)
        seeded = time.perf_counter() - t
        cache = Path(tmp) / "cache"
        rows = []
        for label, change in (
            ("cold (empty cache)", False),
            ("warm (nothing changed)", False),
            ("one issue changed", True),
        ):
            if change:
                fake.set_labels("bench", "repo17", 5, ["needs-human"])
            fake.clear_requests()
            used = fake.rate_limit_status()[1]
            result = run_child(url, cache, repos)
            rows.append((label, result, summarize(fake, used)))
        fake.stop()

    items = args.repos * (args.issues + OTHER_ISSUES + PULLS)
    print(f"command: uv run python bench/scan.py --repos {args.repos} --issues {args.issues}")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cpus, Python {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f}; fake GitHub on loopback, "
        f"seeded {items} issues/PRs in {seeded:.1f}s"
    )
    print(
        f"per repo: {args.issues} workflow issues + {OTHER_ISSUES} other issues + {PULLS} PRs "
        f"= 3 pages of issues + 1 page of PRs; each scan is a new process sharing only the cache dir\n"
    )
    header = (
        f"{'scan':<24}{'scan s':>8}{'process s':>11}{'cpu s':>7}{'peak RSS':>10}{'requests':>10}"
        f"{'200':>6}{'304':>6}{'cond.':>7}{'charged':>9}  found"
    )
    print(header)
    print("-" * len(header))
    for label, r, s in rows:
        print(
            f"{label:<24}{r['scan_s']:>8.2f}{r['wall_s']:>11.2f}{r['cpu_s']:>7.2f}{r['peak_rss_mb']:>8.0f}MB{s['fake_requests']:>10}"
            f"{s['fake_200']:>6}{s['fake_304']:>6}{s['conditional']:>7}{s['charged']:>9}  "
            f"{r['issues']} issues, {r['pulls']} PRs"
        )
    changed = rows[2][2]["repos_answered_200"]
    print(f"\nafter the change, repos answered 200: {', '.join(changed) or 'none'}")
    print(
        "scan s = wall time of the scan inside the child; process s = wall time of the whole child "
        "(interpreter, imports); cpu s = the child's user+sys CPU"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT))
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
