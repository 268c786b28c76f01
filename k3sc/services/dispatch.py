"""`k3sc dispatch`: scan now (a forced run of the dispatch deployment), or show what it would do.

The dry run gathers exactly what the dispatcher gathers (`k3sc.evidence.gather`) and asks the same
`k3sc.decide.decide`, so its plan is the plan, minus the writes. Without a reachable Prefect server
it still decides from labels alone and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from k3sc import decide, evidence
from k3sc.config import Config
from k3sc.errors import OrchestrationError
from k3sc.models import Repo
from k3sc.orchestration import dispatch_state, runs
from k3sc.orchestration.api import PrefectAPI, resolve_api_url

if TYPE_CHECKING:
    from k3sc.github import GitHubClient


async def trigger(api_url: str | None = None, reason: str = "k3sc dispatch") -> dict[str, Any]:
    """Start a forced dispatch run on `api_url` (else the known server); its id, name and UI address."""
    async with PrefectAPI(api_url) if api_url else PrefectAPI.from_env() as api:
        created = await api.create_flow_run(
            runs.DISPATCH_DEPLOYMENT,
            parameters={"force": True, "reason": reason},
            name=f"scan on {reason}",
            tags=["k3sc"],
        )
        url = api.url.removesuffix("/api")
    return {"id": created.id, "name": created.name, "url": f"{url}/runs/flow-run/{created.id}"}


async def dry_run(config: Config) -> dict[str, Any]:
    """The decisions the next scan would carry out, without writing anything anywhere."""
    from k3sc.github import GitHubClient

    async with GitHubClient.from_config(config) as gh:
        planned = await plan(config, gh)
    decisions = planned.decisions
    return {"rows": [asdict(r) for r in decisions.rows()], "notes": planned.notes, **decisions.controls()}


@dataclass(frozen=True)
class Planned:
    """What the next scan would decide, the facts it decided on, and what could not be consulted."""

    decisions: decide.Decisions
    facts: decide.Facts
    notes: list[str]


async def plan(config: Config, gh: GitHubClient, repos: Sequence[Repo] | None = None) -> Planned:
    """Gather what the dispatcher gathers and decide as it decides, writing nothing."""
    notes: list[str] = []
    facts: decide.Facts | None = None
    if resolve_api_url():
        try:
            async with PrefectAPI.from_env() as api:
                memory = await dispatch_state.load(api)
                facts = await evidence.gather(gh, api, config, memory, repos=repos)
        except OrchestrationError as exc:
            notes.append(f"run history not consulted: {exc}")
    else:
        notes.append("run history not consulted: no Prefect server (set PREFECT_API_URL or run `k3sc up`)")
    if facts is None:
        seen = await evidence.snapshot(gh, repos if repos is not None else [r.repo for r in config.repos])
        facts = decide.Facts(snapshot=seen, runs=())
    if facts.paused:
        notes.append("dispatch is paused: finished runs are handed off, nothing new is claimed")
    return Planned(decide.decide(facts, config, datetime.now(UTC)), facts, notes)
