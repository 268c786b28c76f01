"""The stub agent end to end, through the real agent flow: `flows.agent.agent` runs against the
session's Prefect server (tests/agent_flow.py), with a real workspace, real git hooks and a bare
remote behind the fake GitHub. Each directive mode is checked by what exists afterwards on the
remote and in the fake (branch, PR, comments), and by what the flow recorded in Prefect: its
final state, its usage artifact and the lines it relayed, not by what the stub says it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from k3sc import usage
from k3sc.agent.streams import Verdict
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.sandbox import stub_agent
from k3sc.usage import LimitHit, Window
from tests.agent_flow import AgentFlowProcess, Ended
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

REPO = Repo("acme", "api")
STUB = [sys.executable, "-m", "k3sc.sandbox.stub_agent"]
# The developer's git config must not change what the stub's git does (signing, hooksPath).
GIT_ISOLATION = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
# What a flow run reads from its environment; per test (tests/fixtures/environment.py).
PER_TEST_ENV = ("K3SC_CONFIG", "K3SC_HOME", "K3SC_CACHE_DIR")


@pytest.fixture(scope="module")
def agent_flows(prefect_api_url: str) -> Iterator[AgentFlowProcess]:
    runner = AgentFlowProcess(prefect_api_url, GIT_ISOLATION)
    try:
        yield runner
    finally:
        runner.close()


class Sandbox:
    """One repository on the fake GitHub, the k3sc config for it, and the agent flow to run."""

    def __init__(
        self,
        fake: ContractCheckedFakeGitHub,
        root: Path,
        flows: AgentFlowProcess,
        default_branch: str = "main",
    ) -> None:
        self.fake = fake
        self.remote = fake.add_repo(REPO.owner, REPO.name, default_branch=default_branch)
        self.flows = flows
        config = {
            "github_url": fake.url,
            "github_api_url": fake.url,
            "allowed_authors": ["alice"],
            "repos": [{"owner": REPO.owner, "name": REPO.name, "clone_url": str(self.remote)}],
            "agent": {"command": STUB, "timeout": "60s"},
            "workspace_root": str(root),
        }
        Path(os.environ["K3SC_CONFIG"]).write_text(yaml.safe_dump(config), encoding="utf-8")

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

    def run(
        self, issue: int, *, kind: Kind = Kind.IMPLEMENT, agent: str = "claude-b", pr: int | None = None,
        attempt: int = 1,
    ) -> Ended:  # fmt: skip
        env = {name: os.environ[name] for name in PER_TEST_ENV}
        ended = self.flows.run(env, FAKE_GITHUB_TOKEN, repo=REPO.full_name, issue=issue, kind=kind.value,
                               agent=agent, attempt=attempt, pr=pr)  # fmt: skip
        assert FAKE_GITHUB_TOKEN not in "\n".join(ended.lines)
        return ended


def verdict(run: Ended) -> tuple[int | None, Verdict]:
    """The agent's exit code and the verdict the flow recorded in its usage artifact."""
    return run.usage.exit_code, Verdict(run.usage.verdict)


def limit_hit(run: Ended) -> LimitHit:
    """The usage limit a Parked run carries in its state message."""
    state, name, message = run.state
    assert (state, name) == ("FAILED", usage.PARKED), run.state
    hit = LimitHit.decode(message)
    assert hit is not None, message
    return hit


@pytest.fixture
def sandbox(fake_github: ContractCheckedFakeGitHub, tmp_path: Path, agent_flows: AgentFlowProcess) -> Sandbox:
    return Sandbox(fake_github, tmp_path / "workspaces", agent_flows)


def pull_number(entry: str) -> int:
    """`acme/api pull #2 opened from issue-1` → 2."""
    return int(entry.partition("#")[2].partition(" ")[0])


# --------------------------------------------------------------------------- implement


def test_implement_pushes_for_real_and_opens_the_pull_request(sandbox: Sandbox) -> None:
    issue = sandbox.issue("Please add the thing.")
    run = sandbox.run(issue)

    assert verdict(run) == (0, Verdict.SUCCESS_CLAIMED)
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
    assert f"[tool] Bash: git push -u origin issue-{issue}" in run.lines
    # The commit really is the stub's work, by the agent's identity, without a closing keyword.
    shown = sandbox.git("show", "--format=%an <%ae>%n%s", "--name-only", head).splitlines()
    assert shown[:2] == [
        "claude-b <claude-b@users.noreply.k3sc.dev>",
        f"stub work for issue #{issue} (attempt 1)",
    ]
    assert f"k3sc-stub/issue-{issue}.md" in shown


def test_usage_is_parsed_from_the_stub_stream_end_to_end(sandbox: Sandbox) -> None:
    run = sandbox.run(sandbox.issue(""))
    used = run.usage.usage
    assert used is not None
    assert used.turns is not None and used.turns > 2
    per = stub_agent.MESSAGE_USAGE
    assert used == usage.Usage(
        input_tokens=per["input_tokens"] * used.turns,
        output_tokens=per["output_tokens"] * used.turns,
        cache_creation_tokens=per["cache_creation_input_tokens"] * used.turns,
        cache_read_tokens=per["cache_read_input_tokens"] * used.turns,
        total_tokens=sum(per.values()) * used.turns,
        cost_usd=used.cost_usd,
        models=(stub_agent.MODEL,),
        turns=used.turns,
    )
    assert used.cost_usd is not None and used.cost_usd > 0
    (init,) = [line for line in run.lines if line.startswith("[init] ")]
    assert ", session ?" not in init


