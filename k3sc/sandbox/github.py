"""A stateful, in-memory GitHub REST server on real HTTP, for tests and `k3sc up --sandbox`.

Nothing installable plays GitHub offline with real git remotes and caching headers, so k3sc
carries its own: a stdlib ThreadingHTTPServer on 127.0.0.1 in a daemon thread, reachable from sync code,
async code and other processes alike. It keeps repos (with real bare git remotes agents push
to), issues, pull requests, labels and comments; applies writes the way GitHub does; answers
with bodies built from GitHub's own OpenAPI examples and GitHub's caching and rate-limit
headers (so k3sc's conditional scans really revalidate and get 304s); records every
request; and can be told to fail (5xx, secondary and primary rate limits, 422), once (`inject`) or
at random on a fraction of all requests (`chaos`).

This module is the server and the public face; state rules live in github_state, bodies in
github_bodies, endpoints in github_api and git access in github_git.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import json
import random
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from k3sc.sandbox import github_git, github_hooks
from k3sc.sandbox.github_api import Api, Request, Response, error, etag_of
from k3sc.sandbox.github_bodies import Renderer, encode
from k3sc.sandbox.github_state import Issue, Rejected, Repo, Store

__all__ = ["CHAOS_KINDS", "NO_ANSWER", "FakeGitHub", "RecordedRequest"]

EventHandler = Callable[[str, dict[str, Any]], None]

DEFAULT_LOGIN = "k3sc-bot"
# The GitHub App the fake pretends to be; installation tokens act as "<slug>[bot]".
APP_SLUG = "k3sc"
RATE_WINDOW_SECONDS = 3600
INSTALLATION_TOKEN_SECONDS = 3600
CACHE_CONTROL = "private, max-age=60, s-maxage=60"
VARY = "Accept, Authorization, Cookie, X-GitHub-OTP"
SECONDARY_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
PRIMARY_LIMIT_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit"
)
# What `chaos` injects: a 5xx, a secondary rate limit (403 + Retry-After), a 429 + Retry-After, and
# a request left unanswered until the connection is closed (a timeout or a dropped connection).
CHAOS_KINDS = ("5xx", "secondary", "429", "timeout")
_CHAOS_5XX = (500, 502, 503)
# The status a recorded request gets when chaos closed its connection without an answer.
NO_ANSWER = 0
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# Endpoints that authenticate as the App itself (a JWT), not as a user or installation.
_APP_PATHS = re.compile(r"^/app/|^/repos/[^/]+/[^/]+/installation$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered, and its answer. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    def json(self) -> Any:
        """The response body parsed as JSON (None for an empty body, e.g. a 304)."""
        return json.loads(self.response_body) if self.response_body else None


@dataclass
class _Fault:
    status: int
    count: int
    method: str | None
    path_contains: str | None
    retry_after: int | None
    primary: bool

    def matches(self, method: str, path: str) -> bool:
        return (
            self.count > 0
            and (self.method is None or self.method.upper() == method)
            and (self.path_contains is None or self.path_contains in path)
        )


@dataclass
class _Chaos:
    """Faults on a seeded-random fraction of requests; one draw per request, in arrival order."""

    rate: float
    rng: random.Random
    kinds: tuple[str, ...]
    retry_after: tuple[int, int]
    hang: float
    spare_user_agents: tuple[str, ...]
    injected: Counter[str]  # the fake's own counter: it outlives a change of settings

    def draw(self, headers: dict[str, str]) -> str | None:
        if self.spare_user_agents and headers.get("user-agent", "").startswith(self.spare_user_agents):
            return None
        # Both draws always happen, so the sequence depends only on the seed and the request count.
        hit, kind = self.rng.random() < self.rate, self.rng.choice(self.kinds)
        return kind if hit else None

    def fault(self, kind: str) -> _Fault:
        """The one-off fault this kind answers with (`inject`'s answers, so they look the same)."""
        if kind == "5xx":
            return _Fault(self.rng.choice(_CHAOS_5XX), 1, None, None, None, False)
        retry_after = self.rng.randint(*self.retry_after)
        return _Fault(403 if kind == "secondary" else 429, 1, None, None, retry_after, False)


class _NoAnswer(Exception):
    """Raised to the HTTP handler: close the connection after `hang` seconds, answering nothing."""

    def __init__(self, hang: float) -> None:
        super().__init__(f"no answer for {hang}s")
        self.hang = hang


class FakeGitHub:
    """An in-memory GitHub on http://127.0.0.1:<port>; see the module docstring.

    Args:
        root: directory that holds the bare git remotes (root/<owner>/<name>.git).
        token: when set, every request must carry "Authorization: token <t>" (or "Bearer <t>")
            or an installation token minted by the fake; otherwise it is answered 401.
        rate_limit: the primary limit per hour-long window.
        users: known logins. The first is who the token belongs to (default "k3sc-bot"); all
            of them count as collaborators (author_association COLLABORATOR).
        clock: seconds since the epoch; None for time.time. A seam for tests of rate-limit
            windows, and of since/sort behaviour.
        max_recorded: keep only the newest this many entries in `requests` (None: all). A
            long-running sandbox sets it; tests keep everything for the contract check.
    """

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        rate_limit: int = 5000,
        users: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
        max_recorded: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.token = token
        self.on_event: EventHandler | None = None
        # A repository webhook (`hook_to`): events become signed HTTP deliveries, as on GitHub.
        self.hook: github_hooks.Hookshot | None = None
        self.requests: list[RecordedRequest] = []
        self._max_recorded = max_recorded
        self._record_bodies = True
        # Tracebacks of bugs in the fake (or in on_event); the pytest fixture fails on any.
        self.internal_errors: list[str] = []
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._store = Store(self._clock)
        self._users = list(users)
        self._store.known_users.update(user.lower() for user in self._users)
        self._login = self._users[0] if self._users else DEFAULT_LOGIN
        self._limit = rate_limit
        self._used = 0
        self._reset = int(self._clock()) + RATE_WINDOW_SECONDS
        self._faults: list[_Fault] = []
        self._chaos: _Chaos | None = None
        self._chaos_injected: Counter[str] = Counter()
        self._installations: dict[str, int] = {}  # lower-cased owner -> installation id
        self._installation_tokens: dict[str, float] = {}  # token -> expiry epoch
        self._request_ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._api: Api | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving (idempotent); return the base URL, e.g. "http://127.0.0.1:40123"."""
        with self._lock:
            if self._server is not None and self._url is not None:
                return self._url
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = self
            url = f"http://127.0.0.1:{server.server_address[1]}"
            self._api = Api(self._store, Renderer(url, self._store), self)
            self._server, self._url = server, url
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-github", daemon=True
        )
        self._thread.start()
        return url

    def hook_to(self, url: str, secret: str) -> github_hooks.Hookshot:
        """Deliver every event from now on as a signed webhook to `url` (GitHub's "Add webhook").

        Changing the URL keeps the hook's past deliveries, so they can be redelivered to the new one.
        """
        past: list[github_hooks.Delivery] = []
        if self.hook is not None:
            self.hook.stop()
            past = self.hook.deliveries
        self.hook = github_hooks.Hookshot(url, secret, past=past)
        return self.hook

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections (idempotent)."""
        if self.hook is not None:
            self.hook.stop()
            self.hook = None
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join()

    def __enter__(self) -> FakeGitHub:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL (the fake serves at the root, with no /api/v3 prefix)."""
        if self._url is None:
            raise RuntimeError("FakeGitHub is not started; call start() first")
        return self._url

    @property
    def write_log(self) -> list[str]:
        """Every write, human-readable: "acme/api#7 labels: ready → claude-a"."""
        return self._store.write_log

    # -- seeding and inspection ------------------------------------------------------------

    def add_repo(self, owner: str, name: str, *, default_branch: str = "main") -> Path:
        """Create repo owner/name with a bare remote holding one commit; return the remote's path."""
        path = self.root / owner / f"{name}.git"
        with self._lock:
            if (owner.lower(), name.lower()) in self._store.repos:
                raise ValueError(f"repo {owner}/{name} already exists")
        if path.exists():
            # The fake's state is in memory; a remote left by an earlier run would disagree with it.
            raise FileExistsError(f"a remote already exists at {path}; give FakeGitHub a fresh root")
        github_git.init_bare(path, default_branch)
        with self._lock:
            self._store.add_repo(owner, name, default_branch, path)
        return path

    def remote_path(self, owner: str, name: str) -> Path:
        with self._lock:
            return self._repo(owner, name).path

    def add_issue(
        self,
        owner: str,
        name: str,
        *,
        title: str,
        author: str,
        labels: Iterable[str] = (),
        body: str = "",
        created_at: datetime | None = None,
    ) -> int:
        """Seed an issue (not logged as a write; fires an "issues opened" event); return its number."""
        with self._lock:
            repo = self._repo(owner, name)
            issue = self._store.open_issue(
                repo, title=title, author=author, body=body, labels=labels, created_at=created_at
            )
        self._dispatch_events()
        return issue.number

    def add_pull(
        self,
        owner: str,
        name: str,
        *,
        head: str,
        title: str,
        author: str,
        base: str | None = None,
        body: str = "",
        labels: Iterable[str] = (),
    ) -> int:
        """Seed a pull request; like the API, `head` must be a branch of the bare remote."""
        with self._lock:
            repo = self._repo(owner, name)
            pull = self._store.open_pull(
                repo,
                head=head,
                base=base or repo.default_branch,
                title=title,
                author=author,
                body=body,
                labels=labels,
            )
        self._dispatch_events()
        return pull.number

    def set_labels(
        self, owner: str, name: str, number: int, labels: Iterable[str], *, actor: str = "human"
    ) -> None:
        """Replace an issue's labels as someone outside the API would (logged "(by <actor>)")."""
        with self._lock:
            repo = self._repo(owner, name)
            self._store.set_labels(repo, self._issue(repo, number), labels, actor=actor)
        self._dispatch_events()

    def add_comment(self, owner: str, name: str, number: int, *, author: str, body: str) -> int:
        """Comment on an issue or pull request as `author` (a human, say); return the comment id."""
        with self._lock:
            repo = self._repo(owner, name)
            comment = self._store.add_comment(repo, self._issue(repo, number), author=author, body=body)
        self._dispatch_events()
        return comment.id

    def issue_view(self, owner: str, name: str, number: int) -> dict[str, Any]:
        """A plain snapshot of an issue or pull request, for assertions."""
        with self._lock:
            repo = self._repo(owner, name)
            issue = self._issue(repo, number)
            return {
                "number": issue.number,
                "title": issue.title,
                "body": issue.body,
                "author": issue.author,
                "state": issue.state,
                "labels": list(issue.label_names),
                "comments": [
                    {"author": c.author, "body": c.body, "created_at": c.created_at} for c in issue.comments
                ],
                "is_pull": issue.pull is not None,
                "head": issue.pull.head if issue.pull else None,
                "base": issue.pull.base if issue.pull else None,
            }

    def numbers(self, owner: str, name: str) -> list[int]:
        """Every issue and pull request number of the repo, ascending (for reports and assertions)."""
        with self._lock:
            return sorted(self._store.repo(owner, name).issues)

    def label_history(self, owner: str, name: str, number: int) -> list[tuple[str, ...]]:
        """Every label set the issue has had, in order, starting with its initial set."""
        with self._lock:
            repo = self._repo(owner, name)
            return list(self._issue(repo, number).label_history)

    def _repo(self, owner: str, name: str) -> Repo:
        try:
            return self._store.repo(owner, name)
        except Rejected:
            raise LookupError(f"fake GitHub has no repo {owner}/{name}") from None

    def _issue(self, repo: Repo, number: int) -> Issue:
        try:
            return self._store.issue(repo, number)
        except Rejected:
            raise LookupError(f"fake GitHub has no issue or pull request {repo.full_name}#{number}") from None

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- faults and limits -----------------------------------------------------------------

    def inject(
        self,
        status: int,
        *,
        count: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: int | None = None,
        rate_limit_remaining_zero: bool = False,
    ) -> None:
        """Answer the next `count` matching requests with `status` instead of serving them.

        Faults are consumed in the order they were injected. 403/429 with `retry_after` is a
        secondary rate limit (Retry-After header); `rate_limit_remaining_zero` is a primary
        limit (X-RateLimit-Remaining: 0, X-RateLimit-Reset = now + retry_after, or the current
        window's reset); 422 carries a Validation Failed body; anything else GitHub's plain
        error body. Injected answers do not change the fake's own rate-limit counters.
        """
        if not 400 <= status <= 599 or count < 1:
            raise ValueError(f"inject needs a 4xx/5xx status and count >= 1, got {status} x{count}")
        with self._lock:
            self._faults.append(
                _Fault(status, count, method, path_contains, retry_after, rate_limit_remaining_zero)
            )

    def chaos(
        self,
        rate: float,
        *,
        seed: int = 0,
        kinds: Iterable[str] = CHAOS_KINDS,
        retry_after: tuple[int, int] = (1, 2),
        hang: float = 1.0,
        spare_user_agents: Iterable[str] = (),
    ) -> None:
        """From now on, fail a `rate` fraction of requests (0 turns it off), chosen by `seed`.

        Each request draws from a `random.Random(seed)`, so the same sequence of requests meets
        the same faults. A hit fails as one of `kinds` (CHAOS_KINDS): "5xx" (500, 502 or 503),
        "secondary" (403 + Retry-After) and "429" (429 + Retry-After), Retry-After drawn from
        `retry_after` seconds; "timeout" reads the request, answers nothing for `hang` seconds and
        closes the connection (beyond the client's timeout a timeout, below it a dropped connection).
        Faulted requests change nothing, as on GitHub, and requests whose User-Agent starts with
        one of `spare_user_agents` are never faulted. One-off `inject` faults take precedence;
        `chaos_injected` counts what was injected by kind.
        """
        chosen = tuple(kinds)
        unknown = set(chosen) - set(CHAOS_KINDS)
        if not 0.0 <= rate <= 1.0 or not chosen or unknown or not 0 <= retry_after[0] <= retry_after[1]:
            raise ValueError(
                f"chaos needs 0 <= rate <= 1, kinds from {CHAOS_KINDS} and a retry_after range; "
                f"got rate={rate}, kinds={chosen}, retry_after={retry_after}"
            )
        spared = tuple(spare_user_agents)
        with self._lock:
            self._chaos = None
            if rate > 0:
                self._chaos = _Chaos(
                    rate, random.Random(seed), chosen, retry_after, hang, spared, self._chaos_injected
                )

    @property
    def chaos_injected(self) -> dict[str, int]:
        """How many faults `chaos` injected so far, by kind (kept when chaos is turned off)."""
        with self._lock:
            return dict(self._chaos_injected)

    def set_rate_limit(self, limit: int) -> None:
        """Change the primary limit per hour-long window (GitHub's is 5,000 for a user token,
        up to 15,000 for a GitHub App installation on Enterprise Cloud)."""
        with self._lock:
            self._limit = limit

    def exhaust_rate_limit(self, reset_in: float) -> None:
        """Use up the primary limit; requests get 403 until `reset_in` seconds from now."""
        with self._lock:
            self._used = self._limit
            self._reset = int(self._clock() + reset_in)

    # -- Account (what github_api needs from the server) -----------------------------------

    def rate_limit_status(self) -> tuple[int, int, int]:
        return self._limit, self._used, self._reset

    def installation_id(self, owner: str) -> int:
        return self._installations.setdefault(owner.lower(), 100 + len(self._installations))

    def installation_owner(self, installation_id: int) -> str | None:
        for owner, known in self._installations.items():
            if known == installation_id:
                return owner
        return None

    def mint_installation_token(self, installation_id: int) -> tuple[str, datetime]:
        token = f"ghs_{secrets.token_urlsafe(27)[:36]}"
        expires = self._clock() + INSTALLATION_TOKEN_SECONDS
        self._installation_tokens[token] = expires
        return token, datetime.fromtimestamp(int(expires), UTC)

    # -- serving ---------------------------------------------------------------------------

    def _serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one HTTP request; called on a server thread."""
        split = urlsplit(target)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        if github_git.SMART_HTTP.match(path):
            return self._git(method, path, split.query, headers, body)
        with self._lock:
            chaos = self._chaos.draw(headers) if self._chaos is not None else None
            if chaos == "timeout" and self._chaos is not None:
                self._chaos.injected[chaos] += 1
                self._record(RecordedRequest(method, path, query, headers, body, NO_ANSWER, {}, b""))
                raise _NoAnswer(self._chaos.hang)
            try:
                status, out_headers, payload = self._answer(method, path, query, headers, body, chaos)
            except Exception:
                self.internal_errors.append(traceback.format_exc())
                status, out_headers = 500, {"Content-Type": "application/json; charset=utf-8"}
                payload = encode({"message": "fake GitHub bug, see FakeGitHub.internal_errors"})
            recorded_headers = {key.lower(): value for key, value in out_headers.items()}
            self._record(
                RecordedRequest(method, path, query, headers, body, status, recorded_headers, payload)
            )
        self._dispatch_events()
        return status, out_headers, payload

    def _git(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Clone and push over HTTP, as on github.com: `x-access-token:<token>` (or any user) as
        Basic auth, the fake's token when it has one. Not REST: never recorded in `requests`."""
        user, problem = self._git_user(headers.get("authorization", ""))
        if problem is not None:
            realm = {"WWW-Authenticate": 'Basic realm="GitHub"'}
            return 401, realm, b"Invalid username or token.\n"
        return github_git.smart_http(self.root, method, path, query, headers, body, user)

    def _git_user(self, header: str) -> tuple[str, str | None]:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return "", None if self.token is None else "authentication required"
        try:
            login, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "", "malformed credentials"
        if self.token is not None and secret != self.token and secret not in self._installation_tokens:
            return "", "bad credentials"
        return login or self._login, None

    def record_all(self, *, bodies: bool = True) -> None:
        """Keep every request from now on (a benchmark counting them); without `bodies`, keep only
        the request line, headers and status, so a long run's list pages do not fill memory."""
        with self._lock:
            self._max_recorded, self._record_bodies = None, bodies

    def _record(self, recorded: RecordedRequest) -> None:
        if not self._record_bodies:
            recorded = dataclasses.replace(recorded, body=b"", response_body=b"")
        self.requests.append(recorded)
        if self._max_recorded is not None and len(self.requests) > self._max_recorded:
            del self.requests[: len(self.requests) - self._max_recorded]

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        chaos: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._api is not None and self._url is not None
        now = self._clock()
        if now >= self._reset:
            self._used, self._reset = 0, int(now) + RATE_WINDOW_SECONDS
        request_id = (
            f"{next(self._request_ids):04X}:{secrets.token_hex(3).upper()}:{secrets.token_hex(4).upper()}"
        )
        extra: dict[str, str] = {}
        counted = True

        login, auth_error = self._authenticate(path, headers.get("authorization", ""))
        fault = next((f for f in self._faults if f.matches(method, path)), None)
        if auth_error is not None:
            response, counted = auth_error, False
        elif fault is not None:
            fault.count -= 1
            self._faults = [f for f in self._faults if f.count > 0]
            response, extra = self._fault_response(fault, request_id, now)
        elif chaos is not None and self._chaos is not None:
            self._chaos.injected[chaos] += 1
            response, extra = self._fault_response(self._chaos.fault(chaos), request_id, now)
        elif self._used >= self._limit and path != "/rate_limit":
            response, extra = self._primary_limit(request_id, self._reset), {"X-RateLimit-Remaining": "0"}
        else:
            response = self._api.handle(
                Request(method, path, query, body, login, headers.get("authorization", ""))
            )
            counted = path != "/rate_limit"  # GitHub does not count /rate_limit itself

        out: dict[str, str] = {}
        payload = response.body or b""
        if 200 <= response.status < 300 and response.body is not None:
            etag = response.etag or etag_of(payload)
            out["ETag"] = etag
            if method == "GET":
                out["Cache-Control"] = CACHE_CONTROL
                out["Vary"] = VARY
                if response.last_modified is not None:
                    out["Last-Modified"] = format_datetime(response.last_modified, usegmt=True)
                if _not_modified(headers, etag, response.last_modified):
                    # GitHub's rule: an authorised conditional request answered 304 is free.
                    response, payload, counted = Response(304, None), b"", False
        if counted:
            self._used = min(self._used + 1, self._limit)
        if response.status != 304:
            out["Content-Type"] = "application/json; charset=utf-8"
            out["X-GitHub-Media-Type"] = "github.v3; format=json"
        out.update(response.headers)
        out.update(
            {
                "X-RateLimit-Limit": str(self._limit),
                "X-RateLimit-Remaining": str(self._limit - self._used),
                "X-RateLimit-Reset": str(self._reset),
                "X-RateLimit-Used": str(self._used),
                "X-RateLimit-Resource": "core",
                "X-GitHub-Request-Id": request_id,
            }
        )
        out.update(extra)
        return response.status, out, payload

    def _authenticate(self, path: str, header: str) -> tuple[str, Response | None]:
        """(login, None) when the credentials are good, else ("", the 401 to send)."""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("token", "bearer"):
            credential = ""
        if _APP_PATHS.match(path):
            if _JWT.match(credential):
                return f"{APP_SLUG}[bot]", None
            return "", error(401, "A JSON web token could not be decoded")
        expiry = self._installation_tokens.get(credential)
        if expiry is not None:
            if expiry > self._clock():
                return f"{APP_SLUG}[bot]", None
            return "", error(401, "Bad credentials")
        if self.token is None or credential == self.token:
            return self._login, None
        return "", error(401, "Requires authentication" if not credential else "Bad credentials")

    def _fault_response(self, fault: _Fault, request_id: str, now: float) -> tuple[Response, dict[str, str]]:
        if fault.primary:
            reset = int(now) + fault.retry_after if fault.retry_after is not None else self._reset
            return self._primary_limit(request_id, reset, fault.status), {
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Used": str(self._limit),
            }
        extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.status in (403, 429) and fault.retry_after is not None:
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                f"If you reach out to GitHub Support for help, please include the request ID {request_id}."
            )
            response = Response(
                fault.status, encode({"message": message, "documentation_url": SECONDARY_LIMIT_DOCS})
            )
            return response, extra
        if fault.status == 422:
            errors = [{"resource": "Issue", "code": "custom", "message": "injected by FakeGitHub.inject"}]
            return error(422, "Validation Failed", errors), extra
        return error(fault.status, HTTPStatus(fault.status).phrase), extra

    def _primary_limit(self, request_id: str, reset: int, status: int = 403) -> Response:
        message = (
            f"API rate limit exceeded for user ID {self._store.user_id(self._login)}. If you reach out to "
            f"GitHub Support for help, please include the request ID {request_id} and timestamp "
            f"{datetime.fromtimestamp(self._clock(), UTC):%Y-%m-%d %H:%M:%S} UTC."
        )
        body = {"message": message, "documentation_url": PRIMARY_LIMIT_DOCS}
        return Response(status, encode(body), headers={"X-RateLimit-Reset": str(reset)})

    def _dispatch_events(self) -> None:
        """Hand queued events to on_event, outside the lock so the callback may call back in."""
        with self._lock:
            events, self._store.events = self._store.events, []
        if self.hook is not None:
            for name, payload in events:
                self.hook.send(name, payload)
        handler = self.on_event
        if handler is None:
            return
        for name, payload in events:
            try:
                handler(name, payload)
            except Exception:
                self.internal_errors.append(traceback.format_exc())


def _not_modified(headers: dict[str, str], etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 §13.1: If-None-Match (weak comparison) wins; If-Modified-Since only without it."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in wanted or etag.removeprefix("W/") in wanted
    since = headers.get("if-modified-since")
    if since is None or last_modified is None:
        return False
    try:
        return last_modified <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-keep-alive, or a connection close_connections() ended, is
        # normal here; anything else (a bug in the fake) is still reported with its traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End keep-alive connections, so a stopped fake stops answering on them too."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a scan reuses one connection
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def version_string(self) -> str:
        return "github.com"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read FakeGitHub.requests instead

    def _serve(self) -> None:
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            status, out, payload = self.server.fake._serve(self.command, self.path, headers, body)
        except _NoAnswer as silent:
            time.sleep(silent.hang)  # outside the fake's lock: other requests go on meanwhile
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(status)
        for key, value in out.items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
