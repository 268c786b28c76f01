"""Policy checks on rendered Kubernetes objects (the Pod Security `restricted` profile plus k3sc's rules)."""

from __future__ import annotations

from typing import Any

# Volume types the `restricted` Pod Security Standard allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload object, or None for other kinds."""
    if obj.get("kind") not in WORKLOADS:
        return None
    template = (
        obj["spec"]["jobTemplate"]["spec"]["template"]
        if obj["kind"] == "CronJob"
        else obj["spec"]["template"]
    )
    spec: dict[str, Any] = template["spec"]
    return spec


def violations(spec: dict[str, Any]) -> list[str]:
    """Every way a pod spec breaks `restricted` or k3sc's hardening rules (empty when none)."""
    found: list[str] = []
    pod_security = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            found.append(f"{flag} is set")
    for volume in spec.get("volumes") or []:
        kind = next(k for k in volume if k != "name")
        if kind not in RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} is a {kind}")
    containers = [*(spec.get("initContainers") or []), *spec["containers"]]
    for container in containers:
        name = container["name"]
        security = container.get("securityContext") or {}

        def setting(key: str, security: dict[str, Any] = security) -> Any:
            return security.get(key, pod_security.get(key))

        if setting("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if setting("runAsUser") == 0:
            found.append(f"{name}: runs as uid 0")
        if security.get("privileged"):
            found.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if security.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem is writable")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{name}: capabilities not dropped")
        if capabilities.get("add"):
            found.append(f"{name}: adds capabilities {capabilities['add']}")
        if (setting("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: no RuntimeDefault seccomp profile")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(section) or {}).get(resource):
                    found.append(f"{name}: no {resource} {section[:-1]}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
    return found
