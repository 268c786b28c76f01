"""A stand-in for Claude Code that really does the work: commit, push, open the PR, review.

Run as `python -m k3sc.sandbox.stub_agent` inside a prepared workspace, with the environment
`k3sc.agent.prompts.agent_env` builds. It reads its issue through the GitHub API and obeys a
line `stub: <mode>` in the issue body, so sandbox runs and tests can script every ending a
real agent has, through the real git hooks and the real (fake) GitHub:

    ok            implement: commit, push, open the PR, hand-off comment; review: post the review
    fail          an implement run exits 1 with an error result (a review is ok)
    fail-twice    like fail while K3SC_ATTEMPT <= 2, then ok
    no-pr         an implement run exits 0 claiming success, without pushing or opening anything
    usage-limit   a Claude agent prints the shape of the recorded weekly-limit stream (a
                  synthetic assistant message "Weekly limit reached ∙ resets 5am", then a
                  result `subtype: success`, `is_error: true`) and exits 0; a Codex agent is ok
    usage-limit=<s>  the same, preceded by a `rate_limit_event` rejected with `resetsAt` = the
                  first hit + <s> seconds, and only until then: afterwards it is ok. The first
                  Claude run to hit it marks its issue with a comment, whose time is the account's
                  clock for every issue of the repository (a short, shared reset for
                  end-to-end tests, kept on GitHub, no local state)
    budget=<n>    stream assistant messages of 1,000 tokens each, ten a second, until <n>
                  tokens are reported, then ok; SIGINT ends it like Claude's interrupt
    slow=<s>      sleep <s> seconds, then ok
    review-fail   a review run exits 1 (an implement run is ok)
    rogue         try a closing commit message, a push to the base branch (both refused by
                  the hooks) and `gh pr merge` (refused by the gh allowlist), then exit 1

Failure modes apply to one kind only (fail/fail-twice/no-pr to implementing, review-fail to
reviewing), so a flaky implementation can still be reviewed: K3SC_ATTEMPT counts per kind.

Its output is Claude stream-json (init, assistant messages with usage, tool calls and results,
a final result with usage and cost), so usage parsing is exercised end to end. It imports
only the standard library and httpx, to start in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

MODEL = "claude-sonnet-4-6"
# Per assistant message; the final result adds them up like Claude Code does.
MESSAGE_USAGE = {
    "input_tokens": 120,
    "output_tokens": 80,
    "cache_creation_input_tokens": 400,
    "cache_read_input_tokens": 2000,
}
# claude-sonnet-4-6 list prices per token: input, output, cache write, cache read.
_PRICES = {"input_tokens": 3e-6, "output_tokens": 15e-6, "cache_creation_input_tokens": 3.75e-6}
_PRICES["cache_read_input_tokens"] = 0.3e-6
_DIRECTIVE = re.compile(r"^\s*stub:\s*(\S+)\s*$", re.MULTILINE | re.IGNORECASE)
_GIT_TIMEOUT_S = 120


class StubFailure(Exception):
    """The stub cannot go on; the message ends up in the error result."""


@dataclass(frozen=True)
class Context:
    """The run as the environment describes it."""

    owner: str
    name: str
    issue: int
    kind: str
    pr: int | None
    agent: str
    branch: str
    base: str
    attempt: int
    api_url: str
    token: str
    family: str = "claude"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Context:
        try:
            owner, _, name = env["K3SC_REPO"].partition("/")
            pr = env.get("K3SC_PR", "").strip()
            return cls(
                owner=owner,
                name=name,
                issue=int(env["K3SC_ISSUE"]),
                kind=env.get("K3SC_KIND", "implement"),
                pr=int(pr) if pr else None,
                agent=env["K3SC_AGENT"],
                branch=env["K3SC_BRANCH"],
                base=env["K3SC_BASE"],
                attempt=int(env.get("K3SC_ATTEMPT") or 1),
                api_url=env["K3SC_GITHUB_API_URL"].rstrip("/"),
                token=env.get("GITHUB_TOKEN", ""),
                family=env.get("K3SC_FAMILY", "claude"),
            )
        except (KeyError, ValueError) as exc:
            raise StubFailure(f"incomplete k3sc environment: {exc}") from None

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.name}"


# One `budget=<n>` message: 1,000 tokens, shaped like a real turn (mostly cache reads).
BUDGET_MESSAGE_USAGE = {
    "input_tokens": 100,
    "output_tokens": 100,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 500,
}
BUDGET_MESSAGES_PER_S = 10
WEEKLY_LIMIT_TEXT = "Weekly limit reached ∙ resets 5am"


class Stream:
    """Prints Claude stream-json lines and keeps the usage the final result reports."""

    def __init__(self) -> None:
        self.session = str(uuid.uuid4())
        self.messages = 0
        self.used = dict.fromkeys(MESSAGE_USAGE, 0)
        self.started = time.monotonic()

    def emit(self, event: dict[str, Any]) -> None:
        print(json.dumps({**event, "session_id": self.session}), flush=True)

    def init(self) -> None:
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "model": MODEL,
                "cwd": os.getcwd(),
                "tools": ["Bash", "Read", "Write", "Edit"],
                "permissionMode": "bypassPermissions",
                "apiKeySource": "none",
                "claude_code_version": "stub",
            }
        )
        self.emit(
            {
                "type": "rate_limit_event",
                "rate_limit_info": {"status": "allowed", "rateLimitType": "five_hour"},
            }
        )

    def _assistant(self, content: list[dict[str, Any]], used: Mapping[str, int] = MESSAGE_USAGE) -> None:
        self.messages += 1
        for key, value in used.items():
            self.used[key] += value
        message = {
            "id": f"msg_stub_{self.messages:03d}",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": "tool_use" if content[-1]["type"] == "tool_use" else "end_turn",
            "usage": dict(used),
        }
        self.emit({"type": "assistant", "message": message, "parent_tool_use_id": None})

    def say(self, text: str, used: Mapping[str, int] = MESSAGE_USAGE) -> None:
        self._assistant([{"type": "text", "text": text}], used)

    def tool(self, name: str, tool_input: dict[str, Any], output: str, *, is_error: bool = False) -> None:
        tool_id = f"toolu_stub_{self.messages + 1:03d}"
        self._assistant([{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}])
        block = {"type": "tool_result", "tool_use_id": tool_id, "content": output, "is_error": is_error}
        self.emit({"type": "user", "message": {"role": "user", "content": [block]}})

    def result(
        self,
        text: str,
        *,
        subtype: str = "success",
        is_error: bool = False,
        terminal_reason: str = "completed",
    ) -> None:
        usage = dict(self.used)
        cost = round(sum(usage[key] * price for key, price in _PRICES.items()), 6)
        self.emit(
            {
                "type": "result",
                "subtype": subtype,
                "is_error": is_error,
                "duration_ms": int((time.monotonic() - self.started) * 1000),
                "duration_api_ms": 0,
                "num_turns": self.messages,
                "result": text,
                "total_cost_usd": cost,
                "usage": usage,
                "modelUsage": {
                    MODEL: {
                        "inputTokens": usage["input_tokens"],
                        "outputTokens": usage["output_tokens"],
                        "cacheCreationInputTokens": usage["cache_creation_input_tokens"],
                        "cacheReadInputTokens": usage["cache_read_input_tokens"],
                        "costUSD": cost,
                    }
                },
                "permission_denials": [],
                "terminal_reason": terminal_reason,
            }
        )


class GitHub:
    """The few REST calls the stub makes, failing loudly on any non-2xx answer."""

    def __init__(self, ctx: Context) -> None:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "k3sc-stub-agent",
        }
        if ctx.token:
            headers["Authorization"] = f"Bearer {ctx.token}"
        self._client = httpx.Client(base_url=ctx.api_url, headers=headers, timeout=30)
        self._prefix = f"/repos/{ctx.repo}"

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, self._prefix + path, **kwargs)
        if response.status_code >= 300:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text[:200]
            raise StubFailure(f"GitHub answered {response.status_code} to {method} {path}: {message}")
        return response.json() if response.content else None

    def open_pull(self, ctx: Context) -> int | None:
        found = self.call("GET", "/pulls", params={"head": f"{ctx.owner}:{ctx.branch}", "state": "open"})
        return int(found[0]["number"]) if found else None


def directive(body: str) -> tuple[str, float]:
    """The issue's `stub: <mode>` (default ok) and the number of `slow=`, `budget=` or `usage-limit=`."""
    match = _DIRECTIVE.search(body)
    mode = match.group(1).lower() if match else "ok"
    name, equals, value = mode.partition("=")
    if not equals:
        return mode, 0.0
    if name not in ("slow", "budget", "usage-limit"):
        raise StubFailure(f"bad directive {mode!r}: only slow, budget and usage-limit take a number")
    try:
        number = float(value)
    except ValueError:
        raise StubFailure(f"bad directive {mode!r}: expected {name}=<number>") from None
    if not math.isfinite(number) or number < 0:
        raise StubFailure(f"bad directive {mode!r}: expected a number of at least 0")
    return name, number


