"""`k3sc config show` and `k3sc config check`: what k3sc will run with, and whether it can run at all.

`show` prints every effective value with where it came from (default, file, environment, derived)
so a surprising value can be traced; `check` is the cheap gate before `k3sc up`. pydantic and yaml
load only inside the commands (through `k3sc.config`), keeping `k3sc --help` fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from k3sc.cli import _output

if TYPE_CHECKING:
    from pydantic import BaseModel

    from k3sc.config import LoadedConfig

app = typer.Typer(
    help="Show and check the k3sc configuration (~/.k3sc.yaml or $K3SC_CONFIG).", no_args_is_help=True
)

SECRET_MASK = "********"  # noqa: S105 - the mask itself, not a secret


@app.command()
def show(
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of a table.")
    ] = False,
) -> None:
    """Print the effective configuration: every key, its value and where the value came from."""
    from k3sc import config

    loaded = config.load()
    values = effective_values(loaded)
    if json_:
        _output.print_json({"path": str(loaded.path), "exists": loaded.file_exists, "values": values})
        return

    from rich.table import Table
    from rich.text import Text

    console = _output.console()
    state = "exists" if loaded.file_exists else "not found, using defaults"
    console.print(Text(f"config file: {loaded.path} ({state})"))
    table = Table("key", "value", "source", box=None, pad_edge=False)
    for key, entry in values.items():
        # Text, not markup strings: values such as `dependabot[bot]` must print literally.
        table.add_row(Text(key), Text(_display(entry["value"])), Text(entry["source"]))
    console.print(table)


@app.command()
def check() -> None:
    """Validate the configuration; exit 2 with the reason if k3sc cannot start with it."""
    from k3sc import config

    loaded = config.load()
    cfg = loaded.config
    if not loaded.file_exists:
        _output.warn(f"config file {loaded.path} does not exist; using defaults.")
    if not cfg.repos:
        _output.warn("no repos configured: nothing can ever be dispatched.")
    if not cfg.allowed_authors:
        _output.warn("allowed_authors is empty: nothing can ever be dispatched (only their issues are).")
    from k3sc.services.up import check_agent_host

    if warning := check_agent_host(cfg):
        _output.warn(warning)
    typer.echo(
        f"config OK: {loaded.path} ({len(cfg.repos)} repos, {len(cfg.allowed_authors)} allowed authors, "
        f"max_slots {cfg.max_slots})"
    )


def effective_values(loaded: LoadedConfig) -> dict[str, dict[str, Any]]:
    """Every leaf of the config as `{dotted.key: {"value": <JSON value>, "source": ...}}`.

    Nested sections flatten to dotted keys; lists stay lists; secrets are masked; durations and
    paths are the strings `model_dump(mode="json")` makes of them (`2m`, `/home/me/code`).
    """
    flat: dict[str, Any] = {}
    _flatten(loaded.config, loaded.config.model_dump(mode="json"), "", flat)
    return {key: {"value": value, "source": loaded.source_of(key)} for key, value in flat.items()}


def _flatten(model: BaseModel, dumped: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    from pydantic import BaseModel

    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            _flatten(value, dumped[name], f"{key}.", out)
        else:
            out[key] = _masked(value, dumped[name])


def _masked(value: Any, dumped: Any) -> Any:
    """`dumped` with every SecretStr (however deep in lists or models) replaced by the mask."""
    from pydantic import BaseModel, SecretStr

    if isinstance(value, SecretStr):
        return SECRET_MASK
    if isinstance(value, BaseModel):
        return {name: _masked(getattr(value, name), dumped[name]) for name in type(value).model_fields}
    if isinstance(value, (list, tuple)):
        return [_masked(item, item_dumped) for item, item_dumped in zip(value, dumped, strict=True)]
    return dumped


def _display(value: Any) -> str:
    """A JSON value as one table cell: one list item per line, repos as owner/name, unset as such."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "(empty)"
    if isinstance(value, list):
        # One per line: items such as `issue:view,list,edit` contain commas themselves.
        return "\n".join(_display(item) for item in value) if value else "(empty)"
    if isinstance(value, dict):
        if "owner" in value and "name" in value:
            extras = [f"{k}={v}" for k, v in value.items() if k not in ("owner", "name") and v is not None]
            repo = f"{value['owner']}/{value['name']}"
            return f"{repo} ({', '.join(extras)})" if extras else repo
        return ", ".join(f"{k}={_display(v)}" for k, v in value.items())
    return str(value)
