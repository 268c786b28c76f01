"""Check recorded GitHub traffic against GitHub's own OpenAPI description (the vendored subset).

Why: a fake only proves something if it behaves like the real service. Every request our code
sends to the fake and every answer the fake gives is validated here against
tests/data/github/api.github.com.subset.json (cut from @octokit/openapi by
tools/cut_github_spec.py), so a test that passes against the fake also says "GitHub would have
accepted this request, and our client parsed what GitHub would have sent".

The few things the spec cannot judge are listed below with their reasons; nothing else is exempt.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

from k3sc.sandbox.github import NO_ANSWER, RecordedRequest

SPEC_PATH = Path(__file__).parent / "data" / "github" / "api.github.com.subset.json"
# The spec's only server; requests are matched against it, whatever host the fake listens on.
SPEC_SERVER = "https://api.github.com"


@dataclass(frozen=True)
class Allowance:
    """A request the spec cannot validate although GitHub accepts it, and why."""

    reason: str
    applies: Callable[[RecordedRequest], bool]


def _json_body(recorded: RecordedRequest) -> Any:
    try:
        return json.loads(recorded.body) if recorded.body else None
    except ValueError:
        return None


REQUEST_ALLOWANCES: tuple[Allowance, ...] = (
    Allowance(
        "PUT .../issues/{n}/labels with an empty list removes every label: GitHub's description says "
        "'You can pass an empty array to remove all labels' but its schema has minItems: 1",
        lambda r: r.method == "PUT" and r.path.endswith("/labels") and _json_body(r) in ({"labels": []}, []),
    ),
)

# Statuses GitHub can answer on any operation although most operations do not list them. For
# these the body is checked against GitHub's generic error schemas instead of the operation's.
UNDOCUMENTED_STATUSES: dict[int, str] = {
    304: "a conditional GET (If-None-Match) may always be answered 304 Not Modified (RFC 9110; GitHub docs"
    " 'Use conditional requests if appropriate'); the spec lists 304 on only some operations",
    401: "any endpoint answers bad or missing credentials with 401; the spec lists it on few operations",
    403: "primary and secondary rate limits answer any endpoint with 403 (docs: rate limits for the REST API)",
    404: "unknown repositories and numbers are 404 everywhere; a few operations do not list it",
    422: "GitHub answers 422 Validation Failed on more operations than list it",
    429: "secondary rate limits may answer 429 (docs: rate limits for the REST API)",
    500: "server errors can answer any operation",
    502: "server errors can answer any operation",
    503: "server errors can answer any operation",
    504: "server errors can answer any operation",
}


@functools.cache
def raw_spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


@functools.cache
def spec() -> OpenAPI:
    # Skipping the spec's self-validation turns a 30 s load into milliseconds (test-peers.md A.3).
    return OpenAPI.from_dict(raw_spec(), config=Config(spec_validator_cls=None))


def spec_version() -> dict[str, Any]:
    """Where the subset came from: package, sha256, info.version (stamped by the cut script)."""
    provenance: dict[str, Any] = raw_spec()["info"]["x-k3sc-cut"]
    return provenance


def operations() -> set[tuple[str, str]]:
    """(method, path) of every operation in the subset."""
    methods = {"get", "put", "post", "patch", "delete"}
    return {(m, p) for p, item in raw_spec()["paths"].items() for m in item if m in methods}


def _openapi_request(recorded: RecordedRequest) -> MockRequest:
    return MockRequest(
        SPEC_SERVER,
        recorded.method,
        recorded.path,
        args=recorded.query,
        headers=recorded.headers,
        data=recorded.body,
        content_type=recorded.headers.get("content-type", "application/json").split(";")[0],
    )


def request_errors(recorded: RecordedRequest) -> list[str]:
    """Why GitHub's description rejects this request; empty when it is valid or allowed."""
    if any(allowance.applies(recorded) for allowance in REQUEST_ALLOWANCES):
        return []
    return [_describe(exc) for exc in spec().iter_request_errors(_openapi_request(recorded))]


def response_errors(recorded: RecordedRequest) -> list[str]:
    """Why GitHub's description rejects this response to this request; empty when valid."""
    response = MockResponse(
        recorded.response_body,
        status_code=recorded.status,
        headers=recorded.response_headers,
        content_type=recorded.response_headers.get("content-type", "application/json").split(";")[0],
    )
    errors = list(spec().iter_response_errors(_openapi_request(recorded), response))
    if not any(isinstance(exc, ResponseNotFound) for exc in errors):
        return [_describe(exc) for exc in errors]
    if recorded.status not in UNDOCUMENTED_STATUSES:
        return [f"status {recorded.status} is not documented for this operation"]
    if recorded.status == 304:
        return [] if not recorded.response_body else ["a 304 must not carry a body"]
    schema_name = "validation-error" if recorded.status == 422 else "basic-error"
    schema = raw_spec()["components"]["schemas"][schema_name]
    try:
        body = json.loads(recorded.response_body)
    except ValueError:
        return [f"status {recorded.status}: body is not JSON"]
    return [f"{schema_name}: {err.message}" for err in OAS30Validator(schema).iter_errors(body)]


class ContractViolation(AssertionError):
    pass


def validate_request(recorded: RecordedRequest) -> None:
    """Raise ContractViolation unless GitHub's description accepts the request."""
    errors = request_errors(recorded)
    if errors:
        raise ContractViolation(f"{_label(recorded)}: " + "; ".join(errors))


def validate_response(recorded: RecordedRequest) -> None:
    """Raise ContractViolation unless GitHub's description accepts the response."""
    errors = response_errors(recorded)
    if errors:
        raise ContractViolation(f"{_label(recorded)} -> {recorded.status}: " + "; ".join(errors))


def violations(requests: Iterable[RecordedRequest]) -> list[tuple[RecordedRequest, str]]:
    """Every (request, message) pair the spec rejects, requests and responses both."""
    found = []
    for recorded in requests:
        found += [(recorded, f"request {_label(recorded)}: {e}") for e in request_errors(recorded)]
        if recorded.status == NO_ANSWER:
            continue  # `chaos` closed the connection: there is no response to check
        found += [
            (recorded, f"response {_label(recorded)} -> {recorded.status}: {e}")
            for e in response_errors(recorded)
        ]
    return found


def _label(recorded: RecordedRequest) -> str:
    query = "&".join(f"{k}={v}" for k, values in recorded.query.items() for v in values)
    return f"{recorded.method} {recorded.path}" + (f"?{query}" if query else "")


def _describe(exc: BaseException) -> str:
    """The exception and the schema errors openapi-core nests in its causes (not the whole value)."""
    cause = exc.__cause__
    while cause is not None:
        nested = getattr(cause, "schema_errors", None)
        if nested:
            return f"{type(exc).__name__}: " + "; ".join(_schema_error(err) for err in nested)
        cause = cause.__cause__
    return f"{type(exc).__name__}: {exc}"


def _schema_error(err: Any) -> str:
    where = "/".join(str(p) for p in err.absolute_path) or "(root)"
    message = str(err.message)
    if len(message) > 200:  # jsonschema quotes the whole instance; keep the verdict
        message = f"{message[:80]} ... {message[-100:]}"
    details = [_schema_error(sub) for sub in (err.context or [])][:4]
    return f"{where}: {message}" + (f" [{'; '.join(details)}]" if details else "")