def git(stream: Stream, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git like an agent's Bash tool would, showing command and output in the stream."""
    proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False)
    output = (proc.stdout + proc.stderr).strip() or f"(exit {proc.returncode})"
    stream.tool("Bash", {"command": "git " + " ".join(args)}, output, is_error=proc.returncode != 0)
    if check and proc.returncode != 0:
        raise StubFailure(f"git {args[0]} failed with exit code {proc.returncode}: {output.splitlines()[-1]}")
    return proc


def shell(stream: Stream, *argv: str) -> int:
    """Run a command from PATH like an agent's Bash tool would (no check: refusals are expected)."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        stream.tool("Bash", {"command": " ".join(argv)}, f"{argv[0]}: command not found", is_error=True)
        return 127
    output = (proc.stdout + proc.stderr).strip() or f"(exit {proc.returncode})"
    stream.tool("Bash", {"command": " ".join(argv)}, output, is_error=proc.returncode != 0)
    return proc.returncode


def implement(ctx: Context, gh: GitHub, stream: Stream) -> str:
    path = Path("k3sc-stub") / f"issue-{ctx.issue}.md"
    text = f"# Issue {ctx.issue}\n\nWorked on by {ctx.agent}, attempt {ctx.attempt}.\n"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stream.tool("Write", {"file_path": str(path), "content": text}, f"File created successfully at: {path}")
    git(stream, "add", str(path))
    if git(stream, "status", "--porcelain").stdout.strip():
        git(stream, "commit", "-m", f"stub work for issue #{ctx.issue} (attempt {ctx.attempt})")
    git(stream, "push", "-u", "origin", ctx.branch)
    number = gh.open_pull(ctx)
    if number is None:
        pull = gh.call(
            "POST",
            "/pulls",
            json={
                "title": f"Stub work for issue #{ctx.issue}",
                "head": ctx.branch,
                "base": ctx.base,
                "body": f"For issue #{ctx.issue}, by {ctx.agent}.",
            },
        )
        number = int(pull["number"])
        stream.tool(
            "Bash", {"command": f"gh pr create --base {ctx.base} --head {ctx.branch}"}, pull["html_url"]
        )
    handoff = (
        f"## {ctx.agent}\n- Changed: {path}\n- Tests: none (stub agent)\n"
        f"- Acceptance: no checkboxes in issue body\n- Open: nothing\n- Next: review PR #{number}\n"
    )
    gh.call("POST", f"/issues/{ctx.issue}/comments", json={"body": handoff})
    return f"Opened PR #{number} from {ctx.branch}."


def review(ctx: Context, gh: GitHub, stream: Stream) -> str:
    number = ctx.pr or gh.open_pull(ctx)
    if number is None:
        raise StubFailure(f"no open pull request from {ctx.branch} to review")
    body = (
        f"## Review by {ctx.agent}\n\n| check | result |\n|---|---|\n| tests | pass (stub) |\n\n"
        "**Verdict: ready to merge**\n"
    )
    stream.tool("Bash", {"command": f"gh pr comment {number} --body-file review.md"}, "posted")
    gh.call("POST", f"/issues/{number}/comments", json={"body": body})
    return f"Reviewed PR #{number}: ready to merge."


def rogue(ctx: Context, stream: Stream) -> None:
    marker = Path("k3sc-stub") / "rogue.txt"
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(f"attempt {ctx.attempt}\n", encoding="utf-8")
    git(stream, "add", str(marker))
    git(stream, "commit", "-m", f"closes #{ctx.issue}", check=False)
    git(stream, "commit", "-m", f"rogue work for issue #{ctx.issue}", check=False)
    git(stream, "push", "origin", f"HEAD:refs/heads/{ctx.base}", check=False)
    shell(stream, "gh", "pr", "merge", ctx.branch, "--admin", "--merge")
    raise StubFailure(f"tried to push to {ctx.base} and to merge")


def usage_limit(stream: Stream, resets_at: float | None) -> None:
    """The recorded weekly-limit stream's shape, with a `rate_limit_event` first when the reset is known."""
    if resets_at is not None:
        info = {"status": "rejected", "resetsAt": int(resets_at), "rateLimitType": "seven_day"}
        stream.emit({"type": "rate_limit_event", "rate_limit_info": info})
    synthetic = {
        "id": str(uuid.uuid4()),
        "container": None,
        "model": "<synthetic>",
        "role": "assistant",
        "stop_reason": "stop_sequence",
        "stop_sequence": "",
        "type": "message",
        "usage": dict.fromkeys(MESSAGE_USAGE, 0),
        "content": [{"type": "text", "text": WEEKLY_LIMIT_TEXT}],
        "context_management": None,
    }
    stream.emit({"type": "assistant", "message": synthetic, "parent_tool_use_id": None})
    stream.result(WEEKLY_LIMIT_TEXT, is_error=True, terminal_reason="api_error")


