"""`k3sc sessions --once` over a large synthetic transcript history, cold and warm, as whole processes.

Generates GB of transcripts shaped like Claude Code's (assistant replies split over 1-3 lines,
streamed partials, tool results of log-normal size with rare 300 KB ones, file-history snapshots,
system lines; a few Codex rollouts) in a temp dir, then times `k3sc sessions --once` as a fresh
process: cold (no index), warm with nothing new, and warm after 1 MB was appended. The temp dir is
deleted afterwards unless --keep. With --screenshot PATH it instead writes an SVG of the live view
over a small synthetic world with registered stand-in processes (the README's picture).

    uv run python bench/sessions.py [--gb 1.0] [--runs 5] [--keep] [--dir DIR]
    uv run python bench/sessions.py --screenshot docs/sessions.svg
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
NOW = dt.datetime.now(dt.UTC)
FILLER = "".join(random.Random(7).choice('abcdefghij klmnopqrstuvwxyz\\n"{}é') for _ in range(400_000))
MODELS = ["claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-8"]


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def assistant_lines(rng: random.Random, session: str, cwd: str, at: dt.datetime, n: int) -> list[str]:
    """One reply as Claude Code writes it: 1-3 lines with the same ids, the first maybe a partial."""
    msg, req = f"msg_{rng.getrandbits(64):016x}", f"req_{rng.getrandbits(64):016x}"
    model = MODELS[n % len(MODELS)]
    output = rng.randint(20, 4000)
    cache_read = rng.randint(10_000, 150_000)
    write_1h = rng.choice((0, 0, rng.randint(500, 20_000)))
    lines = []
    parts = rng.randint(1, 3)
    for part in range(parts):
        out = 1 if part == 0 and parts > 1 else output
        usage = (
            f'{{"input_tokens":{rng.randint(1, 8)},"cache_creation_input_tokens":{write_1h},'
            f'"cache_read_input_tokens":{cache_read},"cache_creation":{{"ephemeral_5m_input_tokens":0,'
            f'"ephemeral_1h_input_tokens":{write_1h}}},"output_tokens":{out},"service_tier":"standard"}}'
        )
        text = json.dumps(FILLER[: rng.randint(40, 1500)])
        lines.append(
            f'{{"parentUuid":"p","isSidechain":false,"userType":"external","cwd":{json.dumps(cwd)},'
            f'"sessionId":"{session}","version":"2.1.280","gitBranch":"main","message":{{"model":"{model}",'
            f'"id":"{msg}","type":"message","role":"assistant","content":[{{"type":"text","text":{text}}}],'
            f'"stop_reason":null,"usage":{usage}}},"requestId":"{req}","type":"assistant","uuid":"u",'
            f'"timestamp":"{stamp(at)}"}}'
        )
    return lines


def other_line(rng: random.Random, session: str, at: dt.datetime) -> str:
    roll = rng.random()
    if roll < 0.45 / 0.65:
        size = 300_000 if rng.random() < 0.003 else int(min(200_000, rng.lognormvariate(7.9, 1.2)))
        start = rng.randint(0, len(FILLER) - 1)
        body = json.dumps((FILLER[start:] + FILLER)[:size])
        return (
            f'{{"type":"user","sessionId":"{session}","timestamp":"{stamp(at)}","message":{{"role":"user",'
            f'"content":[{{"type":"tool_result","tool_use_id":"toolu_1","content":{body}}}]}}}}'
        )
    if roll < 0.53 / 0.65:
        return json.dumps(
            {"type": "file-history-snapshot", "messageId": "m", "snapshot": {"timestamp": stamp(at)}}
        )
    return json.dumps(
        {
            "type": "system",
            "subtype": "turn_duration",
            "sessionId": session,
            "timestamp": stamp(at),
            "durationMs": 9,
        }
    )


def generate(root: Path, gigabytes: float, seed: int = 1) -> tuple[int, int]:
    """Write about `gigabytes` of transcripts; returns (files, bytes)."""
    rng = random.Random(seed)
    target = int(gigabytes * 1e9)
    written = files = 0
    projects = [f"/home/dev/src/project-{i}" for i in range(40)]
    while written < target:
        cwd = rng.choice(projects)
        session = f"{rng.getrandbits(32):08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
        folder = root / "claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", cwd)
        folder.mkdir(parents=True, exist_ok=True)
        size = min(int(rng.lognormvariate(13.2, 1.1)), 40_000_000, target - written + 1)
        at = NOW - dt.timedelta(days=rng.uniform(0, 25))
        lines: list[str] = []
        chars = n = 0
        while chars < size:
            at += dt.timedelta(seconds=rng.uniform(1, 40))
            if at > NOW:
                break  # a session cannot have written the future
            if rng.random() < 0.35:
                new = assistant_lines(rng, session, cwd, at, n)
                n += 1
            else:
                new = [other_line(rng, session, at)]
            lines += new
            chars += sum(len(line) + 1 for line in new)
        if not lines:
            continue
        data = ("\n".join(lines) + "\n").encode()
        (folder / f"{session}.jsonl").write_bytes(data)
        written += len(data)
        files += 1
    codex = root / "codex" / "sessions" / "2026" / "11" / "27"
    codex.mkdir(parents=True, exist_ok=True)
    for i in range(20):
        sid = f"0199a1b2-c3d4-7e5f-8a9b-{i:012x}"
        events = [
            json.dumps({"timestamp": stamp(NOW), "type": "session_meta", "payload": {"id": sid, "cwd": "/w"}})
        ]
        for turn in range(200):
            total = {
                "input_tokens": 1000 * (turn + 1),
                "cached_input_tokens": 800 * turn,
                "output_tokens": 90 * (turn + 1),
            }
            events.append(
                json.dumps(
                    {
                        "timestamp": stamp(NOW),
                        "type": "event_msg",
                        "payload": {"type": "token_count", "info": {"total_token_usage": total}},
                    }
                )
            )
        (codex / f"rollout-2026-11-27T10-00-00-{sid}.jsonl").write_text("\n".join(events) + "\n")
        files += 1
    return files, written


def environment(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CLAUDE_CONFIG_DIR": str(root / "claude"),
        "CODEX_HOME": str(root / "codex"),
        "K3SC_CACHE_DIR": str(root / "cache"),
        "K3SC_HOME": str(root / "home"),
        "K3SC_CLAUDE_EXTRA_DIRS": "",
    }


def once(root: Path, *extra: str) -> tuple[float, float | None, str]:
    """Wall and CPU seconds (user + system; None where unmeasurable) of one `k3sc sessions --once`
    process, and its output. CPU time is what a quiet machine's wall time approaches."""
    before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "k3sc"), "sessions", "--once", *extra],
        env=environment(root),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = _children_cpu()
    if done.returncode != 0:
        sys.exit(f"k3sc sessions failed ({done.returncode}): {done.stderr}")
    cpu = None if before is None or after is None else after - before
    return elapsed, cpu, done.stdout


