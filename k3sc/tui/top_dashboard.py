"""`k3sc top`'s whole dashboard from the sources' last answers, section by section, in display order."""

from __future__ import annotations

from datetime import datetime, tzinfo

from k3sc.config import Config
from k3sc.tui import top_costs, top_fleet, top_github, top_scan
from k3sc.tui.top_rows import Dashboard, Inputs


def build(
    inputs: Inputs, config: Config, now: datetime, zone: tzinfo | None = None, slots_source: str = "config"
) -> Dashboard:
    """Every section of the dashboard from the sources' last answers."""
    usage_by_run = {e.run_id: e for e in inputs.usage.data or () if e.run_id}
    header, header_values = top_fleet.fleet_header(inputs, config, now, zone, slots_source)
    sections = (
        top_fleet.families(inputs, config, now, zone),
        top_fleet.leases(inputs, now, zone),
        top_github.issues(inputs, config, now, zone),
        top_fleet.agent_runs(inputs, usage_by_run, config, now, zone),
        top_fleet.security(inputs, now, zone),
        top_costs.costs(inputs, now, zone),
        top_github.pulls(inputs, config, now, zone),
        top_scan.last_scan(inputs, now, zone),
    )
    return Dashboard(now, header, header_values, sections)