LIMIT_MARK = "[stub] usage limit hit"


def limit_resets_at(first_hit: str, seconds: float, now: float) -> float | None:
    """For `usage-limit=<s>`: the reset (first hit + s) while it is ahead, else None (no limit)."""
    hit = datetime.fromisoformat(first_hit.replace("Z", "+00:00")).timestamp()
    return hit + seconds if now < hit + seconds else None


def first_limit_hit(gh: GitHub, ctx: Context) -> str:
    """When the account's limit was first hit (ISO 8601): the earliest mark on any issue of the
    repository, else now, marked on this issue. One clock for every issue, as an account has."""
    marks = []
    for issue in gh.call("GET", "/issues", params={"state": "all", "per_page": 100}):
        if issue.get("comments"):
            comments = gh.call("GET", f"/issues/{issue['number']}/comments", params={"per_page": 100})
            marks += [c["created_at"] for c in comments if str(c.get("body", "")).startswith(LIMIT_MARK)]
    if marks:
        return str(min(marks))
    mark = gh.call("POST", f"/issues/{ctx.issue}/comments", json={"body": f"{LIMIT_MARK} by {ctx.agent}"})
    return str(mark["created_at"])


def spend(stream: Stream, tokens: float) -> None:
    """For `budget=<n>`: report usage steadily, the way a long agent turn does."""
    per_message = sum(BUDGET_MESSAGE_USAGE.values())
    step = 1 / BUDGET_MESSAGES_PER_S
    while sum(stream.used.values()) < tokens:
        stream.say(f"Still working ({sum(stream.used.values()):,} tokens so far).", BUDGET_MESSAGE_USAGE)
        if sum(stream.used.values()) + per_message <= tokens:
            time.sleep(step)


