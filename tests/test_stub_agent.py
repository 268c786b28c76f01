"""The stub agent end to end: a prepared workspace, the real process runner, real git hooks and
a bare remote behind the fake GitHub. Each directive mode is checked by what exists afterwards
on the remote and in the fake (branch, PR, comments), not by what the stub says it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from k3sc import slots
from k3sc.agent import gh_guard, process, prompts, streams, workspace
from k3sc.agent.streams import Verdict
from k3sc.config import SafetyConfig
from k3sc.labels import Family, Kind
from k3sc.models import Repo
from k3sc.sandbox import stub_agent
from k3sc.usage import Window
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

REPO = Repo("acme", "api")
STUB = (sys.executable, "-m", "k3sc.sandbox.stub_agent")
# The developer's git config must not change what the stub's git does (signing, hooksPath).
GIT_ISOLATION = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GIT_ISOLATION.items():
        monkeypatch.setenv(name, value)


@dataclass(frozen=True)
class Run:
    result: process.ProcessResult
    summary: streams.StreamSummary
    lines: list[str]
    rendered: list[str]


class Sandbox:
    """One repository on the fake GitHub and the agents' workspaces for it."""

    def __init__(self, fake: ContractCheckedFakeGitHub, root: Path, default_branch: str = "main") -> None:
        self.fake = fake
        self.remote = fake.add_repo(REPO.owner, REPO.name, default_branch=default_branch)
        self.root = root

    def issue(self, body: str, title: str = "stub work") -> int:
        return self.fake.add_issue(REPO.owner, REPO.name, title=title, author="alice", body=body)

    def git(self, *args: str) -> str:
        """Run git in the bare remote (what GitHub holds) and return its output."""
        found = subprocess.run(
            ["git", "--git-dir", str(self.remote), *args], capture_output=True, text=True, check=False
        )
        return found.stdout

    def remote_sha(self, branch: str) -> str | None:
        return self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").strip() or None

    def pulls(self) -> list[str]:
        return [entry for entry in self.fake.write_log if " pull #" in entry]

    async def run(
        self,
        issue: int,
        *,
        kind: Kind = Kind.IMPLEMENT,
        agent: str = "claude-b",
        pr: int | None = None,
        attempt: int = 1,
        limit: float = 60,
    ) -> Run:
        branch = f"issue-{issue}"
        with await workspace.prepare(
            root=self.root,
            repo=REPO,
            agent=agent,
            issue=issue,
            clone_url=str(self.remote),
            branch=branch,
            default_branch=None,
            blocked_words=("fixes", "closes", "resolves"),
            token=FAKE_GITHUB_TOKEN,
            log=lambda _: None,
        ) as ws:
            prompt = prompts.render(
                kind, repo=REPO, issue=issue, pr=pr, agent=agent, branch=branch, base=ws.base, override=None
            )
            env = prompts.agent_env(
                family=slots.family_of(agent),
                repo=REPO,
                issue=issue,
                kind=kind,
                pr=pr,
                agent=agent,
                branch=branch,
                base=ws.base,
                workspace=ws.path,
                attempt=attempt,
                prompt=prompt,
                github_api_url=self.fake.url,
                github_url=self.fake.url,
                token=FAKE_GITHUB_TOKEN,
                extra=GIT_ISOLATION,
            )
            # As the agent flow does: only the allowed gh subcommands run.
            guard = gh_guard.install(ws.path, SafetyConfig().gh_allowed, env["PATH"])
            env["PATH"] = gh_guard.guarded_path(guard, env["PATH"])
            reader = streams.StreamReader()
            lines: list[str] = []
            rendered: list[str] = []

            def on_line(line: str) -> None:
                lines.append(line)
                if (shown := reader.feed(line)) is not None:
                    rendered.append(shown)

            result = await process.run(
                prompts.command_for(Family.CLAUDE, prompt, STUB),
                cwd=ws.path,
                env=env,
                timeout=limit,
                on_line=on_line,
                secrets=prompts.secret_values(env),
                grace=2,
            )
        summary = reader.summary(
            exit_code=result.exit_code, timed_out=result.timed_out, now=datetime.now(UTC)
        )
        assert FAKE_GITHUB_TOKEN not in "\n".join(lines)
        return Run(result, summary, lines, rendered)


