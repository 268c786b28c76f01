"""Read image/Dockerfile and its pins, for the structure test and the build test alike."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "image"
DOCKERFILE = IMAGE / "Dockerfile"
JOB_TEMPLATE = ROOT / "k8s" / "job-template.json"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case: FROM, RUN, ENV, ...
    args: str  # the rest, continuation lines joined
    stage: int  # 0-based index of the FROM it belongs to


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, comments dropped and `\\` continuations joined."""
    found: list[Instruction] = []
    stage, pending = -1, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        found.append(Instruction(keyword.upper(), " ".join(args.split()), stage))
    return found


def env_of(instructions: list[Instruction], stage: int) -> dict[str, str]:
    """`ENV k=v ...` of one stage (the `ENV k=v` form is the only one the Dockerfile uses)."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.stage == stage and ins.keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(ins.args))
    return env


def args_of(instructions: list[Instruction]) -> dict[str, str]:
    """Every `ARG name=default`, wherever declared."""
    return dict(ins.args.split("=", 1) for ins in instructions if ins.keyword == "ARG" and "=" in ins.args)


def final_stage(instructions: list[Instruction]) -> int:
    return max(ins.stage for ins in instructions)


def uv_locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return next(str(p["version"]) for p in lock["package"] if p["name"] == package)


def npm_pins() -> dict[str, str]:
    """The exact versions image/package.json asks for (dependencies and optional ones)."""
    manifest = json.loads((IMAGE / "package.json").read_text())
    return {**manifest["dependencies"], **manifest["optionalDependencies"]}


def job_template() -> dict[str, Any]:
    return dict(json.loads(JOB_TEMPLATE.read_text()))


def exact_version(spec: str) -> bool:
    return re.fullmatch(r"\d+\.\d+\.\d+", spec) is not None
