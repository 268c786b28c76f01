"""The agent sandbox for real: bubblewrap around commands in a prepared workspace.

Each escape the issue names is tried from inside and must fail: reading k3sc's home or another
agent's workspace, running the real gh by its absolute path, skipping the git hooks. Then the
stub agent's whole loop (clone, commit, push to the bare remote, open the PR on the loopback
fake GitHub) and a budget stop run inside it. Skipped, with the reason, where there is no
Linux bubblewrap that can start a sandbox.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from k3sc.agent import confine, meter, process, prompts, streams, workspace
from k3sc.agent.gh_guard import guarded_path
from k3sc.config import SafetyConfig
from k3sc.labels import Family, Kind
from k3sc.models import Repo
from k3sc.usage import Billing, Caps
from tests.fixtures.github import FAKE_GITHUB_TOKEN, ContractCheckedFakeGitHub

BWRAP = shutil.which("bwrap")
_WHY = (
    f"bubblewrap exists only on Linux (this is {sys.platform})"
    if not sys.platform.startswith("linux")
    else "bwrap is not installed (apt-get install bubblewrap)"
    if BWRAP is None
    else confine.probe(BWRAP)
)
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"no agent sandbox here: {_WHY}")

REPO = Repo("acme", "api")
GIT_ISOLATION = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
HANG_GUARD_S = 120


@dataclass
class Jail:
    """A home with k3sc's state, two agents' workspaces, a real-looking gh, and the fake GitHub."""

    home: Path
    k3sc_home: Path
    root: Path
    fake: ContractCheckedFakeGitHub
    remote: Path
    fake_gh_bin: Path

    async def prepare(self, agent: str, issue: int) -> workspace.Workspace:
        return await workspace.prepare(
            root=self.root,
            repo=REPO,
            agent=agent,
            issue=issue,
            clone_url=str(self.remote),
            branch=f"issue-{issue}",
            default_branch=None,
            blocked_words=("fixes", "closes", "resolves"),
            token=FAKE_GITHUB_TOKEN,
            log=lambda _: None,
        )

    async def run(
        self,
        ws: workspace.Workspace,
        argv: list[str],
        *,
        issue: int = 1,
        caps: Caps | None = None,
    ) -> tuple[process.ProcessResult, list[str], meter.BudgetMeter]:
        base_path = f"{self.fake_gh_bin}{os.pathsep}{os.environ['PATH']}"
        guards = confine.install_guards(ws.path, SafetyConfig().gh_allowed, base_path, sandboxed=True)
        env = prompts.agent_env(
            family=Family.CLAUDE,
            repo=REPO,
            issue=issue,
            kind=Kind.IMPLEMENT,
            pr=None,
            agent="claude-a",
            branch=ws.branch,
            base=ws.base,
            workspace=ws.path,
            attempt=1,
            prompt="p",
            github_api_url=self.fake.url,
            github_url=self.fake.url,
            token=FAKE_GITHUB_TOKEN,
            extra={**GIT_ISOLATION, "HOME": str(self.home)},
            inherit={"PATH": guarded_path(guards.directory, base_path)},
        )
        layout = confine.layout(
            ws.path,
            home=self.home,
            k3sc_home=self.k3sc_home,
            workspace_root=self.root,
            secret_files=[self.home / ".k3sc.yaml"],
            writable=[self.remote],
            guards=guards,
            program=argv,
        )
        assert BWRAP is not None
        lines: list[str] = []
        reader = streams.StreamReader()
        budget = meter.BudgetMeter(reader, Billing.SUBSCRIPTION, caps or Caps())

        def on_line(line: str) -> None:
            lines.append(line)
            reader.feed(line)
            budget.observe(line)

        result = await asyncio.wait_for(
            process.run(
                confine.command(argv, BWRAP, layout),
                cwd=ws.path,
                env=env,
                timeout=60,
                on_line=on_line,
                stop=budget.stop,
                # Bounded: SIGTERM 3 s after the interrupt, SIGKILL 1 s later, whatever the agent does.
                interrupt_grace=3,
                grace=1,
                spare_leader=True,
            ),
            HANG_GUARD_S,
        )
        return result, lines, budget


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A scratch directory outside /tmp: the sandbox gives the agent a private /tmp, so a home
    under /tmp would vanish inside it instead of showing what a real home shows."""
    path = Path(tempfile.mkdtemp(prefix="k3sc-sandbox-test-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def jail(fake_github: ContractCheckedFakeGitHub, outside_tmp: Path) -> Jail:
    tmp_path = outside_tmp
    home = tmp_path / "home"
    k3sc_home = home / ".k3sc"
    (k3sc_home / "prefect").mkdir(parents=True)
    (k3sc_home / "prefect" / "prefect.db").write_text("blocks and their key")
    for private in (home / ".ssh" / "id_ed25519", home / ".config" / "gh" / "hosts.yml"):
        private.parent.mkdir(parents=True)
        private.write_text("private")
    (home / ".k3sc.yaml").write_text("github_app: {private_key: secret}")
    fake_gh_bin = tmp_path / "gh-bin"
    fake_gh_bin.mkdir()
    (fake_gh_bin / "gh").write_text('#!/bin/sh\necho "REAL GH RAN: $*"\n')
    (fake_gh_bin / "gh").chmod(0o755)
    remote = fake_github.add_repo(REPO.owner, REPO.name)
    return Jail(home, k3sc_home, k3sc_home / "workspaces", fake_github, remote, fake_gh_bin)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


async def test_k3scs_home_and_other_workspaces_and_credentials_are_not_visible(jail: Jail) -> None:
    other = await jail.prepare("claude-b", 2)
    (other.path / "their-work.txt").write_text("not yours")
    other.release()
    mine = await jail.prepare("claude-a", 1)
    with mine:
        result, lines, _ = await jail.run(
            mine,
            sh(
                f"cat {jail.k3sc_home}/prefect/prefect.db; ls -A {jail.k3sc_home}/prefect;"
                f" cat {other.path}/their-work.txt; ls -A {jail.root};"
                f" cat {jail.home}/.ssh/id_ed25519 {jail.home}/.config/gh/hosts.yml; (cat {jail.home}/.k3sc.yaml 2>/dev/null || echo config-unreadable);"
                " echo done"
            ),
        )
    out = "\n".join(lines)
    assert result.exit_code == 0, out
    assert "blocks and their key" not in out
    assert "not yours" not in out
    assert "private" not in out
    assert "github_app" not in out
    # Only this agent's workspace is left in the workspace root (its lock files are hidden too).
    assert mine.path.name in lines and other.path.name not in lines
    assert lines[-2:] == ["config-unreadable", "done"]


async def test_the_workspace_is_writable_and_the_rest_read_only(jail: Jail) -> None:
    with await jail.prepare("claude-a", 1) as mine:
        result, lines, _ = await jail.run(
            mine,
            sh(
                "echo hi > made-here.txt && echo wrote-workspace;"
                f" (echo x > {jail.home}/outside.txt) 2>/dev/null || echo home-read-only;"
                " rm -f .git/hooks/commit-msg 2>/dev/null || echo hooks-read-only;"
                " (echo x > .git/k3sc-bin/gh) 2>/dev/null || echo wrappers-read-only;"
                " echo x > /tmp/scratch && echo private-tmp"
            ),
        )
        assert (mine.path / "made-here.txt").read_text() == "hi\n"
    assert lines == [
        "wrote-workspace",
        "home-read-only",
        "hooks-read-only",
        "wrappers-read-only",
        "private-tmp",
    ]
    assert not (jail.home / "outside.txt").exists()
    assert result.exit_code == 0


async def test_gh_by_its_absolute_path_is_still_the_allowlist(jail: Jail) -> None:
    real = jail.fake_gh_bin / "gh"
    with await jail.prepare("claude-a", 1) as mine:
        _, lines, _ = await jail.run(mine, sh(f"{real} pr merge 5 --admin 2>&1; gh pr view 5 2>&1"))
    assert lines == [
        "[security] gh pr merge blocked (allowed: create,view,list,diff,checks,comment)",
        # An allowed call reaches the real gh through the wrapper.
        "REAL GH RAN: pr view 5",
    ]


REAL_GIT = os.path.realpath(shutil.which("git") or "/usr/bin/git")


async def test_the_hooks_cannot_be_skipped_by_any_path_to_git(jail: Jail) -> None:
    real_git = REAL_GIT
    with await jail.prepare("claude-a", 1) as mine:
        (mine.path / "x.txt").write_text("x")
        result, lines, _ = await jail.run(
            mine,
            sh(
                "git add x.txt;"
                f" {real_git} commit --no-verify -qm 'closes #1' 2>&1;"
                f" $({real_git} --exec-path)/git-commit -n -qm 'closes #1' 2>&1;"
                f" {real_git} -c core.hooksPath=/dev/null commit -qm 'closes #1' 2>&1;"
                f" {real_git} config core.hooksPath /dev/null; {real_git} commit -qm 'closes #1' 2>&1;"
                f" {real_git} push --no-verify origin HEAD:main 2>&1;"
                f" {real_git} commit -qm 'honest work' && echo committed"
            ),
        )
    assert result.exit_code == 0, lines
    assert lines == [
        "[security] git commit --no-verify blocked (hooks always run)",
        "[security] git commit -n blocked (hooks always run)",
        "[security] git -c core.hookspath blocked (hooks and aliases are fixed by k3sc)",
        "[security] commit blocked: message contains fixes|closes|resolves #N (auto-closes issues)",
        "[security] git push --no-verify blocked (hooks always run)",
        "committed",
    ]


async def test_the_agent_sees_only_its_own_processes(jail: Jail) -> None:
    with await jail.prepare("claude-a", 1) as mine:
        _, lines, _ = await jail.run(
            mine, sh(f"test -e /proc/{os.getpid()}/environ && echo visible || echo hidden")
        )
    assert lines == ["hidden"]


async def test_the_stub_agents_loop_works_inside_the_sandbox(jail: Jail) -> None:
    issue = jail.fake.add_issue(REPO.owner, REPO.name, title="sandboxed", author="alice", body="stub: ok")
    with await jail.prepare("claude-a", issue) as mine:
        result, lines, _ = await jail.run(
            mine, [sys.executable, "-m", "k3sc.sandbox.stub_agent"], issue=issue
        )
    assert result.exit_code == 0, "\n".join(lines[-10:])
    assert any(f"pull #{issue + 1} opened from issue-{issue}" in entry for entry in jail.fake.write_log)
    pushed = await asyncio.create_subprocess_exec(
        "git", "--git-dir", str(jail.remote), "rev-parse", "--verify", "--quiet", f"refs/heads/issue-{issue}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await pushed.communicate()
    assert out.strip()


async def test_a_budget_stop_reaches_the_agent_inside_the_sandbox(jail: Jail) -> None:
    issue = jail.fake.add_issue(
        REPO.owner, REPO.name, title="spend", author="alice", body="stub: budget=60000"
    )
    with await jail.prepare("claude-a", issue) as mine:
        result, lines, budget = await jail.run(
            mine,
            [sys.executable, "-m", "k3sc.sandbox.stub_agent"],
            issue=issue,
            caps=Caps(per_run_tokens=10_000),
        )
        ended = time.monotonic()
    assert budget.crossed_at is not None
    latency = ended - budget.crossed_at
    print(f"sandboxed budget stop: {latency:.3f}s after crossing")
    assert latency < 5.0
    # The interrupt reached the agent (not only bwrap): it wrapped up like Claude and exited 130.
    assert (result.stopped, result.exit_code) == (True, 130), lines[-3:]
    assert '"terminal_reason": "aborted_streaming"' in lines[-1]