@pytest.fixture
def sandbox(fake_github: ContractCheckedFakeGitHub, tmp_path: Path) -> Sandbox:
    return Sandbox(fake_github, tmp_path / "workspaces")


def pull_number(entry: str) -> int:
    """`acme/api pull #2 opened from issue-1` → 2."""
    return int(entry.partition("#")[2].partition(" ")[0])


# --------------------------------------------------------------------------- implement


async def test_implement_pushes_for_real_and_opens_the_pull_request(sandbox: Sandbox) -> None:
    issue = sandbox.issue("Please add the thing.")
    run = await sandbox.run(issue)

    assert (run.result.exit_code, run.summary.verdict) == (0, Verdict.SUCCESS_CLAIMED)
    head = sandbox.remote_sha(f"issue-{issue}")
    assert head is not None
    assert sandbox.pulls() == [f"acme/api pull #{issue + 1} opened from issue-{issue}"]
    pull = sandbox.fake.issue_view(REPO.owner, REPO.name, issue + 1)
    assert (pull["is_pull"], pull["head"], pull["base"], pull["author"]) == (
        True,
        f"issue-{issue}",
        "main",
        "k3sc",
    )
    handoff = sandbox.fake.issue_view(REPO.owner, REPO.name, issue)["comments"]
    assert [c["body"].splitlines()[0] for c in handoff] == ["## claude-b"]
    assert f"[tool] Bash: git push -u origin issue-{issue}" in run.rendered
    # The commit really is the stub's work, by the agent's identity, without a closing keyword.
    shown = sandbox.git("show", "--format=%an <%ae>%n%s", "--name-only", head).splitlines()
    assert shown[:2] == [
        "claude-b <claude-b@users.noreply.k3sc.dev>",
        f"stub work for issue #{issue} (attempt 1)",
    ]
    assert f"k3sc-stub/issue-{issue}.md" in shown


async def test_usage_is_parsed_from_the_stub_stream_end_to_end(sandbox: Sandbox) -> None:
    run = await sandbox.run(sandbox.issue(""))
    usage = run.summary.usage
    assert usage is not None
    assert usage.turns is not None and usage.turns > 2
    per = stub_agent.MESSAGE_USAGE
    assert usage == streams.Usage(
        input_tokens=per["input_tokens"] * usage.turns,
        output_tokens=per["output_tokens"] * usage.turns,
        cache_creation_tokens=per["cache_creation_input_tokens"] * usage.turns,
        cache_read_tokens=per["cache_read_input_tokens"] * usage.turns,
        total_tokens=sum(per.values()) * usage.turns,
        cost_usd=usage.cost_usd,
        models=(stub_agent.MODEL,),
        turns=usage.turns,
    )
    assert usage.cost_usd is not None and usage.cost_usd > 0
    assert run.summary.session_id is not None


