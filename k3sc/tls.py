"""TLS settings for k3sc's own HTTP clients."""

from __future__ import annotations


def verify(url: str) -> bool:
    """Verify certificates unless the URL is plain HTTP, where there is no TLS to verify.

    httpx loads the whole CA bundle for every client it makes (~50 ms of CPU); a local server
    on http:// (the embedded default, the sandbox) has no use for it, so commands start sooner.
    Certificate checks on https:// are never turned off.
    """
    return not url.lower().startswith("http://")