def test_a_second_attempt_continues_the_branch_and_keeps_the_one_pull_request(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: ok")
    sandbox.run(issue, attempt=1)
    first = sandbox.remote_sha(f"issue-{issue}")
    run = sandbox.run(issue, attempt=2)
    assert verdict(run) == (0, Verdict.SUCCESS_CLAIMED)
    second = sandbox.remote_sha(f"issue-{issue}")
    assert second not in (None, first)
    assert len(sandbox.pulls()) == 1


# --------------------------------------------------------------------------- review


@pytest.mark.parametrize("pr_known", [True, False], ids=["K3SC_PR given", "found from the branch"])
def test_review_posts_the_review_heading_on_the_pull_request(sandbox: Sandbox, pr_known: bool) -> None:
    issue = sandbox.issue("stub: ok")
    sandbox.run(issue)
    pr = pull_number(sandbox.pulls()[0])
    run = sandbox.run(issue, kind=Kind.REVIEW, agent="claude-c", pr=pr if pr_known else None)
    assert verdict(run) == (0, Verdict.SUCCESS_CLAIMED)
    comments = sandbox.fake.issue_view(REPO.owner, REPO.name, pr)["comments"]
    assert [(c["author"], c["body"].splitlines()[0]) for c in comments] == [("k3sc", "## Review by claude-c")]


def test_review_without_a_pull_request_fails(sandbox: Sandbox) -> None:
    run = sandbox.run(sandbox.issue("stub: ok"), kind=Kind.REVIEW, agent="claude-c")
    assert verdict(run) == (1, Verdict.AGENT_FAILED)
    assert "no open pull request from issue-1 to review" in run.state[2]


# --------------------------------------------------------------------------- directive modes


@pytest.mark.parametrize(
    ("body", "kind", "attempt", "exit_code", "expected", "pushed"),
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
def test_directive_modes(
    sandbox: Sandbox, body: str, kind: Kind, attempt: int, exit_code: int, expected: Verdict, pushed: bool
) -> None:
    issue = sandbox.issue(body)
    run = sandbox.run(issue, kind=kind, attempt=attempt)
    assert verdict(run) == (exit_code, expected), run.state
    assert (sandbox.remote_sha(f"issue-{issue}") is not None) is pushed
    assert bool(sandbox.pulls()) is pushed


def test_usage_limit_mode_prints_the_weekly_limit_shape_and_exits_0(sandbox: Sandbox) -> None:
    before = datetime.now(UTC)
    run = sandbox.run(sandbox.issue("stub: usage-limit"))
    # A limit exits 0 and says `success`; the run still ends Parked, carrying the limit.
    hit = limit_hit(run)
    assert (verdict(run), hit.family, hit.window) == ((0, Verdict.USAGE_LIMIT), "claude", Window.WEEKLY)
    # "resets 5am" in the clock's zone: the next 5am, plus the margin for a rounded time.
    assert hit.resets_at is not None and before < hit.resets_at <= before + timedelta(days=1, minutes=5)
    assert "[result] success is_error turns=1" in "\n".join(run.lines)
    assert "[error] api error: Weekly limit reached ∙ resets 5am" in run.lines


def test_a_short_usage_limit_resets_at_the_first_hit_plus_its_seconds(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: usage-limit=3600")
    first = sandbox.run(issue, agent="claude-a")
    (mark,) = [c for c in sandbox.fake.issue_view(REPO.owner, REPO.name, issue)["comments"]
               if c["body"].startswith(stub_agent.LIMIT_MARK)]  # fmt: skip
    hit = mark["created_at"].replace(microsecond=0)  # GitHub renders whole seconds
    assert (verdict(first)[1], limit_hit(first).resets_at) == (Verdict.USAGE_LIMIT, hit + timedelta(hours=1))
    # Another Claude agent later meets the same account's limit, with the same reset; no new mark.
    second = sandbox.run(issue, agent="claude-c", attempt=2)
    assert (verdict(second)[1], limit_hit(second).resets_at) == (
        Verdict.USAGE_LIMIT,
        limit_hit(first).resets_at,
    )
    marks = [c for c in sandbox.fake.issue_view(REPO.owner, REPO.name, issue)["comments"]
             if c["body"].startswith(stub_agent.LIMIT_MARK)]  # fmt: skip
    assert len(marks) == 1
    assert sandbox.remote_sha(f"issue-{issue}") is None


def test_a_codex_agent_is_not_held_by_a_claude_usage_limit(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: usage-limit=3600")
    run = sandbox.run(issue, agent="codex-a")
    assert verdict(run) == (0, Verdict.SUCCESS_CLAIMED)
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


def test_budget_mode_streams_its_tokens_then_finishes(sandbox: Sandbox) -> None:
    issue = sandbox.issue("stub: budget=10000")
    run = sandbox.run(issue)
    assert verdict(run) == (0, Verdict.SUCCESS_CLAIMED)
    used = run.usage.usage
    assert used is not None and used.turns is not None
    # The first message (2,600 tokens) counts too: 8 messages of 1,000 pass 10,000.
    budget_messages = [line for line in run.lines if line.startswith("Still working")]
    assert len(budget_messages) == 8
    ordinary = sum(stub_agent.MESSAGE_USAGE.values())
    assert used.total_tokens == 8 * 1000 + ordinary * (used.turns - 8)


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
