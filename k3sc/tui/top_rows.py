"""`k3sc top`'s sections as plain rows, built from whatever each source last returned.

Pure: no I/O, no clock (`now` and the time zone come in) and no Textual, so the live view,
`--once` and `--json` render one `Dashboard` and cannot disagree. A source that failed keeps its
last data and adds its error to the sections it feeds; one that has not answered yet says so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Generic, TypeVar

from k3sc import decide, usage, workflow
from k3sc.config import Config
from k3sc.labels import State
from k3sc.models import AgentRun, RunPhase
from k3sc.orchestration import ledger
from k3sc.services import fleet
from k3sc.services.top import FleetFacts, GitHubFacts, RunFacts, ScanFacts, SecurityEvent, UsageEntry

T = TypeVar("T")

TITLE_WIDTH = 60
OUTPUT_WIDTH = 80
PR_KEYS = 9  # keys 1-9 copy the review command of that PR row


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A source's last answer: its data (kept from the last success), its last error, and when."""

    data: T | None = None
    error: str | None = None
    at: datetime | None = None

    def ok(self, data: T, at: datetime) -> Loaded[T]:
        return Loaded(data, None, at)

    def failed(self, error: str, at: datetime) -> Loaded[T]:
        return Loaded(self.data, error, at)


@dataclass(frozen=True)
class Inputs:
    """Every source's last answer; one per refresh worker of the live view."""

    fleet: Loaded[FleetFacts] = Loaded()
    runs: Loaded[RunFacts] = Loaded()
    usage: Loaded[tuple[UsageEntry, ...]] = Loaded()
    scan: Loaded[ScanFacts] = Loaded()
    github: Loaded[GitHubFacts] = Loaded()
    security: Loaded[tuple[SecurityEvent, ...]] = Loaded()

    def updated(self, source: str, loaded: Loaded[Any]) -> Inputs:
        return dataclasses.replace(self, **{source: loaded})

    def loaded(self, source: str) -> Loaded[Any]:
        value: Loaded[Any] = getattr(self, source)
        return value


SOURCES = tuple(f.name for f in dataclasses.fields(Inputs))


@dataclass(frozen=True)
class Row:
    """One line of a section: display cells, a style, raw values for JSON and keys, an optional URL."""

    cells: tuple[str, ...]
    values: Mapping[str, Any] = field(default_factory=dict)
    style: str = ""
    link: str = ""  # the issue's or PR's page; the first cell links to it


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...] = ()
    empty: str = ""
    status: str = ""  # where the data came from and when
    errors: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()  # summary lines above the rows

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status,
            "errors": list(self.errors),
            "lines": list(self.lines),
            "rows": [dict(r.values) for r in self.rows],
        }


@dataclass(frozen=True)
class Dashboard:
    generated: datetime
    header: str
    header_values: Mapping[str, Any]
    sections: tuple[Section, ...]

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def as_json(self) -> dict[str, Any]:
        return {
            "generated": self.generated.isoformat(timespec="seconds"),
            "header": dict(self.header_values),
            "sections": {s.key: s.as_json() for s in self.sections},
        }


# --------------------------------------------------------------------------- formatting


def clip(text: str, width: int) -> str:
    """One line of at most `width` characters, `...` marking a cut."""
    line = " ".join(text.split())
    width = max(width, 4)
    return line if len(line) <= width else line[: width - 3] + "..."


def tokens(count: float) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}k"
    return f"{count:.0f}"


def money(value: float) -> str:
    return f"${value:.2f}"


def duration(seconds: float) -> str:
    whole = max(0, int(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 60}m {whole % 60:02d}s"


def stamp(moment: datetime | None, now: datetime, zone: tzinfo | None) -> str:
    """`14:02:11` today, `Nov 30 14:02` before; empty for no time."""
    if moment is None:
        return ""
    local, today = moment.astimezone(zone), now.astimezone(zone)
    return f"{local:%H:%M:%S}" if local.date() == today.date() else f"{local:%b %d %H:%M}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _source_status(
    name: str, loaded: Loaded[Any], now: datetime, zone: tzinfo | None
) -> tuple[str, str | None]:
    if loaded.at is None:
        return f"{name}: loading…", None
    if loaded.error is not None:
        return f"{name}: failed at {stamp(loaded.at, now, zone)}", f"{name}: {loaded.error}"
    return f"{name} {stamp(loaded.at, now, zone)}", None