def _children_cpu() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def figure(label: str, samples: list[tuple[float, float | None, str]]) -> str:
    walls = [s[0] for s in samples]
    cpus = [s[1] for s in samples if s[1] is not None]
    text = f"{label:<26} wall {statistics.median(walls):6.2f} s"
    if cpus:
        text += f"   cpu {statistics.median(cpus):6.2f} s"
    if len(samples) > 1:
        text += f"   (median of {len(samples)}; wall {min(walls):.2f}-{max(walls):.2f})"
    return text


def timing_lines(output: str) -> list[str]:
    return output[output.index("=== TIMINGS ===") :].splitlines()[1:]


def bench(args: argparse.Namespace) -> None:
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="k3sc-sessions-bench-"))
    try:
        started = time.perf_counter()
        files, size = generate(root, args.gb)
        print("# k3sc sessions --once over synthetic transcripts")
        print(f"command:  uv run python bench/sessions.py --gb {args.gb} --runs {args.runs}")
        print(
            f"machine:  {os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
        )
        print(f"date:     {NOW.strftime('%Y-%m-%d %H:%M UTC')}")
        print(
            f"data:     {size / 1e9:.2f} GB in {files} files "
            f"({time.perf_counter() - started:.0f} s to generate) in {root}"
        )
        print()
        cold = once(root, "--timings")
        print(figure("cold (no index)", [cold]))
        for line in timing_lines(cold[2]):
            print(f"    {line}")
        warm = [once(root) for _ in range(args.runs)]
        print(figure("warm, nothing new", warm))
        for line in timing_lines(once(root, "--timings")[2]):
            print(f"    {line}")
        victim = max((root / "claude" / "projects").rglob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        appended = []
        rng = random.Random(11)
        for _ in range(args.runs):
            with victim.open("a") as handle:
                goal = victim.stat().st_size + 1_000_000
                while handle.tell() < goal:
                    handle.write(other_line(rng, "s", NOW) + "\n")
                    handle.write("\n".join(assistant_lines(rng, "s", "/w", NOW, 1)) + "\n")
            appended.append(once(root))
        print(figure("warm, 1 MB appended", appended))
        print()
        median_wall = statistics.median(w[0] for w in warm)
        print(f"target warm <= 1.5 s wall: {'met' if median_wall <= 1.5 else 'MISSED'} on this machine now")
    finally:
        if args.keep or args.dir:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ the README picture


def proc_start(created: float) -> str:
    """The `procStart` Claude Code would write for a process created at `created` on this OS."""
    import psutil

    if sys.platform == "win32":
        return str(int((created + 11_644_473_600) * 10_000_000))
    if sys.platform == "darwin":
        return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(created))
    return str(round((created - psutil.boot_time()) * os.sysconf("SC_CLK_TCK")))


