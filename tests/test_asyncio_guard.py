"""The pending-task guard fails a test that leaves a task behind, and passes those that do not."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

INNER = """
import asyncio

pytest_plugins = ["tests.fixtures.asyncio_guard"]


async def test_leaves_a_task() -> None:
    asyncio.get_running_loop().create_task(asyncio.sleep(30))


async def test_awaits_its_task() -> None:
    await asyncio.create_task(asyncio.sleep(0))


def test_sync() -> None:
    assert True
"""


def test_a_task_left_pending_fails_the_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*left 1 asyncio task(s) pending*"])
