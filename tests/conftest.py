"""Shared pytest setup: fixtures live in tests/fixtures/* plugin modules, one per area."""

import os

# Nothing k3sc starts in tests may phone home: Prefect's telemetry is off.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.github",
    "tests.fixtures.prefect",
    "tests.fixtures.asyncio_guard",
]


def pytest_collection_modifyitems(items: list) -> None:  # type: ignore[type-arg]
    """End-to-end tests run last, so a quick failure elsewhere shows before the slow ones start."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
