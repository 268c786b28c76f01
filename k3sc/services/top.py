"""What `k3sc top` reads, one source at a time, and the actions its keys take.

Each read is its own coroutine so the dashboard can load them in separate workers on their own
cadence (Prefect every few seconds, GitHub every 30 s) and show a failure next to the section it
feeds. The reads reuse the records the dispatcher and the fleet commands read (`controls`,
`dispatch_state`, `runs`, the usage artifacts); the actions are the CLI's own services.
Usage is read incrementally: after the first pass only artifacts newer than the last one seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from k3sc import names, retrying, runlogs, usage
from k3sc.config import Config
from k3sc.models import AgentRun, Issue, Pull, Repo, RunPhase
from k3sc.orchestration import controls, dispatch_state, events, ledger, runs
from k3sc.orchestration.api import PrefectAPI
from k3sc.orchestration.records import LogRecord
from k3sc.services import dispatch, fleet, steering

DISPATCH_ARTIFACT = "k3sc-dispatch"  # the dispatcher's scan summary (flows/dispatch.py `publish`)

RECENT_RUNS = 40  # finished runs shown beside the active ones
SECURITY_WINDOW = timedelta(hours=24)
# A dashboard asks again in a few seconds anyway: under a minute of retries (the CLI's patience)
# a dead server would leave every section silent; this one gives up within about a second.
PATIENCE = retrying.Policy(attempts=3, initial=0.25, maximum=1.0)


@dataclass(frozen=True)
class FleetFacts:
    """The operator's records and the dispatcher's memory."""

    controls: controls.Controls
    memory: dispatch_state.DispatchState


@dataclass(frozen=True)
class RunFacts:
    """Active and recent agent runs, with each running run's last log line."""

    runs: tuple[AgentRun, ...]
    last_lines: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageEntry:
    """One usage artifact: the run it belongs to, when it was written, and what it says."""

    artifact_id: str
    run_id: str | None
    created: datetime
    record: usage.UsageRecord


@dataclass(frozen=True)
class ScanFacts:
    """The dispatcher's last scan summary (markdown), or nothing if no scan has run."""

    markdown: str = ""
    created: datetime | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class GitHubFacts:
    """Workflow issues and open PRs of the configured repos, and what reading them cost."""

    issues: tuple[Issue, ...]
    pulls: tuple[Pull, ...]
    failures: tuple[str, ...] = ()
    requests: int = 0
    not_modified: int = 0
    remaining: int | None = None


@dataclass(frozen=True)
class SecurityEvent:
    """A guard's refusal in an agent run (a `k3sc.security.blocked` event)."""

    run_id: str
    at: datetime
    text: str


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: int
    text: str


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class Live:
    """The real sources: the Prefect server k3sc knows (`PrefectAPI.from_env`) and GitHub."""

    def __init__(self, config: Config, max_slots_source: str = "config") -> None:
        self.config = config
        self.max_slots_source = max_slots_source
        self._usage: dict[str, UsageEntry] = {}
        self._usage_seen: datetime | None = None
        self._last_lines: dict[str, str] = {}  # running run → its newest log line ("" if none yet)

    def _api(self) -> PrefectAPI:
        return PrefectAPI.from_env(retry=PATIENCE, timeout=10.0)

    # ------------------------------------------------------------------ reads

    async def fleet(self) -> FleetFacts:
        async with self._api() as api:
            held, memory = await asyncio.gather(controls.read(api), dispatch_state.load(api))
        return FleetFacts(held, memory)

    async def runs(self) -> RunFacts:
        async with self._api() as api:
            pending, recent = await asyncio.gather(
                runs.pending_runs(api),
                api.flow_runs(tags_all=[names.TAG_AGENT_RUN], limit=RECENT_RUNS),
            )
            found = {r.id: r for r in pending}
            for flow_run in recent:
                if flow_run.id not in found and (run := runs.to_agent_run(flow_run)) is not None:
                    found[run.id] = run
            running = [r.id for r in found.values() if r.phase is RunPhase.RUNNING]
            self._last_lines = await last_lines(api, running, self._last_lines)
        return RunFacts(tuple(found.values()), {k: v for k, v in self._last_lines.items() if v})

    async def usage(self) -> tuple[UsageEntry, ...]:
        """Every usage artifact; after the first call, one request for what is new since the last."""
        async with self._api() as api:
            # A small overlap, because artifacts written in the same instant may arrive out of order.
            since = self._usage_seen - timedelta(seconds=30) if self._usage_seen else None
            for entry in await usage_entries(api, since):
                self._usage[entry.artifact_id] = entry
        if self._usage:
            self._usage_seen = max(e.created for e in self._usage.values())
        return tuple(sorted(self._usage.values(), key=lambda e: e.created))

    async def scan(self) -> ScanFacts:
        async with self._api() as api:
            body = {"artifacts": {"key": {"any_": [DISPATCH_ARTIFACT]}}, "sort": "CREATED_DESC", "limit": 1}
            found = (await api.post_json("artifacts/filter", body)) or []
        if not found:
            return ScanFacts()
        latest = found[0]
        return ScanFacts(str(latest.get("data") or ""), _when(latest["created"]), latest.get("flow_run_id"))

    async def security(self, now: datetime | None = None) -> tuple[SecurityEvent, ...]:
        """Guard refusals of the last day: the `k3sc.security.blocked` events agent runs emit."""
        moment = now or datetime.now(UTC)
        body = {
            "filter": {
                "event": {"prefix": [events.SECURITY_BLOCKED]},
                "occurred": {"since": (moment - SECURITY_WINDOW).isoformat(), "until": moment.isoformat()},
                "order": "DESC",
            },
            "limit": 50,
        }
        async with self._api() as api:
            found = (await api.post_json("events/filter", body)) or {}
        return tuple(
            SecurityEvent(_run_of(event), _when(event["occurred"]), str(event["payload"].get("detail", "")))
            for event in found.get("events", [])
        )

    async def github(self) -> GitHubFacts:
        """Issues and PRs through the ETag cache: an idle read is all 304s and costs no rate limit."""
        from k3sc.github import GitHubClient

        repos = [r.repo for r in self.config.repos]
        async with GitHubClient.from_config(self.config) as gh:
            issues, pulls = await asyncio.gather(gh.workflow_issues(repos), gh.open_pulls(repos))
            budget = gh.budget
        return GitHubFacts(
            tuple(issues.items),
            tuple(pulls.items),
            tuple(dict.fromkeys(f"{f.repo}: {f.error}" for f in (*issues.failures, *pulls.failures))),
            requests=budget.requests,
            not_modified=budget.not_modified,
            remaining=budget.remaining,
        )

    async def logs(self, run_ids: Sequence[str], lines: int) -> dict[str, list[LogLine]]:
        """The last `lines` log lines of each run, oldest first."""
        async with self._api() as api:
            tails = await asyncio.gather(*(run_log(api, run_id, lines) for run_id in run_ids))
        return dict(zip(run_ids, tails, strict=True))

    # ------------------------------------------------------------------ actions (the CLI's services)

    async def scan_now(self) -> str:
        started = await dispatch.trigger(reason="k3sc top")
        return f"scan started: {started['name']}"

    async def pause(self, paused: bool) -> str:
        return await fleet.pause(paused)

    async def scale(self, step: int) -> str:
        current = (await fleet.scale(self.config, self.max_slots_source, None))["slots"]
        wanted = fleet.slot_count(str(current + step))  # k3sc scale's rule: 1 to 26
        done = await fleet.scale(self.config, self.max_slots_source, wanted)
        return f"max slots: {done['previous']} -> {done['slots']}"

    async def kill(self, repo: Repo, issue: int) -> str:
        killed = await steering.kill(self.config, issue, repo, "needs-human")
        stopped = ", ".join(f"{s['kind']} attempt {s['attempt']} by {s['agent']}" for s in killed.stopped)
        return f"{killed.issue}: stopped {stopped or 'no active run'}; now {killed.to}"


