"""Importing githubkit without what k3sc never uses from it.

githubkit imports hishel (its HTTP cache library) even with its cache off, and hishel imports the
redis client whenever it is installed (Prefect's Redis messaging brings it): about 0.1 s of every
command that opens a GitHub client, for a storage k3sc never uses (its ETag cache is
`k3sc.github.caching`). hishel tolerates a missing redis, so redis is hidden while githubkit loads.
"""

from __future__ import annotations

import sys


def load() -> None:
    """Import githubkit once, with `import redis` failing meanwhile; later imports of redis work."""
    if "githubkit" in sys.modules:
        return
    hide = "redis" not in sys.modules
    if hide:
        sys.modules["redis"] = None  # type: ignore[assignment]  # makes `import redis` raise ImportError
    try:
        import githubkit  # noqa: F401
    finally:
        if hide:
            del sys.modules["redis"]
