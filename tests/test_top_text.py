"""`k3sc top --once`: the printed snapshot of the fixed fleet, compared with a golden file.

Regenerate after an intended change with `K3SC_UPDATE_GOLDEN=1 pytest tests/test_top_text.py`
and read the diff before committing it.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console

from k3sc.tui import top_dashboard, top_text
from tests.top import fakes

GOLDEN = Path(__file__).parent / "top" / "golden" / "top_once.txt"


def snapshot(source: fakes.FakeSource) -> str:
    inputs = asyncio.run(top_text.collect(source, fakes.NOW))
    dashboard = top_dashboard.build(inputs, fakes.CONFIG, fakes.NOW, ZoneInfo("UTC"), "config")
    out = io.StringIO()
    top_text.print_snapshot(dashboard, Console(file=out, width=200, color_system=None, highlight=False))
    return out.getvalue()


def test_once_matches_the_golden_snapshot() -> None:
    text = snapshot(fakes.FakeSource(failing=["security"]))
    if os.environ.get("K3SC_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_collect_keeps_a_failing_source_as_its_error_and_reads_the_rest() -> None:
    inputs = asyncio.run(top_text.collect(fakes.FakeSource(failing=["github"]), fakes.NOW))
    assert inputs.github.error == "Prefect API POST /github/filter → 500: boom"
    assert inputs.runs.data is not None and inputs.runs.error is None
