"""`k3sc top`'s last scan: the dispatcher's summary artifact (markdown) read back as decision rows."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, tzinfo

from k3sc.tui import top_rows
from k3sc.tui.top_rows import Inputs, Row, Section, clip, stamp

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
    fed = top_rows.fed_by(inputs, ("scan",), now, zone)
    columns = ("Action", "Issue", "Agent", "Reason")
    base = Section("scan", "Last scan", columns, empty="(no scan recorded yet)", **fed)
    facts = inputs.scan.data
    if facts is None:
        return top_rows.unread(base)
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
