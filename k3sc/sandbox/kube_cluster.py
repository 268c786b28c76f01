"""A Job controller and a kubelet for the fake Kubernetes API, so real Jobs really run.

The controller makes one Pod per Job (labels, `job-name`, `controller-uid`, owner reference),
keeps the Job's status (startTime, active, succeeded/failed, Complete/Failed conditions) and
deletes a deleted Job's pods. The kubelet "pulls" only images it was told exist (others sit in
ImagePullBackOff, like a registry that does not have them) and runs each pod's container as a
tiny container runtime would: a new PID and mount namespace (`unshare --pid --mount --fork
--kill-child`, so killing the pod kills everything in it), the host's root as a copy-on-write
overlay made read-only when `readOnlyRootFilesystem` says so, every volume (emptyDir, the PVC's
sub-path, ConfigMaps) bind-mounted at its mountPath, the container's uid/gid (`setpriv`), its
env with secretKeyRef/fieldRef resolved, its workingDir and its args. Output becomes the pod log.
Needs root (namespaces, mounts). Not emulated: scheduling, resources, probes, networking,
activeDeadlineSeconds, TTL, image contents (the "image" is this machine with k3sc installed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shlex
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k3sc.sandbox.kube import FakeKubernetes, _now

POLL = 0.2


@dataclass
class RunningPod:
    process: asyncio.subprocess.Process
    root: Path
    output: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    """Controller and kubelet over one FakeKubernetes; `images` are the images that "exist"."""

    api: FakeKubernetes
    images: set[str]
    state_dir: Path
    extra_path: str = str(Path(sys.executable).parent)
    pods: dict[str, RunningPod] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for name in list(self.pods):
            await self._kill(name)

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a controller logs and keeps going
                sys.stderr.write(f"fake cluster: {type(exc).__name__}: {exc}\n")
            await asyncio.sleep(POLL)

    async def reconcile(self) -> None:
        jobs = {j["metadata"]["uid"]: j for j in self.api.stored("jobs")}
        pods = self.api.stored("pods")
        owned = {p["metadata"].get("labels", {}).get("controller-uid"): p for p in pods}
        for uid, job in jobs.items():
            if uid not in owned and not _finished(job):
                await self._create_pod(job)
        for pod in pods:
            owner = pod["metadata"].get("labels", {}).get("controller-uid")
            if owner and owner not in jobs:  # the Job was deleted: garbage-collect its pod
                await self._kill(pod["metadata"]["name"])
                await self.api.discard("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                continue
            await self._kubelet(pod, jobs.get(owner or ""))

    async def _create_pod(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        template = job["spec"]["template"]
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "job-name": meta["name"],
            "controller-uid": meta["uid"],
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{uuid.uuid4().hex[:5]}",
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    _status(c, {"waiting": {"reason": "ContainerCreating"}})
                    for c in template["spec"]["containers"]
                ],
            },
        }
        await self.api.store("pods", pod)
        await self.api.store(
            "jobs", {**job, "status": {**(job.get("status") or {}), "startTime": _now(), "active": 1}}
        )

    async def _kubelet(self, pod: dict[str, Any], job: dict[str, Any] | None) -> None:
        name, phase = pod["metadata"]["name"], pod["status"].get("phase")
        container = pod["spec"]["containers"][0]
        if phase == "Pending" and name not in self.pods:
            if container["image"] not in self.images:
                waiting = {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{container["image"]}"',
                }
                if (pod["status"]["containerStatuses"][0]["state"].get("waiting") or {}).get(
                    "reason"
                ) != "ImagePullBackOff":
                    await self._set_pod(pod, "Pending", {"waiting": waiting})
                return
            self.pods[name] = await self._run(pod)
            await self._set_pod(pod, "Running", {"running": {"startedAt": _now()}})
            return
        running = self.pods.get(name)
        if phase == "Running" and running is not None and running.process.returncode is not None:
            code = running.process.returncode
            await asyncio.sleep(0.05)  # let the output reader drain
            self.api.pod_logs[(pod["metadata"]["namespace"], name)] = "".join(running.output)
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "finishedAt": _now(),
            }
            await self._set_pod(pod, "Succeeded" if code == 0 else "Failed", {"terminated": terminated})
            self._cleanup(name)
            if job is not None:
                await self._finish_job(job, code == 0)
        elif running is not None:
            self.api.pod_logs[(pod["metadata"]["namespace"], name)] = "".join(running.output)

    async def _finish_job(self, job: dict[str, Any], succeeded: bool) -> None:
        condition = {
            "type": "Complete" if succeeded else "Failed",
            "status": "True",
            "lastTransitionTime": _now(),
        }
        if not succeeded:
            condition["reason"] = "BackoffLimitExceeded"
        status = {**(job.get("status") or {}), "active": 0, "conditions": [condition]}
        status["succeeded" if succeeded else "failed"] = 1
        if succeeded:
            status["completionTime"] = _now()
        status.pop("active", None)
        await self.api.store("jobs", {**job, "status": status})

    async def _set_pod(self, pod: dict[str, Any], phase: str, state: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        status = {**pod["status"], "phase": phase, "containerStatuses": [_status(container, state)]}
        await self.api.store("pods", {**pod, "status": status})

    # ------------------------------------------------------------------ the container runtime

    async def _run(self, pod: dict[str, Any]) -> RunningPod:
        spec, meta = pod["spec"], pod["metadata"]
        container = spec["containers"][0]
        root = Path(tempfile.mkdtemp(prefix=f"pod-{meta['name']}-", dir=self.state_dir))
        security = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
        uid, gid = int(security.get("runAsUser", 0)), int(security.get("runAsGroup", 0))
        mounts = []
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            source = self._volume(volumes[mount["name"]], meta, root, uid, gid)
            if mount.get("subPath"):
                source = source / mount["subPath"]
                source.mkdir(parents=True, exist_ok=True)
                os.chown(source, uid, gid)
            mounts.append((str(source), mount["mountPath"], bool(mount.get("readOnly"))))
        env = {"PATH": f"{self.extra_path}:/usr/local/bin:/usr/bin:/bin"}
        for entry in container.get("env") or []:
            env[entry["name"]] = self._env_value(entry, meta)
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        script = _runtime_script(
            root,
            mounts,
            bool(security.get("readOnlyRootFilesystem")),
            uid,
            gid,
            container.get("workingDir") or "/",
            env,
            argv,
        )
        (root / "run.sh").write_text(script)
        process = await asyncio.create_subprocess_exec(
            "unshare",
            "--pid",
            "--mount",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            str(root / "run.sh"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        running = RunningPod(process, root)

        async def read() -> None:
            assert process.stdout is not None
            async for line in process.stdout:
                running.output.append(line.decode(errors="replace"))

        asyncio.get_running_loop().create_task(read())
        return running

    def _volume(self, volume: dict[str, Any], meta: dict[str, Any], root: Path, uid: int, gid: int) -> Path:
        if "emptyDir" in volume:
            path: Path = root / "volumes" / str(volume["name"])
            path.mkdir(parents=True)
            path.chmod(0o777)
            return path
        if "persistentVolumeClaim" in volume:
            path = self.state_dir / "pvc" / str(volume["persistentVolumeClaim"]["claimName"])
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            return path
        if "configMap" in volume:
            name = volume["configMap"]["name"]
            found = [
                c for c in self.api.stored("configmaps", meta["namespace"]) if c["metadata"]["name"] == name
            ]
            if not found:
                raise RuntimeError(f"configmap {name} not found")  # a real kubelet waits (ContainerCreating)
            path = root / "volumes" / str(volume["name"])
            path.mkdir(parents=True)
            for key, text in (found[0].get("data") or {}).items():
                (path / key).write_text(text)
            path.chmod(0o755)
            return path
        raise RuntimeError(f"volume type not emulated: {volume}")

    def _env_value(self, entry: dict[str, Any], meta: dict[str, Any]) -> str:
        if "value" in entry:
            return str(entry["value"] or "")
        source = entry.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            for secret in self.api.stored("secrets", meta["namespace"]):
                if secret["metadata"]["name"] == ref["name"]:
                    return base64.b64decode(secret["data"][ref["key"]]).decode()
            raise RuntimeError(f"secret {ref['name']} not found")
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            return str({"metadata.namespace": meta["namespace"], "metadata.name": meta["name"]}[path])
        raise RuntimeError(f"env source not emulated: {entry}")

    async def _kill(self, name: str) -> None:
        running = self.pods.get(name)
        if running is not None and running.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(running.process.wait(), 10)
        self._cleanup(name)

    def _cleanup(self, name: str) -> None:
        self.pods.pop(name, None)


def _finished(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return bool(status.get("succeeded") or status.get("failed"))


def _status(container: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": "running" in state,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


def _runtime_script(
    root: Path,
    mounts: list[tuple[str, str, bool]],
    read_only: bool,
    uid: int,
    gid: int,
    workdir: str,
    env: dict[str, str],
    argv: list[str],
    image: Path = Path("/"),
) -> str:
    """Shell run as PID 1's child in fresh PID and mount namespaces: build the root, drop to the user.

    `image` is the root filesystem the container sees: this machine, or a real image's unpacked
    root (tests/image runs the agent image's Job that way).
    """
    q = shlex.quote
    new = root / "rootfs"
    layers = f"lowerdir={q(str(image))},upperdir={q(str(root / 'upper'))},workdir={q(str(root / 'work'))}"
    lines = [
        "set -e",
        "mount --make-rprivate /",
        f"mkdir -p {q(str(root / 'upper'))} {q(str(root / 'work'))} {q(str(new))}",
        f"mount -t overlay overlay -o {layers} {q(str(new))}",
        # The "image" is this machine; let the container user reach its Python (pyenv under /root).
        f"chmod o+rx {q(str(new / 'root'))}",
        f"mount -t proc proc {q(str(new / 'proc'))}",
        f"mount --rbind /dev {q(str(new / 'dev'))}",
        f"mount --rbind /sys {q(str(new / 'sys'))}",
    ]
    for source, target, ro in mounts:
        where = q(str(new) + target)
        lines.append(f"mkdir -p {where}")
        lines.append(f"mount --bind {q(source)} {where}")
        if ro:
            lines.append(f"mount -o remount,bind,ro {where}")
    if image == Path("/"):
        # The "image" is this machine: a volume over /tmp (every hardened pod has one) must not hide
        # the Python environment the pod runs, as when k3sc is checked out under /tmp.
        for keep in (sys.prefix, str(Path(__file__).resolve().parents[2])):
            if any(keep == t or keep.startswith(t.rstrip("/") + "/") for _, t, _ in mounts):
                where = q(str(new) + keep)
                # `mktemp -d` makes a checkout 0700: the pod's user must reach it (this changes
                # the host directory's mode to 0705; test machines only).
                lines += [f"mkdir -p {where}", f"mount --bind {q(keep)} {where}",
                          f"chmod o+rx {where}", f"mount -o remount,bind,ro {where}"]  # fmt: skip
    if read_only:
        lines.append(f"mount -o remount,ro {q(str(new))}")
    exports = " ".join(f"{q(k)}={q(v)}" for k, v in env.items())
    command = " ".join(q(a) for a in argv)
    lines.append(
        f"exec chroot --userspec={uid}:{gid} {q(str(new))} /usr/bin/env -i {exports} "
        f"/bin/sh -c {q(f'cd {q(workdir)} && exec {command}')}"
    )
    return "\n".join(lines) + "\n"