def _fed_by(inputs: Inputs, sources: Sequence[str], now: datetime, zone: tzinfo | None) -> dict[str, Any]:
    parts = [_source_status(s, inputs.loaded(s), now, zone) for s in sources]
    return {
        "status": "  ".join(p for p, _ in parts),
        "errors": tuple(e for _, e in parts if e is not None),
    }


# --------------------------------------------------------------------------- sections


def unread(section: Section) -> Section:
    """A section whose source has not answered yet: no "(no …)" line, its status says why."""
    return dataclasses.replace(section, empty="")


def build(
    inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None = None, slots_source: str = "config"
) -> Dashboard:
    """Every section of the dashboard from the sources' last answers."""
    usage_by_run = {e.run_id: e for e in inputs.usage.data or () if e.run_id}
    header, header_values = fleet_header(inputs, config, now, zone, slots_source)
    sections = (
        families(inputs, config, now, zone),
        leases(inputs, now, zone),
        issues(inputs, config, now, zone),
        agent_runs(inputs, usage_by_run, config, now, zone),
        security(inputs, now, zone),
        costs(inputs, now, zone),
        pulls(inputs, config, now, zone),
        last_scan(inputs, now, zone),
    )
    return Dashboard(now, header, header_values, sections)


def run_counts(runs: Iterable[AgentRun]) -> dict[str, int]:
    counts = {"running": 0, "waiting": 0, "done": 0, "failed": 0}
    for run in runs:
        if run.phase is RunPhase.RUNNING:
            counts["running"] += 1
        elif run.phase is RunPhase.WAITING:
            counts["waiting"] += 1
        elif run.phase is RunPhase.COMPLETED:
            counts["done"] += 1
        elif run.phase in (RunPhase.FAILED, RunPhase.CRASHED):
            counts["failed"] += 1
    return counts


def fleet_header(
    inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None, slots_source: str
) -> tuple[str, dict[str, Any]]:
    """` Agents: 2 running, 1 waiting, 5 done, 1 failed | Slots: 3 (max_slots) | PAUSED | scan …`."""
    values: dict[str, Any] = {}
    parts: list[str] = []
    if inputs.runs.data is not None:
        counts = run_counts(inputs.runs.data.runs)
        values.update(counts)
        parts.append(
            f"Agents: {counts['running']} running, {counts['waiting']} waiting, "
            f"{counts['done']} done, {counts['failed']} failed (recent runs)"
        )
    else:
        parts.append("Agents: ?")
    facts = inputs.fleet.data
    if facts is not None:
        slots, came_from = fleet.effective_slots(config, facts.controls, slots_source)
        values.update(slots=slots, slots_source=came_from, paused=facts.controls.paused)
        parts.append(f"Slots: {slots} ({came_from})")
        if facts.controls.paused:
            parts.append("PAUSED")
        memory = facts.memory
        values.update(last_scan=_iso(memory.last_scan), next_scan=_iso(memory.next_due))
        parts.append(
            f"Scan: last {stamp(memory.last_scan, now, zone) or 'never'}, "
            f"next {stamp(memory.next_due, now, zone) or 'not scheduled'}"
        )
    else:
        parts.append("Slots: ?")
    return " | ".join(parts), values


AVAILABILITY_LABELS = {
    workflow.Refusal.FAMILY_DISABLED: "DISABLED",
    workflow.Refusal.FAMILY_PARKED: "PARKED",
    workflow.Refusal.DAILY_BUDGET: "BUDGET",
}