def _run_of(event: dict[str, Any]) -> str:
    """The flow run an event is related to (the agent run that was refused)."""
    for related in event.get("related") or []:
        resource_id = str(related.get("prefect.resource.id", ""))
        if resource_id.startswith("prefect.flow-run."):
            return resource_id.removeprefix("prefect.flow-run.")
    return ""


async def usage_entries(api: PrefectAPI, since: datetime | None) -> list[UsageEntry]:
    """Usage artifacts created at or after `since` (all of them for None), newest first."""
    found: list[UsageEntry] = []
    async for artifact in ledger.artifacts(api, since):
        try:
            record = usage.UsageRecord.from_artifact_data(str(artifact.get("data") or ""))
        except ValueError:
            continue  # not one of ours, or an older format: it counts nothing
        run_id = artifact.get("flow_run_id")
        found.append(
            UsageEntry(
                str(artifact["id"]), str(run_id) if run_id else None, _when(artifact["created"]), record
            )
        )
    return found


async def run_log(api: PrefectAPI, run_id: str, lines: int) -> list[LogLine]:
    """The run's last `lines` log records, oldest first (`k3sc logs` reads them the same way)."""
    records = await api.logs(run_id, newest_first=True, limit=lines)
    return [LogLine(r.timestamp, r.level, r.message) for r in reversed(records)]


async def last_lines(api: PrefectAPI, run_ids: Iterable[str], known: Mapping[str, str]) -> dict[str, str]:
    """Each run's last meaningful line (`k3sc logs`' rule), updated from what was `known`.

    One request for the newest lines of all the runs; a run that said nothing meaningful among
    those keeps its known line, and only a run seen for the first time costs a request of its own
    (its last 50 records). So a steady fleet costs one request a refresh however many agents run.
    """
    wanted = list(run_ids)
    if not wanted:
        return {}
    body = {"logs": {"flow_run_id": {"any_": wanted}}, "sort": "TIMESTAMP_DESC", "limit": 200}
    newest: dict[str, list[LogRecord]] = {}
    for raw in (await api.post_json("logs/filter", body)) or []:
        record = LogRecord.model_validate(raw)
        newest.setdefault(record.flow_run_id or "", []).append(record)
    fresh = {r: line for r, records in newest.items() if (line := runlogs.last_meaningful(reversed(records)))}
    last = {r: fresh.get(r, known.get(r, "")) for r in wanted}
    new = [r for r in wanted if r not in fresh and r not in known]
    for run_id, records in zip(
        new, await asyncio.gather(*(api.logs(r, newest_first=True, limit=50) for r in new)), strict=True
    ):
        last[run_id] = runlogs.last_meaningful(reversed(records))
    return last
