"""`k3sc top`'s values: each source's last answer, rows and sections, and how cells are written.

Pure: no I/O, no clock (`now` and the time zone come in) and no Textual, so the live view,
`--once` and `--json` render one `Dashboard` and cannot disagree. A source that failed keeps its
last data and adds its error to the sections it feeds; one that has not answered yet says so.
The sections themselves are built in `top_fleet`, `top_github`, `top_costs` and `top_scan`, and
assembled by `top_dashboard.build`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Generic, TypeVar

from k3sc.config import Config
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
    link: str = ""  # the or PR's page; the first cell links to it


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


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def source_status(
    name: str, loaded: Loaded[Any], now: datetime, zone: tzinfo | None
) -> tuple[str, str | None]:
    if loaded.at is None:
        return f"{name}: loading…", None
    if loaded.error is not None:
        return f"{name}: failed at {stamp(loaded.at, now, zone)}", f"{name}: {loaded.error}"
    return f"{name} {stamp(loaded.at, now, zone)}", None


def fed_by(inputs: Inputs, sources: Sequence[str], now: datetime, zone: tzinfo | None) -> dict[str, Any]:
    parts = [source_status(s, inputs.loaded(s), now, zone) for s in sources]
    return {
        "status": "  ".join(p for p, _ in parts),
        "errors": tuple(e for _, e in parts if e is not None),
    }


def unread(section: Section) -> Section:
    """A section whose source has not answered yet: no "(no …)" line, its status says why."""
    return dataclasses.replace(section, empty="")


def url(config: Config, repo_full_name: str, what: str, number: int) -> str:
    """The page of an issue (`issues`) or PR (`pull`) on the configured GitHub."""
    return f"{config.github_url.rstrip('/')}/{repo_full_name}/{what}/{number}"
