"""The dispatcher's adaptive interval: `scan.min_interval` doubled per idle scan, capped.

With the defaults (2m, 1h): 0 idle scans → 2m, 1 → 4m, 2 → 8m, 3 → 16m, 4 → 32m, ≥5 → 1h.
Any scan that found work (dispatched, handed off, or runs still active) resets it.
"""

from __future__ import annotations

from datetime import timedelta


def interval(idle_scans: int, minimum: timedelta, maximum: timedelta) -> timedelta:
    """How long to wait before the next scan after `idle_scans` consecutive idle scans."""
    if idle_scans <= 0:
        return minimum
    # Doubling overflows nothing in Python, but cap the exponent to keep the arithmetic small.
    factor: int = 2 ** min(idle_scans, 32)
    scaled: timedelta = minimum * factor
    return min(scaled, maximum)


def after_scan(idle_scans: int, busy: bool) -> int:
    """The idle counter after a scan: reset by work, otherwise one more."""
    return 0 if busy else max(idle_scans, 0) + 1
