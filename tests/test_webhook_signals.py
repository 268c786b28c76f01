"""`k3sc webhook` as a supervisor or a terminal stops it: SIGINT, SIGTERM and SIGHUP each end it with
exit 0 within seconds, and a delivery it accepted is still in its inbox for the next start; a SIGKILL
loses nothing it had accepted either. Prefect is not running here (a closed port), so every accepted
delivery waits in the inbox, which is the point: nothing accepted may be lost by stopping."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from k3sc import deliveries
from k3sc.webhook.inbox import Inbox
from tests.e2e.up_process import AS_FROM_A_TERMINAL

SECRET = "signal-secret"


def start(home: Path, config: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "K3SC_HOME": str(home),
        "K3SC_CONFIG": str(config),
        "K3SC_WEBHOOK_SECRET": SECRET,
        "PREFECT_API_URL": "http://127.0.0.1:9/api",  # nothing listens: deliveries wait in the inbox
    }
    log = home / f"webhook-{uuid.uuid4().hex[:6]}.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*AS_FROM_A_TERMINAL, "-m", "k3sc", "webhook", "--port", "0"],
            env=env,
            stderr=err,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"at (http://\S+)", log.read_text(errors="replace"))
        if found:
            try:
                if httpx.get(found.group(1).rsplit("/", 1)[0] + "/healthz", timeout=1).status_code == 200:
                    return proc, found.group(1)
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError(f"the receiver never answered /healthz:\n{log.read_text(errors='replace')}")


def deliver(url: str) -> str:
    delivery = str(uuid.uuid4())
    body = json.dumps({"action": "labeled", "repository": {"full_name": "acme/api"},
                       "issue": {"number": 7}, "label": {"name": "ready"}}).encode()  # fmt: skip
    headers = {
        deliveries.EVENT_HEADER: "issues",
        deliveries.DELIVERY_HEADER: delivery,
        deliveries.SIGNATURE_HEADER: deliveries.sign(SECRET.encode(), body),
        "Content-Type": "application/json",
    }
    assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 202
    return delivery


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGINT, id="Ctrl-C"),
        pytest.param(signal.SIGTERM, id="SIGTERM from a supervisor"),
        pytest.param(signal.SIGHUP, id="SIGHUP from a closed terminal"),
        pytest.param(signal.SIGKILL, id="SIGKILL"),
    ],
)
def test_a_stop_signal_ends_the_receiver_and_keeps_what_it_accepted(
    isolated_env: Path, sig: signal.Signals
) -> None:
    config = isolated_env / "k3sc.yaml"
    config.write_text("repos: [acme/api]\n")
    home = isolated_env / "home"
    proc, url = start(home, config)
    try:
        accepted = deliver(url)
        started = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        assert code == (-signal.SIGKILL if sig is signal.SIGKILL else 0), (
            proc.stderr.read() if proc.stderr else ""
        )
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The next start finds the delivery where the stopped one left it, waiting for Prefect.
    again, url = start(home, config)
    try:
        inbox = Inbox(home / "webhook" / "inbox.sqlite3")
        try:
            assert inbox.status(accepted) == "pending"
        finally:
            inbox.close()
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
