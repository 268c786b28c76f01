"""The fake GitHub's REST endpoints: routing, query parameters, pagination and GitHub's error bodies.

HTTP-free (a parsed request in, status/headers/body out) so that the server module deals only
with sockets, auth, rate limits, fault injection and caching headers, and so that the route
table can be checked against the vendored OpenAPI subset (tests/contract). Paths, parameters,
defaults and error shapes follow docs.github.com/rest; where GitHub is lenient (unknown labels
are created, a `head` filter without an owner is ignored) the fake is lenient the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlencode

from k3sc.sandbox import github_git
from k3sc.sandbox.github_bodies import Renderer, encode
from k3sc.sandbox.github_state import Issue, Rejected, Repo, Store, TokenScope, not_found, validation_failed

DOCS_URL = "https://docs.github.com/rest"
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent, still percent-encoded; Link headers repeat it
    query: Mapping[str, list[str]]
    body: bytes
    login: str  # who the credentials belong to
    authorization: str = ""  # the Authorization header, for tokens minted with a narrower scope


@dataclass
class Response:
    status: int
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None
    etag: str | None = None  # computed by the server from the body unless already known


def etag_of(body: bytes) -> str:
    """A weak validator over the representation, the way GitHub sends them for lists."""
    return f'W/"{hashlib.sha256(body).hexdigest()}"'


class Account(Protocol):
    """What the endpoints need from the server: rate-limit numbers and GitHub App installations."""

    def rate_limit_status(self) -> tuple[int, int, int]: ...  # limit, used, reset epoch
    def installation_id(self, owner: str) -> int: ...
    def installation_owner(self, installation_id: int) -> str | None: ...
    def mint_installation_token(self, installation_id: int) -> tuple[str, datetime]: ...


def error(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    """GitHub's error body: message, documentation_url, status (and errors for a 422)."""
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS_URL, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return Response(status, encode(body))


# (method, path as written in the OpenAPI description, handler name), filled by @route.
ROUTES: list[tuple[str, str, str]] = []


Handler = TypeVar("Handler", bound=Callable[..., Response])


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, path, handler.__name__))
        return handler

    return register


def _pattern(path: str) -> re.Pattern[str]:
    # Branch names may contain "/", every other parameter is one path segment.
    regex = re.sub(
        r"\{(\w+)\}",
        lambda m: f"(?P<{m[1]}>{'.+' if m[1] == 'branch' else '[^/]+'})",
        re.escape(path).replace(r"\{", "{").replace(r"\}", "}"),
    )
    return re.compile(f"^{regex}$")


class _BadJson(Exception):
    pass


