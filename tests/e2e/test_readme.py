"""The README's quick start works as written: its first command, run exactly, on a fresh k3sc home.

No PREFECT_API_URL: the command starts (and stops) its own Prefect server, as on a fresh machine.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def quick_start() -> list[str]:
    """The shell commands of the README's "Quick start" code block, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "no ```sh block under ## Quick start"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_is_two_commands_the_second_runs_the_tests() -> None:
    commands = quick_start()
    assert len(commands) == 2, commands
    assert commands[1] == "uv run pytest"


def test_first_quick_start_command_runs_the_loop_to_idle(tmp_path: Path) -> None:
    command = quick_start()[0]
    assert "k3sc up --sandbox --until-idle" in command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GITHUB_TOKEN", "GH_TOKEN"))}
    env["K3SC_HOME"] = str(tmp_path / "fresh-home")
    proc = subprocess.run(
        shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "idle after" in proc.stdout
    assert proc.stdout.count("needs-human") >= 4, (
        proc.stdout
    )  # three trusted issues and the one already there
    assert "k3sc stopped." in proc.stderr
