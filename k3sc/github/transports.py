"""The HTTP stack under githubkit: on-disk cache, then credentials, then a meter, then the network.

    githubkit's httpx.AsyncClient (no auth, no cache and no proxies of its own)
      └── caching.EtagCache          sqlite file under the cache dir: every GET goes out with the
          │                          stored ETag as If-None-Match; a 304 is answered from the file
          └── AuthTransport          adds the token *below* the cache: it never reaches the file
              └── MeteringTransport  sees every response that crossed the wire (304s, rate headers)
                  └── httpx.AsyncHTTPTransport (or a test's transport)

Built here rather than through githubkit's `cache_strategy` because that puts the cache above the
auth flow, which stores the `Authorization` header of every request in the sqlite file, and because
only a layer below the cache can count real requests and 304s.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import httpx

from k3sc import tls
from k3sc.github.ratelimit import BudgetMeter

ENV_CACHE_DIR = "K3SC_CACHE_DIR"
CACHE_FILE = "github-http.sqlite"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$K3SC_CACHE_DIR`, else `$XDG_CACHE_HOME/k3sc`, else `~/.cache/k3sc`."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CACHE_DIR, "").strip():
        return Path(os.path.expanduser(env[ENV_CACHE_DIR].strip()))
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    base = Path(os.path.expanduser(xdg)) if xdg else Path.home() / ".cache"
    return base / "k3sc"


class CredentialFailure(Exception):
    """The auth flow itself failed (bad App key, installation token refused); not a GitHub answer."""


class MeteringTransport(httpx.AsyncBaseTransport):
    """Counts every response that came back over the wire and reads its rate-limit headers."""

    def __init__(self, inner: httpx.AsyncBaseTransport, meter: BudgetMeter) -> None:
        self._inner = inner
        self._meter = meter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        self._meter.observe(response.status_code, response.headers)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class AuthTransport(httpx.AsyncBaseTransport):
    """Runs an httpx auth flow at transport level, the way httpx.AsyncClient would above it.

    A flow may send requests of its own first (the App's installation-token POST); those go straight
    to the network, uncached.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, auth: httpx.Auth) -> None:
        self._inner = inner
        self._auth = auth

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        flow = self._auth.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
        except Exception as exc:
            raise CredentialFailure(type(exc).__name__) from exc
        while True:
            response = await self._inner.handle_async_request(outgoing)
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return response
            except Exception as exc:
                await response.aclose()
                raise CredentialFailure(_describe(exc)) from exc
            await response.aclose()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _describe(exc: Exception) -> str:
    """Status and GitHub's message of a failed token request, without headers or bodies."""
    response = getattr(getattr(exc, "response", None), "raw_response", None)
    if isinstance(response, httpx.Response):
        return f"the installation token request was answered {response.status_code}"
    return type(exc).__name__


def env_proxy(api_url: str) -> str | None:
    """The proxy `HTTPS_PROXY`/`HTTP_PROXY` name for the API host, unless `NO_PROXY` exempts it.

    The client above the stack must not pick proxies up itself (`trust_env=False`): httpx would
    mount a proxy transport beside ours and send requests past the cache, the auth and the meter.
    """
    url = httpx.URL(api_url)
    if url.host and urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme)


def build(
    *,
    api_url: str,
    auth: httpx.Auth,
    meter: BudgetMeter,
    cache_path: Path | None,
    network: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncBaseTransport:
    """The stack above, with `network` at the bottom (default: a real HTTP transport).

    `cache_path=None` disables the cache (used by nothing in production; kept for measurement).
    """
    bottom = network or httpx.AsyncHTTPTransport(
        retries=0, proxy=env_proxy(api_url), verify=tls.verify(api_url)
    )
    stack: httpx.AsyncBaseTransport = AuthTransport(MeteringTransport(bottom, meter), auth)
    if cache_path is None:
        return stack
    from k3sc.github.caching import EtagCache

    return EtagCache(stack, cache_path)
