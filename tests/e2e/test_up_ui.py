"""The Prefect UI that `k3sc up` prints works on the port it printed (not only on Prefect's 4200).

The UI learns where its API is from the server's /ui-settings; a real headless browser then loads
the runs page and must list k3sc's runs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from k3sc.orchestration.stack import free_port
from tests.e2e.up_process import start_up

pytestmark = pytest.mark.e2e


def test_ui_settings_name_the_server_that_was_started(prefect_api_url: str) -> None:
    """The session's server listens on a free port, never 4200; the UI must be sent there."""
    settings = httpx.get(prefect_api_url.removesuffix("/api") + "/ui-settings", timeout=10).json()
    assert settings["api_url"] == prefect_api_url


# A desktop-sized window: at chromium's default headless size the runs list is not rendered.
PAGE = ["--window-size=1400,1000", "--virtual-time-budget=15000", "--dump-dom"]


def browse(url: str) -> str:
    """The page's DOM after its scripts ran, as Debian's chromium renders it headless."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    proc = subprocess.run(
        # --no-sandbox: chromium refuses to run as root with its sandbox.
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", *PAGE, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_prefect_ui_of_a_sandbox_on_its_own_port_lists_k3scs_runs(tmp_path: Path) -> None:
    """`k3sc up --sandbox --port P`, exactly as the issue was found: the runs page at P shows runs."""
    port = free_port()
    up = start_up(tmp_path / "home", port)
    try:
        up.wait_for(f"k3sc is up. Prefect UI: http://127.0.0.1:{port}", timeout=180)
        done = up.wait_until(
            "a finished run",
            lambda: [r["name"] for r in up.flow_runs() if r["state_type"] in ("COMPLETED", "FAILED")],
            timeout=120,
        )
        dom = browse(f"http://127.0.0.1:{port}/runs")
        assert "Can't connect to Server API" not in dom
        assert any(name in dom for name in done), (done, dom[-3000:])
        assert up.signal(signal.SIGINT, timeout=60) == 0
    finally:
        up.kill()