async def test_a_second_attempt_continues_the_branch_and_keeps_the_one_pull_request(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: ok")
    await sandbox.run(issue, attempt=1)
    first = sandbox.remote_sha(f"issue-{issue}")
    run = await sandbox.run(issue, attempt=2)
    assert run.summary.verdict is Verdict.SUCCESS_CLAIMED
    second = sandbox.remote_sha(f"issue-{issue}")
    assert second not in (None, first)
    assert len(sandbox.pulls()) == 1


# --------------------------------------------------------------------------- review


@pytest.mark.parametrize("pr_known", [True, False], ids=["K3SC_PR given", "found from the branch"])
async def test_review_posts_the_review_heading_on_the_pull_request(sandbox: Sandbox, pr_known: bool) -> None:
    issue = sandbox.issue("stub: ok")
    await sandbox.run(issue)
    pr = pull_number(sandbox.pulls()[0])
    run = await sandbox.run(issue, kind=Kind.REVIEW, agent="claude-c", pr=pr if pr_known else None)
    assert (run.result.exit_code, run.summary.verdict) == (0, Verdict.SUCCESS_CLAIMED)
    comments = sandbox.fake.issue_view(REPO.owner, REPO.name, pr)["comments"]
    assert [(c["author"], c["body"].splitlines()[0]) for c in comments] == [("k3sc", "## Review by claude-c")]


async def test_review_without_a_pull_request_fails(sandbox: Sandbox) -> None:
    run = await sandbox.run(sandbox.issue("stub: ok"), kind=Kind.REVIEW, agent="claude-c")
    assert (run.result.exit_code, run.summary.verdict) == (1, Verdict.AGENT_FAILED)
    assert "no open pull request from issue-1 to review" in run.summary.reason


# --------------------------------------------------------------------------- directive modes


@pytest.mark.parametrize(
    ("body", "kind", "attempt", "exit_code", "verdict", "pushed"),
    [
        pytest.param("stub: fail", Kind.IMPLEMENT, 1, 1, Verdict.AGENT_FAILED, False, id="fail exits 1"),
        pytest.param("stub: fail-twice", Kind.IMPLEMENT, 2, 1, Verdict.AGENT_FAILED, False, id="fail-twice, attempt 2"),
        pytest.param("stub: fail-twice", Kind.IMPLEMENT, 3, 0, Verdict.SUCCESS_CLAIMED, True, id="fail-twice, attempt 3"),
        pytest.param("Title\n\nstub: no-pr\n", Kind.IMPLEMENT, 1, 0, Verdict.SUCCESS_CLAIMED, False, id="no-pr"),
        pytest.param("stub: usage-limit", Kind.IMPLEMENT, 1, 0, Verdict.USAGE_LIMIT, False, id="usage-limit exits 0"),
        pytest.param("stub: slow=0.1", Kind.IMPLEMENT, 1, 0, Verdict.SUCCESS_CLAIMED, True, id="slow then ok"),
        pytest.param("stub: review-fail", Kind.IMPLEMENT, 1, 0, Verdict.SUCCESS_CLAIMED, True, id="review-fail implements"),
        pytest.param("stub: dance", Kind.IMPLEMENT, 1, 1, Verdict.AGENT_FAILED, False, id="unknown directive fails"),
    ],
)  # fmt: skip
async def test_directive_modes(
    sandbox: Sandbox, body: str, kind: Kind, attempt: int, exit_code: int, verdict: Verdict, pushed: bool
) -> None:
    issue = sandbox.issue(body)
    run = await sandbox.run(issue, kind=kind, attempt=attempt)
    assert (run.result.exit_code, run.summary.verdict) == (exit_code, verdict), run.summary.reason
    assert (sandbox.remote_sha(f"issue-{issue}") is not None) is pushed
    assert bool(sandbox.pulls()) is pushed


async def test_usage_limit_mode_prints_the_weekly_limit_shape_and_exits_0(sandbox: Sandbox) -> None:
    before = datetime.now(UTC)
    run = await sandbox.run(sandbox.issue("stub: usage-limit"))
    assert (run.result.exit_code, run.summary.verdict, run.summary.window) == (
        0,
        Verdict.USAGE_LIMIT,
        Window.WEEKLY,
    )
    # "resets 5am" in the clock's zone: the next 5am, plus the margin for a rounded time.
    assert run.summary.resets_at is not None and before < run.summary.resets_at <= before + timedelta(
        days=1, minutes=5
    )
    assert "[result] success is_error turns=1" in "\n".join(run.rendered)
    assert "[error] api error: Weekly limit reached ∙ resets 5am" in run.rendered


async def test_a_short_usage_limit_resets_at_the_first_hit_plus_its_seconds(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: usage-limit=3600")
    first = await sandbox.run(issue, agent="claude-a")
    (mark,) = [c for c in sandbox.fake.issue_view(REPO.owner, REPO.name, issue)["comments"]
               if c["body"].startswith(stub_agent.LIMIT_MARK)]  # fmt: skip
    hit = mark["created_at"].replace(microsecond=0)  # GitHub renders whole seconds
    assert (first.summary.verdict, first.summary.resets_at) == (Verdict.USAGE_LIMIT, hit + timedelta(hours=1))
    assert first.summary.limit_hit("claude") is not None
    # Another Claude agent later meets the same account's limit, with the same reset; no new mark.
    second = await sandbox.run(issue, agent="claude-c", attempt=2)
    assert (second.summary.verdict, second.summary.resets_at) == (
        Verdict.USAGE_LIMIT,
        first.summary.resets_at,
    )
    marks = [c for c in sandbox.fake.issue_view(REPO.owner, REPO.name, issue)["comments"]
             if c["body"].startswith(stub_agent.LIMIT_MARK)]  # fmt: skip
    assert len(marks) == 1
    assert sandbox.remote_sha(f"issue-{issue}") is None


async def test_a_codex_agent_is_not_held_by_a_claude_usage_limit(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: usage-limit=3600")
    run = await sandbox.run(issue, agent="codex-a")
    assert (run.result.exit_code, run.summary.verdict) == (0, Verdict.SUCCESS_CLAIMED)
    assert sandbox.remote_sha(f"issue-{issue}") is not None


@pytest.mark.parametrize(
    ("first_hit", "seconds", "now", "expected"),
    [
        pytest.param("2026-12-01T10:00:00Z", 30, 1796119200.0 + 10, 1796119230.0, id="inside the window"),
        pytest.param(
            "2026-12-01T10:00:00Z", 30, 1796119200.0 + 30, None, id="at the reset the limit is gone"
        ),
        pytest.param("2026-12-01T10:00:00Z", 30, 1796119200.0 + 99, None, id="after the reset no limit"),
    ],
)
def test_limit_resets_at(first_hit: str, seconds: float, now: float, expected: float | None) -> None:
    assert stub_agent.limit_resets_at(first_hit, seconds, now) == expected


async def test_budget_mode_streams_its_tokens_then_finishes(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: budget=10000")
    run = await sandbox.run(issue)
    assert (run.result.exit_code, run.summary.verdict) == (0, Verdict.SUCCESS_CLAIMED)
    usage = run.summary.usage
    assert usage is not None and usage.turns is not None
    # The first message (2,600 tokens) counts too: 8 messages of 1,000 pass 10,000.
    budget_messages = [line for line in run.rendered if line.startswith("Still working")]
    assert len(budget_messages) == 8
    ordinary = sum(stub_agent.MESSAGE_USAGE.values())
    assert usage.total_tokens == 8 * 1000 + ordinary * (usage.turns - 8)


# --------------------------------------------------------------------------- directive parsing


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("", ("ok", 0.0), id="no directive means ok"),
        pytest.param("Some text\n  STUB: Fail  \nmore", ("fail", 0.0), id="case and spaces"),
        pytest.param("stub: slow=2.5", ("slow", 2.5), id="slow with seconds"),
        pytest.param("stub: budget=50000", ("budget", 50000.0), id="budget with tokens"),
        pytest.param("stub: usage-limit=30", ("usage-limit", 30.0), id="usage-limit with seconds"),
        pytest.param("stub: usage-limit", ("usage-limit", 0.0), id="usage-limit without seconds"),
        pytest.param("mentions stub: fail inline", ("ok", 0.0), id="only a line of its own counts"),
    ],
)
def test_directive(body: str, expected: tuple[str, float]) -> None:
    assert stub_agent.directive(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param("stub: slow=soon", "expected slow=<number>", id="a number that is not one"),
        pytest.param(
            "stub: fail=3", "only slow, budget and usage-limit take a number", id="a number where none fits"
        ),
        pytest.param("stub: budget=-5", "at least 0", id="a negative number"),
        pytest.param("stub: budget=inf", "at least 0", id="an infinite number"),
    ],
)
def test_bad_directives_fail_with_a_reason(body: str, message: str) -> None:
    with pytest.raises(stub_agent.StubFailure, match=message):
        stub_agent.directive(body)


def test_stub_starts_without_heavy_imports() -> None:
    code = (
        "import sys, k3sc.sandbox.stub_agent; "
        "print(sorted(m for m in ('prefect', 'githubkit', 'textual', 'pydantic') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
