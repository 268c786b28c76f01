"""The agent's prompt, command line and environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from k3sc.agent import prompts
from k3sc.errors import AgentError
from k3sc.labels import Family, Kind
from k3sc.models import Repo

REPO = Repo("acme", "api")
KNOWN = re.compile(r"\{(repo|issue|pr|pr_ref|agent|branch|base)\}")


def render(
    kind: Kind, *, pr: int | None = None, override: Path | None = None, agent: str = "claude-b"
) -> str:
    return prompts.render(
        kind, repo=REPO, issue=7, pr=pr, agent=agent, branch="issue-7", base="dev", override=override
    )


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    "phrase",
    [
        "You are **claude-b**",
        "issue #7",
        "repository acme/api",
        "already claimed for you",
        "**Do not touch labels**",
        "`issue-7` is already checked out",
        "made from `dev`",
        "must not contain `closes #N`, `fixes #N` or `resolves #N`",
        "git push -u origin issue-7",
        "gh pr create --base dev --head issue-7",
        "   ## claude-b\n   - Changed:",
        "`origin/issue-7` exists and a pull request from it",
    ],
)
def test_implement_prompt_says(phrase: str) -> None:
    assert phrase in render(Kind.IMPLEMENT)


@pytest.mark.parametrize(
    "phrase",
    [
        "You are **codex-a**",
        "Review pull request #12",
        "implements issue #7",
        "**Do not touch\n  labels**",
        "**must begin with the line\n   `## Review by codex-a`**",
        "   ## Review by codex-a\n",
        "Verdict: ready to merge",
        "Verdict: needs work",
        "Run the project's tests",
    ],
)
def test_review_prompt_says(phrase: str) -> None:
    assert phrase in render(Kind.REVIEW, pr=12, agent="codex-a")


@pytest.mark.parametrize("kind", list(Kind))
def test_packaged_templates_leave_no_placeholder_behind(kind: Kind) -> None:
    assert KNOWN.findall(render(kind, pr=None)) == []


def test_review_without_a_pr_number_names_the_branch() -> None:
    assert "Review the open pull request from branch issue-7 in the" in render(Kind.REVIEW, pr=None)


def test_override_replaces_only_known_placeholders(tmp_path: Path) -> None:
    template = tmp_path / "mine.md"
    template.write_text(
        "Do {repo}#{issue} ({pr}) as {agent} on {branch} from {base}.\n"
        '```json\n{"keep": {"nested": 1}}\n```\n'
        "```sh\necho ${HOME} $repo {unknown} {{issue}}\n```\n"
    )
    assert render(Kind.IMPLEMENT, pr=3, override=template) == (
        "Do acme/api#7 (3) as claude-b on issue-7 from dev.\n"
        '```json\n{"keep": {"nested": 1}}\n```\n'
        "```sh\necho ${HOME} $repo {unknown} {7}\n```\n"
    )


def test_a_missing_override_names_the_file_and_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "review.md"
    with pytest.raises(
        AgentError, match=rf"{re.escape(str(missing))} \(agent.prompts.review\) cannot be read"
    ):
        render(Kind.REVIEW, override=missing)


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("family", "command", "expected"),
    [
        pytest.param(
            Family.CLAUDE,
            None,
            [
                "claude",
                "--dangerously-skip-permissions",
                "-p",
                "PROMPT",
                "--output-format",
                "stream-json",
                "--verbose",
            ],
            id="claude default",
        ),
        pytest.param(
            Family.CODEX,
            None,
            ["codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "PROMPT"],
            id="codex default",
        ),
        pytest.param(
            Family.CLAUDE,
            ("python", "-m", "k3sc.sandbox.stub_agent"),
            ["python", "-m", "k3sc.sandbox.stub_agent"],
            id="configured command without {prompt} gets it only from the env",
        ),
        pytest.param(
            Family.CODEX,
            ("my-agent", "--task={prompt}", "{prompt}", "{prompts}"),
            ["my-agent", "--task=PROMPT", "PROMPT", "{prompts}"],
            id="configured command with {prompt} inside arguments",
        ),
    ],
)
def test_command_for(family: Family, command: tuple[str, ...] | None, expected: list[str]) -> None:
    assert prompts.command_for(family, "PROMPT", command) == expected


# --------------------------------------------------------------------------- environment

PARENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/k3sc",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp/k3sc",
    "HTTPS_PROXY": "http://proxy:3128",
    # None of these may reach the agent:
    "PREFECT_API_URL": "http://prefect:4200/api",
    "PREFECT_API_KEY": "pnu_secret",
    "GITHUB_TOKEN": "token-of-the-orchestrator",
    "AWS_SECRET_ACCESS_KEY": "orchestrator-aws-secret",
    "OPENAI_API_KEY": "orchestrator-openai",
    "DATABASE_URL": "postgres://secret",
    "K3SC_CONFIG": "/etc/k3sc.yaml",
}
FAMILY_SECRETS = {
    "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat-1",
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "AWS_REGION": "eu-west-1",
    "AWS_SECRET_ACCESS_KEY": "run-aws-secret",
    "OPENAI_API_KEY": "sk-openai",
    "CODEX_AUTH_JSON": '{"tokens": {}}',
    "UNRELATED_SECRET": "dropped",
}


def env_for(
    family: Family,
    *,
    github_url: str = "https://github.com",
    token: str | None = "ghs_run_token",
    pr: int | None = None,
) -> dict[str, str]:
    return prompts.agent_env(
        family=family,
        repo=REPO,
        issue=7,
        kind=Kind.REVIEW if pr else Kind.IMPLEMENT,
        pr=pr,
        agent=f"{family.value}-b",
        branch="issue-7",
        base="dev",
        workspace=Path("/ws/acme-api-claude-b"),
        attempt=2,
        prompt="the prompt",
        github_api_url="https://api.github.com",
        github_url=github_url,
        token=token,
        family_secrets=FAMILY_SECRETS,
        extra={"CLAUDE_MODEL": "opus"},
        inherit=PARENT,
    )


BASE_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/k3sc",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TMPDIR": "/tmp/k3sc",
    "HTTPS_PROXY": "http://proxy:3128",
    "K3SC_REPO": "acme/api",
    "K3SC_ISSUE": "7",
    "K3SC_KIND": "implement",
    "K3SC_PR": "",
    "K3SC_BRANCH": "issue-7",
    "K3SC_BASE": "dev",
    "K3SC_WORKSPACE": "/ws/acme-api-claude-b",
    "K3SC_ATTEMPT": "2",
    "K3SC_PROMPT": "the prompt",
    "K3SC_GITHUB_API_URL": "https://api.github.com",
    "GIT_TERMINAL_PROMPT": "0",
    "GH_PROMPT_DISABLED": "1",
    "GH_NO_UPDATE_NOTIFIER": "1",
    "GH_REPO": "acme/api",
    "GITHUB_TOKEN": "ghs_run_token",
    "GH_TOKEN": "ghs_run_token",
    "CLAUDE_MODEL": "opus",
}


def test_claude_gets_claude_credentials_and_the_basics_only() -> None:
    assert env_for(Family.CLAUDE) == {
        **BASE_ENV,
        "K3SC_AGENT": "claude-b",
        "K3SC_FAMILY": "claude",
        "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat-1",
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AWS_REGION": "eu-west-1",
        "AWS_SECRET_ACCESS_KEY": "run-aws-secret",
    }


def test_codex_gets_codex_credentials_and_the_basics_only() -> None:
    assert env_for(Family.CODEX) == {
        **BASE_ENV,
        "K3SC_AGENT": "codex-b",
        "K3SC_FAMILY": "codex",
        "OPENAI_API_KEY": "sk-openai",
        "CODEX_AUTH_JSON": '{"tokens": {}}',
    }


def test_github_enterprise_gets_gh_host_and_enterprise_token() -> None:
    env = env_for(Family.CLAUDE, github_url="https://ghe.example.com", pr=12)
    assert {
        k: env[k]
        for k in ("GH_HOST", "GH_ENTERPRISE_TOKEN", "GH_TOKEN", "GITHUB_TOKEN", "GH_REPO", "K3SC_PR")
    } == {
        "GH_HOST": "ghe.example.com",
        "GH_ENTERPRISE_TOKEN": "ghs_run_token",
        "GH_TOKEN": "ghs_run_token",
        "GITHUB_TOKEN": "ghs_run_token",
        "GH_REPO": "ghe.example.com/acme/api",
        "K3SC_PR": "12",
    }


def test_without_a_token_the_orchestrators_token_does_not_leak_in() -> None:
    env = env_for(Family.CLAUDE, token=None)
    assert not {"GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN"} & env.keys()


def test_secret_values_are_the_credentials_not_the_settings() -> None:
    assert sorted(prompts.secret_values(env_for(Family.CLAUDE))) == sorted(
        ["ghs_run_token", "ghs_run_token", "sk-ant-oat-1", "run-aws-secret"]
    )