class Api:
    """Answers REST requests from a Store; callers hold the fake's lock."""

    def __init__(self, store: Store, renderer: Renderer, account: Account) -> None:
        self.store = store
        self.render = renderer
        self.account = account
        self._routes = [(method, _pattern(path), getattr(self, name)) for method, path, name in ROUTES]
        # Issue-list pages by (repo id, path, query): a repeated scan of an unchanged repo costs a
        # lookup, not a filter, a sort, a join and a hash. Keyed on Repo.rev, so writes invalidate.
        self._pages: dict[tuple[int, str, tuple[tuple[str, tuple[str, ...]], ...]], tuple[int, Response]] = {}

    def handle(self, req: Request) -> Response:
        scope = self.store.token_scopes.get(req.authorization.partition(" ")[2].strip())
        if scope is not None and (refusal := scope.refusal(req.method, req.path)) is not None:
            return error(403, refusal)
        for method, pattern, handler in self._routes:
            if method != req.method.lower():
                continue
            match = pattern.match(req.path)
            if match is None:
                continue
            params = {key: unquote(value) for key, value in match.groupdict().items()}
            try:
                response: Response = handler(req, **params)
            except Rejected as exc:
                return error(exc.status, exc.message, exc.errors)
            except _BadJson:
                return error(400, "Problems parsing JSON")
            return response
        return error(404, "Not Found")

    # -- account, repo, app ----------------------------------------------------------------

    @route("get", "/rate_limit")
    def get_rate_limit(self, req: Request) -> Response:
        limit, used, reset = self.account.rate_limit_status()
        return Response(200, encode(self.render.rate_limit(limit, used, reset)))

    @route("get", "/user")
    def get_user(self, req: Request) -> Response:
        if req.login.endswith("[bot]"):
            # An installation token is no user; GitHub refuses /user for it.
            raise Rejected(403, "Resource not accessible by integration")
        return Response(200, encode(self.render.private_user(req.login)))

    @route("get", "/repos/{owner}/{repo}")
    def get_repo(self, req: Request, owner: str, repo: str) -> Response:
        found = self.store.repo(owner, repo)
        return Response(200, encode(self.render.repository(found)), last_modified=found.created_at)

    @route("get", "/repos/{owner}/{repo}/installation")
    def get_installation(self, req: Request, owner: str, repo: str) -> Response:
        found = self.store.repo(owner, repo)
        installation = self.account.installation_id(found.owner)
        return Response(200, encode(self.render.installation(installation, found.owner)))

    @route("post", "/app/installations/{installation_id}/access_tokens")
    def create_access_token(self, req: Request, installation_id: str) -> Response:
        number = _int(installation_id)
        owner = self.account.installation_owner(number)
        if owner is None:
            raise not_found()
        data = _json(req) if req.body else {}
        if not isinstance(data, dict):
            raise _BadJson
        repos = self._token_repositories(owner, data.get("repositories"), data.get("repository_ids"))
        granted = self.render.INSTALLATION_PERMISSIONS
        permissions = data.get("permissions") or dict(granted)
        if not isinstance(permissions, dict) or any(
            granted.get(name) is None or (level == "write" and granted[name] != "write")
            for name, level in permissions.items()
        ):
            raise Rejected(422, "The permissions requested are not granted to this installation.")
        token, expires = self.account.mint_installation_token(number)
        if repos is not None or data.get("permissions"):
            names = None if repos is None else frozenset(r.full_name.lower() for r in repos)
            self.store.token_scopes[token] = TokenScope(names, dict(permissions))
        body = self.render.installation_token(token, expires, permissions=permissions, repositories=repos)
        return Response(201, encode(body))

    def _token_repositories(self, owner: str, names: Any, ids: Any) -> list[Repo] | None:
        """The repositories a token is narrowed to (None: all of the installation's), or a 422."""
        if names is None and ids is None:
            return None
        wanted = [r for r in self.store.repos.values() if r.owner.lower() == owner.lower()]
        chosen: list[Repo] = []
        for name in names or []:
            found = next(
                (r for r in wanted if isinstance(name, str) and r.name.lower() == name.lower()), None
            )
            if found is None:
                break
            chosen.append(found)
        else:
            for number in ids or []:
                found = next((r for r in wanted if r.id == number), None)
                if found is None:
                    break
                chosen.append(found)
            else:
                return list({repo.id: repo for repo in chosen}.values())
        raise Rejected(
            422,
            "There is at least one repository that does not exist or is not accessible to the parent "
            "installation.",
        )

    # -- issues ----------------------------------------------------------------------------

    @route("get", "/repos/{owner}/{repo}/issues")
    def list_issues(self, req: Request, owner: str, repo: str) -> Response:
        found = self.store.repo(owner, repo)
        key = (found.id, req.path, tuple(sorted((k, tuple(v)) for k, v in req.query.items())))
        hit = self._pages.get(key)
        if hit is not None and hit[0] == found.rev:
            return hit[1]
        page = self._list_issues(req, found)
        if page.status == 200 and page.body is not None:
            page.etag = etag_of(page.body)
            if len(self._pages) >= 1024:  # e.g. a poller whose `since` changes every scan
                self._pages.clear()
            self._pages[key] = (found.rev, page)
        return page

    def _list_issues(self, req: Request, found: Repo) -> Response:
        state = _enum(req, "state", ("open", "closed", "all"), "open", "Issue")
        sort = _enum(req, "sort", ("created", "updated", "comments"), "created", "Issue")
        descending = _enum(req, "direction", ("asc", "desc"), "desc", "Issue") == "desc"
        wanted = {name.strip().lower() for name in (_one(req, "labels") or "").split(",") if name.strip()}
        since = _since(req)
        creator = (_one(req, "creator") or "").lower()
        # The fake models no assignees or milestones, so these filters have fixed answers.
        assignee, milestone = _one(req, "assignee"), _one(req, "milestone")
        if assignee not in (None, "", "none") or milestone not in (None, "", "none"):
            return self._page(req, [])
        items = [
            issue
            for issue in found.issues.values()
            if state in ("all", issue.state)
            and wanted <= {name.lower() for name in issue.label_names}
            and (since is None or issue.updated_at >= since)
            and (not creator or issue.author.lower() == creator)
        ]
        items.sort(key=_issue_sort_key(sort), reverse=descending)
        return self._page(req, items, lambda issue: self._issue_bytes(found, issue))

    @route("post", "/repos/{owner}/{repo}/issues")
    def create_issue(self, req: Request, owner: str, repo: str) -> Response:
        found = self.store.repo(owner, repo)
        data = _object(req)
        _refuse_unmodelled(data, "Issue")
        title = data.get("title")
        if not isinstance(title, str | int) or isinstance(title, bool):
            raise validation_failed({"resource": "Issue", "code": "missing_field", "field": "title"})
        issue = self.store.open_issue(
            found,
            title=str(title),
            author=req.login,
            body=_optional_str(data, "body", "Issue"),
            labels=_label_names(data.get("labels", [])),
        )
        self.store.write_log.append(f"{found.full_name}#{issue.number} opened by {req.login}")
        return self._created(
            f"/repos/{found.full_name}/issues/{issue.number}", self._issue_bytes(found, issue)
        )

    @route("get", "/repos/{owner}/{repo}/issues/{issue_number}")
    def get_issue(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        return Response(200, self._issue_bytes(found, issue), last_modified=issue.updated_at)

    @route("patch", "/repos/{owner}/{repo}/issues/{issue_number}")
    def update_issue(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        data = _object(req)
        _refuse_unmodelled(data, "Issue")
        state = data.get("state")
        if state not in (None, "open", "closed"):
            raise validation_failed({"resource": "Issue", "code": "invalid", "field": "state"})
        reason = data.get("state_reason")
        if reason not in (None, "completed", "not_planned", "duplicate", "reopened"):
            raise validation_failed({"resource": "Issue", "code": "invalid", "field": "state_reason"})
        title = data.get("title")
        self.store.edit_issue(
            found,
            issue,
            actor=req.login,
            title=None if title is None else str(title),
            body=_optional_str(data, "body", "Issue"),
            state=state,
            state_reason=reason,
        )
        if "labels" in data:
            self.store.set_labels(found, issue, _label_names(data["labels"]))
        return Response(200, self._issue_bytes(found, issue), last_modified=issue.updated_at)

    # -- issue labels ----------------------------------------------------------------------

    @route("get", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
    def list_issue_labels(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        return self._page(req, issue.labels, lambda label: encode(self.render.label(found, label)))

    @route("put", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
    def set_issue_labels(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        self.store.set_labels(found, issue, _label_names(_labels_body(req)))
        return Response(200, encode(self.render.labels(found, issue)))

    @route("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
    def add_issue_labels(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        self.store.add_labels(found, issue, _label_names(_labels_body(req)))
        return Response(200, encode(self.render.labels(found, issue)))

    @route("delete", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}")
    def remove_issue_label(
        self, req: Request, owner: str, repo: str, issue_number: str, name: str
    ) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        self.store.remove_label(found, issue, name)
        return Response(200, encode(self.render.labels(found, issue)))

    # -- comments --------------------------------------------------------------------------

    @route("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    def list_comments(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        since = _since(req)
        comments = [c for c in issue.comments if since is None or c.created_at >= since]
        return self._page(req, comments, lambda c: encode(self.render.comment(found, issue, c)))

    @route("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    def create_comment(self, req: Request, owner: str, repo: str, issue_number: str) -> Response:
        found = self.store.repo(owner, repo)
        issue = self.store.issue(found, _int(issue_number))
        body = _object(req).get("body")
        if not isinstance(body, str):
            raise validation_failed({"resource": "IssueComment", "code": "missing_field", "field": "body"})
        comment = self.store.add_comment(found, issue, author=req.login, body=body)
        rendered = encode(self.render.comment(found, issue, comment))
        return self._created(f"/repos/{found.full_name}/issues/comments/{comment.id}", rendered)

    # -- pull requests ---------------------------------------------------------------------

    @route("get", "/repos/{owner}/{repo}/pulls")
    def list_pulls(self, req: Request, owner: str, repo: str) -> Response:
        found = self.store.repo(owner, repo)
        state = _enum(req, "state", ("open", "closed", "all"), "open", "PullRequest")
        sort = _enum(
            req, "sort", ("created", "updated", "popularity", "long-running"), "created", "PullRequest"
        )
        default_direction = "desc" if sort == "created" else "asc"
        descending = _enum(req, "direction", ("asc", "desc"), default_direction, "PullRequest") == "desc"
        head, base = _one(req, "head"), _one(req, "base")
        head_owner, _, head_ref = (head or "").rpartition(":")
        pulls = [
            issue
            for issue in found.issues.values()
            if issue.pull is not None
            and state in ("all", issue.state)
            # GitHub ignores a head filter that lacks "owner:"; so does the fake.
            and (
                not head_owner or (head_owner.lower() == found.owner.lower() and issue.pull.head == head_ref)
            )
            and (not base or issue.pull.base == base)
        ]
        if sort == "long-running":
            month_ago = self.store.now().timestamp() - 30 * 86400
            pulls = [p for p in pulls if p.state == "open" and p.created_at.timestamp() < month_ago]
        pulls.sort(key=_pull_sort_key(sort), reverse=descending)
        return self._page(req, pulls, lambda pull: self._pull_bytes(found, pull, full=False))

    @route("post", "/repos/{owner}/{repo}/pulls")
    def create_pull(self, req: Request, owner: str, repo: str) -> Response:
        found = self.store.repo(owner, repo)
        data = _object(req)
        head, base, title = data.get("head"), data.get("base"), data.get("title")
        for name, value in (("head", head), ("base", base), ("title", title)):
            if not isinstance(value, str) or not value:
                raise validation_failed({"resource": "PullRequest", "code": "missing_field", "field": name})
        assert isinstance(head, str) and isinstance(base, str) and isinstance(title, str)
        head_owner, _, head = head.rpartition(":")
        if head_owner and head_owner.lower() != found.owner.lower():
            # Forks are not modelled: a head in another account's repo cannot exist here.
            raise validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        head_sha = github_git.branch_sha(found.path, head)
        base_sha = github_git.branch_sha(found.path, base)
        if head_sha and base_sha and not github_git.has_commits_beyond(found.path, head_sha, base_sha):
            message = f"No commits between {base} and {head}"
            raise validation_failed({"resource": "PullRequest", "code": "custom", "message": message})
        pull = self.store.open_pull(
            found,
            head=head,
            base=base,
            title=title,
            author=req.login,
            body=_optional_str(data, "body", "PullRequest"),
            labels=(),
        )
        self.store.write_log.append(f"{found.full_name} pull #{pull.number} opened from {head}")
        return self._created(
            f"/repos/{found.full_name}/pulls/{pull.number}", self._pull_bytes(found, pull, full=True)
        )

    @route("get", "/repos/{owner}/{repo}/pulls/{pull_number}")
    def get_pull(self, req: Request, owner: str, repo: str, pull_number: str) -> Response:
        found = self.store.repo(owner, repo)
        pull = self.store.pull(found, _int(pull_number))
        return Response(200, self._pull_bytes(found, pull, full=True), last_modified=pull.updated_at)

    @route("get", "/repos/{owner}/{repo}/branches/{branch}")
    def get_branch(self, req: Request, owner: str, repo: str, branch: str) -> Response:
        found = self.store.repo(owner, repo)
        sha = github_git.branch_sha(found.path, branch)
        if sha is None:
            raise Rejected(404, "Branch not found")
        commit = github_git.read_commit(found.path, sha)
        return Response(200, encode(self.render.branch(found, branch, commit)))

    # -- helpers ---------------------------------------------------------------------------

    def _issue_bytes(self, repo: Repo, issue: Issue) -> bytes:
        return self.render.cached("issue", issue, issue.rev, lambda: self.render.issue(repo, issue))

    def _pull_bytes(self, repo: Repo, pull: Issue, *, full: bool) -> bytes:
        assert pull.pull is not None
        # Pushes move the branches without telling the fake, so the shas are part of the key.
        key = (
            pull.rev,
            github_git.branch_sha(repo.path, pull.pull.head),
            github_git.branch_sha(repo.path, pull.pull.base),
        )
        kind = "pull" if full else "pull-simple"
        return self.render.cached(kind, pull, key, lambda: self.render.pull(repo, pull, full=full))

    def _created(self, path: str, body: bytes) -> Response:
        return Response(201, body, headers={"Location": f"{self.render.base}{path}"})

    def _page(
        self, req: Request, items: Sequence[T], encode_item: Callable[[T], bytes] | None = None
    ) -> Response:
        """One page of `items` with GitHub's Link header (prev, next, last, first as they apply)."""
        per_page = min(max(_int_param(req, "per_page", 30), 1), 100)
        page = max(_int_param(req, "page", 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        parts = [encode_item(item) for item in chunk] if encode_item else []
        kept = [(key, value) for key, values in req.query.items() if key != "page" for value in values]

        def link(number: int, rel: str) -> str:
            query = urlencode([*kept, ("page", str(number))])
            return f'<{self.render.base}{req.path}?{query}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links.append(link(1, "first"))
        headers = {"Link": ", ".join(links)} if links else {}
        return Response(200, b"[" + b",".join(parts) + b"]", headers=headers)


# -- request parsing -----------------------------------------------------------------------


def _one(req: Request, name: str) -> str | None:
    values = req.query.get(name)
    return values[-1] if values else None


def _int(text: str) -> int:
    if not text.isdigit():
        raise not_found()  # GitHub answers /issues/abc with 404, not 422
    return int(text)


def _int_param(req: Request, name: str, default: int) -> int:
    value = _one(req, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise validation_failed({"resource": "Search", "field": name, "code": "invalid"}) from None


def _enum(req: Request, name: str, allowed: tuple[str, ...], default: str, resource: str) -> str:
    value = _one(req, name) or default
    if value not in allowed:
        raise validation_failed({"resource": resource, "field": name, "code": "invalid", "value": value})
    return value


def _since(req: Request) -> datetime | None:
    value = _one(req, "since")
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation_failed({"resource": "Issue", "field": "since", "code": "invalid"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json(req: Request) -> Any:
    if not req.body.strip():
        return None
    try:
        return json.loads(req.body)
    except ValueError:
        raise _BadJson from None


def _object(req: Request) -> dict[str, Any]:
    data = _json(req)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _BadJson
    return data


def _optional_str(data: Mapping[str, Any], key: str, resource: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise validation_failed({"resource": resource, "field": key, "code": "invalid"})
    return value


def _refuse_unmodelled(data: Mapping[str, Any], resource: str) -> None:
    """Fail loudly on fields the fake does not model rather than silently dropping them."""
    for key in ("assignee", "assignees", "milestone", "type"):
        if data.get(key):
            message = f"the fake GitHub does not model {key}"
            raise validation_failed(
                {"resource": resource, "field": key, "code": "custom", "message": message}
            )


def _labels_body(req: Request) -> Any:
    """The label list of a PUT/POST .../labels body, in any of the shapes GitHub accepts."""
    data = _json(req)
    if data is None:
        return []
    if isinstance(data, dict):
        return data.get("labels", [])
    return data


def _label_names(raw: Any) -> list[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise validation_failed({"resource": "Label", "field": "labels", "code": "invalid"})
    names = []
    for item in raw:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str):
            raise validation_failed({"resource": "Label", "field": "labels", "code": "invalid"})
        names.append(name)
    return names


def _issue_sort_key(sort: str) -> Callable[[Issue], tuple[Any, ...]]:
    if sort == "updated":
        return lambda issue: (issue.updated_at, issue.number)
    if sort == "comments":
        return lambda issue: (len(issue.comments), issue.number)
    return lambda issue: (issue.created_at, issue.number)


def _pull_sort_key(sort: str) -> Callable[[Issue], tuple[Any, ...]]:
    if sort == "updated":
        return lambda pull: (pull.updated_at, pull.number)
    if sort == "popularity":
        return lambda pull: (len(pull.comments), pull.number)
    return lambda pull: (pull.created_at, pull.number)


def route_table() -> Iterable[tuple[str, str]]:
    """(method, OpenAPI path) of every endpoint the fake serves."""
    return [(method, path) for method, path, _ in ROUTES]
