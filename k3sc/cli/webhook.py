"""`k3sc webhook`: run the GitHub webhook receiver on its own (a laptop with `gh webhook forward`, a pod).

`k3sc up` starts the same command as a child when a webhook secret is configured.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def webhook(
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port to listen on (default: webhook.port)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: webhook.host, 127.0.0.1).")
    ] = None,
) -> None:
    """Receive signed GitHub deliveries, keep them in a durable inbox and hand them to Prefect as events."""
    import logging

    from k3sc import config as k3sc_config
    from k3sc.webhook import serving

    loaded = k3sc_config.load()
    config = loaded.config
    settings = serving.settings_for(config, str(loaded.path))
    sock = serving.bind(host or config.webhook.host, config.webhook.port if port is None else port)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forward and watcher poll
    bound_host, bound_port = sock.getsockname()[:2]
    sys.stderr.write(
        f"webhook: receiving GitHub deliveries at http://{bound_host}:{bound_port}{settings.path} "
        f"for {len(settings.repos)} repo(s); inbox {serving.inbox_path()}; Prefect {settings.api_url}\n"
    )
    sys.stderr.flush()
    serving.serve(settings, sock)
