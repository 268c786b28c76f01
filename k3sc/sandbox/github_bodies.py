"""Response bodies for the fake GitHub, rendered from the examples in GitHub's OpenAPI description.

Starting from GitHub's own examples (cut by tools/cut_github_spec.py into data/) keeps every
field a client might read present and shaped like api.github.com; the renderer only fills in
what the fake knows (ids, numbers, titles, labels, users, timestamps) and points every
api.github.com / github.com URL at the fake, as GitHub Enterprise does for its own host.
Bodies of issues and pull requests are cached per revision, so a repeated scan costs a dict
lookup per item rather than a render.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import quote

from k3sc.sandbox import github_git
from k3sc.sandbox.github_state import Comment, Issue, Label, Repo, Store

Json = dict[str, Any]

# GitHub's example bodies all describe this repo and user; the renderer substitutes ours.
_EXAMPLE_REPO = "octocat/Hello-World"
_EXAMPLE_LOGIN = "octocat"


@functools.cache
def examples() -> dict[str, Any]:
    """The example bodies, as cut from the spec (with their provenance under "source")."""
    text = resources.files("k3sc.sandbox").joinpath("data/github_examples.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def timestamp(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int | str) -> str:
    """A node id in GitHub's legacy format: base64 of "<len>:<Kind><id>", e.g. MDU6SXNzdWUx."""
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