def run(ctx: Context, stream: Stream) -> int:
    gh = GitHub(ctx)
    try:
        issue = gh.call("GET", f"/issues/{ctx.issue}")
        mode, seconds = directive(issue.get("body") or "")
        stream.say(f"Working on {ctx.repo}#{ctx.issue} ({ctx.kind}, mode {mode}, attempt {ctx.attempt}).")
        if mode == "usage-limit" and ctx.family != "codex":
            # A Claude account's limit: Codex agents are not affected.
            if not seconds:
                usage_limit(stream, None)
                return 0
            resets_at = limit_resets_at(first_limit_hit(gh, ctx), seconds, time.time())
            if resets_at is not None:
                usage_limit(stream, resets_at)
                return 0
        if mode == "budget":
            spend(stream, seconds)
        implementing = ctx.kind != "review"
        failing = mode == "fail" or (mode == "fail-twice" and ctx.attempt <= 2)
        if (failing and implementing) or (mode == "review-fail" and not implementing):
            raise StubFailure(f"failing on purpose (stub: {mode})")
        if mode == "no-pr" and implementing:
            stream.result("Nothing to change.")
            return 0
        if mode == "rogue":
            rogue(ctx, stream)
        if mode == "slow":
            time.sleep(seconds)
        elif mode not in ("ok", "fail", "fail-twice", "no-pr", "review-fail", "usage-limit", "budget"):
            raise StubFailure(f"unknown directive 'stub: {mode}'")
        done = review(ctx, gh, stream) if ctx.kind == "review" else implement(ctx, gh, stream)
        stream.say(done)
        stream.result(done)
        return 0
    finally:
        gh.close()


def main() -> int:
    stream = Stream()
    stream.init()
    try:
        return run(Context.from_env(os.environ), stream)
    except (StubFailure, httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
        message = str(exc) or type(exc).__name__
        stream.say(f"Error: {message}")
        stream.result(message, subtype="error_during_execution", is_error=True)
        return 1
    except KeyboardInterrupt:
        # SIGINT is how k3sc interrupts a run (budget); Claude then ends its turn like this.
        stream.result(
            "Interrupted",
            subtype="error_during_execution",
            is_error=True,
            terminal_reason="aborted_streaming",
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
