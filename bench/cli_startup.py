"""CLI start-up time: the figure the README quotes, and a gate in `.ci/run`.

Runs each command in COMMANDS once to warm the file cache, then RUNS more times, and prints the
median wall time, plus the five slowest imports (cumulative) of `import k3sc.cli` from
`python -X importtime`. Wall time is measured around `subprocess.run` with a Python timing loop
(hyperfine is not on PyPI).

The gate: a command fails when its median exceeds THRESHOLD_S *and* it is more than RATIO_GATE times
the median of REFERENCE (a bare interpreter importing a fixed set of standard-library modules, timed in
the same run). The absolute figure is what a user feels; the ratio keeps a machine that is slow or
busy as a whole (CI hosts vary by 3x) from failing a k3sc that did not get slower, while a real
regression (say, Prefect imported at start-up: 1 s and more) fails both.

    uv run python bench/cli_startup.py [--runs 10] [--threshold 0.20] [--ratio 2.0]
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv this script runs in (`uv run` → .venv/bin)

# The measured set, explicit: (label, argv). Add a command here when it must start fast.
COMMANDS: list[tuple[str, list[str]]] = [
    ("k3sc --help", [str(BIN / "k3sc"), "--help"]),
    ("k3sc --version", [str(BIN / "k3sc"), "--version"]),
    ("python -m k3sc --help", [sys.executable, "-m", "k3sc", "--help"]),
    ("python -m k3sc --version", [sys.executable, "-m", "k3sc", "--version"]),
]
IMPORTTIME_ARGV = [sys.executable, "-X", "importtime", "-c", "import k3sc.cli"]
# What the machine's speed is judged by: the interpreter plus standard-library imports of about k3sc's
# weight, nothing that a dependency upgrade could change.
REFERENCE_MODULES = (
    "argparse, asyncio, dataclasses, email.message, http.client, inspect, json, logging, pathlib, "
    "subprocess, typing"
)
REFERENCE: tuple[str, list[str]] = (
    "python + stdlib imports",
    [sys.executable, "-c", f"import {REFERENCE_MODULES}"],
)

RUNS = 10
WARMUPS = 1
THRESHOLD_S = 0.20
RATIO_GATE = 2.0  # k3sc --help is ~1.2-1.4x REFERENCE on this project's machines
TOP_IMPORTS = 5


def child_env() -> dict[str, str]:
    """The caller's environment with telemetry off; nothing else changed, so figures match real use."""
    return {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def time_command(argv: list[str], runs: int, warmups: int) -> list[float]:
    """Wall-clock seconds of `runs` executions after `warmups` discarded ones; fails on non-zero exit."""
    samples: list[float] = []
    for i in range(warmups + runs):
        start = time.perf_counter()
        done = subprocess.run(
            argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env()
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        if i >= warmups:
            samples.append(elapsed)
    return samples


def top_imports(count: int) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) of the `count` slowest imports of k3sc.cli, by cumulative time."""
    done = subprocess.run(IMPORTTIME_ARGV, capture_output=True, text=True, env=child_env(), check=True)
    rows: list[tuple[str, int, int]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((name.strip(), int(self_us), int(cumulative_us)))
    return sorted(rows, key=lambda row: row[2], reverse=True)[:count]


def compile_k3sc() -> None:
    """Byte-compile k3sc's sources as an installed wheel has them.

    uv compiles site-packages only, not an editable project, and CI runs with PYTHONDONTWRITEBYTECODE,
    so without this every timed run would re-compile k3sc from source and measure the compiler.
    """
    compileall.compile_dir(ROOT / "k3sc", quiet=1)


def k3sc_bytecode_state() -> str:
    """Whether k3sc's own modules load from .pyc."""
    cached = list((ROOT / "k3sc" / "cli" / "__pycache__").glob("__init__.*.pyc"))
    writes = "off" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    return f"k3sc sources {'have' if cached else 'have no'} .pyc; PYTHONDONTWRITEBYTECODE writes {writes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--threshold", type=float, default=THRESHOLD_S, help="seconds; median gate")
    parser.add_argument("--ratio", type=float, default=RATIO_GATE, help="times the reference; ratio gate")
    parser.add_argument("--no-compile", action="store_true", help="time k3sc as found, .pyc or not")
    args = parser.parse_args()

    if not (BIN / "k3sc").exists():
        sys.exit(f"no k3sc console script in {BIN}; run `uv run python bench/cli_startup.py`")

    if not args.no_compile:
        compile_k3sc()
    print("# k3sc CLI start-up")
    print(
        f"command:  uv run python bench/cli_startup.py --runs {args.runs} "
        f"--threshold {args.threshold:.2f} --ratio {args.ratio:.1f}"
    )
    print(
        f"machine:  {os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"date:     {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"bytecode: {k3sc_bytecode_state()}")
    print(
        f"method:   median wall time of {args.runs} runs after {WARMUPS} warm-up; a command fails above "
        f"{args.threshold:.2f} s and {args.ratio:.1f}x the reference"
    )
    print(f"reference: python -c 'import {REFERENCE_MODULES}'")
    print()
    print(f"{'command':<26} {'median s':>9} {'min s':>7} {'max s':>7} {'x ref':>6}")
    # The reference is timed before and after the commands so a load change mid-run touches both.
    before = time_command(REFERENCE[1], args.runs // 2 or 1, WARMUPS)
    rows = [(label, time_command(argv, args.runs, WARMUPS)) for label, argv in COMMANDS]
    reference = [*before, *time_command(REFERENCE[1], args.runs - len(before) or 1, 0)]
    reference_median = statistics.median(reference)
    slow: list[str] = []
    for label, samples in [(REFERENCE[0], reference), *rows]:
        median = statistics.median(samples)
        ratio = median / reference_median
        failed = label != REFERENCE[0] and median > args.threshold and ratio > args.ratio
        flag = "  SLOW" if failed else ""
        print(f"{label:<26} {median:>9.3f} {min(samples):>7.3f} {max(samples):>7.3f} {ratio:>6.2f}{flag}")
        if failed:
            slow.append(label)

    print()
    print(f"top {TOP_IMPORTS} imports by cumulative time: python -X importtime -c 'import k3sc.cli'")
    print(f"{'module':<26} {'cumul. ms':>9} {'self ms':>7}")
    for name, self_us, cumulative_us in top_imports(TOP_IMPORTS):
        print(f"{name:<26} {cumulative_us / 1000:>9.1f} {self_us / 1000:>7.1f}")

    if slow:
        print(
            f"\nFAIL: median above {args.threshold:.2f} s and {args.ratio:.1f}x the reference for: "
            f"{', '.join(slow)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
