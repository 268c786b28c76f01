"""The webhook receiver's latency on this machine: signed POST → 202, and delivery → Prefect has the event.

    uv run python bench/webhook.py [--samples 200] [--rate 100] [--loop 10]

Runs `k3sc webhook` as its own process (as `k3sc up` does) against a real Prefect server
(PREFECT_API_URL if set, otherwise one started here, not counted), then:
(1) closed loop: one delivery at a time on one keep-alive connection: 202 latency and the
    deliveries per second one client gets;
(2) open loop: deliveries sent on a fixed schedule of `--rate` per second whatever the answers
    do: 202 latency median / p99 and the rate sustained;
(3) delivery → forwarded: from the POST to the inbox row turning `sent`, i.e. Prefect's events
    API accepted the event (204), read from the inbox file.
`--receiver-only` measures (1) and (2) with no Prefect at all (the deliveries wait in the inbox).
Every delivery is a distinct, correctly signed `issues.labeled` for a watched repository.
With `--loop N` it then runs the whole sandbox loop (`bench/_loop.py`, as `k3sc up --sandbox`) and
labels N issues `ready` one at a time: the fake GitHub's signed delivery → issue claimed (owner
label written) and → agent run Running (Prefect's state time), each issue settled before the next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loop import implement_run, loop, machine, wait_for

from k3sc import deliveries
from k3sc.labels import is_owner_label
from k3sc.orchestration.stack import LocalStack, free_port, spawn, wait_healthy
from k3sc.sandbox.world import World

SECRET = "bench-secret"


def delivery(number: int) -> tuple[bytes, dict[str, str]]:
    payload = {"action": "labeled", "repository": {"full_name": "bench/api"},
               "issue": {"number": number}, "label": {"name": "ready"}}  # fmt: skip
    body = json.dumps(payload).encode()
    return body, {
        deliveries.EVENT_HEADER: "issues",
        deliveries.DELIVERY_HEADER: str(uuid.uuid4()),
        deliveries.SIGNATURE_HEADER: deliveries.sign(SECRET.encode(), body),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
    }


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"{name}: n={len(ms)} median {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


async def closed_loop(url: str, samples: int) -> tuple[list[float], float]:
    async with httpx.AsyncClient() as client:
        latencies: list[float] = []
        began = time.perf_counter()
        for n in range(samples):
            body, headers = delivery(n + 1)
            sent = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - sent)
            assert response.status_code == 202, response.text
        return latencies, samples / (time.perf_counter() - began)


async def open_loop(url: str, samples: int, rate: float) -> tuple[list[float], float, dict[str, float]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    sent_at: dict[str, float] = {}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        began = time.perf_counter()

        async def one(n: int) -> float:
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            body, headers = delivery(1000 + n)
            sent = time.perf_counter()
            sent_at[headers[deliveries.DELIVERY_HEADER]] = time.time()
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 202, response.text
            return time.perf_counter() - sent

        latencies = await asyncio.gather(*(one(n) for n in range(samples)))
        return list(latencies), samples / (time.perf_counter() - began), sent_at


def forwarded_after(inbox: Path, sent_at: dict[str, float], timeout: float = 120.0) -> list[float]:
    """Seconds from each POST to its inbox row turning `sent` (polled every 5 ms)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    db = sqlite3.connect(f"file:{inbox}?mode=ro", uri=True)
    try:
        while len(seen) < len(sent_at) and time.monotonic() < deadline:
            now = time.time()
            for (delivery_id,) in db.execute("SELECT delivery FROM deliveries WHERE status = 'sent'"):
                if delivery_id in sent_at and delivery_id not in seen:
                    seen[delivery_id] = now - sent_at[delivery_id]
            time.sleep(0.005)
    finally:
        db.close()
    return list(seen.values())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def whole_loop(samples: int) -> None:
    seed = {"owner": "hook", "max_slots": 26, "allowed_authors": ["alice"],
            "repos": [{"name": "api", "issues": [{"title": f"task {n}", "author": "alice", "labels": []}
                                                 for n in range(1, samples + 1)]}]}  # fmt: skip
    claimed: list[float] = []
    running: list[float] = []
    with loop(seed) as session:
        world = session.world
        for number in range(1, samples + 1):
            ref = f"{world.owner}/api#{number}"
            labelled, began = datetime.now(UTC), time.monotonic()
            world.fake.set_labels(world.owner, "api", number, ["ready"], actor="alice")
            wait_for(lambda n=number: owned(world, n), timeout=180, poll=0.05)
            claimed.append(time.monotonic() - began)
            run = wait_for(lambda ref=ref: implement_run(session, ref, started=True), timeout=180)
            running.append((run.started_at - labelled).total_seconds())
            print(
                f"  #{number}: delivery → claimed {claimed[-1]:.1f}s, → Running {running[-1]:.1f}s",
                flush=True,
            )
            wait_for(lambda n=number: labels(world, n) == ["needs-human"], timeout=600)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name, values in (
        ("labelled ready → claimed", claimed),
        ("labelled ready → agent run Running", running),
    ):
        spread = f"p90 {percentile(values, 0.9):.1f} s, min {min(values):.1f} s, max {max(values):.1f} s"
        print(f"{name}: n={len(values)} median {statistics.median(values):.1f} s, {spread}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants (the receiver runs under k3sc's process guard)."""
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def labels(world: World, number: int) -> list[str]:
    found: list[str] = world.fake.issue_view(world.owner, "api", number)["labels"]
    return found


def owned(world: World, number: int) -> bool:
    return any(is_owner_label(label) for label in labels(world, number))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument(
        "--receiver-only",
        action="store_true",
        help="Point the receiver at a closed port instead of Prefect: (1) and (2) without Prefect's load.",
    )
    parser.add_argument("--loop", type=int, default=0, help="Also time N label → claimed → Running samples.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k3sc-bench-webhook-") as tmp:
        root = Path(tmp)
        stack = LocalStack(root / "stack")
        if args.receiver_only:
            api_url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens: deliveries wait in the inbox
        else:
            api_url = os.environ.get("PREFECT_API_URL") or stack.start_server()
        config = root / "k3sc.yaml"
        config.write_text("repos: [bench/api]\nallowed_authors: [alice]\n")
        port = free_port()
        env = {**os.environ, "PREFECT_API_URL": api_url, "K3SC_CONFIG": str(config),
               "K3SC_HOME": str(root / "home"), "K3SC_WEBHOOK_SECRET": SECRET}  # fmt: skip
        argv = [sys.executable, "-m", "k3sc", "webhook", "--port", str(port)]
        receiver = spawn("webhook", argv, env, root / "webhook.log")
        try:
            wait_healthy(f"http://127.0.0.1:{port}", 60, receiver, path="/healthz")
            url = f"http://127.0.0.1:{port}/github"
            asyncio.run(closed_loop(url, 20))  # warm-up, not counted
            before = cpu_seconds(receiver.popen.pid)
            latencies, per_second = asyncio.run(closed_loop(url, args.samples))
            used = max(cpu_seconds(receiver.popen.pid) - before, 0.01) / args.samples  # 10 ms ticks
            print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
            print(summary("closed loop, signed POST → 202", latencies) + f"; {per_second:.0f} deliveries/s")
            # Load-independent: what one delivery costs the receiver (forwarding included, unless
            # --receiver-only), so the rate one free core sustains.
            free_core = f"≈ {1 / used:.0f} deliveries/s on one free core"
            print(f"receiver CPU per delivery {used * 1000:.2f} ms ({free_core})")
            latencies, sustained, sent_at = asyncio.run(open_loop(url, args.samples, args.rate))
            print(summary(f"open loop at {args.rate:.0f}/s, signed POST → 202", latencies)
                  + f"; sustained {sustained:.0f} deliveries/s")  # fmt: skip
            if args.receiver_only:
                return
            forwarded = forwarded_after(root / "home" / "webhook" / "inbox.sqlite3", sent_at)
            print(summary("delivery → Prefect accepted the event (inbox row sent)", forwarded))
            time.sleep(1.0)
            paced = []
            for n in range(20):  # one at a time, so batching does not flatter the figure
                body, headers = delivery(5000 + n)
                start = time.time()
                assert httpx.post(url, content=body, headers=headers).status_code == 202
                paced += forwarded_after(root / "home" / "webhook" / "inbox.sqlite3",
                                         {headers[deliveries.DELIVERY_HEADER]: start})  # fmt: skip
            print(summary("single delivery → Prefect accepted the event", paced))
        finally:
            receiver.stop()
            stack.stop()
    if args.loop:
        whole_loop(args.loop)


if __name__ == "__main__":
    main()