def screenshot(target: Path) -> None:
    """Registered stand-in processes over a small synthetic history, through the real collector."""
    import psutil

    from k3sc.sessions.snapshot import Collector
    from k3sc.tui.sessions_app import SessionsApp

    root = Path(tempfile.mkdtemp(prefix="demo-"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        rng = random.Random(3)
        claude = root / "claude"
        (claude / "sessions").mkdir(parents=True)
        for index, (name, status, waiting) in enumerate(
            [("k3sc", "waiting", "approve Bash"), ("endless", "busy", None), ("api", "idle", None)]
        ):
            cwd = root / "src" / name
            cwd.mkdir(parents=True)
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], cwd=cwd)
            children.append(child)
            created = psutil.Process(child.pid).create_time()
            session = f"{index + 1}f2a9c1e-5b7d-4e21-9a0c-6d8e2f4b1a7{index}"
            folder = claude / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(cwd))
            folder.mkdir(parents=True)
            lines: list[str] = []
            at = NOW - dt.timedelta(minutes=150 - 20 * index)
            for n in range(60 - 15 * index):
                at += dt.timedelta(seconds=rng.uniform(30, 120))
                lines += assistant_lines(rng, session, str(cwd), min(at, NOW), n + index)
            (folder / f"{session}.jsonl").write_text("\n".join(lines) + "\n")
            record = {
                "pid": child.pid,
                "sessionId": session,
                "cwd": str(cwd),
                "startedAt": int((NOW - dt.timedelta(minutes=155 - 20 * index)).timestamp() * 1000),
                "procStart": proc_start(created),
                "kind": "interactive",
                "entrypoint": "cli",
                "name": name,
                "status": status,
            }
            if waiting:
                record["waitingFor"] = waiting
            (claude / "sessions" / f"{child.pid}.json").write_text(json.dumps(record))
        old = claude / "projects" / "-old"
        old.mkdir()
        history = []
        for n in range(400):
            history += assistant_lines(rng, "old", "/old", NOW - dt.timedelta(days=1, minutes=n), n)
        (old / "old.jsonl").write_text("\n".join(history) + "\n")
        collector = Collector(environment(root))
        app = SessionsApp(collector.collect, refresh_seconds=5)

        async def shoot() -> None:
            async with app.run_test(size=(160, 34)) as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                target.parent.mkdir(parents=True, exist_ok=True)
                app.save_screenshot(target.name, str(target.parent))

        asyncio.run(shoot())
        print(f"wrote {target}")
    finally:
        for child in children:
            child.kill()
            child.wait()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="gigabytes of transcripts to generate")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--dir", help="generate into (and keep) this directory")
    parser.add_argument("--screenshot", type=Path, help="write an SVG of the live view here instead")
    args = parser.parse_args()
    if args.screenshot:
        screenshot(args.screenshot)
    else:
        bench(args)


if __name__ == "__main__":
    main()