class Renderer:
    """Builds JSON bodies for one running fake (bodies embed its base URL)."""

    def __init__(self, base: str, store: Store) -> None:
        self.base = base
        self._store = store
        self._templates: dict[str, str] = {}
        for name, value in examples()["examples"].items():
            text = json.dumps(value)
            # Longest hosts first: "https://github.com" is a prefix of nothing else here.
            for host in (
                "https://api.github.com",
                "https://uploads.github.com",
                "https://avatars.githubusercontent.com",
                "https://svn.github.com",
                "https://github.com",
            ):
                text = text.replace(host, base)
            self._templates[name] = text
        self._users: dict[str, Json] = {}
        self._cache: dict[tuple[str, int], tuple[object, bytes]] = {}

    def _fresh(self, name: str, repo: Repo | None = None) -> Any:
        text = self._templates[name]
        if repo is not None:
            text = text.replace(_EXAMPLE_REPO, repo.full_name)
        return json.loads(text)

    def cached(self, kind: str, issue: Issue, key: object, render: Any) -> bytes:
        """The encoded body of `issue` as `kind`, re-rendered only when `key` changes."""
        hit = self._cache.get((kind, issue.id))
        if hit is not None and hit[0] == key:
            return hit[1]
        body = encode(render())
        self._cache[kind, issue.id] = (key, body)
        return body

    # -- small objects ---------------------------------------------------------------------

    def user(self, login: str) -> Json:
        """A simple-user; shared and never mutated, so callers embed it as is."""
        found = self._users.get(login.lower())
        if found is None:
            uid = self._store.user_id(login)
            text = self._templates["issue"]
            user: Json = json.loads(text)["user"]
            for key, value in list(user.items()):
                if isinstance(value, str):
                    user[key] = value.replace(f"/{_EXAMPLE_LOGIN}", f"/{login}")
            user.update(
                login=login, id=uid, node_id=node_id("User", uid), avatar_url=f"{self.base}/avatars/u/{uid}"
            )
            found = self._users[login.lower()] = user
        return found

    def label(self, repo: Repo, label: Label) -> Json:
        body: Json = self._fresh("label-items", repo)[0]
        body.update(
            id=label.id,
            node_id=node_id("Label", label.id),
            url=f"{self.base}/repos/{repo.full_name}/labels/{quote(label.name, safe='')}",
            name=label.name,
            description=label.description,
            color=label.color,
            default=False,
            # githubkit's 2026-03-10 models require these although the spec's label lacks them.
            archived_at=None,
            archived_by=None,
        )
        return body

    def labels(self, repo: Repo, issue: Issue) -> list[Json]:
        return [self.label(repo, label) for label in issue.labels]

    def comment(self, repo: Repo, issue: Issue, comment: Comment) -> Json:
        body: Json = self._fresh("issue-comment", repo)
        api = f"{self.base}/repos/{repo.full_name}"
        body.update(
            id=comment.id,
            node_id=node_id("IssueComment", comment.id),
            url=f"{api}/issues/comments/{comment.id}",
            html_url=f"{self.base}/{repo.full_name}/issues/{issue.number}#issuecomment-{comment.id}",
            body=comment.body,
            user=self.user(comment.author),
            created_at=timestamp(comment.created_at),
            updated_at=timestamp(comment.created_at),
            issue_url=f"{api}/issues/{issue.number}",
            author_association=self.association(repo, comment.author),
        )
        return body

    def association(self, repo: Repo, login: str) -> str:
        """OWNER for the repo owner, COLLABORATOR for users the fake was told about, else NONE."""
        if login.lower() == repo.owner.lower():
            return "OWNER"
        return "COLLABORATOR" if login.lower() in self._store.known_users else "NONE"

    # -- issues and pull requests ----------------------------------------------------------

    def issue(self, repo: Repo, issue: Issue) -> Json:
        body: Json = self._fresh("issue", repo)
        api, web, n = f"{self.base}/repos/{repo.full_name}", f"{self.base}/{repo.full_name}", issue.number
        body.update(
            id=issue.id,
            node_id=node_id("Issue", issue.id),
            url=f"{api}/issues/{n}",
            repository_url=api,
            labels_url=f"{api}/issues/{n}/labels{{/name}}",
            comments_url=f"{api}/issues/{n}/comments",
            events_url=f"{api}/issues/{n}/events",
            html_url=f"{web}/{'pull' if issue.pull else 'issues'}/{n}",
            number=n,
            state=issue.state,
            title=issue.title,
            body=issue.body,
            user=self.user(issue.author),
            labels=self.labels(repo, issue),
            assignee=None,
            assignees=[],
            milestone=None,
            locked=False,
            active_lock_reason=None,
            comments=len(issue.comments),
            closed_at=timestamp(issue.closed_at),
            created_at=timestamp(issue.created_at),
            updated_at=timestamp(issue.updated_at),
            closed_by=self.user(issue.closed_by) if issue.closed_by else None,
            author_association=self.association(repo, issue.author),
            state_reason=issue.state_reason,
        )
        if issue.pull is None:
            del body["pull_request"]
        else:
            body["pull_request"] = {
                "url": f"{api}/pulls/{n}",
                "html_url": f"{web}/pull/{n}",
                "diff_url": f"{web}/pull/{n}.diff",
                "patch_url": f"{web}/pull/{n}.patch",
                "merged_at": None,
            }
        return body

    def pull(self, repo: Repo, issue: Issue, *, full: bool) -> Json:
        """A pull-request (full) or pull-request-simple (list item) body; reads branch shas live."""
        assert issue.pull is not None
        example = self._fresh("pull-request" if full else "pull-request-simple-items", repo)
        body: Json = example if full else example[0]
        api, web, n = f"{self.base}/repos/{repo.full_name}", f"{self.base}/{repo.full_name}", issue.number
        head_sha = github_git.branch_sha(repo.path, issue.pull.head) or "0" * 40
        base_sha = github_git.branch_sha(repo.path, issue.pull.base) or "0" * 40
        body.update(
            url=f"{api}/pulls/{n}",
            id=issue.pull_id,
            node_id=node_id("PullRequest", issue.pull_id),
            html_url=f"{web}/pull/{n}",
            diff_url=f"{web}/pull/{n}.diff",
            patch_url=f"{web}/pull/{n}.patch",
            issue_url=f"{api}/issues/{n}",
            commits_url=f"{api}/pulls/{n}/commits",
            review_comments_url=f"{api}/pulls/{n}/comments",
            review_comment_url=f"{api}/pulls/comments{{/number}}",
            comments_url=f"{api}/issues/{n}/comments",
            statuses_url=f"{api}/statuses/{head_sha}",
            number=n,
            state=issue.state,
            locked=False,
            title=issue.title,
            user=self.user(issue.author),
            body=issue.body,
            labels=self.labels(repo, issue),
            milestone=None,
            active_lock_reason=None,
            created_at=timestamp(issue.created_at),
            updated_at=timestamp(issue.updated_at),
            closed_at=timestamp(issue.closed_at),
            merged_at=None,
            merge_commit_sha=None,
            assignee=None,
            assignees=[],
            requested_reviewers=[],
            requested_teams=[],
            head=self._pull_end(repo, issue.pull.head, head_sha),
            base=self._pull_end(repo, issue.pull.base, base_sha),
            author_association=self.association(repo, issue.author),
            auto_merge=None,
            draft=False,
        )
        body["_links"] = {
            "self": {"href": f"{api}/pulls/{n}"},
            "html": {"href": f"{web}/pull/{n}"},
            "issue": {"href": f"{api}/issues/{n}"},
            "comments": {"href": f"{api}/issues/{n}/comments"},
            "review_comments": {"href": f"{api}/pulls/{n}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/pulls/{n}/commits"},
            "statuses": {"href": f"{api}/statuses/{head_sha}"},
        }
        if full:
            commits, additions, deletions, files = github_git.diff_stats(repo.path, base_sha, head_sha)
            body.update(
                merged=issue.pull.merged,
                # GitHub computes mergeability in the background and answers null until it has.
                mergeable=None,
                rebaseable=None,
                mergeable_state="unknown",
                merged_by=None,
                comments=len(issue.comments),
                review_comments=0,
                maintainer_can_modify=False,
                commits=commits,
                additions=additions,
                deletions=deletions,
                changed_files=files,
            )
        return body

    def _pull_end(self, repo: Repo, ref: str, sha: str) -> Json:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repository(repo, "pull-request"),
        }

    # -- repositories ----------------------------------------------------------------------

    def repository(self, repo: Repo, example: str = "full-repository-default-response") -> Json:
        """A full-repository body, or (example="pull-request") the `repository` nested in a PR."""
        if example == "pull-request":
            body: Json = self._fresh("pull-request", repo)["head"]["repo"]
        else:
            body = self._fresh(example, repo)
            open_count = sum(1 for issue in repo.issues.values() if issue.state == "open")
            body.update(
                open_issues_count=open_count, open_issues=open_count, subscribers_count=0, network_count=0
            )
            body["permissions"] = {
                "admin": True,
                "maintain": True,
                "push": True,
                "triage": True,
                "pull": True,
            }
            for key in ("template_repository", "organization", "parent", "source"):
                body.pop(key, None)  # the fake's repos are plain, user-owned, not forks
        remote = repo.path.as_uri()
        body.update(
            id=repo.id,
            node_id=node_id("Repository", repo.id),
            name=repo.name,
            full_name=repo.full_name,
            owner=self.user(repo.owner),
            description=None,
            fork=False,
            homepage=None,
            # Agents clone the bare remote on disk; the API names it the way GitHub names its git URLs.
            git_url=remote,
            ssh_url=remote,
            clone_url=remote,
            mirror_url=None,
            svn_url=f"{self.base}/{repo.full_name}",
            default_branch=repo.default_branch,
            topics=[],
            license=None,
            # Required by the schema but missing from GitHub's own example.
            language=None,
            forks_count=0,
            forks=0,
            stargazers_count=0,
            watchers_count=0,
            watchers=0,
            created_at=timestamp(repo.created_at),
            updated_at=timestamp(repo.created_at),
            pushed_at=timestamp(repo.created_at),
        )
        return body

    def branch(self, repo: Repo, name: str, commit: github_git.Commit) -> Json:
        body: Json = self._fresh("branch-get", repo)
        api, web = f"{self.base}/repos/{repo.full_name}", f"{self.base}/{repo.full_name}"
        sha = commit.sha
        outer = body["commit"]
        inner = outer["commit"]
        inner.update(
            author={
                "name": commit.author_name,
                "email": commit.author_email,
                "date": timestamp(datetime.fromtimestamp(commit.author_date, UTC)),
            },
            committer={
                "name": commit.committer_name,
                "email": commit.committer_email,
                "date": timestamp(datetime.fromtimestamp(commit.committer_date, UTC)),
            },
            message=commit.message.rstrip("\n"),
            tree={"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
            url=f"{api}/git/commits/{sha}",
            comment_count=0,
        )
        outer.update(
            sha=sha,
            node_id=node_id("Commit", sha),
            url=f"{api}/commits/{sha}",
            html_url=f"{web}/commit/{sha}",
            comments_url=f"{api}/commits/{sha}/comments",
            # Git identities are not GitHub accounts in the fake, so no user is attached.
            author=None,
            committer=None,
            parents=[
                {"sha": parent, "url": f"{api}/commits/{parent}", "html_url": f"{web}/commit/{parent}"}
                for parent in commit.parents
            ],
        )
        quoted = quote(name, safe="")
        body.update(
            name=name,
            _links={"self": f"{api}/branches/{quoted}", "html": f"{web}/tree/{quoted}"},
            protected=False,
            protection_url=f"{api}/branches/{quoted}/protection",
        )
        return body

    # -- account, app and rate limit -------------------------------------------------------

    def private_user(self, login: str) -> Json:
        body: Json = self._fresh("private-user-response-with-public-and-private-profile-information")
        body.update(self.user(login))
        body.update(
            name=login, email=None, bio=None, blog="", company=None, location=None, twitter_username=None
        )
        # /user's schema is a oneOf discriminated by this field; GitHub sends it, the example lacks it.
        body["user_view_type"] = "private"
        return body

    # What the fake's App is installed with; a token may be narrowed to less, never more.
    INSTALLATION_PERMISSIONS: ClassVar[Mapping[str, str]] = {
        "issues": "write",
        "pull_requests": "write",
        "contents": "write",
        "metadata": "read",
    }

    def installation(self, installation_id: int, owner: str) -> Json:
        body: Json = self._fresh("installation")
        account = self.user(owner)
        body.update(
            id=installation_id,
            account=account,
            access_tokens_url=f"{self.base}/app/installations/{installation_id}/access_tokens",
            html_url=f"{self.base}/settings/installations/{installation_id}",
            target_id=account["id"],
            target_type="User",
            permissions=dict(self.INSTALLATION_PERMISSIONS),
            events=["issues", "issue_comment", "pull_request"],
            app_slug="k3sc",
        )
        return body

    def installation_token(
        self,
        token: str,
        expires_at: datetime,
        *,
        permissions: Mapping[str, str] | None = None,
        repositories: Sequence[Repo] | None = None,
    ) -> Json:
        body: Json = self._fresh("installation-token")
        body.update(
            token=token,
            expires_at=timestamp(expires_at),
            permissions=dict(permissions or self.INSTALLATION_PERMISSIONS),
            repository_selection="all" if repositories is None else "selected",
        )
        if repositories is None:
            body.pop("repositories", None)  # only present when the token was narrowed to some repos
        else:
            body["repositories"] = [self.repository(repo) for repo in repositories]
        return body

    def rate_limit(self, limit: int, used: int, reset: int) -> Json:
        body: Json = self._fresh("rate-limit-overview")
        core = {"limit": limit, "used": used, "remaining": max(limit - used, 0), "reset": reset}
        for resource in body["resources"].values():
            resource["reset"] = reset
        body["resources"]["core"] = core
        body["rate"] = dict(core)
        return body


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
