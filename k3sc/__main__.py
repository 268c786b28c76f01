"""`python -m k3sc`: the same CLI as the `k3sc` console script, for environments without the script."""

from __future__ import annotations

from k3sc.cli import main

if __name__ == "__main__":
    main()
