"""The chaos run: the sandbox loop over many issues while GitHub fails, Prefect restarts and processes die.

    uv run python bench/chaos.py [--issues 30] [--rate 0.2] [--seed 1] [--slots 6]

First the loop without faults (the baseline), then the same loop while the fake GitHub fails
`--rate` of k3sc's requests (5xx, secondary rate limits, 429 with Retry-After 1-2 s, requests left
unanswered until the connection drops), the Prefect server is restarted twice, the agents' worker
is killed once (with runs in flight; k3sc up's supervisor restarts it) and one agent process is
killed. Prints the faults by kind, the restarts and kills, issues lost and duplicate writes (both
must be 0, else exit 1), and both wall times: their difference is what the faults cost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chaos import Plan, Result, run
from _loop import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=30)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slots", type=int, default=6)
    parser.add_argument(
        "--hang",
        type=float,
        default=1.0,
        help="seconds a 'timeout' fault holds a request before dropping it (past 30 s: a client timeout)",
    )
    args = parser.parse_args()
    chaos = Plan(issues=args.issues, rate=args.rate, seed=args.seed, slots=args.slots, hang=args.hang)
    calm = Plan(
        issues=args.issues,
        rate=0.0,
        seed=args.seed,
        slots=args.slots,
        server_restarts=0,
        worker_kills=0,
        agent_kills=0,
    )
    print("baseline (no faults) ...", flush=True)
    baseline = run(calm)
    print("chaos ...", flush=True)
    result = run(chaos)
    report(args, baseline, result)
    if baseline.problems or result.problems:
        sys.exit(1)


def report(args: argparse.Namespace, baseline: Result, result: Result) -> None:
    faults = result.faults
    print()
    print(f"machine: {machine()}")
    print(
        f"command: uv run python bench/chaos.py --issues {args.issues} --rate {args.rate} "
        f"--seed {args.seed} --slots {args.slots} --hang {args.hang:g}"
    )
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| GitHub faults injected | {sum(faults.values())} of {result.github_requests} requests: "
        + ", ".join(f"{kind} {faults.get(kind, 0)}" for kind in ("5xx", "secondary", "429", "timeout"))
        + " |"
    )
    print(
        f"| Prefect server restarts | {result.server_restarts} (down {result.server_down_s:.0f} s in all) |"
    )
    print(
        f"| worker kills / agent kills | {result.worker_kills} (restarted {result.worker_restarts}) / "
        f"{result.agent_kills} |"
    )
    print(f"| issues lost | {len(result.lost)} of {args.issues} |")
    print(f"| duplicate writes or runs | {len(result.duplicates)} |")
    print(f"| other invariant breaks | {len(result.label_problems) + len(result.attempt_problems)} |")
    print(f"| attempts (chaos) | {', '.join(f'{k} {v}' for k, v in sorted(result.outcomes.items()))} |")
    print(f"| attempts (baseline) | {', '.join(f'{k} {v}' for k, v in sorted(baseline.outcomes.items()))} |")
    print(f"| wall time with chaos | {result.elapsed:.0f} s |")
    cost = result.elapsed - baseline.elapsed
    print(f"| wall time without faults | {baseline.elapsed:.0f} s (the faults cost {cost:+.0f} s) |")
    for line in result.unsuccessful:
        print(f"chaos attempt {line}")
    for problem in baseline.problems:
        print(f"baseline: {problem}")
    for problem in result.problems:
        print(f"chaos: {problem}")


if __name__ == "__main__":
    main()
