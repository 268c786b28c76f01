"""One agent run: one attempt of one agent (`claude-b`) at one issue, implementing or reviewing.

Deployment `k3sc-agent`. The run prepares the agent's workspace on the issue branch, runs
the agent CLI with the prompt for its kind, and relays every output line into this run's
Prefect log (secrets redacted) so the UI and `k3sc logs` show what the agent does. It never
writes workflow labels: the dispatcher verifies the outcome on GitHub and moves the issue.
The final state says how the process ended. A usage-limit hit (even one the CLI reports as
exit 0 with `subtype: success`) ends FAILED with state name `Parked` and a `LimitHit` message, so
the dispatcher parks the family instead of counting a failure (see `k3sc.usage`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.client.schemas.objects import State
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from k3sc import slots, usage
from k3sc.agent import gh_guard, meter, process, prompts, streams
from k3sc.config import BudgetConfig
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.orchestration import events
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
        # Never the dispatcher's installation token: with an App, one minted for this run alone.
        github_token = await agent_steps.agent_github_token(svc, target)
        token = github_token.get_secret_value() if github_token else None
        workspace = await agent_steps.prepare_workspace(svc, target, agent, issue, github_token)
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
            # Only the gh subcommands safety.gh_allowed names run, git keeps its hooks, and on
            # Linux the agent sees its workspace and little else (config agent.sandbox).
            confinement = await agent_steps.confine_agent(config, target, workspace, env.get("PATH", ""))
            env["PATH"] = gh_guard.guarded_path(confinement.guards.directory, env.get("PATH", ""))
            billing = usage.billing_of({name for name in env if prompts.belongs(name, family)})
            reader = streams.StreamReader()
            budget_meter = meter_for(reader, billing, config.budget)
            started = datetime.now(UTC)

            def relay(line: str) -> None:
                shown = reader.feed(line)
                if shown:
                    log.info(shown)
                if (stop := budget_meter.observe(line)) is not None:
                    log.warning("%s; interrupting the agent", stop.encode().partition(" | ")[0])

            result = await process.run(
                confinement.command(prompts.command_for(family, prompt, config.agent.command)),
                cwd=workspace.path,
                env=env,
                timeout=config.agent.timeout.total_seconds(),
                on_line=relay,
                secrets=prompts.secret_values(env),
                stop=budget_meter.stop,
                interrupt_grace=config.budget.interrupt_grace.total_seconds(),
                spare_leader=confinement.sandboxed,
            )
    # Local time: a reset given without a zone ("resets 5am") is in the CLI's zone, i.e. this machine's.
    summary = reader.summary(
        exit_code=result.exit_code, timed_out=result.timed_out, now=datetime.now(UTC).astimezone()
    )
    for detail in summary.security_events:
        log.warning("%s%s", streams.SECURITY_MARKER, detail)
        report_security(
            events.security_blocked(
                str(flow_run.id), target.full_name, issue, job.value, agent, attempt, detail
            )
        )
    record = usage.UsageRecord(
        repo=target.full_name,
        issue=issue,
        kind=job.value,
        agent=agent,
        attempt=attempt,
        billing=billing,
        started=started,
        duration_s=result.duration_s,
        verdict=streams.Verdict.BUDGET_STOPPED.value if budget_meter.stopped_by else summary.verdict.value,
        exit_code=result.exit_code,
        usage=summary.usage,
    )
    await publish_usage(record)
    return final_state(
        result,
        summary,
        config.agent.timeout.total_seconds(),
        family=family.value,
        budget=budget_meter.stopped_by,
    )


def meter_for(
    reader: streams.StreamReader, billing: usage.Billing, budget: BudgetConfig
) -> meter.BudgetMeter:
    """The run's budget meter, with the caps from config `budget`."""
    caps = usage.Caps.of(budget)
    return meter.BudgetMeter(reader, billing, caps)


def final_state(
    result: process.ProcessResult,
    summary: streams.StreamSummary,
    timeout: float,
    *,
    family: str,
    budget: usage.BudgetStop | None = None,
) -> State[Any]:
    """Map how the process ended to the run's state; the message is what the hand-off reports."""
    took = f"{result.duration_s:.1f}s"
    if budget is not None:
        # k3sc interrupted it: a failure by policy, never retried automatically.
        return Failed(name=usage.BUDGET_STOPPED, message=budget.encode())
    if result.timed_out:
        return Failed(message=f"timed out after {timeout:.0f}s")
    if (hit := summary.limit_hit(family)) is not None:
        # Whatever the exit code: the CLI exits 0 on a limit, and the work simply did not happen.
        return Failed(name=usage.PARKED, message=hit.encode())
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


def report_security(event: dict[str, Any]) -> None:
    """Emit a guard's refusal as a Prefect event (`k3sc top`'s security section reads these)."""
    emit_event(
        event=event["event"],
        resource=event["resource"],
        related=event["related"],
        payload=event["payload"],
        occurred=datetime.fromisoformat(event["occurred"]),
        id=UUID(event["id"]),
    )


async def publish_usage(record: usage.UsageRecord) -> None:
    """The run's usage as a one-row table artifact (the cost ledger's source; `k3sc.usage`)."""
    await acreate_table_artifact(
        table=[record.usage_row()], key=usage.USAGE_ARTIFACT_KEY, description="agent usage for this attempt"
    )
