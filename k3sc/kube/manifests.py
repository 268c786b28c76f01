"""Where the shipped `k8s/` directory is: beside the package in a checkout, else packaged data."""

from __future__ import annotations

from pathlib import Path

from k3sc.errors import ConfigError


def k8s_dir() -> Path:
    """`<checkout>/k8s`, or `k3sc/data/k8s` in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "k8s", package / "data" / "k8s"):
        if (candidate / "job-template.json").is_file():
            return candidate
    raise ConfigError(f"the k8s/ manifests were not found beside {package} or in {package / 'data'}")