def families(inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None) -> Section:
    """Each family: OK, or DISABLED / PARKED / BUDGET with the dispatcher's own reason."""
    fed = _fed_by(inputs, ("fleet", "usage"), now, zone)
    facts = inputs.fleet.data
    base = Section("families", "Families", ("Family", "Status", "Reason"), empty="(not read yet)", **fed)
    if facts is None:
        return unread(base)
    held = facts.controls
    today = [e.record for e in inputs.usage.data or () if e.created >= ledger.midnight(now)]
    over_budget = (
        usage.admission(today, usage.Caps.of(config.budget)) if inputs.usage.data is not None else {}
    )
    off = decide.availability(held.disabled_reasons, list(held.parks), now, over_budget)
    rows = []
    for family in config.families:
        name = str(family)
        if name in off:
            label, why, style = AVAILABILITY_LABELS.get(off[name].refusal, "OFF"), off[name].detail, "red"
        else:
            label, why, style = "OK", "available", "green"
            if inputs.usage.data is None:
                why = "available (today's budget not read yet)"
        rows.append(Row((name, label, why), {"family": name, "status": label.lower(), "reason": why}, style))
    return dataclasses.replace(base, rows=tuple(rows))


def leases(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    fed = _fed_by(inputs, ("fleet",), now, zone)
    columns = ("Worker", "Repo", "PR", "Issue", "Taken", "Expires", "Branch")
    base = Section("leases", "Review leases", columns, empty="(no review leases)", **fed)
    if inputs.fleet.data is None:
        return unread(base)
    rows = []
    for lease in inputs.fleet.data.controls.leases:
        expired = lease.expired(now)
        expires = stamp(lease.expires_at, now, zone) + (" (expired)" if expired else "")
        cells = (
            lease.worker,
            lease.repo.name,
            f"#{lease.pr}",
            f"#{lease.issue}" if lease.issue else "",
            stamp(lease.taken_at, now, zone),
            expires,
            lease.branch,
        )
        values = {
            "worker": lease.worker,
            "repo": lease.repo.full_name,
            "pr": lease.pr,
            "issue": lease.issue,
            "taken_at": _iso(lease.taken_at),
            "expires_at": _iso(lease.expires_at),
            "expired": expired,
            "branch": lease.branch,
        }
        rows.append(Row(cells, values, "dim" if expired else "yellow", lease.url))
    return dataclasses.replace(base, rows=tuple(rows))


ISSUE_STYLES = {State.NEEDS_HUMAN: "magenta", State.NEEDS_REVIEW: "cyan", State.READY: "green"}


def _url(config: Config, repo_full_name: str, what: str, number: int) -> str:
    return f"{config.github_url.rstrip('/')}/{repo_full_name}/{what}/{number}"


def issues(inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None) -> Section:
    """Issues with workflow labels, oldest first, coloured by state (owned ones yellow)."""
    fed = _fed_by(inputs, ("github",), now, zone)
    columns = ("Issue", "Repo", "State", "Owner", "Title")
    facts = inputs.github.data
    base = Section("issues", "GitHub issues", columns, empty="(no issues with workflow labels)", **fed)
    if facts is None:
        return unread(base)
    errors = (*base.errors, *facts.failures)
    rows = []
    for issue in facts.issues:
        read = workflow.read_labels(issue.labels)
        owned = read.owner is not None and read.state not in (State.NEEDS_HUMAN, State.NEEDS_REVIEW)
        style = "yellow" if owned else ISSUE_STYLES.get(read.state, "")
        state = str(read.state) + (" (waiting)" if read.waiting else "")
        values = {
            "repo": issue.repo.full_name,
            "number": issue.number,
            "state": str(read.state),
            "owner": read.owner,
            "waiting": read.waiting,
            "title": issue.title,
        }
        cells = (f"#{issue.number}", issue.repo.name, state, read.owner or "", clip(issue.title, TITLE_WIDTH))
        rows.append(
            Row(cells, values, style, issue.url or _url(config, issue.repo.full_name, "issues", issue.number))
        )
    status = f"{base.status}  ({facts.requests} requests, {facts.not_modified} not modified)"
    return dataclasses.replace(base, rows=tuple(rows), errors=errors, status=status)


PHASE_ORDER = {
    RunPhase.RUNNING: 0,
    RunPhase.WAITING: 0,
    RunPhase.COMPLETED: 1,
    RunPhase.FAILED: 2,
    RunPhase.CRASHED: 2,
    RunPhase.CANCELLED: 3,
}
RUN_STYLES = {
    RunPhase.RUNNING: "green",
    RunPhase.WAITING: "yellow",
    RunPhase.FAILED: "red",
    RunPhase.CRASHED: "red",
    RunPhase.CANCELLED: "dim",
}


def run_state(run: AgentRun) -> str:
    """`running`, `failed (Parked)`, `completed → success`: the phase, Prefect's name if it says
    more, and the hand-off's verdict once recorded."""
    text = run.phase.value
    if run.state_name and run.state_name.lower() not in (run.phase.value, "running", "scheduled", "late"):
        text += f" ({run.state_name})"
    if run.outcome is not None:
        text += f" → {run.outcome.value}"
    return text


def sort_runs(runs: Iterable[AgentRun]) -> list[AgentRun]:
    """Active first, then by how they ended; newest first within each; ties by higher issue."""
    floor = datetime.min.replace(tzinfo=UTC)

    def key(run: AgentRun) -> tuple[int, float, int]:
        moment = run.started_at or run.created_at or floor
        return (PHASE_ORDER.get(run.phase, 4), -moment.timestamp(), -run.issue)

    return sorted(runs, key=key)


def agent_runs(
    inputs: Inputs, usage_by_run: Mapping[str, UsageEntry], config: Config, now: datetime, zone: tzinfo | None
) -> Section:
    fed = _fed_by(inputs, ("runs", "usage"), now, zone)
    columns = (
        "Issue",
        "Repo",
        "Agent",
        "Kind",
        "Try",
        "State",
        "Started",
        "Duration",
        "Tokens",
        "Cost",
        "Last output",
    )
    base = Section("runs", "Agent runs", columns, empty="(no agent runs)", **fed)
    facts = inputs.runs.data
    if facts is None:
        return unread(base)
    rows = []
    for run in sort_runs(facts.runs):
        started = run.started_at if run.ran_for != 0 or run.phase.active else None
        took = ((run.ended_at or now) - started).total_seconds() if started else None
        entry = usage_by_run.get(run.id)
        spent = entry.record.usage if entry else None
        cost = entry.record.spent(usage.Unit.DOLLARS) if entry and spent else None
        last = facts.last_lines.get(run.id) or run.message
        values = {
            "id": run.id,
            "repo": run.repo.full_name,
            "issue": run.issue,
            "agent": run.agent,
            "kind": run.kind.value,
            "attempt": run.attempt,
            "phase": run.phase.value,
            "state": run_state(run),
            "outcome": run.outcome.value if run.outcome else None,
            "started": _iso(started),
            "duration_s": round(took, 1) if took is not None else None,
            "tokens": spent.total_tokens if spent else None,
            "cost_usd": round(cost, 4) if cost is not None else None,
            "last_output": last,
        }
        cells = (
            f"#{run.issue}",
            run.repo.name,
            run.agent,
            run.kind.value,
            str(run.attempt),
            run_state(run),
            stamp(started, now, zone),
            duration(took) if took is not None else "",
            tokens(spent.total_tokens) if spent else "",
            money(cost) if cost is not None else "",
            clip(last, OUTPUT_WIDTH),
        )
        link = _url(config, run.repo.full_name, "issues", run.issue)
        rows.append(Row(cells, values, RUN_STYLES.get(run.phase, ""), link))
    return dataclasses.replace(base, rows=tuple(rows))


def security(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    """Guard refusals (`[security] git push blocked …`) found in agent run logs of the last day."""
    fed = _fed_by(inputs, ("security",), now, zone)
    note = "refusals by the git/gh guards as they reached agent run logs (last 24 h)"
    base = Section(
        "security",
        "Security events",
        ("Time", "Issue", "Agent", "Event"),
        empty="(no security events)",
        lines=(note,),
        **fed,
    )
    if inputs.security.data is None:
        return unread(base)
    known = {r.id: r for r in (inputs.runs.data.runs if inputs.runs.data else ())}
    rows = []
    for event in inputs.security.data:
        run = known.get(event.run_id)
        values = {
            "at": _iso(event.at),
            "run_id": event.run_id,
            "issue": run.issue_key if run else None,
            "agent": run.agent if run else None,
            "event": event.text,
        }
        cells = (
            stamp(event.at, now, zone),
            f"#{run.issue}" if run else "-",
            run.agent if run else "-",
            clip(event.text, 100),
        )
        rows.append(Row(cells, values, "red"))
    return dataclasses.replace(base, rows=tuple(rows), title=f"Security events ({len(rows)})")


@dataclass(frozen=True)
class Bucket:
    jobs: int = 0
    usd: float = 0.0
    tokens: int = 0

    def add(self, record: usage.UsageRecord) -> Bucket:
        spent = record.usage.total_tokens if record.usage else 0
        return Bucket(self.jobs + 1, self.usd + record.spent(usage.Unit.DOLLARS), self.tokens + spent)

    @property
    def average(self) -> float:
        return self.usd / self.jobs if self.jobs else 0.0


def local_midnight(now: datetime, zone: tzinfo | None) -> datetime:
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime, zone: tzinfo | None) -> datetime:
    """Local midnight of the most recent Sunday (today, if today is Sunday)."""
    midnight = local_midnight(now, zone)
    return midnight - timedelta(days=(midnight.weekday() + 1) % 7)


def roll_up(entries: Iterable[UsageEntry], now: datetime, zone: tzinfo | None) -> dict[str, Any]:
    """Today, this week (from Sunday), all time, and all time by model; each jobs, dollars, tokens."""
    today, week = local_midnight(now, zone), week_start(now, zone)
    buckets = {"today": Bucket(), "week": Bucket(), "all": Bucket()}
    models: dict[str, Bucket] = {}
    for entry in entries:
        record = entry.record
        if entry.created >= today:
            buckets["today"] = buckets["today"].add(record)
        if entry.created >= week:
            buckets["week"] = buckets["week"].add(record)
        buckets["all"] = buckets["all"].add(record)
        model = (record.usage.model if record.usage else None) or "unknown"
        models[model] = models.get(model, Bucket()).add(record)
    return {**buckets, "models": dict(sorted(models.items(), key=lambda kv: -kv[1].usd))}


COST_PERIODS = (("today", "Today"), ("week", "This week"), ("all", "All time"))


def costs(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    fed = _fed_by(inputs, ("usage",), now, zone)
    base = Section(
        "costs", "Costs", ("Period", "Jobs", "Cost", "Tokens", "Avg/job"), empty="(no cost data)", **fed
    )
    if inputs.usage.data is None:
        return unread(base)
    if not inputs.usage.data:
        return base
    rolled = roll_up(inputs.usage.data, now, zone)
    total: Bucket = rolled["all"]
    summary = (
        f"Jobs: {total.jobs} | Total: {money(total.usd)} | Avg: {money(total.average)}/job | "
        f"Tokens: {tokens(total.tokens)}"
    )

    def row(label: str, bucket: Bucket, style: str = "", **extra: Any) -> Row:
        cells = (label, str(bucket.jobs), money(bucket.usd), tokens(bucket.tokens), money(bucket.average))
        values = {**extra, "jobs": bucket.jobs, "usd": round(bucket.usd, 4), "tokens": bucket.tokens}
        return Row(cells, values, style)

    rows = [row(label, rolled[key], period=key) for key, label in COST_PERIODS]
    rows += [
        row(f"  {model}", bucket, "dim", period="all", model=model)
        for model, bucket in rolled["models"].items()
    ]
    return dataclasses.replace(base, rows=tuple(rows), lines=(summary,))


def pulls(inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None) -> Section:
    """Open PRs, numbered 1-9 for the copy keys; owned or leased ones yellow."""
    fed = _fed_by(inputs, ("github",), now, zone)
    columns = ("#", "PR", "Repo", "Owner", "Issue", "Branch", "Title")
    base = Section("pulls", "Pull requests", columns, empty="(no open pull requests)", **fed)
    facts = inputs.github.data
    if facts is None:
        return unread(base)
    leased = {
        lease.pr_key: lease.worker
        for lease in (inputs.fleet.data.controls.leases if inputs.fleet.data else ())
    }
    rows = []
    for position, pull in enumerate(facts.pulls, 1):
        owner = pull.owner or leased.get(f"{pull.repo.key}#{pull.number}") or ""
        values = {
            "repo": pull.repo.full_name,
            "number": pull.number,
            "owner": owner or None,
            "issue": pull.issue,
            "branch": pull.branch,
            "title": pull.title,
            "review_command": review_command(pull.repo.name, pull.number),
        }
        cells = (
            str(position) if position <= PR_KEYS else "",
            f"#{pull.number}",
            pull.repo.name,
            owner,
            f"#{pull.issue}" if pull.issue else "",
            clip(pull.branch, 20),
            clip(pull.title, TITLE_WIDTH),
        )
        link = pull.url or _url(config, pull.repo.full_name, "pull", pull.number)
        rows.append(Row(cells, values, "yellow" if owner else "cyan", link))
    return dataclasses.replace(base, rows=tuple(rows))


def review_command(repo_name: str, pr: int) -> str:
    return f"/review {repo_name} {pr}"


_TABLE_ROW = re.compile(r"^\|(.*)\|\s*$")


def scan_rows(markdown: str) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """The scan summary's decisions as (action, issue, agent, reason) and its plain lines.

    The dispatcher writes the summary as markdown (`## Handed off` bullets, a `## Decisions`
    table, closing sentences); bullets become rows whose action is their heading.
    """
    rows: list[tuple[str, str, str, str]] = []
    lines: list[str] = []
    heading = ""
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line or line.startswith("# "):
            continue
        if line.startswith("## "):
            heading = line[3:].strip()
            continue
        if line.startswith("- "):
            item = line[2:].strip()
            issue, sep, rest = item.partition(": ")
            if sep and "#" in issue and " " not in issue:
                rows.append((heading.lower(), issue, "", rest))
            else:
                rows.append((heading.lower(), "", "", item))
            continue
        if match := _TABLE_ROW.match(line):
            cells = [c.strip() for c in match.group(1).split("|")]
            if len(cells) == 4 and cells[0] != "issue" and not set(cells[0]) <= {"-", ":"}:
                issue, action, agent, reason = cells
                rows.append((action, issue, "" if agent == "-" else agent, reason))
            continue
        lines.append(line.replace("**", ""))
    return rows, lines


def last_scan(inputs: Inputs, now: datetime, zone: tzinfo | None) -> Section:
    """What the dispatcher's last scan decided and why (its summary artifact)."""
    fed = _fed_by(inputs, ("scan",), now, zone)
    columns = ("Action", "Issue", "Agent", "Reason")
    base = Section("scan", "Last scan", columns, empty="(no scan recorded yet)", **fed)
    facts = inputs.scan.data
    if facts is None:
        return unread(base)
    if facts.created is None:
        return base
    found, lines = scan_rows(facts.markdown)
    styles = {"errors": "red", "implement": "green", "review": "cyan", "skip": "dim"}
    rows = tuple(
        Row(
            (action, issue, agent, clip(reason, 100)),
            {"action": action, "issue": issue or None, "agent": agent or None, "reason": reason},
            styles.get(action, ""),
        )
        for action, issue, agent, reason in found
    )
    title = f"Last scan ({stamp(facts.created, now, zone)})"
    return dataclasses.replace(base, title=title, rows=rows, lines=tuple(lines))
