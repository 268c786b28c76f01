"""One agent run: one attempt of one agent (`claude-b`) at one issue, implementing or reviewing.

Deployment `k3sc-agent`. The run prepares the agent's workspace on the issue branch, runs
the agent CLI with the prompt for its kind, and relays every output line into this run's
Prefect log (secrets redacted) so the UI and `k3sc logs` show what the agent does. It never
writes workflow labels: the dispatcher verifies the outcome on GitHub and moves the issue.
The final state says how the process ended; "usage limit" is a failure even when the CLI
exits 0 with `subtype: success`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from k3sc import slots
from k3sc.agent import gh_guard, process, prompts, streams
from k3sc.labels import Kind
from k3sc.models import Repo
from tasks import agent_steps
from tasks.context import agent_secrets, services


@flow(name="k3sc-agent", log_prints=False, retries=0)
async def agent(
    repo: str, issue: int, kind: str, agent: str, attempt: int, pr: int | None = None
) -> State[Any]:
    """Implement (or review) `repo#issue` as `agent`; the hand-off judges the result on GitHub."""
    log = get_run_logger()
    target, job = Repo.parse(repo), Kind(kind)
    family = slots.family_of(agent)
    log.info(
        "%s#%s %s by %s, attempt %s%s", target, issue, job.value, agent, attempt, f", PR #{pr}" if pr else ""
    )
    async with services() as svc:
        config = svc.config
        token = svc.github_token.get_secret_value() if svc.github_token else None
        workspace = await agent_steps.prepare_workspace(svc, target, agent, issue)
        with workspace:  # holds the per-(repo, agent) clone lock until the agent is done
            prompt = prompts.render(
                job,
                repo=target,
                issue=issue,
                pr=pr,
                agent=agent,
                branch=workspace.branch,
                base=workspace.base,
                override=config.agent.prompts.implement
                if job is Kind.IMPLEMENT
                else config.agent.prompts.review,
            )
            env = prompts.agent_env(
                repo=target,
                issue=issue,
                kind=job,
                pr=pr,
                agent=agent,
                attempt=attempt,
                branch=workspace.branch,
                base=workspace.base,
                workspace=workspace.path,
                prompt=prompt,
                github_api_url=config.github_api_url,
                github_url=config.github_url,
                token=token,
                family=family,
                family_secrets=await agent_secrets(),
            )
            # Only the gh subcommands safety.gh_allowed names run (reference §4.3).
            guard = await asyncio.to_thread(
                gh_guard.install, workspace.path, config.safety.gh_allowed, env.get("PATH", "")
            )
            env["PATH"] = gh_guard.guarded_path(guard, env.get("PATH", ""))
            reader = streams.StreamReader()
            started = datetime.now(UTC)

            def relay(line: str) -> None:
                shown = reader.feed(line)
                if shown:
                    log.info(shown)

            result = await process.run(
                prompts.command_for(family, prompt, config.agent.command),
                cwd=workspace.path,
                env=env,
                timeout=config.agent.timeout.total_seconds(),
                on_line=relay,
                secrets=prompts.secret_values(env),
            )
    summary = reader.summary(exit_code=result.exit_code, timed_out=result.timed_out, now=datetime.now(UTC))
    await publish_usage(summary, result, started)
    return final_state(result, summary, config.agent.timeout.total_seconds())


def final_state(result: process.ProcessResult, summary: streams.StreamSummary, timeout: float) -> State[Any]:
    """Map how the process ended to the run's state; the message is what the hand-off reports."""
    took = f"{result.duration_s:.1f}s"
    if result.timed_out:
        return Failed(message=f"timed out after {timeout:.0f}s")
    if summary.verdict is streams.Verdict.USAGE_LIMIT:
        resets = f" (resets {summary.resets_at:%Y-%m-%d %H:%M %Z})" if summary.resets_at else ""
        return Failed(message=f"usage limit: {summary.reason}{resets}")
    if result.exit_code != 0:
        return Failed(
            message=f"exit code {result.exit_code} after {took}: {summary.reason or 'agent failed'}"
        )
    if summary.verdict in (
        streams.Verdict.AUTH,
        streams.Verdict.AGENT_FAILED,
        streams.Verdict.BUDGET_STOPPED,
    ):
        return Failed(message=f"{summary.verdict.value}: {summary.reason} (exit 0 after {took})")
    return Completed(message=f"exit 0 after {took}")


async def publish_usage(
    summary: streams.StreamSummary, result: process.ProcessResult, started: datetime
) -> None:
    """Token usage and cost as a table artifact on the run (the cost ledger's source)."""
    usage = summary.usage
    row: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(result.duration_s, 1),
        "exit_code": result.exit_code,
        "verdict": summary.verdict.value,
    }
    if usage is not None:
        row.update(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            total_tokens=usage.total_tokens,
            cost_usd=usage.cost_usd,
            models=", ".join(usage.models),
        )
    await acreate_table_artifact(
        table=[row], key="k3sc-agent-usage", description="agent usage for this attempt"
    )
