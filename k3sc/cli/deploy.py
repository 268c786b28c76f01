"""`k3sc deploy`: apply k8s/ to a cluster (server-side apply) and deploy k3sc onto its Prefect server."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from k3sc.cli import _output


def deploy(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every object it would apply; change nothing.")
    ] = False,
    overlay: Annotated[
        str | None,
        typer.Option(
            "--overlay", help="single-node, cluster, or a kustomize directory (default: kubernetes.overlay)."
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="kubeconfig context (default: the current one).")
    ] = None,
    prefect_url: Annotated[
        str | None,
        typer.Option(
            "--prefect-url", help="The cluster's Prefect API as reachable from here (port-forward, ingress)."
        ),
    ] = None,
) -> None:
    """Render the overlay, apply it, wait for rollouts, then pools, blocks and deployments on Prefect."""
    from k3sc import config as k3sc_config
    from k3sc.services import deploy as service

    config = k3sc_config.load().config
    options = service.DeployOptions(
        dry_run=dry_run, overlay=overlay, context=context, prefect_url=prefect_url
    )
    if dry_run:
        typer.echo(service.dry_run_text(config, service.desired(config, overlay)), nl=False)
        return

    def say(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    summary = _output.run(service.run(config, options, say))
    for line in summary.get("stored", []):
        typer.echo(f"stored {line}")
    typer.echo(f"deployed to namespace {summary['namespace']} with image {summary['image']}")
